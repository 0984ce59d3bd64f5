"""`describer redrive --stuck`: records PROCESSING past the run bound are found and re-run (moto)."""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import boto3
import pytest
import yaml
from moto import mock_aws
from rich.console import Console

from describer import redrive
from describer.deployment import Deployment
from describer_aws.results_table import ResultsTable
from describer_rules.contracts import ErrorCode, S3ObjectRef, Status
from describer_steps.states import ProductIdentity, RedriveMessage, WorkflowInput

TABLE = "results"
RUN_TIMEOUT_S = 600
LONG_AGO = "2026-01-01T00:00:00.000Z"


def _table_properties() -> dict:
    class Loader(yaml.SafeLoader):
        pass

    # The template's short-form intrinsics (!Ref ...) are irrelevant to the table's schema.
    Loader.add_multi_constructor("!", lambda loader, suffix, node: None)
    template = yaml.load((Path(__file__).parents[3] / "template.yaml").read_text(), Loader=Loader)
    return dict(template["Resources"]["ResultsTable"]["Properties"])


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
        table = _table_properties()
        session.client("dynamodb").create_table(
            TableName=TABLE,
            BillingMode=table["BillingMode"],
            AttributeDefinitions=table["AttributeDefinitions"],
            KeySchema=table["KeySchema"],
            GlobalSecondaryIndexes=table["GlobalSecondaryIndexes"],
        )
        queue_url = session.client("sqs").create_queue(QueueName="admission")["QueueUrl"]
        stack = Deployment("describer", session)
        stack.__dict__["outputs"] = {
            "ResultsTableName": TABLE,
            "ResultsStatusIndexName": "by-status",
            "AdmissionQueueUrl": queue_url,
            "RunTimeoutSeconds": str(RUN_TIMEOUT_S),
        }
        yield stack


def _upload(product_id: str) -> WorkflowInput:
    key = f"incoming/Shirts/{product_id}.jpg"
    return WorkflowInput(
        bucket="b", key=key, version_id="v1", event_time="2026-01-01T00:00:00Z", sequencer="0A"
    )


def _put(stack: Deployment, product_id: str, status: Status, updated_at: str) -> None:
    upload = _upload(product_id)
    identity = ProductIdentity(
        product_id=product_id,
        category="Shirts",
        source=S3ObjectRef(bucket="b", key=upload.key, version_id="v1"),
        order_token=upload.order_token,
    )
    code = {"error_code": ErrorCode.INTERNAL_ERROR, "error_message": "x"} if status == Status.FAILED else {}
    record = identity.record(status, f"{product_id}-run", **code)
    assert ResultsTable(TABLE, stack.client("dynamodb")).write_if_current(record)
    stack.client("dynamodb").update_item(
        TableName=TABLE,
        Key={"product_id": {"S": product_id}},
        UpdateExpression="SET updated_at = :t",
        ExpressionAttributeValues={":t": {"S": updated_at}},
    )


def test_only_records_processing_past_the_run_bound_are_stuck(deployment: Deployment) -> None:
    recent = (datetime.now(UTC) - timedelta(seconds=RUN_TIMEOUT_S)).isoformat().replace("+00:00", "Z")
    _put(deployment, "stuck", Status.PROCESSING, LONG_AGO)
    _put(deployment, "running", Status.PROCESSING, recent)
    _put(deployment, "failed", Status.FAILED, LONG_AGO)
    assert [r.product_id for r in redrive.stuck_records(deployment, RUN_TIMEOUT_S, [])] == ["stuck"]
    assert redrive.stuck_records(deployment, RUN_TIMEOUT_S, ["running"]) == []


def test_redrive_stuck_queues_the_next_run_of_each_stuck_record(deployment: Deployment) -> None:
    _put(deployment, "stuck", Status.PROCESSING, LONG_AGO)
    args = argparse.Namespace(
        stuck=True, run_timeout=None, product=None, dry_run=False, timeout=0.0, code=None, since=None
    )
    console = Console(record=True, width=200)
    assert redrive.redrive(args, deployment, console) == 1, "the run has not ended within --timeout 0"
    assert "1 record(s) stuck PROCESSING (run bound 600 s)" in console.export_text()
    sqs = deployment.client("sqs")
    [message] = sqs.receive_message(QueueUrl=deployment.outputs["AdmissionQueueUrl"])["Messages"]
    run = RedriveMessage.model_validate(json.loads(message["Body"])).redrive
    assert (run.key, run.version_id, run.redrive_count) == ("incoming/Shirts/stuck.jpg", "v1", 1)
    assert run.order_token > _upload("stuck").order_token, "its claim wins over the stuck record"


def test_a_stack_without_the_output_needs_the_bound_given(deployment: Deployment) -> None:
    del deployment.outputs["RunTimeoutSeconds"]
    with pytest.raises(SystemExit, match="--run-timeout"):
        redrive.run_timeout_of(deployment, None)
    assert redrive.run_timeout_of(deployment, 900) == 900
