"""Prepare against moto: the claim, every bad-input class, key decoding, supersede semantics."""

from __future__ import annotations

from typing import Any

import pytest
from prepare import app as prepare_app

from describer_core.catalogue import load_catalogue
from describer_core.contracts import ErrorCode
from describer_core.errors import InvalidInput
from describer_core.states import WorkflowInput

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


def test_unknown_category_folder_gets_the_generic_questions(aws: Aws) -> None:
    version = aws.upload("incoming/Hats/h1.png", image_bytes("PNG"))
    output = _run("incoming/Hats/h1.png", version)
    assert output["product"]["category"] == "generic"
    assert [q["attribute"] for q in output["questions"]] == [a for a, _ in load_catalogue().questions(None)]


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

    from describer_core.errors import TransientError
    from describer_core.preparation import SourceObject

    s3 = boto3.client("s3", region_name="us-east-1")
    workflow = WorkflowInput(bucket=BUCKET, key="incoming/1.jpg", version_id="v1", event_time="t")
    with Stubber(s3) as stubber:
        stubber.add_client_error("head_object", service_error_code="SlowDown", http_status_code=503)
        with pytest.raises(TransientError):
            SourceObject.locate(s3, workflow)
