"""Data preparation: Kaggle-layout catalogue -> attribute catalogue + question/answer splits by product.

Input (the Kaggle "Fashion Product Images" layout, or your own catalogue in it): ``styles.csv``,
``styles/<id>.json``, ``images/<id>.jpg``. Output, a self-contained training channel:
``vqa_{train,val,test}.csv``, ``images/`` (the images used), ``catalogue.json`` and
``prep_report.json``.

Fixes over the reference: unquoted ``styles.csv`` rows whose name holds commas are recovered, not
skipped; ``NA`` placeholders are missing values; missing or unreadable images are counted, never a
crash; the split is by product (one image never lands in two splits), stratified and seeded.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import os
import random
import shutil
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image, UnidentifiedImageError
from pydantic import BaseModel
from tqdm import tqdm

from describer_core.answers import format_answer
from describer_core.catalogue import (
    GENERIC_CATEGORY,
    AttributeSpec,
    Catalogue,
    CategorySpec,
    normalise_token,
)

STYLES_COLUMNS = (
    "id",
    "gender",
    "masterCategory",
    "subCategory",
    "articleType",
    "baseColour",
    "season",
    "year",
    "usage",
    "productDisplayName",
)
MISSING_MARKERS = {"", "na", "n/a", "nan", "null", "none", "-"}
COLOUR_ATTRIBUTE = "Colour"
ARTICLE_TYPE_ATTRIBUTE = "Article Type"
ARTICLE_TYPE_QUESTION = "What type of product is in this picture?"
# Asked of any product whose category the catalogue does not know (when every category has them).
GENERIC_ATTRIBUTES = ("Pattern", COLOUR_ATTRIBUTE)
# Questions come in this order; attributes not listed follow alphabetically.
ATTRIBUTE_ORDER = ("Sleeve Length", "Pattern", "Fit", "Fabric", "Collar", "Neck", COLOUR_ATTRIBUTE)
# Facts a photo cannot show (size charts, care, marketing tags): never asked.
NON_VISUAL_ATTRIBUTES = frozenset(
    {
        "Body or Garment Size",
        "Brand Fit Name",
        "Wash Care",
        "Occasion",
        "Main Trend",
        "Multipack Set",
        "Number of Components",
        "Number of Pockets",
        "Technology",
        "Sport",
        "Sport Team",
        "Players",
        "Processing Time",
        "Business Unit",
        "Brick",
        "Class",
        "Family",
        "Segment",
        "Character",
        "Transparency",
        "Length",
        "Weave Pattern",
        "Fabric 2",
        "Fabric 3",
    }
)
NOUNS = {"shirts": "shirt", "tshirts": "t-shirt", "tops": "top", "kurtas": "kurta", "dresses": "dress"}
SPLITS = ("train", "val", "test")
QA_COLUMNS = ("id", "image", "article_type", "attribute", "question", "answer", "value")


def is_missing(value: object) -> bool:
    return value is None or str(value).strip().casefold() in MISSING_MARKERS


@dataclass
class StylesTable:
    rows: list[dict[str, str | None]]
    recovered_comma_rows: list[str] = field(default_factory=list)
    malformed_lines: list[int] = field(default_factory=list)


def read_styles_csv(path: Path) -> StylesTable:
    """Parse the dataset's unquoted ``styles.csv``.

    The name is the last column and is not quoted, so a name with commas splits into extra fields:
    the first nine fields are the fixed columns and everything after them is the name.
    """
    table = StylesTable(rows=[])
    with Path(path).open(encoding="utf-8", newline="") as handle:
        header = next(csv.reader([handle.readline()]))
        if tuple(column.strip() for column in header) != STYLES_COLUMNS:
            raise ValueError(f"{path}: unexpected header {header}")
        for line_number, line in enumerate(handle, start=2):
            line = line.rstrip("\r\n")
            if not line.strip():
                continue
            fields = line.split(",")
            if len(fields) < len(STYLES_COLUMNS) or not fields[0].strip().isdigit():
                table.malformed_lines.append(line_number)
                continue
            fixed = fields[: len(STYLES_COLUMNS) - 1]
            name = ",".join(fields[len(STYLES_COLUMNS) - 1 :])
            if len(fields) > len(STYLES_COLUMNS):
                table.recovered_comma_rows.append(fixed[0])
            values = [*fixed, name]
            table.rows.append(
                {
                    column: (None if is_missing(value) else value.strip())
                    for column, value in zip(STYLES_COLUMNS, values, strict=True)
                }
            )
    return table


@dataclass
class Product:
    product_id: str
    article_type: str
    colour: str | None
    attributes: dict[str, str]
    image: Path


class PrepReport(BaseModel):
    styles_rows: int
    recovered_comma_rows: list[str]
    malformed_lines: list[int]
    missing_json: int
    unreadable_json: int
    missing_images: int
    unreadable_images: int
    no_article_type: int
    products_used: int
    products_out_of_catalogue: int
    na_values: int
    folded_values: dict[str, dict[str, str]]
    dropped_values: dict[str, dict[str, int]]
    dropped_answers: int
    rows: dict[str, int]
    products: dict[str, int]
    min_support: int
    seed: int


def _image_ok(path: Path) -> bool | None:
    """True when readable, False when present but unreadable, None when missing."""
    if not path.is_file():
        return None
    try:
        with Image.open(path) as image:
            image.verify()
    except (UnidentifiedImageError, OSError, SyntaxError):
        return False
    return True


@dataclass
class LoadStats:
    """What reading the raw files skipped or recovered."""

    styles_rows: int = 0
    recovered_comma_rows: list[str] = field(default_factory=list)
    malformed_lines: list[int] = field(default_factory=list)
    missing_json: int = 0
    unreadable_json: int = 0
    missing_images: int = 0
    unreadable_images: int = 0
    na_values: int = 0
    no_article_type: int = 0


def load_products(
    kaggle_dir: Path, progress: bool = True, require_images: bool = True
) -> tuple[list[Product], LoadStats]:
    """Products with a readable image (any, unless ``require_images``), plus what was skipped."""
    kaggle_dir = Path(kaggle_dir)
    table = read_styles_csv(kaggle_dir / "styles.csv")
    stats = LoadStats(
        styles_rows=len(table.rows),
        recovered_comma_rows=table.recovered_comma_rows,
        malformed_lines=table.malformed_lines,
    )
    products: list[Product] = []
    for row in tqdm(table.rows, desc="reading products", unit="product", disable=not progress):
        product_id = str(row["id"])
        article_type, colour = row["articleType"], row["baseColour"]
        attributes: dict[str, str] = {}
        json_path = kaggle_dir / "styles" / f"{product_id}.json"
        if not json_path.is_file():
            stats.missing_json += 1
        else:
            try:
                data = json.loads(json_path.read_text(encoding="utf-8")).get("data") or {}
                raw_attributes = data.get("articleAttributes") or {}
                article_type = (data.get("articleType") or {}).get("typeName") or article_type
                colour = data.get("baseColour") or colour
            except (json.JSONDecodeError, UnicodeDecodeError, AttributeError):
                stats.unreadable_json += 1
                raw_attributes = {}
            for name, value in raw_attributes.items():
                if is_missing(value):
                    stats.na_values += 1
                else:
                    attributes[str(name).strip()] = " ".join(str(value).split())
        image = kaggle_dir / "images" / f"{product_id}.jpg"
        status = _image_ok(image) if require_images else True
        if status is None:
            stats.missing_images += 1
            continue
        if status is False:
            stats.unreadable_images += 1
            continue
        if is_missing(article_type):
            stats.no_article_type += 1
            continue
        colour = None if is_missing(colour) else str(colour)
        products.append(Product(product_id, str(article_type), colour, attributes, image))
    return products, stats


def product_values(product: Product) -> dict[str, str]:
    """Every attribute a product answers, base colour included."""
    values = dict(product.attributes)
    if product.colour:
        values[COLOUR_ATTRIBUTE] = product.colour
    return values


def fold_target(rare: str, frequent: Sequence[str]) -> str | None:
    """The rule for a value below the support threshold.

    It folds into a frequent value when exactly one frequent value names the same thing: equal after
    normalisation ("Three Quarter Sleeves" -> "Three-Quarter Sleeves") or one phrase contained in the
    other ("Regular" -> "Regular Fit", "Checked Pattern" -> "Checked"). Otherwise it is dropped: the
    product is not asked about that attribute (an answer the model cannot learn is worse than none).
    """
    key = f" {normalise_token(rare)} "
    matches = [
        value
        for value in frequent
        if f" {normalise_token(value)} " in key or key in f" {normalise_token(value)} "
    ]
    return matches[0] if len(matches) == 1 else None


def _attribute_order(name: str) -> tuple[int, str]:
    return (ATTRIBUTE_ORDER.index(name) if name in ATTRIBUTE_ORDER else len(ATTRIBUTE_ORDER), name)


def derive_catalogue(
    products: Sequence[Product],
    *,
    min_support: int,
    min_coverage: float = 0.5,
    source: str,
) -> tuple[Catalogue, dict[str, dict[str, str]], dict[str, dict[str, int]]]:
    """Attributes per article type with vocabularies and counts; rare values folded or dropped.

    An article type becomes a category when it has at least ``min_support`` products. An attribute is
    kept for a category when at least ``min_coverage`` of its products have it and at least two values
    reach ``min_support`` (a one-value attribute teaches nothing).
    Returns the catalogue, the folds ({attribute: {rare: canonical}}) and the drops ({attr: {value: n}}).
    """
    by_type: dict[str, list[Product]] = defaultdict(list)
    for product in products:
        by_type[product.article_type].append(product)
    categories: list[CategorySpec] = []
    folds: dict[str, dict[str, str]] = defaultdict(dict)
    drops: dict[str, dict[str, int]] = defaultdict(dict)
    for article_type in sorted(by_type, key=lambda name: (-len(by_type[name]), name)):
        members = by_type[article_type]
        if len(members) < min_support:
            continue
        counts: dict[str, Counter[str]] = defaultdict(Counter)
        for product in members:
            for name, value in product_values(product).items():
                counts[name][value] += 1
        specs: list[AttributeSpec] = []
        for name in sorted(counts, key=_attribute_order):
            value_counts = counts[name]
            if name in NON_VISUAL_ATTRIBUTES or sum(value_counts.values()) < min_coverage * len(members):
                continue
            frequent = {value: n for value, n in value_counts.most_common() if n >= min_support}
            if len(frequent) < 2:
                continue
            values = dict(frequent)
            aliases: dict[str, str] = {}
            for value, n in value_counts.items():
                if value in frequent:
                    continue
                target = fold_target(value, list(frequent))
                if target is None:
                    drops[f"{article_type}/{name}"][value] = n
                else:
                    aliases[value] = target
                    values[target] += n
                    folds[f"{article_type}/{name}"][value] = target
            specs.append(AttributeSpec(name=name, values=values, aliases=aliases))
        if specs:
            noun = NOUNS.get(normalise_token(article_type).replace(" ", ""), normalise_token(article_type))
            categories.append(CategorySpec(name=article_type, noun=noun, attributes=specs))
    categories.append(_generic_category(categories, {c.name: len(by_type[c.name]) for c in categories}))
    catalogue = Catalogue(source=source, min_support=min_support, categories=categories)
    return catalogue, dict(folds), dict(drops)


def _generic_category(categories: Sequence[CategorySpec], sizes: dict[str, int]) -> CategorySpec:
    specs = [
        AttributeSpec(
            name=ARTICLE_TYPE_ATTRIBUTE, question=ARTICLE_TYPE_QUESTION, values=dict(sizes) or {"Unknown": 0}
        )
    ]
    for name in GENERIC_ATTRIBUTES:
        per_category = []
        for category in categories:
            try:
                per_category.append(category.attribute(name))
            except KeyError:
                break
        else:
            if per_category:
                merged: Counter[str] = Counter()
                aliases: dict[str, str] = {}
                for spec in per_category:
                    merged.update(spec.values)
                    aliases.update(spec.aliases)
                specs.append(AttributeSpec(name=name, values=dict(merged.most_common()), aliases=aliases))
    return CategorySpec(name=GENERIC_CATEGORY, noun="product", attributes=specs)


def question_answer_rows(product: Product, catalogue: Catalogue) -> tuple[list[dict[str, str]], int]:
    """The product's Q/A pairs in the reference's form, and how many answers fell outside the vocabulary."""
    category = catalogue.category(product.article_type)
    if category.name == GENERIC_CATEGORY:
        return [], 0
    image = f"images/{Path(product.image).name}"
    rows: list[dict[str, str]] = []
    dropped = 0
    values = product_values(product)
    generic = catalogue.category(GENERIC_CATEGORY)
    asked = [(spec, category.question_for(spec), values.get(spec.name)) for spec in category.attributes]
    article_spec = generic.attribute(ARTICLE_TYPE_ATTRIBUTE)
    asked.append((article_spec, generic.question_for(article_spec), product.article_type))
    for spec, question, raw in asked:
        if raw is None:
            continue
        value = spec.canonical(raw)
        if value is None:
            dropped += 1
            continue
        rows.append(
            {
                "id": product.product_id,
                "image": image,
                "article_type": product.article_type,
                "attribute": spec.name,
                "question": question,
                "answer": format_answer(spec.name, value),
                "value": value,
            }
        )
    return rows, dropped


def split_products(
    products: Sequence[Product],
    *,
    seed: int,
    val_fraction: float = 0.1,
    test_fraction: float = 0.1,
    stratify: Iterable[str] = ("Pattern", "Sleeve Length"),
) -> dict[str, list[Product]]:
    """Split by product id, stratified by article type and the given attributes where a stratum allows.

    Each stratum (products sharing article type and stratify values) is shuffled with ``seed`` and cut
    by the fractions; a stratum too small for a val/test share goes to train, so rare combinations
    still reach the model.
    """
    stratify = tuple(stratify)
    strata: dict[tuple[str, ...], list[Product]] = defaultdict(list)
    for product in sorted(products, key=lambda p: p.product_id):
        values = product_values(product)
        strata[(product.article_type, *(values.get(name, "") for name in stratify))].append(product)
    rng = random.Random(seed)
    splits: dict[str, list[Product]] = {name: [] for name in SPLITS}
    for key in sorted(strata):
        members = strata[key]
        rng.shuffle(members)
        n_val = round(len(members) * val_fraction)
        n_test = round(len(members) * test_fraction)
        splits["val"].extend(members[:n_val])
        splits["test"].extend(members[n_val : n_val + n_test])
        splits["train"].extend(members[n_val + n_test :])
    return splits


def _link_or_copy(source: Path, target: Path) -> None:
    if target.exists():
        return
    try:
        os.link(source, target)
    except OSError:
        shutil.copyfile(source, target)


def prepare_dataset(
    kaggle_dir: Path,
    out_dir: Path,
    *,
    min_support: int = 20,
    min_coverage: float = 0.5,
    seed: int = 0,
    val_fraction: float = 0.1,
    test_fraction: float = 0.1,
    catalogue: Catalogue | None = None,
    progress: bool = True,
) -> PrepReport:
    """Run the whole preparation; writes the splits, images, catalogue and report under ``out_dir``.

    ``catalogue`` fixes the questions and vocabularies (e.g. the packaged one the pipeline asks)
    instead of deriving them from this data; answers outside it are dropped and counted.
    """
    kaggle_dir, out_dir = Path(kaggle_dir), Path(out_dir)
    products, stats = load_products(kaggle_dir, progress=progress)
    folds: dict[str, dict[str, str]] = {}
    drops: dict[str, dict[str, int]] = {}
    if catalogue is None:
        catalogue, folds, drops = derive_catalogue(
            products,
            min_support=min_support,
            min_coverage=min_coverage,
            source=f"describer dataset prepare: {len(products)} products of {kaggle_dir.name}",
        )
    known = {normalise_token(category.name) for category in catalogue.categories}
    in_catalogue = [p for p in products if normalise_token(p.article_type) in known]
    splits = split_products(in_catalogue, seed=seed, val_fraction=val_fraction, test_fraction=test_fraction)
    (out_dir / "images").mkdir(parents=True, exist_ok=True)
    row_counts: dict[str, int] = {}
    dropped_answers = 0
    for split in SPLITS:
        rows: list[dict[str, str]] = []
        for product in tqdm(splits[split], desc=f"writing {split}", unit="product", disable=not progress):
            product_rows, dropped = question_answer_rows(product, catalogue)
            dropped_answers += dropped
            rows.extend(product_rows)
            _link_or_copy(product.image, out_dir / "images" / Path(product.image).name)
        with (out_dir / f"vqa_{split}.csv").open("w", encoding="utf-8", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=QA_COLUMNS)
            writer.writeheader()
            writer.writerows(rows)
        row_counts[split] = len(rows)
    (out_dir / "catalogue.json").write_text(catalogue.to_json(), encoding="utf-8")
    report = PrepReport(
        **dataclasses.asdict(stats),
        products_used=len(in_catalogue),
        products_out_of_catalogue=len(products) - len(in_catalogue),
        folded_values=folds,
        dropped_values=drops,
        dropped_answers=dropped_answers,
        rows=row_counts,
        products={split: len(splits[split]) for split in SPLITS},
        min_support=catalogue.min_support,
        seed=seed,
    )
    (out_dir / "prep_report.json").write_text(report.model_dump_json(indent=2) + "\n", encoding="utf-8")
    return report


def read_qa_rows(path: Path) -> list[dict[str, str]]:
    with Path(path).open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def attribute_spec(catalogue: Catalogue, row: dict[str, str]) -> AttributeSpec:
    """The vocabulary a Q/A row's answer is normalised with (Article Type is the generic category's)."""
    category = GENERIC_CATEGORY if row["attribute"] == ARTICLE_TYPE_ATTRIBUTE else row["article_type"]
    return catalogue.category(category).attribute(row["attribute"])
