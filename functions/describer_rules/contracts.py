"""Contracts that cross a process boundary: the DynamoDB record and the endpoint's wire format.

Field names here are relied on by downstream readers and by the tests; change them only with a
version bump and a note in docs/record.md.
"""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, Field

MAX_QUESTIONS_PER_REQUEST = 16
# The most photos of one product a request (and so ``MaxPhotosPerProduct``) may name.
MAX_PHOTOS_PER_REQUEST = 20
# SageMaker real-time endpoints accept at most 6 MB a request (InvokeEndpoint's body limit).
MAX_REQUEST_BYTES = 6 * 1024 * 1024


class Status(StrEnum):
    PROCESSING = "PROCESSING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"


class ErrorCode(StrEnum):
    """Why a product failed. The code is stable; the message is for people."""

    INVALID_KEY = "INVALID_KEY"
    OBJECT_NOT_FOUND = "OBJECT_NOT_FOUND"
    NOT_AN_IMAGE = "NOT_AN_IMAGE"
    IMAGE_TOO_LARGE = "IMAGE_TOO_LARGE"
    IMAGE_TOO_MANY_PIXELS = "IMAGE_TOO_MANY_PIXELS"
    IMAGE_UNDECODABLE = "IMAGE_UNDECODABLE"
    # Several photos of one product: none of them usable (each photo's reason is in ``images``).
    NO_VALID_IMAGE = "NO_VALID_IMAGE"
    ENDPOINT_UNAVAILABLE = "ENDPOINT_UNAVAILABLE"
    ENDPOINT_ERROR = "ENDPOINT_ERROR"
    DESCRIPTION_UNAVAILABLE = "DESCRIPTION_UNAVAILABLE"
    DESCRIPTION_INVALID = "DESCRIPTION_INVALID"
    STYLE_GUIDE_INVALID = "STYLE_GUIDE_INVALID"
    INTERNAL_ERROR = "INTERNAL_ERROR"
    # The execution stopped outside the workflow's own Catch (by hand, a timeout, a failing
    # RecordFailure): recorded from Step Functions' execution status-change event.
    EXECUTION_ABORTED = "EXECUTION_ABORTED"
    EXECUTION_TIMED_OUT = "EXECUTION_TIMED_OUT"
    EXECUTION_FAILED = "EXECUTION_FAILED"


class CategorySource(StrEnum):
    """Where a product's category came from (the record's ``category_source``)."""

    KEY = "key"  # the key's folder: incoming/<Category>/...
    METADATA = "metadata"  # the object's ``category`` metadata
    MODEL = "model"  # asked of the model: closed-vocabulary scoring over the catalogue's categories


class ImageStatus(StrEnum):
    USED = "used"
    SKIPPED = "skipped"


class PhotoSkipped(StrEnum):
    """Why a product folder's photo was skipped though it may be a fine image (beside the image codes)."""

    TOO_MANY_PHOTOS = "TOO_MANY_PHOTOS"  # past MaxPhotosPerProduct, in key order
    NESTED_FOLDER = "NESTED_FOLDER"  # in a sub-folder of the product folder


class ReviewStatus(StrEnum):
    ACCEPTED = "accepted"
    CORRECTED = "corrected"
    REJECTED = "rejected"


class S3ObjectRef(BaseModel):
    bucket: str
    key: str
    version_id: str | None = None


class Question(BaseModel):
    attribute: str
    question: str


class Alternative(BaseModel):
    """A runner-up value of a scored answer and its probability."""

    value: str
    confidence: float = Field(ge=0.0, le=1.0)


class AttributeAnswer(BaseModel):
    attribute: str
    value: str
    raw: str = Field(description="The model's answer as generated, or the scored answer text it chose")
    known: bool = Field(description="False when the value is outside the catalogue's vocabulary")
    confidence: float | None = Field(
        default=None,
        ge=0.0,
        le=1.0,
        description="Calibrated probability of the value among the vocabulary; None for a generated answer",
    )
    alternatives: list[Alternative] = Field(
        default_factory=list, description="The runner-up values, most probable first"
    )
    photos_agreed: int | None = Field(
        default=None, ge=0, description="Of several photos: how many gave this value on their own"
    )


# --- Endpoint wire format (SageMaker InvokeEndpoint, application/json) -----------------------------


class ReferenceRequest(BaseModel):
    """The reference solution's request: one question, the image inline."""

    prompt: str = Field(min_length=1)
    image: str = Field(min_length=1, description="Base64-encoded image bytes")


