"""`make local-bench`: latency per upload (cold, then warm) and the time for a burst, on a fresh local stack.

Latency is measured as a user sees it: from the start of the upload to the moment its final record
can be read. Every upload is a different synthetic photo, so the endpoint's per-image cache never
answers for a photo it saw before.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from describer.deployment import Deployment, UploadRef, wait_for_final_records
from describer.local.samples import SampleFile, synthetic_photos
from describer.local.stack import LocalSettings
from describer_aws.results_table import utc_now
from describer_rules.contracts import Status

BENCH_SEED = 7


def time_uploads(
    deployment: Deployment, batch: list[SampleFile], timeout_s: float, progress: Progress | None = None
) -> float:
    """Upload ``batch`` at once; seconds until every upload has its final record."""
    started = time.perf_counter()
    uploads = {}
    for sample in batch:
        uploaded_at = utc_now()
        uploads[sample.product_id] = UploadRef.from_response(
            deployment.upload(sample.path, sample.key), uploaded_at
        )
    task = progress.add_task(f"{len(batch)} uploads", total=len(batch)) if progress else None
    records = wait_for_final_records(
        deployment,
        uploads,
        timeout_s,
        on_progress=(lambda n: progress.update(task, completed=n)) if progress and task is not None else None,
        poll_s=0.1,
    )
    elapsed = time.perf_counter() - started
    failed = [r.product_id for r in records.values() if r.status != Status.COMPLETED]
    if failed:
        raise RuntimeError(f"benchmark uploads failed: {', '.join(failed)}")
    return elapsed


def run_bench(
    settings: LocalSettings, warm_uploads: int, burst: int, timeout_s: float, console: Console
) -> int:
    deployment = Deployment.local(settings.state_dir)
    with tempfile.TemporaryDirectory() as scratch:
        total = 1 + warm_uploads + burst
        photos = synthetic_photos(Path(scratch), per_category=total, seed=BENCH_SEED)[:total]
        cold = time_uploads(deployment, photos[:1], timeout_s)
        console.print(f"cold upload: {cold:.2f} s")
        warm = [time_uploads(deployment, [photo], timeout_s) for photo in photos[1 : 1 + warm_uploads]]
        console.print(f"warm uploads: median {statistics.median(warm):.2f} s")
        with Progress(console=console, transient=True) as progress:
            burst_s = time_uploads(deployment, photos[1 + warm_uploads :], timeout_s, progress)
    table = Table(title=f"Local stack latency ({settings.stack_name})")
    table.add_column("measure")
    table.add_column("seconds", justify="right")
    table.add_row("cold upload -> final record (fresh stack)", f"{cold:.2f}")
    table.add_row(f"warm upload -> final record (median of {len(warm)})", f"{statistics.median(warm):.2f}")
    table.add_row("warm upload, min / max", f"{min(warm):.2f} / {max(warm):.2f}")
    table.add_row(f"burst of {burst} uploads -> all final", f"{burst_s:.2f}")
    console.print(table)
    return 0
