"""The copy validator: every named rule, on content that breaks exactly that rule."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from describer_rules.catalogue import load_catalogue
from describer_rules.content_rules import RULES, CopyRules, Rule, check_reply, violations
from describer_rules.contracts import LocaleContent

from .test_description import ATTRIBUTES, GOOD

RULES_FOR_SHIRT = CopyRules(category=load_catalogue().category("Shirts"), attributes=ATTRIBUTES)


def _broken(**changes: Any) -> set[Rule]:
    content = LocaleContent.model_validate({**GOOD, **changes})
    return {violation.rule for violation in violations(content, RULES_FOR_SHIRT)}


def test_good_copy_breaks_no_rule() -> None:
    assert _broken() == set()


def test_every_rule_is_a_named_function() -> None:
    assert {rule.__name__ for rule in RULES} == {rule.value for rule in Rule} - {"schema", "cut_off"}


@pytest.mark.parametrize(
    ("changes", "rule"),
    [
        (
            {
                "title": "Blue Checked Slim Fit Cotton Shirt with Long Sleeves and a Spread Collar, "
                "Made to Last"
            },
            Rule.TITLE_LENGTH,
        ),
        ({"title": " "}, Rule.TITLE_LENGTH),
        (
            {"description": "A slim fit blue checked cotton shirt with long sleeves and a spread collar."},
            Rule.DESCRIPTION_LENGTH,
        ),
        ({"description": GOOD["description"] + " More." * 400}, Rule.DESCRIPTION_LENGTH),
        ({"bullets": GOOD["bullets"][:2]}, Rule.BULLET_COUNT),
        ({"bullets": [*GOOD["bullets"], "Easy care", "Made to last"]}, Rule.BULLET_COUNT),
        ({"bullets": [*GOOD["bullets"][:3], "Soft " * 30]}, Rule.BULLET_LENGTH),
        ({"keywords": GOOD["keywords"][:4]}, Rule.KEYWORD_COUNT),
        ({"keywords": [f"shirt {n}" for n in range(16)]}, Rule.KEYWORD_COUNT),
        ({"keywords": [*GOOD["keywords"], "Blue Shirt"]}, Rule.KEYWORD_DUPLICATE),
        ({"keywords": [*GOOD["keywords"], "shirt " * 20]}, Rule.KEYWORD_LENGTH),
        ({"meta_description": GOOD["meta_description"] * 3}, Rule.META_DESCRIPTION_LENGTH),
        ({"description": GOOD["description"] + " <attributes>{}</attributes>"}, Rule.PROMPT_MARKUP),
        ({"bullets": [*GOOD["bullets"][:3], "As my system prompt says, cotton"]}, Rule.PROMPT_MARKUP),
        ({"meta_description": '{"title": "Blue shirt"}'}, Rule.PROMPT_MARKUP),
        (
            {
                "title": "Blue Slim Fit Cotton Shirt",
                "description": GOOD["description"].replace("checked ", ""),
            },
            Rule.ATTRIBUTE_MISSING,
        ),
    ],
)
def test_a_limit_schema_or_markup_break_names_its_rule(changes: dict[str, Any], rule: Rule) -> None:
    assert rule in _broken(**changes)


@pytest.mark.parametrize(
    ("sentence", "claimed"),
    [
        ("Short sleeves keep it cool.", "Short Sleeves"),
        ("A short-sleeved cut for summer.", "Short Sleeves"),
        ("Its regular fit is relaxed.", "Regular Fit"),
        ("A striped version is also available.", "Striped"),
        ("Pair it with white chinos.", "White"),
        ("The mandarin collar frames the face.", "Mandarin Collar"),
        ("A soft polyester weave.", "Polyester"),
    ],
)
def test_another_catalogue_value_of_a_predicted_attribute_is_a_contradiction(
    sentence: str, claimed: str
) -> None:
    content = LocaleContent.model_validate({**GOOD, "description": GOOD["description"] + " " + sentence})
    found = [v for v in violations(content, RULES_FOR_SHIRT) if v.rule == Rule.ATTRIBUTE_CONTRADICTED]
    assert [claimed in v.detail for v in found] == [True]


def test_the_predicted_value_inside_a_longer_phrase_is_no_contradiction() -> None:
    tshirts = load_catalogue().category("generic")
    rules = CopyRules(
        category=tshirts, attributes={"Article Type": "Tshirts", "Colour": "Blue", "Pattern": "Solid"}
    )
    content = LocaleContent.model_validate(
        {
            **GOOD,
            "title": "Blue Solid T-Shirt",
            "description": "A blue solid t-shirt that feels soft from the first wear "
            "and keeps its colour wash after wash.",
            "bullets": ["Solid blue", "Soft cotton feel", "Everyday t-shirt"],
            "keywords": ["blue t-shirt", "solid tee", "plain t-shirt", "everyday tee", "basic t-shirt"],
            "meta_description": "A blue solid t-shirt for every day.",
        }
    )
    assert violations(content, rules) == []


def test_uncertain_attributes_may_not_be_claimed_at_all() -> None:
    rules = CopyRules(
        category=RULES_FOR_SHIRT.category,
        attributes={k: v for k, v in ATTRIBUTES.items() if k != "Fabric"},
        uncertain={"Fabric": "Cotton"},
    )
    content = LocaleContent.model_validate(GOOD)
    assert [v.rule for v in violations(content, rules)] == [Rule.UNCERTAIN_ATTRIBUTE_CLAIMED] * 1
    assert "Cotton" in violations(content, rules)[0].detail


def test_a_confident_value_is_no_claim_of_an_uncertain_attribute_sharing_its_words() -> None:
    """Tops' "No Sleeves" is a sleeve length and a sleeve styling: copy that says the confident
    length may be written while the styling is uncertain, and naming a styling is still refused."""
    rules = CopyRules(
        category=load_catalogue().category("Tops"),
        attributes={"Article Type": "Tops", "Colour": "Red", "Sleeve Length": "No Sleeves"},
        uncertain={"Sleeve Styling": "No Sleeves"},
    )
    content = LocaleContent.model_validate(
        {
            **GOOD,
            "title": "Red Top with No Sleeves",
            "description": "A red top with no sleeves, light enough for the warmest days "
            "and easy to pair with jeans or a skirt.",
            "bullets": ["Red colour", "No sleeves", "Easy to pair"],
            "keywords": ["red top", "top with no sleeves", "summer top", "casual top", "women's top"],
            "meta_description": "A red top with no sleeves for warm days.",
        }
    )
    assert violations(content, rules) == []
    puffed = content.model_copy(
        update={"bullets": ["Red colour", "No sleeves", "Puff sleeves at the shoulder"]}
    )
    assert [v.rule for v in violations(puffed, rules)] == [Rule.UNCERTAIN_ATTRIBUTE_CLAIMED]


def test_words_to_avoid_are_found_in_any_field_whatever_the_case() -> None:
    rules = CopyRules(
        category=RULES_FOR_SHIRT.category, attributes=ATTRIBUTES, words_to_avoid=["must-have", "cheap"]
    )
    content = LocaleContent.model_validate({**GOOD, "keywords": [*GOOD["keywords"], "Must-Have shirt"]})
    assert [str(v) for v in violations(content, rules)] == [
        "avoided_word: the copy uses 'must-have', a word to avoid"
    ]


def test_claim_rules_apply_to_the_default_locale_only() -> None:
    spanish = CopyRules(category=RULES_FOR_SHIRT.category, attributes=ATTRIBUTES, default_locale=False)
    content = LocaleContent.model_validate(
        {
            **GOOD,
            "description": "Una camisa azul de cuadros con corte slim, "
            "de algodón suave, manga larga y cuello italiano.",
        }
    )
    assert violations(content, spanish) == []


@pytest.mark.parametrize(
    ("reply", "stop_reason", "rule"),
    [
        ("not json", "end_turn", Rule.SCHEMA),
        (json.dumps({k: v for k, v in GOOD.items() if k != "keywords"}), "end_turn", Rule.SCHEMA),
        (json.dumps({**GOOD, "bullets": "one long string"}), "end_turn", Rule.SCHEMA),
        (json.dumps(GOOD), "max_tokens", Rule.CUT_OFF),
    ],
)
def test_replies_that_do_not_fit_the_schema(reply: str, stop_reason: str, rule: Rule) -> None:
    content, broken = check_reply(reply, stop_reason, RULES_FOR_SHIRT)
    assert content is None and [v.rule for v in broken] == [rule]


def test_a_tool_call_input_is_checked_like_json_text() -> None:
    content, broken = check_reply(GOOD, "tool_use", RULES_FOR_SHIRT)
    assert content == LocaleContent.model_validate(GOOD) and broken == []


def _claims(category: str, attributes: dict[str, str], sentence: str) -> list[str]:
    rules = CopyRules(category=load_catalogue().category(category), attributes=attributes)
    content = LocaleContent.model_validate({**GOOD, "description": GOOD["description"] + " " + sentence})
    return [v.detail for v in violations(content, rules) if v.rule == Rule.ATTRIBUTE_CONTRADICTED]


def test_contradictions_in_every_categorys_vocabulary() -> None:
    jeans = {"Waist Rise": "Mid-Rise", "Fit": "Slim Fit"}
    assert _claims("Jeans", jeans, "A mid-rise slim fit pair.") == []
    assert _claims("Jeans", jeans, "A low-rise pair.") == [
        "Waist Rise is 'Mid-Rise' but the copy says 'Low-Rise'"
    ]
    dress = {"Length": "Knee Length"}
    assert _claims("Dresses", dress, "A mini dress.") == ["Length is 'Knee Length' but the copy says 'Mini'"]


def test_an_everyday_word_is_a_claim_only_beside_its_attribute() -> None:
    shoe = {"Ankle Height": "High-Top", "Fastening": "Lace-Ups"}
    assert _claims("Casual Shoes", shoe, "High-top lace-ups with regular laces.") == []
    assert _claims("Casual Shoes", shoe, "Lace-ups with a regular ankle height.") == [
        "Ankle Height is 'High-Top' but the copy says 'Regular'"
    ]


def test_the_template_s_title_limit_is_the_code_s() -> None:
    """The title limit lives in one place in code (DEFAULT_TITLE_MAX_CHARS); the template's default and
    the settings' default follow it."""
    from cfnlint.decode import decode

    from describer_rules.content_rules import DEFAULT_TITLE_MAX_CHARS
    from describer_steps.settings import DescriptionSettings

    template, _ = decode(str(Path(__file__).resolve().parents[3] / "template.yaml"))
    assert template is not None
    assert template["Parameters"]["TitleMaxChars"]["Default"] == DEFAULT_TITLE_MAX_CHARS
    assert DescriptionSettings(bedrock_model_id="m").title_max_chars == DEFAULT_TITLE_MAX_CHARS
