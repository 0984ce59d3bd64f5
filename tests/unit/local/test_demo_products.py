"""The demo's product list: every synthetic category, one of them uploaded without a category folder."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console

from describer.deployment_commands import category_label
from describer.local.demo.run import UNFILED_CATEGORY, demo_samples, results_table
from describer.local.samples import SampleFile
from describer_rules.contracts import CategorySource, ProductRecord, Status
from describer_rules.keys import identify
from training.synth import DRAWN


def test_the_demo_uploads_every_category_and_one_photo_whose_category_the_model_chooses(
    tmp_path: Path,
) -> None:
    photos = [sample for sample in demo_samples(tmp_path, per_category=1) if sample.expected_error is None]
    assert sorted(photo.category for photo in photos) == sorted(DRAWN) and len(DRAWN) >= 4
    unfiled = [photo for photo in photos if "/" not in photo.key]
    assert [photo.category for photo in unfiled] == [UNFILED_CATEGORY]
    assert identify("incoming/" + unfiled[0].key, "incoming/", {}).category_hint is None
    # A second run reuses the photos and the same product goes up without its folder again.
    assert [s.key for s in demo_samples(tmp_path, per_category=1)][: len(photos)] == [p.key for p in photos]


def test_the_results_table_says_where_the_category_came_from() -> None:
    record = ProductRecord(
        product_id="1",
        category="Jeans",
        category_source=CategorySource.MODEL,
        category_confidence=0.973,
        status=Status.COMPLETED,
        source_bucket="b",
        source_key="incoming/1.jpg",
        source_version="v",
        execution_name="e",
        order_token="t",
        created_at="2026-12-03T00:00:00.000Z",
        updated_at="2026-12-03T00:00:00.000Z",
    )
    assert category_label(record) == "Jeans (model 0.97)"
    filed = record.model_copy(
        update={"category": "Shirts", "category_source": CategorySource.KEY, "category_confidence": None}
    )
    assert category_label(filed) == "Shirts (key)"


def test_the_results_table_lists_each_attribute_with_its_confidence_and_the_truth() -> None:
    record = ProductRecord(
        product_id="7",
        category="Jeans",
        category_source=CategorySource.MODEL,
        category_confidence=0.999,
        status=Status.COMPLETED,
        source_bucket="b",
        source_key="incoming/7.jpg",
        source_version="v",
        execution_name="e",
        order_token="t",
        created_at="2026-12-03T00:00:00.000Z",
        updated_at="2026-12-03T00:00:00.000Z",
        attributes={"Waist Rise": "Mid-Rise", "Fit": "Slim Fit"},
        confidence={"Waist Rise": 0.91, "Fit": 0.55},
    )
    sample = SampleFile(
        Path("7.jpg"), "7.jpg", "7", "Jeans", truth={"Waist Rise": "Mid-Rise", "Fit": "Skinny Fit"}
    )
    console = Console(record=True, width=200)
    console.print(results_table([sample], {"7": record}))
    text = console.export_text()
    assert "Jeans (model 1.00)" in text
    assert "Waist Rise: Mid-Rise (0.91)" in text and "Fit: Slim Fit ≠ Skinny Fit (0.55)" in text


def test_the_demo_shows_unverified_answers_and_refuses_an_attribute_without_a_confidence() -> None:
    record = ProductRecord(
        product_id="8",
        category="Casual Shoes",
        category_source=CategorySource.KEY,
        status=Status.COMPLETED,
        source_bucket="b",
        source_key="incoming/Casual Shoes/8.jpg",
        source_version="v",
        execution_name="e",
        order_token="t",
        created_at="2026-12-03T00:00:00.000Z",
        updated_at="2026-12-03T00:00:00.000Z",
        attributes={"Colour": "Black"},
        confidence={"Colour": 0.93},
        unverified_attributes={"Material": "Suede"},
        needs_review=True,
    )
    sample = SampleFile(Path("8.jpg"), "Casual Shoes/8.jpg", "8", "Casual Shoes")
    console = Console(record=True, width=200)
    console.print(results_table([sample], {"8": record}))
    text = console.export_text()
    assert "Colour: Black (0.93)" in text and "Material: Suede (unverified)" in text
    assert "no confidence" not in text
    # The old shape: a generated answer among the attributes is what the demo now reports.
    old = record.model_copy(update={"attributes": {"Colour": "Black", "Material": "Suede"}})
    console = Console(record=True, width=200)
    console.print(results_table([sample], {"8": old}))
    assert "no confidence for Material, yet in attributes" in console.export_text()
