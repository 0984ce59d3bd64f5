"""Each feed against its channel's rules: columns, limits, escaping, encoding, one row per product."""

from __future__ import annotations

import csv
import io
import json

import pytest

from describer_rules.contracts import ProductRecord, ReviewStatus, Status
from describer_rules.feeds.formats import (
    GOOGLE_DESCRIPTION_MAX,
    GOOGLE_HIGHLIGHT_MAX,
    GOOGLE_TITLE_MAX,
    SHOPIFY_SEO_DESCRIPTION_MAX,
    SHOPIFY_SEO_TITLE_MAX,
    ExportOptions,
    FeedFormat,
    UnknownLocale,
    export,
    shopify_handle,
)
from describer_rules.feeds.selection import Skipped
from describer_rules.feeds.text import clean, cut

from .records import copy, record, reviewed

EN = ExportOptions(locale="en-US")
HOSTILE = 'Evil\t"quoted"\r\nnew line <script>alert(1)</script> \u202eeulav\u202c \u2028sep, comma'


def tsv(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text), delimiter="\t"))


def shopify(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def mixed_table() -> list[ProductRecord]:
    return [
        record("ok-1"),
        reviewed(ReviewStatus.ACCEPTED, "accepted-1", needs_review=False),
        reviewed(ReviewStatus.CORRECTED, "corrected-1", needs_review=False),
        reviewed(ReviewStatus.REJECTED, "rejected-1", needs_review=False),
        record("unsure-1", needs_review=True),
        record("failed-1", status=Status.FAILED, content={}),
        record("running-1", status=Status.PROCESSING, content={}),
        record("spanish-only", content={"es-ES": copy(title="Camiseta")}),
    ]


@pytest.mark.parametrize("fmt", list(FeedFormat))
def test_only_exportable_records_one_row_each(fmt: FeedFormat) -> None:
    feed = export(fmt, mixed_table(), EN)

    if fmt is FeedFormat.JSONL:
        ids = [json.loads(line)["product_id"] for line in feed.text.splitlines()]
    elif fmt is FeedFormat.GOOGLE:
        ids = [row["id"] for row in tsv(feed.text)]
    else:
        ids = [row["Handle"] for row in shopify(feed.text)]
    assert ids == ["accepted-1", "corrected-1", "ok-1"]
    assert feed.summary.rows == 3
    assert feed.summary.skipped == {
        str(Skipped.REJECTED): 1,
        str(Skipped.AWAITING_REVIEW): 1,
        str(Skipped.FAILED): 1,
        str(Skipped.PROCESSING): 1,
        str(Skipped.NO_LOCALE): 1,
    }


def test_awaiting_review_only_when_asked() -> None:
    feed = export(FeedFormat.GOOGLE, mixed_table(), ExportOptions("en-US", include_unreviewed=True))
    assert [row["id"] for row in tsv(feed.text)] == ["accepted-1", "corrected-1", "ok-1", "unsure-1"]


def test_google_supplemental_columns_and_marked_generated_text() -> None:
    (row,) = tsv(export(FeedFormat.GOOGLE, [record("tee-1")], EN).text)

    assert row["id"] == "tee-1"
    assert row["structured_title"] == 'trained_algorithmic_media:"Classic Cotton T-Shirt"'
    assert row["structured_description"].startswith('trained_algorithmic_media:"A soft cotton')
    assert "title" not in row and "description" not in row
    assert row["product_highlight"] == "Soft cotton,Short sleeves,Round neck"
    assert row["product_detail"] == "General:Neck:Round Neck"
    assert (row["color"], row["pattern"], row["material"]) == ("White", "Solid", "Cotton")
    assert row["product_type"] == "Apparel > Topwear > Tshirts"
    assert row["google_product_category"] == "212"
    # No product knows gender or age group: no column that would blank them.
    assert "gender" not in row and "age_group" not in row


def test_google_plain_text_replaces_the_structured_columns() -> None:
    feed = export(FeedFormat.GOOGLE, [record("tee-1")], ExportOptions("en-US", plain_text=True))
    (row,) = tsv(feed.text)
    assert row["title"] == "Classic Cotton T-Shirt" and "structured_title" not in row


def test_google_limits_cut_at_a_word_boundary_and_are_counted() -> None:
    long = record(
        "long-1",
        content={
            "en-US": copy(
                title="word " * 60,
                description="sentence " * 700,
                bullets=["highlight " * 30, "short one", "another"],
            )
        },
        attributes={"Colour": "Blue/Red/Green/Black", "Gender": "Girls"},
    )
    feed = export(FeedFormat.GOOGLE, [long], EN)
    (row,) = tsv(feed.text)

    title = row["structured_title"].removeprefix('trained_algorithmic_media:"').removesuffix('"')
    assert len(title) <= GOOGLE_TITLE_MAX and title.endswith("word") and not title.endswith(" ")
    description = row["structured_description"].removeprefix('trained_algorithmic_media:"').removesuffix('"')
    assert len(description) <= GOOGLE_DESCRIPTION_MAX and description.endswith("sentence")
    first = row["product_highlight"].split(",")[0]
    assert len(first) <= GOOGLE_HIGHLIGHT_MAX and first.endswith("highlight")
    assert row["color"] == "Blue/Red/Green"
    assert (row["gender"], row["age_group"]) == ("female", "kids")
    assert feed.summary.cuts["title"] == 1
    assert feed.summary.cuts["description"] == 1
    assert feed.summary.cuts["product_highlight"] == 1
    assert feed.summary.cuts["color"] == 1


def test_google_id_is_exact_or_the_product_is_skipped() -> None:
    feed = export(FeedFormat.GOOGLE, [record("x" * 51), record("tab\tid"), record('odd "id", ok')], EN)
    rows = tsv(feed.text)
    assert [row["id"] for row in rows] == ['odd "id", ok']
    assert feed.summary.skipped == {str(Skipped.ID_UNUSABLE): 2}


@pytest.mark.parametrize("fmt", [FeedFormat.GOOGLE, FeedFormat.SHOPIFY])
def test_hostile_copy_cannot_break_a_row_or_inject_markup(fmt: FeedFormat) -> None:
    hostile = record(
        "hostile-1",
        content={
            "en-US": copy(
                title=HOSTILE,
                description=HOSTILE + "\n\n" + HOSTILE,
                bullets=[HOSTILE, "<b>bold</b>", "plain"],
                keywords=[HOSTILE, "ok"],
                meta_description=HOSTILE,
            )
        },
        attributes={"Colour": HOSTILE, "Pattern": "Solid\tStriped", "Neck": '<img src=x onerror="y">'},
    )
    feed = export(fmt, [hostile, record("tee-2")], EN)
    text = feed.text

    lines = text.splitlines()
    assert len(lines) == 3  # header + two rows: no cell holds a line break of any kind
    for bidi in "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f":
        assert bidi not in text
    rows = tsv(text) if fmt is FeedFormat.GOOGLE else shopify(text)
    assert len(rows) == 2 and all(None not in row for row in rows)  # no extra cells
    if fmt is FeedFormat.GOOGLE:
        assert "\t" not in "".join(rows[0].values())
        # The copy's own quotes never close structured_title's.
        assert rows[0]["structured_title"].count('"') == 2
    else:
        body = rows[0]["Body (HTML)"]
        assert "<script>" not in body and "<img" not in body and "<b>" not in body
        assert "&lt;script&gt;" in body and body.count("<p>") == 2 and body.startswith("<p>")
        assert "<ul><li>" in body


def test_shopify_columns_limits_and_handles() -> None:
    long = record(
        "Sommer Kleid_ÄÖ 01",
        content={
            "en-US": copy(title="word " * 30, meta_description="meta " * 100, keywords=["a, b", "A, B", "c"])
        },
    )
    feed = export(FeedFormat.SHOPIFY, [long], EN)
    (row,) = shopify(feed.text)

    assert list(row) == [
        "Handle",
        "Title",
        "Body (HTML)",
        "Product Category",
        "Tags",
        "SEO Title",
        "SEO Description",
    ]
    assert row["Handle"] == "sommer-kleid-ao-01"
    assert row["Product Category"] == "Apparel & Accessories > Clothing > Clothing Tops > T-Shirts"
    assert len(row["SEO Title"]) <= SHOPIFY_SEO_TITLE_MAX and row["SEO Title"].endswith("word")
    assert len(row["SEO Description"]) <= SHOPIFY_SEO_DESCRIPTION_MAX
    assert row["Tags"] == "a b, c"
    assert "Variant Price" not in row and "Status" not in row
    assert feed.summary.cuts["SEO Title"] == 1 and feed.summary.cuts["SEO Description"] == 1


def test_shopify_leaves_out_a_column_some_product_cannot_fill() -> None:
    perfume = record("perfume-1", category="Perfume and Body Mist")
    feed = export(FeedFormat.SHOPIFY, [record("tee-1"), perfume], EN)
    header = feed.text.splitlines()[0].split(",")
    # A blank cell would wipe the shop's category of the product: the column is left out.
    assert "Product Category" not in header
    assert feed.summary.left_out == {"Product Category": 1}


def test_shopify_two_ids_with_one_handle_give_one_row() -> None:
    feed = export(FeedFormat.SHOPIFY, [record("Tee 1"), record("tee-1")], EN)
    assert len(shopify(feed.text)) == 1
    assert feed.summary.skipped == {str(Skipped.HANDLE_TAKEN): 1}


def test_jsonl_is_the_record_contract_in_one_locale() -> None:
    both = record("tee-1", content={"en-US": copy(title="Line\u2028break"), "es-ES": copy(title="Camiseta")})
    feed = export(FeedFormat.JSONL, [both], EN)
    (line,) = feed.text.split("\n")[:-1]
    parsed = ProductRecord.model_validate_json(line)
    assert list(parsed.content) == ["en-US"] and parsed.content["en-US"].title == "Line\u2028break"
    assert "\u2028" not in feed.text


@pytest.mark.parametrize("fmt", list(FeedFormat))
def test_empty_table_gives_a_header_only_utf8_feed(fmt: FeedFormat) -> None:
    feed = export(fmt, [], EN)
    expected = {
        FeedFormat.GOOGLE: "id\tstructured_title\tstructured_description\n",
        FeedFormat.SHOPIFY: "Handle,Title,Body (HTML),Product Category,Tags,SEO Title,SEO Description\r\n",
        FeedFormat.JSONL: "",
    }
    assert feed.text == expected[fmt]
    feed.text.encode("utf-8")


def test_a_locale_no_record_has_is_an_error() -> None:
    with pytest.raises(UnknownLocale, match="fr-FR"):
        export(FeedFormat.GOOGLE, [record("tee-1")], ExportOptions("fr-FR"))


def test_non_ascii_copy_is_written_as_utf8() -> None:
    accented = record("tee-1", content={"de-DE": copy(title="Weißes T-Shirt \u2013 für jeden Tag")})
    feed = export(FeedFormat.GOOGLE, [accented], ExportOptions("de-DE"))
    assert "Weißes T-Shirt \u2013 für jeden Tag" in feed.text.encode("utf-8").decode("utf-8")


def test_clean_and_cut() -> None:
    assert clean(" a\t b\r\n\u2028c\u202e d\x00") == "a b c d"
    assert cut("one two three", 9) == ("one two", True)
    assert cut("abcdefghij", 4) == ("abcd", True)
    assert cut("short", 10) == ("short", False)
    assert shopify_handle("--Ünïcode  ID!!--") == "unicode-id"
