"""`describer redrive`: re-run FAILED products whose cause may have passed, without a re-upload.

Each chosen record's upload runs again from the same object version, under the next deterministic
execution name (``...-r<n>`` for its n-th redrive), through the admission queue like an upload event,
so admission control applies. The run claims the record with the same conditional write as any other:
its order token sits right after the failed run's and before any newer upload's, so a product
uploaded again meanwhile keeps its newer record and the redrive ends superseded.

Input errors (``NOT_AN_IMAGE`` ...) fail the same way again: they are redriven only when named with
``--code``. ``--stuck`` picks PROCESSING records instead, whose run ended long ago without a final
write (``record_stopped.is_stuck``: older than the stack's ``RunTimeoutSeconds`` plus a margin), and
re-runs them the same way. Works on the local stack and on a stack on AWS (``--stack-name``).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from describer.deployment import FINAL_STATUSES, Deployment, fetch_records
from describer_rules.contracts import ErrorCode, ProductRecord, Status
from describer_steps.record_stopped import is_stuck, stuck_before
from describer_steps.states import RedriveMessage, WorkflowInput

# Failures whose cause may have passed: a busy or broken model, an internal fault, a stopped run.
DEFAULT_CODES = (
    ErrorCode.ENDPOINT_UNAVAILABLE,
    ErrorCode.DESCRIPTION_UNAVAILABLE,
    ErrorCode.INTERNAL_ERROR,
    ErrorCode.EXECUTION_ABORTED,
    ErrorCode.EXECUTION_TIMED_OUT,
    ErrorCode.EXECUTION_FAILED,
)


def since_timestamp(text: str) -> str:
    """``--since`` (ISO 8601 date or time, UTC unless it says otherwise) in the records' time format."""
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _ids_by_status(
    deployment: Deployment, status: Status, condition: str, values: dict[str, Any]
) -> list[str]:
    """Product ids from the results table's status index (status, updated_at)."""
    paginator = deployment.client("dynamodb").get_paginator("query")
    names = {"#status": "status"} | ({"#updated_at": "updated_at"} if "#updated_at" in condition else {})
    return [
        item["product_id"]["S"]
        for page in paginator.paginate(
            TableName=deployment.results_table,
            IndexName=deployment.outputs["ResultsStatusIndexName"],
            KeyConditionExpression="#status = :status" + condition,
            ExpressionAttributeNames=names,
            ExpressionAttributeValues={":status": {"S": status.value}} | values,
        )
        for item in page["Items"]
    ]


def failed_records(
    deployment: Deployment, codes: Iterable[ErrorCode], since: str | None, products: Iterable[str]
) -> list[ProductRecord]:
    """FAILED records with one of ``codes``, updated at or after ``since``, of ``products`` (all if empty).

    Read from the results table's status index (status, updated_at), then whole by key.
    """
    condition, values = (" AND #updated_at >= :since", {":since": {"S": since}}) if since else ("", {})
    ids = _ids_by_status(deployment, Status.FAILED, condition, values)
    wanted = set(products)
    chosen = set(codes)
    records = fetch_records(deployment, [i for i in ids if not wanted or i in wanted])
    return sorted(
        (r for r in records.values() if r.status == Status.FAILED and r.error_code in chosen),
        key=lambda record: record.product_id,
    )


def stuck_records(deployment: Deployment, run_timeout_s: int, products: Iterable[str]) -> list[ProductRecord]:
    """PROCESSING records whose run ended long ago without a final write (``is_stuck``), of ``products``."""
    before = {":before": {"S": stuck_before(run_timeout_s)}}
    ids = _ids_by_status(deployment, Status.PROCESSING, " AND #updated_at < :before", before)
    wanted = set(products)
    records = fetch_records(deployment, [i for i in ids if not wanted or i in wanted])
    # Read again whole: a record that ended or was re-run since the index was read is left alone.
    return sorted(
        (r for r in records.values() if is_stuck(r, run_timeout_s)), key=lambda record: record.product_id
    )


def run_timeout_of(deployment: Deployment, given: int | None) -> int:
    """The run bound: ``--run-timeout``, else the stack's RunTimeoutSeconds output."""
    if given is not None:
        return given
    if "RunTimeoutSeconds" not in deployment.outputs:
        raise SystemExit("the stack has no RunTimeoutSeconds output (deployed before it): pass --run-timeout")
    return int(deployment.outputs["RunTimeoutSeconds"])


def send_redrives(
    deployment: Deployment, runs: list[WorkflowInput], on_sent: Callable[[], None] | None = None
) -> None:
    """One admission-queue message per run (batches of ten)."""
    sqs = deployment.client("sqs")
    queue_url = deployment.outputs["AdmissionQueueUrl"]
    for start in range(0, len(runs), 10):
        batch = runs[start : start + 10]
        entries = [
            {"Id": str(index), "MessageBody": RedriveMessage(redrive=run).model_dump_json()}
            for index, run in enumerate(batch)
        ]
        failed = sqs.send_message_batch(QueueUrl=queue_url, Entries=entries).get("Failed", [])
        if failed:
            raise RuntimeError(f"the admission queue refused {len(failed)} redrive message(s): {failed[0]}")
        for _ in batch:
            if on_sent is not None:
                on_sent()


