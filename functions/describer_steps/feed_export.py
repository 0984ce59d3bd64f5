"""FeedExport: the channel feeds rewritten on a schedule from what changed since the last export.

For each format and locale, ``<state prefix><format>/<locale>.json`` holds the previous export's rows
(by product id, as ``describer_rules.feeds.formats`` makes them) and its cursor: the time that export
started. A run reads only the records updated since the cursor (a Query of the ``by-status`` index per
status, then BatchGetItem), merges them into the rows (a row replaced, or removed when the record is
no longer exportable) and renders the whole feed again, so the file is always complete though the read
is not. The feed is written aside (``<state prefix>staging/...``) and copied over ``<feed prefix>
<format>/<locale>.<ext>`` in one CopyObject: a channel fetching it gets the old file or the new one, never a
part. Only then is the state written: a run that fails anywhere leaves the cursor where it was, and
the next run reads the same changes again (merging a row twice gives the same row).

The cursor goes back ``CURSOR_OVERLAP`` before the previous start: a record stamped just before a run
started may reach the index (eventually consistent) just after it read. A record deleted from the
table is not seen by a Query: delete the state object to rebuild that feed from a full Scan.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

from boto3.dynamodb.types import TypeDeserializer
from pydantic import BaseModel, Field, field_validator

from describer_aws.results_table import sortable_utc
from describer_rules.contracts import ProductRecord, Status
from describer_rules.feeds.formats import ExportOptions, FeedFormat, FeedSummary, Row, product_row, render
from describer_rules.locales import parse_locales

CURSOR_OVERLAP = timedelta(minutes=5)
_BATCH_GET_KEYS = 100
_DESERIALIZER = TypeDeserializer()


class FeedExportSettings(BaseModel):
    results_table_name: str = Field(min_length=3)
    results_status_index: str = "by-status"
    feed_bucket: str = Field(min_length=3)
    feed_prefix: str = "feeds/"
    # Apart from the feeds, which may be served to the channels: the merge state and the staged files.
    feed_state_prefix: str = "feed-state/"
    feed_formats: list[FeedFormat]
    feed_locales: list[str]
    feed_include_unreviewed: bool = False

    @field_validator("feed_formats", mode="before")
    @classmethod
    def _formats(cls, value: object) -> object:
        return (
            [part.strip() for part in value.split(",") if part.strip()] if isinstance(value, str) else value
        )

    @field_validator("feed_locales", mode="before")
    @classmethod
    def _locales(cls, value: object) -> object:
        return parse_locales(value) if isinstance(value, str) else value


class FeedState(BaseModel):
    """The previous export of one feed: when it started, and its rows by product id."""

    cursor: str
    rows: dict[str, Row]


class FeedWritten(BaseModel):
    key: str
    rows: int
    changed_records: int
    full_read: bool
    skipped: dict[str, int]
    cuts: dict[str, int]
    left_out: dict[str, int]


def feed_key(settings: FeedExportSettings, fmt: FeedFormat, locale: str) -> str:
    return f"{settings.feed_prefix}{fmt.value}/{locale}.{fmt.extension}"


def state_key(settings: FeedExportSettings, fmt: FeedFormat, locale: str) -> str:
    return f"{settings.feed_state_prefix}{fmt.value}/{locale}.json"


def export_feeds(
    settings: FeedExportSettings, dynamodb: Any, s3: Any, now: datetime | None = None
) -> list[FeedWritten]:
    """Every configured feed, each from its own state; raises on the first failure (its cursor stays)."""
    started = (now or datetime.now(UTC)).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    written = []
    for fmt in settings.feed_formats:
        for locale in settings.feed_locales:
            written.append(_export_one(settings, dynamodb, s3, fmt, locale, started))
    return written


def _export_one(
    settings: FeedExportSettings, dynamodb: Any, s3: Any, fmt: FeedFormat, locale: str, started: str
) -> FeedWritten:
    state = _read_state(s3, settings, fmt, locale)
    records = list(
        _changed_records(settings, dynamodb, state.cursor) if state else _all_records(settings, dynamodb)
    )
    rows = dict(state.rows) if state else {}
    summary = FeedSummary()
    options = ExportOptions(locale, include_unreviewed=settings.feed_include_unreviewed)
    for record in records:
        row, reason = product_row(fmt, record, options, summary.cuts)
        if row is None:
            rows.pop(record.product_id, None)
            summary.skipped[str(reason)] += 1
        else:
            rows[record.product_id] = row
    feed = render(fmt, rows, summary)
    key = feed_key(settings, fmt, locale)
    staging = f"{settings.feed_state_prefix}staging/{fmt.value}/{locale}.{fmt.extension}"
    content_type = {FeedFormat.GOOGLE: "text/tab-separated-values", FeedFormat.SHOPIFY: "text/csv"}.get(
        fmt, "application/x-ndjson"
    )
    s3.put_object(
        Bucket=settings.feed_bucket,
        Key=staging,
        Body=feed.text.encode("utf-8"),
        ContentType=f"{content_type}; charset=utf-8",
    )
    s3.copy_object(
        Bucket=settings.feed_bucket,
        Key=key,
        CopySource={"Bucket": settings.feed_bucket, "Key": staging},
        MetadataDirective="COPY",
    )
    new_state = FeedState(cursor=started, rows=rows)
    s3.put_object(
        Bucket=settings.feed_bucket,
        Key=state_key(settings, fmt, locale),
        Body=new_state.model_dump_json().encode("utf-8"),
        ContentType="application/json",
    )
    return FeedWritten(
        key=key,
        rows=feed.summary.rows,
        changed_records=len(records),
        full_read=state is None,
        skipped=dict(feed.summary.skipped),
        cuts=dict(feed.summary.cuts),
        left_out=feed.summary.left_out,
    )


def _read_state(s3: Any, settings: FeedExportSettings, fmt: FeedFormat, locale: str) -> FeedState | None:
    key = state_key(settings, fmt, locale)
    # Whether the state exists is asked with a listing of its own key: the function's ListBucket is
    # limited to the state's prefix, which a GetObject of a missing key is not evaluated with (its
    # 403 would read as a permission problem, not as "no state yet").
    listing = s3.list_objects_v2(Bucket=settings.feed_bucket, Prefix=key, MaxKeys=1)
    if not any(item["Key"] == key for item in listing.get("Contents", [])):
        return None
    body = s3.get_object(Bucket=settings.feed_bucket, Key=key)["Body"].read()
    return FeedState.model_validate(json.loads(body))


def _all_records(settings: FeedExportSettings, dynamodb: Any) -> Iterator[ProductRecord]:
    for page in dynamodb.get_paginator("scan").paginate(
        TableName=settings.results_table_name, ConsistentRead=True
    ):
        yield from (_record(item) for item in page["Items"])


def _changed_records(settings: FeedExportSettings, dynamodb: Any, cursor: str) -> Iterator[ProductRecord]:
    since = datetime.fromisoformat(sortable_utc(cursor).replace("Z", "+00:00")) - CURSOR_OVERLAP
    # updated_at is written as milliseconds UTC ("...T10:00:00.000Z"): the same form compares as text.
    since_text = since.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    ids: set[str] = set()
    paginator = dynamodb.get_paginator("query")
    for status in Status:
        pages = paginator.paginate(
            TableName=settings.results_table_name,
            IndexName=settings.results_status_index,
            KeyConditionExpression="#status = :status AND #updated_at >= :since",
            ExpressionAttributeNames={"#status": "status", "#updated_at": "updated_at"},
            ExpressionAttributeValues={":status": {"S": status.value}, ":since": {"S": since_text}},
            ProjectionExpression="product_id",
        )
        ids.update(item["product_id"]["S"] for page in pages for item in page["Items"])
    yield from _batch_get(settings, dynamodb, sorted(ids))


def _batch_get(settings: FeedExportSettings, dynamodb: Any, ids: list[str]) -> Iterator[ProductRecord]:
    table = settings.results_table_name
    for start in range(0, len(ids), _BATCH_GET_KEYS):
        keys = [{"product_id": {"S": product_id}} for product_id in ids[start : start + _BATCH_GET_KEYS]]
        request: dict[str, Any] = {table: {"Keys": keys, "ConsistentRead": True}}
        while request:
            response = dynamodb.batch_get_item(RequestItems=request)
            yield from (_record(item) for item in response["Responses"].get(table, []))
            request = response.get("UnprocessedKeys") or {}


def _record(item: dict[str, Any]) -> ProductRecord:
    return ProductRecord.model_validate(
        {name: _DESERIALIZER.deserialize(value) for name, value in item.items()}
    )
