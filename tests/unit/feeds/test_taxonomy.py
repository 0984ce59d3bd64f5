"""The channel taxonomy: the shipped mapping is the table resolved against the catalogue."""

from __future__ import annotations

from pathlib import Path

from describer_rules.catalogue import load_catalogue
from describer_rules.feeds.taxonomy import (
    ChannelMapping,
    build_mapping,
    channel_category,
    load_mapping,
    load_table,
    resolve,
    write_mapping,
)


def test_shipped_mapping_is_built_from_the_table_and_the_catalogue() -> None:
    # `describer catalogue build` rewrites it; a table or catalogue change without it fails here.
    assert load_mapping() == build_mapping(load_catalogue())
    assert set(load_mapping().sources) >= {"google", "shopify"}
    assert load_mapping().sources["google"].version == "2021-09-21"
    assert load_mapping().sources["shopify"].version == "2024-07"


def test_a_mapped_category_uses_its_own_entry() -> None:
    tshirts = resolve("tshirts", load_table())
    assert (tshirts.google_product_category, tshirts.shopify_category) == (212, "aa-1-13-8")
    assert tshirts.shopify_path == "Apparel & Accessories > Clothing > Clothing Tops > T-Shirts"
    assert tshirts.unmapped("Tshirts") == []


def test_an_unmapped_category_takes_its_nearest_parent_and_says_so() -> None:
    kurtas = resolve("Kurtas", load_table())
    assert (kurtas.google_product_category, kurtas.shopify_category) == (212, "aa-1-13")
    assert kurtas.unmapped("Kurtas") == ["google: nearest parent Topwear", "shopify: nearest parent Topwear"]
    perfume = resolve("Perfume and Body Mist", load_table())
    assert perfume.shopify_category is None and "shopify: no category" in perfume.unmapped(
        "Perfume and Body Mist"
    )


def test_a_category_outside_the_mapping_is_resolved_from_the_table() -> None:
    assert channel_category("Sweaters").google_product_category == 212
    unknown = channel_category("Spaceships")
    assert unknown.google_product_category is None and unknown.product_type == "Spaceships"


def test_catalogue_build_writes_the_mapping_beside_the_catalogue_and_reports(tmp_path: Path) -> None:
    catalogue = load_catalogue()
    path, notes = write_mapping(catalogue, tmp_path / "catalogue.json")
    assert path == tmp_path / "channel_categories.json"
    assert ChannelMapping.model_validate_json(path.read_text(encoding="utf-8")) == build_mapping(catalogue)
    assert (
        "channel category of Kurtas: google: nearest parent Topwear; shopify: nearest parent Topwear" in notes
    )
    assert not any(note.startswith("channel category of Tshirts") for note in notes)
