"""FeedExport in moto: whole feeds, only the changes read, a cursor that a failure does not move."""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import boto3
import pytest
from boto3.dynamodb.types import TypeSerializer
from botocore.exceptions import ClientError
from moto import mock_aws

from describer_rules.contracts import ProductRecord, ReviewStatus
from describer_rules.feeds.formats import FeedFormat
from describer_steps.feed_export import FeedExportSettings, FeedState, export_feeds, feed_key, state_key

from .records import record, reviewed

# Powertools reads these when describer_aws.observability is first imported.
os.environ.setdefault("POWERTOOLS_SERVICE_NAME", "product-describer-test")
os.environ.setdefault("POWERTOOLS_TRACE_DISABLED", "true")

TABLE, BUCKET = "results-test", "uploads-test"


@dataclass
class LambdaContext:
    function_name: str = "feed-export"
    memory_limit_in_mb: int = 1024
    invoked_function_arn: str = "arn:aws:lambda:us-east-1:123456789012:function:feed-export"
    aws_request_id: str = "00000000-0000-0000-0000-000000000000"


SETTINGS = FeedExportSettings.model_validate(
    {
        "results_table_name": TABLE,
        "feed_bucket": BUCKET,
        "feed_formats": "google,shopify",
        "feed_locales": "en-US",
    }
)
FIRST, SECOND, THIRD = (datetime(2026, 12, 7, hour, tzinfo=UTC) for hour in (12, 13, 14))


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Any, Any]]:
    for name, value in {
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "t",
        "AWS_SECRET_ACCESS_KEY": "t",
    }.items():
        monkeypatch.setenv(name, value)
    with mock_aws():
        dynamodb, s3 = boto3.client("dynamodb"), boto3.client("s3")
        dynamodb.create_table(
            TableName=TABLE,
            BillingMode="PAY_PER_REQUEST",
            AttributeDefinitions=[
                {"AttributeName": name, "AttributeType": "S"}
                for name in ("product_id", "status", "updated_at")
            ],
            KeySchema=[{"AttributeName": "product_id", "KeyType": "HASH"}],
            GlobalSecondaryIndexes=[
                {
                    "IndexName": "by-status",
                    "KeySchema": [
                        {"AttributeName": "status", "KeyType": "HASH"},
                        {"AttributeName": "updated_at", "KeyType": "RANGE"},
                    ],
                    "Projection": {"ProjectionType": "KEYS_ONLY"},
                }
            ],
        )
        s3.create_bucket(Bucket=BUCKET)
        yield dynamodb, s3


def put(dynamodb: Any, stored: ProductRecord) -> None:
    item = json.loads(stored.model_dump_json(), parse_float=Decimal)
    serializer = TypeSerializer()
    dynamodb.put_item(
        TableName=TABLE,
        Item={name: serializer.serialize(value) for name, value in item.items() if value is not None},
    )


def google_ids(s3: Any) -> list[str]:
    body = s3.get_object(Bucket=BUCKET, Key=feed_key(SETTINGS, FeedFormat.GOOGLE, "en-US"))["Body"].read()
    return [row["id"] for row in csv.DictReader(io.StringIO(body.decode("utf-8")), delimiter="\t")]


def cursor(s3: Any) -> str:
    body = s3.get_object(Bucket=BUCKET, Key=state_key(SETTINGS, FeedFormat.GOOGLE, "en-US"))["Body"].read()
    return FeedState.model_validate_json(body).cursor


def test_first_run_writes_whole_feeds_of_exactly_the_exportable_records(aws: tuple[Any, Any]) -> None:
    dynamodb, s3 = aws
    put(dynamodb, record("ok-1"))
    put(dynamodb, record("unsure-1", needs_review=True))
    put(dynamodb, reviewed(ReviewStatus.REJECTED, "rejected-1"))

    written = export_feeds(SETTINGS, dynamodb, s3, FIRST)

    assert [feed.key for feed in written] == ["feeds/google/en-US.tsv", "feeds/shopify/en-US.csv"]
    assert all(feed.full_read for feed in written)
    assert google_ids(s3) == ["ok-1"]
    shopify = s3.get_object(Bucket=BUCKET, Key="feeds/shopify/en-US.csv")
    assert shopify["Body"].read().decode("utf-8").startswith("Handle,Title,Body (HTML)")
    assert cursor(s3) == "2026-12-07T12:00:00.000Z"


def test_a_review_changes_the_next_export_which_reads_only_the_change(aws: tuple[Any, Any]) -> None:
    dynamodb, s3 = aws
    put(dynamodb, record("ok-1"))
    put(dynamodb, record("unsure-1", needs_review=True))
    export_feeds(SETTINGS, dynamodb, s3, FIRST)

    accepted = reviewed(ReviewStatus.ACCEPTED, "unsure-1", updated_at="2026-12-07T12:30:00.000Z")
    put(dynamodb, accepted)
    rejected = reviewed(ReviewStatus.REJECTED, "ok-1", updated_at="2026-12-07T12:31:00.000Z")
    put(dynamodb, rejected)
    (google, _shopify) = export_feeds(SETTINGS, dynamodb, s3, SECOND)

    assert not google.full_read and google.changed_records == 2
    assert google_ids(s3) == ["unsure-1"]  # whole: the accepted one in, the rejected one out


