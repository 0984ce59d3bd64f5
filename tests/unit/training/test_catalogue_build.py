"""`describer catalogue build`: the packaged catalogue's rules, on a small styles/ folder written here."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from describer.cli import main
from describer_rules.catalogue import GENERIC_CATEGORY, load_catalogue
from training.dataset import ARTICLE_TYPE_ATTRIBUTE, build_catalogue, non_visual_reason


def _write_style(
    folder: Path, product_id: int, article_type: str | None, colour: str, **attributes: str
) -> None:
    data: dict[str, object] = {"id": product_id, "baseColour": colour, "articleAttributes": attributes}
    if article_type is not None:
        data["articleType"] = {"typeName": article_type}
    (folder / f"{product_id}.json").write_text(json.dumps({"meta": {"code": 200}, "data": data}))


@pytest.fixture
def styles(tmp_path: Path) -> Path:
    """Jeans (12), Watches (10: label facts besides colour), Socks (4: too few; one colour each)."""
    folder = tmp_path / "styles"
    folder.mkdir()
    rises = ["Mid-Rise"] * 6 + ["Low-Rise"] * 5 + ["low rise"]
    for number, rise in enumerate(rises):
        _write_style(
            folder,
            100 + number,
            "Jeans",
            "Blue" if number % 2 else "Black",
            **{
                "Waist Rise": rise,
                "Fabric": ("Cotton", "Denim")[number % 2]
                if number < 11
                else "Lycra Blend",  # rare, unfoldable
                "Fabric 2": "Elastane" if number % 2 else "Polyester",  # numbered duplicate
                "Body or Garment Size": "To-Fit Denotes Body Measurements in" if number % 2 else "Garment",
                "Occasion": "Casual" if number % 2 else "Party",
                "Brand Fit Name": "Hottie" if number % 2 else "Frisky",
                "Distress": "Other" if number % 2 else "Clean Look",  # one look + a catch-all
            },
        )
    for number in range(10):
        _write_style(
            folder,
            200 + number,
            "Watches",
            "Silver" if number % 2 else "Black",
            **{
                "Warranty": "1 year" if number % 2 else "2 years",
                "Movement": "Quartz" if number % 2 else "Auto",
            },
        )
    for number in range(4):
        _write_style(folder, 300 + number, "Socks", "White" if number % 2 else "Black", Pattern="Solid")
    (folder / "400.json").write_text("{not json")
    _write_style(folder, 401, None, "Red", Pattern="Solid")
    return folder


def test_the_rules_admit_types_by_size_and_ask_only_what_a_photo_shows(styles: Path) -> None:
    catalogue, report = build_catalogue(
        styles, min_products=10, min_support=4, min_coverage=0.5, progress=False
    )
    assert [category.name for category in catalogue.categories] == ["Jeans", "Watches", GENERIC_CATEGORY]
    jeans = catalogue.category("Jeans")
    assert [spec.name for spec in jeans.attributes] == ["Fabric", "Colour", "Waist Rise"]
    rise = jeans.attribute("Waist Rise")
    assert rise.values == {"Mid-Rise": 6, "Low-Rise": 6}  # "low rise" folded into Low-Rise
    assert rise.aliases == {"low rise": "Low-Rise"}
    assert jeans.question_for(rise) == "What is the waist rise of the jeans in this picture?"
    why = report.excluded_attributes["Jeans"]
    assert why["Fabric 2"] == "numbered duplicate"
    assert why["Body or Garment Size"] == "size"
    assert why["Occasion"] == "occasion"
    assert why["Brand Fit Name"] == "brand"
    assert why["Distress"].startswith("fewer than 2 values")  # "Other" is no look
    assert report.dropped_values["Jeans/Fabric"] == {"Lycra Blend": 1}
    # Watches keep only their colour (Warranty and Movement are on the label, not in the photo).
    assert [spec.name for spec in catalogue.category("Watches").attributes] == ["Colour"]
    assert report.categories == {"Jeans": 12, "Watches": 10}
    assert report.styles.unreadable == ["400.json"] and report.styles.no_article_type == ["401"]
    generic = catalogue.category(GENERIC_CATEGORY).attribute(ARTICLE_TYPE_ATTRIBUTE)
    assert generic.values == {"Jeans": 12, "Watches": 10}
    assert catalogue.category("Socks").name == GENERIC_CATEGORY  # 4 products: below min_products


def test_a_type_with_no_attribute_a_photo_shows_is_reported_not_dropped_silently(styles: Path) -> None:
    _, report = build_catalogue(styles, min_products=4, min_support=4, min_coverage=0.5, progress=False)
    assert report.excluded_types == {"Socks": "no attribute a photo can show passes the rules"}
    assert report.excluded_attributes["Watches"] == {"Warranty": "label", "Movement": "label"}


def test_the_command_writes_a_catalogue_the_pipeline_loads(styles: Path, tmp_path: Path, capsys) -> None:
    out, report = tmp_path / "catalogue.json", tmp_path / "report.json"
    args = ["catalogue", "build", "--styles", str(styles), "--out", str(out), "--report", str(report)]
    assert main([*args, "--min-products", "10", "--min-support", "4", "--min-coverage", "0.5"]) == 0
    assert [c.name for c in load_catalogue(out).categories] == ["Jeans", "Watches", GENERIC_CATEGORY]
    printed = capsys.readouterr().out
    assert "1 unreadable, 1 without an article type" in printed
    # Jeans: Fabric, Colour, Waist Rise + the article type; watches: Colour + the article type.
    assert json.loads(report.read_text())["qa_pairs"] == {"Jeans": 12 * 4 - 1, "Watches": 10 * 2}
    assert "67 Q/A pairs from the metadata" in printed and "1 answers outside the vocabulary" in printed
    assert json.loads(report.read_text())["dropped_values"]["Jeans/Fabric"] == {"Lycra Blend": 1}


def test_the_rule_for_visual_attributes() -> None:
    assert non_visual_reason("Fabric 2") == "numbered duplicate"
    assert non_visual_reason("Number of Pockets") == "count"
    assert non_visual_reason("taxMaterial") == "tax"
    assert non_visual_reason("Waist Rise") is None and non_visual_reason("Toe Shape") is None


def test_the_packaged_catalogue_is_the_build_of_the_full_metadata() -> None:
    catalogue = load_catalogue()
    assert catalogue.source.startswith("describer catalogue build: 44441 products")
    categories = [c.name for c in catalogue.categories if c.name != GENERIC_CATEGORY]
    assert len(categories) >= 20
    article_types = catalogue.category(GENERIC_CATEGORY).attribute(ARTICLE_TYPE_ATTRIBUTE)
    assert sorted(article_types.values) == sorted(categories)
    assert all(count >= 300 for count in article_types.values.values())
    jeans = catalogue.category("Jeans")
    assert set(jeans.attribute("Waist Rise").values) == {"Mid-Rise", "Low-Rise", "High-Rise"}
    for category in catalogue.categories:
        for spec in category.attributes:
            assert non_visual_reason(spec.name) is None, (category.name, spec.name)
