"""`make demo`: synthetic product photos and bad files through the local stack, then a table and a gallery.

A second run reuses what is there: files whose upload already has a final record are not uploaded
again, so the demo only waits for what is new.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from describer.deployment import (
    FINAL_STATUSES,
    Deployment,
    UploadRef,
    fetch_records,
    wait_for_final_records,
)
from describer.deployment_commands import category_label
from describer.local.demo.gallery import GalleryItem, write_gallery
from describer.local.demo.photo_demo import run_photo_demo
from describer.local.samples import SampleFile, bad_files, synthetic_photos
from describer.local.stack import LOCAL_LOCALES, LocalSettings
from describer_aws.results_table import utc_now
from describer_rules.catalogue import load_catalogue
from describer_rules.content_rules import violations
from describer_rules.contracts import CategorySource, ProductRecord, Status
from describer_steps.settings import DescriptionSettings
from describer_steps.write_description import CopyWriter

SAMPLE_MANIFEST = "manifest.json"


def utc_iso(moment: datetime) -> str:
    """The results table's timestamp format (``describer_aws.results_table.utc_now``) for ``moment``."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def demo_samples(sample_dir: Path, per_category: int) -> list[SampleFile]:
    """The synthetic photos (made once, then reused) and the bad files."""
    manifest = sample_dir / SAMPLE_MANIFEST
    photos: list[SampleFile] | None = None
    if manifest.exists():
        saved = json.loads(manifest.read_text())
        if saved.get("per_category") == per_category:
            photos = [SampleFile(**{**item, "path": Path(item["path"])}) for item in saved["photos"]]
    if photos is None or not all(photo.path.exists() for photo in photos):
        photos = synthetic_photos(sample_dir / "photos", per_category)
        items = [{**sample.__dict__, "path": str(sample.path)} for sample in photos]
        manifest.write_text(json.dumps({"per_category": per_category, "photos": items}, indent=1))
    return without_category_folder(photos) + bad_files(sample_dir / "bad")


# The demo's product whose key names no category: the model chooses it (category_source "model").
UNFILED_CATEGORY = "Jeans"


def without_category_folder(photos: list[SampleFile]) -> list[SampleFile]:
    """The photos, the first of ``UNFILED_CATEGORY`` uploaded without its category folder."""
    unfiled = next((photo for photo in photos if photo.category == UNFILED_CATEGORY), None)
    return [
        dataclasses.replace(photo, key=photo.key.rsplit("/", 1)[-1]) if photo is unfiled else photo
        for photo in photos
    ]


def _already_done(deployment: Deployment, samples: list[SampleFile]) -> dict[str, UploadRef]:
    """The uploads whose current object holds these very bytes and already has its final record."""
    records = fetch_records(deployment, [sample.product_id for sample in samples])
    s3 = deployment.client("s3")
    done = {}
    for sample in samples:
        record = records.get(sample.product_id)
        if record is None or record.status not in FINAL_STATUSES:
            continue
        try:
            head = s3.head_object(Bucket=deployment.upload_bucket, Key=deployment.upload_prefix + sample.key)
        except ClientError:
            continue
        upload = UploadRef.from_response(head, utc_iso(head["LastModified"]))
        same_bytes = head["ETag"].strip('"') == hashlib.md5(sample.path.read_bytes()).hexdigest()
        if same_bytes and upload.is_final_record_of(record):
            done[sample.product_id] = upload
    return done


def upload_and_wait(
    deployment: Deployment, samples: list[SampleFile], timeout_s: float, console: Console
) -> dict[str, ProductRecord]:
    """Upload what is not done yet, show progress until every sample has a final record."""
    uploads = _already_done(deployment, samples)
    todo = [sample for sample in samples if sample.product_id not in uploads]
    if len(uploads):
        console.print(f"Reusing {len(uploads)} final record(s) of earlier uploads.")
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console) as progress:
        sent = progress.add_task("Uploading", total=len(todo))
        for sample in todo:
            uploaded_at = utc_now()
            response: dict[str, Any] = deployment.upload(sample.path, sample.key)
            uploads[sample.product_id] = UploadRef.from_response(response, uploaded_at)
            progress.advance(sent)
        final = progress.add_task("Final records", total=len(uploads))
        return wait_for_final_records(
            deployment, uploads, timeout_s, on_progress=lambda n: progress.update(final, completed=n)
        )


def _verdict(sample: SampleFile, record: ProductRecord) -> str | None:
    """What is wrong with this outcome, or None when it is the one the sample should get."""
    if sample.expected_error is not None:
        if record.status != Status.FAILED or record.error_code != sample.expected_error:
            return f"expected FAILED {sample.expected_error.value}"
        return None
    if record.status != Status.COMPLETED:
        return "expected COMPLETED"
    if record.category != sample.category:
        return f"expected category {sample.category}"
    if "/" not in sample.key and record.category_source != CategorySource.MODEL:
        return "expected the model to choose the category"
    without = sorted(set(record.attributes) - set(record.confidence))
    if without:  # only scored answers are facts the copy may state
        return f"no confidence for {', '.join(without)}, yet in attributes"
    if record.unverified_attributes and not record.needs_review:
        return f"unverified {', '.join(sorted(record.unverified_attributes))}, not flagged for review"
    missing = [locale for locale in LOCAL_LOCALES if locale not in record.content]
    if missing:
        return f"no content in {', '.join(missing)}"
    problems = copy_problems(record)
    return f"copy breaks {problems[0]}" if problems else None


