"""Data preparation: Kaggle-layout catalogue -> attribute catalogue + question/answer splits by product.

Input (the Kaggle "Fashion Product Images" layout, or your own catalogue in it): ``styles.csv``,
``styles/<id>.json``, ``images/<id>.jpg``. Output, a self-contained training channel:
``vqa_{train,val,test}.csv``, ``images/`` (the images used), ``catalogue.json`` and
``prep_report.json``.

One reader (``read_dataset``) takes ``styles/<id>.json``, ``styles.csv`` or both. Fixes over the
reference: unquoted ``styles.csv`` rows whose name holds commas are recovered, not skipped; ``NA``
placeholders are missing values; a styles file that does not parse, a product without an article
type, a photo that is missing or does not decode and a label outside the catalogue are counted and
reported, never a crash and never guessed; the split is by blocks of neighbouring ids
(``split_blocks``), so one product line never lands in two splits. ``write_block_split`` makes a
held-aside copy of a folder in the same layout (links, not copies).
"""

from __future__ import annotations

import csv
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
from pydantic import BaseModel, Field
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


class LabelCount(BaseModel):
    """A (category, attribute)'s labels in the data: asked, missing (never guessed) or outside the
    catalogue's vocabulary after folding (not asked)."""

    labelled: int = 0
    missing: int = 0
    outside: int = 0


class PrepReport(BaseModel):
    source: ReadReport = Field(description="What reading the folder found, bad input included")
    products_used: int
    products_out_of_catalogue: int
    out_of_catalogue_types: dict[str, int] = Field(description="Article types the catalogue does not know")
    labels: dict[str, LabelCount] = Field(description="Per 'Category/Attribute' (products used)")
    folded_values: dict[str, dict[str, str]]
    dropped_values: dict[str, dict[str, int]]
    dropped_answers: int
    rows: dict[str, int]
    products: dict[str, int]
    split_by: str
    min_support: int
    seed: int


class DatasetLayoutError(ValueError):
    """A folder that is not in the Kaggle layout (one line, for the command to print)."""


_NOT_KAGGLE = (
    "{}: neither a styles/ folder nor a styles.csv (the Kaggle layout: images/<id>.jpg with "
    "styles/<id>.json, styles.csv or both)"
)


class ReadReport(BaseModel):
    """What ``read_dataset`` read, and everything it could not use (counted, never dropped silently)."""

    files: int = Field(0, description="styles/<id>.json files")
    unreadable: list[str] = Field(default_factory=list, description="styles files that do not parse")
    styles_csv_rows: int = 0
    recovered_comma_rows: list[str] = Field(default_factory=list)
    malformed_lines: list[int] = Field(default_factory=list, description="styles.csv lines that do not parse")
    csv_only: int = Field(0, description="products styles.csv lists without a styles file")
    no_article_type: list[str] = Field(default_factory=list)
    na_values: int = 0
    missing_images: list[str] = Field(default_factory=list)
    unreadable_images: list[str] = Field(default_factory=list, description="photos that do not decode")
    products: int = 0


def _image_decodes(path: Path) -> bool:
    try:
        with Image.open(path) as image:
            image.load()
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
        return False
    return True


def _clean_attributes(raw: object, report: ReadReport) -> dict[str, str]:
    attributes: dict[str, str] = {}
    if not isinstance(raw, dict):
        return attributes
    for name, value in raw.items():
        if is_missing(value):
            report.na_values += 1
        else:
            attributes[str(name).strip()] = " ".join(str(value).split())
    return attributes


def _text(value: object) -> str | None:
    return None if is_missing(value) else " ".join(str(value).split())


