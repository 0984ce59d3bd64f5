"""Nothing left PROCESSING, and failures re-run, on the local stack.

A run stopped by hand ends its record FAILED EXECUTION_ABORTED (the emulator's "Step Functions
Execution Status Change" event, the template's rule, RecordStopped); ``describer redrive`` then runs
that upload again from the same object version and it completes. An input error is redriven only
when asked for by code.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from describer.cli import main
from describer.deployment import Deployment, UploadRef, fetch_records, wait_for_final_records
from describer.local.model_host.faults import FaultKind, FaultSpec
from describer.local.samples import SampleFile, bad_files, synthetic_photos
from describer.local.stack import LocalSettings, set_faults
from describer_aws.results_table import utc_now
from describer_rules.contracts import ErrorCode, ProductRecord, Status
from describer_steps.states import WorkflowInput

pytestmark = pytest.mark.integration


def _upload(deployment: Deployment, sample: SampleFile) -> UploadRef:
    uploaded_at = utc_now()
    return UploadRef.from_response(deployment.upload(sample.path, sample.key), uploaded_at)


def _wait_for_claim(deployment: Deployment, product_id: str, since: str) -> ProductRecord:
    deadline = time.monotonic() + 120
    while True:
        record = fetch_records(deployment, [product_id]).get(product_id)
        if record is not None and record.status == Status.PROCESSING and record.updated_at >= since:
            return record
        assert time.monotonic() < deadline, "the upload's run never claimed its record"
        time.sleep(0.5)


@pytest.fixture(scope="module")
def aborted(
    tmp_path_factory: pytest.TempPathFactory, local_settings: LocalSettings, deployment: Deployment
) -> tuple[SampleFile, UploadRef, ProductRecord]:
    """An upload whose run was stopped by hand while it waited for the endpoint."""
    # Every endpoint call hangs, so the run is certainly under way when it is stopped.
    set_faults(local_settings, FaultSpec(rates={FaultKind.ENDPOINT_SLOW: 1.0}, slow_seconds=60))
    try:
        [photo] = synthetic_photos(tmp_path_factory.mktemp("photos"), per_category=1, seed=23)[:1]
        upload = _upload(deployment, photo)
        claimed = _wait_for_claim(deployment, photo.product_id, upload.uploaded_at)
        machine = deployment.outputs["StateMachineArn"]
        execution_arn = f"{machine.replace(':stateMachine:', ':execution:')}:{claimed.execution_name}"
        deployment.client("stepfunctions").stop_execution(
            executionArn=execution_arn, error="Operator", cause="stopped by the test"
        )
        final = wait_for_final_records(deployment, {photo.product_id: upload}, timeout_s=120)
    finally:
        set_faults(local_settings, FaultSpec())
    assert final[photo.product_id].execution_name == claimed.execution_name
    return photo, upload, final[photo.product_id]


def test_a_run_stopped_by_hand_ends_failed_not_processing(
    aborted: tuple[SampleFile, UploadRef, ProductRecord],
) -> None:
    _, _, record = aborted
    assert (record.status, record.error_code) == (Status.FAILED, ErrorCode.EXECUTION_ABORTED)


def _redrive(local_settings: LocalSettings, *options: str) -> int:
    return main(["redrive", "--state-dir", str(local_settings.state_dir), "--timeout", "240", *options])


def test_redrive_reruns_the_stopped_upload_and_not_input_errors_unless_asked(
    tmp_path: Path,
    aborted: tuple[SampleFile, UploadRef, ProductRecord],
    local_settings: LocalSettings,
    deployment: Deployment,
) -> None:
    photo, upload, failed = aborted
    [gif] = [sample for sample in bad_files(tmp_path) if sample.expected_error == ErrorCode.NOT_AN_IMAGE][:1]
    gif_upload = _upload(deployment, gif)
    not_an_image = wait_for_final_records(deployment, {gif.product_id: gif_upload}, timeout_s=120)
    assert not_an_image[gif.product_id].error_code == ErrorCode.NOT_AN_IMAGE

    assert _redrive(local_settings, "--dry-run") == 0
    assert fetch_records(deployment, [photo.product_id])[photo.product_id] == failed

    assert _redrive(local_settings, "--product", photo.product_id, "--product", gif.product_id) == 0
    records = fetch_records(deployment, [photo.product_id, gif.product_id])
    redriven = records[photo.product_id]
    assert redriven.status == Status.COMPLETED, (redriven.error_code, redriven.error_message)
    # Named after the record's object version (the emulator's events carry none, so its first run
    # was named after the event's sequencer instead): deterministic, and apart from the first run.
    assert redriven.execution_name == WorkflowInput.redrive_of(failed).execution_name
    assert redriven.execution_name.endswith("-r1")
    assert redriven.source_version == upload.version
    assert redriven.attributes and redriven.description
    # An input error is left alone by default ...
    assert records[gif.product_id] == not_an_image[gif.product_id]

    # ... and re-run only when its code is asked for: it fails the same way again.
    assert _redrive(local_settings, "--code", "NOT_AN_IMAGE", "--product", gif.product_id) == 0
    again = fetch_records(deployment, [gif.product_id])[gif.product_id]
    assert (again.status, again.error_code) == (Status.FAILED, ErrorCode.NOT_AN_IMAGE)
    assert again.execution_name is not None and again.execution_name.endswith("-r1")
