"""`make load-bench`: the endpoint under concurrent products, with cross-request batching, over HTTP.

The real ``inference.py`` behind the local model host (the SageMaker Runtime wire format), images in
moto's S3, and each product asked the way the pipeline asks it: Prepare's question groups
(``QuestionsPerCall``), each one ``InvokeEndpoint`` from AskAttribute's code, a product's groups in
parallel as its Map sends them. C products at a time (closed loop: C clients, each starting its next
product when the last is answered) for C in 1, 4, 16, the levels taking turns (``--turns``) so
that load from elsewhere on the machine hits them alike, on the ``proportional`` preset (BLIP-2's
proportions scaled down, random weights), every product a fresh photo. A last level runs 16 again
with batching off (the same threads, each request's passes alone), to show what batching adds to
plain concurrency.

Throughput is counted in the level's steady state: from its first answer (before it, C products
started together are still in flight and nothing has been answered: the ramp) to the first
client's last answer (after it, fewer products are left than clients: the tail).

Table: products/s, this process's CPU seconds per product (on a shared machine the fairer
measure of what batching saves: throughput also depends on how much of the cores the scheduler
gives the bench's threads), p50 and p95 latency per product (first call sent to last answer), vision passes
and their batches, decoder (scoring) batches, failed products. The figures go to
``.cache/load-bench.json``, which ``make cost`` reads. Last line:
``load: throughput at 16 concurrent N.Nx of 1 concurrent, p95 latency M.Mx``. Exit status 1 if a
product failed.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import torch
from botocore.config import Config
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from benchmarks.endpoint_speedup import (
    MAP_CONCURRENCY,
    PipelineCalls,
    benchmark_questions,
    load_proportional,
    pipeline_calls_to,
    product_photo,
)
from describer.endpoint_figures import LOAD_BENCH_FILE, LoadFigures, LoadLevel
from describer_rules.contracts import Question, S3ObjectRef
from describer_rules.endpoint_calls import DEFAULT_QUESTIONS_PER_CALL, group_questions
from describer_steps.states import AskInput
from endpoint.batching import BatchSettings, RequestBatcher
from endpoint.model import DescriberModel
from endpoint.vision_cache import VisionFeatureCache

CONCURRENCY = (1, 4, 16)
# Calls in flight at 16 products: 16 x the Map's 4; the SDK's default pool of 10 would queue them.
CLIENT_CONFIG = Config(max_pool_connections=64, read_timeout=300, retries={"total_max_attempts": 1})


class Counted:
    """Counts the model's batched passes (vision batches, decoder batches), batching on or off."""

    def __init__(self, model: DescriberModel) -> None:
        self.vision_batches = 0
        self.decoder_batches = 0
        encode_pixels, score_candidates = model.encode_pixels, model.score_candidates
        self._lock = threading.Lock()

        def counted_encode(pixel_values: torch.Tensor) -> torch.Tensor:
            with self._lock:
                self.vision_batches += 1
            return encode_pixels(pixel_values)

        def counted_score(
            features: torch.Tensor, prompts: Sequence[str], candidates: Sequence[Sequence[str]]
        ) -> list[list[float]]:
            with self._lock:
                self.decoder_batches += 1
            return score_candidates(features, prompts, candidates)

        # Instance attributes: the batcher and the request path both call through them.
        model.encode_pixels = counted_encode  # type: ignore[method-assign]
        model.score_candidates = counted_score  # type: ignore[method-assign]


