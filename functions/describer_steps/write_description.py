"""WriteDescription: Bedrock Converse writes each locale's copy as structured output, validated, retried once.

One Converse call per locale, the locales in parallel (see the README for the measured choice): the
reply is JSON by Converse's native structured output (``outputConfig.textFormat``), or by a forced
tool call for models listed in ``tool_use_models``. Each reply is checked by
``describer_rules.content_rules``; a locale whose reply breaks a rule is asked once more with the
rules it broke, and a second failure fails the product with DESCRIPTION_INVALID naming the rule.
Attributes below the review threshold are not sent to the model and must not appear in the copy.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from describer_aws.aws_errors import client_error_code, is_throttling, is_transient
from describer_rules.catalogue import CategorySpec
from describer_rules.content_rules import CopyRules, check_reply, content_json_schema
from describer_rules.contracts import LocaleContent, TokenUsage
from describer_rules.errors import (
    DescriptionFailed,
    DescriptionInvalid,
    DescriptionThrottled,
    DescriptionUnavailable,
)
from describer_rules.prompts import system_prompt, user_message
from describer_rules.style_guide import StyleGuide
from describer_steps.settings import DescriptionSettings
from describer_steps.states import DescriptionResult

if TYPE_CHECKING:  # the stubs are a dev dependency; the Lambdas never import them
    from mypy_boto3_bedrock_runtime import BedrockRuntimeClient


MAX_ATTEMPTS = 2
COPY_FORMAT_NAME = "product_copy"
_UNAVAILABLE_CODES = frozenset(
    {
        "ServiceUnavailableException",
        "InternalServerException",
        "ModelNotReadyException",
        "ModelTimeoutException",
    }
)
# Cross-Region inference profile prefixes in front of a model id ("us.anthropic...").
_PROFILE_PREFIXES = ("us.", "eu.", "apac.", "us-gov.", "ca.", "jp.", "au.", "global.")


def uses_tool_fallback(model_id: str, tool_use_models: list[str]) -> bool:
    """True for a model without native structured output: it is asked through a forced tool call."""
    bare = next((model_id[len(p) :] for p in _PROFILE_PREFIXES if model_id.startswith(p)), model_id)
    return any(bare.startswith(entry) or model_id.startswith(entry) for entry in tool_use_models)


def split_by_confidence(
    attributes: Mapping[str, str], confidence: Mapping[str, float], threshold: float
) -> tuple[dict[str, str], dict[str, str]]:
    """(confident, uncertain) attributes; one without a confidence counts as confident."""
    confident = {name: value for name, value in attributes.items() if confidence.get(name, 1.0) >= threshold}
    uncertain = {name: value for name, value in attributes.items() if name not in confident}
    return confident, uncertain


@dataclass(frozen=True)
class _Reply:
    payload: str | dict[str, Any]  # JSON text, or the forced tool call's input
    stop_reason: str
    input_tokens: int
    output_tokens: int

    @classmethod
    def parse(cls, response: Mapping[str, Any]) -> _Reply:
        blocks = response.get("output", {}).get("message", {}).get("content", [])
        tool_inputs = [block["toolUse"].get("input") for block in blocks if "toolUse" in block]
        payload: str | dict[str, Any]
        if tool_inputs and isinstance(tool_inputs[0], dict):
            payload = tool_inputs[0]
        else:
            payload = "".join(block["text"] for block in blocks if "text" in block).strip()
        usage = response.get("usage", {})
        return cls(
            payload=payload,
            stop_reason=str(response.get("stopReason", "")),
            input_tokens=int(usage.get("inputTokens", 0)),
            output_tokens=int(usage.get("outputTokens", 0)),
        )


@dataclass(frozen=True)
class _LocaleCopy:
    content: LocaleContent
    tokens: TokenUsage
    attempts: int


class CopyWriter:
    """Writes and checks one product's copy in every configured locale."""

    def __init__(
        self,
        category: CategorySpec,
        attributes: Mapping[str, str],
        confidence: Mapping[str, float],
        bedrock_client: Any,  # a BedrockRuntimeClient; None where only the rules are needed
        settings: DescriptionSettings,
        style: StyleGuide | None = None,
    ) -> None:
        self.category = category
        self.attributes, self.uncertain = split_by_confidence(
            attributes, confidence, settings.review_threshold
        )
        self.client = bedrock_client
        self.settings = settings
        self.style = style
        self.system = system_prompt(category, settings.title_max_chars, style)
        self.schema = content_json_schema(settings.title_max_chars)

    def write(self) -> DescriptionResult:
        started = time.monotonic()
        locales = self.settings.locales
        workers = min(len(locales), self.settings.locale_calls_in_parallel)
        with ThreadPoolExecutor(max_workers=workers) as pool:
            written = dict(zip(locales, pool.map(self.write_locale, locales), strict=True))
        default = written[self.settings.default_locale]
        return DescriptionResult(
            text=default.content.description,
            model_id=self.settings.bedrock_model_id,
            input_tokens=sum(copy.tokens.input for copy in written.values()),
            output_tokens=sum(copy.tokens.output for copy in written.values()),
            attempts=max(copy.attempts for copy in written.values()),
            description_ms=int((time.monotonic() - started) * 1000),
            content={locale: copy.content for locale, copy in written.items()},
            token_usage={locale: copy.tokens for locale, copy in written.items()},
        )

    def rules(self, locale: str) -> CopyRules:
        return CopyRules(
            category=self.category,
            attributes=self.attributes,
            uncertain=self.uncertain,
            words_to_avoid=self.style.words_to_avoid if self.style else (),
            title_max_chars=self.settings.title_max_chars,
            default_locale=locale == self.settings.default_locale,
        )

    def write_locale(self, locale: str, problems: Sequence[str] = ()) -> _LocaleCopy:
        """One locale's copy; ``problems``: a first reply already broke these rules (a batch job's),
        so this is the retry that names them, and the last attempt."""
        tokens = TokenUsage()
        rules = self.rules(locale)
        problems = list(problems)
        for attempt in range(1 + bool(problems), MAX_ATTEMPTS + 1):
            reply = self._converse(user_message(self.category, self.attributes, locale, problems))
            tokens = TokenUsage(
                input=tokens.input + reply.input_tokens, output=tokens.output + reply.output_tokens
            )
            content, broken = check_reply(reply.payload, reply.stop_reason, rules)
            if content is not None and not broken:
                return _LocaleCopy(content, tokens, attempt)
            problems = [str(violation) for violation in broken]
        raise DescriptionInvalid(
            f"{locale}: rule {broken[0].rule.value} broken after {MAX_ATTEMPTS} attempts "
            f"({'; '.join(problems)})"
        )

    def request(self, message: str) -> dict[str, Any]:
        """The Converse request for one user turn: structured output, natively or by a forced tool."""
        request: dict[str, Any] = {
            "modelId": self.settings.bedrock_model_id,
            "system": [{"text": self.system}],
            "messages": [{"role": "user", "content": [{"text": message}]}],
            "inferenceConfig": {
                "temperature": self.settings.description_temperature,
                "maxTokens": self.settings.description_max_tokens,
            },
        }
        description = "The product's copy in the requested locale"
        if uses_tool_fallback(self.settings.bedrock_model_id, self.settings.tool_use_models):
            request["toolConfig"] = {
                "tools": [
                    {
                        "toolSpec": {
                            "name": COPY_FORMAT_NAME,
                            "description": description,
                            "inputSchema": {"json": self.schema},
                        }
                    }
                ],
                "toolChoice": {"tool": {"name": COPY_FORMAT_NAME}},
            }
        else:
            request["outputConfig"] = {
                "textFormat": {
                    "type": "json_schema",
                    "structure": {
                        "jsonSchema": {
                            "schema": json.dumps(self.schema),
                            "name": COPY_FORMAT_NAME,
                            "description": description,
                        }
                    },
                }
            }
        return request

    def _converse(self, message: str) -> _Reply:
        try:
            response = self.client.converse(**self.request(message))
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
        return _Reply.parse(response)


def write_description(
    category: CategorySpec,
    attributes: Mapping[str, str],
    bedrock_client: BedrockRuntimeClient,
    settings: DescriptionSettings,
    confidence: Mapping[str, float] | None = None,
    style: StyleGuide | None = None,
) -> DescriptionResult:
    return CopyWriter(category, attributes, confidence or {}, bedrock_client, settings, style).write()
