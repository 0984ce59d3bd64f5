"""WriteDescription: Bedrock Converse writes the text, the reply is validated and retried once.

A reply is accepted when it is non-empty, within length bounds, was not cut off by the token
limit, and leaks no prompt markup. One invalid reply earns one more attempt that says what was
wrong; a second invalid reply fails the product with DESCRIPTION_INVALID.
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from describer_core.catalogue import CategorySpec
from describer_core.errors import (
    DescriptionFailed,
    DescriptionInvalid,
    DescriptionThrottled,
    DescriptionUnavailable,
    client_error_code,
    is_throttling,
    is_transient,
)
from describer_core.prompts import system_prompt, user_message
from describer_core.settings import DescriptionSettings
from describer_core.states import DescriptionResult

if TYPE_CHECKING:  # the stubs are a dev dependency; the Lambdas never import them
    from mypy_boto3_bedrock_runtime import BedrockRuntimeClient


MIN_DESCRIPTION_CHARS = 80
MAX_DESCRIPTION_CHARS = 2000
MAX_ATTEMPTS = 2
_LEAKS = re.compile(r"</?\s*[a-z_]+\s*>|system prompt|\battributes\s*>|as an ai\b", re.IGNORECASE)
_UNAVAILABLE_CODES = frozenset(
    {
        "ServiceUnavailableException",
        "InternalServerException",
        "ModelNotReadyException",
        "ModelTimeoutException",
    }
)


def rejection(text: str, stop_reason: str) -> str | None:
    """Why a reply is not a usable description, or None when it is."""
    if not text:
        return "the reply was empty"
    if stop_reason == "max_tokens":
        return "the reply was cut off at the token limit"
    if len(text) < MIN_DESCRIPTION_CHARS:
        return f"the reply was shorter than {MIN_DESCRIPTION_CHARS} characters"
    if len(text) > MAX_DESCRIPTION_CHARS:
        return f"the reply was longer than {MAX_DESCRIPTION_CHARS} characters"
    if _LEAKS.search(text):
        return "the reply contained prompt markup"
    return None


class _Reply:
    def __init__(self, response: Mapping[str, Any]) -> None:
        content = response.get("output", {}).get("message", {}).get("content", [])
        self.text = " ".join(block["text"] for block in content if "text" in block).strip()
        self.stop_reason = str(response.get("stopReason", ""))
        usage = response.get("usage", {})
        self.input_tokens = int(usage.get("inputTokens", 0))
        self.output_tokens = int(usage.get("outputTokens", 0))


def write_description(
    category: CategorySpec,
    attributes: dict[str, str],
    bedrock_client: BedrockRuntimeClient,
    settings: DescriptionSettings,
) -> DescriptionResult:
    started = time.monotonic()
    input_tokens = output_tokens = 0
    correction: str | None = None
    for attempt in range(1, MAX_ATTEMPTS + 1):
        reply = _converse(bedrock_client, settings, category, user_message(category, attributes, correction))
        input_tokens += reply.input_tokens
        output_tokens += reply.output_tokens
        correction = rejection(reply.text, reply.stop_reason)
        if correction is None:
            return DescriptionResult(
                text=reply.text,
                model_id=settings.bedrock_model_id,
                input_tokens=input_tokens,
                output_tokens=output_tokens,
                attempts=attempt,
                description_ms=int((time.monotonic() - started) * 1000),
            )
    raise DescriptionInvalid(f"{correction} (after {MAX_ATTEMPTS} attempts)")


def _converse(
    client: BedrockRuntimeClient, settings: DescriptionSettings, category: CategorySpec, message: str
) -> _Reply:
    try:
        response = client.converse(
            modelId=settings.bedrock_model_id,
            system=[{"text": system_prompt(category)}],
            messages=[{"role": "user", "content": [{"text": message}]}],
            inferenceConfig={
                "temperature": settings.description_temperature,
                "maxTokens": settings.description_max_tokens,
            },
        )
    except ClientError as error:
        code = client_error_code(error)
        if is_throttling(error):
            raise DescriptionThrottled(f"Bedrock {code}") from error
        if code in _UNAVAILABLE_CODES or is_transient(error):
            raise DescriptionUnavailable(f"Bedrock {code}") from error
        raise DescriptionFailed(
            f"Bedrock {code}: {error.response.get('Error', {}).get('Message', '')}"
        ) from error
    except BotoCoreError as error:
        raise DescriptionUnavailable(f"{type(error).__name__} calling Bedrock") from error
    return _Reply(response)