def run_level(
    model: DescriberModel,
    pipeline: PipelineCalls,
    counted: Counted,
    category: str,
    groups: list[list[Question]],
    images: list[S3ObjectRef],
    concurrency: int,
    batching: bool,
    progress: Progress,
) -> LevelRun:
    model.cache = VisionFeatureCache()
    vision_before, decoder_before = counted.vision_batches, counted.decoder_batches
    task = progress.add_task(
        f"{concurrency:>2} concurrent, batching {'on' if batching else 'off'}", total=len(images)
    )
    answered: list[tuple[float, float]] = []  # (started, ended) of each product answered
    failed = 0

    def product(image: S3ObjectRef) -> None:
        nonlocal failed
        items = [AskInput(image=image, category=category, questions=group) for group in groups]
        started = time.perf_counter()
        try:
            with ThreadPoolExecutor(min(MAP_CONCURRENCY, len(items))) as pool:
                list(pool.map(pipeline.ask, items))
        except Exception:  # counted, and the level goes on: every product is asked
            failed += 1
        else:
            answered.append((started, time.perf_counter()))
        progress.advance(task)

    def client(share: list[S3ObjectRef]) -> float:
        for image in share:
            product(image)
        return time.perf_counter()

    started, cpu_started = time.perf_counter(), time.process_time()
    with ThreadPoolExecutor(concurrency) as clients:
        finished = list(clients.map(client, [images[index::concurrency] for index in range(concurrency)]))
    window_start, window_end = steady_state(started, [ended for _, ended in answered], min(finished))
    return LevelRun(
        concurrency=concurrency,
        batching=batching,
        latencies=[ended - began for began, ended in answered],
        failed=failed,
        window_s=window_end - window_start,
        window_products=sum(1 for _, ended in answered if window_start < ended <= window_end),
        cpu_s=time.process_time() - cpu_started,
        vision_passes=model.cache.computations,
        vision_batches=counted.vision_batches - vision_before,
        decoder_batches=counted.decoder_batches - decoder_before,
    )


def steady_state(
    started: float, answered_at: Sequence[float], first_client_done: float
) -> tuple[float, float]:
    """The window a level's throughput is counted in: from its first answer to the first client's
    last one; from the level's start when no other answer falls in between (one product a client)."""
    first = min(answered_at, default=started)
    if not any(first < ended <= first_client_done for ended in answered_at):
        first = started
    return first, first_client_done


@dataclass
class LevelRun:
    """One turn of one level: its products' latencies and the model's passes meanwhile."""

    concurrency: int
    batching: bool
    latencies: list[float]
    failed: int
    window_s: float  # the steady state: from the first answer until the first client is done
    window_products: int  # answered within it
    cpu_s: float  # this process's CPU time (every thread, moto's S3 included) over the whole level
    vision_passes: int
    vision_batches: int
    decoder_batches: int


def summarise(runs: Sequence[LevelRun]) -> LoadLevel:
    """A level's turns together: products answered while every client was busy over that time,
    percentiles of all latencies."""
    ordered = sorted(latency for run in runs for latency in run.latencies) or [float("nan")]
    return LoadLevel(
        concurrency=runs[0].concurrency,
        batching=runs[0].batching,
        products=sum(len(run.latencies) + run.failed for run in runs),
        failed=sum(run.failed for run in runs),
        products_per_s=sum(run.window_products for run in runs) / sum(run.window_s for run in runs),
        cpu_s_per_product=sum(run.cpu_s for run in runs) / max(1, sum(len(run.latencies) for run in runs)),
        p50_s=statistics.median(ordered),
        p95_s=ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))],
        vision_passes=sum(run.vision_passes for run in runs),
        vision_batches=sum(run.vision_batches for run in runs),
        decoder_batches=sum(run.decoder_batches for run in runs),
    )


