"""The one validator of a locale's copy: pure functions, one per named rule.

``check_reply`` turns a model reply into a ``LocaleContent`` and the list of rules it breaks. Every
rule is named (``Rule``): the retry tells the model the rules and details, and a second failure
names them in ``DESCRIPTION_INVALID``. The claim rules read the catalogue: in the default locale the
copy must express every attribute value it was given and may not name another value of the same
attribute ("long sleeves" for a short-sleeved shirt), nor any value of an attribute too uncertain to
be written about.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from functools import lru_cache
from typing import Any

from pydantic import ValidationError

from describer_rules.catalogue import CategorySpec, normalise_token
from describer_rules.contracts import LocaleContent

# Template TitleMaxChars: the title a shop shows in a listing (a unit test keeps them equal).
DEFAULT_TITLE_MAX_CHARS = 80
DESCRIPTION_MIN_CHARS = 80
DESCRIPTION_MAX_CHARS = 2000
BULLETS_MIN, BULLETS_MAX = 3, 5
BULLET_MAX_CHARS = 120
KEYWORDS_MIN, KEYWORDS_MAX = 5, 15
KEYWORD_MAX_CHARS = 60
META_DESCRIPTION_MAX_CHARS = 160

_MARKUP = re.compile(r"</?\s*[a-z_]+\s*>|system prompt|\battributes\s*>|\bas an ai\b|```|[{}]", re.IGNORECASE)
# Spellings the stem rule below cannot derive.
_OTHER_PHRASES = {"tshirts": ("t shirt", "tee"), "three quarter sleeves": ("3 4 sleeves",)}
# One-word values that are everyday words ("a regular wash", "other colours"): the copy claims them
# only next to the attribute's name ("regular ankle height"). So is a one-word value that is also a
# word of another attribute's value in the same category ("Solid" pattern, "Solid" print type).
_EVERYDAY_VALUES = frozenset(
    {
        "regular",
        "other",
        "none",
        "normal",
        "standard",
        "basic",
        "classic",
        "everyday",
        "patterned",
        "washed",
        "skin",
        "multi",
    }
)
_SUFFIXES = "(?:s|es|e|ed|d|ing)?"


class Rule(StrEnum):
    SCHEMA = "schema"
    CUT_OFF = "cut_off"
    TITLE_LENGTH = "title_length"
    DESCRIPTION_LENGTH = "description_length"
    BULLET_COUNT = "bullet_count"
    BULLET_LENGTH = "bullet_length"
    KEYWORD_COUNT = "keyword_count"
    KEYWORD_LENGTH = "keyword_length"
    KEYWORD_DUPLICATE = "keyword_duplicate"
    META_DESCRIPTION_LENGTH = "meta_description_length"
    PROMPT_MARKUP = "prompt_markup"
    ATTRIBUTE_MISSING = "attribute_missing"
    ATTRIBUTE_CONTRADICTED = "attribute_contradicted"
    UNCERTAIN_ATTRIBUTE_CLAIMED = "uncertain_attribute_claimed"
    AVOIDED_WORD = "avoided_word"


@dataclass(frozen=True)
class Violation:
    rule: Rule
    detail: str

    def __str__(self) -> str:
        return f"{self.rule.value}: {self.detail}"


@dataclass(frozen=True)
class CopyRules:
    """What one locale's copy is checked against."""

    category: CategorySpec
    attributes: Mapping[str, str] = field(default_factory=dict)  # confident: to be expressed
    uncertain: Mapping[str, str] = field(default_factory=dict)  # below the review threshold: left out
    words_to_avoid: Sequence[str] = ()
    title_max_chars: int = DEFAULT_TITLE_MAX_CHARS
    default_locale: bool = True  # the claim rules read English words: the default locale only


