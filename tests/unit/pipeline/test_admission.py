"""The starter Lambda against moto's Step Functions: deterministic names, duplicates, admission control."""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest
from start_workflow import app as starter_app

from describer_core.states import WorkflowInput

from .conftest import REPO, Aws, FakeLambdaContext, event_bridge_event

CONTEXT = FakeLambdaContext()


@pytest.fixture
def state_machine(aws: Aws, monkeypatch: pytest.MonkeyPatch) -> str:
    definition = {"StartAt": "Wait", "States": {"Wait": {"Type": "Wait", "Seconds": 60, "End": True}}}
    arn = aws.sfn.create_state_machine(
        name="describe-product",
        definition=json.dumps(definition),
        roleArn="arn:aws:iam::123456789012:role/sfn",
    )["stateMachineArn"]
    monkeypatch.setenv("STATE_MACHINE_ARN", arn)
    return str(arn)


def _sqs(*events: dict[str, Any]) -> dict[str, Any]:
    sample = json.loads((REPO / "events" / "sqs_object_created.json").read_text())["Records"][0]
    return {
        "Records": [
            {**sample, "messageId": f"m{i}", "body": json.dumps(event)} for i, event in enumerate(events)
        ]
    }


def _running(state_machine: str) -> list[dict[str, Any]]:
    sfn = boto3.client("stepfunctions")
    return list(sfn.list_executions(stateMachineArn=state_machine, statusFilter="RUNNING")["executions"])


def test_each_upload_starts_one_execution_named_after_it(state_machine: str) -> None:
    event = event_bridge_event("incoming/Shirts/15970.jpg", "v1")
    assert starter_app.handler(_sqs(event), CONTEXT) == {"batchItemFailures": []}
    [execution] = _running(state_machine)
    described = boto3.client("stepfunctions").describe_execution(executionArn=execution["executionArn"])
    workflow = WorkflowInput.model_validate_json(described["input"])
    assert execution["name"] == workflow.execution_name
    assert (workflow.key, workflow.version_id, workflow.sequencer) == (
        "incoming/Shirts/15970.jpg",
        "v1",
        "0062E99A88DC407460",
    )


def test_a_redelivered_event_is_success_without_a_second_run(state_machine: str) -> None:
    event = event_bridge_event("incoming/Shirts/15970.jpg", "v1")
    assert starter_app.handler(_sqs(event, event), CONTEXT) == {"batchItemFailures": []}
    assert starter_app.handler(_sqs(event), CONTEXT) == {"batchItemFailures": []}
    assert len(_running(state_machine)) == 1


def test_a_redelivery_after_the_run_ended_is_success_without_a_second_run(state_machine: str) -> None:
    event = event_bridge_event("incoming/Shirts/15970.jpg", "v1")
    starter_app.handler(_sqs(event), CONTEXT)
    sfn = boto3.client("stepfunctions")
    sfn.stop_execution(executionArn=_running(state_machine)[0]["executionArn"])
    assert starter_app.handler(_sqs(event), CONTEXT) == {"batchItemFailures": []}
    assert _running(state_machine) == []


def test_uploads_over_the_running_limit_go_back_to_the_queue(state_machine: str) -> None:
    events = [event_bridge_event(f"incoming/Shirts/{n}.jpg", "v1") for n in range(3)]
    response = starter_app.handler(_sqs(*events), CONTEXT)
    assert response == {"batchItemFailures": [{"itemIdentifier": "m2"}]}
    assert len(_running(state_machine)) == 2
    again = starter_app.handler(_sqs(events[2]), CONTEXT)
    assert again == {"batchItemFailures": [{"itemIdentifier": "m0"}]}


def test_a_message_that_is_not_an_s3_event_is_dropped_not_retried(state_machine: str) -> None:
    not_s3 = {"source": "aws.ec2", "detail-type": "Object Created"}
    good = event_bridge_event("incoming/Shirts/1.jpg", "v1")
    assert starter_app.handler(_sqs(not_s3, good), CONTEXT) == {"batchItemFailures": []}
    assert len(_running(state_machine)) == 1
