"""Product events: every final record is announced on the bus, delivered by a rule to a queue (moto)."""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber
from record_failure import app as record_failure_app
from save_result import app as save_result_app

from describer_aws.product_events import MAX_EVENT_BYTES, ProductEvents, entry_size, product_event
from describer_rules.contracts import LocaleContent, ProductEventDetail, ProductRecord, Status
from describer_rules.errors import EndpointThrottled, TransientError

from .conftest import EVENT_BUS, Aws, FakeLambdaContext, image_bytes
from .test_outcomes import _failure_event, _prepare, _save_event

CONTEXT = FakeLambdaContext()


def _subscribe(aws: Aws) -> str:
    """A rule on the stack's bus, as a downstream service would write it, delivering to a queue."""
    sqs = boto3.client("sqs")
    queue_url = sqs.create_queue(QueueName="downstream")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    aws.events.put_rule(
        Name="all-products",
        EventBusName=EVENT_BUS,
        EventPattern=json.dumps(
            {
                "source": ["product-describer"],
                "detail-type": ["Product Described", "Product Description Failed"],
            }
        ),
    )
    aws.events.put_targets(
        Rule="all-products", EventBusName=EVENT_BUS, Targets=[{"Id": "q", "Arn": queue_arn}]
    )
    return str(queue_url)


def _received(queue_url: str) -> list[dict[str, Any]]:
    messages = boto3.client("sqs").receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10)
    return [json.loads(message["Body"]) for message in messages.get("Messages", [])]


def test_a_completed_record_is_announced_with_its_locales(aws: Aws) -> None:
    queue = _subscribe(aws)
    workflow, prepared = _prepare(aws, "incoming/Shirts/15970.jpg", image_bytes())
    assert save_result_app.handler(_save_event(workflow, prepared), CONTEXT)["saved"] is True
    [event] = _received(queue)
    assert (event["source"], event["detail-type"]) == ("product-describer", "Product Described")
    detail = ProductEventDetail.model_validate(event["detail"])
    assert (detail.product_id, detail.status, detail.error_code) == ("15970", Status.COMPLETED, None)
    assert detail.source_version == prepared["product"]["source"]["version_id"]
    assert detail.locales == ["en-US"]
    assert detail.content is not None and detail.content["en-US"].title.startswith("Checked Linen Shirt")


def test_a_failed_record_is_announced_with_its_error_code(aws: Aws) -> None:
    queue = _subscribe(aws)
    workflow, prepared = _prepare(aws, "incoming/Shirts/7.jpg", image_bytes())
    record_failure_app.handler(_failure_event(workflow, prepared, EndpointThrottled("busy")), CONTEXT)
    [event] = _received(queue)
    assert event["detail-type"] == "Product Description Failed"
    assert event["detail"]["error_code"] == "ENDPOINT_UNAVAILABLE"
    assert event["detail"]["status"] == "FAILED" and event["detail"]["locales"] == []


def test_a_run_that_lost_its_record_announces_nothing(aws: Aws) -> None:
    old_workflow, old_prepared = _prepare(
        aws, "incoming/Shirts/9.jpg", image_bytes(), time="2026-11-21T03:00:00Z"
    )
    _prepare(aws, "incoming/Shirts/9.jpg", image_bytes("PNG"), time="2026-11-21T03:00:09Z")
    queue = _subscribe(aws)
    assert save_result_app.handler(_save_event(old_workflow, old_prepared), CONTEXT)["saved"] is False
    assert _received(queue) == []


def _record(content_chars: int) -> ProductRecord:
    copy = LocaleContent(
        title="t",
        description="d" * content_chars,
        bullets=["b"] * 3,
        keywords=["k"] * 5,
        meta_description="m",
    )
    return ProductRecord(
        product_id="p",
        category="Shirts",
        status=Status.COMPLETED,
        source_bucket="b",
        source_key="incoming/p.jpg",
        source_version="v",
        content={"en-US": copy, "de-DE": copy},
        created_at="2026-12-01T00:00:00.000Z",
        updated_at="2026-12-01T00:00:00.000Z",
    )


def test_content_that_would_exceed_the_event_size_limit_stays_in_the_record() -> None:
    small, large = product_event(_record(1000), "bus"), product_event(_record(MAX_EVENT_BYTES // 2), "bus")
    assert "content" in json.loads(small["Detail"])
    detail = json.loads(large["Detail"])
    assert "content" not in detail and detail["locales"] == ["en-US", "de-DE"]
    assert entry_size(large) <= MAX_EVENT_BYTES


def test_a_failed_put_is_a_transient_error_so_the_step_retries() -> None:
    client = boto3.client("events", region_name="us-east-1")
    with Stubber(client) as stubber:
        stubber.add_response(
            "put_events",
            {
                "FailedEntryCount": 1,
                "Entries": [{"ErrorCode": "ThrottlingException", "ErrorMessage": "slow"}],
            },
        )
        with pytest.raises(TransientError, match="ThrottlingException"):
            ProductEvents("bus", client).publish(_record(100))
