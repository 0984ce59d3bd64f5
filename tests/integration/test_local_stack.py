"""The real template on the local emulator: photos and bad files in, the right final records out."""

from __future__ import annotations

import json
import time
import urllib.request
from pathlib import Path

import pytest

from describer.deployment import Deployment, UploadRef, wait_for_final_records
from describer.local import emulator
from describer.local.demo.run import copy_problems
from describer.local.samples import SampleFile, bad_files, synthetic_photos
from describer.local.stack import LOCAL_LOCALES, LocalSettings
from describer_aws.results_table import utc_now
from describer_rules.catalogue import load_catalogue
from describer_rules.contracts import (
    AttributeAnswer,
    ProductRecord,
    ProductRequest,
    ProductResponse,
    Question,
    S3ObjectRef,
    Status,
)
from describer_rules.endpoint_calls import DEFAULT_QUESTIONS_PER_CALL, group_questions, prefix_aware_id
from describer_steps.settings import DEFAULT_REVIEW_THRESHOLD
from endpoint.serve import EntryPoint

pytestmark = pytest.mark.integration


def _expected_answers(model: EntryPoint, deployment: Deployment, sample: SampleFile) -> list[AttributeAnswer]:
    """What the pipeline must record: the demo model asked the category's questions, here in one request."""
    catalogue = load_catalogue()
    request = ProductRequest(
        image_s3=S3ObjectRef(bucket=deployment.upload_bucket, key=deployment.upload_prefix + sample.key),
        questions=[Question(attribute=a, question=q) for a, q in catalogue.questions(sample.category)],
        category=sample.category,
    )
    body, _ = model.invoke(
        request.model_dump_json(exclude_none=True).encode(), "application/json", "application/json"
    )
    return ProductResponse.model_validate_json(body).answers


def test_uploads_end_with_the_right_final_records(
    monkeypatch: pytest.MonkeyPatch,
    local_settings: LocalSettings,
    deployment: Deployment,
    demo_model_dir: Path,
    demo_uploads: list[tuple[SampleFile, ProductRecord]],
) -> None:
    samples = [sample for sample, _ in demo_uploads]
    records = {sample.product_id: record for sample, record in demo_uploads}
    assert len(samples) >= 10

    # The endpoint's own code, run here on the same uploaded objects (read from the emulator's S3).
    for name, value in emulator.client_environment(local_settings.emulator_port, {}).items():
        monkeypatch.setenv(name, value)
    model = EntryPoint(demo_model_dir)
    with urllib.request.urlopen(f"{local_settings.model_host_url}/routing") as response:
        routing = json.loads(response.read())
    for sample in samples:
        record = records[sample.product_id]
        assert record.category == sample.category
        assert record.source_key == deployment.upload_prefix + sample.key
        if sample.expected_error is not None:
            assert (record.status, record.error_code) == (Status.FAILED, sample.expected_error), sample.key
            continue
        assert record.status == Status.COMPLETED, (sample.key, record.error_code, record.error_message)
        expected = _expected_answers(model, deployment, sample)
        # Scored answers are the attributes, each with its confidence; an attribute the demo model never
        # learned is generated: unverified, kept apart from the copy, and the record flagged for review.
        assert record.attributes == {a.attribute: a.value for a in expected if a.confidence is not None}, (
            sample.key
        )
        assert record.unverified_attributes == {
            a.attribute: a.value for a in expected if a.confidence is None and a.value
        }, sample.key
        assert record.confidence == pytest.approx(
            {a.attribute: a.confidence for a in expected if a.confidence is not None}, abs=2e-3
        )
        assert set(record.attributes) == set(record.confidence), sample.key
        assert record.needs_review == (
            bool(record.unknown_attributes or record.unverified_attributes)
            or any(value < DEFAULT_REVIEW_THRESHOLD for value in record.confidence.values())
        )
        # The runners-up the review desk offers, as the endpoint scored them (3 decimals).
        assert {
            name: [a.value for a in alternatives] for name, alternatives in record.alternatives.items()
        } == {
            answer.attribute: [a.value for a in answer.alternatives]
            for answer in expected
            if answer.alternatives
        }
        groups = group_questions(expected, DEFAULT_QUESTIONS_PER_CALL)
        source = S3ObjectRef(
            bucket=deployment.upload_bucket, key=record.source_key, version_id=record.source_version
        )
        # All of a product's calls carried its routing id and one routing prefix: one instance.
        assert routing[prefix_aware_id(source)] == {"calls": len(groups), "prefixes": 1}, sample.key
        assert set(record.content) == set(LOCAL_LOCALES)
        assert record.description == record.content[LOCAL_LOCALES[0]].description
        assert copy_problems(record) == [], sample.key
        assert set(record.token_usage) == set(LOCAL_LOCALES)
        assert record.model_ids.attributes == local_settings.endpoint_name
        assert record.model_ids.description == "offline-describer-v1"
    assert not [r for r in deployment.records(Status.PROCESSING) if r.product_id in records]


def test_downstream_services_hear_of_every_final_record(tmp_path: Path, deployment: Deployment) -> None:
    """A rule on the stack's event bus, as a downstream service writes it, delivering to its queue."""
    sqs, events = deployment.client("sqs"), deployment.client("events")
    queue_url = sqs.create_queue(QueueName="downstream-products")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    events.put_rule(
        Name="downstream-products",
        EventBusName=deployment.event_bus,
        EventPattern=json.dumps({"source": ["product-describer"]}),
    )
    events.put_targets(
        Rule="downstream-products", EventBusName=deployment.event_bus, Targets=[{"Id": "q", "Arn": queue_arn}]
    )
    photo = synthetic_photos(tmp_path / "photos", per_category=1)[0]
    bad = next(sample for sample in bad_files(tmp_path / "bad") if sample.expected_error is not None)
    uploads = {}
    for sample in (photo, bad):
        uploaded_at = utc_now()
        uploads[sample.product_id] = UploadRef.from_response(
            deployment.upload(sample.path, sample.key), uploaded_at
        )
    records = wait_for_final_records(deployment, uploads, timeout_s=180)

    received: dict[str, dict] = {}
    deadline = time.monotonic() + 30
    while set(uploads) - set(received) and time.monotonic() < deadline:
        for message in sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1).get(
            "Messages", []
        ):
            event = json.loads(message["Body"])
            received[event["detail"]["product_id"]] = event
    assert set(received) >= set(uploads)
    completed, failed = received[photo.product_id], received[bad.product_id]
    assert (completed["source"], completed["detail-type"]) == ("product-describer", "Product Described")
    assert completed["detail"]["status"] == "COMPLETED"
    assert completed["detail"]["locales"] == list(LOCAL_LOCALES)
    assert completed["detail"]["source_version"] == records[photo.product_id].source_version
    assert failed["detail-type"] == "Product Description Failed"
    assert failed["detail"]["error_code"] == bad.expected_error
