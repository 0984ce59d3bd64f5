"""An offline copywriter: a product's copy composed from the attributes, no model call.

The local model host answers Bedrock ``Converse`` with it when no language model is configured. It
reads the attributes out of the request the pipeline sends ("Name: Value" lines or a JSON object),
and writes a few fluent sentences that use every attribute value word for word. The phrasing is
chosen by a seed derived from the attributes, so the same product always reads the same and
different products read differently. ``write_copy`` adds the title, bullets, keywords and meta
description, in English, Spanish, German or French (``product_copy``), from fixed phrasings:
deterministic and grammatical, honest about being no model (``OFFLINE_MODEL_ID``).
"""

from __future__ import annotations

import hashlib
import json
import random
import re
from collections.abc import Mapping, Sequence

from describer_rules.catalogue import load_catalogue, normalise_token
from describer_rules.content_rules import uses_word

OFFLINE_MODEL_ID = "offline-describer-v1"

_LINE = re.compile(r"^\s*(?:[-*•]\s*)?([A-Za-z][A-Za-z /&-]{1,40}?)\s*[:=]\s*(.+?)\s*$")
_JSON_OBJECT = re.compile(r"\{[^{}]*\}")

# Lines of a prompt that look like "Name: Value" but are instructions, not attributes.
_NOT_ATTRIBUTES = {"category", "product", "product id", "note", "notes", "task", "instructions", "format"}

_FABRIC_FEEL = {
    "cotton": [
        "The {value} fabric breathes easily and gets softer with every wash.",
        "Made from {value}, it feels light against the skin on long, warm days.",
    ],
    "polyester": [
        "The {value} fabric keeps its shape, resists creases and dries quickly.",
        "Cut from {value}, it travels well and comes out of the wash ready to wear.",
    ],
    "synthetic": [
        "The {value} fabric is light, quick-drying and easy to care for.",
        "Its {value} fabric moves with you and holds its colour wash after wash.",
    ],
    "blended": [
        "The {value} fabric pairs natural softness with lasting shape.",
        "A {value} fabric gives it a soft hand and a drape that stays neat all day.",
    ],
}
_GENERIC_FABRIC = [
    "The {value} fabric gives it a comfortable, easy feel.",
    "It is made from {value}, chosen for comfort through the day.",
]
_PATTERN_NOTE = {
    "printed": ["The {value} design adds personality without trying too hard."],
    "solid": ["A {value} finish keeps it clean and easy to pair with anything in your wardrobe."],
    "striped": ["{value} detailing gives it a crisp, classic rhythm."],
    "checked": ["The {value} pattern brings a relaxed, timeless character."],
}
_FIT_NOTE = [
    "The {value} sits comfortably from morning to evening.",
    "Its {value} is easy to move in and looks sharp tucked in or worn loose.",
    "A {value} that flatters without restricting.",
]
_CLOSINGS = [
    "Wear it to the office, out with friends or on a weekend away.",
    "An easy choice for everyday wear that still looks considered.",
    "Pair it with chinos or denim for a look that works almost anywhere.",
    "A dependable piece you will reach for again and again.",
]
_OPENINGS = [
    "Meet your new favourite {noun}: {subject}.",
    "This {subject_no_article} is made for days when comfort and style both matter.",
    "Discover {subject}, an everyday essential with a polished edge.",
]


def extract_attributes(text: str) -> dict[str, str]:
    """Attribute name -> value, read from a prompt: a JSON object or "Name: Value" lines.

    A JSON object, even an empty one (every attribute held back as uncertain), is the whole answer:
    the other lines of the prompt are not read. A value that itself reads "Name: Value" is left out.
    """
    objects = []
    for candidate in _JSON_OBJECT.findall(text):
        try:
            decoded = json.loads(candidate)
        except json.JSONDecodeError:
            continue
        if isinstance(decoded, Mapping):
            objects.append(decoded)
    if objects:
        pairs = [(str(k), str(v)) for o in objects for k, v in o.items() if isinstance(v, str | int | float)]
    else:
        pairs = [
            (match.group(1).strip(), match.group(2).strip().strip("."))
            for match in map(_LINE.match, text.splitlines())
            if match and normalise_token(match.group(1)) not in _NOT_ATTRIBUTES
        ]
    return {name: value for name, value in pairs if value and not _names_an_attribute(value)}


