"""The one reader of the Kaggle layout (styles/, styles.csv or both), bad input counted, block splits."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from describer.cli import main
from describer_rules.catalogue import load_catalogue
from training.dataset import (
    BLOCK_PRODUCTS,
    label_value,
    prepare_dataset,
    read_dataset,
    read_qa_rows,
    split_id_blocks,
    write_block_split,
)

HEADER = "id,gender,masterCategory,subCategory,articleType,baseColour,season,year,usage,productDisplayName"
# id -> (article type, base colour, article attributes)
PRODUCTS = {
    "11": ("Tshirts", "Navy Blue ", {"Pattern": "Solid", "Sleeve Length": "Short Sleeves"}),
    "12": ("Tshirts", "Burgundy", {"Pattern": "Striped"}),  # folds Burgundy -> Maroon
    "13": ("Shirts", "Charcoal", {"Pattern": "Checked", "Fit": "NA"}),  # Charcoal -> Grey for shirts
    "14": ("Shirts", "Multi", {"Pattern": "Paisley"}),  # both outside the shirt's vocabularies
    "15": ("Sweaters", "Red", {}),  # article type outside the catalogue
}


def _write(root: Path, *, json_files: bool = True, csv: bool = True, photos: bool = True) -> Path:
    for product_id, (article_type, colour, attributes) in PRODUCTS.items():
        if json_files:
            data = {
                "id": int(product_id),
                "articleType": {"typeName": article_type},
                "baseColour": colour,
                "articleAttributes": attributes,
            }
            (root / "styles").mkdir(parents=True, exist_ok=True)
            (root / "styles" / f"{product_id}.json").write_text(json.dumps({"data": data}))
        if photos:
            (root / "images").mkdir(parents=True, exist_ok=True)
            Image.new("RGB", (32, 32), (200, 30, 30)).save(root / "images" / f"{product_id}.jpg")
    if csv:
        lines = [HEADER] + [
            f"{product_id},Men,Apparel,Topwear,{article_type},{colour},Summer,2012,Casual,A, named product"
            for product_id, (article_type, colour, _) in PRODUCTS.items()
        ]
        (root / "styles.csv").write_text("\n".join(lines) + "\n")
    return root


@pytest.mark.parametrize("layout", ["styles", "csv", "both"])
def test_one_reader_for_styles_files_styles_csv_or_both(tmp_path: Path, layout: str) -> None:
    root = _write(tmp_path, json_files=layout != "csv", csv=layout != "styles")
    products, report = read_dataset(root, progress=False)
    by_id = {product.product_id: product for product in products}
    assert sorted(by_id) == sorted(PRODUCTS)
    assert by_id["11"].colour == "Navy Blue"  # stripped, whichever file it came from
    assert by_id["13"].article_type == "Shirts"
    expected_attributes = {} if layout == "csv" else {"Pattern": "Checked"}  # "NA" is missing
    assert by_id["13"].attributes == expected_attributes
    assert report.csv_only == (len(PRODUCTS) if layout == "csv" else 0)


def test_bad_input_is_counted_and_named_never_guessed(tmp_path: Path) -> None:
    root = _write(tmp_path, csv=False)
    (root / "styles" / "16.json").write_text("{not json")
    (root / "styles" / "17.json").write_text(json.dumps({"data": {"id": 17, "baseColour": "Red"}}))
    (root / "styles" / "18.json").write_text(
        json.dumps({"data": {"id": 18, "articleType": {"typeName": "Tshirts"}}})
    )
    (root / "images" / "18.jpg").write_bytes(b"\xff\xd8 not a jpeg")
    (root / "styles" / "19.json").write_text(
        json.dumps({"data": {"id": 19, "articleType": {"typeName": "Tshirts"}}})
    )

    report = prepare_dataset(root, tmp_path / "out", catalogue=load_catalogue(), progress=False)

    assert report.source.unreadable == ["16.json"]
    assert report.source.no_article_type == ["17"]
    assert report.source.unreadable_images == ["18"]
    assert report.source.missing_images == ["19"]
    assert report.out_of_catalogue_types == {"Sweaters": 1}
    assert report.products_used == 4
    # Labels: Tshirts' colours fold into its vocabulary; a shirt's "Multi" and "Paisley" are outside it.
    assert report.labels["Tshirts/Colour"].labelled == 2
    assert report.labels["Tshirts/Sleeve Length"].labelled == 1
    assert report.labels["Tshirts/Sleeve Length"].missing == 1
    assert report.labels["Shirts/Colour"].model_dump() == {"labelled": 1, "missing": 0, "outside": 1}
    assert report.labels["Shirts/Pattern"].outside == 1
    assert report.labels["Shirts/Fit"].missing == 2  # "NA" counts as missing, never as a value
    assert report.dropped_answers == 2
    rows = [
        row
        for split in ("train", "val", "test")
        for row in read_qa_rows(tmp_path / "out" / f"vqa_{split}.csv")
    ]
    colours = {row["id"]: row["value"] for row in rows if row["attribute"] == "Colour"}
    assert colours == {"11": "Navy Blue", "12": "Maroon", "13": "Grey"}


def test_the_colour_rule_keeps_known_colours_and_folds_the_rest_by_family() -> None:
    catalogue = load_catalogue()
    tshirt, shirt = (
        catalogue.category("Tshirts").attribute("Colour"),
        catalogue.category("Shirts").attribute("Colour"),
    )
    assert label_value(tshirt, "Navy Blue") == "Navy Blue"  # the category knows it: kept
    assert label_value(tshirt, "Charcoal") == "Charcoal"
    assert label_value(shirt, "Charcoal") == "Grey"  # shirts do not: its family
    assert label_value(shirt, "Burgundy") == "Maroon"
    assert label_value(shirt, "Off White") == "White"  # the catalogue's own alias
    assert label_value(shirt, "Multi") is None
    assert label_value(catalogue.category("Shirts").attribute("Pattern"), "Charcoal") is None


def test_a_folder_without_styles_is_one_line_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "images").mkdir()
    assert main(["dataset", "prepare", "--kaggle-dir", str(tmp_path), "--out", str(tmp_path / "out")]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "neither a styles/ folder nor a styles.csv" in error


def test_blocks_keep_neighbouring_ids_together_and_are_seeded() -> None:
    ids = [str(100 + 3 * n) for n in range(400)]
    split = split_id_blocks(ids, {"test": 0.2}, rest="train", seed=3)
    assert split == split_id_blocks(reversed(ids), {"test": 0.2}, rest="train", seed=3)
    assert split != split_id_blocks(ids, {"test": 0.2}, rest="train", seed=4)
    assert len(split["test"]) == 80 and len(split["train"]) == 320
    ordered = sorted(ids, key=int)
    for start in range(0, len(ordered), BLOCK_PRODUCTS):  # each run of neighbours lies in one split
        block = set(ordered[start : start + BLOCK_PRODUCTS])
        assert block <= set(split["test"]) or block <= set(split["train"])


def test_the_split_command_links_held_aside_blocks(tmp_path: Path) -> None:
    source = tmp_path / "kaggle"
    for number in range(100):
        PRODUCTS[str(1000 + number)] = ("Tshirts", "Blue", {})
    try:
        _write(source)
    finally:
        for number in range(100):
            del PRODUCTS[str(1000 + number)]
    train, holdout = tmp_path / "train", tmp_path / "holdout"
    args = ["--kaggle-dir", str(source), "--out-train", str(train), "--out-holdout", str(holdout)]
    assert main(["dataset", "split", *args, "--holdout-fraction", "0.2"]) == 0
    train_ids = {path.stem for path in (train / "images").iterdir()}
    holdout_ids = {path.stem for path in (holdout / "images").iterdir()}
    assert not train_ids & holdout_ids and len(train_ids | holdout_ids) == 105
    assert 15 <= len(holdout_ids) <= 25
    assert all(path.is_symlink() for path in (holdout / "styles").iterdir())
    holdout_rows = {line.split(",")[0] for line in (holdout / "styles.csv").read_text().splitlines()[1:]}
    assert holdout_rows == holdout_ids
    products, _ = read_dataset(holdout, progress=False)
    assert {product.product_id for product in products} == holdout_ids
    with pytest.raises(FileExistsError):
        write_block_split(source, train, holdout, holdout_fraction=0.2)
