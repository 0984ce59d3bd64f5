"""Who writes the description behind the local Bedrock ``Converse`` route.

The offline writer (default) needs nothing; an OpenAI-compatible chat server (vLLM, llama.cpp,
Ollama, …) is used instead when ``DESCRIBER_OPENAI_BASE_URL`` and ``DESCRIBER_OPENAI_MODEL`` are set
(``DESCRIBER_OPENAI_API_KEY`` when the server wants one).
"""

from __future__ import annotations

import json
import math
import os
import re
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from describer.local.offline_writer.description import (
    OFFLINE_MODEL_ID,
    extract_attributes,
    product_noun,
    write_description,
)
from describer.local.offline_writer.product_copy import write_copy
from describer_rules.content_rules import DEFAULT_TITLE_MAX_CHARS
from describer_rules.locales import DEFAULT_LOCALE

_LOCALE = re.compile(r"<locale>([A-Za-z0-9-]+)</locale>")
_TITLE_LIMIT = re.compile(r"title of at most (\d+) characters")
_STYLE_GUIDE = re.compile(r"<style_guide>\s*(\{.*?\})\s*</style_guide>", re.DOTALL)


@dataclass(frozen=True)
class ConverseRequest:
    """The parts of a Converse request a text-only writer uses."""

    system: str
    user: str
    max_tokens: int | None
    temperature: float | None
    output_schema: dict[str, Any] | None = None  # structured output: outputConfig or a forced tool
    tool_name: str | None = None  # set when the schema came as a forced tool call

    @classmethod
    def from_wire(cls, body: Mapping[str, Any]) -> ConverseRequest:
        """Parse a Converse JSON body; raises ValueError when it has no user text."""
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            raise ValueError("messages must be a non-empty list")
        user_texts = [
            block["text"]
            for message in messages
            if isinstance(message, Mapping) and message.get("role") == "user"
            for block in message.get("content") or []
            if isinstance(block, Mapping) and isinstance(block.get("text"), str)
        ]
        if not user_texts:
            raise ValueError("no user text in messages")
        system = [b["text"] for b in body.get("system") or [] if isinstance(b, Mapping) and "text" in b]
        config = body.get("inferenceConfig") or {}
        schema, tool_name = _structured_output(body)
        return cls(
            system="\n".join(system),
            user="\n".join(user_texts),
            max_tokens=config.get("maxTokens"),
            temperature=config.get("temperature"),
            output_schema=schema,
            tool_name=tool_name,
        )

    @property
    def locale(self) -> str:
        match = _LOCALE.search(self.user)
        return match.group(1) if match else DEFAULT_LOCALE

    @property
    def words_to_avoid(self) -> list[str]:
        """The style guide's words to avoid, when the system prompt carries one."""
        match = _STYLE_GUIDE.search(self.system)
        try:
            guide = json.loads(match.group(1)) if match else {}
        except json.JSONDecodeError:
            return []
        return [str(word) for word in guide.get("words_to_avoid", [])]

    @property
    def title_max_chars(self) -> int:
        match = _TITLE_LIMIT.search(self.system)
        return int(match.group(1)) if match else DEFAULT_TITLE_MAX_CHARS


def _structured_output(body: Mapping[str, Any]) -> tuple[dict[str, Any] | None, str | None]:
    """(JSON schema, tool name) of a request for structured output; raises ValueError when malformed."""
    text_format = (body.get("outputConfig") or {}).get("textFormat")
    if text_format:
        try:
            return json.loads(text_format["structure"]["jsonSchema"]["schema"]), None
        except (KeyError, TypeError, json.JSONDecodeError) as error:
            raise ValueError(f"outputConfig.textFormat has no valid JSON schema: {error}") from error
    tool_config = body.get("toolConfig") or {}
    forced = ((tool_config.get("toolChoice") or {}).get("tool") or {}).get("name")
    for tool in tool_config.get("tools") or []:
        spec = tool.get("toolSpec") or {}
        if forced and spec.get("name") == forced:
            return (spec.get("inputSchema") or {}).get("json"), forced
    return None, None


@dataclass(frozen=True)
class ConverseReply:
    text: str
    stop_reason: str
    input_tokens: int
    output_tokens: int
    model_id: str


