"""Pydantic models for the workflow's input and for each state's input and output.

The shapes here are what ``statemachine/describe_product.asl.yaml`` passes between states; the
ASL's ``Parameters`` blocks build the inputs, the handlers return the outputs.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from describer_aws.results_table import sortable_utc, utc_now
from describer_rules.contracts import (
    MAX_QUESTIONS_PER_REQUEST,
    Alternative,
    AttributeAnswer,
    CategorySource,
    ErrorCode,
    ImageStatus,
    LocaleContent,
    ProductImage,
    ProductRecord,
    Question,
    S3ObjectRef,
    Status,
    TokenUsage,
)
from describer_rules.keys import execution_name, photo_set_execution_name

# S3 sequencers only compare once left-padded to one length (S3 event notification docs).
_SEQUENCER_WIDTH = 32
# An order token's redrive part: "#r0001" for the first redrive of an upload.
_REDRIVE_MARK = "#r"
# S3's deletion-type of an "Object Deleted" event that removed a version or delete marker for good.
PERMANENTLY_DELETED = "Permanently Deleted"
# How a product folder's run is named (``keys.photo_set_execution_name``).
PHOTO_SET_RUN = re.compile(r"(^|-)set-[0-9a-f]{40}$")


def redrive_count_of(order_token: str) -> int:
    """How many times the run that wrote ``order_token`` had been redriven (0: the upload's own run)."""
    _, mark, count = order_token.rpartition(_REDRIVE_MARK)
    return int(count) if mark and count.isdigit() else 0


class _S3Bucket(BaseModel):
    name: str


class _S3Object(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    key: str
    size: int | None = None
    version_id: str | None = Field(default=None, alias="version-id")
    sequencer: str = ""


class _ObjectCreatedDetail(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    bucket: _S3Bucket
    object: _S3Object
    # "Object Deleted" only: "Permanently Deleted" (a version or delete marker removed for good, gone
    # from every listing) or "Delete Marker Created".
    deletion_type: str | None = Field(default=None, alias="deletion-type")


class ObjectCreatedEvent(BaseModel):
    """The EventBridge event S3 sends for "Object Created" or "Object Deleted" (the fields used)."""

    model_config = ConfigDict(populate_by_name=True)

    id: str
    source: Literal["aws.s3"]
    detail_type: Literal["Object Created", "Object Deleted"] = Field(alias="detail-type")
    time: str
    detail: _ObjectCreatedDetail

    @property
    def deleted(self) -> bool:
        return self.detail_type == "Object Deleted"

    @property
    def removed_for_good(self) -> bool:
        """A version or delete marker deleted for good: the change leaves no trace in a listing."""
        return self.deleted and self.detail.deletion_type == PERMANENTLY_DELETED


class PhotoVersion(BaseModel):
    """One photo of a product folder as the settled listing saw it (its newest version)."""

    key: str
    version_id: str | None = None
    size: int | None = None


class WorkflowInput(BaseModel):
    """The execution input: one uploaded object version, as the event named it."""

    bucket: str
    key: str = Field(description="The key exactly as in the event (possibly URL-encoded)")
    version_id: str | None = None
    size: int | None = None
    event_time: str
    sequencer: str = ""
    event_id: str | None = None
    redrive_count: int = Field(default=0, ge=0, description="0: the upload's own run; n: its n-th redrive")
    # A backfill's run: the category its operator named (object metadata still wins).
    category: str | None = None
    # A product folder's run (``key`` is the folder): its photo set once settled, listed in key
    # order; empty when every photo was deleted. ``event_time`` is then the listing's newest change
    # and ``sequencer`` its count of versions and delete markers, so a later set orders later.
    photos: list[PhotoVersion] | None = None

    @classmethod
    def from_event(cls, event: ObjectCreatedEvent) -> WorkflowInput:
        s3_object = event.detail.object
        return cls(
            bucket=event.detail.bucket.name,
            key=s3_object.key,
            version_id=s3_object.version_id,
            size=s3_object.size,
            event_time=event.time,
            sequencer=s3_object.sequencer,
            event_id=event.id,
        )

    @property
    def order_token(self) -> str:
        """Orders uploads of one product: event time (fixed-width UTC), then S3's sequencer (same key)
        as tie-break; a redrive of the same upload comes right after its earlier runs."""
        token = f"{sortable_utc(self.event_time)}#{self.sequencer.rjust(_SEQUENCER_WIDTH, '0')}"
        return f"{token}{_REDRIVE_MARK}{self.redrive_count:04d}" if self.redrive_count else token

    @property
    def execution_name(self) -> str:
        if self.photos is not None:
            listed = [(photo.key, photo.version_id or "null") for photo in self.photos]
            return photo_set_execution_name(self.bucket, self.key, listed, self.order_token)
        return execution_name(self.bucket, self.key, self.version_id or self.sequencer, self.redrive_count)

    @classmethod
    def redrive_of(cls, record: ProductRecord) -> WorkflowInput:
        """The next redrive of the upload ``record`` holds: same object version, same event time and
        sequencer (read back from its order token), one more redrive."""
        if record.order_token is None:
            raise ValueError(f"record {record.product_id} has no order token to redrive from")
        event_time, _, rest = record.order_token.partition("#")
        sequencer = rest.split("#", 1)[0]
        version = None if record.source_version == "null" else record.source_version
        if PHOTO_SET_RUN.search(record.execution_name or ""):  # a product folder: the same photo set
            key = record.source_key
            folder = key if key.endswith("/") else key.rsplit("/", 1)[0] + "/"
            photos = [PhotoVersion(key=i.key, version_id=i.version, size=i.bytes) for i in record.images]
            return cls(
                bucket=record.source_bucket,
                key=folder,
                event_time=event_time,
                sequencer=sequencer,
                photos=photos,
                redrive_count=redrive_count_of(record.order_token) + 1,
            )
        return cls(
            bucket=record.source_bucket,
            key=record.source_key,
            version_id=version,
            event_time=event_time,
            sequencer=sequencer,
            redrive_count=redrive_count_of(record.order_token) + 1,
        )


class RedriveMessage(BaseModel):
    """An admission-queue message from ``describer redrive``: start this run, as an upload event would."""

    redrive: WorkflowInput


class ProductIdentity(BaseModel):
    product_id: str
    category: str = Field(description="The catalogue category whose questions are asked")
    category_source: CategorySource | None = Field(
        default=None, description="key, metadata or model; None while the model is still to be asked"
    )
    category_confidence: float | None = Field(
        default=None, ge=0.0, le=1.0, description="Calibrated probability of a category the model chose"
    )
    category_review: bool = Field(
        default=False, description="The model's category is uncertain (below the review threshold)"
    )
    source: S3ObjectRef = Field(description="The decoded key and the exact version read")
    order_token: str
    # Several photos: every photo listed, used or skipped; ``source`` is then the first used one.
    images: list[ProductImage] = Field(default_factory=list)
    photos: list[S3ObjectRef] = Field(default_factory=list, description="The used photos, source first")

    def record(self, status: Status, execution_name: str, **outcome: Any) -> ProductRecord:
        """This product's record as the run ``execution_name`` writes it, stamped now."""
        now = utc_now()
        used = [image for image in self.images if image.status == ImageStatus.USED]
        return ProductRecord(
            product_id=self.product_id,
            category=self.category,
            category_source=self.category_source,
            category_confidence=self.category_confidence,
            status=status,
            source_bucket=self.source.bucket,
            source_key=self.source.key,
            source_version=self.source.version_id or "null",
            images=self.images,
            primary_image=used[0].key if used else None,
            execution_name=execution_name,
            order_token=self.order_token,
            created_at=now,
            updated_at=now,
            **outcome,
        )


class PrepareInput(BaseModel):
    workflow: WorkflowInput
    execution_name: str


class PrepareOutput(BaseModel):
    claimed: bool = Field(description="False when a newer upload of the product already owns the record")
    product: ProductIdentity
    questions: list[Question] = Field(default_factory=list)
    question_groups: list[list[Question]] = Field(
        default_factory=list,
        description="The questions in groups of at most questions_per_call: one call each",
    )
    prepare_ms: int = 0
    map_concurrency: int = Field(ge=1, description="The AskAttributes Map's MaxConcurrencyPath reads it")
    failure: CaughtError | None = Field(
        default=None, description="Claimed, but nothing to ask (no usable photo): RecordFailure's error"
    )


class AskInput(BaseModel):
    """One Map item: a group of questions about one product's photos, asked in one endpoint call."""

    image: S3ObjectRef
    images: list[S3ObjectRef] = Field(
        default_factory=list, description="Every used photo, ``image`` first; empty: ``image`` alone"
    )
    category: str
    questions: list[Question] = Field(min_length=1, max_length=MAX_QUESTIONS_PER_REQUEST)

    @model_validator(mode="before")
    @classmethod
    def _one_question(cls, data: Any) -> Any:
        # Executions started before groups existed pass one "question" per item.
        if isinstance(data, dict) and "question" in data and "questions" not in data:
            data = {**data, "questions": [data["question"]]}
        return data


class AskOutput(BaseModel):
    answers: list[AttributeAnswer]
    endpoint: str
    endpoint_ms: int
    started_ms: int = Field(description="When the call started, ms since the epoch")


class MergeInput(BaseModel):
    answers: list[AskOutput]


class MergedAttributes(BaseModel):
    attributes: dict[str, str] = Field(
        description="Attribute -> value, one JSON object: scored answers only (each has a confidence)"
    )
    unverified_attributes: dict[str, str] = Field(
        default_factory=dict,
        description="Attribute -> generated value without a confidence: never in the copy",
    )
    unknown_attributes: list[str] = Field(description="Attributes whose value is outside the vocabulary")
    confidence: dict[str, float] = Field(
        default_factory=dict, description="Attribute -> calibrated confidence of its value (3 decimals)"
    )
    alternatives: dict[str, list[Alternative]] = Field(
        default_factory=dict, description="Attribute -> runner-up values (the reviewer's one-click choices)"
    )
    needs_review: bool = False
    photos_agreed: dict[str, int] = Field(
        default_factory=dict, description="Several photos: attribute -> photos that gave the value alone"
    )
    endpoint: str | None = None
    endpoint_ms: int = Field(default=0, description="The endpoint calls' durations added up")
    endpoint_calls: int = Field(default=0, ge=0, description="How many endpoint calls (question groups)")
    endpoint_wall_ms: int = Field(default=0, description="First call's start to last call's end")

    @property
    def unknown_rate(self) -> float:
        """Share of the answered attributes whose value is outside the vocabulary."""
        answered = set(self.attributes) | set(self.unverified_attributes) | set(self.unknown_attributes)
        return len(self.unknown_attributes) / len(answered) if answered else 0.0


class DescribeInput(BaseModel):
    product: ProductIdentity
    attributes: dict[str, str]
    confidence: dict[str, float] = Field(
        default_factory=dict, description="Attribute -> confidence; below the review threshold: left out"
    )


class DescriptionResult(BaseModel):
    text: str = Field(description="The default locale's description")
    model_id: str
    input_tokens: int = Field(description="All locales and attempts")
    output_tokens: int
    attempts: int = Field(description="The most any locale needed")
    description_ms: int
    content: dict[str, LocaleContent] = Field(default_factory=dict)
    token_usage: dict[str, TokenUsage] = Field(default_factory=dict)


class SaveInput(BaseModel):
    execution_name: str
    execution_start: str
    product: ProductIdentity
    prepare_ms: int = 0
    merged: MergedAttributes
    description: DescriptionResult


class SaveOutput(BaseModel):
    product_id: str
    saved: bool = Field(description="False when a newer upload took the record over meanwhile")
    written: bool = Field(default=True, description="False when an earlier attempt of the run had saved it")
    events_pending: bool = Field(
        default=False, description="The event waits in the record's outbox (PublishEvents sends it)"
    )


class CaughtError(BaseModel):
    """What a Catch with ``ResultPath: $.error`` leaves in the state."""

    model_config = ConfigDict(populate_by_name=True)

    error: str = Field(alias="Error")
    cause: str = Field(default="", alias="Cause")


class FailedState(BaseModel):
    """The state data at the failing step: ``product`` is there once Prepare succeeded."""

    error: CaughtError
    product: ProductIdentity | None = None


class FailureInput(BaseModel):
    execution_name: str
    workflow: WorkflowInput
    state: FailedState


class FailureOutput(BaseModel):
    error_code: ErrorCode
    error_message: str
    recorded: bool = Field(description="False when no record could be, or should be, written")
    completed: bool = Field(
        default=False, description="The run's record was already COMPLETED: the run succeeded after all"
    )
    superseded: bool = Field(
        default=False, description="A newer upload owns the record: the run had nothing to do"
    )
    events_pending: bool = Field(
        default=False, description="The event waits in the record's outbox (PublishEvents sends it)"
    )


PrepareOutput.model_rebuild()
