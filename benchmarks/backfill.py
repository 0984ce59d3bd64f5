"""`make backfill-bench`: a catalogue of synthetic photos backfilled on a fresh local stack, then again.

The photos go under the backfill prefix, where an upload starts nothing, so every run is the
backfill's. Measured: the backfill's wall time; the products' final records (COMPLETED, FAILED);
duplicate executions (DescribeProduct runs of the same object version beyond the first, read from
the runs' inputs); a warm upload's latency while the backfill runs against the idle stack's; and how
many runs a second backfill of the same prefix starts (0 when nothing is missing).
"""

from __future__ import annotations

import json
import statistics
import tempfile
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from benchmarks.upload_latency import time_uploads
from describer import backfill_runs
from describer.deployment import Deployment, fetch_records
from describer.local.model_host.batch_jobs import BatchFaults
from describer.local.samples import SAMPLE_FIRST_ID, SampleFile, synthetic_photos
from describer.local.stack import LocalSettings, batch_job_report, set_batch_faults
from describer_rules.contracts import Status

BENCH_SEED = 11
BENCH_FOLDER = "bench/"


def executions_since(deployment: Deployment, since: datetime) -> list[dict[str, Any]]:
    """DescribeProduct executions started at or after ``since``, with their input."""
    sfn = deployment.client("stepfunctions")
    paginator = sfn.get_paginator("list_executions")
    started = [
        execution
        for page in paginator.paginate(stateMachineArn=deployment.outputs["StateMachineArn"])
        for execution in page["executions"]
        if execution["startDate"] >= since
    ]
    return [sfn.describe_execution(executionArn=execution["executionArn"]) for execution in started]


def duplicate_runs(executions: list[dict[str, Any]], key_prefix: str) -> int:
    """Runs of an object version beyond its first, among the executions under ``key_prefix``."""
    versions = Counter(
        (run["bucket"], run["key"], run.get("version_id"), run.get("redrive_count", 0))
        for run in (json.loads(execution["input"]) for execution in executions)
        if run.get("key", "").startswith(key_prefix)
    )
    return sum(count - 1 for count in versions.values())


def _backfill(
    deployment: Deployment,
    source: backfill_runs.S3Uri,
    console: Console,
    timeout_s: float,
    batch_copy: bool = False,
) -> dict[str, Any]:
    request = backfill_runs.backfill_input(deployment, source, batch_copy=batch_copy)
    execution = backfill_runs.run(deployment, request, console, timeout_s)
    if execution["status"] != "SUCCEEDED":
        raise RuntimeError(
            f"the backfill {execution['status']}: {execution.get('error')} {execution.get('cause')}"
        )
    return execution


def _median_upload_s(deployment: Deployment, photos: list[SampleFile], timeout_s: float) -> float:
    return statistics.median(time_uploads(deployment, [photo], timeout_s) for photo in photos)


def queued_duplicates(results: list[backfill_runs.ItemResult]) -> int:
    """Batch copy: products whose copy was queued by more than one item (the Express children have
    no name dedupe; the record claim must leave one)."""
    queued = Counter(
        result.product_id for result in results if result.outcome == backfill_runs.ItemOutcome.COPY_QUEUED
    )
    return sum(count - 1 for count in queued.values())