def read_dataset(
    kaggle_dir: Path,
    *,
    styles_dir: Path | None = None,
    check_images: bool = True,
    progress: bool = True,
) -> tuple[list[Product], ReadReport]:
    """The one reader of the Kaggle layout: ``styles/<id>.json``, ``styles.csv`` or both, and ``images/``.

    A styles file gives the article type, base colour and article attributes; ``styles.csv`` fills
    in what a file lacks and adds the products it lists without one (article type and colour only).
    Values are stripped and ``NA`` placeholders are missing. With ``check_images`` a product needs a
    photo at ``images/<id>.jpg`` that decodes. Every file that does not parse, product without an
    article type and photo that is missing or does not decode is counted and named in the report.
    """
    kaggle_dir = Path(kaggle_dir)
    styles_dir = Path(styles_dir) if styles_dir is not None else kaggle_dir / "styles"
    styles_csv = kaggle_dir / "styles.csv"
    if not styles_dir.is_dir() and not styles_csv.is_file():
        raise DatasetLayoutError(_NOT_KAGGLE.format(kaggle_dir))
    report = ReadReport()
    found: dict[str, tuple[str | None, str | None, dict[str, str]]] = {}
    paths = sorted(styles_dir.glob("*.json")) if styles_dir.is_dir() else []
    report.files = len(paths)
    for path in tqdm(paths, desc="reading styles", unit="file", disable=not progress):
        try:
            document = json.loads(path.read_text(encoding="utf-8"))
            data = document.get("data")
            if not isinstance(data, dict):
                raise ValueError("no data object")
            article_type = (data.get("articleType") or {}).get("typeName")
        except (ValueError, UnicodeDecodeError, AttributeError):
            report.unreadable.append(path.name)
            continue
        product_id = str(data.get("id") or path.stem)
        found[product_id] = (
            _text(article_type),
            _text(data.get("baseColour")),
            _clean_attributes(data.get("articleAttributes"), report),
        )
    if styles_csv.is_file():
        table = read_styles_csv(styles_csv)
        report.styles_csv_rows = len(table.rows)
        report.recovered_comma_rows = table.recovered_comma_rows
        report.malformed_lines = table.malformed_lines
        unreadable = {name.split(".")[0] for name in report.unreadable}
        for row in table.rows:
            product_id = str(row["id"])
            if product_id in unreadable:
                continue
            if product_id not in found:
                report.csv_only += 1
                found[product_id] = (_text(row["articleType"]), _text(row["baseColour"]), {})
                continue
            article_type, colour, attributes = found[product_id]
            found[product_id] = (
                article_type or _text(row["articleType"]),
                colour or _text(row["baseColour"]),
                attributes,
            )
    products: list[Product] = []
    for product_id in tqdm(
        sorted(found, key=id_order), desc="checking photos", unit="product", disable=not progress
    ):
        article_type, colour, attributes = found[product_id]
        image = kaggle_dir / "images" / f"{product_id}.jpg"
        if article_type is None:
            report.no_article_type.append(product_id)
            continue
        if check_images and not image.is_file():
            report.missing_images.append(product_id)
            continue
        if check_images and not _image_decodes(image):
            report.unreadable_images.append(product_id)
            continue
        products.append(Product(product_id, article_type, colour, attributes, image))
    report.products = len(products)
    return products, report


def id_order(product_id: str) -> tuple[int, str]:
    """Numeric ids in number order (neighbouring ids are often one product line), then the others."""
    return (int(product_id), "") if product_id.isdigit() else (-1, product_id)


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


# The rule that folds a base colour into a category's colour vocabulary: a colour the category knows
# (a value or an alias) stays as it is; one it does not know follows this chain (Navy Blue -> Blue,
# Burgundy -> Maroon -> Red) to the first colour the category knows; a chain that reaches none (Multi,
# or Gold for a shirt) leaves the colour outside the catalogue: counted, not asked.
COLOUR_FAMILIES = {
    "navy blue": "Blue", "turquoise blue": "Blue", "teal": "Blue",
    "charcoal": "Grey", "grey melange": "Grey", "taupe": "Grey", "steel": "Silver", "metallic": "Silver",
    "silver": "Grey", "off white": "White", "cream": "Off White", "burgundy": "Maroon", "maroon": "Red",
    "rust": "Orange", "mustard": "Yellow", "magenta": "Pink", "peach": "Pink", "lavender": "Purple",
    "mauve": "Purple", "tan": "Brown", "coffee brown": "Brown", "copper": "Brown", "bronze": "Gold",
    "khaki": "Beige", "nude": "Beige", "skin": "Beige", "sea green": "Green", "olive": "Green",
    "lime green": "Green", "fluorescent green": "Green",
}  # fmt: skip


def label_value(spec: AttributeSpec, raw: str) -> str | None:
    """The vocabulary value a label names (colours folded by ``COLOUR_FAMILIES``), or None: outside."""
    value = spec.canonical(raw)
    seen: set[str] = set()
    while value is None and spec.name == COLOUR_ATTRIBUTE:
        key = normalise_token(raw)
        if key not in COLOUR_FAMILIES or key in seen:
            return None
        seen.add(key)
        raw = COLOUR_FAMILIES[key]
        value = spec.canonical(raw)
    return value


LabelCounts = dict[str, LabelCount]


