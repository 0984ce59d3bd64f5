"""`describer backfill`: an existing catalogue in S3 through the pipeline, on the local stack or on AWS.

The stack's backfill state machine does the work (a Distributed Map over the prefix's listing or a
CSV manifest, one DescribeProduct run per object version that has no final record yet); this module
checks the request before anything starts, starts it, follows the map run's item counts and reads
each item's outcome back: from the execution's output, or from the ResultWriter's files in S3 when
the map run wrote its results there (AWS).
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any
from urllib.parse import urlparse

from botocore.exceptions import ClientError
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from describer.deployment import Deployment
from describer_aws.aws_errors import client_error_code
from describer_rules.contracts import ErrorCode

MANIFEST_PREFIX = "backfill/"
_FINISHED = frozenset({"SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED"})
# How a failed DescribeProduct run reaches its backfill item: States.TaskFailed on AWS, the run's own
# error code on the local emulator.
_RUN_FAILED = frozenset({"States.TaskFailed", *ErrorCode})


class BackfillError(Exception):
    """The backfill cannot start: nothing was started."""


@dataclass(frozen=True)
class S3Uri:
    bucket: str
    key: str

    @classmethod
    def parse(cls, uri: str) -> S3Uri:
        parsed = urlparse(uri)
        if parsed.scheme != "s3" or not parsed.netloc:
            raise BackfillError(f"not an S3 URI: {uri!r} (expected s3://BUCKET/PREFIX)")
        return cls(parsed.netloc, parsed.path.lstrip("/"))

    def __str__(self) -> str:
        return f"s3://{self.bucket}/{self.key}"


class ItemOutcome(StrEnum):
    """What happened to one listed object, as its item's final state says."""

    DESCRIBED = "described"
    COPY_QUEUED = "attributes saved, copy from a batch job"
    FAILED = "failed (FAILED record)"
    SKIPPED = "already final (skipped)"
    STARTED_ELSEWHERE = "started by another backfill"
    ITEM_FAILED = "item failed (not planned or not started)"


@dataclass(frozen=True)
class ItemResult:
    outcome: ItemOutcome
    product_id: str | None
    execution_name: str | None
    started: bool


@dataclass(frozen=True)
class MapRunCounts:
    total: int
    succeeded: int
    failed: int
    running: int

    @property
    def done(self) -> int:
        return self.succeeded + self.failed


def backfill_input(
    deployment: Deployment,
    source: S3Uri,
    manifest: S3Uri | None = None,
    category: str | None = None,
    batch_copy: bool = False,
) -> dict[str, Any]:
    """The backfill state machine's input, after checking everything it will read exists.

    ``batch_copy``: the copy from Bedrock batch inference jobs (``copy: batch``) instead of on demand.
    """
    s3 = deployment.client("s3")
    try:
        s3.head_bucket(Bucket=source.bucket)
    except ClientError as error:
        raise BackfillError(f"bucket {source.bucket!r} does not exist or is not readable") from error
    if source.bucket != deployment.upload_bucket:
        raise BackfillError(
            f"the stack {deployment.stack_name} reads catalogues in its own bucket "
            f"{deployment.upload_bucket!r}, not {source.bucket!r}"
        )
    prefix = deployment.outputs["BackfillPrefix"]
    if not source.key.startswith(prefix):
        raise BackfillError(f"{source} is outside the stack's backfill prefix {prefix!r}")
    request: dict[str, Any] = {"bucket": source.bucket, "prefix": source.key, "category": category}
    if batch_copy:
        request["copy"] = "batch"
    if manifest is not None:
        if manifest.bucket != deployment.upload_bucket or not manifest.key.startswith(MANIFEST_PREFIX):
            raise BackfillError(
                f"a manifest lives in s3://{deployment.upload_bucket}/{MANIFEST_PREFIX}, not at {manifest}"
            )
        try:
            s3.head_object(Bucket=manifest.bucket, Key=manifest.key)
        except ClientError as error:
            raise BackfillError(f"manifest {manifest} does not exist ({client_error_code(error)})") from error
        request |= {"manifest_bucket": manifest.bucket, "manifest_key": manifest.key}
    return request


def start(deployment: Deployment, request: dict[str, Any]) -> str:
    response = deployment.client("stepfunctions").start_execution(
        stateMachineArn=deployment.outputs["BackfillStateMachineArn"], input=json.dumps(request)
    )
    return str(response["executionArn"])


def map_run_counts(deployment: Deployment, execution_arn: str) -> MapRunCounts | None:
    """The map run's item counts (DescribeMapRun), or None before the map run exists."""
    sfn = deployment.client("stepfunctions")
    runs = sfn.list_map_runs(executionArn=execution_arn).get("mapRuns", [])
    if not runs:
        return None
    counts = sfn.describe_map_run(mapRunArn=runs[0]["mapRunArn"])["itemCounts"]
    return MapRunCounts(counts["total"], counts["succeeded"], counts["failed"], counts["running"])


def wait(
    deployment: Deployment,
    execution_arn: str,
    on_progress: Callable[[MapRunCounts], None] | None = None,
    poll_s: float = 1.0,
    timeout_s: float | None = None,
) -> dict[str, Any]:
    """Follow the backfill until it ends; returns its DescribeExecution."""
    sfn = deployment.client("stepfunctions")
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    while True:
        execution: dict[str, Any] = sfn.describe_execution(executionArn=execution_arn)
        counts = map_run_counts(deployment, execution_arn)
        if counts is not None and on_progress is not None:
            on_progress(counts)
        if execution["status"] in _FINISHED:
            return execution
        if deadline is not None and time.monotonic() > deadline:
            raise TimeoutError(f"the backfill {execution_arn} is still {execution['status']}")
        time.sleep(poll_s)


