"""The brand's voice: an optional style guide read from S3 (``StyleGuideUri``), validated, cached.

A configured guide that cannot be read or does not validate fails the product with
STYLE_GUIDE_INVALID: copy in the wrong voice must never ship silently. Read once per Lambda
container (the cache below); a new guide is picked up by new containers (redeploy to force it).
"""

from __future__ import annotations

import json
import re
from functools import lru_cache
from typing import TYPE_CHECKING, Annotated

from botocore.exceptions import BotoCoreError, ClientError
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from describer_core.errors import StyleGuideInvalid, TransientError, client_error_code, is_transient

if TYPE_CHECKING:  # the stubs are a dev dependency; the Lambdas never import them
    from mypy_boto3_s3 import S3Client

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


def load_style_guide(uri: str, s3_client: S3Client) -> StyleGuide | None:
    """The guide at ``uri`` (None when no guide is configured), read once per container."""
    if not uri:
        return None
    return _cached_guide(uri, s3_client)


@lru_cache(maxsize=4)
def _cached_guide(uri: str, s3_client: S3Client) -> StyleGuide:
    bucket, key = split_s3_uri(uri)
    try:
        response = s3_client.get_object(Bucket=bucket, Key=key)
        body = response["Body"].read(MAX_STYLE_GUIDE_BYTES + 1)
    except ClientError as error:
        if is_transient(error):
            raise TransientError(f"S3 GetObject of the style guide: {client_error_code(error)}") from error
        raise StyleGuideInvalid(f"cannot read {uri}: {client_error_code(error)}") from error
    except BotoCoreError as error:
        raise TransientError(f"{type(error).__name__} reading the style guide") from error
    if len(body) > MAX_STYLE_GUIDE_BYTES:
        raise StyleGuideInvalid(f"{uri} is larger than {MAX_STYLE_GUIDE_BYTES} bytes")
    try:
        return StyleGuide.model_validate(json.loads(body))
    except (ValueError, ValidationError) as error:
        first = str(error).splitlines()[:3]
        raise StyleGuideInvalid(f"{uri} is not a valid style guide: {' '.join(first)}") from error
