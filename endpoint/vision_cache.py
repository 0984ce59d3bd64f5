"""The vision features of recent images, by digest: each image goes through the vision encoder once.

The vision encoder + Q-Former + projection output of an image is kept in a bounded LRU keyed by the
image's sha256, with single-flight: concurrent requests for one image wait for the first
computation, and a failed one reaches every waiter without being cached.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import Future

import torch

# Features of one image of blip2-flan-t5-xl: 32 query tokens x 2048 in bf16 = 128 KiB.
CACHE_MAX_ENTRIES = 1024
CACHE_MAX_BYTES = 256 * 1024 * 1024


class VisionFeatureCache:
    """Vision features by image digest: LRU bounded by entries and bytes, thread-safe, single-flight."""

    def __init__(self, max_entries: int = CACHE_MAX_ENTRIES, max_bytes: int = CACHE_MAX_BYTES) -> None:
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self._entries: OrderedDict[str, torch.Tensor] = OrderedDict()
        self._pending: dict[str, Future[torch.Tensor]] = {}
        self._bytes = 0
        self._lock = threading.Lock()
        self.computations = 0
        self.hits = 0
        self.waits = 0

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    @property
    def nbytes(self) -> int:
        with self._lock:
            return self._bytes

    def get_or_compute(self, digest: str, compute: Callable[[], torch.Tensor]) -> torch.Tensor:
        """The cached features for ``digest``; computes them at most once however many threads ask."""
        with self._lock:
            cached = self._entries.get(digest)
            if cached is not None:
                self._entries.move_to_end(digest)
                self.hits += 1
                return cached
            pending = self._pending.get(digest)
            owner = pending is None
            if pending is None:
                pending = self._pending[digest] = Future()
                self.computations += 1
            else:
                self.waits += 1
        if not owner:
            return pending.result()
        try:
            features = compute()
        except BaseException as error:
            # Waiters get the same error; the next request tries again (nothing is cached).
            with self._lock:
                del self._pending[digest]
            pending.set_exception(error)
            raise
        with self._lock:
            self._store(digest, features)
            del self._pending[digest]
        pending.set_result(features)
        return features

    def peek(self, digest: str) -> torch.Tensor | None:
        """The cached features for ``digest``, or None; never computes."""
        with self._lock:
            cached = self._entries.get(digest)
            if cached is not None:
                self._entries.move_to_end(digest)
                self.hits += 1
            return cached

    def _store(self, digest: str, features: torch.Tensor) -> None:
        size = features.numel() * features.element_size()
        if size > self.max_bytes:
            return
        self._entries[digest] = features
        self._bytes += size
        while len(self._entries) > self.max_entries or self._bytes > self.max_bytes:
            _, evicted = self._entries.popitem(last=False)
            self._bytes -= evicted.numel() * evicted.element_size()