def content_json_schema(title_max_chars: int) -> dict[str, Any]:
    """The reply's JSON schema for Converse structured output (and the tool fallback's input schema).

    Structured output honours types, required fields and ``additionalProperties: false``; length and
    count constraints are not enforced by it (Anthropic models reject them), so they are stated in
    the descriptions and enforced by the rules here.
    """

    def text(description: str) -> dict[str, Any]:
        return {"type": "string", "description": description}

    def texts(description: str) -> dict[str, Any]:
        return {"type": "array", "items": {"type": "string"}, "description": description}

    return {
        "type": "object",
        "properties": {
            "title": text(f"product title, at most {title_max_chars} characters"),
            "description": text(
                f"product description, {DESCRIPTION_MIN_CHARS} to {DESCRIPTION_MAX_CHARS} characters"
            ),
            "bullets": texts(
                f"{BULLETS_MIN} to {BULLETS_MAX} feature bullets, each at most {BULLET_MAX_CHARS} characters"
            ),
            "keywords": texts(f"{KEYWORDS_MIN} to {KEYWORDS_MAX} distinct search terms a shopper would type"),
            "meta_description": text(
                f"search result snippet, at most {META_DESCRIPTION_MAX_CHARS} characters"
            ),
        },
        "required": ["title", "description", "bullets", "keywords", "meta_description"],
        "additionalProperties": False,
    }


# --- Rules: (content, rules) -> violations ------------------------------------------------------


def title_length(content: LocaleContent, rules: CopyRules) -> list[Violation]:
    size = len(content.title.strip())
    if 0 < size <= rules.title_max_chars:
        return []
    return [
        Violation(Rule.TITLE_LENGTH, f"the title has {size} characters, 1 to {rules.title_max_chars} allowed")
    ]


def description_length(content: LocaleContent, rules: CopyRules) -> list[Violation]:
    size = len(content.description.strip())
    if DESCRIPTION_MIN_CHARS <= size <= DESCRIPTION_MAX_CHARS:
        return []
    return [
        Violation(
            Rule.DESCRIPTION_LENGTH,
            f"the description has {size} characters, "
            f"{DESCRIPTION_MIN_CHARS} to {DESCRIPTION_MAX_CHARS} allowed",
        )
    ]


def bullet_count(content: LocaleContent, rules: CopyRules) -> list[Violation]:
    if BULLETS_MIN <= len(content.bullets) <= BULLETS_MAX:
        return []
    return [
        Violation(
            Rule.BULLET_COUNT, f"{len(content.bullets)} bullets, {BULLETS_MIN} to {BULLETS_MAX} allowed"
        )
    ]


def bullet_length(content: LocaleContent, rules: CopyRules) -> list[Violation]:
    return [
        Violation(
            Rule.BULLET_LENGTH,
            f"bullet {number} has {len(bullet)} characters, 1 to {BULLET_MAX_CHARS} allowed",
        )
        for number, bullet in enumerate(content.bullets, 1)
        if not 0 < len(bullet.strip()) <= BULLET_MAX_CHARS
    ]


def keyword_count(content: LocaleContent, rules: CopyRules) -> list[Violation]:
    if KEYWORDS_MIN <= len(content.keywords) <= KEYWORDS_MAX:
        return []
    return [
        Violation(
            Rule.KEYWORD_COUNT, f"{len(content.keywords)} keywords, {KEYWORDS_MIN} to {KEYWORDS_MAX} allowed"
        )
    ]


def keyword_length(content: LocaleContent, rules: CopyRules) -> list[Violation]:
    return [
        Violation(Rule.KEYWORD_LENGTH, f"keyword {keyword!r} is not 1 to {KEYWORD_MAX_CHARS} characters")
        for keyword in content.keywords
        if not 0 < len(keyword.strip()) <= KEYWORD_MAX_CHARS
    ]


def keyword_duplicate(content: LocaleContent, rules: CopyRules) -> list[Violation]:
    seen: set[str] = set()
    repeated = []
    for keyword in content.keywords:
        key = normalise_token(keyword)
        if key in seen:
            repeated.append(keyword)
        seen.add(key)
    return [Violation(Rule.KEYWORD_DUPLICATE, f"keyword {keyword!r} is repeated") for keyword in repeated]


