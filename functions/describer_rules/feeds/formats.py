"""The three feeds: one row per exportable product, then the whole file.

A row is a dict of column -> cell text, already cleaned (one line, no bidi controls) and cut to the
channel's limits; ``render`` chooses the columns and writes the file. Rows are kept apart from the file
so the FeedExport Lambda can merge the rows of changed products into the previous export's rows and
render a whole file again (``describer_steps.feed_export``).

- **google**: a Merchant Center *supplemental* feed (TSV, UTF-8). It only updates products of the
  primary feed, matched on ``id``, so ``id`` is the product id exactly (a product whose id cannot be
  written exactly is skipped). Generated copy goes in ``structured_title`` / ``structured_description``
  as ``trained_algorithmic_media:"..."``; ``--plain-text`` writes ``title`` / ``description`` instead
  (a plain value in the same feed wins over the structured one, so both would be pointless).
  Cells are quoted as Merchant Center's "quoted fields" read them (on by default for a new data
  source): a cell with a double quote is enclosed in quotes with the inner quotes doubled; repeated
  attributes are comma-separated, a value with a comma in quotes. Copy's own double quotes become
  typographic ones, so that they never meet an attribute's quotes.
- **shopify**: a product CSV that updates products by ``Handle`` ("Overwrite products with matching
  handles"): an omitted column is kept and a blank one is wiped, so there is no price, inventory or
  status column, and a column some product cannot fill is left out of the file.
- **jsonl**: one ``ProductRecord`` a line, with only the chosen locale's copy.
"""

from __future__ import annotations

import csv
import html
import io
import re
import unicodedata
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from describer_rules.catalogue import normalise_token
from describer_rules.contracts import ProductRecord
from describer_rules.feeds.selection import Skipped, in_locale, not_exportable
from describer_rules.feeds.taxonomy import ChannelCategory, ChannelMapping, channel_category
from describer_rules.feeds.text import Cuts, clean

Row = dict[str, str]


class FeedFormat(StrEnum):
    GOOGLE = "google"
    SHOPIFY = "shopify"
    JSONL = "jsonl"

    @property
    def extension(self) -> str:
        return {FeedFormat.GOOGLE: "tsv", FeedFormat.SHOPIFY: "csv", FeedFormat.JSONL: "jsonl"}[self]


# Merchant Center's product data specification (docs/operations.md names the source of each).
GOOGLE_ID_MAX = 50
GOOGLE_TITLE_MAX = 150
GOOGLE_DESCRIPTION_MAX = 5000
GOOGLE_HIGHLIGHT_MAX = 150
GOOGLE_HIGHLIGHTS_MIN, GOOGLE_HIGHLIGHTS_MAX = 2, 100
GOOGLE_DETAIL_SECTION_MAX, GOOGLE_DETAIL_NAME_MAX, GOOGLE_DETAIL_VALUE_MAX = 140, 140, 1000
GOOGLE_DETAILS_MAX = 100
GOOGLE_COLOR_MAX, GOOGLE_ONE_COLOR_MAX, GOOGLE_COLORS_MAX = 100, 40, 3
GOOGLE_PATTERN_MAX = 100
GOOGLE_MATERIAL_MAX = 200
GOOGLE_PRODUCT_TYPE_MAX = 750
GOOGLE_DETAIL_SECTION = "General"
GENERATED = "trained_algorithmic_media"
# Shopify's product CSV (docs/operations.md).
SHOPIFY_TITLE_MAX = 255
SHOPIFY_SEO_TITLE_MAX = 70
SHOPIFY_SEO_DESCRIPTION_MAX = 320
SHOPIFY_TAG_MAX = 255

GOOGLE_COLUMNS = (
    "id",
    "title",
    "description",
    "structured_title",
    "structured_description",
    "product_highlight",
    "product_detail",
    "color",
    "pattern",
    "material",
    "gender",
    "age_group",
    "product_type",
    "google_product_category",
)
SHOPIFY_COLUMNS = (
    "Handle",
    "Title",
    "Body (HTML)",
    "Product Category",
    "Tags",
    "SEO Title",
    "SEO Description",
)
SHOPIFY_REQUIRED = frozenset({"Handle", "Title"})
JSONL_COLUMN = "json"

