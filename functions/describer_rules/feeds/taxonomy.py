"""Each catalogue category's Google product category and Shopify taxonomy category.

``taxonomy_table.json`` (shipped, its sources and versions named) maps the categories it knows, and
the parents of the dataset's hierarchy (article type > sub category > master category). ``describer
catalogue build`` resolves every catalogue category against it into ``channel_categories.json``: a
category the table does not map takes its nearest mapped parent, and the command reports it. Export and
the FeedExport Lambda read that file through ``channel_category``; a category missing from it (another
catalogue) is resolved from the table the same way.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

from pydantic import BaseModel, Field

from describer_rules.catalogue import DEFAULT_CATALOGUE_PATH, GENERIC_CATEGORY, Catalogue, normalise_token

TABLE_PATH = Path(__file__).with_name("taxonomy_table.json")
MAPPING_PATH = Path(__file__).with_name("channel_categories.json")
# How product_type names the path, as Google's own taxonomy does.
PATH_SEPARATOR = " > "


class TaxonomySource(BaseModel):
    name: str
    version: str
    url: str


class ChannelIds(BaseModel):
    google: int | None = None
    shopify: str | None = None


class TaxonomyTable(BaseModel):
    schema_version: int = 1
    sources: dict[str, TaxonomySource]
    parents: dict[str, str] = Field(description="Category -> its parent in the dataset's hierarchy")
    categories: dict[str, ChannelIds]
    google_names: dict[str, str]
    shopify_names: dict[str, str]

    def lineage(self, category: str) -> list[str]:
        """``category`` and its ancestors, nearest first (the table's spelling where it knows the name)."""
        known = {normalise_token(name): name for name in [*self.parents, *self.parents.values()]}
        chain = [known.get(normalise_token(category), category)]
        while chain[-1] in self.parents and self.parents[chain[-1]] not in chain:
            chain.append(self.parents[chain[-1]])
        return chain

    def ids(self, name: str) -> ChannelIds:
        key = normalise_token(name)
        return next(
            (ids for known, ids in self.categories.items() if normalise_token(known) == key), ChannelIds()
        )


class ChannelCategory(BaseModel):
    """One catalogue category in each channel's taxonomy; ``*_from`` names the entry that mapped it."""

    product_type: str = Field(description="The category's path in the dataset's hierarchy, root first")
    google_product_category: int | None = None
    google_path: str | None = None
    google_from: str | None = None
    shopify_category: str | None = Field(default=None, description="Shopify taxonomy id, e.g. aa-1-13-8")
    shopify_path: str | None = None
    shopify_from: str | None = None

    def unmapped(self, category: str) -> list[str]:
        """What to report: each channel mapped through a parent, or not at all."""
        notes = []
        for channel, found in (("google", self.google_from), ("shopify", self.shopify_from)):
            if found is None:
                notes.append(f"{channel}: no category")
            elif normalise_token(found) != normalise_token(category):
                notes.append(f"{channel}: nearest parent {found}")
        return notes


class ChannelMapping(BaseModel):
    schema_version: int = 1
    sources: dict[str, TaxonomySource]
    categories: dict[str, ChannelCategory]


def resolve(category: str, table: TaxonomyTable) -> ChannelCategory:
    """``category`` in each channel: its own entry, else its nearest ancestor's that maps the channel."""
    lineage = table.lineage(category)
    google = next(((name, table.ids(name).google) for name in lineage if table.ids(name).google), None)
    shopify = next(((name, table.ids(name).shopify) for name in lineage if table.ids(name).shopify), None)
    return ChannelCategory(
        product_type=PATH_SEPARATOR.join(reversed(lineage)),
        google_product_category=google[1] if google else None,
        google_path=table.google_names.get(str(google[1])) if google else None,
        google_from=google[0] if google else None,
        shopify_category=shopify[1] if shopify else None,
        shopify_path=table.shopify_names.get(shopify[1]) if shopify and shopify[1] else None,
        shopify_from=shopify[0] if shopify else None,
    )


def build_mapping(catalogue: Catalogue, table: TaxonomyTable | None = None) -> ChannelMapping:
    """Every category of ``catalogue`` (the generic fallback aside) resolved against the table."""
    table = table or load_table()
    categories = {
        spec.name: resolve(spec.name, table) for spec in catalogue.categories if spec.name != GENERIC_CATEGORY
    }
    return ChannelMapping(sources=table.sources, categories=categories)


@cache
def load_table(path: Path = TABLE_PATH) -> TaxonomyTable:
    return TaxonomyTable.model_validate(json.loads(path.read_text(encoding="utf-8")))


@cache
def load_mapping(path: Path = MAPPING_PATH) -> ChannelMapping:
    return ChannelMapping.model_validate(json.loads(path.read_text(encoding="utf-8")))


def channel_category(category: str, mapping: ChannelMapping | None = None) -> ChannelCategory:
    """The channels' categories of a record's ``category``: from the built mapping, else the table."""
    mapping = mapping or load_mapping()
    key = normalise_token(category)
    for name, found in mapping.categories.items():
        if normalise_token(name) == key:
            return found
    return resolve(category, load_table())


def write_mapping(catalogue: Catalogue, catalogue_path: Path) -> tuple[Path, list[str]]:
    """Build the mapping of ``catalogue`` beside it (the packaged one's: ``MAPPING_PATH``).

    Returns the file written and one line per category a channel maps only through a parent, or not.
    """
    mapping = build_mapping(catalogue)
    path = (
        MAPPING_PATH
        if catalogue_path.resolve() == DEFAULT_CATALOGUE_PATH.resolve()
        else (catalogue_path.with_name(MAPPING_PATH.name))
    )
    path.write_text(mapping.model_dump_json(indent=2) + "\n", encoding="utf-8")
    load_mapping.cache_clear()
    notes = [
        f"channel category of {name}: {'; '.join(found.unmapped(name))}"
        for name, found in mapping.categories.items()
        if found.unmapped(name)
    ]
    return path, notes
