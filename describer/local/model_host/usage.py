"""What the model host served: calls, questions, seconds and tokens (``GET /_local/usage``), and the
calls per ``PrefixAwareId`` with their routing prefixes (``GET /routing``)."""

from __future__ import annotations

import hashlib
import json
import threading
from typing import Any

from describer_rules.endpoint_calls import ROUTING_PREFIX_BYTES


def _no_calls() -> dict[str, int]:
    return {"calls": 0, "input_tokens": 0, "output_tokens": 0}


class Usage:
    """Counts of what the host served, safe across its request threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.endpoint = {"invocations": 0, "questions": 0, "seconds": 0.0}
        self.converse: dict[str, dict[str, int]] = {}
        self.locales: dict[str, dict[str, int]] = {}

    def add_invocation(self, body: bytes, seconds: float) -> None:
        try:
            questions = len(json.loads(body).get("questions") or [None])
        except (ValueError, AttributeError):
            questions = 1
        with self._lock:
            self.endpoint["invocations"] += 1
            self.endpoint["questions"] += questions
            self.endpoint["seconds"] += seconds

    def add_converse(self, model_id: str, locale: str, input_tokens: int, output_tokens: int) -> None:
        """Counted per model id and per locale (the one the prompt names)."""
        with self._lock:
            for counts in (
                self.converse.setdefault(model_id, _no_calls()),
                self.locales.setdefault(locale, _no_calls()),
            ):
                counts["calls"] += 1
                counts["input_tokens"] += input_tokens
                counts["output_tokens"] += output_tokens

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {
                "endpoint": dict(self.endpoint),
                "converse": {k: dict(v) for k, v in self.converse.items()},
                "locales": {k: dict(v) for k, v in self.locales.items()},
            }


class RoutingLog:
    """Calls per PrefixAwareId and the distinct routing prefixes (first bytes of the body) they had."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._calls: dict[str, int] = {}
        self._prefixes: dict[str, set[str]] = {}

    def record(self, prefix_aware_id: str | None, body: bytes) -> None:
        key = prefix_aware_id or ""
        prefix = hashlib.sha256(body[:ROUTING_PREFIX_BYTES]).hexdigest()
        with self._lock:
            self._calls[key] = self._calls.get(key, 0) + 1
            self._prefixes.setdefault(key, set()).add(prefix)

    def summary(self) -> dict[str, dict[str, int]]:
        """``{id: {"calls": n, "prefixes": k}}``; calls without an id are under ``""``."""
        with self._lock:
            return {
                key: {"calls": calls, "prefixes": len(self._prefixes[key])}
                for key, calls in self._calls.items()
            }
