"""Data preparation against the real file format: comma rows, NA, missing images, split by product."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from PIL import Image

from describer_rules.answers import parse_answer
from describer_rules.catalogue import load_catalogue
from training.dataset import (
    Product,
    derive_catalogue,
    fold_target,
    prepare_dataset,
    read_qa_rows,
    read_styles_csv,
    split_products,
)

# Rows as the real styles.csv writes them: unquoted, so names with commas add fields.
HEADER = "id,gender,masterCategory,subCategory,articleType,baseColour,season,year,usage,productDisplayName"
REAL_STYLE_ROWS = f"""{HEADER}
1563,Men,Apparel,Topwear,Tshirts,Blue,Fall,2010,Sports,Quechua Men Sweat Proof Blue T-shirt
3413,Men,Apparel,Topwear,Tshirts,White,Summer,2011,Casual,Myntra Men's Yes, its all about me White T-shirt
3428,Men,Apparel,Topwear,Tshirts,Black,Summer,2011,Casual,Myntra Mens Be Reasonable,Do It My Way T-shirt
4854,Unisex,Footwear,Shoes,Casual Shoes,White,Winter,2012,NA,Newfeel Unisex White, Blue and Orange Shoes
broken line without fields
"""


def _style_json(product_id: str, article_type: str, colour: str, attributes: dict[str, str]) -> str:
    data = {
        "id": int(product_id),
        "articleType": {"typeName": article_type},
        "baseColour": colour,
        "articleAttributes": attributes,
    }
    return json.dumps({"meta": {"code": 200}, "data": data})


def test_styles_csv_recovers_names_with_commas_and_reads_na_as_missing(tmp_path: Path) -> None:
    path = tmp_path / "styles.csv"
    path.write_text(REAL_STYLE_ROWS, encoding="utf-8")
    table = read_styles_csv(path)
    by_id = {row["id"]: row for row in table.rows}
    assert set(by_id) == {"1563", "3413", "3428", "4854"}
    assert table.recovered_comma_rows == ["3413", "3428", "4854"]
    assert by_id["3413"]["productDisplayName"] == "Myntra Men's Yes, its all about me White T-shirt"
    assert by_id["3428"]["productDisplayName"] == "Myntra Mens Be Reasonable,Do It My Way T-shirt"
    assert by_id["4854"]["usage"] is None
    assert by_id["4854"]["baseColour"] == "White"
    assert table.malformed_lines == [6]


def test_prepare_counts_missing_and_unreadable_images_and_never_splits_a_product(
    synthetic_kaggle: Path, tmp_path: Path
) -> None:
    kaggle = tmp_path / "kaggle"
    shutil.copytree(synthetic_kaggle, kaggle)
    images = sorted((kaggle / "images").iterdir())
    images[0].unlink()
    images[1].write_bytes(b"not a jpeg")
    report = prepare_dataset(kaggle, tmp_path / "out", min_support=3, seed=1, progress=False)

    assert report.source.missing_images == [images[0].stem]
    assert report.source.unreadable_images == [images[1].stem]
    assert report.source.styles_csv_rows == report.source.files == 60
    assert report.source.na_values == 60  # every synthetic product carries "Fabric 2": "NA"
    split_ids = {
        split: {row["id"] for row in read_qa_rows(tmp_path / "out" / f"vqa_{split}.csv")}
        for split in ("train", "val", "test")
    }
    assert not split_ids["train"] & split_ids["val"]
    assert not split_ids["train"] & split_ids["test"]
    assert not split_ids["val"] & split_ids["test"]
    assert images[0].stem not in set().union(*split_ids.values())
    assert sum(report.products.values()) == report.products_used
    assert report.products_used + report.products_out_of_catalogue == 58  # every readable product


def test_prepared_rows_use_the_catalogue_questions_and_reference_answers(
    synthetic_kaggle: Path, tmp_path: Path
) -> None:
    prepare_dataset(synthetic_kaggle, tmp_path, min_support=3, progress=False)
    catalogue = load_catalogue(tmp_path / "catalogue.json")
    rows = read_qa_rows(tmp_path / "vqa_train.csv")
    assert {"id", "image", "attribute", "question", "answer"} <= set(rows[0])
    styles = {p.stem: json.loads(p.read_text())["data"] for p in (synthetic_kaggle / "styles").iterdir()}
    for row in rows:
        assert (tmp_path / row["image"]).is_file()
        assert row["answer"] == f"{row['attribute']}: {row['value']}"
        data = styles[row["id"]]
        if row["attribute"] == "Article Type":
            assert row["question"] == "What type of product is in this picture?"
            assert row["value"] == data["articleType"]["typeName"]
            continue
        category = catalogue.category(row["article_type"])
        spec = category.attribute(row["attribute"])
        assert row["question"] == category.question_for(spec)
        expected = (
            data["baseColour"]
            if row["attribute"] == "Colour"
            else data["articleAttributes"][row["attribute"]]
        )
        assert row["value"] == expected
        assert parse_answer(row["answer"], spec).value == row["value"]
    tshirt_questions = {row["question"] for row in rows if row["article_type"] == "Tshirts"}
    assert "What is the pattern of the t-shirt in this picture?" in tshirt_questions


def _product(product_id: int, article_type: str = "Tshirts", **attributes: str) -> Product:
    return Product(str(product_id), article_type, attributes.pop("colour", "Blue"), attributes, Path("x.jpg"))


def test_catalogue_folds_variants_drops_unknown_rare_values_and_one_value_attributes() -> None:
    products = [
        _product(i, **{"Fit": "Regular Fit" if i % 2 else "Slim Fit", "Neck": "Round Neck"})
        for i in range(40)
    ]
    products += [
        _product(100, Fit="Regular"),
        _product(101, Fit="Loose Cut"),
        _product(102, Fit="regular fit"),
    ]
    derived = derive_catalogue(products, min_support=5, source="test")
    catalogue, folds, drops = derived.catalogue, derived.folds, derived.drops
    tshirts = catalogue.category("Tshirts")
    fit = tshirts.attribute("Fit")
    assert fit.values == {"Slim Fit": 20, "Regular Fit": 22}
    assert fit.aliases == {"Regular": "Regular Fit", "regular fit": "Regular Fit"}
    assert folds["Tshirts/Fit"] == {"Regular": "Regular Fit", "regular fit": "Regular Fit"}
    assert drops["Tshirts/Fit"] == {"Loose Cut": 1}
    with pytest.raises(KeyError):
        tshirts.attribute("Neck")  # one value only: nothing to learn
    assert catalogue.category("anything").name == "generic"
    assert fold_target("Checked Pattern", ["Checked", "Striped"]) == "Checked"
    assert fold_target("Boat Neck", ["Round Neck", "V-Neck"]) is None


def test_split_is_seeded_and_stratified() -> None:
    products = [
        _product(i, "Shirts" if i % 3 == 0 else "Tshirts", Pattern=("Solid", "Striped")[i % 2])
        for i in range(200)
    ]
    first = split_products(products, seed=5)
    again = split_products(products, seed=5)
    other = split_products(products, seed=6)
    ids = {split: [p.product_id for p in members] for split, members in first.items()}
    assert ids == {split: [p.product_id for p in members] for split, members in again.items()}
    assert ids != {split: [p.product_id for p in members] for split, members in other.items()}
    assert len(first["test"]) == len(first["val"]) == 20
    shirts_in_test = sum(p.article_type == "Shirts" for p in first["test"])
    assert 5 <= shirts_in_test <= 8  # about a third, like the whole


def test_synthetic_images_encode_colour(synthetic_kaggle: Path) -> None:
    styles = {p.stem: json.loads(p.read_text())["data"] for p in (synthetic_kaggle / "styles").iterdir()}
    product_id = next(key for key, data in styles.items() if data["baseColour"] == "Red")
    with Image.open(synthetic_kaggle / "images" / f"{product_id}.jpg") as image:
        red, green, blue = image.convert("RGB").resize((1, 1), Image.Resampling.BOX).getpixel((0, 0))  # type: ignore[misc]
    assert red > green + 20 and red > blue + 20
    lines = (synthetic_kaggle / "styles.csv").read_text().splitlines()
    assert lines[0].startswith("id,gender,masterCategory")
