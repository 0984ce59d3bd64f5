"""Prepare: find the uploaded object, claim the product's record, validate the image, pick questions
and group them into endpoint calls.

The claim comes before the image checks so that a broken upload still ends as a FAILED record the
product team can see; a claim that loses to a newer upload stops the run before any model call.

A product folder's run (``WorkflowInput.photos``) checks every photo of its settled set the same
way: a broken, oversized or vanished photo is skipped with its reason, as are photos in a sub-folder
(``NESTED_FOLDER``) and those past ``max_photos_per_product`` (``TOO_MANY_PHOTOS``, in key order);
the product is described from the rest. With no usable photo (all deleted included) Prepare still
returns the claimed product with its ``images``, and a ``failure`` the workflow hands RecordFailure:
``NO_VALID_IMAGE``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from describer_aws.aws_errors import client_error_code, client_error_status, is_transient
from describer_aws.results_table import ResultsTable
from describer_rules.catalogue import ARTICLE_TYPE_ATTRIBUTE, GENERIC_CATEGORY, Catalogue
from describer_rules.confidence import rounded
from describer_rules.contracts import (
    AttributeAnswer,
    CategorySource,
    ErrorCode,
    ImageStatus,
    PhotoSkipped,
    ProductImage,
    Question,
    S3ObjectRef,
    Status,
)
from describer_rules.endpoint_calls import group_questions
from describer_rules.errors import InvalidInput, TransientError
from describer_rules.images import ImageFacts, check_size, inspect_image
from describer_rules.keys import identify, is_nested, key_candidates
from describer_steps.settings import PrepareSettings
from describer_steps.states import (
    CaughtError,
    PhotoVersion,
    PrepareInput,
    PrepareOutput,
    ProductIdentity,
    WorkflowInput,
)

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
    parts = identify(ref.key, key_prefixes, metadata, workflow.category, known_category(catalogue))
    # A category the catalogue does not know is no category: the model is asked (``choose_category``).
    known = catalogue.known_category(parts.category_hint)
    return ProductIdentity(
        product_id=parts.product_id,
        category=known.name if known else GENERIC_CATEGORY,
        category_source=parts.category_source if known else None,
        source=ref,
        order_token=workflow.order_token,
    )


def known_category(catalogue: Catalogue) -> Callable[[str], bool]:
    """Whether a folder name is one of the catalogue's categories (``keys.product_folder``)."""
    return lambda name: catalogue.known_category(name) is not None


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
    if request.workflow.photos is not None:
        return prepare_photo_set(
            request, request.workflow.photos, s3_client, table, catalogue, settings, ask_category
        )
    source = SourceObject.locate(s3_client, request.workflow)
    product = identify_product(source, request.workflow, settings.key_prefixes, catalogue)
    if not table.write_if_current(product.record(Status.PROCESSING, request.execution_name)):
        return PrepareOutput(claimed=False, product=product, map_concurrency=settings.map_concurrency), None
    check_size(source.size, settings.max_image_bytes)
    facts = inspect_image(
        source.read(settings.max_image_bytes), settings.max_image_bytes, settings.max_image_pixels
    )
    image = _used(source.ref, facts)
    product = product.model_copy(update={"images": [image], "photos": [source.ref]})
    return _asking(product, catalogue, settings, started, ask_category), facts


def _used(ref: S3ObjectRef, facts: ImageFacts) -> ProductImage:
    return ProductImage(
        key=ref.key,
        version=ref.version_id,
        bytes=facts.bytes,
        width=facts.width,
        height=facts.height,
        status=ImageStatus.USED,
    )


def _skipped(photo: PhotoVersion, code: ErrorCode | PhotoSkipped, detail: str) -> ProductImage:
    return ProductImage(
        key=photo.key,
        version=photo.version_id,
        bytes=photo.size,
        status=ImageStatus.SKIPPED,
        reason=f"{code.value}: {detail}",
    )


