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
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from describer.endpoint_figures import EndpointTiming
from describer_rules.contracts import CostLedger, PurchaseMode
from describer_rules.cost_ledger import EXPRESS_BILLED_MEMORY_GB, LAMBDA_MEMORY_MB

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
    # The backfill's batch path (``batch_backfill_usage``): what it adds or takes away.
    express_requests: float = 0.0
    express_gb_seconds: float = 0.0
    via_admission: bool = True  # an upload: EventBridge, the admission queue and its starter
    extra_write_units: float = 0.0
    extra_s3_puts: float = 0.0
    extra_s3_gets: float = 0.0

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
        return 2 + self.endpoint_calls + self.extra_s3_gets

    @property
    def dynamodb_write_units(self) -> float:
        """Prepare's claim (one unit) and SaveResult's record, each written to the table and to the
        by-status index (whose key changes on the second write: a delete and a put)."""
        record_units = math.ceil(self.record_bytes / DYNAMODB_WRITE_UNIT_BYTES)
        return (1 + record_units) + (1 + 2) + self.extra_write_units

    @property
    def sqs_requests(self) -> float:
        """EventBridge's SendMessage, the poller's ReceiveMessage and DeleteMessage (batches ignored)."""
        return 3 if self.via_admission else 0

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
    backfill: bool = False  # priced on ``batch_backfill_usage``: the backfill's batch path
    express_child: bool = True  # the backfill's child workflow type (False: Standard, as on demand)

    @property
    def label(self) -> str:
        tier = "batch" if self.batch else "on-demand"
        path = ""
        if self.backfill:
            path = "backfill, " if self.express_child else "backfill, Standard child, "
        return f"{path}{self.writer} {tier}, endpoint {self.utilisation:.0%} busy"


def bedrock_token_factor(prices: dict[str, Any], writer: str, batch: bool, geographic_profile: bool) -> float:
    """The multiplier on a writer's on-demand token price: batch's discount, a profile's premium."""
    bedrock = prices["bedrock_per_million_tokens"]
    discount = 1 - bedrock["batch_discount"] if batch else 1.0
    premium = geographic_profile and bedrock[writer].get("geographic_premium", False)
    return discount * (1 + bedrock["geographic_profile_premium"] if premium else 1.0)


