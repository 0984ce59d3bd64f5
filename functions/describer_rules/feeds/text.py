"""Text that is safe in one cell of a TSV or CSV row, and cut to a channel's limit at a word boundary."""

from __future__ import annotations

import re
import unicodedata
from collections import Counter

# Bidirectional formatting characters (Trojan Source, CVE-2021-42574) and the byte order mark: a shop
# page or a spreadsheet would reorder or hide text around them. Removed, never shown.
INVISIBLE = frozenset("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\ufeff")
# Line and paragraph separators and control characters (tab, CR, LF, NEL, U+2028 ...): each ends a row
# or a cell for some reader, so each becomes a space.
_BREAKING_CATEGORIES = frozenset({"Cc", "Zl", "Zp"})
_SPACES = re.compile(r"\s+")
# What a cut leaves dangling at its end.
_TRAILING = " ,;:-\u2013\u2014/("


def clean(text: str) -> str:
    """One line of text: bidi controls removed, control characters and line breaks as single spaces."""
    kept = (
        " " if unicodedata.category(char) in _BREAKING_CATEGORIES else char
        for char in text
        if char not in INVISIBLE
    )
    return _SPACES.sub(" ", "".join(kept)).strip()


def cut(text: str, limit: int) -> tuple[str, bool]:
    """``text`` within ``limit`` characters, cut at the last word boundary; True when it was cut.

    A single word longer than the limit is cut inside the word (there is no boundary to keep).
    """
    if len(text) <= limit:
        return text, False
    head = text[: limit + 1]
    boundary = head.rfind(" ")
    shortened = head[:boundary] if boundary > 0 else text[:limit]
    return shortened.rstrip(_TRAILING) or text[:limit], True


class Cuts(Counter[str]):
    """How many values of each field were cut to its limit (or dropped past a count limit)."""

    def limited(self, field: str, text: str, limit: int) -> str:
        """``text`` cleaned and cut to ``limit``; counts the cut under ``field``."""
        value, was_cut = cut(clean(text), limit)
        if was_cut:
            self[field] += 1
        return value

    def first(self, field: str, values: list[str], most: int) -> list[str]:
        """The first ``most`` values; counts the drop under ``field``."""
        if len(values) > most:
            self[field] += 1
        return values[:most]
