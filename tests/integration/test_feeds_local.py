"""Channel feeds on the local stack: `describer export` and the scheduled FeedExport write Google and
Shopify files that pass each channel's rules and hold exactly the publishable records, and the review
desk's accept, correct and reject change what the next export says."""

from __future__ import annotations

import csv
import io
import json
import os
import re
import time
from pathlib import Path

import pytest

from describer.cli import main as describer
from describer.deployment import Deployment, UploadRef, wait_for_final_records
from describer.local.samples import SampleFile
from describer.local.stack import LocalSettings
from describer.review.stack import review_desk
from describer_aws.results_table import RecordVersion, utc_now
from describer_rules.contracts import ProductRecord, ReviewStatus, Status
from describer_rules.feeds.formats import shopify_handle

pytestmark = pytest.mark.integration

LOCALE = "en-US"
EXTENSIONS = {"google": "tsv", "shopify": "csv", "jsonl": "jsonl"}
# Markup, quotes and a comma in a product id: the rows must hold it exactly (Google) or as a handle.
HOSTILE_ID = "<b onclick=\"x\">feeds, 'q'"
HOSTILE_HANDLE = "b-onclick-x-feeds-q"
# Where the feeds of the last export go when this is set (the excerpts in README.md and docs/).
EXCERPTS = os.environ.get("DESCRIBER_FEED_EXCERPTS")

# The channels' rules, as the issue and the channels' specifications state them.
GOOGLE_LIMITS = {"id": 50, "title": 150, "description": 5000, "highlight": 150}
GOOGLE_ALLOWED = [
    "id",
    "title",
    "description",
    "structured_title",
    "structured_description",
    "product_highlight",
    "product_detail",
    "color",
    "pattern",
    "material",
    "gender",
    "age_group",
    "product_type",
    "google_product_category",
]
SHOPIFY_ALLOWED = [
    "Handle",
    "Title",
    "Body (HTML)",
    "Product Category",
    "Tags",
    "SEO Title",
    "SEO Description",
]
SHOPIFY_LIMITS = {"Title": 255, "SEO Title": 70, "SEO Description": 320}
STRUCTURED = re.compile(r'trained_algorithmic_media:"([^"]*)"')
HANDLE = re.compile(r"[a-z0-9]+(-[a-z0-9]+)*")
BODY_TAGS = re.compile(r"</?(p|ul|li)>")
UNSAFE = re.compile("[\u0000-\u001f\u007f-\u009f\u2028\u2029\u200e\u200f\u202a-\u202e\u2066-\u2069\ufeff]")


def google_rows(text: str) -> dict[str, dict[str, str]]:
    """The Merchant Center supplemental feed's rows by id, after checking it against the rules."""
    assert not text.startswith("\ufeff")
    text.encode("utf-8")
    table = list(csv.reader(io.StringIO(text, newline=""), delimiter="\t"))
    header, body = table[0], table[1:]
    # One physical line per product: no cell holds a line break.
    assert text.endswith("\n") and len(table) == text.count("\n")
    assert header[0] == "id" and {"structured_title", "structured_description"} <= set(header)
    assert header == [column for column in GOOGLE_ALLOWED if column in header]
    rows = {}
    for cells in body:
        assert len(cells) == len(header), cells
        row = dict(zip(header, cells, strict=True))
        assert not any(UNSAFE.search(cell) for cell in cells), row
        assert len(row["id"]) <= GOOGLE_LIMITS["id"] and row["id"] not in rows
        for column, limit in (("structured_title", "title"), ("structured_description", "description")):
            match = STRUCTURED.fullmatch(row[column])
            assert match and 0 < len(match[1]) <= GOOGLE_LIMITS[limit], (column, row[column])
        if row.get("product_highlight"):
            (highlights,) = csv.reader([row["product_highlight"]])
            assert 2 <= len(highlights) <= 100
            assert all(0 < len(h) <= GOOGLE_LIMITS["highlight"] for h in highlights)
        assert not row.get("google_product_category") or row["google_product_category"].isdigit()
        rows[row["id"]] = row
    return rows


def shopify_rows(text: str) -> dict[str, dict[str, str]]:
    """The Shopify update-by-handle CSV's rows by handle, after checking it against the rules."""
    text.encode("utf-8")
    table = list(csv.reader(io.StringIO(text, newline="")))
    header, body = table[0], table[1:]
    assert len(table) == text.count("\n")
    assert header[:2] == ["Handle", "Title"] and header == [c for c in SHOPIFY_ALLOWED if c in header]
    rows = {}
    for cells in body:
        assert len(cells) == len(header), cells
        row = dict(zip(header, cells, strict=True))
        assert not any(UNSAFE.search(cell) for cell in cells), row
        assert HANDLE.fullmatch(row["Handle"]) and row["Handle"] not in rows
        # Blank cells would wipe the shop's values: every column a product cannot fill is left out.
        assert all(row.values()), row
        for column, limit in SHOPIFY_LIMITS.items():
            assert len(row.get(column, "")) <= limit, (column, row)
        # The body is the feed's own markup around escaped copy: no other tag, no raw angle bracket.
        assert row["Body (HTML)"].startswith("<p>")
        assert not re.search("[<>]", BODY_TAGS.sub("", row["Body (HTML)"])), row["Body (HTML)"]
        rows[row["Handle"]] = row
    return rows


