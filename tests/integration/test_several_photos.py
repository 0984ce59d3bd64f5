"""Product folders on the local stack: settle, one run per photo set, skipped photos, later changes."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime
from pathlib import Path

import pytest

from describer.deployment import Deployment, PhotoSetRef, wait_for_final_records
from describer.local import emulator
from describer.local.samples import photo_folders, truncated_jpeg
from describer.local.stack import LocalSettings
from describer_aws.results_table import utc_now
from describer_rules.catalogue import load_catalogue
from describer_rules.contracts import (
    ErrorCode,
    ProductRequest,
    ProductResponse,
    Question,
    S3ObjectRef,
    Status,
)
from endpoint.serve import EntryPoint

pytestmark = pytest.mark.integration


def _upload(deployment: Deployment, files: list[tuple[Path, str]]) -> dict[str, dict]:
    return {deployment.upload_prefix + key: deployment.upload(path, key) for path, key in files}


def test_product_folders_are_described_once_from_all_their_photos(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    local_settings: LocalSettings,
    deployment: Deployment,
    demo_model_dir: Path,
) -> None:
    good, mixed, crowded = photo_folders(tmp_path / "photos", 3)
    broken = truncated_jpeg(tmp_path / "broken.jpg")
    mixed_files = [
        *mixed.files(),
        (broken, f"{mixed.folder}4-broken.jpg"),
        (broken, f"{mixed.folder}old/5.jpg"),
    ]
    crowded_files = [
        (crowded.photos["1-front.jpg"], f"{crowded.folder}{index:02d}.jpg") for index in range(11)
    ]
    uploads = {}
    started = datetime.now(UTC).replace(microsecond=0)  # the emulator keeps whole seconds
    for folder, files in ((good, good.files()), (mixed, mixed_files), (crowded, crowded_files)):
        uploaded_at = utc_now()
        uploads[folder.product_id] = PhotoSetRef.of(_upload(deployment, files), uploaded_at)

    records = wait_for_final_records(deployment, uploads, timeout_s=300)

    for folder in (good, mixed, crowded):
        record = records[folder.product_id]
        assert (record.status, record.category) == (Status.COMPLETED, folder.category), record.error_message
        answered = set(record.attributes) | set(record.unverified_attributes)
        assert record.photos_agreed and set(record.photos_agreed) == answered
    statuses = {
        i.key.rsplit("/", 1)[-1]: (i.status, (i.reason or "").split(":")[0])
        for i in records[mixed.product_id].images
    }
    assert statuses == {
        "1-front.jpg": ("used", ""),
        "2-back.jpg": ("used", ""),
        "3-detail.jpg": ("used", ""),
        "4-broken.jpg": ("skipped", ErrorCode.IMAGE_UNDECODABLE),
        "5.jpg": ("skipped", "NESTED_FOLDER"),
    }
    crowded_images = records[crowded.product_id].images
    assert [image.status for image in crowded_images] == ["used"] * 10 + ["skipped"]
    assert (crowded_images[-1].reason or "").startswith("TOO_MANY_PHOTOS")
    record = records[good.product_id]
    assert record.primary_image == record.source_key == f"{deployment.upload_prefix}{good.folder}1-front.jpg"
    assert all(image.width == image.height == 128 for image in record.images)

    # The pipeline's answers are the endpoint's own fused answers about the same photo versions.
    for name, value in emulator.client_environment(local_settings.emulator_port, {}).items():
        monkeypatch.setenv(name, value)
    refs = [
        S3ObjectRef(bucket=deployment.upload_bucket, key=i.key, version_id=i.version) for i in record.images
    ]
    questions = [Question(attribute=a, question=q) for a, q in load_catalogue().questions(good.category)]
    request = ProductRequest(
        image_s3=refs[0], images_s3=refs[1:], questions=questions, category=good.category
    )
    body, _ = EntryPoint(demo_model_dir).invoke(
        request.model_dump_json(exclude_none=True).encode(), "application/json", "application/json"
    )
    expected = ProductResponse.model_validate_json(body).answers
    assert record.attributes == {a.attribute: a.value for a in expected if a.confidence is not None}
    assert record.unverified_attributes == {
        a.attribute: a.value for a in expected if a.confidence is None and a.value
    }
    assert record.photos_agreed == {answer.attribute: answer.photos_agreed for answer in expected}
    assert len(deployment.photo_set_runs(good.product_id, started)) == 1

    # A photo added later: described again from four photos, by one more run (no duplicate).
    extra = tmp_path / "4-side.jpg"
    shutil.copyfile(good.photos["2-back.jpg"], extra)
    responses = _upload(deployment, [(extra, f"{good.folder}4-side.jpg")])
    current = {image.key: {"VersionId": image.version} for image in record.images} | responses
    later = wait_for_final_records(
        deployment, {good.product_id: PhotoSetRef.of(current, utc_now())}, timeout_s=120
    )
    assert len(later[good.product_id].images) == 4 and later[good.product_id].status == Status.COMPLETED
    runs = deployment.photo_set_runs(good.product_id, started)
    assert len(runs) == 2 and {run["status"] for run in runs} == {"SUCCEEDED"}

    # Every photo deleted: the record says so, nothing is left PROCESSING.
    s3 = deployment.client("s3")
    for key in [deployment.upload_prefix + key for _, key in mixed_files]:
        s3.delete_object(Bucket=deployment.upload_bucket, Key=key)
    gone = wait_for_final_records(
        deployment, {mixed.product_id: PhotoSetRef.of({}, utc_now())}, timeout_s=120
    )
    emptied = gone[mixed.product_id]
    assert (emptied.status, emptied.error_code, emptied.images) == (
        Status.FAILED,
        ErrorCode.NO_VALID_IMAGE,
        [],
    )
    assert "deleted" in (emptied.error_message or "")
    assert not [r for r in deployment.records() if r.status == Status.PROCESSING]
