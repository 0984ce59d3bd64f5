"""Fixtures for the pipeline's unit tests: AWS in moto, images made in memory, a Lambda context."""

from __future__ import annotations

import io
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import boto3
import pytest
from cfnlint.decode import decode
from moto import mock_aws
from PIL import Image

# Powertools reads these when describer_aws.observability is first imported, before any fixture runs.
os.environ.setdefault("POWERTOOLS_SERVICE_NAME", "product-describer-test")
os.environ.setdefault("POWERTOOLS_METRICS_NAMESPACE", "ProductDescriberTest")
os.environ.setdefault("POWERTOOLS_TRACE_DISABLED", "true")

REPO = Path(__file__).resolve().parents[3]
TEMPLATE = REPO / "template.yaml"
DESCRIBE_ASL = REPO / "statemachine" / "describe_product.asl.yaml"
BUCKET = "uploads-test"
TABLE = "results-test"
EVENT_BUS = "products-test"
HANDLER_MODULES = (
    "start_workflow.app",
    "prepare.app",
    "ask_attribute.app",
    "write_description.app",
    "save_result.app",
    "publish_events.app",
    "record_failure.app",
    "backfill_plan.app",
    "record_stopped.app",
)


@pytest.fixture(autouse=True)
def pipeline_environment(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name, value in {
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "RESULTS_TABLE_NAME": TABLE,
        "UPLOAD_PREFIX": "incoming/",
        "MAX_IMAGE_BYTES": "200000",
        "MAX_IMAGE_PIXELS": "1000000",
        "ENDPOINT_NAME": "describer-endpoint",
        "BEDROCK_MODEL_ID": "us.anthropic.claude-sonnet-4-6",
        "MAX_RUNNING_EXECUTIONS": "2",
        "EVENT_BUS_NAME": EVENT_BUS,
        "MAP_CONCURRENCY": "3",
    }.items():
        monkeypatch.setenv(name, value)
    for name in ("AWS_ENDPOINT_URL", "AWS_PROFILE", "AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME"):
        monkeypatch.delenv(name, raising=False)
    yield
    _clear_handler_caches()


def _clear_handler_caches() -> None:
    import importlib
    import sys

    for module_name in HANDLER_MODULES:
        module = sys.modules.get(module_name) or importlib.import_module(module_name)
        for attribute in ("_dependencies", "_table"):
            cache_clear = getattr(getattr(module, attribute, None), "cache_clear", None)
            if cache_clear is not None:
                cache_clear()
    # The shared clients (one per process, as on a warm Lambda): the next test's belong to its moto.
    wiring = importlib.import_module("describer_aws.clients")
    for value in vars(wiring).values():
        if getattr(value, "__module__", None) == wiring.__name__ and hasattr(value, "cache_clear"):
            value.cache_clear()


@cache
def load_template() -> dict[str, Any]:
    template, matches = decode(str(TEMPLATE))
    assert template is not None, matches
    return dict(template)


def template_resource(name: str) -> dict[str, Any]:
    return dict(load_template()["Resources"][name]["Properties"])


def template_parameter_default(name: str) -> int:
    return int(load_template()["Parameters"][name]["Default"])


@dataclass
class Aws:
    s3: Any
    dynamodb: Any
    sfn: Any
    events: Any

    def upload(self, key: str, body: bytes, metadata: dict[str, str] | None = None) -> str:
        response = self.s3.put_object(Bucket=BUCKET, Key=key, Body=body, Metadata=metadata or {})
        return str(response["VersionId"])

    def record(self, product_id: str) -> dict[str, Any] | None:
        item = self.dynamodb.get_item(TableName=TABLE, Key={"product_id": {"S": product_id}}).get("Item")
        return None if item is None else {name: next(iter(value.values())) for name, value in item.items()}


@pytest.fixture
def aws() -> Iterator[Aws]:
    """A versioned upload bucket and the results table as template.yaml declares it, in moto."""
    with mock_aws():
        s3 = boto3.client("s3")
        s3.create_bucket(Bucket=BUCKET)
        s3.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
        table = template_resource("ResultsTable")
        dynamodb = boto3.client("dynamodb")
        dynamodb.create_table(
            TableName=TABLE,
            BillingMode=table["BillingMode"],
            AttributeDefinitions=table["AttributeDefinitions"],
            KeySchema=table["KeySchema"],
            GlobalSecondaryIndexes=table["GlobalSecondaryIndexes"],
        )
        events = boto3.client("events")
        events.create_event_bus(Name=EVENT_BUS)
        yield Aws(s3=s3, dynamodb=dynamodb, sfn=boto3.client("stepfunctions"), events=events)


def image_bytes(image_format: str = "JPEG", size: tuple[int, int] = (64, 48)) -> bytes:
    image = Image.new("RGB", size, (30, 90, 160))
    buffer = io.BytesIO()
    image.save(buffer, format=image_format)
    return buffer.getvalue()


@dataclass
class FakeLambdaContext:
    function_name: str = "test-function"
    memory_limit_in_mb: int = 256
    invoked_function_arn: str = "arn:aws:lambda:us-east-1:123456789012:function:test-function"
    aws_request_id: str = "00000000-0000-0000-0000-000000000000"


@pytest.fixture
def lambda_context() -> FakeLambdaContext:
    return FakeLambdaContext()


def event_bridge_event(
    key: str, version_id: str, sequencer: str = "0062E99A88DC407460", time: str = "2026-11-21T03:00:00Z"
) -> dict[str, Any]:
    """An S3 "Object Created" event as EventBridge delivers it."""
    sample = json.loads((REPO / "events" / "eventbridge_object_created.json").read_text())
    sample["time"] = time
    sample["detail"]["bucket"]["name"] = BUCKET
    sample["detail"]["object"].update({"key": key, "version-id": version_id, "sequencer": sequencer})
    return dict(sample)