def publishable(records: list[ProductRecord]) -> list[ProductRecord]:
    """The issue's rule, stated apart from the code: COMPLETED and needing no review, or accepted or
    corrected by a reviewer; never FAILED, rejected or unreviewed."""
    chosen = []
    for record in records:
        decision = record.review_decision.status if record.review_decision else None
        if record.status is not Status.COMPLETED or LOCALE not in record.content:
            continue
        if decision is ReviewStatus.REJECTED:
            continue
        if decision in (ReviewStatus.ACCEPTED, ReviewStatus.CORRECTED) or not record.needs_review:
            chosen.append(record)
    return chosen


def google_ids(records: list[ProductRecord]) -> set[str]:
    # An id Google cannot match exactly (too long, a control character) is left out.
    return {
        r.product_id for r in publishable(records) if len(r.product_id) <= 50 and r.product_id.isprintable()
    }


def shopify_handles(records: list[ProductRecord]) -> set[str]:
    return {shopify_handle(record.product_id) for record in publishable(records)} - {""}


class Feeds:
    """The local stack's feeds: the command's files and the ones FeedExport writes to S3."""

    def __init__(self, deployment: Deployment, settings: LocalSettings, out_dir: Path) -> None:
        self.deployment, self.settings, self.out_dir = deployment, settings, out_dir
        self.s3 = deployment.client("s3")
        self.prefix = deployment.outputs["FeedPrefix"]

    def command(self, fmt: str) -> str:
        """`describer export --format FMT --locale en-US --out FILE`, as a user runs it."""
        out = self.out_dir / f"{fmt}.{EXTENSIONS[fmt]}"
        state = ["--state-dir", str(self.settings.state_dir)]
        assert describer(["export", "--format", fmt, "--locale", LOCALE, "--out", str(out), *state]) == 0
        return out.read_bytes().decode("utf-8")

    def scheduled(self, fmt: str) -> str:
        key = f"{self.prefix}{fmt}/{LOCALE}.{EXTENSIONS[fmt]}"
        return (
            self.s3.get_object(Bucket=self.deployment.upload_bucket, Key=key)["Body"].read().decode("utf-8")
        )

    def cursor(self, fmt: str) -> str | None:
        """When the last FeedExport run of this feed started (its state object), or None before any."""
        key = f"feed-state/{fmt}/{LOCALE}.json"
        try:
            body = self.s3.get_object(Bucket=self.deployment.upload_bucket, Key=key)["Body"].read()
        except self.s3.exceptions.NoSuchKey:
            return None
        return str(json.loads(body)["cursor"])


@pytest.fixture(scope="module")
def feeds(
    tmp_path_factory: pytest.TempPathFactory, local_settings: LocalSettings, deployment: Deployment
) -> Feeds:
    return Feeds(deployment, local_settings, tmp_path_factory.mktemp("feeds"))


@pytest.fixture(scope="module")
def hostile(deployment: Deployment, demo_uploads: list[tuple[SampleFile, ProductRecord]]) -> ProductRecord:
    """One upload of the test's own, with markup, quotes and a comma in its id: a handbag, which the
    demo model flags for review (it knows no material for bags). The demo's records are shared, so
    the review desk decides only this one."""
    photo = next(sample for sample, _ in demo_uploads if sample.category == "Handbags")
    uploaded_at = utc_now()
    upload = UploadRef.from_response(deployment.upload(photo.path, f"Handbags/{HOSTILE_ID}.jpg"), uploaded_at)
    record = wait_for_final_records(deployment, {HOSTILE_ID: upload}, timeout_s=180)[HOSTILE_ID]
    assert record.status is Status.COMPLETED and record.needs_review, (record.status, record.error_message)
    return record