class ConverseError(Exception):
    """A Bedrock Runtime error: its modelled name, HTTP status and message."""

    def __init__(self, code: str, status: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.status = status
        self.message = message


class DescriptionBackend(Protocol):
    model_id: str

    def converse(self, request: ConverseRequest) -> ConverseReply: ...


def estimate_tokens(text: str) -> int:
    # About four characters per token for English text, the usual rule of thumb for Claude models.
    return max(1, math.ceil(len(text) / 4))


class OfflineWriter:
    """Composes the description from the attributes in the prompt (see ``offline_writer``)."""

    model_id = OFFLINE_MODEL_ID

    def converse(self, request: ConverseRequest) -> ConverseReply:
        # No attributes (the model read nothing) still gets a plain description, as a model would.
        attributes, noun = extract_attributes(request.user), product_noun(request.user)
        if request.output_schema is not None:
            copy = write_copy(
                attributes, noun, request.locale, request.title_max_chars, request.words_to_avoid
            )
            text = json.dumps(copy, ensure_ascii=False)
        else:
            text = write_description(attributes, noun)
        stop_reason = "end_turn"
        if request.max_tokens is not None and estimate_tokens(text) > request.max_tokens:
            text = text[: request.max_tokens * 4].rsplit(" ", 1)[0]
            stop_reason = "max_tokens"
        return ConverseReply(
            text=text,
            stop_reason=stop_reason,
            input_tokens=estimate_tokens(request.system + request.user),
            output_tokens=estimate_tokens(text),
            model_id=self.model_id,
        )


class OpenAICompatibleWriter:
    """Forwards the conversation to an OpenAI-compatible ``/chat/completions`` server."""

    def __init__(self, base_url: str, model: str, api_key: str | None = None, timeout_s: float = 60) -> None:
        self.base_url = base_url.rstrip("/")
        self.model_id = model
        self._api_key = api_key
        self._timeout_s = timeout_s

    def converse(self, request: ConverseRequest) -> ConverseReply:
        messages = [{"role": "user", "content": request.user}]
        if request.system:
            messages.insert(0, {"role": "system", "content": request.system})
        payload: dict[str, Any] = {"model": self.model_id, "messages": messages}
        if request.max_tokens is not None:
            payload["max_tokens"] = request.max_tokens
        if request.temperature is not None:
            payload["temperature"] = request.temperature
        if request.output_schema is not None:
            payload["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": request.tool_name or "output", "schema": request.output_schema},
            }
        headers = {"Content-Type": "application/json"}
        if self._api_key:
            headers["Authorization"] = f"Bearer {self._api_key}"
        http_request = urllib.request.Request(
            f"{self.base_url}/chat/completions", data=json.dumps(payload).encode(), headers=headers
        )
        try:
            with urllib.request.urlopen(http_request, timeout=self._timeout_s) as response:
                answer = json.loads(response.read())
        except urllib.error.HTTPError as error:
            if error.code == 429:
                raise ConverseError(
                    "ThrottlingException", 429, "the language model server is busy"
                ) from error
            if 400 <= error.code < 500:
                raise ConverseError(
                    "ValidationException",
                    400,
                    f"the language model server rejected the request ({error.code})",
                ) from error
            raise ConverseError(
                "ServiceUnavailableException", 503, f"the language model server failed ({error.code})"
            ) from error
        except (urllib.error.URLError, TimeoutError) as error:
            raise ConverseError(
                "ServiceUnavailableException", 503, f"cannot reach the language model server: {error}"
            ) from error
        choice = answer["choices"][0]
        text = choice["message"]["content"] or ""
        usage = answer.get("usage") or {}
        return ConverseReply(
            text=text,
            stop_reason="max_tokens" if choice.get("finish_reason") == "length" else "end_turn",
            input_tokens=int(usage.get("prompt_tokens") or estimate_tokens(request.system + request.user)),
            output_tokens=int(usage.get("completion_tokens") or estimate_tokens(text)),
            model_id=str(answer.get("model") or self.model_id),
        )


def backend_from_environment(environ: Mapping[str, str] = os.environ) -> DescriptionBackend:
    base_url = environ.get("DESCRIBER_OPENAI_BASE_URL")
    if base_url:
        model = environ.get("DESCRIBER_OPENAI_MODEL")
        if not model:
            raise ValueError("DESCRIBER_OPENAI_BASE_URL is set: set DESCRIBER_OPENAI_MODEL too")
        return OpenAICompatibleWriter(base_url, model, environ.get("DESCRIBER_OPENAI_API_KEY"))
    return OfflineWriter()
