"""The brand's voice: an optional style guide (``StyleGuideUri``), its shape and its validation.

A guide that does not validate fails the product with STYLE_GUIDE_INVALID: copy in the wrong voice
must never ship silently. Reading it from S3 is ``describer_aws.style_guides``.
"""

from __future__ import annotations

import json
import re
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from describer_rules.errors import StyleGuideInvalid

MAX_STYLE_GUIDE_BYTES = 64 * 1024
_S3_URI = re.compile(r"^s3://([a-z0-9][a-z0-9.-]{1,61}[a-z0-9])/(.+)$")


class StyleGuide(BaseModel):
    """``{"tone": "...", "words_to_avoid": [...], "examples": [...]}`` as stored in S3 (JSON)."""

    model_config = ConfigDict(extra="forbid")

    tone: str = Field(default="", max_length=500, description="How the brand sounds, in a sentence or two")
    words_to_avoid: list[str] = Field(default_factory=list, max_length=100)
    examples: list[Annotated[str, Field(min_length=1, max_length=2000)]] = Field(
        default_factory=list, max_length=5, description="Up to 5 texts in the brand's voice, as models"
    )


def split_s3_uri(uri: str) -> tuple[str, str]:
    match = _S3_URI.match(uri)
    if match is None:
        raise StyleGuideInvalid(f"{uri!r} is not an s3://bucket/key URI")
    return match.group(1), match.group(2)


def parse_style_guide(uri: str, body: bytes) -> StyleGuide:
    """The guide read from ``uri`` (at most MAX_STYLE_GUIDE_BYTES + 1 bytes of it), validated."""
    if len(body) > MAX_STYLE_GUIDE_BYTES:
        raise StyleGuideInvalid(f"{uri} is larger than {MAX_STYLE_GUIDE_BYTES} bytes")
    try:
        return StyleGuide.model_validate(json.loads(body))
    except (ValueError, ValidationError) as error:
        first = str(error).splitlines()[:3]
        raise StyleGuideInvalid(f"{uri} is not a valid style guide: {' '.join(first)}") from error
