"""Fault injection for the local model host: AWS's own error answers, at seeded rates.

``describer local up --faults endpoint-throttle=0.2,bedrock-throttle=0.1`` makes that share of the
model host's SageMaker ``InvokeEndpoint`` or Bedrock ``Converse`` requests fail the way the real
services fail: the status code, ``x-amzn-ErrorType`` header and JSON body of botocore's service
models (``sagemaker-runtime`` 2017-05-13, ``bedrock-runtime`` 2023-09-30), so the unchanged
handlers see exactly the ``ClientError`` (or read timeout) they would see on AWS.

Each request draws once from a seeded generator; the kinds of its route share that draw, so
``endpoint-throttle=0.2,endpoint-unavailable=0.05`` fails 25 % of endpoint calls. A slow reply
waits longer than the pipeline's read timeout, then answers normally (to a client long gone).
"""

from __future__ import annotations

import random
import threading
from collections import Counter
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, Field, model_validator

Route = Literal["invocations", "converse"]


class FaultKind(StrEnum):
    ENDPOINT_THROTTLE = "endpoint-throttle"
    ENDPOINT_UNAVAILABLE = "endpoint-unavailable"
    ENDPOINT_SLOW = "endpoint-slow"
    BEDROCK_THROTTLE = "bedrock-throttle"
    BEDROCK_UNAVAILABLE = "bedrock-unavailable"
    BEDROCK_TIMEOUT = "bedrock-timeout"

    @property
    def route(self) -> Route:
        return "invocations" if self.value.startswith("endpoint-") else "converse"


class ErrorAnswer(BaseModel):
    """One error response as the service sends it (rest-json: header and ``__type`` name the code)."""

    status: int
    code: str
    message_field: str  # SageMaker Runtime's shapes say "Message", Bedrock Runtime's "message"
    message: str


# SageMaker Runtime throttling is the AWS-wide ThrottlingException (HTTP 400, "Rate exceeded"); the
# others are InvokeEndpoint's modelled errors. Bedrock's are Converse's modelled errors.
_ANSWERS: dict[FaultKind, tuple[ErrorAnswer, ...]] = {
    FaultKind.ENDPOINT_THROTTLE: (
        ErrorAnswer(status=400, code="ThrottlingException", message_field="message", message="Rate exceeded"),
    ),
    FaultKind.ENDPOINT_UNAVAILABLE: (
        ErrorAnswer(
            status=429,
            code="ModelNotReadyException",
            message_field="Message",
            message="Model is not ready to serve inference requests: try again later.",
        ),
        ErrorAnswer(
            status=503, code="ServiceUnavailable", message_field="Message", message="Service Unavailable"
        ),
    ),
    FaultKind.BEDROCK_THROTTLE: (
        ErrorAnswer(
            status=429,
            code="ThrottlingException",
            message_field="message",
            message="Too many requests, please wait before trying again.",
        ),
    ),
    FaultKind.BEDROCK_UNAVAILABLE: (
        ErrorAnswer(
            status=503,
            code="ServiceUnavailableException",
            message_field="message",
            message="Bedrock is unable to process your request.",
        ),
    ),
    FaultKind.BEDROCK_TIMEOUT: (
        ErrorAnswer(
            status=408,
            code="ModelTimeoutException",
            message_field="message",
            message="Model has timed out in processing the request. Try your request again.",
        ),
    ),
}


class FaultSpec(BaseModel):
    """What to inject: a rate per kind, the generator's seed and how slow a slow reply is."""

    rates: dict[FaultKind, float] = Field(default_factory=dict)
    seed: int = 0
    slow_seconds: float = Field(default=35.0, gt=0)

    @model_validator(mode="after")
    def _rates_are_shares(self) -> FaultSpec:
        for kind, rate in self.rates.items():
            if not 0 <= rate <= 1:
                raise ValueError(f"{kind.value}: a rate is a share between 0 and 1, not {rate}")
        for route in ("invocations", "converse"):
            if sum(rate for kind, rate in self.rates.items() if kind.route == route) > 1:
                raise ValueError(f"the {route} fault rates add up to more than 1")
        return self

    @classmethod
    def parse(cls, text: str, seed: int = 0, slow_seconds: float = 35.0) -> FaultSpec:
        """``"endpoint-throttle=0.2,bedrock-throttle=0.1"`` (empty: no faults)."""
        rates: dict[FaultKind, float] = {}
        for item in filter(None, (part.strip() for part in text.split(","))):
            name, _, value = item.partition("=")
            try:
                rates[FaultKind(name.strip())] = float(value)
            except ValueError:
                known = ", ".join(kind.value for kind in FaultKind)
                raise ValueError(f"{item!r} is not KIND=RATE with KIND one of {known}") from None
        return cls(rates=rates, seed=seed, slow_seconds=slow_seconds)

    @property
    def active(self) -> bool:
        return any(rate > 0 for rate in self.rates.values())

    def text(self) -> str:
        """The ``--faults`` text that gives these rates."""
        return ",".join(f"{kind.value}={rate:g}" for kind, rate in self.rates.items() if rate > 0)


class InjectedFault(BaseModel):
    kind: FaultKind
    answer: ErrorAnswer | None = None  # None: a slow reply
    delay_s: float = 0.0


class FaultInjector:
    """Draws a fault (or none) per request; thread-safe, and counts what it injected."""

    def __init__(self, spec: FaultSpec | None = None) -> None:
        self.spec = spec or FaultSpec()
        self._random = random.Random(self.spec.seed)
        self._lock = threading.Lock()
        self.requests: Counter[str] = Counter()
        self.injected: Counter[str] = Counter()

    def draw(self, route: Route) -> InjectedFault | None:
        with self._lock:
            self.requests[route] += 1
            draw = self._random.random()
            for kind, rate in self.spec.rates.items():
                if kind.route != route:
                    continue
                if draw < rate:
                    self.injected[kind.value] += 1
                    if kind == FaultKind.ENDPOINT_SLOW:
                        return InjectedFault(kind=kind, delay_s=self.spec.slow_seconds)
                    return InjectedFault(kind=kind, answer=self._random.choice(_ANSWERS[kind]))
                draw -= rate
        return None

    def report(self) -> dict[str, object]:
        """What the model host's ``GET /_local/faults`` answers: the spec and the counts so far."""
        with self._lock:
            return {
                "spec": self.spec.model_dump(mode="json"),
                "requests": dict(self.requests),
                "injected": dict(self.injected),
            }
