"""Fixtures for the review desk: the results table, bus and bucket in moto, records that need review."""

from __future__ import annotations

import html
import http.client
import io
import json
import re
import threading
import urllib.parse
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import pytest
from cfnlint.decode import decode
from moto import mock_aws
from PIL import Image

from describer.local.model_host.description_backends import ConverseRequest, OfflineWriter
from describer.review.desk import ReviewDesk
from describer.review.web import ReviewApp, ReviewServer, serve
from describer_aws.product_events import ProductEvents
from describer_aws.results_table import ResultsTable
from describer_rules.catalogue import load_catalogue
from describer_rules.contracts import (
    EVENT_SOURCE,
    Alternative,
    ProductEventType,
    ProductRecord,
    Status,
)
from describer_steps.settings import DescriptionSettings
from describer_steps.states import DescriptionResult
from describer_steps.write_description import write_description

REPO = Path(__file__).resolve().parents[3]
TABLE, BUS, BUCKET, INDEX = "results-review-test", "products-review-test", "uploads-review-test", "by-review"
REVIEWER = "arn:aws:sts::123456789012:assumed-role/Reviewers/alex"
SETTINGS = DescriptionSettings(bedrock_model_id="offline-describer-v1", locales=["en-US", "es-ES"])
SHIRT = {
    "Sleeve Length": "Long Sleeves",
    "Pattern": "Checked",
    "Fit": "Slim Fit",
    "Fabric": "Cotton",
    "Collar": "Spread Collar",
    "Colour": "Blue",
}


class OfflineBedrock:
    """Bedrock Runtime's Converse answered by the local stack's offline writer (deterministic copy)."""

    def converse(self, **request: Any) -> dict[str, Any]:
        reply = OfflineWriter().converse(ConverseRequest.from_wire(request))
        return {
            "output": {"message": {"role": "assistant", "content": [{"text": reply.text}]}},
            "stopReason": reply.stop_reason,
            "usage": {"inputTokens": reply.input_tokens, "outputTokens": reply.output_tokens},
        }


class InProcessRewriter:
    """What the WriteDescription Lambda does with a DescribeInput, in this process."""

    def __init__(self) -> None:
        self.calls: list[dict[str, str]] = []
        self.before_return: Any = None  # a hook: something that happens while the copy is written

    def rewrite(self, record: ProductRecord, attributes: Mapping[str, str]) -> DescriptionResult:
        self.calls.append(dict(attributes))
        category = load_catalogue().category(record.category)
        result = write_description(category, attributes, OfflineBedrock(), SETTINGS)  # type: ignore[arg-type]
        if self.before_return is not None:
            self.before_return()
        return result


def template_resource(name: str) -> dict[str, Any]:
    template, matches = decode(str(REPO / "template.yaml"))
    assert template is not None, matches
    return dict(template["Resources"][name]["Properties"])


def reviewer_policy_statements() -> list[dict[str, Any]]:
    """ReviewerPolicy's statements; the style guide's (an Fn::If) taken as if one is configured."""
    statements = []
    for statement in template_resource("ReviewerPolicy")["PolicyDocument"]["Statement"]:
        if "Fn::If" in statement:
            statement = statement["Fn::If"][1]
        statements.append(statement)
    return statements


def granted_actions() -> set[str]:
    return {
        action
        for statement in reviewer_policy_statements()
        for action in ([statement["Action"]] if isinstance(statement["Action"], str) else statement["Action"])
    }


def jpeg() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (32, 24), (30, 90, 160)).save(buffer, format="JPEG")
    return buffer.getvalue()


@dataclass
class Stack:
    dynamodb: Any
    s3: Any
    sqs: Any
    events: Any
    queue_url: str
    table: ResultsTable
    rewriter: InProcessRewriter

    def desk(self, reviewer: str = REVIEWER) -> ReviewDesk:
        return ReviewDesk(
            table=self.table,
            events=ProductEvents(BUS, self.events),
            rewriter=self.rewriter,
            settings=SETTINGS,
            reviewer=reviewer,
            needing_review=self.needing_review,
        )

    def needing_review(self) -> list[ProductRecord]:
        response = self.dynamodb.query(
            TableName=TABLE,
            IndexName=INDEX,
            KeyConditionExpression="#review = :pending",
            ExpressionAttributeNames={"#review": "review"},
            ExpressionAttributeValues={":pending": {"S": "PENDING"}},
            ScanIndexForward=True,
        )
        from describer_aws.results_table import _from_item

        return [ProductRecord.model_validate(_from_item(item)) for item in response["Items"]]

    def item(self, product_id: str) -> dict[str, Any] | None:
        item: dict[str, Any] | None = self.dynamodb.get_item(
            TableName=TABLE, Key={"product_id": {"S": product_id}}
        ).get("Item")
        return item

    def reviewed_events(self) -> list[dict[str, Any]]:
        response = self.sqs.receive_message(QueueUrl=self.queue_url, MaxNumberOfMessages=10)
        messages = response.get("Messages", [])
        return [json.loads(message["Body"]) for message in messages]

    def put(self, record: ProductRecord) -> ProductRecord:
        assert self.table.write_if_current(record)
        stored = self.table.get(record.product_id)
        assert stored is not None
        return stored


