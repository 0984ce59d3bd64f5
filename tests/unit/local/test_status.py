"""`describer status` on a stack in moto: counts by status and error code within the window, the review
queue, the oldest PROCESSING record and its run, queue depths, the endpoint, and the printed table."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber
from moto import mock_aws
from rich.console import Console

from describer import status
from describer.cli import build_parser
from describer.deployment import Deployment

TABLE = "results"
SINCE = "2026-12-03T08:00:00.000Z"
ROLE = "arn:aws:iam::123456789012:role/sfn"
INSTANCE = "ml.g4dn.xlarge"


def _create_table(dynamodb: Any) -> None:
    dynamodb.create_table(
        TableName=TABLE,
        BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[
            {"AttributeName": name, "AttributeType": "S"}
            for name in ("product_id", "status", "updated_at", "review")
        ],
        KeySchema=[{"AttributeName": "product_id", "KeyType": "HASH"}],
        GlobalSecondaryIndexes=[
            {
                "IndexName": "by-status",
                "KeySchema": [
                    {"AttributeName": "status", "KeyType": "HASH"},
                    {"AttributeName": "updated_at", "KeyType": "RANGE"},
                ],
                "Projection": {"ProjectionType": "INCLUDE", "NonKeyAttributes": ["error_code"]},
            },
            {
                "IndexName": "by-review",
                "KeySchema": [
                    {"AttributeName": "review", "KeyType": "HASH"},
                    {"AttributeName": "updated_at", "KeyType": "RANGE"},
                ],
                "Projection": {"ProjectionType": "ALL"},
            },
        ],
    )


def _record(dynamodb: Any, product_id: str, record_status: str, updated_at: str, **fields: str) -> None:
    item = {"product_id": product_id, "status": record_status, "updated_at": updated_at, **fields}
    dynamodb.put_item(TableName=TABLE, Item={name: {"S": value} for name, value in item.items()})


@pytest.fixture
def deployment(monkeypatch: pytest.MonkeyPatch) -> Iterator[Deployment]:
    for name, value in {
        "AWS_ACCESS_KEY_ID": "x",
        "AWS_SECRET_ACCESS_KEY": "x",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(name, value)
    with mock_aws():
        session = boto3.Session(region_name="us-east-1")
        dynamodb = session.client("dynamodb")
        _create_table(dynamodb)
        sqs = session.client("sqs")
        queues = {
            output: sqs.create_queue(QueueName=name)["QueueUrl"]
            for output, name in [
                ("AdmissionQueueUrl", "admission"),
                ("AdmissionDeadLetterQueueUrl", "admission-dlq"),
                ("StoppedExecutionDeadLetterQueueUrl", "stopped-dlq"),
            ]
        }
        sfn = session.client("stepfunctions")
        machine = sfn.create_state_machine(
            name="describe",
            definition=json.dumps({"StartAt": "A", "States": {"A": {"Type": "Succeed"}}}),
            roleArn=ROLE,
        )["stateMachineArn"]
        stack = Deployment("describer", session)
        stack.__dict__["outputs"] = {
            "ResultsTableName": TABLE,
            "ResultsStatusIndexName": "by-status",
            "ResultsReviewIndexName": "by-review",
            "StateMachineArn": machine,
            "EndpointName": "product-describer",
            **queues,
        }
        yield stack


def _fill(deployment: Deployment) -> None:
    dynamodb = deployment.client("dynamodb")
    sfn = deployment.client("stepfunctions")
    sfn.start_execution(stateMachineArn=deployment.outputs["StateMachineArn"], name="run-stuck", input="{}")
    _record(dynamodb, "1", "COMPLETED", "2026-12-03T09:00:00.000Z")
    _record(dynamodb, "2", "COMPLETED", "2026-12-03T09:01:00.000Z", review="PENDING")
    _record(dynamodb, "3", "COMPLETED", "2026-12-01T09:00:00.000Z", review="PENDING")  # before the window
    _record(dynamodb, "4", "FAILED", "2026-12-03T09:02:00.000Z", error_code="NOT_AN_IMAGE")
    _record(dynamodb, "5", "FAILED", "2026-12-03T09:03:00.000Z", error_code="NOT_AN_IMAGE")
    _record(dynamodb, "6", "FAILED", "2026-12-03T09:04:00.000Z", error_code="ENDPOINT_UNAVAILABLE")
    _record(dynamodb, "7", "FAILED", "2026-11-30T09:04:00.000Z", error_code="INTERNAL_ERROR")
    _record(dynamodb, "8", "PROCESSING", "2026-12-02T07:00:00.000Z", execution_name="run-stuck")
    _record(dynamodb, "9", "PROCESSING", "2026-12-03T09:05:00.000Z", execution_name="run-gone")
    sqs = deployment.client("sqs")
    for _ in range(3):
        sqs.send_message(QueueUrl=deployment.outputs["AdmissionQueueUrl"], MessageBody="{}")
    sqs.send_message(QueueUrl=deployment.outputs["AdmissionDeadLetterQueueUrl"], MessageBody="{}")


def test_counts_within_the_window_by_status_and_error_code(deployment: Deployment) -> None:
    _fill(deployment)
    counts, codes = status.record_counts(deployment, SINCE)
    assert counts == {"COMPLETED": 1 + 1, "FAILED": 3, "PROCESSING": 1}
    assert codes == {"NOT_AN_IMAGE": 2, "ENDPOINT_UNAVAILABLE": 1}


def test_review_queue_and_the_oldest_processing_record_ignore_the_window(deployment: Deployment) -> None:
    _fill(deployment)
    assert status.review_queue(deployment) == 2
    oldest = status.oldest_processing(deployment)
    assert oldest is not None
    assert (oldest.product_id, oldest.execution_name) == ("8", "run-stuck")
    assert oldest.execution_status in {"RUNNING", "SUCCEEDED"}  # moto's executions end at once or not


def test_a_processing_record_whose_run_step_functions_never_heard_of(deployment: Deployment) -> None:
    _record(deployment.client("dynamodb"), "9", "PROCESSING", "2026-12-03T09:05:00.000Z", execution_name="x")
    oldest = status.oldest_processing(deployment)
    assert oldest is not None and oldest.execution_status is None


def test_queue_depths_and_the_admission_queues_oldest_message_from_cloudwatch(deployment: Deployment) -> None:
    _fill(deployment)
    admission = status.queue_depth(deployment, "AdmissionQueueUrl", with_age=True)
    assert (admission.name, admission.visible, admission.in_flight) == ("AdmissionQueue", 3, 0)
    assert admission.oldest_age_s is None  # no datapoint yet
    deployment.client("cloudwatch").put_metric_data(
        Namespace="AWS/SQS",
        MetricData=[
            {
                "MetricName": "ApproximateAgeOfOldestMessage",
                "Dimensions": [{"Name": "QueueName", "Value": "admission"}],
                "Timestamp": datetime.now(UTC) - timedelta(minutes=2),
                "Value": 42.0,
            }
        ],
    )
    assert status.queue_depth(deployment, "AdmissionQueueUrl", with_age=True).oldest_age_s == 42.0
    assert status.queue_depth(deployment, "AdmissionDeadLetterQueueUrl").visible == 1


def test_the_endpoints_instances_or_that_it_is_not_deployed(deployment: Deployment) -> None:
    missing = status.endpoint_state(deployment, None)
    assert (missing.status, missing.instances) == ("not deployed", 0)
    sagemaker = deployment.client("sagemaker")
    sagemaker.create_model(
        ModelName="m",
        ExecutionRoleArn=ROLE,
        PrimaryContainer={"Image": "123.dkr.ecr.us-east-1.amazonaws.com/x"},
    )
    sagemaker.create_endpoint_config(
        EndpointConfigName="c",
        ProductionVariants=[
            {
                "VariantName": "v",
                "ModelName": "m",
                "InitialInstanceCount": 2,
                "InstanceType": "ml.g4dn.xlarge",
            }
        ],
    )
    sagemaker.create_endpoint(EndpointName="product-describer", EndpointConfigName="c")
    endpoint = status.endpoint_state(deployment, None)
    assert (endpoint.name, endpoint.status, endpoint.instances) == ("product-describer", "InService", 2)


def test_on_the_local_stack_the_model_host_stands_in(deployment: Deployment) -> None:
    local = status.endpoint_state(deployment, "http://127.0.0.1:9")  # nothing listens there
    assert (local.status, local.instances) == ("not answering", None)
    assert "local model host" in local.note


def test_the_table_shows_every_figure(deployment: Deployment) -> None:
    _fill(deployment)
    report = status.stack_status(deployment, SINCE, "http://127.0.0.1:9")
    console = Console(file=io.StringIO(), width=160)
    console.print(status.status_table(report))
    text = console.file.getvalue()  # type: ignore[attr-defined]
    for expected in (
        "records updated since 2026-12-03T08:00:00.000Z",
        "  NOT_AN_IMAGE",
        "review queue",
        "run-stuck",
        "AdmissionQueue",
        "AdmissionDeadLetterQueue",
        "StoppedExecutionDeadLetterQueue",
        "local model host",
    ):
        assert expected in text, expected


def test_the_command_is_registered_with_the_target_options() -> None:
    args = build_parser().parse_args(["status", "--since", "2026-12-03", "--stack-name", "s", "--json"])
    assert (args.since, args.stack_name, args.json) == ("2026-12-03T00:00:00.000Z", "s", True)


def test_a_since_that_is_no_time_is_refused_by_the_parser(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(["status", "--since", "yesterday"])
    assert "not an ISO 8601 date or time: 'yesterday'" in capsys.readouterr().err


def test_a_stack_without_the_endpoint_output_is_read_from_its_parameters(deployment: Deployment) -> None:
    cloudformation = deployment.client("cloudformation")
    stack = {
        "StackName": "describer",
        "CreationTime": datetime.now(UTC),
        "StackStatus": "UPDATE_COMPLETE",
        "Parameters": [{"ParameterKey": "EndpointName", "ParameterValue": "older-endpoint"}],
    }
    del deployment.outputs["EndpointName"]
    with Stubber(cloudformation) as stub:
        stub.add_response("describe_stacks", {"Stacks": [stack]}, {"StackName": "describer"})
        assert status.endpoint_state(deployment, "http://127.0.0.1:9").name == "older-endpoint"


def test_the_cost_of_what_was_done_by_day_from_the_records_ledgers(deployment: Deployment) -> None:
    from decimal import Decimal

    from boto3.dynamodb.types import TypeSerializer

    ledger = {
        "endpoint_seconds": Decimal("0.62"),
        "endpoint_calls": 2,
        "bedrock": {"on_demand": {"input": 332, "output": 246}},
        "state_transitions": 9,
        "lambda_invocations": 6,
        "lambda_gb_seconds": Decimal("0.87"),
    }
    writer = {"description": "us.anthropic.claude-haiku-4-5-20251001-v1:0"}
    dynamodb = deployment.client("dynamodb")
    serialize = TypeSerializer().serialize
    for product_id, record_status, updated_at, with_ledger in [
        ("a", "COMPLETED", "2026-12-03T09:00:00.000Z", True),
        ("b", "FAILED", "2026-12-03T10:00:00.000Z", True),
        ("c", "COMPLETED", "2026-12-04T01:00:00.000Z", True),
        ("d", "COMPLETED", "2026-12-04T02:00:00.000Z", False),  # written before the ledger
        ("e", "COMPLETED", "2026-12-01T02:00:00.000Z", True),  # before the window
    ]:
        item: dict[str, Any] = {"product_id": product_id, "status": record_status, "updated_at": updated_at}
        if with_ledger:
            item |= {"cost": ledger, "model_ids": writer}
        dynamodb.put_item(TableName=TABLE, Item={name: serialize(value) for name, value in item.items()})
    days = status.run_costs(deployment, SINCE)
    assert [(day.day, day.products, day.without_ledger) for day in days] == [
        ("2026-12-03", 2, 0),
        ("2026-12-04", 1, 1),
    ]
    one = days[1].dollars
    # Haiku through the us. profile (+10 %), the endpoint's 0.62 s at the autoscaling target.
    assert one["Bedrock"] == pytest.approx(1.1 * (332 * 1.0 + 246 * 5.0) / 1e6)
    assert days[0].total == pytest.approx(2 * days[1].total)
    console = Console(file=io.StringIO(), width=200)
    console.print(status.status_table(status.stack_status(deployment, SINCE, "http://127.0.0.1:9")))
    text = console.file.getvalue()  # type: ignore[attr-defined]
    assert "cost 2026-12-04" in text and "1 without a ledger" in text