def cost_per_thousand(
    usage: ProductUsage, prices: dict[str, Any], scenario: Scenario, timing: EndpointTiming | None = None
) -> dict[str, float]:
    """Dollars per 1,000 products by component; endpoint time from ``timing`` (default: modelled)."""
    gb_seconds = sum(function.gb_seconds for function in usage.functions.values())
    invocations = sum(function.invocations for function in usage.functions.values())
    rates = prices["bedrock_per_million_tokens"][scenario.writer]
    token_factor = bedrock_token_factor(prices, scenario.writer, scenario.batch, scenario.geographic_profile)
    step_functions = prices["step_functions"]
    per_product = {
        "Lambda": invocations * prices["lambda"]["per_million_requests"] / 1e6
        + gb_seconds * prices["lambda"]["per_gb_second"],
        "Step Functions": usage.state_transitions * step_functions["per_thousand_transitions"] / 1e3
        + usage.express_requests * step_functions["express_per_million_requests"] / 1e6
        + usage.express_gb_seconds * step_functions["express_per_gb_second"],
        "SageMaker endpoint": usage.endpoint_seconds(timing or EndpointTiming())
        * prices["sagemaker_realtime_per_hour"][scenario.instance_type]
        / 3600
        / scenario.utilisation,
        "Bedrock": token_factor
        * (usage.input_tokens * rates["input"] + usage.output_tokens * rates["output"])
        / 1e6,
        "DynamoDB": usage.dynamodb_write_units * prices["dynamodb"]["per_million_write_units"] / 1e6,
        "S3": (
            usage.s3_gets * prices["s3"]["per_thousand_get"]
            + usage.extra_s3_puts * prices["s3"]["per_thousand_put"]
        )
        / 1e3,
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


# The backfill's batch path, per product, beside the upload path that ``make cost`` meters:
# the states of its Express child (PlanItem, NeedsRun, Prepare, IsCurrentUpload, AskAttributes and
# its iterations, MergeAttributes, QueueCopy, CopyQueued) cost one Express request and their duration;
# the Standard parent's own states (the map, the job loop) are a few dozen a run, shared by its items.
BACKFILL_PARENT_TRANSITIONS_PER_PRODUCT = 0.05
# The Standard child's states (PlanItem, NeedsRun, DescribeProduct, Described), and the states the
# batch path adds to DescribeProduct's (CopyMode, QueueCopy and CopyQueued instead of WriteDescription,
# SaveResult and Completed: no more, no fewer, but the choice is one more).
STANDARD_CHILD_TRANSITIONS = 4
BATCH_PATH_EXTRA_TRANSITIONS = 1
# PlanBackfillItem and QueueCopy: a HeadObject or a PutObject and a DynamoDB read or write each,
# priced like MergeAttributes' metered invocation (the same memory, a similar few milliseconds).
_SMALL_STEP = "MergeAttributesFunction"


def batch_backfill_usage(usage: ProductUsage, express_child: bool = True) -> ProductUsage:
    """The metered upload path's usage, moved onto the backfill's batch path (modelled, not metered).

    ``express_child``: the DescribeProduct states run inside the Distributed Map's Express child;
    False prices today's shape, a Standard child that runs a Standard DescribeProduct execution.

    No starter and no admission queue; no WriteDescription (the copy comes from a batch job, whose
    tokens the scenario prices at the batch rate); one PlanBackfillItem and one QueueCopy invocation;
    the states run in an Express child instead of a Standard execution; the record is written once
    more (COPY_QUEUED), and the queued copy request is one S3 object written and read back.
    """
    functions = {
        name: function
        for name, function in usage.functions.items()
        if name not in ("StartWorkflowFunction", "WriteDescriptionFunction")
    }
    small = usage.functions.get(_SMALL_STEP, FunctionUsage(invocations=1, gb_seconds=0.0))
    functions["PlanBackfillItemFunction"] = small
    functions["QueueCopyFunction"] = small
    # The child runs as long as its Lambdas do (the Map's calls counted one after the other: an upper bound).
    child_seconds = sum(
        function.gb_seconds / (LAMBDA_MEMORY_MB.get(name, 256) / 1024) for name, function in functions.items()
    )
    record_units = math.ceil(usage.record_bytes / DYNAMODB_WRITE_UNIT_BYTES)
    if express_child:
        transitions, express = BACKFILL_PARENT_TRANSITIONS_PER_PRODUCT, 1.0
    else:
        transitions = (
            usage.state_transitions
            + BATCH_PATH_EXTRA_TRANSITIONS
            + STANDARD_CHILD_TRANSITIONS
            + BACKFILL_PARENT_TRANSITIONS_PER_PRODUCT
        )
        express, child_seconds = 0.0, 0.0
    return usage.model_copy(
        update={
            "functions": functions,
            "state_transitions": transitions,
            "express_requests": express,
            "express_gb_seconds": child_seconds * EXPRESS_BILLED_MEMORY_GB,
            "via_admission": False,
            "extra_write_units": float(record_units),
            "extra_s3_puts": 1.0,
            "extra_s3_gets": 1.0,
        }
    )


def ledger_dollars(
    ledger: CostLedger,
    prices: dict[str, Any],
    writer: str | None,
    geographic_profile: bool,
    instance_type: str,
    utilisation: float,
) -> dict[str, float]:
    """One run's cost by component, in dollars: its ledger's units times the price table.

    ``writer``: the price table's key of the model that wrote the copy (None: no copy was written).
    """
    bedrock = 0.0
    for mode, tokens in ledger.bedrock.items():
        if writer is None:
            raise ValueError("a ledger with Bedrock tokens needs the writer's price")
        rates = prices["bedrock_per_million_tokens"][writer]
        factor = bedrock_token_factor(prices, writer, mode == PurchaseMode.BATCH, geographic_profile)
        bedrock += factor * (tokens.input * rates["input"] + tokens.output * rates["output"]) / 1e6
    return {
        "Lambda": ledger.lambda_invocations * prices["lambda"]["per_million_requests"] / 1e6
        + ledger.lambda_gb_seconds * prices["lambda"]["per_gb_second"],
        "Step Functions": ledger.state_transitions
        * prices["step_functions"]["per_thousand_transitions"]
        / 1e3,
        "SageMaker endpoint": ledger.endpoint_seconds
        * prices["sagemaker_realtime_per_hour"][instance_type]
        / 3600
        / utilisation,
        "Bedrock": bedrock,
    }


class DayCost(BaseModel):
    """What the runs of one day cost (``describer status``): products with a ledger, dollars by component."""

    day: str
    products: int
    without_ledger: int = 0
    dollars: dict[str, float] = Field(default_factory=dict)

    @property
    def total(self) -> float:
        return sum(self.dollars.values())


def cost_by_day(
    runs: Iterable[tuple[str, CostLedger | None, str | None]],
    prices: dict[str, Any],
    instance_type: str,
    utilisation: float,
) -> list[DayCost]:
    """(updated_at, ledger, writer model id) per record -> the cost of what was done, by UTC day.

    A record without a ledger (written before it), or whose writer the price table does not know,
    is counted in ``without_ledger`` and not priced.
    """
    days: dict[str, DayCost] = {}
    totals: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for updated_at, ledger, model_id in runs:
        day = updated_at[:10]
        entry = days.setdefault(day, DayCost(day=day, products=0))
        writer = _known_writer(model_id, prices)
        if ledger is None or (ledger.bedrock and writer is None):
            entry.without_ledger += 1
            continue
        entry.products += 1
        profile = bool(model_id and model_id.split(".", 1)[0] in ("us", "eu", "apac", "jp", "au", "ca"))
        for component, dollars in ledger_dollars(
            ledger, prices, writer, profile, instance_type, utilisation
        ).items():
            totals[day][component] += dollars
    return [entry.model_copy(update={"dollars": dict(totals[day])}) for day, entry in sorted(days.items())]


def _known_writer(model_id: str | None, prices: dict[str, Any]) -> str | None:
    if model_id is None:
        return None
    try:
        return writer_price_key(model_id, prices)
    except KeyError:
        return None
