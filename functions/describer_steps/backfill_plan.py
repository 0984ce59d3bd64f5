"""Backfill: one object of an existing catalogue becomes a DescribeProduct run, or nothing to do.

The backfill state machine's Distributed Map lists a prefix (or reads a CSV manifest) and hands each
key to ``plan_item``. It pins the object version with HeadObject (a listing names none), builds the
same ``WorkflowInput`` an upload event would, and decides:

- the product's record already holds this object version, COMPLETED, or FAILED for a reason a rerun
  cannot change (``PERMANENT_ERRORS``): skip, no run and no model call;
- it holds this version FAILED on a transient error (endpoint or Bedrock down): redrive it, as the
  next ``redrive_count``: a new execution name whose order token comes right after the failed run's,
  so its claim on the record wins;
- it holds this version PROCESSING for longer than any run may take (``record_stopped.is_stuck``:
  the run ended without a final write): redrive it the same way;
- otherwise: run it under the name admission gives an upload of this version, so two backfills of
  one prefix (or a redelivered item) start one execution, not two.

A key in a product folder (``keys.product_folder``) plans the folder's photo set, as a settled
upload would: the same listing, input and name for every photo of the folder, so the folder runs
once (the other items find it done, or its name taken).

The run itself is the DescribeProduct workflow (``states:startExecution.sync:2``): a backfilled
product goes through exactly the steps, checks and records of an uploaded one.
"""

from __future__ import annotations

from enum import StrEnum
from typing import TYPE_CHECKING

from pydantic import BaseModel, Field

from describer_aws.results_table import ResultsTable
from describer_rules.catalogue import Catalogue
from describer_rules.contracts import ErrorCode, ProductRecord, RecordStage, Status
from describer_rules.errors import InvalidInput
from describer_rules.keys import product_folder
from describer_steps.photo_sets import SettleRequest, list_folder, set_workflow
from describer_steps.prepare import SourceObject, known_category
from describer_steps.record_failure import product_or_stand_in
from describer_steps.record_stopped import is_stuck
from describer_steps.states import WorkflowInput, redrive_count_of

if TYPE_CHECKING:  # the stubs are a dev dependency; the Lambdas never import them
    from mypy_boto3_s3 import S3Client

# Failures that are facts about the object version: running it again would fail the same way.
PERMANENT_ERRORS = frozenset(
    {
        ErrorCode.INVALID_KEY,
        ErrorCode.OBJECT_NOT_FOUND,
        ErrorCode.NOT_AN_IMAGE,
        ErrorCode.IMAGE_TOO_LARGE,
        ErrorCode.IMAGE_TOO_MANY_PIXELS,
        ErrorCode.IMAGE_UNDECODABLE,
        ErrorCode.NO_VALID_IMAGE,
    }
)
# A version that failed transiently this many times (its first run and redrives) is left FAILED for
# an operator to look at.
MAX_ATTEMPTS = 5


class PlanInput(BaseModel):
    """One Distributed Map item: the key (from the listing or the manifest) and the backfill's input."""

    bucket: str
    key: str = Field(min_length=1)
    category: str | None = None


class ItemPlan(StrEnum):
    DESCRIBE = "DESCRIBE"
    RETRY = "RETRY"
    DONE = "DONE"
    GAVE_UP = "GAVE_UP"


class PlanOutput(BaseModel):
    start: bool = Field(description="True when the item needs a DescribeProduct run")
    plan: ItemPlan
    product_id: str
    execution_name: str
    workflow: WorkflowInput


def listed_workflow(s3_client: S3Client, request: PlanInput) -> tuple[WorkflowInput, SourceObject | None]:
    """The upload-shaped workflow input for a listed key, with the version HeadObject names."""
    pending = WorkflowInput(bucket=request.bucket, key=request.key, event_time="", category=request.category)
    try:
        source = SourceObject.locate(s3_client, pending)
    except InvalidInput:
        # Gone since the listing: the run records OBJECT_NOT_FOUND, as for an upload deleted early.
        return pending.model_copy(update={"event_time": "1970-01-01T00:00:00Z"}), None
    update = {"version_id": source.ref.version_id, "size": source.size, "event_time": source.last_modified}
    return pending.model_copy(update=update), source


