"""Cost per 1,000 images: what one product used, times the price table in ``prices.json``.

``ProductUsage`` is what ``make cost`` meters on the local stack (``benchmarks.cost_meter``),
per product: Lambda invocations and GB-seconds per function, Step Functions state transitions,
endpoint calls and questions, Bedrock calls and tokens; plus the requests the code path makes to
S3, DynamoDB and SQS and the X-Ray traces, counted from the code rather than metered. Endpoint time
is the one modelled quantity: the local model is a tiny CPU model, so GPU seconds come from the
assumptions in ``describer.sagemaker.scaling``, or from measured figures where a bench left them
(``describer.endpoint_figures``: ``make gpu-bench``'s seconds, ``make load-bench``'s gain
from cross-request batching), and are divided by the instance's utilisation (an instance is paid
for by the hour, busy or not).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from describer.endpoint_figures import EndpointTiming

PRICES_FILE = Path(__file__).with_name("prices.json")
PER = 1000  # products
DYNAMODB_WRITE_UNIT_BYTES = 1024


def load_prices(path: Path = PRICES_FILE) -> dict[str, Any]:
    prices: dict[str, Any] = json.loads(path.read_text())
    return prices


class FunctionUsage(BaseModel):
    invocations: float
    gb_seconds: float


class WriterCalls(BaseModel):
    calls: float
    input_tokens: float
    output_tokens: float


class ProductUsage(BaseModel):
    """One product's calls, averaged over the products metered."""

    products: int
    functions: dict[str, FunctionUsage]
    state_transitions: float
    endpoint_calls: float
    endpoint_questions: float
    converse_calls: float
    input_tokens: float
    output_tokens: float
    record_bytes: float
    local_endpoint_seconds: float = 0.0  # the local CPU model's time: reported, never priced
    locales: dict[str, WriterCalls] = Field(default_factory=dict, description="Bedrock calls per locale")

    def in_locales(self, locales: list[str]) -> ProductUsage:
        """This usage had the copy been written in ``locales`` only (each locale is its own calls)."""
        kept = [self.locales[locale] for locale in locales if locale in self.locales]
        if not kept:
            return self
        return self.model_copy(
            update={
                "converse_calls": sum(calls.calls for calls in kept),
                "input_tokens": sum(calls.input_tokens for calls in kept),
                "output_tokens": sum(calls.output_tokens for calls in kept),
                "locales": {locale: self.locales[locale] for locale in locales if locale in self.locales},
            }
        )

    @property
    def gpu_seconds(self) -> float:
        """Modelled: one request at a time, the assumed seconds per call."""
        return self.endpoint_seconds(EndpointTiming())

    def endpoint_seconds(self, timing: EndpointTiming) -> float:
        return timing.seconds(self.endpoint_calls, self.endpoint_questions)

    # --- Counted from the code path, not metered ----------------------------------------------------

    @property
    def s3_gets(self) -> float:
        """Prepare's HeadObject and ranged GetObject, and the endpoint's read of the image per call."""
        return 2 + self.endpoint_calls

    @property
    def dynamodb_write_units(self) -> float:
        """Prepare's claim (one unit) and SaveResult's record, each written to the table and to the
        by-status index (whose key changes on the second write: a delete and a put)."""
        record_units = math.ceil(self.record_bytes / DYNAMODB_WRITE_UNIT_BYTES)
        return (1 + record_units) + (1 + 2)

    @property
    def sqs_requests(self) -> float:
        """EventBridge's SendMessage, the poller's ReceiveMessage and DeleteMessage (batches ignored)."""
        return 3

    @property
    def traces(self) -> float:
        """The starter's trace and the execution's (Step Functions passes its trace to the Lambdas)."""
        return 2


@dataclass(frozen=True)
class Scenario:
    writer: str  # a key of prices.json's bedrock_per_million_tokens
    utilisation: float  # share of the endpoint instances' paid time spent answering
    instance_type: str
    batch: bool = False  # Bedrock batch inference instead of on-demand Converse
    geographic_profile: bool = True  # a us. (geographic) cross-Region inference profile

    @property
    def label(self) -> str:
        tier = "batch" if self.batch else "on-demand"
        return f"{self.writer} {tier}, endpoint {self.utilisation:.0%} busy"


def cost_per_thousand(
    usage: ProductUsage, prices: dict[str, Any], scenario: Scenario, timing: EndpointTiming | None = None
) -> dict[str, float]:
    """Dollars per 1,000 products by component; endpoint time from ``timing`` (default: modelled)."""
    gb_seconds = sum(function.gb_seconds for function in usage.functions.values())
    invocations = sum(function.invocations for function in usage.functions.values())
    bedrock = prices["bedrock_per_million_tokens"]
    rates = bedrock[scenario.writer]
    token_factor = (1 - bedrock["batch_discount"] if scenario.batch else 1.0) * (
        1 + bedrock["geographic_profile_premium"] if scenario.geographic_profile else 1.0
    )
    per_product = {
        "Lambda": invocations * prices["lambda"]["per_million_requests"] / 1e6
        + gb_seconds * prices["lambda"]["per_gb_second"],
        "Step Functions": usage.state_transitions
        * prices["step_functions"]["per_thousand_transitions"]
        / 1e3,
        "SageMaker endpoint": usage.endpoint_seconds(timing or EndpointTiming())
        * prices["sagemaker_realtime_per_hour"][scenario.instance_type]
        / 3600
        / scenario.utilisation,
        "Bedrock": token_factor
        * (usage.input_tokens * rates["input"] + usage.output_tokens * rates["output"])
        / 1e6,
        "DynamoDB": usage.dynamodb_write_units * prices["dynamodb"]["per_million_write_units"] / 1e6,
        "S3": usage.s3_gets * prices["s3"]["per_thousand_get"] / 1e3,
        "SQS": usage.sqs_requests * prices["sqs"]["per_million_requests"] / 1e6,
        "EventBridge": prices["eventbridge"]["per_million_events"] / 1e6,
        "X-Ray": usage.traces * prices["xray"]["per_million_traces"] / 1e6,
    }
    return {component: PER * dollars for component, dollars in per_product.items()}


def writer_price_key(model_id: str, prices: dict[str, Any]) -> str:
    """The price table's key for a Bedrock model id or inference profile id (``claude-haiku-4-5``)."""
    for key in prices["bedrock_per_million_tokens"]:
        if isinstance(prices["bedrock_per_million_tokens"][key], dict) and key in model_id:
            return str(key)
    raise KeyError(f"no Bedrock price for {model_id!r} in {PRICES_FILE.name}")