def results_table(levels: Sequence[LoadLevel], preset: str, questions: int, calls: int) -> Table:
    table = Table(
        title=f"The endpoint under load ({preset} config; {questions} questions a product, {calls} calls)"
    )
    columns = (
        "concurrent",
        "batching",
        "products",
        "products / s",
        "CPU s / product",
        "p50 s / product",
        "p95 s / product",
        "vision passes",
        "vision batches",
        "decoder batches",
        "failed",
    )
    for column in columns:
        table.add_column(column, justify="right")
    for level in levels:
        table.add_row(
            str(level.concurrency),
            "on" if level.batching else "off",
            str(level.products),
            f"{level.products_per_s:.2f}",
            f"{level.cpu_s_per_product:.2f}",
            f"{level.p50_s:.2f}",
            f"{level.p95_s:.2f}",
            str(level.vision_passes),
            str(level.vision_batches),
            str(level.decoder_batches),
            str(level.failed),
        )
    return table


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.endpoint_load", description=__doc__.split("\n")[0]
    )
    parser.add_argument(
        "--turns", type=int, default=2, help="times the levels take turns (load hits all alike)"
    )
    parser.add_argument("--rounds", type=int, default=2, help="products per client at each level and turn")
    parser.add_argument("--min-products", type=int, default=4, help="products at least per level and turn")
    parser.add_argument("--questions", type=int, default=8)
    parser.add_argument("--preset", choices=("proportional", "tiny"), default="proportional")
    parser.add_argument("--questions-per-call", type=int, default=DEFAULT_QUESTIONS_PER_CALL)
    parser.add_argument("--window-ms", type=float, default=BatchSettings().window_ms)
    parser.add_argument("--max-batch", type=int, default=BatchSettings().max_batch)
    parser.add_argument("--workers", type=int, default=BatchSettings().workers)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1: see make bench)")
    parser.add_argument("--no-unbatched", action="store_true", help="skip the level at 16 without batching")
    parser.add_argument("--out", type=Path, default=LOAD_BENCH_FILE)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    settings = BatchSettings(window_ms=args.window_ms, max_batch=args.max_batch, workers=args.workers)

    console = Console(width=max(Console().width, 120))
    plan = [(c, True) for c in CONCURRENCY] + ([] if args.no_unbatched else [(CONCURRENCY[-1], False)])
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console) as progress, tempfile.TemporaryDirectory() as work_dir:
        model = load_proportional(Path(work_dir), answer_tokens=8, preset=args.preset)
        counted = Counted(model)
        category, questions = benchmark_questions(model.catalogue, args.questions)
        groups = group_questions(questions, args.questions_per_call)
        with pipeline_calls_to(model, CLIENT_CONFIG) as pipeline:
            seed = 1000
            warm_up = [pipeline.upload(product_photo(seed), "incoming/warm-up.jpg")]
            batcher = model.batcher = RequestBatcher(model, settings)
            run_level(model, pipeline, counted, category, groups, warm_up, 1, True, progress)
            runs: dict[tuple[int, bool], list[LevelRun]] = {level: [] for level in plan}
            # Levels take turns, as make bench's paths do: a burst of load from elsewhere hits them alike.
            for _ in range(args.turns):
                for concurrency, batching in plan:
                    count = max(args.min_products, args.rounds * concurrency)
                    images = [
                        pipeline.upload(
                            product_photo(seed + index), f"incoming/{category}/{seed + index}.jpg"
                        )
                        for index in range(1, count + 1)
                    ]
                    seed += count
                    model.batcher = batcher if batching else None
                    runs[concurrency, batching].append(
                        run_level(
                            model,
                            pipeline,
                            counted,
                            category,
                            groups,
                            images,
                            concurrency,
                            batching,
                            progress,
                        )
                    )
            levels = [summarise(level_runs) for level_runs in runs.values()]

    figures = LoadFigures(
        measured_at=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        config=args.preset,
        torch_threads=args.threads,
        load_average=" ".join(f"{value:.1f}" for value in os.getloadavg()),
        window_ms=settings.window_ms,
        max_batch=settings.max_batch,
        levels=levels,
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(figures.model_dump_json(indent=2) + "\n", encoding="utf-8")
    console.print(results_table(levels, args.preset, len(questions), len(groups)))
    console.print(
        f"torch threads {args.threads}, batching window {settings.window_ms:g} ms, "
        f"at most {settings.max_batch} requests a batch; load average at the end {figures.load_average}; "
        f"figures in {args.out}"
    )
    failed = sum(level.failed for level in levels)
    if failed:
        console.print(f"[red]{failed} products failed[/]")
    gain, p95 = figures.gain, figures.p95_ratio
    print(f"load: throughput at 16 concurrent {gain:.1f}x of 1 concurrent, p95 latency {p95:.1f}x")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
