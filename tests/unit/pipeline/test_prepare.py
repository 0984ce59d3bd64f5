"""Prepare against moto: the claim, every bad-input class, key decoding, supersede semantics."""

from __future__ import annotations

from typing import Any

import pytest
from prepare import app as prepare_app

from describer_rules.catalogue import load_catalogue
from describer_rules.contracts import AttributeAnswer, CategorySource, ErrorCode, S3ObjectRef, Status
from describer_rules.errors import InvalidInput
from describer_steps.prepare import category_question, choose_category, identify_product
from describer_steps.states import ProductIdentity, WorkflowInput

from .conftest import BUCKET, Aws, FakeLambdaContext, image_bytes


def _run(
    key: str, version: str | None, *, time: str = "2026-11-21T03:00:00Z", sequencer: str = "0A"
) -> dict[str, Any]:
    workflow = WorkflowInput(bucket=BUCKET, key=key, version_id=version, event_time=time, sequencer=sequencer)
    event = {"workflow": workflow.model_dump(), "execution_name": workflow.execution_name}
    return dict(prepare_app.handler(event, FakeLambdaContext()))


def _failure(key: str, version: str | None) -> ErrorCode:
    with pytest.raises(InvalidInput) as raised:
        _run(key, version)
    return raised.value.code


def test_a_good_upload_is_claimed_with_its_category_questions(aws: Aws) -> None:
    version = aws.upload("incoming/Shirts/15970.jpg", image_bytes("JPEG"))
    output = _run("incoming/Shirts/15970.jpg", version)
    assert output["claimed"] is True
    assert output["product"]["product_id"] == "15970"
    assert output["product"]["category"] == "Shirts"
    assert output["product"]["source"] == {
        "bucket": BUCKET,
        "key": "incoming/Shirts/15970.jpg",
        "version_id": version,
    }
    expected = [{"attribute": a, "question": q} for a, q in load_catalogue().questions("Shirts")]
    assert output["questions"] == expected
    assert output["map_concurrency"] == 3  # MAP_CONCURRENCY, for the Map's MaxConcurrencyPath
    record = aws.record("15970")
    assert record is not None
    assert (record["status"], record["source_version"], record["category"]) == (
        "PROCESSING",
        version,
        "Shirts",
    )


