import pytest

from describer_rules.answers import format_answer, parse_answer
from describer_rules.catalogue import load_catalogue

CATALOGUE = load_catalogue()
SLEEVE = CATALOGUE.category("Tshirts").attribute("Sleeve Length")
NECK = CATALOGUE.category("Tshirts").attribute("Neck")


@pytest.mark.parametrize(
    "raw",
    [
        "Sleeve Length: Long Sleeves",
        "sleeve length:   long sleeves.",
        "Long Sleeves",
        "long-sleeves",
        {"Sleeve Length": "Long Sleeves"},
        '{"sleeve length": "LONG SLEEVES"}',
    ],
)
def test_every_answer_form_normalises_to_the_vocabulary(raw: object) -> None:
    parsed = parse_answer(raw, SLEEVE)  # type: ignore[arg-type]
    assert (parsed.attribute, parsed.value, parsed.known) == ("Sleeve Length", "Long Sleeves", True)


def test_hyphen_and_case_variants_match_the_canonical_value() -> None:
    shirt_sleeve = CATALOGUE.category("Shirts").attribute("Sleeve Length")
    assert parse_answer("three quarter sleeves", shirt_sleeve).value == "Three-Quarter Sleeves"
    assert parse_answer("Neck: v neck", NECK).value == "V-Neck"


def test_value_outside_the_vocabulary_is_kept_raw_and_flagged() -> None:
    parsed = parse_answer("Sleeve Length: Cap Sleeves", SLEEVE)
    assert parsed.known is False
    assert parsed.value == "Cap Sleeves"
    assert parsed.raw == "Sleeve Length: Cap Sleeves"


def test_answer_about_another_attribute_is_not_taken_for_this_one() -> None:
    parsed = parse_answer("Pattern: Striped", SLEEVE)
    assert parsed.known is False
    assert parsed.value == "Pattern: Striped"


def test_empty_answer_is_unknown() -> None:
    parsed = parse_answer("   ", SLEEVE)
    assert (parsed.value, parsed.known) == ("", False)


def test_format_then_parse_round_trips_every_catalogue_value() -> None:
    for category in CATALOGUE.categories:
        for attribute in category.attributes:
            for value in attribute.values:
                parsed = parse_answer(format_answer(attribute.name, value), attribute)
                assert (parsed.value, parsed.known) == (value, True)
