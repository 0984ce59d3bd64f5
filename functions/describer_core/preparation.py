"""Prepare: find the uploaded object, claim the product's record, validate the image, pick questions
and group them into endpoint calls.

The claim comes before the image checks so that a broken upload still ends as a FAILED record the
product team can see; a claim that loses to a newer upload stops the run before any model call.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from describer_core.catalogue import ARTICLE_TYPE_ATTRIBUTE, GENERIC_CATEGORY, Catalogue
from describer_core.confidence import rounded
from describer_core.contracts import AttributeAnswer, CategorySource, ErrorCode, Question, S3ObjectRef, Status
from describer_core.endpoint_calls import group_questions
from describer_core.errors import (
    InvalidInput,
    TransientError,
    client_error_code,
    client_error_status,
    is_transient,
)
from describer_core.images import ImageFacts, check_size, inspect_image
from describer_core.keys import identify, key_candidates
from describer_core.records import ResultsTable
from describer_core.settings import PrepareSettings
from describer_core.states import PrepareInput, PrepareOutput, ProductIdentity, WorkflowInput

if TYPE_CHECKING:  # the stubs are a dev dependency; the Lambdas never import them
    from mypy_boto3_s3 import S3Client


_MISSING = frozenset({"404", "NoSuchKey", "NoSuchVersion", "NotFound"})
# Asks the model one question about the image (``attributes.ask_one``): how Prepare chooses a category.
CategoryAsker = Callable[[S3ObjectRef, Question], AttributeAnswer]


class SourceObject:
    """The uploaded object version, read through one S3 client."""

    def __init__(
        self,
        s3_client: S3Client,
        ref: S3ObjectRef,
        size: int,
        metadata: dict[str, str],
        last_modified: str = "",
    ) -> None:
        self._s3 = s3_client
        self.ref = ref
        self.size = size
        self.metadata = metadata
        self.last_modified = last_modified  # as an event's time: UTC, whole seconds, "Z"

    @classmethod
    def locate(cls, s3_client: S3Client, workflow: WorkflowInput) -> SourceObject:
        """HEAD the event's object version, trying the decoded key first (see ``key_candidates``)."""
        for key in key_candidates(workflow.key):
            ref = S3ObjectRef(bucket=workflow.bucket, key=key, version_id=workflow.version_id)
            try:
                head = s3_client.head_object(**_object_args(ref))
            except ClientError as error:
                if client_error_code(error) in _MISSING or client_error_status(error) == 404:
                    continue
                raise _s3_failure("HeadObject", error) from error
            metadata = {name.lower(): value for name, value in head.get("Metadata", {}).items()}
            # An event without a version id (an emulator's, say) still pins the version read here,
            # so the bytes checked, the bytes the endpoint reads and the record all name one version.
            if ref.version_id is None and head.get("VersionId"):
                ref = ref.model_copy(update={"version_id": head["VersionId"]})
            modified = head.get("LastModified")
            stamp = modified.strftime("%Y-%m-%dT%H:%M:%SZ") if modified is not None else ""
            return cls(s3_client, ref, int(head["ContentLength"]), metadata, stamp)
        raise InvalidInput("the uploaded object version no longer exists", ErrorCode.OBJECT_NOT_FOUND)

    def read(self, max_bytes: int) -> bytes:
        """The object's bytes, never more than ``max_bytes`` + 1 of them."""
        try:
            response = self._s3.get_object(**_object_args(self.ref), Range=f"bytes=0-{max_bytes}")
        except ClientError as error:
            if client_error_code(error) in _MISSING:
                raise InvalidInput("the uploaded object disappeared", ErrorCode.OBJECT_NOT_FOUND) from None
            raise _s3_failure("GetObject", error) from error
        return bytes(response["Body"].read(max_bytes + 1))


def _object_args(ref: S3ObjectRef) -> dict[str, Any]:
    args = {"Bucket": ref.bucket, "Key": ref.key}
    if ref.version_id:
        args["VersionId"] = ref.version_id
    return args