def meta_description_length(content: LocaleContent, rules: CopyRules) -> list[Violation]:
    size = len(content.meta_description.strip())
    if 0 < size <= META_DESCRIPTION_MAX_CHARS:
        return []
    return [
        Violation(
            Rule.META_DESCRIPTION_LENGTH,
            f"the meta description has {size} characters, 1 to {META_DESCRIPTION_MAX_CHARS} allowed",
        )
    ]


def prompt_markup(content: LocaleContent, rules: CopyRules) -> list[Violation]:
    found = []
    for name, text in _fields(content):
        match = _MARKUP.search(text)
        if match:
            found.append(Violation(Rule.PROMPT_MARKUP, f"the {name} contains {match.group(0)!r}"))
    return found


def attribute_missing(content: LocaleContent, rules: CopyRules) -> list[Violation]:
    if not rules.default_locale:
        return []
    text = _searchable(" ".join([content.title, content.description, *content.bullets]))
    return [
        Violation(
            Rule.ATTRIBUTE_MISSING, f"{name} {value!r} is not expressed in the title, description or bullets"
        )
        for name, value in rules.attributes.items()
        if not _spans(text, _phrases(rules.category, name, value))
    ]


def attribute_contradicted(content: LocaleContent, rules: CopyRules) -> list[Violation]:
    if not rules.default_locale:
        return []
    text = _unclaimed_text(content, rules)
    found = []
    for name, value in rules.attributes.items():
        for other in _other_values(rules.category, name, value):
            if _spans(text, _claims(rules.category, name, other)):
                found.append(
                    Violation(Rule.ATTRIBUTE_CONTRADICTED, f"{name} is {value!r} but the copy says {other!r}")
                )
    return found


def uncertain_attribute_claimed(content: LocaleContent, rules: CopyRules) -> list[Violation]:
    if not rules.default_locale:
        return []
    # A confident value may share its words with an uncertain attribute's ("No Sleeves" is a sleeve
    # length and a sleeve styling): saying the confident one is no claim of the other.
    text = _unclaimed_text(content, rules)
    found = []
    for name, value in rules.uncertain.items():
        for candidate in {value, *_other_values(rules.category, name, value)}:
            if _spans(text, _claims(rules.category, name, candidate)):
                found.append(
                    Violation(
                        Rule.UNCERTAIN_ATTRIBUTE_CLAIMED,
                        f"{name} is uncertain but the copy says {candidate!r}",
                    )
                )
    return found


def avoided_word(content: LocaleContent, rules: CopyRules) -> list[Violation]:
    text = " ".join(text for _, text in _fields(content))
    return [
        Violation(Rule.AVOIDED_WORD, f"the copy uses {word!r}, a word to avoid")
        for word in rules.words_to_avoid
        if uses_word(text, word)
    ]


def uses_word(text: str, word: str) -> bool:
    """True when ``text`` contains ``word`` (a word or phrase; case, hyphens and punctuation ignored)."""
    key = normalise_token(word)
    return bool(key) and re.search(rf"(?<!\w){re.escape(key)}(?!\w)", _searchable(text)) is not None


RULES: tuple[Callable[[LocaleContent, CopyRules], list[Violation]], ...] = (
    title_length,
    description_length,
    bullet_count,
    bullet_length,
    keyword_count,
    keyword_length,
    keyword_duplicate,
    meta_description_length,
    prompt_markup,
    attribute_missing,
    attribute_contradicted,
    uncertain_attribute_claimed,
    avoided_word,
)


def violations(content: LocaleContent, rules: CopyRules) -> list[Violation]:
    return [violation for rule in RULES for violation in rule(content, rules)]


def parse_content(reply: str | Mapping[str, Any]) -> LocaleContent | Violation:
    """The reply as LocaleContent (JSON text, or a tool call's input), or the schema violation."""
    try:
        data = json.loads(reply) if isinstance(reply, str) else reply
        return LocaleContent.model_validate(data)
    except json.JSONDecodeError as error:
        return Violation(Rule.SCHEMA, f"the reply is not JSON ({error.msg})")
    except ValidationError as error:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'reply'}: {e['msg']}" for e in error.errors())
        return Violation(Rule.SCHEMA, problems[:300])


