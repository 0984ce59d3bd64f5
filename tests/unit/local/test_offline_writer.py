from __future__ import annotations

from describer.local.offline_writer import extract_attributes, product_noun, write_description
from describer_core.catalogue import load_catalogue
from describer_core.prompts import user_message

TSHIRT = {
    "Sleeve Length": "Short Sleeves",
    "Pattern": "Striped",
    "Fit": "Regular Fit",
    "Fabric": "Polyester",
    "Neck": "Round Neck",
    "Colour": "Red",
}


def test_attributes_and_noun_are_read_from_the_pipeline_prompt() -> None:
    prompt = user_message(load_catalogue().category("Tshirts"), TSHIRT)
    assert extract_attributes(prompt) == TSHIRT
    assert product_noun(prompt) == "t-shirt"


def test_attributes_are_read_from_name_value_lines() -> None:
    prompt = "Describe this shirt.\n- Fabric: Cotton\n- Fit: Slim Fit\nCategory: Shirts"
    assert extract_attributes(prompt) == {"Fabric": "Cotton", "Fit": "Slim Fit"}
    assert product_noun(prompt) == "shirt"


def test_the_description_uses_every_value_and_is_stable() -> None:
    text = write_description(TSHIRT, "t-shirt")
    for value in TSHIRT.values():
        assert value.lower() in text.lower()
    assert write_description(TSHIRT, "t-shirt") == text


def test_unknown_attributes_are_still_used() -> None:
    text = write_description({"Article Type": "Jeans", "Colour": "Black"})
    assert "jeans" in text
    assert "black" in text


def test_different_products_read_differently() -> None:
    openings = set()
    for colour in ("Red", "Blue", "Green", "White", "Black", "Grey"):
        text = write_description({**TSHIRT, "Colour": colour}, "t-shirt")
        openings.add(text.split(colour.lower())[0])
    assert len(openings) > 1