def run(
    deployment: Deployment, request: dict[str, Any], console: Console, timeout_s: float | None = None
) -> dict[str, Any]:
    """Start a backfill and follow it with a progress bar of its items; returns its DescribeExecution."""
    execution_arn = start(deployment, request)
    console.print(f"Backfill started: {execution_arn}")
    with Progress(console=console, transient=True) as progress:
        task = progress.add_task("Listing", total=None)

        def show(counts: MapRunCounts) -> None:
            progress.update(
                task,
                description=f"Products ({counts.running} running, {counts.failed} item failures)",
                total=counts.total,
                completed=counts.done,
            )

        return wait(deployment, execution_arn, show, poll_s=0.5, timeout_s=timeout_s)


def _item_result(output: dict[str, Any] | None) -> ItemResult:
    if output is None:
        return ItemResult(ItemOutcome.ITEM_FAILED, None, None, started=False)
    product_id, name = output.get("product_id"), output.get("execution_name")
    error = (output.get("error") or {}).get("Error")
    if not output.get("start"):
        outcome = ItemOutcome.SKIPPED
    elif "prepared" in output:  # a batch copy child: it ran the steps itself
        outcome = _batch_child_outcome(output, error)
    elif error in _RUN_FAILED:
        outcome = ItemOutcome.FAILED
    elif error is not None:
        outcome = ItemOutcome.STARTED_ELSEWHERE
    else:
        outcome = ItemOutcome.DESCRIBED
    started = outcome in (ItemOutcome.DESCRIBED, ItemOutcome.COPY_QUEUED, ItemOutcome.FAILED)
    return ItemResult(outcome, product_id, name, started)


def _batch_child_outcome(output: dict[str, Any], error: str | None) -> ItemOutcome:
    if error is not None:
        return ItemOutcome.FAILED  # RecordFailure wrote its record
    if (output.get("queued") or {}).get("queued"):
        return ItemOutcome.COPY_QUEUED
    return ItemOutcome.STARTED_ELSEWHERE  # a newer upload owns the record


def _written_results(deployment: Deployment, details: dict[str, Any]) -> list[dict[str, Any] | None]:
    """Item outputs from the ResultWriter's manifest and result files (a failed item has none)."""
    s3 = deployment.client("s3")

    def read(bucket: str, key: str) -> Any:
        return json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())

    manifest = read(details["Bucket"], details["Key"])
    outputs: list[dict[str, Any] | None] = []
    for status, files in manifest["ResultFiles"].items():
        for file in files:
            for child in read(manifest["DestinationBucket"], file["Key"]):
                outputs.append(json.loads(child["Output"]) if status == "SUCCEEDED" else None)
    return outputs


def item_results(deployment: Deployment, execution: dict[str, Any]) -> list[ItemResult]:
    """Each item's outcome, from the map's output or, when it wrote them to S3, its result files."""
    output = json.loads(execution.get("output") or "null")
    if isinstance(output, dict) and "map_run" in output:  # batch copy: the map's result is kept aside
        output = output["map_run"]
    if isinstance(output, dict) and "ResultWriterDetails" in output:
        outputs = _written_results(deployment, output["ResultWriterDetails"])
    elif isinstance(output, list):
        outputs = output
    else:
        outputs = []
    return [_item_result(item) for item in outputs]


def outcome_counts(results: list[ItemResult]) -> Counter[ItemOutcome]:
    return Counter(result.outcome for result in results)


def copy_report(execution: dict[str, Any]) -> dict[str, Any] | None:
    """A batch copy backfill's last submit and collect passes (None for an on-demand one)."""
    output = json.loads(execution.get("output") or "null")
    if not isinstance(output, dict) or "submitted" not in output:
        return None
    return {"submitted": output["submitted"], "collected": output.get("collected", {})}


def copy_table(report: dict[str, Any]) -> Table:
    """Batch copy's figures: jobs, copies from jobs, on-demand fallbacks by reason, bad output lines."""
    submitted, collected = report["submitted"], report["collected"]
    table = Table(title="Copy by Bedrock batch inference")
    table.add_column("what")
    table.add_column("count", justify="right")
    table.add_row("products queued for a job", str(submitted.get("queued", 0)))
    table.add_row("jobs submitted", str(submitted.get("submitted_jobs", 0)))
    table.add_row("copies from a job", str(collected.get("batch_copies", 0)))
    table.add_row("records saved", str(submitted.get("saved", 0) + collected.get("saved", 0)))
    table.add_row("records failed", str(submitted.get("failed", 0) + collected.get("failed", 0)))
    table.add_row("queued again (Bedrock busy: run again)", str(collected.get("requeued", 0)))
    fallbacks = Counter(submitted.get("fallbacks", {})) + Counter(collected.get("fallbacks", {}))
    for reason, count in sorted(fallbacks.items()):
        table.add_row(f"on-demand fallback: {reason}", str(count))
    for reason, count in sorted(collected.get("bad_lines", {}).items()):
        table.add_row(f"bad output line: {reason}", str(count))
    return table
