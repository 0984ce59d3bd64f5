"""RecordFailure: the FAILED record of a run, written conditionally and announced.

The write is conditional (``ResultsTable.write_final``), so a run that a newer upload overtook
leaves the newer record alone, and a run whose SaveResult wrote COMPLETED before it failed (a
PutEvents error, a timeout after the write) keeps that record, reviewed or not: RecordFailure then
reports ``completed`` and publishes what the write left in the outbox. A caught Step Functions
error becomes an ErrorCode and a short message for people, read from the error's name and
message, never from its payload.
"""

from __future__ import annotations

import hashlib
import json
from typing import TYPE_CHECKING

from describer_aws.product_events import ProductEvents, publish_committed
from describer_aws.results_table import ResultsTable
from describer_rules.catalogue import GENERIC_CATEGORY, Catalogue
from describer_rules.contracts import ErrorCode, S3ObjectRef, Status
from describer_rules.errors import InvalidInput, error_classes, split_coded_message
from describer_steps.prepare import SourceObject, identify_product
from describer_steps.states import (
    CaughtError,
    FailureInput,
    FailureOutput,
    ProductIdentity,
    WorkflowInput,
)

if TYPE_CHECKING:  # the stubs are a dev dependency; the Lambdas never import them
    from mypy_boto3_s3 import S3Client


ERROR_MESSAGE_LIMIT = 300
# The product id of a failure whose key names no product (see unidentified_product).
UNIDENTIFIED_PRODUCT_PREFIX = "unidentified-"


# Error name -> code, for causes whose message lost the "CODE: " prefix.
_CODE_BY_ERROR_NAME = {name: cls.default_code for name, cls in error_classes().items()}


def classify_error(caught: CaughtError) -> tuple[ErrorCode, str]:
    """(code, message) for a caught error; the message is the error's own text, never its input."""
    message = caught.cause
    try:
        decoded = json.loads(caught.cause)
    except ValueError:
        decoded = None
    if isinstance(decoded, dict) and "errorMessage" in decoded:
        message = str(decoded["errorMessage"])
    code, detail = split_coded_message(message)
    if code is not None:
        return code, detail[:ERROR_MESSAGE_LIMIT]
    # Not one of ours: keep the first line only (a validation error's later lines quote input values).
    first_line = detail.splitlines()[0] if detail else ""
    code = _CODE_BY_ERROR_NAME.get(caught.error, ErrorCode.INTERNAL_ERROR)
    return code, f"{caught.error}: {first_line}"[:ERROR_MESSAGE_LIMIT]


def failed_product(
    request: FailureInput, s3_client: S3Client, catalogue: Catalogue, key_prefixes: str | tuple[str, ...]
) -> ProductIdentity:
    """The product the failed run was about; re-derived as Prepare does when Prepare itself failed.

    Object metadata is immutable per version, so the same version yields the same identity. Without
    the object, the key alone names the product; without a usable key, a stand-in identity does, so
    that every upload still ends in a record.
    """
    if request.state.product is not None:
        return request.state.product
    try:
        source = SourceObject.locate(s3_client, request.workflow)
    except InvalidInput:
        source = None
    return product_or_stand_in(source, request.workflow, key_prefixes, catalogue)


def product_or_stand_in(
    source: SourceObject | None,
    workflow: WorkflowInput,
    key_prefixes: str | tuple[str, ...],
    catalogue: Catalogue,
) -> ProductIdentity:
    """The product an object names, or the stand-in when its key names none (``unidentified_product``)."""
    try:
        return identify_product(source, workflow, key_prefixes, catalogue)
    except InvalidInput:
        return unidentified_product(workflow)


def unidentified_product(workflow: WorkflowInput) -> ProductIdentity:
    """A stand-in for an upload whose key names no product: ``unidentified-<digest of bucket/key>``.

    The digest is of the key as the event carried it, so every event for that upload finds the same
    record, and operators find it by status like any other failure.
    """
    digest = hashlib.sha256(f"{workflow.bucket}/{workflow.key}".encode()).hexdigest()[:20]
    return ProductIdentity(
        product_id=f"{UNIDENTIFIED_PRODUCT_PREFIX}{digest}",
        category=GENERIC_CATEGORY,
        source=S3ObjectRef(bucket=workflow.bucket, key=workflow.key, version_id=workflow.version_id),
        order_token=workflow.order_token,
    )


def record_failure(
    request: FailureInput,
    s3_client: S3Client,
    table: ResultsTable,
    events: ProductEvents,
    catalogue: Catalogue,
    key_prefixes: str | tuple[str, ...],
) -> FailureOutput:
    code, message = classify_error(request.state.error)
    return write_failure(request, code, message, s3_client, table, events, catalogue, key_prefixes)


def write_failure(
    request: FailureInput,
    code: ErrorCode,
    message: str,
    s3_client: S3Client,
    table: ResultsTable,
    events: ProductEvents,
    catalogue: Catalogue,
    key_prefixes: str | tuple[str, ...],
    repeated_counts: bool = True,
) -> FailureOutput:
    """The FAILED record under the final write, over the run's PROCESSING record only.

    ``recorded`` when this call wrote it, or (``repeated_counts``) an earlier attempt of the run
    did; the run's own COMPLETED record stays and makes ``completed``; a record a newer upload owns
    makes ``superseded``. Either way the record's pending events are published.
    """
    product = failed_product(request, s3_client, catalogue, key_prefixes)
    failed = product.record(Status.FAILED, request.execution_name, error_code=code, error_message=message)
    final = table.write_final(failed)
    if final.record is None:
        return FailureOutput(error_code=code, error_message=message, recorded=False, superseded=True)
    published = publish_committed(product.product_id, table, events)
    if final.record.status == Status.COMPLETED:
        return FailureOutput(
            error_code=code,
            error_message=message,
            recorded=False,
            completed=True,
            events_pending=not published,
        )
    return FailureOutput(
        error_code=code,
        error_message=message,
        recorded=final.written or repeated_counts,
        events_pending=not published,
    )
