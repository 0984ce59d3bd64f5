"""The offline copywriter's full copy: title, description, bullets, keywords, meta description per locale.

English reuses the offline description (``description.write_description``); Spanish, German and
French are built from the phrasebooks (``phrasebooks``), whose phrasings were chosen so no word has
to agree with the product's grammatical gender ("de color azul", "in Blau", "coloris bleu"). A value
outside the phrasebook (an out-of-vocabulary answer such as "Linen") is used as said. Everything is cut to
the pipeline's limits (``describer_rules.content_rules``), which the copy always meets.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from describer.local.offline_writer.description import write_description
from describer.local.offline_writer.phrasebooks import PHRASEBOOKS, Phrasebook
from describer_rules.catalogue import normalise_token
from describer_rules.content_rules import (
    BULLET_MAX_CHARS,
    BULLETS_MAX,
    DEFAULT_TITLE_MAX_CHARS,
    KEYWORD_MAX_CHARS,
    KEYWORDS_MAX,
    META_DESCRIPTION_MAX_CHARS,
    uses_word,
)
from describer_rules.locales import DEFAULT_LOCALE

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
# Attribute kinds, in the order the copy names them; an attribute's kind is its normalised name.
_KINDS = {
    "colour": "colour",
    "color": "colour",
    "base colour": "colour",
    "pattern": "pattern",
    "sleeve length": "sleeves",
    "sleeves": "sleeves",
    "collar": "neck",
    "neck": "neck",
    "fit": "fit",
    "fabric": "fabric",
}
_ENGLISH_BULLETS = {
    "colour": "Colour: {value}",
    "pattern": "{value} pattern that is easy to style",
    "sleeves": "{value}",
    "neck": "{value} for a clean finish",
    "fit": "{value} that moves with you",
    "fabric": "{value} fabric, easy to care for",
}


def _kind(attribute: str) -> str | None:
    return _KINDS.get(normalise_token(attribute))


def _by_kind(attributes: Mapping[str, str]) -> dict[str, str]:
    found: dict[str, str] = {}
    for name, value in attributes.items():
        kind = _kind(name)
        if kind is not None and kind not in found:
            found[kind] = value
    return found


def _cap(text: str) -> str:
    return text[:1].upper() + text[1:]


def _fit_title(candidates: list[str], limit: int) -> str:
    """The first candidate (most complete first) that fits in ``limit`` characters."""
    for candidate in candidates:
        title = " ".join(candidate.split())
        if title and len(title) <= limit:
            return title
    return candidates[-1][:limit].rsplit(" ", 1)[0]


def _unique(items: list[str], limit: int, max_chars: int) -> list[str]:
    seen: set[str] = set()
    kept = []
    for item in items:
        item = " ".join(item.split())[:max_chars].strip()
        key = normalise_token(item)
        if key and key not in seen:
            seen.add(key)
            kept.append(item)
    return kept[:limit]


def _english(
    attributes: Mapping[str, str], noun: str, title_max_chars: int, words_to_avoid: Sequence[str]
) -> dict[str, Any]:
    kinds = _by_kind(attributes)
    head = [kinds[k].title() for k in ("colour", "pattern", "fit", "fabric") if k in kinds]
    details = [kinds[k].title() for k in ("sleeves", "neck") if k in kinds]
    named = " ".join([*head, noun.title()])
    title = _fit_title(
        [
            f"{named} with {' and '.join(details)}" if details else named,
            named,
            " ".join([*head[:2], noun.title()]),
            " ".join([*head[:1], noun.title()]),
            noun.title(),
        ],
        title_max_chars,
    )
    bullets = [_ENGLISH_BULLETS[kind].format(value=_cap(value.lower())) for kind, value in kinds.items()]
    bullets += ["Easy to pair with what you own", "Made for everyday wear", "Easy to care for"]
    keywords = [noun, *(f"{value.lower()} {noun}" for value in kinds.values())]
    keywords += [f"everyday {noun}", f"casual {noun}", "casual wear", "wardrobe basics"]
    return {
        "title": title,
        "description": write_description(attributes, noun, words_to_avoid),
        "bullets": bullets,
        "keywords": keywords,
        "meta_description": _meta(title, "Comfortable, versatile and easy to pair."),
    }


def _translated(
    book: Phrasebook, attributes: Mapping[str, str], noun: str, title_max_chars: int
) -> dict[str, Any]:
    slots = {
        kind: book.values[kind].get(normalise_token(value), value.lower())
        for kind, value in _by_kind(attributes).items()
    }
    details = [slots[k] for k in ("sleeves", "neck") if k in slots]
    if len(details) == 2 and details[0].split()[0] == details[1].split()[0] != "à":
        details[1] = details[1].split(" ", 1)[1]  # "con manga larga y cuello italiano"
    slots["details"] = book.detail_join.join(details)
    slots["noun"] = book.nouns.get(noun, book.nouns["product"])
    sentences = [_fill(frame, slots) for frame in book.sentences]
    description = " ".join(" ".join(s.split()).replace(" ,", ",").replace(" .", ".") for s in sentences if s)
    title = _fit_title(
        [_fill(book.title, slots), _fill(book.title, {**slots, "details": ""}), slots["noun"]],
        title_max_chars,
    )
    bullets = [_cap(book.bullets[kind].format(value=slots[kind])) for kind in book.bullets if kind in slots]
    keywords = [_fill(frame, slots).lower() for frame in book.keyword_frames]
    return {
        "title": title,
        "description": description,
        "bullets": [*bullets, *book.extra_bullets],
        "keywords": [*keywords, *book.extra_keywords],
        "meta_description": _meta(title, book.meta_closing),
    }


def _fill(frame: str, slots: Mapping[str, str]) -> str:
    """The frame with its slots filled, or "" when it names a slot the product does not have."""
    try:
        return " ".join(frame.format_map(dict(slots)).split())
    except KeyError:
        return ""


def _meta(title: str, closing: str) -> str:
    meta = f"{title}. {closing}"
    return meta if len(meta) <= META_DESCRIPTION_MAX_CHARS else title[:META_DESCRIPTION_MAX_CHARS]


def write_copy(
    attributes: Mapping[str, str],
    noun: str = "product",
    locale: str = DEFAULT_LOCALE,
    title_max_chars: int = DEFAULT_TITLE_MAX_CHARS,
    words_to_avoid: Sequence[str] = (),
) -> dict[str, Any]:
    """The product's copy in ``locale`` (a language other than es, de, fr gets English).

    Sentences, bullets and keywords using a word to avoid (the style guide's) are left out.
    """
    book = PHRASEBOOKS.get(locale.split("-", 1)[0])
    if book is None:
        copy = _english(attributes, noun, title_max_chars, words_to_avoid)
    else:
        copy = _translated(book, attributes, noun, title_max_chars)

    def allowed(text: str) -> bool:
        return not any(uses_word(text, word) for word in words_to_avoid)

    copy["description"] = " ".join(filter(allowed, _SENTENCE_END.split(copy["description"])))
    if not allowed(copy["meta_description"]):
        copy["meta_description"] = copy["title"]
    # The fixed extras at the end guarantee the minimum counts; the cut keeps the maximum.
    copy["bullets"] = _unique(list(filter(allowed, copy["bullets"])), BULLETS_MAX, BULLET_MAX_CHARS)
    copy["keywords"] = _unique(list(filter(allowed, copy["keywords"])), KEYWORDS_MAX, KEYWORD_MAX_CHARS)
    return copy
