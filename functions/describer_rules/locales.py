"""The shop's locales: BCP 47 tags (language-REGION) of the languages the copy is written in.

One list of languages serves three purposes: the template's ``Locales`` AllowedPattern (an unknown
tag is refused at deploy; a unit test keeps the template's pattern equal to ``LOCALES_PATTERN``),
the settings check at cold start, and the language name the prompt asks for.
"""

from __future__ import annotations

import re

DEFAULT_LOCALE = "en-US"

# ISO 639-1 language -> English name, for the languages shops commonly sell in.
LANGUAGES = {
    "ar": "Arabic",
    "cs": "Czech",
    "da": "Danish",
    "de": "German",
    "el": "Greek",
    "en": "English",
    "es": "Spanish",
    "fi": "Finnish",
    "fr": "French",
    "hu": "Hungarian",
    "it": "Italian",
    "ja": "Japanese",
    "ko": "Korean",
    "nb": "Norwegian Bokmål",
    "nl": "Dutch",
    "pl": "Polish",
    "pt": "Portuguese",
    "ro": "Romanian",
    "sv": "Swedish",
    "tr": "Turkish",
    "zh": "Chinese",
}
# language-REGION: an ISO 3166 region or a UN M.49 area ("es-419", Latin American Spanish).
_TAG = rf"(?:{'|'.join(sorted(LANGUAGES))})-(?:[A-Z]{{2}}|[0-9]{{3}})"
LOCALES_PATTERN = rf"^{_TAG}(?:,{_TAG})*$"
_TAG_RE = re.compile(rf"^{_TAG}$")


def parse_locales(text: str) -> list[str]:
    """``"en-US,es-ES"`` -> ``["en-US", "es-ES"]``; raises ValueError naming an unknown or repeated tag."""
    tags = [tag.strip() for tag in text.split(",") if tag.strip()]
    if not tags:
        raise ValueError("no locale given")
    for tag in tags:
        if not _TAG_RE.match(tag):
            raise ValueError(
                f"unknown locale {tag!r}: use language-REGION with a language of {sorted(LANGUAGES)}"
            )
    if len(set(tags)) != len(tags):
        raise ValueError(f"a locale is repeated in {text!r}")
    return tags


def language_name(tag: str) -> str:
    """``"es-ES"`` -> ``"Spanish (es-ES)"``: how the prompt names the language to write in."""
    return f"{LANGUAGES[tag.split('-', 1)[0]]} ({tag})"