# Which catalogue attributes fill Google's own attributes (first found wins); the rest are details.
COLOR_ATTRIBUTES = ("Colour", "Color")
PATTERN_ATTRIBUTES = ("Pattern", "Print or Pattern Type")
MATERIAL_ATTRIBUTES = ("Material", "Fabric")
GENDER_ATTRIBUTES = ("Gender",)
# Google refuses a value that is not a colour ("multicolor", "various").
NOT_COLOURS = frozenset({"multi", "multicolor", "multicolour", "various", "assorted"})
GENDERS = {"men": "male", "boys": "male", "women": "female", "girls": "female", "unisex": "unisex"}
AGE_GROUPS = {"men": "adult", "women": "adult", "boys": "kids", "girls": "kids"}


class UnknownLocale(ValueError):
    """No record of a non-empty table has copy in the requested locale."""


@dataclass(frozen=True)
class ExportOptions:
    locale: str
    include_unreviewed: bool = False
    plain_text: bool = False


@dataclass
class FeedSummary:
    """What an export wrote and left out: the command prints it, the Lambda logs it."""

    rows: int = 0
    skipped: Counter[str] = field(default_factory=Counter)
    cuts: Cuts = field(default_factory=Cuts)
    columns: list[str] = field(default_factory=list)
    left_out: dict[str, int] = field(default_factory=dict)


@dataclass
class Feed:
    text: str
    summary: FeedSummary


def product_row(
    fmt: FeedFormat,
    record: ProductRecord,
    options: ExportOptions,
    cuts: Cuts,
    mapping: ChannelMapping | None = None,
) -> tuple[Row | None, Skipped | None]:
    """The record's row in ``fmt``, or why it has none."""
    reason = not_exportable(record, options.include_unreviewed)
    if reason is None and options.locale not in record.content:
        reason = Skipped.NO_LOCALE
    if reason is not None:
        return None, reason
    if fmt is FeedFormat.JSONL:
        return {JSONL_COLUMN: _json_line(in_locale(record, options.locale))}, None
    category = channel_category(record.category, mapping)
    if fmt is FeedFormat.GOOGLE:
        return _google_row(record, options, category, cuts)
    return _shopify_row(record, options, category, cuts)


def rows_of(
    fmt: FeedFormat,
    records: Iterable[ProductRecord],
    options: ExportOptions,
    summary: FeedSummary,
    mapping: ChannelMapping | None = None,
) -> dict[str, Row]:
    """The rows of every exportable record, by product id; the others counted in ``summary.skipped``."""
    rows = {}
    for record in records:
        row, reason = product_row(fmt, record, options, summary.cuts, mapping)
        if row is None:
            summary.skipped[str(reason)] += 1
        else:
            rows[record.product_id] = row
    return rows


def export(
    fmt: FeedFormat,
    records: list[ProductRecord],
    options: ExportOptions,
    mapping: ChannelMapping | None = None,
) -> Feed:
    """The whole feed of ``records``; raises UnknownLocale when none of them has the locale's copy."""
    if records and not any(options.locale in record.content for record in records):
        raise UnknownLocale(f"no record has copy in {options.locale}")
    summary = FeedSummary()
    rows = rows_of(fmt, records, options, summary, mapping)
    return render(fmt, rows, summary, options.plain_text)


