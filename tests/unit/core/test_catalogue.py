import json

import pytest
from pydantic import ValidationError

from describer_rules.catalogue import GENERIC_CATEGORY, load_catalogue


def test_known_categories_ask_their_own_questions_in_the_reference_form() -> None:
    catalogue = load_catalogue()
    questions = dict(catalogue.questions("Shirts"))
    assert questions["Sleeve Length"] == "What is the sleeve length of the shirt in this picture?"
    assert "Collar" in questions
    assert "Neck" in dict(catalogue.questions("tshirts"))


def test_unknown_or_missing_category_falls_back_to_generic() -> None:
    catalogue = load_catalogue()
    assert catalogue.category("Cufflinks").name == GENERIC_CATEGORY
    assert catalogue.category(None).name == GENERIC_CATEGORY


def test_every_attribute_has_a_vocabulary_with_support() -> None:
    catalogue = load_catalogue()
    for category in catalogue.categories:
        assert category.attributes, category.name
        for attribute in category.attributes:
            assert attribute.values, (category.name, attribute.name)
            assert all(count >= catalogue.min_support for count in attribute.values.values())


def test_an_attribute_with_an_empty_vocabulary_is_refused_at_load(tmp_path) -> None:
    catalogue = load_catalogue().model_dump()
    catalogue["categories"][0]["attributes"][0]["values"] = {}
    path = tmp_path / "catalogue.json"
    path.write_text(json.dumps(catalogue))
    with pytest.raises(ValidationError, match=r"empty vocabulary \(values\) for Sleeve Length"):
        load_catalogue(path)