def check_reply(
    reply: str | Mapping[str, Any], stop_reason: str, rules: CopyRules
) -> tuple[LocaleContent | None, list[Violation]]:
    """(content, violations); content is None when the reply does not fit the schema."""
    if stop_reason == "max_tokens":
        return None, [Violation(Rule.CUT_OFF, "the reply was cut off at the token limit")]
    parsed = parse_content(reply)
    if isinstance(parsed, Violation):
        return None, [parsed]
    return parsed, violations(parsed, rules)


# --- Matching attribute values in text ------------------------------------------------------------


def _fields(content: LocaleContent) -> list[tuple[str, str]]:
    return [
        ("title", content.title),
        ("description", content.description),
        *((f"bullet {n}", bullet) for n, bullet in enumerate(content.bullets, 1)),
        *((f"keyword {n}", keyword) for n, keyword in enumerate(content.keywords, 1)),
        ("meta description", content.meta_description),
    ]


def _unclaimed_text(content: LocaleContent, rules: CopyRules) -> str:
    """Every field's text with what the copy rightly says (the given values' phrases) blanked out,
    so that "t-shirt" does not count as "shirt"."""
    text = _searchable(" ".join(text for _, text in _fields(content)))
    for name, value in rules.attributes.items():
        for start, end in _spans(text, _phrases(rules.category, name, value)):
            text = text[:start] + " " * (end - start) + text[end:]
    return text


def _searchable(text: str) -> str:
    # One space between words, so spans stay comparable across the blanking above.
    return f" {normalise_token(text)} "


def _phrases(category: CategorySpec, attribute: str, value: str) -> list[str]:
    """How the copy may say ``value``: the value, its catalogue aliases and known other spellings."""
    phrases = [value]
    try:
        spec = category.attribute(attribute)
        phrases += [alias for alias, canonical in spec.aliases.items() if canonical == value]
    except KeyError:
        pass
    phrases += _OTHER_PHRASES.get(normalise_token(value), ())
    return phrases


def _claims(category: CategorySpec, attribute: str, value: str) -> list[str]:
    """The phrases that claim ``value``: ``_phrases``, except that an ambiguous one-word value
    (``_EVERYDAY_VALUES``, or a word of another attribute's value) counts only beside the attribute."""
    key = normalise_token(value)
    if " " in key:
        return _phrases(category, attribute, value)
    elsewhere = {
        word
        for spec in category.attributes
        if normalise_token(spec.name) != normalise_token(attribute)
        for other in spec.values
        for word in normalise_token(other).split()
    }
    if key not in _EVERYDAY_VALUES and key not in elsewhere:
        return _phrases(category, attribute, value)
    name = normalise_token(attribute)
    return [f"{value} {name}", f"{name} {value}", f"{name} is {value}"]


def _other_values(category: CategorySpec, attribute: str, value: str) -> list[str]:
    try:
        spec = category.attribute(attribute)
    except KeyError:
        return []
    canonical = spec.canonical(value)
    return [
        other
        for other in spec.values
        if other != canonical and normalise_token(other) != normalise_token(value)
    ]


@lru_cache(maxsize=1024)
def _pattern(phrase: str) -> re.Pattern[str] | None:
    tokens = normalise_token(phrase).split()
    if not tokens:
        return None
    return re.compile(r"(?<!\w)" + r"\s+".join(_stem(token) + _SUFFIXES for token in tokens) + r"(?!\w)")


def _stem(token: str) -> str:
    """A word's stem, so "checked" matches "check" and "sleeves" matches "short-sleeved"."""
    if len(token) > 5 and token.endswith("ed"):
        token = token[:-2]
    elif len(token) > 3 and token.endswith("s"):
        token = token[:-1]
    return re.escape(token)


def _spans(text: str, phrases: Sequence[str]) -> list[tuple[int, int]]:
    spans = []
    for phrase in phrases:
        pattern = _pattern(phrase)
        if pattern is not None:
            spans += [match.span() for match in pattern.finditer(text)]
    return spans