def render(
    fmt: FeedFormat, rows: Mapping[str, Row], summary: FeedSummary | None = None, plain_text: bool = False
) -> Feed:
    """The file of ``rows`` (by product id, written in id order): a header only when there are none."""
    summary = summary or FeedSummary()
    ordered = [rows[product_id] for product_id in sorted(rows)]
    if fmt is FeedFormat.JSONL:
        summary.rows = len(ordered)
        return Feed("".join(row[JSONL_COLUMN] + "\n" for row in ordered), summary)
    if fmt is FeedFormat.SHOPIFY:
        ordered = _unique_handles(ordered, summary)
        columns = [
            column
            for column in SHOPIFY_COLUMNS
            if column in SHOPIFY_REQUIRED or all(row.get(column) for row in ordered)
        ]
        # A blank cell wipes the shop's value: a column some product cannot fill is left out.
        summary.left_out = {
            column: sum(not row.get(column) for row in ordered)
            for column in SHOPIFY_COLUMNS
            if column not in columns
        }
        writer_options: dict[str, str] = {}
    else:
        always = (
            {"id", "title", "description"}
            if plain_text
            else {"id", "structured_title", "structured_description"}
        )
        columns = [
            column for column in GOOGLE_COLUMNS if column in always or any(row.get(column) for row in ordered)
        ]
        writer_options = {"delimiter": "\t", "lineterminator": "\n"}
    buffer = io.StringIO()
    writer = csv.writer(buffer, quoting=csv.QUOTE_MINIMAL, **writer_options)  # type: ignore[arg-type]
    writer.writerow(columns)
    writer.writerows([row.get(column, "") for column in columns] for row in ordered)
    summary.rows = len(ordered)
    summary.columns = columns
    return Feed(buffer.getvalue(), summary)


# --- google ----------------------------------------------------------------------------------------


def _google_row(
    record: ProductRecord, options: ExportOptions, category: ChannelCategory, cuts: Cuts
) -> tuple[Row | None, Skipped | None]:
    # The id matches the primary feed's: it is written exactly or not at all.
    if len(record.product_id) > GOOGLE_ID_MAX or clean(record.product_id) != record.product_id:
        return None, Skipped.ID_UNUSABLE
    copy = record.content[options.locale]
    title = _typographic(cuts.limited("title", copy.title, GOOGLE_TITLE_MAX))
    description = _typographic(cuts.limited("description", copy.description, GOOGLE_DESCRIPTION_MAX))
    row: Row = {"id": record.product_id}
    if options.plain_text:
        row |= {"title": title, "description": description}
    else:
        row |= {
            "structured_title": f'{GENERATED}:"{title}"',
            "structured_description": f'{GENERATED}:"{description}"',
        }
    highlights = [
        _typographic(cuts.limited("product_highlight", bullet, GOOGLE_HIGHLIGHT_MAX))
        for bullet in copy.bullets
    ]
    highlights = cuts.first("product_highlight (count)", [h for h in highlights if h], GOOGLE_HIGHLIGHTS_MAX)
    if len(highlights) >= GOOGLE_HIGHLIGHTS_MIN:
        row["product_highlight"] = _repeated(highlights)
    attributes = {
        name: value for name, value in record.attributes.items() if name not in record.unknown_attributes
    }
    colour, colour_name = _first(attributes, COLOR_ATTRIBUTES)
    pattern, pattern_name = _first(attributes, PATTERN_ATTRIBUTES)
    material, material_name = _first(attributes, MATERIAL_ATTRIBUTES)
    gender, gender_name = _first(attributes, GENDER_ATTRIBUTES)
    row["color"] = _colours(colour, cuts)
    row["pattern"] = _typographic(cuts.limited("pattern", pattern, GOOGLE_PATTERN_MAX))
    row["material"] = _typographic(cuts.limited("material", material, GOOGLE_MATERIAL_MAX))
    row["gender"] = GENDERS.get(normalise_token(gender), "")
    row["age_group"] = AGE_GROUPS.get(normalise_token(gender), "")
    # Google asks not to repeat in product_detail what another attribute says.
    shown = {colour_name, pattern_name, material_name, gender_name}
    details = [
        _detail(name, value, cuts) for name, value in attributes.items() if name not in shown and clean(value)
    ]
    row["product_detail"] = _repeated(cuts.first("product_detail (count)", details, GOOGLE_DETAILS_MAX))
    row["product_type"] = _typographic(
        cuts.limited("product_type", category.product_type, GOOGLE_PRODUCT_TYPE_MAX)
    )
    row["google_product_category"] = (
        str(category.google_product_category) if category.google_product_category is not None else ""
    )
    return row, None


def _first(attributes: Mapping[str, str], names: tuple[str, ...]) -> tuple[str, str | None]:
    by_key = {normalise_token(name): name for name in attributes}
    for wanted in names:
        found = by_key.get(normalise_token(wanted))
        if found is not None:
            return attributes[found], found
    return "", None


