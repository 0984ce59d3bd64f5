"""The starter Lambda against moto's Step Functions: deterministic names, duplicates, admission control."""

from __future__ import annotations

import json
import os
from typing import Any

import boto3
import pytest
from start_workflow import app as starter_app

from describer_core.states import ObjectCreatedEvent, RedriveMessage, WorkflowInput

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
    queue_url = boto3.client("sqs").create_queue(QueueName="admission")["QueueUrl"]
    monkeypatch.setenv("ADMISSION_QUEUE_URL", queue_url)
    dead_letter_url = boto3.client("sqs").create_queue(QueueName="admission-dlq")["QueueUrl"]
    monkeypatch.setenv("ADMISSION_DEAD_LETTER_QUEUE_URL", dead_letter_url)
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


def test_a_message_that_is_not_an_s3_event_goes_to_the_dead_letter_queue(state_machine: str) -> None:
    not_s3 = {"source": "aws.ec2", "detail-type": "Object Created"}
    good = event_bridge_event("incoming/Shirts/1.jpg", "v1")
    assert starter_app.handler(_sqs(not_s3, good), CONTEXT) == {"batchItemFailures": []}
    assert len(_running(state_machine)) == 1
    parked = boto3.client("sqs").receive_message(
        QueueUrl=os.environ["ADMISSION_DEAD_LETTER_QUEUE_URL"], MaxNumberOfMessages=10
    )["Messages"]
    assert [json.loads(message["Body"]) for message in parked] == [not_s3]


def test_a_malformed_message_that_cannot_be_parked_is_retried(
    state_machine: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ADMISSION_DEAD_LETTER_QUEUE_URL", os.environ["ADMISSION_QUEUE_URL"] + "-missing")
    malformed = {"source": "aws.s3", "detail-type": "Object Created"}
    assert starter_app.handler(_sqs(malformed), CONTEXT) == {"batchItemFailures": [{"itemIdentifier": "m0"}]}


class _Entries:
    """Matches ChangeMessageVisibilityBatch entries: one per deferred record, waits within bounds."""

    def __init__(self, bounds: dict[str, tuple[int, int]]) -> None:
        self.bounds = bounds

    def __eq__(self, entries: object) -> bool:
        assert isinstance(entries, list)
        assert {entry["ReceiptHandle"] for entry in entries} == set(self.bounds)
        for entry in entries:
            low, high = self.bounds[entry["ReceiptHandle"]]
            assert low <= entry["VisibilityTimeout"] <= high, entry
        return True


def test_deferred_messages_come_back_sooner_the_fewer_times_they_were_deferred() -> None:
    from botocore.stub import Stubber

    from describer_core.admission import SqsRecord, reoffer_soon

    def record(handle: str, receives: int) -> SqsRecord:
        return SqsRecord(
            messageId=handle,
            receiptHandle=handle,
            body="{}",
            attributes={"ApproximateReceiveCount": str(receives)},
        )

    sqs = boto3.client("sqs", region_name="us-east-1")
    with Stubber(sqs) as stubber:
        expected = {
            "QueueUrl": "q",
            "Entries": _Entries({"first": (5, 10), "second": (10, 15), "old": (60, 65)}),
        }
        stubber.add_response("change_message_visibility_batch", {"Successful": [], "Failed": []}, expected)
        reoffer_soon(sqs, "q", [record("first", 1), record("second", 2), record("old", 40)])
        stubber.assert_no_pending_responses()


def test_deferred_messages_of_a_real_queue_are_reoffered_without_error(state_machine: str) -> None:
    sqs = boto3.client("sqs")
    queue_url = os.environ["ADMISSION_QUEUE_URL"]
    for n in range(3):
        sqs.send_message(
            QueueUrl=queue_url, MessageBody=json.dumps(event_bridge_event(f"incoming/Shirts/{n}.jpg", "v1"))
        )
    received = sqs.receive_message(
        QueueUrl=queue_url, MaxNumberOfMessages=10, MessageSystemAttributeNames=["All"]
    )
    records = [
        {
            "messageId": m["MessageId"],
            "receiptHandle": m["ReceiptHandle"],
            "body": m["Body"],
            "attributes": m["Attributes"],
        }
        for m in received["Messages"]
    ]
    response = starter_app.handler({"Records": records}, CONTEXT)
    assert len(response["batchItemFailures"]) == 1
    assert len(_running(state_machine)) == 2


def test_a_redrive_message_starts_the_next_run_of_the_same_upload(state_machine: str) -> None:
    upload = WorkflowInput.from_event(
        ObjectCreatedEvent.model_validate(event_bridge_event("incoming/1.jpg", "v1"))
    )
    redrive = upload.model_copy(update={"redrive_count": 1})
    message = RedriveMessage(redrive=redrive).model_dump(mode="json")
    assert starter_app.handler(_sqs(message, message), CONTEXT) == {"batchItemFailures": []}
    [execution] = _running(state_machine)
    assert execution["name"] == redrive.execution_name != upload.execution_name
