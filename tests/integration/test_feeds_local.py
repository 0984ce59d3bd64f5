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
from dataclasses import replace
from pathlib import Path

import pytest

from describer.cli import main as describer
from describer.deployment import Deployment, UploadRef, fetch_records, wait_for_final_records
from describer.local.samples import synthetic_photos
from describer.local.stack import LocalSettings
from describer.review.desk import ReviewDesk
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
def products(tmp_path_factory: pytest.TempPathFactory, deployment: Deployment) -> dict[str, ProductRecord]:
    """Six uploads of every kind a feed must tell apart, by role: two the model is sure of (one with a
    hostile id), three it flags (its demo model knows no material for bags, dresses and shoes), a bad file."""
    out = tmp_path_factory.mktemp("feed-photos")
    photos = {photo.category: photo for photo in synthetic_photos(out / "photos", per_category=1)}
    note = out / "note.txt"
    note.write_text("A note about a shirt, not a photo of one.\n")
    uploads = {
        "sure": replace(photos["Tshirts"], key="Tshirts/feeds-tee.jpg", product_id="feeds-tee"),
        "hostile": replace(photos["Jeans"], key=f"Jeans/{HOSTILE_ID}.jpg", product_id=HOSTILE_ID),
        "to accept": replace(photos["Handbags"], key="Handbags/feeds-bag.jpg", product_id="feeds-bag"),
        "to correct": replace(photos["Dresses"], key="Dresses/feeds-dress.jpg", product_id="feeds-dress"),
        "unreviewed": replace(
            photos["Casual Shoes"], key="Casual Shoes/feeds-shoe.jpg", product_id="feeds-shoe"
        ),
        "failed": replace(photos["Shirts"], path=note, key="Shirts/feeds-note.txt", product_id="feeds-note"),
    }
    refs = {}
    for sample in uploads.values():
        uploaded_at = utc_now()
        refs[sample.product_id] = UploadRef.from_response(
            deployment.upload(sample.path, sample.key), uploaded_at
        )
    records = wait_for_final_records(deployment, refs, timeout_s=300)
    by_role = {role: records[sample.product_id] for role, sample in uploads.items()}
    assert by_role["failed"].status is Status.FAILED
    for role in ("sure", "hostile", "to accept", "to correct", "unreviewed"):
        assert by_role[role].status is Status.COMPLETED, (role, by_role[role].error_message)
    assert not by_role["sure"].needs_review and not by_role["hostile"].needs_review
    assert all(by_role[role].needs_review for role in ("to accept", "to correct", "unreviewed"))
    return by_role


def scheduled_run(deployment: Deployment, feeds: Feeds, timeout_s: float = 150) -> None:
    """Wait for a FeedExport run of the schedule: its rule set to rate(1 minute) (the emulator runs
    EventBridge schedules every tick), until the feeds' cursors say a run started after the change,
    then set back as deployed (a scheduled run must not overlap the run the test starts itself)."""
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


def _check(feeds: Feeds, source: str, records: list[ProductRecord]) -> tuple[dict, dict]:
    """The google and shopify feeds of ``source`` checked, holding exactly ``records``' publishable ones."""
    read = feeds.command if source == "command" else feeds.scheduled
    google, shopify = google_rows(read("google")), shopify_rows(read("shopify"))
    assert set(google) == google_ids(records), source
    assert set(shopify) == shopify_handles(records), source
    return google, shopify


def test_exports_hold_exactly_the_publishable_records_and_follow_the_review_desk(
    feeds: Feeds, products: dict[str, ProductRecord], deployment: Deployment
) -> None:
    scheduled_run(deployment, feeds)
    records = deployment.records()
    google, shopify = _check(feeds, "scheduled", records)
    # The command writes the same files from the same table.
    assert (feeds.command("google"), feeds.command("shopify")) == (
        feeds.scheduled("google"),
        feeds.scheduled("shopify"),
    )
    ids = {role: record.product_id for role, record in products.items()}
    assert {ids["sure"], ids["hostile"]} <= set(google)
    assert not {ids["to accept"], ids["to correct"], ids["unreviewed"], ids["failed"]} & set(google)
    # A hostile id is one cell, exactly; its handle is Shopify's form, its copy escaped.
    assert HOSTILE_HANDLE in shopify and "&lt;b onclick" not in shopify[HOSTILE_HANDLE]["Title"]
    sure = products["sure"]
    assert (
        google[ids["sure"]]["structured_title"] == f'trained_algorithmic_media:"{sure.content[LOCALE].title}"'
    )
    assert google[ids["sure"]]["color"] == sure.attributes["Colour"]

    # The review desk's real write path: accept one flagged record, correct another's colour, reject
    # a published one.
    desk = review_desk(deployment)
    accepted = _decide(desk, ids["to accept"], "accept")
    dress = desk.open(ids["to correct"])
    colour = next(value for value in desk.vocabulary(dress, "Colour") if value != dress.attributes["Colour"])
    corrected = desk.correct(ids["to correct"], RecordVersion.of(dress), {"Colour": colour}, {})
    _decide(desk, ids["hostile"], "reject")

    # FeedExport as the schedule runs it (`describer feeds run` invokes it now): only the changes read.
    assert describer(["feeds", "run", "--state-dir", str(feeds.settings.state_dir)]) == 0
    records = deployment.records()
    google, shopify = _check(feeds, "scheduled", records)
    assert {ids["to accept"], ids["to correct"]} <= set(google) and ids["hostile"] not in google
    assert HOSTILE_HANDLE not in shopify and ids["unreviewed"] not in google and ids["failed"] not in google
    assert google[ids["to correct"]]["color"] == colour
    assert google[ids["to correct"]]["structured_description"] == (
        f'trained_algorithmic_media:"{corrected.content[LOCALE].description}"'
    )
    assert colour.lower() in shopify[shopify_handle(ids["to correct"])]["Body (HTML)"].lower()
    assert google[ids["to accept"]]["structured_title"].endswith(f'"{accepted.content[LOCALE].title}"')
    # Merging the changes into the previous rows gives the file a full export writes.
    command = feeds.command("google"), feeds.command("shopify")
    assert command == (feeds.scheduled("google"), feeds.scheduled("shopify"))
    if EXCERPTS:
        Path(EXCERPTS).mkdir(parents=True, exist_ok=True)
        for fmt, text in (("google", command[0]), ("shopify", command[1]), ("jsonl", feeds.command("jsonl"))):
            (Path(EXCERPTS) / f"{fmt}.{EXTENSIONS[fmt]}").write_text(text, encoding="utf-8", newline="")
    assert fetch_records(deployment, [ids["unreviewed"]])[ids["unreviewed"]].needs_review


def _decide(desk: ReviewDesk, product_id: str, decision: str) -> ProductRecord:
    record = desk.open(product_id)
    if decision == "accept":
        return desk.accept(product_id, RecordVersion.of(record))
    return desk.reject(product_id, RecordVersion.of(record), "not this product")