def copy_problems(record: ProductRecord) -> list[str]:
    """The validator's verdict on a record's copy, every locale, as WriteDescription checks it."""
    if not record.content:
        return []
    # DynamoDB keeps no map order: the default locale is the one whose description the record holds.
    default = next(
        (loc for loc, copy in record.content.items() if copy.description == record.description), ""
    )
    others = [locale for locale in record.content if locale != default]
    settings = DescriptionSettings(
        bedrock_model_id=record.model_ids.description or "-", locales=[default, *others]
    )
    category = load_catalogue().category(record.category)
    writer = CopyWriter(category, record.attributes, record.confidence, None, settings)
    return [
        f"{locale}: {violation}"
        for locale, copy in record.content.items()
        for violation in violations(copy, writer.rules(locale))
    ]


def results_table(samples: list[SampleFile], records: dict[str, ProductRecord]) -> Table:
    """One row per upload: category and where it came from, status, each attribute on its own line
    with its confidence (and the truth where it differs), error code."""
    table = Table(
        title="Demo results: predicted attributes (confidence; [red]wrong[/] ≠ truth)", show_lines=True
    )
    table.add_column("product", no_wrap=True)
    table.add_column("category", no_wrap=True)
    table.add_column("status", no_wrap=True)
    table.add_column("attributes", overflow="fold")
    table.add_column("error", no_wrap=True)
    for sample in samples:
        record = records[sample.product_id]
        lines = []
        for name, value in {**record.attributes, **record.unverified_attributes}.items():
            truth = (sample.truth or {}).get(name)
            shown = value if truth in (None, value) else f"[red]{value}[/] ≠ {truth}"
            confidence = record.confidence.get(name)
            unknown = " [yellow](unknown)[/]" if name in record.unknown_attributes else ""
            unverified = " [yellow](unverified)[/]" if name in record.unverified_attributes else ""
            lines.append(
                f"{name}: {shown}"
                + ("" if confidence is None else f" ({confidence:.2f})")
                + (unknown or unverified)
            )
        problem = _verdict(sample, record)
        colour = "green" if record.status == Status.COMPLETED else "red"
        table.add_row(
            sample.key,
            category_label(record),
            f"[{colour}]{record.status.value}[/]"
            + (" [yellow]review[/]" if record.needs_review else "")
            + (f" [bold red]{problem}[/]" if problem else ""),
            "\n".join(lines),
            record.error_code.value if record.error_code else "",
        )
    return table


def attribute_accuracy(samples: list[SampleFile], records: dict[str, ProductRecord]) -> tuple[int, int]:
    """(correct, asked) over the attributes of the samples whose truth is known."""
    correct = asked = 0
    for sample in samples:
        for name, truth in (sample.truth or {}).items():
            predicted = records[sample.product_id].attributes.get(name)
            if predicted is not None:
                asked += 1
                correct += predicted == truth
    return correct, asked


def run_demo(settings: LocalSettings, per_category: int, timeout_s: float, console: Console) -> int:
    started = time.monotonic()
    deployment = Deployment.local(settings.state_dir)
    samples = demo_samples(settings.state_dir / "demo", per_category)
    records = upload_and_wait(deployment, samples, timeout_s, console)
    console.print(results_table(samples, records))
    correct, asked = attribute_accuracy(samples, records)
    # Products with several photos (docs/pipeline.md): product folders, then a photo added later.
    several = run_photo_demo(deployment, settings.state_dir / "demo", timeout_s, console)
    items = several.items + [GalleryItem(records[s.product_id], s.path, s.truth) for s in samples]
    gallery = write_gallery(
        items, settings.state_dir / "gallery" / "index.html", "Product Describer: local demo"
    )
    problems = [s.key for s in samples if _verdict(s, records[s.product_id])] + several.problems
    console.print(
        f"{len(samples)} uploads, {sum(r.status == Status.COMPLETED for r in records.values())} completed, "
        f"{sum(r.status == Status.FAILED for r in records.values())} failed, "
        f"{sum(r.needs_review for r in records.values())} need review; attributes matching the "
        f"synthetic truth: {correct}/{asked}. Took {time.monotonic() - started:.0f} s."
    )
    console.print(f"Gallery: file://{gallery}")
    console.print(
        "Channel feeds of these records: `.venv/bin/describer export --format google --locale en-US"
        " --out google.tsv` (or shopify; docs/operations.md#channel-feeds)."
    )
    console.print("Stop the local stack with `make local-down`.")
    if problems:
        console.print(f"[bold red]Unexpected outcome for {', '.join(problems)}[/]")
        return 1
    return 0
