"""Pydantic models for the workflow's input and for each state's input and output.

The shapes here are what ``statemachine/describe_product.asl.json`` passes between states; the
ASL's ``Parameters`` blocks build the inputs, the handlers return the outputs.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from describer_core.contracts import AttributeAnswer, ErrorCode, ProductRecord, Question, S3ObjectRef, Status
from describer_core.keys import execution_name
from describer_core.records import utc_now

# S3 sequencers only compare once left-padded to one length (S3 event notification docs).
_SEQUENCER_WIDTH = 32


class _S3Bucket(BaseModel):
    name: str


class _S3Object(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    key: str
    size: int | None = None
    version_id: str | None = Field(default=None, alias="version-id")
    sequencer: str = ""


class _ObjectCreatedDetail(BaseModel):
    bucket: _S3Bucket
    object: _S3Object


class ObjectCreatedEvent(BaseModel):
    """The EventBridge event S3 sends for "Object Created" (the fields the pipeline uses)."""

    model_config = ConfigDict(populate_by_name=True)

    id: str
    source: Literal["aws.s3"]
    detail_type: Literal["Object Created"] = Field(alias="detail-type")
    time: str
    detail: _ObjectCreatedDetail


class WorkflowInput(BaseModel):
    """The execution input: one uploaded object version, as the event named it."""

    bucket: str
    key: str = Field(description="The key exactly as in the event (possibly URL-encoded)")
    version_id: str | None = None
    size: int | None = None
    event_time: str
    sequencer: str = ""
    event_id: str | None = None

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
        """Orders uploads of one product: event time, then S3's sequencer (same key) as tie-break."""
        return f"{self.event_time}#{self.sequencer.rjust(_SEQUENCER_WIDTH, '0')}"

    @property
    def execution_name(self) -> str:
        return execution_name(self.bucket, self.key, self.version_id or self.sequencer)


class ProductIdentity(BaseModel):
    product_id: str
    category: str = Field(description="The catalogue category whose questions are asked")
    source: S3ObjectRef = Field(description="The decoded key and the exact version read")
    order_token: str

    def record(self, status: Status, execution_name: str, **outcome: Any) -> ProductRecord:
        """This product's record as the run ``execution_name`` writes it, stamped now."""
        now = utc_now()
        return ProductRecord(
            product_id=self.product_id,
            category=self.category,
            status=status,
            source_bucket=self.source.bucket,
            source_key=self.source.key,
            source_version=self.source.version_id or "null",
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
    prepare_ms: int = 0
    map_concurrency: int = Field(ge=1, description="The AskAttributes Map's MaxConcurrencyPath reads it")


class AskInput(BaseModel):
    image: S3ObjectRef
    category: str
    question: Question


class AskOutput(BaseModel):
    answer: AttributeAnswer
    endpoint: str
    endpoint_ms: int


class MergeInput(BaseModel):
    answers: list[AskOutput]


class MergedAttributes(BaseModel):
    attributes: dict[str, str] = Field(description="Attribute -> value, one JSON object")
    unknown_attributes: list[str] = Field(description="Attributes whose value is outside the vocabulary")
    endpoint: str | None = None
    endpoint_ms: int = 0

    @property
    def unknown_rate(self) -> float:
        """Share of the answered attributes whose value is outside the vocabulary."""
        answered = set(self.attributes) | set(self.unknown_attributes)
        return len(self.unknown_attributes) / len(answered) if answered else 0.0


class DescribeInput(BaseModel):
    product: ProductIdentity
    attributes: dict[str, str]


class DescriptionResult(BaseModel):
    text: str
    model_id: str
    input_tokens: int
    output_tokens: int
    attempts: int
    description_ms: int


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
