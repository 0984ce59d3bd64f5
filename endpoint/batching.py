"""Cross-request batching for the endpoint: concurrent requests share vision passes and candidate scoring.

A ``RequestBatcher`` sits between ``DescriberModel``'s requests and its two batched halves:

- **vision**: the images of concurrent requests (each a cache miss that won its single-flight),
  decoded and preprocessed in the request's own thread, go through ``DescriberModel.encode_pixels``
  together, one batch;
- **scoring**: the scored questions of concurrent requests go through
  ``DescriberModel.score_candidates`` together: every request's query features repeated for its own
  prompts, every candidate of every prompt in the one decoder batch (exactly what one request with
  all those questions would do), then split back per request.

Each half has a ``Collector``: ``workers`` threads, each taking whatever is waiting, up to
``max_batch`` requests, and running it (two workers keep both halves of a batch's work and the
next batch's going at once: a CPU's cores, or a GPU fed while the other batch is prepared).
When a worker is idle and a request arrives, it waits up to
``window_ms`` for company, but only while other requests are already inside the batcher (in any
half, or between the two): a lone request never waits. Requests that arrive while a batch runs
form the next one, so under load batches grow by themselves and the window hardly matters.

Failure stays with its request: input is validated and images decoded in the request's own thread
before anything joins a batch; if a batched run raises anyway, its requests are run again one at a
time, so each gets its own answer or its own error. A waiting caller whose client has gone still
gets its result (nobody reads it); the others in its batch are untouched.

Settings (``BatchSettings``): ``describer_model.json`` ``"batching": {"window_ms", "max_batch",
"workers"}``, overridden by the environment ``DESCRIBER_BATCH_WINDOW_MS`` / ``DESCRIBER_BATCH_MAX``
/ ``DESCRIBER_BATCH_WORKERS``; ``max_batch`` 1 turns batching off.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

import torch
from PIL import Image
from pydantic import BaseModel, Field

logger = logging.getLogger(__name__)

WINDOW_ENV = "DESCRIBER_BATCH_WINDOW_MS"
MAX_BATCH_ENV = "DESCRIBER_BATCH_MAX"
WORKERS_ENV = "DESCRIBER_BATCH_WORKERS"
METADATA_KEY = "batching"

Item = TypeVar("Item")
Result = TypeVar("Result")


class BatchSettings(BaseModel):
    """How long an idle collector waits for company, and how many requests one batch takes at most."""

    # With `make load-bench` and a batch-size microbenchmark (docs/benchmarks.md) on a shared CPU,
    # 4 or 8 a batch measured within noise; two workers keep both cores busy. Under load batches
    # fill while the previous one runs, so a short window is enough, and a lone request never
    # waits at all. A GPU gains most from the larger batch: measure with `make gpu-bench`.
    window_ms: float = Field(default=5.0, ge=0, le=1000)
    max_batch: int = Field(default=8, ge=1, le=64)
    workers: int = Field(default=2, ge=1, le=8)

    @property
    def enabled(self) -> bool:
        return self.max_batch > 1

    @classmethod
    def resolve(cls, metadata: Mapping[str, Any], environ: Mapping[str, str] | None = None) -> BatchSettings:
        """The model dir's ``batching`` settings, each overridden by its environment variable."""
        environ = os.environ if environ is None else environ
        values = dict(metadata.get(METADATA_KEY) or {})
        for field, name in (
            ("window_ms", WINDOW_ENV),
            ("max_batch", MAX_BATCH_ENV),
            ("workers", WORKERS_ENV),
        ):
            if environ.get(name):
                values[field] = environ[name]
        return cls.model_validate(values)