def question_answer_rows(
    product: Product, catalogue: Catalogue, counts: LabelCounts | None = None
) -> tuple[list[dict[str, str]], int]:
    """The product's Q/A pairs in the reference's form, and how many answers fell outside the vocabulary.

    ``counts`` (per "Category/Attribute") adds what each asked attribute had: a label, none, or one
    outside the catalogue.
    """
    category = catalogue.category(product.article_type)
    if category.name == GENERIC_CATEGORY:
        return [], 0
    image = f"images/{Path(product.image).name}"
    rows: list[dict[str, str]] = []
    dropped = 0
    values = product_values(product)
    generic = catalogue.category(GENERIC_CATEGORY)
    asked = [
        (category.name, spec, category.question_for(spec), values.get(spec.name))
        for spec in category.attributes
    ]
    article_spec = generic.attribute(ARTICLE_TYPE_ATTRIBUTE)
    asked.append((GENERIC_CATEGORY, article_spec, generic.question_for(article_spec), product.article_type))
    for asked_in, spec, question, raw in asked:
        count = counts.setdefault(f"{asked_in}/{spec.name}", LabelCount()) if counts is not None else None
        if raw is None:
            if count is not None:
                count.missing += 1
            continue
        value = label_value(spec, raw)
        if value is None:
            dropped += 1
            if count is not None:
                count.outside += 1
            continue
        if count is not None:
            count.labelled += 1
        rows.append(
            {
                "id": product.product_id,
                "image": image,
                "article_type": category.name,
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

    For products that are independent of each other (the synthetic catalogue). Each stratum (products
    sharing article type and stratify values) is shuffled with ``seed`` and cut by the fractions; a
    stratum too small for a val/test share goes to train, so rare combinations still reach the model.
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


# Neighbouring ids are often one product line in several colours: a held-out split takes whole runs
# of this many products in id order, so a line's colours never land on both sides (a split by single
# ids would flatter the model).
BLOCK_PRODUCTS = 20


def block_products(products: int, fractions: Iterable[float]) -> int:
    """``BLOCK_PRODUCTS``, or fewer in a small folder: the smallest split still gets about 4 blocks."""
    smallest = min((fraction for fraction in fractions if fraction > 0), default=1.0)
    return max(1, min(BLOCK_PRODUCTS, int(products * smallest / 4)))


def id_blocks(product_ids: Iterable[str], block_size: int = BLOCK_PRODUCTS) -> list[list[str]]:
    ordered = sorted(set(product_ids), key=id_order)
    return [ordered[start : start + block_size] for start in range(0, len(ordered), block_size)]


def split_id_blocks(
    product_ids: Iterable[str],
    fractions: dict[str, float],
    *,
    rest: str,
    seed: int,
) -> dict[str, list[str]]:
    """Blocks of neighbouring ids, shuffled with ``seed``, dealt to each split of ``fractions`` until
    it holds its fraction of the ids; the other blocks go to ``rest``."""
    product_ids = list(product_ids)
    blocks = id_blocks(product_ids, block_products(len(product_ids), fractions.values()))
    total = sum(len(block) for block in blocks)
    random.Random(seed).shuffle(blocks)
    out: dict[str, list[str]] = {name: [] for name in [*fractions, rest]}
    targets = [(name, fraction * total) for name, fraction in fractions.items()]
    for block in blocks:
        name = next((name for name, target in targets if len(out[name]) + len(block) / 2 <= target), rest)
        out[name].extend(block)
    return {name: sorted(ids, key=id_order) for name, ids in out.items()}


def split_blocks(
    products: Sequence[Product], *, seed: int, val_fraction: float = 0.1, test_fraction: float = 0.1
) -> dict[str, list[Product]]:
    """Train/val/test by blocks of neighbouring ids (``split_id_blocks``)."""
    by_id = {product.product_id: product for product in products}
    ids = split_id_blocks(by_id, {"test": test_fraction, "val": val_fraction}, rest="train", seed=seed)
    return {split: [by_id[product_id] for product_id in ids[split]] for split in SPLITS}


SPLIT_METHODS = ("blocks", "products")


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
    split_by: str = "blocks",
    progress: bool = True,
) -> PrepReport:
    """Run the whole preparation; writes the splits, images, catalogue and report under ``out_dir``.

    ``catalogue`` fixes the questions and vocabularies (e.g. the packaged one the pipeline asks)
    instead of deriving them from this data; answers outside it are dropped and counted.
    ``split_by`` "blocks" keeps neighbouring ids together (real catalogues: ``split_blocks``);
    "products" splits single products, stratified (independent synthetic products).
    """
    if split_by not in SPLIT_METHODS:
        raise ValueError(f"split_by must be one of {', '.join(SPLIT_METHODS)}, not {split_by!r}")
    kaggle_dir, out_dir = Path(kaggle_dir), Path(out_dir)
    products, source = read_dataset(kaggle_dir, progress=progress)
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
    outside = Counter(p.article_type for p in products if normalise_token(p.article_type) not in known)
    split = split_blocks if split_by == "blocks" else split_products
    splits = split(in_catalogue, seed=seed, val_fraction=val_fraction, test_fraction=test_fraction)
    (out_dir / "images").mkdir(parents=True, exist_ok=True)
    row_counts: dict[str, int] = {}
    labels: LabelCounts = {}
    dropped_answers = 0
    for name in SPLITS:
        rows: list[dict[str, str]] = []
        for product in tqdm(splits[name], desc=f"writing {name}", unit="product", disable=not progress):
            product_rows, dropped = question_answer_rows(product, catalogue, labels)
            dropped_answers += dropped
            rows.extend(product_rows)
            _link_or_copy(product.image, out_dir / "images" / Path(product.image).name)
        with (out_dir / f"vqa_{name}.csv").open("w", encoding="utf-8", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=QA_COLUMNS)
            writer.writeheader()
            writer.writerows(rows)
        row_counts[name] = len(rows)
    (out_dir / "catalogue.json").write_text(catalogue.to_json(), encoding="utf-8")
    report = PrepReport(
        source=source,
        products_used=len(in_catalogue),
        products_out_of_catalogue=len(products) - len(in_catalogue),
        out_of_catalogue_types=dict(outside.most_common()),
        labels=dict(sorted(labels.items())),
        folded_values=folds,
        dropped_values=drops,
        dropped_answers=dropped_answers,
        rows=row_counts,
        products={name: len(splits[name]) for name in SPLITS},
        split_by=split_by,
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

    styles: ReadReport
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
    styles_dir = Path(styles_dir)
    if not styles_dir.is_dir():
        raise DatasetLayoutError(f"{styles_dir}: no such folder (expected the dataset's styles/<id>.json)")
    products, styles = read_dataset(
        styles_dir.parent, styles_dir=styles_dir, check_images=False, progress=progress
    )
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


class FolderSplit(BaseModel):
    kaggle_dir: str
    holdout_fraction: float
    seed: int
    block_products: int
    products: dict[str, int]


def write_block_split(
    kaggle_dir: Path, out_train: Path, out_holdout: Path, *, holdout_fraction: float, seed: int = 0
) -> FolderSplit:
    """Two folders in the Kaggle layout holding blocks of neighbouring ids (``split_id_blocks``):
    ``out_holdout`` about ``holdout_fraction`` of the products, ``out_train`` the rest.

    Photos and styles files are symbolic links to the originals (nothing is copied); a ``styles.csv``
    is written with each folder's rows. Every id that any file names is dealt, good or bad, so each
    folder reads as the original would (its bad input included).
    """
    kaggle_dir = Path(kaggle_dir).resolve()
    styles_dir, styles_csv, images_dir = (
        kaggle_dir / "styles",
        kaggle_dir / "styles.csv",
        kaggle_dir / "images",
    )
    if not styles_dir.is_dir() and not styles_csv.is_file():
        raise DatasetLayoutError(_NOT_KAGGLE.format(kaggle_dir))
    if not 0 < holdout_fraction < 1:
        raise ValueError(f"the holdout fraction must be between 0 and 1, not {holdout_fraction}")
    files: dict[str, list[Path]] = defaultdict(list)
    for folder, pattern in ((styles_dir, "*.json"), (images_dir, "*.jpg")):
        for path in sorted(folder.glob(pattern)) if folder.is_dir() else []:
            files[path.stem].append(path)
    csv_lines: dict[str, str] = {}
    header = ""
    if styles_csv.is_file():
        header, *lines = styles_csv.read_text(encoding="utf-8").splitlines()
        for line in lines:
            product_id = line.split(",", 1)[0].strip()
            csv_lines[product_id] = line
    ids = split_id_blocks([*files, *csv_lines], {"holdout": holdout_fraction}, rest="train", seed=seed)
    for name, out in (("train", Path(out_train)), ("holdout", Path(out_holdout))):
        if out.exists() and any(out.iterdir()):
            raise FileExistsError(f"{out} exists and is not empty")
        for product_id in ids[name]:
            for path in files.get(product_id, []):
                target = out / path.parent.name / path.name
                target.parent.mkdir(parents=True, exist_ok=True)
                target.symlink_to(path)
        if header:
            out.mkdir(parents=True, exist_ok=True)
            rows = [csv_lines[product_id] for product_id in ids[name] if product_id in csv_lines]
            (out / "styles.csv").write_text("\n".join([header, *rows]) + "\n", encoding="utf-8")
    return FolderSplit(
        kaggle_dir=str(kaggle_dir),
        holdout_fraction=holdout_fraction,
        seed=seed,
        block_products=block_products(len(set(files) | set(csv_lines)), [holdout_fraction]),
        products={name: len(members) for name, members in ids.items()},
    )