def test_without_an_endpoint_an_unknown_category_folder_gets_the_generic_questions(
    aws: Aws, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("ENDPOINT_NAME")
    version = aws.upload("incoming/Hats/h1.png", image_bytes("PNG"))
    output = _run("incoming/Hats/h1.png", version)
    assert output["product"]["category"] == "generic"
    assert output["product"]["category_source"] is None
    assert [q["attribute"] for q in output["questions"]] == [a for a, _ in load_catalogue().questions(None)]


def _answer(value: str, confidence: float | None, known: bool = True) -> AttributeAnswer:
    return AttributeAnswer(
        attribute="Article Type", value=value, raw=value, known=known, confidence=confidence
    )


def _identity(
    key: str, metadata: dict[str, str] | None = None, category: str | None = None
) -> ProductIdentity:
    workflow = WorkflowInput(
        bucket=BUCKET, key=key, version_id="v1", event_time="t", sequencer="0A", category=category
    )
    return (
        identify_product(None, workflow, "incoming/", load_catalogue())
        if metadata is None
        else identify_product(_Source(key, metadata), workflow, "incoming/", load_catalogue())
    )


class _Source:
    def __init__(self, key: str, metadata: dict[str, str]) -> None:
        self.ref = S3ObjectRef(bucket=BUCKET, key=key, version_id="v1")
        self.metadata = metadata


def test_where_the_category_came_from() -> None:
    assert _identity("incoming/Jeans/j1.jpg").category_source == CategorySource.KEY
    named = _identity("incoming/j1.jpg", {"category": "casual shoes"})
    assert (named.category, named.category_source) == ("Casual Shoes", CategorySource.METADATA)
    assert _identity("incoming/j1.jpg", category="Dresses").category_source == CategorySource.METADATA
    # Unknown to the catalogue, wherever it is named: no category yet, the model is to be asked.
    for unknown in (_identity("incoming/Hats/h1.jpg"), _identity("incoming/h1.jpg", {"category": "Hats"})):
        assert (unknown.category, unknown.category_source) == ("generic", None)


def test_the_model_chooses_among_the_catalogues_categories() -> None:
    catalogue = load_catalogue()
    question = category_question(catalogue)
    assert question is not None and question.question == "What type of product is in this picture?"
    product = _identity("incoming/h1.jpg")
    chosen = choose_category(product, _answer("Jeans", 0.876), catalogue, review_threshold=0.7)
    assert (chosen.category, chosen.category_source, chosen.category_confidence) == ("Jeans", "model", 0.876)
    assert not chosen.category_review
    assert choose_category(product, _answer("Jeans", 0.55), catalogue, review_threshold=0.7).category_review
    # An answer outside the vocabulary (generated, not scored) keeps the generic questions, for review.
    odd = choose_category(product, _answer("Space Suit", None, known=False), catalogue, review_threshold=0.7)
    assert (odd.category, odd.category_confidence, odd.category_review) == ("generic", None, True)
    record = chosen.record(Status.PROCESSING, "run-1")
    assert (record.category_source, record.category_confidence) == ("model", 0.876)


def test_url_encoded_event_key_finds_the_object(aws: Aws) -> None:
    version = aws.upload("incoming/Tshirts/tée 1+2.webp", image_bytes("WEBP"))
    output = _run("incoming/Tshirts/t%C3%A9e+1%2B2.webp", version)
    assert output["product"]["product_id"] == "tée 1+2"
    assert output["product"]["source"]["key"] == "incoming/Tshirts/tée 1+2.webp"


def test_an_unencoded_key_with_a_plus_still_finds_the_object(aws: Aws) -> None:
    version = aws.upload("incoming/Shirts/a+b.jpg", image_bytes("JPEG"))
    assert _run("incoming/Shirts/a+b.jpg", version)["product"]["product_id"] == "a+b"


def test_object_metadata_names_the_product(aws: Aws) -> None:
    version = aws.upload(
        "incoming/photo.jpg", image_bytes("JPEG"), {"product-id": "SKU-42", "category": "tshirts"}
    )
    output = _run("incoming/photo.jpg", version)
    assert (output["product"]["product_id"], output["product"]["category"]) == ("SKU-42", "Tshirts")


def test_missing_object(aws: Aws) -> None:
    assert _failure("incoming/Shirts/gone.jpg", None) is ErrorCode.OBJECT_NOT_FOUND
    assert aws.record("gone") is None


def test_deleted_version(aws: Aws) -> None:
    version = aws.upload("incoming/Shirts/old.jpg", image_bytes("JPEG"))
    aws.s3.delete_object(Bucket=BUCKET, Key="incoming/Shirts/old.jpg", VersionId=version)
    assert _failure("incoming/Shirts/old.jpg", version) is ErrorCode.OBJECT_NOT_FOUND


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (b"not an image at all", ErrorCode.NOT_AN_IMAGE),
        (b"\xff\xd8\xff" + bytes(300_000), ErrorCode.IMAGE_TOO_LARGE),
        (image_bytes("PNG", (1200, 1000)), ErrorCode.IMAGE_TOO_MANY_PIXELS),
        (image_bytes("JPEG", (200, 200))[:900], ErrorCode.IMAGE_UNDECODABLE),
        (image_bytes("GIF"), ErrorCode.NOT_AN_IMAGE),
    ],
    ids=["not-an-image", "too-large", "too-many-pixels", "truncated", "gif"],
)
def test_bad_uploads_fail_after_claiming_so_the_failure_is_recorded(
    aws: Aws, body: bytes, code: ErrorCode
) -> None:
    version = aws.upload("incoming/Shirts/bad.jpg", body)
    assert _failure("incoming/Shirts/bad.jpg", version) is code
    record = aws.record("bad")
    assert record is not None and record["status"] == "PROCESSING"


def test_newer_upload_supersedes_and_stale_event_changes_nothing(aws: Aws) -> None:
    old_version = aws.upload("incoming/Shirts/7.jpg", image_bytes("JPEG"))
    new_version = aws.upload("incoming/Shirts/7.jpg", image_bytes("PNG"))
    newer = _run("incoming/Shirts/7.jpg", new_version, time="2026-11-21T03:00:05Z", sequencer="0B")
    assert newer["claimed"] is True
    before = aws.record("7")
    stale = _run("incoming/Shirts/7.jpg", old_version, time="2026-11-21T03:00:01Z", sequencer="0A")
    assert stale["claimed"] is False
    assert stale["questions"] == []
    assert aws.record("7") == before


def test_the_same_run_may_claim_again_after_a_retry(aws: Aws) -> None:
    version = aws.upload("incoming/Shirts/8.jpg", image_bytes("JPEG"))
    assert _run("incoming/Shirts/8.jpg", version)["claimed"] is True
    assert _run("incoming/Shirts/8.jpg", version)["claimed"] is True


def test_an_event_without_a_version_pins_the_version_it_read(aws: Aws) -> None:
    version = aws.upload("incoming/Shirts/11.jpg", image_bytes("JPEG"))
    output = _run("incoming/Shirts/11.jpg", None)
    assert output["product"]["source"]["version_id"] == version
    record = aws.record("11")
    assert record is not None and record["source_version"] == version


def test_s3_throttling_is_transient_and_retried_by_the_workflow() -> None:
    import boto3
    from botocore.stub import Stubber

    from describer_rules.errors import TransientError
    from describer_steps.prepare import SourceObject

    s3 = boto3.client("s3", region_name="us-east-1")
    workflow = WorkflowInput(bucket=BUCKET, key="incoming/1.jpg", version_id="v1", event_time="t")
    with Stubber(s3) as stubber:
        stubber.add_client_error("head_object", service_error_code="SlowDown", http_status_code=503)
        with pytest.raises(TransientError):
            SourceObject.locate(s3, workflow)