def _asking(
    product: ProductIdentity,
    catalogue: Catalogue,
    settings: PrepareSettings,
    started: float,
    ask_category: CategoryAsker | None,
) -> PrepareOutput:
    """The claimed product's questions, grouped into endpoint calls; a product whose key and metadata
    name no known category first gets one from the model, asked about its primary photo."""
    question = category_question(catalogue)
    if product.category_source is None and ask_category is not None and question is not None:
        answer = ask_category(product.source, question)
        product = choose_category(product, answer, catalogue, settings.review_threshold)
    questions = [
        Question(attribute=attribute, question=question)
        for attribute, question in catalogue.questions(product.category)
    ]
    return PrepareOutput(
        claimed=True,
        product=product,
        questions=questions,
        question_groups=group_questions(questions, settings.questions_per_call),
        prepare_ms=int((time.monotonic() - started) * 1000),
        map_concurrency=settings.map_concurrency,
    )


def prepare_photo_set(
    request: PrepareInput,
    photos: list[PhotoVersion],
    s3_client: S3Client,
    table: ResultsTable,
    catalogue: Catalogue,
    settings: PrepareSettings,
    ask_category: CategoryAsker | None = None,
) -> tuple[PrepareOutput, ImageFacts | None]:
    """Every photo of a settled product folder checked; the usable ones (at most the limit) asked."""
    started = time.monotonic()
    workflow, folder = request.workflow, request.workflow.key
    verdicts: dict[str, ProductImage] = {}
    sources: list[tuple[PhotoVersion, SourceObject]] = []
    for photo in photos:
        if is_nested(photo.key, folder):
            verdicts[photo.key] = _skipped(
                photo, PhotoSkipped.NESTED_FOLDER, "in a sub-folder of the product"
            )
        elif len(sources) >= settings.max_photos_per_product:
            limit = settings.max_photos_per_product
            verdicts[photo.key] = _skipped(
                photo, PhotoSkipped.TOO_MANY_PHOTOS, f"over the {limit}-photo limit"
            )
        else:
            pinned = workflow.model_copy(
                update={"key": photo.key, "version_id": photo.version_id, "photos": None}
            )
            try:
                sources.append((photo, SourceObject.locate(s3_client, pinned)))
            except InvalidInput as gone:
                verdicts[photo.key] = _skipped(photo, gone.code, gone.detail)
    first = sources[0][1] if sources else None
    product = identify_product(first, workflow, settings.key_prefixes, catalogue)
    if first is None:
        product = product.model_copy(update={"source": S3ObjectRef(bucket=workflow.bucket, key=folder)})
    if not table.write_if_current(product.record(Status.PROCESSING, request.execution_name)):
        return PrepareOutput(claimed=False, product=product, map_concurrency=settings.map_concurrency), None
    used: list[tuple[SourceObject, ImageFacts]] = []
    for photo, source in sources:
        try:
            check_size(source.size, settings.max_image_bytes)
            facts = inspect_image(
                source.read(settings.max_image_bytes), settings.max_image_bytes, settings.max_image_pixels
            )
        except InvalidInput as rejected:
            verdicts[photo.key] = _skipped(photo, rejected.code, rejected.detail)
            continue
        verdicts[photo.key] = _used(source.ref, facts)
        used.append((source, facts))
    images = [verdicts[photo.key] for photo in photos]
    refs = [source.ref for source, _ in used]
    product = product.model_copy(
        update={"images": images, "photos": refs, **({"source": refs[0]} if refs else {})}
    )
    if not used:
        reason = (
            f"none of the {len(photos)} photos is usable"
            if photos
            else "no photo in the product folder: every photo was deleted"
        )
        failure = CaughtError(error="InvalidInput", cause=f"{ErrorCode.NO_VALID_IMAGE.value}: {reason}")
        output = PrepareOutput(
            claimed=True,
            product=product,
            prepare_ms=int((time.monotonic() - started) * 1000),
            map_concurrency=settings.map_concurrency,
            failure=failure,
        )
        return output, None
    return _asking(product, catalogue, settings, started, ask_category), used[0][1]
