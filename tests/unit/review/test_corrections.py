"""Reviews as training data: the export's rows are the prepared format, the photos are where the rows
say, and training reads them with --extra-pairs."""

from __future__ import annotations

from pathlib import Path

from describer.review.corrections import (
    CORRECTIONS_FILE,
    correction_rows,
    export_corrections,
    photo_file_name,
)
from describer.review.desk import ReviewDesk
from describer_aws.results_table import RecordVersion
from training.dataset import QA_COLUMNS, read_qa_rows
from training.modeling import group_by_image
from training.train_config import parse_args

from .conftest import BUCKET, Stack, jpeg, shirt_record


def _reviewed(stack: Stack, desk: ReviewDesk) -> None:
    corrected = stack.put(shirt_record("corrected"))
    desk.correct("corrected", RecordVersion.of(corrected), {"Fabric": "Polyester"}, {})
    accepted = stack.put(shirt_record("<img src=x onerror=alert(1)>"))
    desk.accept(accepted.product_id, RecordVersion.of(accepted))
    rejected = stack.put(shirt_record("rejected"))
    desk.reject("rejected", RecordVersion.of(rejected), "two shirts in the photo")
    stack.put(shirt_record("not-reviewed"))


def test_the_export_writes_the_prepared_format_with_photo_key_and_version(
    stack: Stack, tmp_path: Path
) -> None:
    desk = stack.desk()
    _reviewed(stack, desk)
    records = [
        stack.table.get(pid)
        for pid in ("corrected", "<img src=x onerror=alert(1)>", "rejected", "not-reviewed")
    ]
    reads: list[tuple[str, str, str]] = []

    def read_photo(bucket: str, key: str, version: str) -> bytes:
        reads.append((bucket, key, version))
        return jpeg()

    report = export_corrections([r for r in records if r is not None], tmp_path, read_photo)

    rows = read_qa_rows(tmp_path / CORRECTIONS_FILE)
    assert tuple(rows[0])[: len(QA_COLUMNS)] == QA_COLUMNS
    assert (report.records, report.corrected, report.photos) == (2, 1, 2)
    assert {row["id"] for row in rows} == {"corrected", "<img src=x onerror=alert(1)>"}
    fabric = {row["id"]: row for row in rows if row["attribute"] == "Fabric"}
    assert (
        fabric["corrected"]["answer"] == "Fabric: Polyester" and fabric["corrected"]["value"] == "Polyester"
    )
    assert fabric["corrected"]["review_status"] == "corrected"
    assert fabric["corrected"]["question"] == "What is the fabric of the shirt in this picture?"
    assert {row["attribute"] for row in rows if row["id"] == "corrected"} >= {"Article Type", "Colour", "Fit"}
    assert fabric["corrected"]["photo_key"] == "incoming/Shirts/corrected.jpg"
    assert fabric["corrected"]["photo_version"] == "null"
    assert sorted(reads) == sorted(
        (BUCKET, f"incoming/Shirts/{pid}.jpg", "null")
        for pid in ("corrected", "<img src=x onerror=alert(1)>")
    )
    # The photo file is named by key and version, never by the (hostile) product id.
    assert "<" not in "".join(path.name for path in (tmp_path / "images").iterdir())
    items = group_by_image(rows, tmp_path)
    assert len(items) == 2 and all(item.image.is_file() for item in items)


def test_rejected_and_unreviewed_records_give_no_pairs() -> None:
    assert correction_rows(shirt_record()) == []


def test_a_photo_name_depends_on_key_and_version_only() -> None:
    assert photo_file_name("incoming/a.jpg", "v1") != photo_file_name("incoming/a.jpg", "v2")
    assert photo_file_name("incoming/<x>.gif", "v1").endswith(".jpg")


def test_training_takes_the_corrections_as_extra_pairs(tmp_path: Path) -> None:
    config = parse_args(["--train-dir", str(tmp_path), "--extra-pairs", str(tmp_path / CORRECTIONS_FILE)])
    assert config.extra_pairs == tmp_path / CORRECTIONS_FILE
    assert "extra_pairs" not in config.hyperparameters()
