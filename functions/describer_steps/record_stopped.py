"""RecordStopped: an execution that ended outside the workflow's Catch still ends its record FAILED.

Step Functions publishes "Step Functions Execution Status Change" events; a rule sends those with
status ABORTED (stopped by hand), TIMED_OUT or FAILED here. The record becomes FAILED with
EXECUTION_ABORTED, EXECUTION_TIMED_OUT or EXECUTION_FAILED under the same conditional write as every
other outcome, and only while the run's own record still says PROCESSING: a run that failed through
RecordFailure keeps its error code, a newer upload keeps its record. A record it writes is announced
on the product event bus like any other failure.

Should this path fail too (its dead-letter queue has an alarm), the record stays PROCESSING past
the run bound: ``is_stuck`` says so, and ``describer redrive --stuck`` and the backfill re-run it.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict

from describer_aws.product_events import ProductEvents
from describer_aws.results_table import ResultsTable
from describer_rules.catalogue import Catalogue
from describer_rules.contracts import ErrorCode, ProductRecord, RecordStage, Status
from describer_steps.record_failure import ERROR_MESSAGE_LIMIT, write_failure
from describer_steps.states import CaughtError, FailedState, FailureInput, FailureOutput, WorkflowInput

if TYPE_CHECKING:  # the stubs are a dev dependency; the Lambdas never import them
    from mypy_boto3_s3 import S3Client


# After a run's bound (RunTimeoutSeconds) Step Functions ends it TIMED_OUT and RecordStopped ends its
# record within seconds (Lambda's async retries take minutes): past this much more it is stuck.
STUCK_MARGIN_S = 900

STOPPED_CODES = {
    "ABORTED": ErrorCode.EXECUTION_ABORTED,
    "TIMED_OUT": ErrorCode.EXECUTION_TIMED_OUT,
    "FAILED": ErrorCode.EXECUTION_FAILED,
}


class ExecutionStatusChange(BaseModel):
    """The ``detail`` of a "Step Functions Execution Status Change" event (the fields used here)."""

    model_config = ConfigDict(extra="ignore")

    executionArn: str
    name: str
    status: str
    input: str | None = None  # left out of the event when larger than 248 KB
    error: str | None = None


def stopped_message(change: ExecutionStatusChange) -> str:
    """For people: how the run ended; the error's name only (a cause may quote the run's data)."""
    text = f"the execution ended {change.status} outside the workflow's own failure handling"
    return (text + (f" ({change.error})" if change.error else ""))[:ERROR_MESSAGE_LIMIT]


def record_stopped(
    change: ExecutionStatusChange,
    workflow: WorkflowInput,
    s3_client: S3Client,
    table: ResultsTable,
    events: ProductEvents,
    catalogue: Catalogue,
    key_prefixes: str | tuple[str, ...],
) -> FailureOutput:
    code = STOPPED_CODES[change.status]
    message = stopped_message(change)
    request = FailureInput(
        execution_name=change.name,
        workflow=workflow,
        state=FailedState(error=CaughtError(error=change.error or change.status)),
    )
    return write_failure(
        request, code, message, s3_client, table, events, catalogue, key_prefixes, repeated_counts=False
    )


def stuck_before(run_timeout_s: int, now: datetime | None = None) -> str:
    """The ``updated_at`` before which a PROCESSING record is stuck (``is_stuck``), in the records' format."""
    moment = (now or datetime.now(UTC)) - timedelta(seconds=run_timeout_s + STUCK_MARGIN_S)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def is_stuck(record: ProductRecord, run_timeout_s: int, now: datetime | None = None) -> bool:
    """PROCESSING for longer than any run may take, plus the margin RecordStopped needs to end it."""
    if record.stage == RecordStage.COPY_QUEUED:  # waits for a batch job, which may take a day
        return False
    return record.status == Status.PROCESSING and record.updated_at < stuck_before(run_timeout_s, now)