class ProductRequest(BaseModel):
    """Several questions about one product's photos, read from S3 by the endpoint.

    ``image_s3`` is the product's (first) photo; ``images_s3`` its other photos, if any: every
    answer is then one value fused from all of them.
    """

    image_s3: S3ObjectRef
    images_s3: list[S3ObjectRef] = Field(
        default_factory=list,
        max_length=MAX_PHOTOS_PER_REQUEST - 1,
        description="The product's other photos; the answers are fused from every photo",
    )
    questions: list[Question] = Field(min_length=1, max_length=MAX_QUESTIONS_PER_REQUEST)
    category: str | None = None

    @property
    def photos(self) -> list[S3ObjectRef]:
        return [self.image_s3, *self.images_s3]


class ProductResponse(BaseModel):
    answers: list[AttributeAnswer]
    image_digest: str = Field(description="sha256 of the (first) image's bytes the answers are about")
    image_digests: list[str] = Field(
        default_factory=list, description="sha256 of every photo's bytes, in request order (several photos)"
    )
    model_id: str


# --- The DynamoDB record ------------------------------------------------------------------------


class LocaleContent(BaseModel):
    """The channel-ready copy of one product in one locale (limits: ``describer_rules.content_rules``)."""

    title: str
    description: str
    bullets: list[str]
    keywords: list[str]
    meta_description: str


class TokenUsage(BaseModel):
    input: int = 0
    output: int = 0


class PurchaseMode(StrEnum):
    """How Bedrock tokens were bought: an on-demand call, or a record of a batch inference job."""

    ON_DEMAND = "on_demand"
    BATCH = "batch"


class RecordStage(StrEnum):
    """Where a PROCESSING record's run is, when it waits outside its execution (the record's ``stage``)."""

    COPY_QUEUED = "COPY_QUEUED"  # attributes saved; the copy waits for a Bedrock batch inference job


class CostLedger(BaseModel):
    """What one product's run used, in each service's billing unit (the record's ``cost``).

    Metered: ``endpoint_seconds`` (the endpoint calls' durations, MergeAttributes' ``endpoint_ms``)
    and ``bedrock`` (the token counts Bedrock returned, by how they were bought). Derived from the
    run's path, named in ``derived``: ``state_transitions`` (the states the run entered; retries
    not counted) and ``lambda_invocations`` / ``lambda_gb_seconds`` (each step's duration times its
    function's memory). ``describer.cost`` prices a ledger with ``describer/prices.json``.
    """

    endpoint_seconds: float = Field(default=0.0, ge=0.0, description="Metered: endpoint time of the calls")
    endpoint_calls: int = Field(default=0, ge=0)
    bedrock: dict[PurchaseMode, TokenUsage] = Field(
        default_factory=dict,
        description="Metered: Bedrock tokens, all locales and attempts, by purchase mode",
    )
    bedrock_fallbacks: int = Field(
        default=0,
        ge=0,
        description="Batch copy only: locales whose batch output was unusable, written on demand",
    )
    state_transitions: int = Field(
        default=0, ge=0, description="Derived: the Standard workflow states entered"
    )
    express_executions: int = Field(
        default=0, ge=0, description="Derived: Express executions the run took (the batch backfill's child)"
    )
    express_gb_seconds: float = Field(default=0.0, ge=0.0, description="Derived: their duration x 64 MB")
    lambda_invocations: int = Field(default=0, ge=0, description="Derived: the run's Lambda invocations")
    lambda_gb_seconds: float = Field(default=0.0, ge=0.0, description="Derived: duration x memory, added up")
    derived: list[str] = Field(
        default_factory=list, description="The fields above estimated from the run's path rather than metered"
    )


class ModelIds(BaseModel):
    attributes: str | None = Field(default=None, description="SageMaker endpoint that read the photo")
    description: str | None = Field(default=None, description="Bedrock model that wrote the text")


class ProductImage(BaseModel):
    """One photo of a product, used or skipped (the record's ``images``)."""

    key: str
    version: str | None = None
    bytes: int | None = Field(default=None, ge=0)
    width: int | None = Field(default=None, ge=0)
    height: int | None = Field(default=None, ge=0)
    status: ImageStatus
    reason: str | None = Field(
        default=None,
        description="Why a skipped photo was skipped: 'CODE: detail', an image ErrorCode or a PhotoSkipped",
    )


class ReviewChange(BaseModel):
    """One change a reviewer made: ``field`` is ``attributes.<Attr>`` or ``content.<locale>.<part>``."""

    field: str
    before: str | list[str] | None = None
    after: str | list[str] | None = None