def shirt_record(
    product_id: str = "15970",
    updated_at: str = "2026-12-01T10:00:00.000Z",
    fabric_confidence: float = 0.41,
    order_token: str = "2026-12-01T10:00:00.000000Z#0001",
    category: str = "Shirts",
) -> ProductRecord:
    """A COMPLETED shirt whose Fabric is below the review threshold, with copy that passes the rules."""
    confidence = {name: 0.97 for name in SHIRT} | {"Fabric": fabric_confidence}
    written = write_description(
        load_catalogue().category(category),
        SHIRT,
        OfflineBedrock(),  # type: ignore[arg-type]
        SETTINGS,
        confidence,
    )
    key = f"incoming/{category}/{product_id}.jpg"
    return ProductRecord(
        product_id=product_id,
        category=category,
        status=Status.COMPLETED,
        source_bucket=BUCKET,
        source_key=key,
        source_version="null",
        attributes=dict(SHIRT),
        confidence=confidence,
        alternatives={"Fabric": [Alternative(value="Polyester", confidence=0.33)]},
        needs_review=fabric_confidence < SETTINGS.review_threshold,
        description=written.text,
        content=written.content,
        token_usage=written.token_usage,
        execution_name=f"{product_id}-run",
        order_token=order_token,
        created_at=updated_at,
        updated_at=updated_at,
    )


@pytest.fixture
def stack(monkeypatch: pytest.MonkeyPatch) -> Iterator[Stack]:
    for name, value in {
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
    }.items():
        monkeypatch.setenv(name, value)
    for name in ("AWS_ENDPOINT_URL", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    with mock_aws():
        table = template_resource("ResultsTable")
        dynamodb = boto3.client("dynamodb")
        dynamodb.create_table(
            TableName=TABLE,
            BillingMode=table["BillingMode"],
            AttributeDefinitions=table["AttributeDefinitions"],
            KeySchema=table["KeySchema"],
            GlobalSecondaryIndexes=table["GlobalSecondaryIndexes"],
        )
        s3 = boto3.client("s3")
        s3.create_bucket(Bucket=BUCKET)
        events, sqs = boto3.client("events"), boto3.client("sqs")
        events.create_event_bus(Name=BUS)
        queue_url = sqs.create_queue(QueueName="reviewed")["QueueUrl"]
        queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]
        pattern = {"source": [EVENT_SOURCE], "detail-type": [ProductEventType.REVIEWED.value]}
        events.put_rule(Name="reviewed", EventBusName=BUS, EventPattern=json.dumps(pattern))
        events.put_targets(Rule="reviewed", EventBusName=BUS, Targets=[{"Id": "q", "Arn": queue_arn}])
        yield Stack(
            dynamodb=dynamodb,
            s3=s3,
            sqs=sqs,
            events=events,
            queue_url=queue_url,
            table=ResultsTable(TABLE, dynamodb),
            rewriter=InProcessRewriter(),
        )


@dataclass
class Browser:
    """A tiny client: one connection per request, the session cookie kept like a browser would;
    a path is the desk's page (under the desk's base path)."""

    port: int
    base: str = ""
    cookie: str | None = None
    last_headers: dict[str, str] = field(default_factory=dict)

    def request(
        self,
        method: str,
        path: str,
        form: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, str]:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        headers = ({"Cookie": self.cookie} if self.cookie else {}) | (headers or {})
        body = None
        if form is not None:
            body = urllib.parse.urlencode(form)
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        connection.request(method, self.base + path, body=body, headers=headers)
        response = connection.getresponse()
        self.last_headers = {name.lower(): value for name, value in response.getheaders()}
        text = response.read().decode(errors="replace")
        connection.close()
        return response.status, text

    def sign_in(self, token: str) -> None:
        status, _ = self.request("GET", f"/?token={token}")
        assert status == 303
        self.cookie = self.last_headers["set-cookie"].split(";", 1)[0]


@pytest.fixture
def server(stack: Stack) -> Iterator[ReviewServer]:
    running = serve(ReviewApp(stack.desk(), stack.s3, "product-describer-test"), "127.0.0.1", 0)
    thread = threading.Thread(target=running.serve_forever, daemon=True)
    thread.start()
    yield running
    running.shutdown()
    running.server_close()


def browser_of(server: ReviewServer, signed_in: bool = True) -> Browser:
    browser = Browser(server.port, server.base)
    if signed_in:
        browser.sign_in(server.app.sessions.token)
    return browser


def form_fields(page: str) -> dict[str, str]:
    """The product form as a browser would submit it untouched: hidden fields, checked radios, copy."""
    fields: dict[str, str] = {}
    for tag in re.findall(r"<input [^>]*>", page):
        name, value = re.search(r'name="([^"]*)"', tag), re.search(r'value="([^"]*)"', tag)
        if name is None or (' type="radio"' in tag and " checked" not in tag):
            continue
        if ' type="text"' in tag or ' type="hidden"' in tag or ' type="radio"' in tag:
            fields[html.unescape(name.group(1))] = html.unescape(value.group(1)) if value else ""
    for name, text in re.findall(r'<textarea name="([^"]*)"[^>]*>(.*?)</textarea>', page, flags=re.DOTALL):
        fields[html.unescape(name)] = html.unescape(text)
    return fields
