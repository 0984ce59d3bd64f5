"""RecordStopped against moto: a stopped execution ends its PROCESSING record FAILED, and nothing else."""

from __future__ import annotations

import json
from typing import Any

import pytest
from prepare import app as prepare_app
from record_failure import app as record_failure_app
from record_stopped import app as record_stopped_app

from describer_steps.states import WorkflowInput

from .conftest import BUCKET, REPO, Aws, FakeLambdaContext, image_bytes
from .test_events import _received, _subscribe

CONTEXT = FakeLambdaContext()
KEY = "incoming/Shirts/15970.jpg"


def _status_change(workflow: WorkflowInput, status: str, error: str | None = None) -> dict[str, Any]:
    event = json.loads((REPO / "events" / "execution_status_change.json").read_text())
    event["detail"].update(
        {
            "name": workflow.execution_name,
            "status": status,
            "input": workflow.model_dump_json(),
            "error": error,
        }
    )
    return dict(event)


def _claimed(aws: Aws, time: str = "2026-11-21T03:00:00Z") -> WorkflowInput:
    version = aws.upload(KEY, image_bytes())
    workflow = WorkflowInput(bucket=BUCKET, key=KEY, version_id=version, event_time=time, sequencer="0A")
    prepare_app.handler(
        {"workflow": workflow.model_dump(), "execution_name": workflow.execution_name}, CONTEXT
    )
    assert (aws.record("15970") or {}).get("status") == "PROCESSING"
    return workflow


@pytest.mark.parametrize(
    ("status", "code"),
    [("ABORTED", "EXECUTION_ABORTED"), ("TIMED_OUT", "EXECUTION_TIMED_OUT"), ("FAILED", "EXECUTION_FAILED")],
)
def test_a_run_stopped_while_processing_ends_failed_and_is_announced(
    aws: Aws, status: str, code: str
) -> None:
    queue = _subscribe(aws)
    workflow = _claimed(aws)
    output = record_stopped_app.handler(_status_change(workflow, status, "States.Runtime"), CONTEXT)
    assert output["recorded"] is True
    [event] = _received(queue)
    assert event["detail-type"] == "Product Description Failed"
    assert (event["detail"]["product_id"], event["detail"]["error_code"]) == ("15970", code)
    record = aws.record("15970")
    assert record is not None
    assert (record["status"], record["error_code"]) == ("FAILED", code)
    assert record["execution_name"] == workflow.execution_name
    assert "States.Runtime" in record["error_message"]


def test_a_run_stopped_before_it_claimed_the_record_still_gets_one(aws: Aws) -> None:
    version = aws.upload(KEY, image_bytes())
    workflow = WorkflowInput(bucket=BUCKET, key=KEY, version_id=version, event_time="2026-11-21T03:00:00Z")
    assert record_stopped_app.handler(_status_change(workflow, "ABORTED"), CONTEXT)["recorded"] is True
    assert (aws.record("15970") or {}).get("error_code") == "EXECUTION_ABORTED"


def test_a_failure_recorded_by_the_workflow_keeps_its_own_code(aws: Aws) -> None:
    workflow = _claimed(aws)
    caught = {"Error": "EndpointThrottled", "Cause": "ENDPOINT_UNAVAILABLE: SageMaker ThrottlingException"}
    state = {"product": aws_product(aws, workflow), "error": caught}
    record_failure_app.handler(
        {"execution_name": workflow.execution_name, "workflow": workflow.model_dump(), "state": state},
        CONTEXT,
    )
    output = record_stopped_app.handler(_status_change(workflow, "FAILED", "ENDPOINT_UNAVAILABLE"), CONTEXT)
    assert output["recorded"] is False
    assert (aws.record("15970") or {}).get("error_code") == "ENDPOINT_UNAVAILABLE"


def test_a_newer_upload_keeps_its_record(aws: Aws) -> None:
    queue = _subscribe(aws)
    older = _claimed(aws, time="2026-11-21T03:00:00Z")
    newer = _claimed(aws, time="2026-11-21T03:00:00.500Z")
    assert record_stopped_app.handler(_status_change(older, "ABORTED"), CONTEXT)["recorded"] is False
    assert _received(queue) == []
    record = aws.record("15970")
    assert record is not None
    assert (record["status"], record["execution_name"]) == ("PROCESSING", newer.execution_name)


def aws_product(aws: Aws, workflow: WorkflowInput) -> dict[str, Any]:
    record = aws.record("15970") or {}
    return {
        "product_id": "15970",
        "category": record["category"],
        "source": {"bucket": BUCKET, "key": KEY, "version_id": workflow.version_id},
        "order_token": workflow.order_token,
    }