def _colours(value: str, cuts: Cuts) -> str:
    colours = [clean(part) for part in value.split("/") if clean(part)]
    colours = [colour for colour in colours if normalise_token(colour) not in NOT_COLOURS]
    colours = [_typographic(cuts.limited("color", colour, GOOGLE_ONE_COLOR_MAX)) for colour in colours]
    return cuts.limited("color", "/".join(cuts.first("color", colours, GOOGLE_COLORS_MAX)), GOOGLE_COLOR_MAX)


def _detail(name: str, value: str, cuts: Cuts) -> str:
    parts = (
        cuts.limited("product_detail", GOOGLE_DETAIL_SECTION, GOOGLE_DETAIL_SECTION_MAX),
        cuts.limited("product_detail", name, GOOGLE_DETAIL_NAME_MAX),
        cuts.limited("product_detail", value, GOOGLE_DETAIL_VALUE_MAX),
    )
    # A sub-attribute holding the separators is quoted, as structured_title's content is.
    return ":".join(f'"{part}"' if re.search(r"[:,]", part) else part for part in map(_typographic, parts))


def _repeated(values: list[str]) -> str:
    """A repeated attribute's values, comma-separated; a value with a comma in quotes."""
    return ",".join(f'"{value}"' if "," in value else value for value in values)


def _typographic(text: str) -> str:
    """ASCII double quotes as typographic ones, opening and closing in turn."""
    parts = text.split('"')
    return (
        "".join(part + ("\u201c" if index % 2 == 0 else "\u201d") for index, part in enumerate(parts[:-1]))
        + parts[-1]
    )


# --- shopify ---------------------------------------------------------------------------------------


def shopify_handle(product_id: str) -> str:
    """Shopify's handle rules: lower-case ASCII letters, digits and single dashes, no dash at either end."""
    ascii_text = unicodedata.normalize("NFKD", product_id).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9]+", "-", ascii_text.lower()).strip("-")


def _shopify_row(
    record: ProductRecord, options: ExportOptions, category: ChannelCategory, cuts: Cuts
) -> tuple[Row | None, Skipped | None]:
    handle = shopify_handle(record.product_id)
    if not handle:
        return None, Skipped.ID_UNUSABLE
    copy = record.content[options.locale]
    # Model output is text, never markup: every piece is escaped before it is wrapped in tags.
    paragraphs = [clean(part) for part in re.split(r"\n\s*\n", copy.description)]
    body = "".join(f"<p>{html.escape(part)}</p>" for part in paragraphs if part)
    bullets = [clean(bullet) for bullet in copy.bullets if clean(bullet)]
    if bullets:
        body += "<ul>" + "".join(f"<li>{html.escape(bullet)}</li>" for bullet in bullets) + "</ul>"
    tags: dict[str, str] = {}
    for keyword in copy.keywords:
        # A comma would split one tag in two.
        tag = cuts.limited("Tags", keyword.replace(",", " "), SHOPIFY_TAG_MAX)
        if tag:
            tags.setdefault(tag.casefold(), tag)
    row: Row = {
        "Handle": handle,
        "Title": cuts.limited("Title", copy.title, SHOPIFY_TITLE_MAX),
        "Body (HTML)": body,
        "Product Category": category.shopify_path or "",
        "Tags": ", ".join(tags.values()),
        "SEO Title": cuts.limited("SEO Title", copy.title, SHOPIFY_SEO_TITLE_MAX),
        "SEO Description": cuts.limited(
            "SEO Description", copy.meta_description, SHOPIFY_SEO_DESCRIPTION_MAX
        ),
    }
    return row, None


def _unique_handles(rows: list[Row], summary: FeedSummary) -> list[Row]:
    """One row per handle (the first product id wins): two rows would update one shop product twice."""
    seen: set[str] = set()
    unique = []
    for row in rows:
        if row["Handle"] in seen:
            summary.skipped[str(Skipped.HANDLE_TAKEN)] += 1
            continue
        seen.add(row["Handle"])
        unique.append(row)
    return unique


# --- jsonl -----------------------------------------------------------------------------------------


def _json_line(record: ProductRecord) -> str:
    # JSON leaves U+2028/U+2029 unescaped, but they end a line for some readers (str.splitlines).
    return record.model_dump_json().replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")