def _s3_failure(operation: str, error: ClientError) -> Exception:
    if is_transient(error):
        return TransientError(f"S3 {operation}: {client_error_code(error)}")
    return error


def identify_product(
    source: SourceObject | None,
    workflow: WorkflowInput,
    key_prefixes: str | tuple[str, ...],
    catalogue: Catalogue,
) -> ProductIdentity:
    """Product id, catalogue category and exact source of an upload.

    ``source`` None (the object is gone) falls back to the key alone: RecordFailure uses this to
    name the product whose run failed before Prepare could.
    """
    if source is None:
        ref = S3ObjectRef(
            bucket=workflow.bucket, key=key_candidates(workflow.key)[0], version_id=workflow.version_id
        )
        metadata: dict[str, str] = {}
    else:
        ref, metadata = source.ref, source.metadata
    parts = identify(ref.key, key_prefixes, metadata, workflow.category)
    # A category the catalogue does not know is no category: the model is asked (``choose_category``).
    known = catalogue.known_category(parts.category_hint)
    return ProductIdentity(
        product_id=parts.product_id,
        category=known.name if known else GENERIC_CATEGORY,
        category_source=parts.category_source if known else None,
        source=ref,
        order_token=workflow.order_token,
    )


def category_question(catalogue: Catalogue) -> Question | None:
    """The article-type question, whose vocabulary is the catalogue's categories (None without one)."""
    generic = catalogue.category(GENERIC_CATEGORY)
    try:
        spec = generic.attribute(ARTICLE_TYPE_ATTRIBUTE)
    except KeyError:
        return None
    return Question(attribute=spec.name, question=generic.question_for(spec))


def choose_category(
    product: ProductIdentity, answer: AttributeAnswer, catalogue: Catalogue, review_threshold: float
) -> ProductIdentity:
    """The product with the category the model chose; an answer outside the catalogue keeps generic.

    A confidence below ``review_threshold`` (or none, or no usable answer) flags the product for review.
    """
    chosen = catalogue.known_category(answer.value) if answer.known else None
    confidence = rounded(answer.confidence) if answer.confidence is not None and chosen else None
    return product.model_copy(
        update={
            "category": chosen.name if chosen else GENERIC_CATEGORY,
            "category_source": CategorySource.MODEL,
            "category_confidence": confidence,
            "category_review": confidence is None or confidence < review_threshold,
        }
    )


def prepare(
    request: PrepareInput,
    s3_client: S3Client,
    table: ResultsTable,
    catalogue: Catalogue,
    settings: PrepareSettings,
    ask_category: CategoryAsker | None = None,
) -> tuple[PrepareOutput, ImageFacts | None]:
    """``ask_category``: how a product whose key and metadata name no known category gets one (one
    endpoint call before the Map; without it such a product gets the generic questions)."""
    started = time.monotonic()
    source = SourceObject.locate(s3_client, request.workflow)
    product = identify_product(source, request.workflow, settings.key_prefixes, catalogue)
    if not table.write_if_current(product.record(Status.PROCESSING, request.execution_name)):
        return PrepareOutput(claimed=False, product=product, map_concurrency=settings.map_concurrency), None
    check_size(source.size, settings.max_image_bytes)
    facts = inspect_image(
        source.read(settings.max_image_bytes), settings.max_image_bytes, settings.max_image_pixels
    )
    question = category_question(catalogue)
    if product.category_source is None and ask_category is not None and question is not None:
        answer = ask_category(product.source, question)
        product = choose_category(product, answer, catalogue, settings.review_threshold)
    questions = [
        Question(attribute=attribute, question=question)
        for attribute, question in catalogue.questions(product.category)
    ]
    groups = group_questions(questions, settings.questions_per_call)
    elapsed_ms = int((time.monotonic() - started) * 1000)
    output = PrepareOutput(
        claimed=True,
        product=product,
        questions=questions,
        question_groups=groups,
        prepare_ms=elapsed_ms,
        map_concurrency=settings.map_concurrency,
    )
    return output, facts