def redrive_outcome(run: WorkflowInput, record: ProductRecord | None) -> str | None:
    """How the redrive ended, seen from the product's record; None while it has not ended."""
    if record is None or record.order_token is None:
        return None
    if record.order_token > run.order_token:
        return "superseded by a newer upload"
    if record.execution_name == run.execution_name and record.status in FINAL_STATUSES:
        return record.status.value
    return None


def wait_for_redrives(
    deployment: Deployment,
    runs: dict[str, WorkflowInput],
    timeout_s: float,
    on_progress: Callable[[int], None] | None = None,
) -> dict[str, ProductRecord]:
    """The records once every redrive has ended (or the time is up: those still running are left out)."""
    deadline = time.monotonic() + timeout_s
    ended: dict[str, ProductRecord] = {}
    while len(ended) < len(runs) and time.monotonic() < deadline:
        pending = [product for product in runs if product not in ended]
        for product, record in fetch_records(deployment, pending).items():
            if redrive_outcome(runs[product], record) is not None:
                ended[product] = record
        if on_progress is not None:
            on_progress(len(ended))
        if len(ended) < len(runs):
            time.sleep(1)
    return ended


def redrive_table(
    chosen: list[ProductRecord], runs: dict[str, WorkflowInput], ended: dict[str, ProductRecord] | None
) -> Table:
    table = Table(title="Redrive" if ended is not None else "Redrive (dry run: nothing sent)")
    for column in ("product", "was", "redrive", "outcome"):
        table.add_column(column, overflow="fold")
    for record in chosen:
        run = runs[record.product_id]
        outcome = "would run" if ended is None else "still running"
        if ended is not None and record.product_id in ended:
            final = ended[record.product_id]
            outcome = redrive_outcome(run, final) or outcome
            if final.error_code and final.execution_name == run.execution_name:
                outcome += f" {final.error_code.value}"
        colour = "green" if outcome.startswith("COMPLETED") else "yellow" if ended is None else "red"
        was = (
            f"PROCESSING since {record.updated_at}"
            if record.status == Status.PROCESSING
            else f"{record.error_code.value if record.error_code else ''}: {record.error_message or ''}"
        )
        table.add_row(
            record.product_id,
            was[:120],
            f"#{run.redrive_count} {run.execution_name}",
            f"[{colour}]{outcome}[/]",
        )
    return table


def redrive(args: argparse.Namespace, deployment: Deployment, console: Console) -> int:
    if args.stuck:
        run_timeout_s = run_timeout_of(deployment, args.run_timeout)
        chosen = stuck_records(deployment, run_timeout_s, args.product or [])
        console.print(f"{len(chosen)} record(s) stuck PROCESSING (run bound {run_timeout_s} s)")
    else:
        codes = [ErrorCode(code) for code in args.code] if args.code else list(DEFAULT_CODES)
        since = since_timestamp(args.since) if args.since else None
        chosen = failed_records(deployment, codes, since, args.product or [])
        console.print(f"{len(chosen)} FAILED record(s) with {', '.join(code.value for code in codes)}")
    runs = {record.product_id: WorkflowInput.redrive_of(record) for record in chosen}
    if not chosen or args.dry_run:
        console.print(redrive_table(chosen, runs, None))
        return 0
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console) as progress:
        sent = progress.add_task("Queued for admission", total=len(runs))
        send_redrives(deployment, list(runs.values()), lambda: progress.advance(sent))
        done = progress.add_task("Redrives ended", total=len(runs))
        ended = wait_for_redrives(
            deployment, runs, args.timeout, lambda n: progress.update(done, completed=n)
        )
    console.print(redrive_table(chosen, runs, ended))
    outcomes = [redrive_outcome(runs[p], ended[p]) if p in ended else None for p in runs]
    completed = sum(outcome == Status.COMPLETED.value for outcome in outcomes)
    console.print(
        f"redrive: {len(runs)} redriven, {completed} completed, "
        f"{sum(outcome == Status.FAILED.value for outcome in outcomes)} failed again, "
        f"{sum(bool(o and o.startswith('superseded')) for o in outcomes)} superseded, "
        f"{outcomes.count(None)} still running"
    )
    return 0 if outcomes.count(None) == 0 else 1


def add_parser(
    subparsers: Any, add_target_arguments: Callable[[argparse.ArgumentParser], None]
) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "redrive",
        help="re-run FAILED products whose cause may have passed, or (--stuck) stuck PROCESSING ones",
    )
    parser.add_argument(
        "--code",
        action="append",
        choices=[code.value for code in ErrorCode],
        metavar="CODE",
        help="redrive records failed with CODE (repeatable; default: "
        + ", ".join(code.value for code in DEFAULT_CODES)
        + ")",
    )
    parser.add_argument("--since", help="only records that failed at or after this ISO 8601 time (UTC)")
    parser.add_argument(
        "--stuck",
        action="store_true",
        help="re-run records PROCESSING longer than the run bound (RunTimeoutSeconds) instead of FAILED ones",
    )
    parser.add_argument(
        "--run-timeout",
        type=int,
        metavar="SECONDS",
        help="the run bound for --stuck (default: the stack's RunTimeoutSeconds output)",
    )
    parser.add_argument("--product", action="append", metavar="ID", help="only this product (repeatable)")
    parser.add_argument("--dry-run", action="store_true", help="list what would be redriven; send nothing")
    parser.add_argument("--timeout", type=float, default=600, help="seconds to wait for the redrives")
    add_target_arguments(parser)
    return parser
