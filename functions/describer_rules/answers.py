"""Answer parsing: the one rule that turns a model's answer into (attribute, catalogue value).

The model is trained to answer "Sleeve Length: Long Sleeves"; the reference endpoint returned
{"Sleeve Length": "Long Sleeves"}. Both, and a bare value, are accepted. A value outside the
vocabulary is kept as the model said it and flagged ``known=False``, never dropped.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

from pydantic import BaseModel

from describer_rules.catalogue import AttributeSpec, normalise_token

# Answers are "Attribute: Value", a handful of tokens; the budget bounds a confused model's cost. One
# budget for training's validation, evaluation and the endpoint, so evaluation measures what is served.
MAX_ANSWER_TOKENS = 16


class ParsedAnswer(BaseModel):
    attribute: str
    value: str
    raw: str
    known: bool


def format_answer(attribute: str, value: str) -> str:
    """The training target and the reference wire form: 'Sleeve Length: Long Sleeves'."""
    return f"{attribute}: {value}"


def _value_text(raw: str | Mapping[str, object], attribute: str) -> str:
    if isinstance(raw, Mapping):
        for name, value in raw.items():
            if normalise_token(str(name)) == normalise_token(attribute):
                return str(value)
        return str(next(iter(raw.values()), "")) if len(raw) == 1 else ""
    text = raw.strip()
    if text.startswith("{"):
        try:
            decoded = json.loads(text)
        except json.JSONDecodeError:
            decoded = None
        if isinstance(decoded, Mapping):
            return _value_text(decoded, attribute)
    name, separator, value = text.partition(":")
    if separator and normalise_token(name) == normalise_token(attribute):
        return value
    return text


def parse_answer(raw: str | Mapping[str, object], attribute: AttributeSpec) -> ParsedAnswer:
    """Parse ``raw`` as an answer about ``attribute`` and normalise it to the vocabulary."""
    raw_text = raw if isinstance(raw, str) else json.dumps(dict(raw), ensure_ascii=False)
    value = " ".join(_value_text(raw, attribute.name).split()).strip(" .\"'")
    canonical = attribute.canonical(value) if value else None
    return ParsedAnswer(
        attribute=attribute.name,
        value=canonical if canonical is not None else value,
        raw=raw_text,
        known=canonical is not None,
    )