def scheduled_run(deployment: Deployment, feeds: Feeds, timeout_s: float = 150) -> None:
    """Wait for a FeedExport run of the schedule: its rule set to rate(1 minute) (the emulator runs
    EventBridge schedules every tick), until the feeds' cursors say a run started after the change,
    then set back as deployed (a scheduled run must not overlap the runs the test starts itself)."""
    resources = deployment.client("cloudformation").describe_stack_resources(StackName=deployment.stack_name)
    (rule,) = [
        resource["PhysicalResourceId"]
        for resource in resources["StackResources"]
        if resource["LogicalResourceId"].startswith("FeedExportFunction")
        and resource["ResourceType"] == "AWS::Events::Rule"
    ]
    events = deployment.client("events")
    deployed = events.describe_rule(Name=rule)
    changed = utc_now()
    events.put_rule(Name=rule, ScheduleExpression="rate(1 minute)", State="ENABLED")
    try:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            cursors = [feeds.cursor(fmt) for fmt in ("google", "shopify")]
            if all(cursor is not None and cursor > changed for cursor in cursors):
                return
            time.sleep(2)
        raise AssertionError(f"no scheduled FeedExport run in {timeout_s:.0f} s (cursors {cursors})")
    finally:
        events.put_rule(Name=rule, ScheduleExpression=deployed["ScheduleExpression"], State=deployed["State"])


def _published(feeds: Feeds) -> tuple[dict[str, dict[str, str]], dict[str, dict[str, str]]]:
    """The published google and shopify feeds, checked against the channels' rules, holding exactly the
    table's publishable records."""
    records = feeds.deployment.records()
    google, shopify = google_rows(feeds.scheduled("google")), shopify_rows(feeds.scheduled("shopify"))
    assert set(google) == google_ids(records)
    assert set(shopify) == shopify_handles(records)
    return google, shopify


def _run_now(feeds: Feeds) -> tuple[dict[str, dict[str, str]], dict[str, dict[str, str]]]:
    """FeedExport as the schedule runs it, now (`describer feeds run` invokes it)."""
    assert describer(["feeds", "run", "--state-dir", str(feeds.settings.state_dir)]) == 0
    return _published(feeds)


def _same_as_the_command(feeds: Feeds) -> None:
    assert (feeds.command("google"), feeds.command("shopify")) == (
        feeds.scheduled("google"),
        feeds.scheduled("shopify"),
    )


def test_exports_hold_exactly_the_publishable_records_and_follow_the_review_desk(
    feeds: Feeds,
    demo_uploads: list[tuple[SampleFile, ProductRecord]],
    hostile: ProductRecord,
    deployment: Deployment,
) -> None:
    records = {sample.product_id: record for sample, record in demo_uploads}
    # The demo's records hold every kind a feed tells apart.
    assert any(r.status is Status.FAILED for r in records.values())
    assert any(r.status is Status.COMPLETED and r.needs_review for r in records.values())
    sure = [r for r in records.values() if r.status is Status.COMPLETED and not r.needs_review]
    assert sure

    # The schedule's run (the first: it scans the table) and the command write the same files.
    scheduled_run(deployment, feeds)
    google, shopify = _published(feeds)
    _same_as_the_command(feeds)
    assert HOSTILE_ID not in google and HOSTILE_HANDLE not in shopify  # awaiting review
    assert not {r.product_id for r in records.values() if r.status is Status.FAILED} & set(google)
    row = google[sure[0].product_id]
    assert row["structured_title"] == f'trained_algorithmic_media:"{sure[0].content[LOCALE].title}"'

    # The review desk's real write path; each decision is in the next run.
    desk = review_desk(deployment)
    accepted = desk.accept(HOSTILE_ID, RecordVersion.of(hostile))
    google, shopify = _run_now(feeds)
    # A hostile id is one cell, exactly (Google), or Shopify's handle form; the copy stays text.
    assert (
        google[HOSTILE_ID]["structured_title"]
        == f'trained_algorithmic_media:"{accepted.content[LOCALE].title}"'
    )
    assert shopify[HOSTILE_HANDLE]["Title"] == accepted.content[LOCALE].title

    # Another plain colour (Google's color drops "Multi").
    colour = next(
        value
        for value in desk.vocabulary(accepted, "Colour")
        if value != accepted.attributes["Colour"] and value.isalpha() and value != "Multi"
    )
    corrected = desk.correct(HOSTILE_ID, RecordVersion.of(accepted), {"Colour": colour}, {})
    google, shopify = _run_now(feeds)
    assert google[HOSTILE_ID]["color"] == colour
    assert google[HOSTILE_ID]["structured_description"] == (
        f'trained_algorithmic_media:"{corrected.content[LOCALE].description}"'
    )
    assert colour.lower() in shopify[HOSTILE_HANDLE]["Body (HTML)"].lower()
    # Merging the changes into the previous rows gives the file a full export writes.
    _same_as_the_command(feeds)
    if EXCERPTS:
        Path(EXCERPTS).mkdir(parents=True, exist_ok=True)
        for fmt in ("google", "shopify", "jsonl"):
            text = feeds.command(fmt)
            (Path(EXCERPTS) / f"{fmt}.{EXTENSIONS[fmt]}").write_text(text, encoding="utf-8", newline="")

    desk.reject(HOSTILE_ID, RecordVersion.of(corrected), "not this product")
    google, shopify = _run_now(feeds)
    assert HOSTILE_ID not in google and HOSTILE_HANDLE not in shopify
