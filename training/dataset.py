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
import re
import shutil
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image, UnidentifiedImageError
from pydantic import BaseModel
from tqdm import tqdm

from describer_rules.answers import format_answer
from describer_rules.catalogue import (
    ARTICLE_TYPE_ATTRIBUTE,
    ARTICLE_TYPE_QUESTION,
    COLOUR_ATTRIBUTE,
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
# Asked of any product whose category the catalogue does not know (when every category has them).
GENERIC_ATTRIBUTES = ("Pattern", COLOUR_ATTRIBUTE)
# Questions come in this order; attributes not listed follow alphabetically.
ATTRIBUTE_ORDER = ("Sleeve Length", "Pattern", "Fit", "Fabric", "Collar", "Neck", COLOUR_ATTRIBUTE)
# Which attributes a photo can show. Everything the metadata names is asked unless one rule excludes it:
# size and measurement (incl. counts: "Number of ..."), tax and catalogue administration, occasion-like
# (what it is for, not what it looks like), brand-like (names and marketing), facts only a label or a
# spec sheet knows (care, technology, warranty), and the numbered duplicates "Fabric 2", "Features 3"
# (the second fabric of a blend). ``non_visual_reason`` applies them.
NON_VISUAL_ATTRIBUTES: dict[str, frozenset[str]] = {
    "size": frozenset(
        {"Body or Garment Size", "Size", "Shoe Width", "Laptop Size", "Multipack Set", "Assorted", "Distance"}
    ),
    "tax": frozenset(
        {
            "taxMaterial",
            "Business Unit",
            "Brick",
            "Class",
            "Family",
            "Segment",
            "Processing Time",
            "Minimum Shelf Life in Months",
            "Total Shelf Life in Months",
        }
    ),
    "occasion": frozenset(
        {
            "Occasion",
            "Sport",
            "Main Trend",
            "Micro Trend",
            "Trends",
            "Face Shape",
            "Running Type",
            "Surface Type",
            "Pronation for Running Shoes",
            "Arch Type",
            "Stitch",
        }
    ),
    "brand": frozenset(
        {"Brand", "Brand Fit Name", "Colour Shade Name", "Character", "Players", "Sport Team", "Make"}
    ),
    "label": frozenset(
        {
            "Wash Care",
            "Technology",
            "Warranty",
            "Water Resistance",
            "Movement",
            "Power Source",
            "Features",
            "Scratch Resistance",
            "Cushioning",
            "Fabric Purity",
            "Weave Type",
            "Insole",
            "Tablet Sleeve",
            "Add-Ons",
            "Fragrance",
            "Feature",
            "Wiring",
        }
    ),
}
COUNT_PREFIX = "number of "
_NUMBERED_DUPLICATE = re.compile(r"^(?P<base>.*\S)\s+\d+$")
# A value that names no look ("Other", "Other Sunglasses") cannot be learnt from a photo: dropped.
_CATCH_ALL_VALUE = re.compile(r"^other\b", re.IGNORECASE)


def non_visual_reason(name: str) -> str | None:
    """Why ``name`` is never asked ("size", "tax", "occasion", "brand", "label", "count",
    "numbered duplicate"), or None when a photo can show it."""
    if _NUMBERED_DUPLICATE.match(name):
        return "numbered duplicate"
    if name.casefold().startswith(COUNT_PREFIX):
        return "count"
    for reason, names in NON_VISUAL_ATTRIBUTES.items():
        if name in names:
            return reason
    return None


# How a question names a product of the type (the type's name, lower-cased, when not listed).
NOUNS = {
    "shirts": "shirt", "tshirts": "t-shirt", "tops": "top", "kurtas": "kurta", "dresses": "dress",
    "casualshoes": "shoe", "sportsshoes": "sports shoe", "formalshoes": "shoe", "watches": "watch",
    "handbags": "handbag", "heels": "heel", "wallets": "wallet", "flipflops": "flip-flop",
    "sandals": "sandal", "belts": "belt", "backpacks": "backpack", "flats": "flat", "sarees": "saree",
    "earrings": "earring", "trousers": "trousers", "shorts": "shorts", "jeans": "jeans",
    "trackpants": "track pants", "perfumeandbodymist": "perfume", "deodorant": "deodorant",
    "nailpolish": "nail polish", "lipstick": "lipstick", "sunglasses": "sunglasses", "socks": "socks",
    "briefs": "briefs", "bra": "bra", "jackets": "jacket", "sweatshirts": "sweatshirt",
}  # fmt: skip
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


class StylesReport(BaseModel):
    """What ``load_styles`` read, and what it could not use (never dropped silently)."""

    files: int
    unreadable: list[str]
    no_article_type: list[str]
    styles_csv_rows: int = 0
    csv_only: int = 0
    na_values: int = 0
    products: int


def _style_attributes(data: dict[str, object], stats: LoadStats) -> dict[str, str]:
    attributes: dict[str, str] = {}
    raw = data.get("articleAttributes") or {}
    if not isinstance(raw, dict):
        return attributes
    for name, value in raw.items():
        if is_missing(value):
            stats.na_values += 1
        else:
            attributes[str(name).strip()] = " ".join(str(value).split())
    return attributes


def load_styles(styles_dir: Path, progress: bool = True) -> tuple[list[Product], StylesReport]:
    """Every product the dataset's ``styles/<id>.json`` files describe (metadata only, no images).

    A ``styles.csv`` beside the folder adds the products it lists without a JSON file (article type
    and colour only). A file that does not parse, or a product without an article type, is counted
    and named in the report.
    """
    styles_dir = Path(styles_dir)
    if not styles_dir.is_dir():
        raise FileNotFoundError(f"{styles_dir}: no such folder (expected the dataset's styles/<id>.json)")
    stats = LoadStats()
    products: list[Product] = []
    unreadable: list[str] = []
    no_type: list[str] = []
    paths = sorted(styles_dir.glob("*.json"))
    for path in tqdm(paths, desc="reading styles", unit="file", disable=not progress):
        try:
            document = json.loads(path.read_text(encoding="utf-8"))
            data = document.get("data")
            if not isinstance(data, dict):
                raise ValueError("no data object")
            article_type = (data.get("articleType") or {}).get("typeName")
        except (ValueError, UnicodeDecodeError, AttributeError):
            unreadable.append(path.name)
            continue
        if is_missing(article_type):
            no_type.append(path.stem)
            continue
        colour = data.get("baseColour")
        products.append(
            Product(
                str(data.get("id") or path.stem),
                str(article_type).strip(),
                None if is_missing(colour) else str(colour).strip(),
                _style_attributes(data, stats),
                Path("images") / f"{path.stem}.jpg",
            )
        )
    csv_rows = csv_only = 0
    styles_csv = styles_dir.parent / "styles.csv"
    if styles_csv.is_file():
        table = read_styles_csv(styles_csv)
        csv_rows = len(table.rows)
        seen = {product.product_id for product in products} | {name.split(".")[0] for name in unreadable}
        for row in table.rows:
            product_id = str(row["id"])
            if product_id in seen:
                continue
            if is_missing(row["articleType"]):
                no_type.append(product_id)
                continue
            csv_only += 1
            colour = row["baseColour"]
            products.append(
                Product(product_id, str(row["articleType"]), colour, {}, Path("images") / f"{product_id}.jpg")
            )
    report = StylesReport(
        files=len(paths),
        unreadable=unreadable,
        no_article_type=no_type,
        styles_csv_rows=csv_rows,
        csv_only=csv_only,
        na_values=stats.na_values,
        products=len(products),
    )
    return products, report


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


@dataclass
class DerivedCatalogue:
    """A derived catalogue and everything its rules left out, for the build report."""

    catalogue: Catalogue
    folds: dict[str, dict[str, str]]  # "Type/Attribute" -> {rare value: canonical value}
    drops: dict[str, dict[str, int]]  # "Type/Attribute" -> {dropped value: products}
    excluded_attributes: dict[str, dict[str, str]]  # type -> {attribute: why not asked}
    excluded_types: dict[str, str]  # article type (with enough products) -> why not a category
    type_counts: dict[str, int]


def derive_catalogue(
    products: Sequence[Product],
    *,
    min_support: int,
    min_products: int | None = None,
    min_coverage: float = 0.5,
    source: str,
) -> DerivedCatalogue:
    """Attributes per article type with vocabularies and counts; rare values folded or dropped.

    An article type becomes a category when it has at least ``min_products`` products (default
    ``min_support``) and at least one attribute. An attribute is kept for a category when a photo
    can show it (``non_visual_reason``), at least ``min_coverage`` of the type's products name it and
    at least two values reach ``min_support`` (a one-value attribute teaches nothing). A rarer value
    folds into the frequent value it names (``fold_target``) or is dropped (counted), as is a
    catch-all value ("Other ...").
    """
    min_products = min_support if min_products is None else min_products
    by_type: dict[str, list[Product]] = defaultdict(list)
    for product in products:
        by_type[product.article_type].append(product)
    categories: list[CategorySpec] = []
    folds: dict[str, dict[str, str]] = defaultdict(dict)
    drops: dict[str, dict[str, int]] = defaultdict(dict)
    excluded_attributes: dict[str, dict[str, str]] = defaultdict(dict)
    excluded_types: dict[str, str] = {}
    for article_type in sorted(by_type, key=lambda name: (-len(by_type[name]), name)):
        members = by_type[article_type]
        if len(members) < min_products:
            continue
        counts: dict[str, Counter[str]] = defaultdict(Counter)
        for product in members:
            for name, value in product_values(product).items():
                counts[name][value] += 1
        specs: list[AttributeSpec] = []
        for name in sorted(counts, key=_attribute_order):
            value_counts = counts[name]
            reason = non_visual_reason(name)
            named = sum(value_counts.values())
            frequent = {
                value: n
                for value, n in value_counts.most_common()
                if n >= min_support and not _CATCH_ALL_VALUE.match(value)
            }
            if reason is None and named < min_coverage * len(members):
                reason = f"named by {named} of {len(members)} products (< {min_coverage:.0%})"
            elif reason is None and len(frequent) < 2:
                reason = f"fewer than 2 values on >= {min_support} products"
            if reason is not None:
                excluded_attributes[article_type][name] = reason
                continue
            values = dict(frequent)
            aliases: dict[str, str] = {}
            for value, n in value_counts.items():
                if value in frequent:
                    continue
                target = None if _CATCH_ALL_VALUE.match(value) else fold_target(value, list(frequent))
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
        else:
            excluded_types[article_type] = "no attribute a photo can show passes the rules"
    categories.append(_generic_category(categories, {c.name: len(by_type[c.name]) for c in categories}))
    catalogue = Catalogue(source=source, min_support=min_support, categories=categories)
    return DerivedCatalogue(
        catalogue=catalogue,
        folds=dict(folds),
        drops=dict(drops),
        excluded_attributes=dict(excluded_attributes),
        excluded_types=excluded_types,
        type_counts={name: len(members) for name, members in by_type.items()},
    )


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
        derived = derive_catalogue(
            products,
            min_support=min_support,
            min_coverage=min_coverage,
            source=f"describer dataset prepare: {len(products)} products of {kaggle_dir.name}",
        )
        catalogue, folds, drops = derived.catalogue, derived.folds, derived.drops
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


# The packaged catalogue's rules (``describer catalogue build``): an article type needs this many
# products in the whole dataset, a value this many products of its type, an attribute this share.
CATALOGUE_MIN_PRODUCTS = 300
CATALOGUE_MIN_SUPPORT = 20
CATALOGUE_MIN_COVERAGE = 0.25


class CatalogueBuildReport(BaseModel):
    """What ``build_catalogue`` read, admitted and left out; ``describer catalogue build`` prints it."""

    styles: StylesReport
    article_types: int
    types_with_enough_products: int
    categories: dict[str, int]  # category -> products
    excluded_types: dict[str, str]
    excluded_attributes: dict[str, dict[str, str]]
    folded_values: int
    dropped_values: dict[str, dict[str, int]]
    min_products: int
    min_support: int
    min_coverage: float


def build_catalogue(
    styles_dir: Path,
    *,
    min_products: int = CATALOGUE_MIN_PRODUCTS,
    min_support: int = CATALOGUE_MIN_SUPPORT,
    min_coverage: float = CATALOGUE_MIN_COVERAGE,
    progress: bool = True,
) -> tuple[Catalogue, CatalogueBuildReport]:
    """The catalogue of a dataset's ``styles/*.json`` (the packaged one is this on the full metadata)."""
    products, styles = load_styles(styles_dir, progress=progress)
    derived = derive_catalogue(
        products,
        min_support=min_support,
        min_products=min_products,
        min_coverage=min_coverage,
        source=(
            f"describer catalogue build: {styles.products} products ({styles.files} styles files) of "
            f"the Fashion Product Images metadata; types with >= {min_products} products, values on "
            f">= {min_support}, attributes named by >= {min_coverage:.0%} of a type's products"
        ),
    )
    sizes = derived.type_counts
    categories = {c.name: sizes[c.name] for c in derived.catalogue.categories if c.name in sizes}
    report = CatalogueBuildReport(
        styles=styles,
        article_types=len(sizes),
        types_with_enough_products=sum(1 for n in sizes.values() if n >= min_products),
        categories=categories,
        excluded_types=derived.excluded_types,
        excluded_attributes={t: a for t, a in derived.excluded_attributes.items() if t in categories},
        folded_values=sum(map(len, derived.folds.values())),
        dropped_values=derived.drops,
        min_products=min_products,
        min_support=min_support,
        min_coverage=min_coverage,
    )
    return derived.catalogue, report