class Collector(Generic[Item, Result]):
    """Items from many threads, run by ``workers`` threads in batches of at most ``max_batch``."""

    def __init__(
        self,
        name: str,
        run_batch: Callable[[list[Item]], list[Result]],
        settings: BatchSettings,
        company_expected: Callable[[int], bool],
    ) -> None:
        self.name = name
        self.settings = settings
        self._run_batch = run_batch
        self._company_expected = company_expected
        self._queue: list[tuple[Item, Future[Result]]] = []
        self._ready = threading.Condition()
        self.batches = 0
        self.items = 0
        self.largest = 0
        self.fallbacks = 0
        self._counts = threading.Lock()
        for index in range(settings.workers):
            threading.Thread(target=self._loop, name=f"batch-{name}-{index}", daemon=True).start()

    def submit(self, item: Item) -> Result:
        """``item``'s result, computed in some batch; raises what its own run raised."""
        future: Future[Result] = Future()
        with self._ready:
            self._queue.append((item, future))
            self._ready.notify()
        return future.result()

    def _take(self) -> list[tuple[Item, Future[Result]]]:
        limit = self.settings.max_batch
        with self._ready:
            while True:
                while not self._queue:
                    self._ready.wait()
                deadline = time.monotonic() + self.settings.window_ms / 1000
                # Idle and alone: wait for the requests already in flight elsewhere, never for strangers.
                while 0 < len(self._queue) < limit and self._company_expected(len(self._queue)):
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        break
                    self._ready.wait(remaining)
                if self._queue:  # another worker may have taken them while this one waited
                    batch, self._queue = self._queue[:limit], self._queue[limit:]
                    return batch

    def _loop(self) -> None:
        while True:
            batch = self._take()
            with self._counts:
                self.batches += 1
                self.items += len(batch)
                self.largest = max(self.largest, len(batch))
            try:
                results = self._run_batch([item for item, _ in batch])
            except Exception as error:  # every request gets its own outcome
                if len(batch) == 1:
                    batch[0][1].set_exception(error)
                    continue
                logger.warning("a %s batch of %d failed: running each alone", self.name, len(batch))
                with self._counts:
                    self.fallbacks += 1
                self._run_alone(batch)
                continue
            for (_, future), result in zip(batch, results, strict=True):
                future.set_result(result)

    def _run_alone(self, batch: list[tuple[Item, Future[Result]]]) -> None:
        for item, future in batch:
            try:
                [result] = self._run_batch([item])
            except Exception as error:  # handed to the waiting request
                future.set_exception(error)
            else:
                future.set_result(result)


class BatchedModel(Protocol):
    """What the batcher needs of ``endpoint.model.DescriberModel``."""

    def pixel_values(self, image: Image.Image) -> torch.Tensor: ...

    def encode_pixels(self, pixel_values: torch.Tensor) -> torch.Tensor: ...

    def score_candidates(
        self, features: torch.Tensor, prompts: Sequence[str], candidates: Sequence[Sequence[str]]
    ) -> list[list[float]]: ...


@dataclass(frozen=True)
class ScoringItem:
    """One request's scored questions: its image's features, its prompts and their candidate texts."""

    features: torch.Tensor
    prompts: list[str]
    candidates: list[list[str]]


class RequestBatcher:
    """The two collectors of one model, and how many requests are inside them now."""

    def __init__(self, model: BatchedModel, settings: BatchSettings) -> None:
        self.model = model
        self.settings = settings
        self._lock = threading.Lock()
        self._in_flight = 0
        self.vision: Collector[torch.Tensor, torch.Tensor] = Collector(
            "vision", self._encode, settings, self._others_in_flight
        )
        self.scoring: Collector[ScoringItem, list[list[float]]] = Collector(
            "scoring", self._score, settings, self._others_in_flight
        )

    @contextmanager
    def request(self) -> Any:
        """Count a request as in flight while it is answered (its halves may wait for company)."""
        with self._lock:
            self._in_flight += 1
        try:
            yield
        finally:
            with self._lock:
                self._in_flight -= 1

    def _others_in_flight(self, queued: int) -> bool:
        with self._lock:
            return self._in_flight > queued

    def encode_image(self, image: Image.Image) -> torch.Tensor:
        """The vision pass of one image, batched with those of concurrent requests."""
        return self.vision.submit(self.model.pixel_values(image))

    def score_candidates(
        self, features: torch.Tensor, prompts: Sequence[str], candidates: Sequence[Sequence[str]]
    ) -> list[list[float]]:
        """``DescriberModel.score_candidates``, batched with the scoring of concurrent requests."""
        item = ScoringItem(features, list(prompts), [list(texts) for texts in candidates])
        return self.scoring.submit(item)

    def _encode(self, pixel_values: list[torch.Tensor]) -> list[torch.Tensor]:
        features = self.model.encode_pixels(torch.cat(pixel_values))
        # Copies: a cached entry must not keep the whole batch's tensor alive.
        return [features[index : index + 1].clone() for index in range(len(pixel_values))]

    def _score(self, items: list[ScoringItem]) -> list[list[list[float]]]:
        # Every prompt carries its own request's features: one request with all the questions.
        features = torch.cat([item.features.expand(len(item.prompts), -1, -1) for item in items])
        prompts = [prompt for item in items for prompt in item.prompts]
        candidates = [texts for item in items for texts in item.candidates]
        scores = self.model.score_candidates(features, prompts, candidates)
        split: list[list[list[float]]] = []
        for item in items:
            split.append(scores[: len(item.prompts)])
            scores = scores[len(item.prompts) :]
        return split

    def stats(self) -> dict[str, dict[str, int]]:
        return {
            collector.name: {
                "batches": collector.batches,
                "items": collector.items,
                "largest": collector.largest,
                "fallbacks": collector.fallbacks,
            }
            for collector in (self.vision, self.scoring)
        }