def test_a_failed_run_leaves_the_cursor_and_the_next_run_catches_up(
    aws: tuple[Any, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    dynamodb, s3 = aws
    put(dynamodb, record("ok-1"))
    export_feeds(SETTINGS, dynamodb, s3, FIRST)
    put(dynamodb, record("new-1", updated_at="2026-12-07T12:45:00.000Z"))

    def broken(**_kwargs: Any) -> None:
        raise RuntimeError("S3 unavailable")

    monkeypatch.setattr(s3, "copy_object", broken)
    with pytest.raises(RuntimeError):
        export_feeds(SETTINGS, dynamodb, s3, SECOND)
    assert cursor(s3) == "2026-12-07T12:00:00.000Z"
    assert google_ids(s3) == ["ok-1"]  # the published feed is the previous whole one

    monkeypatch.undo()
    export_feeds(SETTINGS, dynamodb, s3, THIRD)
    assert google_ids(s3) == ["new-1", "ok-1"]
    assert cursor(s3) == "2026-12-07T14:00:00.000Z"


def test_a_missing_state_is_found_by_listing_not_by_a_get_that_is_refused(
    aws: tuple[Any, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The function's ListBucket is limited to feed-state/: on AWS a GetObject of a missing key is then
    AccessDenied, not NoSuchKey. The first run must still see "no state" and scan the table."""
    dynamodb, s3 = aws
    put(dynamodb, record("ok-1"))
    get_object = s3.get_object

    def refused_when_missing(**kwargs: Any) -> Any:
        listed = s3.list_objects_v2(Bucket=kwargs["Bucket"], Prefix=kwargs["Key"]).get("Contents", [])
        if not any(item["Key"] == kwargs["Key"] for item in listed):
            raise ClientError({"Error": {"Code": "AccessDenied", "Message": "Access Denied"}}, "GetObject")
        return get_object(**kwargs)

    monkeypatch.setattr(s3, "get_object", refused_when_missing)
    written = export_feeds(SETTINGS, dynamodb, s3, FIRST)
    assert all(feed.full_read for feed in written)
    assert google_ids(s3) == ["ok-1"]
    (google, _shopify) = export_feeds(SETTINGS, dynamodb, s3, SECOND)
    assert not google.full_read


def test_settings_refuse_an_unknown_format_or_locale() -> None:
    base = {"results_table_name": TABLE, "feed_bucket": BUCKET}
    with pytest.raises(ValueError, match="xml"):
        FeedExportSettings.model_validate(base | {"feed_formats": "google,xml", "feed_locales": "en-US"})
    with pytest.raises(ValueError, match="unknown locale"):
        FeedExportSettings.model_validate(base | {"feed_formats": "google", "feed_locales": "english"})


def test_the_template_configures_every_setting_the_function_needs() -> None:
    from pathlib import Path

    from cfnlint.decode import decode

    from describer_rules.locales import LOCALES_PATTERN

    template, _ = decode(str(Path(__file__).resolve().parents[3] / "template.yaml"))
    assert template is not None
    function = template["Resources"]["FeedExportFunction"]["Properties"]
    variables = set(function["Environment"]["Variables"]) | set(
        template["Globals"]["Function"]["Environment"]["Variables"]
    )
    required = {
        name.upper() for name, field in FeedExportSettings.model_fields.items() if field.is_required()
    }
    assert required <= variables
    # FeedLocales: empty, or exactly what Locales takes.
    assert template["Parameters"]["FeedLocales"]["AllowedPattern"] == f"^({LOCALES_PATTERN[1:-1]})?$"
    assert function["Handler"] == "feed_export/app.handler"


def test_the_handler_runs_from_its_environment(aws: tuple[Any, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    dynamodb, s3 = aws
    put(dynamodb, record("ok-1"))
    for name, value in {
        "RESULTS_TABLE_NAME": TABLE,
        "FEED_BUCKET": BUCKET,
        "FEED_FORMATS": "jsonl",
        "FEED_LOCALES": "en-US",
    }.items():
        monkeypatch.setenv(name, value)
    from feed_export import app

    from describer_aws import clients

    app._settings.cache_clear()
    clients.client.cache_clear()
    try:
        result = app.handler({"source": "aws.events"}, LambdaContext())
    finally:
        app._settings.cache_clear()
        clients.client.cache_clear()
    assert [feed["key"] for feed in result["feeds"]] == ["feeds/jsonl/en-US.jsonl"]
    body = s3.get_object(Bucket=BUCKET, Key="feeds/jsonl/en-US.jsonl")["Body"].read().decode("utf-8")
    assert json.loads(body)["product_id"] == "ok-1"