def run_backfill_bench(
    settings: LocalSettings,
    objects: int,
    uploads: int,
    timeout_s: float,
    console: Console,
    batch_copy: bool = False,
    batch_faults: str = "",
) -> int:
    deployment = Deployment.local(settings.state_dir)
    if batch_faults:
        report = set_batch_faults(settings, BatchFaults.parse(batch_faults))
        console.print(f"batch jobs end as: {report['faults']['rates']}")
    prefix = deployment.outputs["BackfillPrefix"] + BENCH_FOLDER
    source = backfill_runs.S3Uri(deployment.upload_bucket, prefix)
    s3 = deployment.client("s3")
    with tempfile.TemporaryDirectory() as scratch:
        # One photo set, so catalogue and live uploads are different products (and images).
        total = objects + 1 + 2 * uploads
        photos = synthetic_photos(Path(scratch), per_category=total // 2 + 1, seed=BENCH_SEED)[:total]
        catalogue, live = photos[:objects], photos[objects:]
        with Progress(console=console, transient=True) as progress:
            task = progress.add_task("Writing the catalogue", total=len(catalogue))
            for photo in catalogue:
                s3.put_object(Bucket=source.bucket, Key=prefix + photo.key, Body=photo.path.read_bytes())
                progress.advance(task)
        time_uploads(deployment, live[:1], timeout_s)  # the first upload meets cold Lambda workers
        idle_s = _median_upload_s(deployment, live[1 : 1 + uploads], timeout_s)
        console.print(f"warm upload, idle stack: median {idle_s:.2f} s of {uploads}")

        started_at = datetime.now().astimezone()
        started = time.perf_counter()
        with ThreadPoolExecutor(max_workers=1) as pool:
            run = pool.submit(_backfill, deployment, source, console, timeout_s, batch_copy)
            # Live uploads while the backfill's products run (after its first few are under way).
            while not _products_running(deployment) and not run.done():
                time.sleep(0.5)
            busy_s = _median_upload_s(deployment, live[1 + uploads :], timeout_s) if not run.done() else None
            execution = run.result()
        elapsed = time.perf_counter() - started

    results = backfill_runs.item_results(deployment, execution)
    product_ids = [result.product_id for result in results if result.product_id]
    records = fetch_records(deployment, product_ids)
    statuses = Counter(record.status for record in records.values())
    lost = len(set(product_ids) - set(records))
    duplicates = duplicate_runs(executions_since(deployment, started_at), prefix)
    duplicates += queued_duplicates(results)

    rerun_at = datetime.now().astimezone()
    rerun = backfill_runs.item_results(
        deployment, _backfill(deployment, source, console, timeout_s, batch_copy)
    )
    # Runs the rerun started: DescribeProduct executions, or (batch copy) children that ran the steps.
    if batch_copy:
        rerun_runs = sum(result.started for result in rerun)
    else:
        rerun_runs = len(executions_since(deployment, rerun_at))

    table = Table(title=f"Backfill of {objects} objects on the local stack ({settings.stack_name})")
    table.add_column("measure")
    table.add_column("value", justify="right")
    table.add_row("objects listed", str(len(results)))
    for outcome, count in sorted(backfill_runs.outcome_counts(results).items()):
        table.add_row(f"  {outcome.value}", str(count))
    table.add_row("records COMPLETED / FAILED", f"{statuses[Status.COMPLETED]} / {statuses[Status.FAILED]}")
    table.add_row("records still PROCESSING (stuck) / missing", f"{statuses[Status.PROCESSING]} / {lost}")
    table.add_row("duplicate executions", str(duplicates))
    table.add_row("backfill wall time (s)", f"{elapsed:.1f}")
    table.add_row("products per minute", f"{60 * len(results) / elapsed:.1f}")
    table.add_row("warm upload, idle (median s)", f"{idle_s:.2f}")
    if busy_s is not None:
        table.add_row("warm upload during the backfill (median s)", f"{busy_s:.2f} ({busy_s / idle_s:.1f}x)")
    table.add_row(
        "rerun: objects already final",
        str(backfill_runs.outcome_counts(rerun)[backfill_runs.ItemOutcome.SKIPPED]),
    )
    console.print(table)
    if busy_s is not None:
        console.print(f"warm upload during the backfill: median {busy_s:.2f} s, {busy_s / idle_s:.1f}x idle")
    console.print(
        f"backfill: {len(results)} objects, {statuses[Status.COMPLETED]} completed, "
        f"{statuses[Status.FAILED]} failed, {statuses[Status.PROCESSING]} stuck, {lost} lost, "
        f"{duplicates} duplicate executions in {elapsed:.0f} s"
    )
    console.print(f"rerun: {rerun_runs} executions started")
    return 0


# make chaos's batch phase: jobs fail, expire, end partially completed or write lines that are not JSON.
CHAOS_BATCH_FAULTS = "batch-fail=0.25,batch-expire=0.25,batch-partial=0.25,batch-bad-lines=0.25"
CHAOS_BATCH_FOLDER = "chaos-batch/"
# Other products than the chaos run's uploads (which count from SAMPLE_FIRST_ID), so none is already final.
CHAOS_BATCH_FIRST_ID = SAMPLE_FIRST_ID + 50_000


def run_batch_chaos(
    settings: LocalSettings, objects: int, timeout_s: float, console: Console
) -> tuple[str, bool]:
    """A batch-copy backfill of ``objects`` new synthetic products (at least a job's minimum, 100, so that
    jobs run) while every batch job ends badly; then the same backfill again. Returns its verdict line and
    whether every product went to a job and was saved through the fallbacks, none lost, stuck or run
    twice, and the rerun started nothing."""
    deployment = Deployment.local(settings.state_dir)
    set_batch_faults(settings, BatchFaults.parse(CHAOS_BATCH_FAULTS, seed=BENCH_SEED))
    try:
        prefix = deployment.outputs["BackfillPrefix"] + CHAOS_BATCH_FOLDER
        source = backfill_runs.S3Uri(deployment.upload_bucket, prefix)
        s3 = deployment.client("s3")
        with tempfile.TemporaryDirectory() as scratch:
            photos = synthetic_photos(Path(scratch), objects // 2 + 1, BENCH_SEED + 1, CHAOS_BATCH_FIRST_ID)
            for photo in photos[:objects]:
                s3.put_object(Bucket=source.bucket, Key=prefix + photo.key, Body=photo.path.read_bytes())
        started_at = datetime.now().astimezone()
        execution = _backfill(deployment, source, console, timeout_s, True)
        results = backfill_runs.item_results(deployment, execution)
        rerun = backfill_runs.item_results(
            deployment, _backfill(deployment, source, console, timeout_s, True)
        )
        jobs = batch_job_report(settings)
    finally:
        set_batch_faults(settings, BatchFaults())
    product_ids = [result.product_id for result in results if result.product_id]
    records = fetch_records(deployment, product_ids)
    statuses = Counter(record.status for record in records.values())
    lost = len(set(product_ids) - set(records))
    duplicates = duplicate_runs(executions_since(deployment, started_at), prefix) + queued_duplicates(results)
    rerun_runs = sum(result.started for result in rerun)
    queued = backfill_runs.outcome_counts(results)[backfill_runs.ItemOutcome.COPY_QUEUED]
    ended = ", ".join(f"{state} {count}" for state, count in sorted(jobs["ended"].items()))
    report = backfill_runs.copy_report(execution) or {"submitted": {}, "collected": {}}
    fallbacks = sum(report["submitted"].get("fallbacks", {}).values()) + sum(
        report["collected"].get("fallbacks", {}).values()
    )
    line = (
        f"chaos batch: {len(results)} objects, {queued} queued for a batch job, "
        f"{statuses[Status.COMPLETED]} completed, "
        f"{statuses[Status.FAILED]} failed, {statuses[Status.PROCESSING]} stuck, {lost} lost, "
        f"{duplicates} duplicate executions, {rerun_runs} started on rerun; "
        f"batch jobs ended: {ended or 'none'}; {fallbacks} on-demand fallbacks"
    )
    clean = (
        queued == objects
        and bool(jobs["ended"])
        and not (statuses[Status.PROCESSING] or lost or duplicates or rerun_runs or statuses[Status.FAILED])
    )
    return line, clean


def _products_running(deployment: Deployment) -> bool:
    sfn = deployment.client("stepfunctions")
    running = sfn.list_executions(
        stateMachineArn=deployment.outputs["StateMachineArn"], statusFilter="RUNNING", maxResults=1
    )
    return bool(running["executions"])