def _names_an_attribute(value: str) -> bool:
    """A value such as "Length: Knee Length" (a model's generated answer echoing another question) is
    no value of its own attribute: repeating it would state an attribute the writer was not given,
    perhaps one the pipeline held back as uncertain."""
    return _LINE.match(value) is not None


def product_noun(text: str) -> str:
    """How to name the product: the catalogue noun of the category the prompt mentions."""
    key = normalise_token(" ".join(text.split()))
    best = "product"
    for category in load_catalogue().categories:
        for name in (category.name, category.noun):
            mentioned = re.search(rf"\b{re.escape(normalise_token(name))}\b", key)
            # The most specific noun wins ("t-shirt" over "shirt").
            if mentioned and (best == "product" or len(category.noun) > len(best)):
                best = category.noun
    return best


def _find(attributes: Mapping[str, str], *names: str) -> tuple[str, str] | None:
    for name, value in attributes.items():
        if normalise_token(name) in names:
            return name, value
    return None


def _article(phrase: str) -> str:
    return ("an " if phrase[:1].lower() in "aeiou" else "a ") + phrase


def _sentence_case(sentence: str) -> str:
    return sentence[:1].upper() + sentence[1:]


def write_description(
    attributes: Mapping[str, str], noun: str = "product", words_to_avoid: Sequence[str] = ()
) -> str:
    """A short product description that uses every attribute value word for word.

    Phrasings that use a word to avoid (the style guide's) are not chosen while another one is left.
    """
    seed = hashlib.sha256(json.dumps(sorted(attributes.items())).encode()).hexdigest()
    rng = random.Random(seed)

    def choose(options: Sequence[str]) -> str:
        allowed = [o for o in options if not any(uses_word(o, word) for word in words_to_avoid)]
        return rng.choice(allowed or list(options))

    used: set[str] = set()

    def take(*names: str) -> str | None:
        item = _find(attributes, *names)
        if item is None:
            return None
        used.add(item[0])
        return item[1]

    colour = take("colour", "color", "base colour")
    pattern = take("pattern")
    sleeves = take("sleeve length", "sleeves")
    neckline = take("collar", "neck", "collar neck")
    fabric = take("fabric")
    fit = take("fit")

    subject_no_article = f"{colour.lower()} {noun}" if colour else noun
    details = [d.lower() for d in (sleeves, neckline) if d]
    if details:
        subject_no_article += " with " + " and ".join(
            d if d.endswith("s") or d.endswith("sleeveless") else _article(d) for d in details
        )
    subject = _article(subject_no_article)
    sentences = [choose(_OPENINGS).format(noun=noun, subject=subject, subject_no_article=subject_no_article)]
    if pattern:
        note = _PATTERN_NOTE.get(normalise_token(pattern), ["The {value} pattern gives it character."])
        sentences.append(_sentence_case(choose(note).format(value=pattern.lower())))
    if fabric:
        feel = _FABRIC_FEEL.get(normalise_token(fabric), _GENERIC_FABRIC)
        sentences.append(choose(feel).format(value=fabric.lower()))
    if fit:
        sentences.append(choose(_FIT_NOTE).format(value=fit.lower()))
    # The values alone: an attribute's name can read as another value ("print or pattern type").
    rest = [value.lower() for name, value in attributes.items() if name not in used]
    if rest:
        sentences.append("Details: " + ", ".join(rest) + ".")
    sentences.append(choose(_CLOSINGS))
    return " ".join(sentences)
