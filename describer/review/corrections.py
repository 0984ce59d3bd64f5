"""Reviews become training data: every attribute a reviewer accepted or corrected, as Q/A pairs.

``describer corrections export --out DIR`` writes ``DIR/corrections.csv`` in the format
``describer dataset prepare`` writes (the same function makes the rows: ``question_answer_rows``),
plus the photo's S3 key and version, and ``DIR/images/`` with each photo version read from S3;
``describer train --extra-pairs DIR/corrections.csv`` trains on them next to the prepared data.
A rejected record gives no pairs (the reviewer said the result is unusable, not what it should be).
"""

from __future__ import annotations

import csv
import hashlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from describer.review.desk import photos_of
from describer_rules.catalogue import Catalogue, load_catalogue
from describer_rules.contracts import ProductRecord, ReviewStatus
from training.dataset import QA_COLUMNS, Product, question_answer_rows

CORRECTIONS_FILE = "corrections.csv"
CORRECTION_COLUMNS = (*QA_COLUMNS, "photo_key", "photo_version", "review_status", "reviewed_at")
_TRAINABLE = frozenset({ReviewStatus.ACCEPTED, ReviewStatus.CORRECTED})


def photo_file_name(key: str, version: str) -> str:
    """A file name for one photo version that is safe whatever the key holds (ids come from keys)."""
    suffix = Path(key).suffix.lower()
    suffix = suffix if suffix in {".jpg", ".jpeg", ".png", ".webp"} else ".jpg"
    return hashlib.sha256(f"{key}\0{version}".encode()).hexdigest()[:24] + suffix


def correction_rows(record: ProductRecord, catalogue: Catalogue | None = None) -> list[dict[str, str]]:
    """The record's reviewed attributes as Q/A rows (none unless it was accepted or corrected)."""
    review = record.review_decision
    if review is None or review.status not in _TRAINABLE:
        return []
    key, version = photos_of(record)[0]
    product = Product(
        product_id=record.product_id,
        article_type=record.category,
        colour=None,  # "Colour" is one of the record's attributes
        attributes=dict(record.attributes),
        image=Path(photo_file_name(key, version)),
    )
    rows, _ = question_answer_rows(product, catalogue or load_catalogue())
    extra = {
        "photo_key": key,
        "photo_version": version,
        "review_status": review.status.value,
        "reviewed_at": review.reviewed_at,
    }
    return [row | extra for row in rows]


@dataclass(frozen=True)
class ExportReport:
    records: int
    pairs: int
    photos: int
    corrected: int


def export_corrections(
    records: Iterable[ProductRecord],
    out_dir: Path,
    read_photo: Callable[[str, str, str], bytes],
    catalogue: Catalogue | None = None,
    on_record: Callable[[], None] | None = None,
) -> ExportReport:
    """Write ``corrections.csv`` and ``images/`` under ``out_dir``; ``read_photo(bucket, key, version)``."""
    (out_dir / "images").mkdir(parents=True, exist_ok=True)
    rows: list[dict[str, str]] = []
    exported, photos, corrected = 0, 0, 0
    for record in sorted(records, key=lambda r: r.product_id):
        record_rows = correction_rows(record, catalogue)
        if on_record is not None:
            on_record()
        if not record_rows:
            continue
        exported += 1
        corrected += record_rows[0]["review_status"] == ReviewStatus.CORRECTED.value
        key, version = photos_of(record)[0]
        target = out_dir / "images" / photo_file_name(key, version)
        if not target.exists():
            target.write_bytes(read_photo(record.source_bucket, key, version))
            photos += 1
        rows += record_rows
    with (out_dir / CORRECTIONS_FILE).open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=CORRECTION_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    return ExportReport(records=exported, pairs=len(rows), photos=photos, corrected=corrected)
