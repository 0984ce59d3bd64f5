"""A run that outlasts the workflow's TimeoutSeconds ends its record FAILED EXECUTION_TIMED_OUT.

The deployed DescribeProduct definition is given a short TimeoutSeconds for the test (the template's
is 12,300 s, tests/unit/pipeline/test_bounded_runs.py) and every endpoint call hangs, so the run is
still waiting for the endpoint when its time is up. The emulator times it out (emulator_patch) and
publishes the status-change event; the template's rule sends it to RecordStopped, which writes the
record. The definition and the faults are put back afterwards.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from describer.deployment import Deployment, UploadRef, wait_for_final_records
from describer.local.model_host.faults import FaultKind, FaultSpec
from describer.local.samples import synthetic_photos
from describer.local.stack import LocalSettings, set_faults
from describer_aws.results_table import utc_now
from describer_rules.contracts import ErrorCode, Status

pytestmark = pytest.mark.integration

SHORT_TIMEOUT_S = 30


@pytest.fixture
def short_timeout(local_settings: LocalSettings, deployment: Deployment) -> Iterator[str]:
    sfn = deployment.client("stepfunctions")
    machine = deployment.outputs["StateMachineArn"]
    deployed = sfn.describe_state_machine(stateMachineArn=machine)["definition"]
    definition: dict[str, Any] = json.loads(deployed)
    assert definition["TimeoutSeconds"] > SHORT_TIMEOUT_S
    sfn.update_state_machine(
        stateMachineArn=machine, definition=json.dumps({**definition, "TimeoutSeconds": SHORT_TIMEOUT_S})
    )
    set_faults(local_settings, FaultSpec(rates={FaultKind.ENDPOINT_SLOW: 1.0}, slow_seconds=60))
    try:
        yield machine
    finally:
        set_faults(local_settings, FaultSpec())
        sfn.update_state_machine(stateMachineArn=machine, definition=deployed)


def test_a_run_past_its_timeout_ends_failed_execution_timed_out(
    tmp_path: Path, deployment: Deployment, short_timeout: str
) -> None:
    [photo] = synthetic_photos(tmp_path, per_category=1, seed=41)[:1]
    uploaded_at = utc_now()
    upload = UploadRef.from_response(deployment.upload(photo.path, photo.key), uploaded_at)
    final = wait_for_final_records(deployment, {photo.product_id: upload}, timeout_s=180)
    record = final[photo.product_id]
    assert (record.status, record.error_code) == (Status.FAILED, ErrorCode.EXECUTION_TIMED_OUT)
    assert record.error_message is not None and "TIMED_OUT" in record.error_message
    execution_arn = f"{short_timeout.replace(':stateMachine:', ':execution:')}:{record.execution_name}"
    execution = deployment.client("stepfunctions").describe_execution(executionArn=execution_arn)
    assert execution["status"] == "TIMED_OUT"
    history = deployment.client("stepfunctions").get_execution_history(executionArn=execution_arn)["events"]
    assert "ExecutionTimedOut" in [event["type"] for event in history]