class Review(BaseModel):
    """What a person decided about a record (the record's ``review``)."""

    status: ReviewStatus
    reviewer: str = Field(description="The reviewer's identity: STS GetCallerIdentity's ARN")
    reviewed_at: str
    changes: list[ReviewChange] = Field(default_factory=list)
    reason: str | None = Field(default=None, description="Why it was rejected")
    review_id: str | None = Field(
        default=None, description="The desk's id of this review: a resubmitted form carries the same one"
    )


class ProductRecord(BaseModel):
    """One item of the results table, keyed by ``product_id``."""

    product_id: str
    category: str
    category_source: CategorySource | None = Field(default=None, description="Where the category came from")
    category_confidence: float | None = Field(
        default=None, ge=0.0, le=1.0, description="Calibrated probability of a category the model chose"
    )
    status: Status
    source_bucket: str
    source_key: str
    source_version: str
    images: list[ProductImage] = Field(
        default_factory=list, description="Every photo of the product, used or skipped with a reason"
    )
    primary_image: str | None = Field(default=None, description="Key of the photo shown first")
    attributes: dict[str, str] = Field(
        default_factory=dict,
        description="Attribute -> value the model scored: each has a calibrated confidence in `confidence`",
    )
    unverified_attributes: dict[str, str] = Field(
        default_factory=dict,
        description="Attribute -> value the model generated without a calibrated confidence (or outside "
        "the vocabulary): kept for review, never in the copy",
    )
    photos_agreed: dict[str, int] = Field(
        default_factory=dict,
        description="Attribute -> how many used photos gave the fused value on their own",
    )
    unknown_attributes: list[str] = Field(
        default_factory=list, description="Attributes whose value is outside the catalogue vocabulary"
    )
    confidence: dict[str, float] = Field(
        default_factory=dict, description="Attribute -> calibrated probability of its value (3 decimals)"
    )
    alternatives: dict[str, list[Alternative]] = Field(
        default_factory=dict, description="Attribute -> the runner-up values and their probabilities"
    )
    needs_review: bool = Field(
        default=False,
        description="True when an attribute is unknown, unverified or below the review threshold",
    )
    description: str | None = Field(default=None, description="The default locale's content description")
    content: dict[str, LocaleContent] = Field(
        default_factory=dict, description="BCP 47 locale -> the copy in that locale (COMPLETED only)"
    )
    token_usage: dict[str, TokenUsage] = Field(
        default_factory=dict, description="BCP 47 locale -> Bedrock tokens spent on it, retries included"
    )
    error_code: ErrorCode | None = None
    error_message: str | None = None
    model_ids: ModelIds = Field(default_factory=ModelIds)
    timings_ms: dict[str, int] = Field(default_factory=dict)
    execution_name: str | None = None
    order_token: str | None = Field(
        default=None, description="Orders uploads of one product: event time, then S3 sequencer"
    )
    stage: RecordStage | None = Field(
        default=None, description="PROCESSING only: where a run that waits outside its execution is"
    )
    cost: CostLedger | None = Field(
        default=None, description="The metered and derived units the run used (records written before: none)"
    )
    # "review" is taken: it is the sparse by-review index's queue marker (PENDING) on deployed tables.
    review_decision: Review | None = Field(default=None, description="The last review of this record")
    record_version: int = Field(
        default=0,
        ge=0,
        description="Counts the record's writes: 1 for the first; 0 on a record written before",
    )
    created_at: str
    updated_at: str


# --- Events on the stack's event bus (EventBridge) ---------------------------------------------------

EVENT_SOURCE = "product-describer"


class ProductEventType(StrEnum):
    """The event's ``detail-type``: one per final status, and one when a person reviewed the record."""

    DESCRIBED = "Product Described"
    FAILED = "Product Description Failed"
    REVIEWED = "Product Reviewed"


class ProductEventDetail(BaseModel):
    """The ``detail`` of a product event: enough to act on; the record has the rest."""

    product_id: str
    status: Status
    category: str
    source_bucket: str
    source_key: str
    source_version: str
    locales: list[str] = Field(default_factory=list, description="The locales of the content (COMPLETED)")
    error_code: ErrorCode | None = None
    error_message: str | None = None
    execution_name: str | None = None
    updated_at: str
    content: dict[str, LocaleContent] | None = Field(
        default=None, description="The copy, when the event stays within EventBridge's size limit"
    )
    review_decision: Review | None = Field(
        default=None, description="What the reviewer decided (Product Reviewed only)"
    )
    record_version: int = Field(
        default=0, ge=0, description="The record version announced: consumers keep the highest per product"
    )