def listed_photo_set(
    s3_client: S3Client, request: PlanInput, folder: str
) -> tuple[WorkflowInput, SourceObject | None]:
    """The run over a product folder's current photos, with its first photo (whose metadata counts)."""
    listing = list_folder(s3_client, request.bucket, folder)
    workflow = set_workflow(SettleRequest(bucket=request.bucket, folder=folder), listing)
    workflow = workflow.model_copy(update={"category": request.category})
    for photo in listing.photos:
        pinned = workflow.model_copy(
            update={"key": photo.key, "version_id": photo.version_id, "photos": None}
        )
        try:
            return workflow, SourceObject.locate(s3_client, pinned)
        except InvalidInput:
            continue
    return workflow, None


def _is_this_version(record: ProductRecord, workflow: WorkflowInput) -> bool:
    if workflow.photos is not None:  # a photo set: the listing's order token, before any redrive mark
        return (record.order_token or "").split("#r")[0] == workflow.order_token
    return (record.source_bucket, record.source_key, record.source_version) == (
        workflow.bucket,
        workflow.key,
        workflow.version_id or "null",
    )


def decide(
    record: ProductRecord | None, workflow: WorkflowInput, run_timeout_s: int | None = None
) -> tuple[ItemPlan, int]:
    """(plan, redrive count) for this object version, given the product's current record.

    ``run_timeout_s``: the run bound (template RunTimeoutSeconds); None never finds a record stuck.
    """
    if record is None or not _is_this_version(record, workflow):
        return ItemPlan.DESCRIBE, 0
    runs = redrive_count_of(record.order_token or "")
    if record.status == Status.COMPLETED:
        return ItemPlan.DONE, runs
    if record.status == Status.FAILED:
        if record.error_code in PERMANENT_ERRORS:
            return ItemPlan.DONE, runs
        if runs + 1 >= MAX_ATTEMPTS:
            return ItemPlan.GAVE_UP, runs
        return ItemPlan.RETRY, runs + 1
    if record.stage == RecordStage.COPY_QUEUED:
        # Its attributes are saved and its copy waits for a batch job: the batch pass finishes it.
        return ItemPlan.DONE, runs
    if run_timeout_s is not None and is_stuck(record, run_timeout_s):
        # Its run ended long ago without a final write: joining its name would start nothing.
        return (ItemPlan.GAVE_UP, runs) if runs + 1 >= MAX_ATTEMPTS else (ItemPlan.RETRY, runs + 1)
    # PROCESSING: a run of this version is under way; joining its name is safe.
    return ItemPlan.DESCRIBE, runs


def plan_item(
    request: PlanInput,
    s3_client: S3Client,
    table: ResultsTable,
    catalogue: Catalogue,
    prefixes: tuple[str, ...],
    run_timeout_s: int | None = None,
) -> PlanOutput:
    folder = product_folder(request.key, prefixes, known_category(catalogue))
    if folder is None:
        workflow, source = listed_workflow(s3_client, request)
    else:
        workflow, source = listed_photo_set(s3_client, request, folder)
    product = product_or_stand_in(source, workflow, prefixes, catalogue)
    plan, redrive_count = decide(table.get(product.product_id), workflow, run_timeout_s)
    workflow = workflow.model_copy(update={"redrive_count": redrive_count})
    return PlanOutput(
        start=plan in (ItemPlan.DESCRIBE, ItemPlan.RETRY),
        plan=plan,
        product_id=product.product_id,
        execution_name=workflow.execution_name,
        workflow=workflow,
    )
