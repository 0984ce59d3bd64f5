"""The backfill on the local stack: a catalogue prefix with photos and bad objects, once and again."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest

from benchmarks.backfill import duplicate_runs, executions_since
from describer import backfill_runs
from describer.deployment import Deployment, fetch_records
from describer.local.samples import synthetic_photos
from describer_rules.contracts import ErrorCode, Status
from describer_steps.record_failure import UNIDENTIFIED_PRODUCT_PREFIX

pytestmark = pytest.mark.integration


def _run(
    deployment: Deployment, request: dict[str, object]
) -> tuple[dict[str, object], list[backfill_runs.ItemResult]]:
    execution = backfill_runs.wait(
        deployment, backfill_runs.start(deployment, request), poll_s=0.5, timeout_s=300
    )
    return execution, backfill_runs.item_results(deployment, execution)


def test_a_backfill_describes_each_object_once_and_a_rerun_starts_nothing(
    tmp_path: Path, deployment: Deployment
) -> None:
    s3 = deployment.client("s3")
    prefix = deployment.outputs["BackfillPrefix"] + "it/"
    photos = synthetic_photos(tmp_path, per_category=2, seed=3)
    written_at = datetime.now().astimezone()
    for photo in photos:
        key = f"{prefix}{photo.category}/bf-{photo.product_id}.jpg"
        s3.put_object(Bucket=deployment.upload_bucket, Key=key, Body=photo.path.read_bytes())
    bad = {"bf-note": f"{prefix}Shirts/bf-note.txt", "bf-empty": f"{prefix}Tshirts/bf-empty.jpg"}
    s3.put_object(Bucket=deployment.upload_bucket, Key=bad["bf-note"], Body=b"a note, not a photo")
    s3.put_object(Bucket=deployment.upload_bucket, Key=bad["bf-empty"], Body=b"")
    s3.put_object(Bucket=deployment.upload_bucket, Key=f"{prefix}Shirts/", Body=b"")  # names no product
    assert executions_since(deployment, written_at) == []  # the catalogue prefix starts nothing itself

    request = backfill_runs.backfill_input(deployment, backfill_runs.S3Uri(deployment.upload_bucket, prefix))
    execution, results = _run(deployment, request)

    assert execution["status"] == "SUCCEEDED"
    outcomes = backfill_runs.outcome_counts(results)
    assert outcomes == {backfill_runs.ItemOutcome.DESCRIBED: len(photos), backfill_runs.ItemOutcome.FAILED: 3}
    records = fetch_records(deployment, [result.product_id for result in results if result.product_id])
    for photo in photos:
        record = records[f"bf-{photo.product_id}"]
        assert (record.status, record.category, record.source_key) == (
            Status.COMPLETED,
            photo.category,
            f"{prefix}{photo.category}/bf-{photo.product_id}.jpg",
        )
        assert record.attributes and record.description
    assert records["bf-note"].error_code == records["bf-empty"].error_code == ErrorCode.NOT_AN_IMAGE
    [unnamed] = [
        record for record in records.values() if record.product_id.startswith(UNIDENTIFIED_PRODUCT_PREFIX)
    ]
    assert (unnamed.status, unnamed.error_code) == (Status.FAILED, ErrorCode.INVALID_KEY)
    assert duplicate_runs(executions_since(deployment, written_at), prefix) == 0

    rerun_at = datetime.now().astimezone()
    execution, rerun = _run(deployment, request)
    assert execution["status"] == "SUCCEEDED"
    assert backfill_runs.outcome_counts(rerun) == {backfill_runs.ItemOutcome.SKIPPED: len(photos) + 3}
    assert executions_since(deployment, rerun_at) == []


def test_a_missing_bucket_stops_the_backfill_before_any_work(deployment: Deployment) -> None:
    missing = backfill_runs.S3Uri("no-such-catalogue-bucket", "catalogue/")
    with pytest.raises(backfill_runs.BackfillError, match="does not exist"):
        backfill_runs.backfill_input(deployment, missing)
    # Started around the CLI's check, the state machine fails reading the listing and runs nothing.
    started_at = datetime.now().astimezone()
    execution, results = _run(deployment, {"bucket": missing.bucket, "prefix": missing.key, "category": None})
    assert (execution["status"], execution["error"]) == ("FAILED", "States.ItemReaderFailed")
    assert results == [] and executions_since(deployment, started_at) == []
