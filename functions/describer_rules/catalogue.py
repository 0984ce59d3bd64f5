"""The attribute catalogue: which questions to ask per product category, and each answer's vocabulary.

One file (``catalogue.json`` beside this module, or one written by ``describer dataset prepare``),
one loader. The pipeline picks its questions here, the endpoint and training normalise answers here.
"""

from __future__ import annotations

import json
import re
from functools import lru_cache
from pathlib import Path

from pydantic import BaseModel, Field, field_validator

DEFAULT_CATALOGUE_PATH = Path(__file__).with_name("catalogue.json")
GENERIC_CATEGORY = "generic"
# The generic category's first question: which of the catalogue's categories a product is.
ARTICLE_TYPE_ATTRIBUTE = "Article Type"
ARTICLE_TYPE_QUESTION = "What type of product is in this picture?"
# The attribute every category asks, read from the dataset's baseColour.
COLOUR_ATTRIBUTE = "Colour"


def normalise_token(text: str) -> str:
    """Comparison key for a value: case, hyphens, underscores and spacing do not matter."""
    text = re.sub(r"[-_/]+", " ", text.casefold())
    text = re.sub(r"[^\w ]+", "", text)
    return " ".join(text.split())


class AttributeSpec(BaseModel):
    """One attribute of a category: its name, how it is asked, and the values it may take."""

    name: str
    question: str | None = Field(
        default=None, description="Question text; default 'What is the <name> of the <noun> in this picture?'"
    )
    values: dict[str, int] = Field(description="Canonical value -> support (products seen with it)")
    aliases: dict[str, str] = Field(
        default_factory=dict, description="Other spellings or folded rare values -> canonical value"
    )

    def canonical(self, value: str) -> str | None:
        """The vocabulary value that ``value`` names, or None when it is outside the vocabulary."""
        key = normalise_token(value)
        for canonical in self.values:
            if normalise_token(canonical) == key:
                return canonical
        for alias, canonical in self.aliases.items():
            if normalise_token(alias) == key:
                return canonical
        return None


class CategorySpec(BaseModel):
    name: str
    noun: str = Field(description="How a question names the product: 'shirt', 't-shirt', 'product'")
    attributes: list[AttributeSpec]

    @field_validator("attributes")
    @classmethod
    def _every_attribute_has_values(cls, attributes: list[AttributeSpec]) -> list[AttributeSpec]:
        # The endpoint scores an attribute's values; with none there is nothing to choose from.
        empty = [spec.name for spec in attributes if not spec.values]
        if empty:
            raise ValueError(f"empty vocabulary (values) for {', '.join(empty)}")
        return attributes

    def attribute(self, name: str) -> AttributeSpec:
        key = normalise_token(name)
        for spec in self.attributes:
            if normalise_token(spec.name) == key:
                return spec
        raise KeyError(f"category {self.name!r} has no attribute {name!r}")

    def question_for(self, spec: AttributeSpec) -> str:
        return spec.question or f"What is the {spec.name.lower()} of the {self.noun} in this picture?"


class Catalogue(BaseModel):
    schema_version: int = 1
    source: str = Field(description="Where the vocabularies and their support come from")
    min_support: int = Field(description="Values seen on fewer products were folded or dropped")
    categories: list[CategorySpec]

    def known_category(self, name: str | None) -> CategorySpec | None:
        """The category called ``name`` (any case), or None when the catalogue does not know it."""
        key = normalise_token(name or "")
        for spec in self.categories:
            if spec.name != GENERIC_CATEGORY and normalise_token(spec.name) == key:
                return spec
        return None

    def category(self, name: str | None) -> CategorySpec:
        """The category called ``name`` (any case), else the generic fallback."""
        key = normalise_token(name or "")
        fallback = None
        for spec in self.categories:
            if normalise_token(spec.name) == key:
                return spec
            if spec.name == GENERIC_CATEGORY:
                fallback = spec
        if fallback is None:
            raise KeyError(f"no category {name!r} and no {GENERIC_CATEGORY!r} fallback in the catalogue")
        return fallback

    def questions(self, category: str | None) -> list[tuple[str, str]]:
        """(attribute, question) pairs for a category, in catalogue order."""
        spec = self.category(category)
        return [(attribute.name, spec.question_for(attribute)) for attribute in spec.attributes]

    def to_json(self) -> str:
        return self.model_dump_json(indent=2) + "\n"


@lru_cache(maxsize=8)
def load_catalogue(path: str | Path | None = None) -> Catalogue:
    """Load and validate a catalogue file; the packaged one by default."""
    source = Path(path) if path is not None else DEFAULT_CATALOGUE_PATH
    return Catalogue.model_validate(json.loads(source.read_text(encoding="utf-8")))
