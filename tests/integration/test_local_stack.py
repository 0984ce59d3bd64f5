"""The real template on the local emulator: photos and bad files in, the right final records out."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from describer.deployment import Deployment, UploadRef, wait_for_final_records
from describer.local import emulator
from describer.local.model_host import InferenceModel
from describer.local.samples import SampleFile, bad_files, synthetic_photos
from describer.local.stack import LocalSettings
from describer_core.answers import parse_answer
from describer_core.catalogue import load_catalogue
from describer_core.contracts import ProductRequest, Question, S3ObjectRef, Status
from describer_core.records import utc_now

pytestmark = pytest.mark.integration


def _expected_attributes(model: InferenceModel, deployment: Deployment, sample: SampleFile) -> dict[str, str]:
    """What the pipeline must record: the demo model asked each question as AskAttribute asks it."""
    catalogue = load_catalogue()
    image = S3ObjectRef(bucket=deployment.upload_bucket, key=deployment.upload_prefix + sample.key)
    attributes = {}
    for attribute, question in catalogue.questions(sample.category):
        request = ProductRequest(
            image_s3=image,
            questions=[Question(attribute=attribute, question=question)],
            category=sample.category,
        )
        body, _ = model.invoke(
            request.model_dump_json(exclude_none=True).encode(), "application/json", "application/json"
        )
        (answer,) = json.loads(body)["answers"]
        parsed = parse_answer(
            answer["raw"] or answer["value"], catalogue.category(sample.category).attribute(attribute)
        )
        if parsed.value:
            attributes[attribute] = parsed.value
    return attributes


def test_uploads_end_with_the_right_final_records(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    local_settings: LocalSettings,
    deployment: Deployment,
    demo_model_dir: Path,
) -> None:
    samples = synthetic_photos(tmp_path / "photos", per_category=3) + bad_files(tmp_path / "bad")
    assert len(samples) >= 10
    uploads = {}
    for sample in samples:
        uploaded_at = utc_now()
        uploads[sample.product_id] = UploadRef.from_response(
            deployment.upload(sample.path, sample.key), uploaded_at
        )

    records = wait_for_final_records(deployment, uploads, timeout_s=420)

    # The endpoint's own code, run here on the same uploaded objects (read from the emulator's S3).
    for name, value in emulator.client_environment(local_settings.emulator_port, {}).items():
        monkeypatch.setenv(name, value)
    model = InferenceModel(demo_model_dir)
    for sample in samples:
        record = records[sample.product_id]
        assert record.category == sample.category
        assert record.source_key == deployment.upload_prefix + sample.key
        if sample.expected_error is not None:
            assert (record.status, record.error_code) == (Status.FAILED, sample.expected_error), sample.key
            continue
        assert record.status == Status.COMPLETED, (sample.key, record.error_code, record.error_message)
        assert record.attributes == _expected_attributes(model, deployment, sample), sample.key
        assert record.description
        assert record.model_ids.attributes == local_settings.endpoint_name
        assert record.model_ids.description == "offline-describer-v1"
    assert not [r for r in deployment.records(Status.PROCESSING) if r.product_id in uploads]
