"""The demo's products with several photos: product folders through the local stack, then a photo added.

Four held-out synthetic products, each photographed front, back and detail (``training.views``)
into ``<Category>/<product id>/``; the last also gets a broken photo among the good ones. Every
folder must end COMPLETED with ``images`` listing every photo (the broken one skipped with its
reason). Then a photo is added to the first folder: it must be described again from four photos by
exactly one more run (no duplicate execution). Before uploading, the folders' earlier photos are
deleted, so a rerun of the demo describes the same sets again.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from describer.deployment import Deployment, PhotoSetRef, UploadRef, wait_for_final_records
from describer.local.demo.gallery import GalleryItem
from describer.local.samples import PhotoFolder, photo_folders, truncated_jpeg
from describer_aws.results_table import utc_now
from describer_rules.contracts import ImageStatus, ProductRecord, Status

DEMO_FOLDERS = 4
ADDED_PHOTO = "4-side.jpg"
BROKEN_PHOTO = "4-broken.jpg"


@dataclass
class PhotoDemoResult:
    records: dict[str, ProductRecord]
    items: list[GalleryItem]
    problems: list[str]


def _folder_files(folder: PhotoFolder, prefix: str) -> dict[str, Path]:
    """Full key -> local file of every photo the folder should hold."""
    return {prefix + key: path for path, key in folder.files()}


def _clear(deployment: Deployment, folders: list[PhotoFolder]) -> None:
    s3 = deployment.client("s3")
    for folder in folders:
        listed = s3.list_objects_v2(
            Bucket=deployment.upload_bucket, Prefix=deployment.upload_prefix + folder.folder
        )
        for item in listed.get("Contents", []):
            s3.delete_object(Bucket=deployment.upload_bucket, Key=item["Key"])


def _upload(deployment: Deployment, files: dict[str, Path]) -> dict[str, dict[str, Any]]:
    prefix = deployment.upload_prefix
    return {key: deployment.upload(path, key[len(prefix) :]) for key, path in files.items()}


def _problem(record: ProductRecord, files: dict[str, Path], broken: set[str]) -> str | None:
    if record.status != Status.COMPLETED:
        return f"expected COMPLETED, got {record.status.value} {record.error_code or ''}"
    listed = {image.key: image.status for image in record.images}
    if set(listed) != set(files):
        return f"images list {len(listed)} photos, not the {len(files)} uploaded"
    wrong = [key for key, status in listed.items() if (status == ImageStatus.SKIPPED) != (key in broken)]
    return f"wrong status for {', '.join(wrong)}" if wrong else None


def run_photo_demo(
    deployment: Deployment, work_dir: Path, timeout_s: float, console: Console
) -> PhotoDemoResult:
    folders = photo_folders(work_dir / "folders", DEMO_FOLDERS)
    prefix = deployment.upload_prefix
    files = {folder.product_id: _folder_files(folder, prefix) for folder in folders}
    broken_key = f"{prefix}{folders[-1].folder}{BROKEN_PHOTO}"
    files[folders[-1].product_id][broken_key] = truncated_jpeg(work_dir / "broken.jpg")
    console.print(
        f"Products with several photos: {len(folders)} folders, {sum(map(len, files.values()))} photos."
    )
    _clear(deployment, folders)
    started = datetime.now().astimezone()
    uploads: dict[str, UploadRef] = {}
    for folder in folders:
        uploaded_at = utc_now()
        uploads[folder.product_id] = PhotoSetRef.of(
            _upload(deployment, files[folder.product_id]), uploaded_at
        )
    records = wait_for_final_records(deployment, uploads, timeout_s)
    problems = [
        f"{folder.folder}: {problem}"
        for folder in folders
        if (problem := _problem(records[folder.product_id], files[folder.product_id], {broken_key}))
    ]

    # A photo added later: the product is described again from every photo, by one more run.
    first = folders[0]
    added = work_dir / ADDED_PHOTO
    shutil.copyfile(first.photos["2-back.jpg"], added)
    files[first.product_id][f"{prefix}{first.folder}{ADDED_PHOTO}"] = added
    responses = _upload(deployment, {f"{prefix}{first.folder}{ADDED_PHOTO}": added})
    current = {
        image.key: {"VersionId": image.version} for image in records[first.product_id].images
    } | responses
    later = wait_for_final_records(
        deployment, {first.product_id: PhotoSetRef.of(current, utc_now())}, timeout_s
    )
    records[first.product_id] = later[first.product_id]
    if problem := _problem(records[first.product_id], files[first.product_id], set()):
        problems.append(f"{first.folder} after a photo was added: {problem}")
    runs = deployment.photo_set_runs(first.product_id, started)
    if len(runs) != 2:
        problems.append(f"{first.folder}: {len(runs)} executions for 2 photo sets (duplicates)")

    table = Table(title="Products with several photos (photos used / listed; attributes: photos agreeing)")
    for column in ("folder", "status", "photos", "attributes", "skipped"):
        table.add_column(column, overflow="fold")
    for folder in folders:
        record = records[folder.product_id]
        used = sum(1 for image in record.images if image.status == ImageStatus.USED)
        attributes = ", ".join(
            f"{name} {value} ({record.photos_agreed.get(name, '-')})"
            for name, value in record.attributes.items()
        )
        skipped = ", ".join(
            f"{image.key.rsplit('/', 1)[-1]}: {(image.reason or '').split(':')[0]}"
            for image in record.images
            if image.status == ImageStatus.SKIPPED
        )
        colour = "green" if record.status == Status.COMPLETED else "red"
        table.add_row(
            folder.folder,
            f"[{colour}]{record.status.value}[/]",
            f"{used}/{len(record.images)}",
            attributes,
            skipped,
        )
    console.print(table)
    console.print(
        f"{first.folder}: a photo added later was described with {len(runs)} runs in all (0 duplicates)"
        if len(runs) == 2
        else f"[bold red]{first.folder}: {len(runs)} runs[/]"
    )
    items = [
        GalleryItem(records[folder.product_id], expected=folder.truth, photos=files[folder.product_id])
        for folder in folders
    ]
    return PhotoDemoResult(records, items, problems)
