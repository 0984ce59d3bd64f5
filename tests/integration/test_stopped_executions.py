"""A run stopped by hand on the local stack ends its record FAILED EXECUTION_ABORTED, via the emulator's
"Step Functions Execution Status Change" event, the template's rule and RecordStopped."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from describer.deployment import Deployment, UploadRef, fetch_records, wait_for_final_records
from describer.local.faults import FaultKind, FaultSpec
from describer.local.samples import synthetic_photos
from describer.local.stack import LocalSettings, set_faults
from describer_core.contracts import ErrorCode, Status
from describer_core.records import utc_now

pytestmark = pytest.mark.integration


def test_a_run_stopped_by_hand_ends_failed_not_processing(
    tmp_path: Path, local_settings: LocalSettings, deployment: Deployment
) -> None:
    # Every endpoint call hangs, so the run is certainly under way when it is stopped.
    set_faults(local_settings, FaultSpec(rates={FaultKind.ENDPOINT_SLOW: 1.0}, slow_seconds=60))
    try:
        [photo] = synthetic_photos(tmp_path, per_category=1, seed=23)[:1]
        uploaded_at = utc_now()
        upload = UploadRef.from_response(deployment.upload(photo.path, photo.key), uploaded_at)
        sfn = deployment.client("stepfunctions")
        deadline = time.monotonic() + 120
        while True:
            record = fetch_records(deployment, [photo.product_id]).get(photo.product_id)
            if record is not None and record.status == Status.PROCESSING and record.updated_at >= uploaded_at:
                break
            assert time.monotonic() < deadline, "the upload's run never claimed its record"
            time.sleep(0.5)
        machine = deployment.outputs["StateMachineArn"]
        execution_arn = f"{machine.replace(':stateMachine:', ':execution:')}:{record.execution_name}"
        sfn.stop_execution(executionArn=execution_arn, error="Operator", cause="stopped by the test")

        final = wait_for_final_records(deployment, {photo.product_id: upload}, timeout_s=120)
    finally:
        set_faults(local_settings, FaultSpec())

    stopped = final[photo.product_id]
    assert (stopped.status, stopped.error_code) == (Status.FAILED, ErrorCode.EXECUTION_ABORTED)
    assert stopped.execution_name == record.execution_name
