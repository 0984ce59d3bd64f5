"""A run's cost ledger (``contracts.CostLedger``): its metered units, and the ones derived from its path.

Metered: the endpoint calls' time (MergeAttributes adds up each call's ``endpoint_ms``) and Bedrock's
token counts. Derived: the state transitions (the states of the path the run took, below; retries
are not seen by the step that writes the record) and the Lambda GB-seconds (each step's measured
duration times its function's memory; MergeAttributes and SaveResult take milliseconds and are
counted as invocations only). ``tests/unit/pipeline/test_cost_ledger.py`` keeps the paths equal to
``statemachine/describe_product.asl.yaml`` and the memory sizes equal to ``template.yaml``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Literal

from describer_rules.contracts import CostLedger, PurchaseMode, TokenUsage

# Function logical id (template.yaml) -> MemorySize in MB.
LAMBDA_MEMORY_MB = {
    "PrepareFunction": 1024,
    "AskAttributeFunction": 256,
    "MergeAttributesFunction": 256,
    "WriteDescriptionFunction": 256,
    "SaveResultFunction": 256,
}
# The DescribeProduct states a described product enters, besides one AskAttribute per question group.
DESCRIBED_PATH = (
    "Prepare",
    "IsCurrentUpload",
    "AskAttributes",
    "MergeAttributes",
    "WriteDescription",
    "SaveResult",
    "Completed",
)
# The batch backfill's Express child (statemachine/backfill.asl.json): PlanItem and QueueCopy beside
# the DescribeProduct steps; its states are one Express request, billed by duration in 64 MB steps.
BATCH_CHILD_FUNCTIONS = ("PlanBackfillItemFunction", "QueueCopyFunction")
EXPRESS_BILLED_MEMORY_GB = 0.0625
DERIVED_FIELDS = ["state_transitions", "lambda_invocations", "lambda_gb_seconds"]
BATCH_DERIVED_FIELDS = ["express_executions", "express_gb_seconds", "lambda_invocations", "lambda_gb_seconds"]


def _gb_seconds(function: str, duration_ms: int) -> float:
    return LAMBDA_MEMORY_MB[function] / 1024 * duration_ms / 1000


def described_ledger(
    *,
    prepare_ms: int,
    endpoint_ms: int,
    endpoint_calls: int,
    description_ms: int,
    token_usage: Mapping[str, TokenUsage],
    mode: PurchaseMode = PurchaseMode.ON_DEMAND,
    on_demand_usage: Mapping[str, TokenUsage] | None = None,
    fallbacks: int = 0,
    path: Literal["described", "batch"] = "described",
) -> CostLedger:
    """The ledger of a run that described its product.

    ``token_usage``: the tokens per locale, bought in ``mode``; ``on_demand_usage``: a batch run's
    locales that fell back to an on-demand call (``fallbacks`` of them). ``path``: "batch" for the
    batch backfill's Express child, whose copy a job wrote (``description_ms``: its fallbacks' time).
    """
    bedrock = {mode: _total(token_usage.values())}
    if on_demand_usage:
        bedrock[PurchaseMode.ON_DEMAND] = _total(on_demand_usage.values())
    gb_seconds = (
        _gb_seconds("PrepareFunction", prepare_ms)
        + _gb_seconds("AskAttributeFunction", endpoint_ms)
        + _gb_seconds("WriteDescriptionFunction", description_ms)
    )
    ledger = CostLedger(
        endpoint_seconds=round(endpoint_ms / 1000, 3),
        endpoint_calls=endpoint_calls,
        bedrock={key: usage for key, usage in bedrock.items() if usage.input or usage.output},
        bedrock_fallbacks=fallbacks,
        state_transitions=len(DESCRIBED_PATH) + endpoint_calls,
        # Prepare, one AskAttribute per call, MergeAttributes, WriteDescription, SaveResult.
        lambda_invocations=4 + endpoint_calls,
        lambda_gb_seconds=round(gb_seconds, 3),
        derived=list(DERIVED_FIELDS),
    )
    if path == "described":
        return ledger
    # The child waits on Prepare and the endpoint calls (the QueueCopy and PlanItem milliseconds aside).
    child_seconds = (prepare_ms + endpoint_ms) / 1000
    return ledger.model_copy(
        update={
            "state_transitions": 0,
            "express_executions": 1,
            "express_gb_seconds": round(child_seconds * EXPRESS_BILLED_MEMORY_GB, 4),
            # PlanItem, Prepare, one AskAttribute per call, MergeAttributes, QueueCopy; the collector's
            # one pass per thousand products is left out.
            "lambda_invocations": 4 + endpoint_calls,
            "derived": list(BATCH_DERIVED_FIELDS),
        }
    )


def _total(usages: Iterable[TokenUsage]) -> TokenUsage:
    total = TokenUsage()
    for usage in usages:
        total = TokenUsage(input=total.input + usage.input, output=total.output + usage.output)
    return total


def ledger_metrics(ledger: CostLedger) -> dict[str, float]:
    """The ledger as metric values (the dashboard's "cost of what was done, by day" sums them)."""
    on_demand = ledger.bedrock.get(PurchaseMode.ON_DEMAND, TokenUsage())
    batch = ledger.bedrock.get(PurchaseMode.BATCH, TokenUsage())
    return {
        "LedgerEndpointSeconds": ledger.endpoint_seconds,
        "LedgerOnDemandInputTokens": on_demand.input,
        "LedgerOnDemandOutputTokens": on_demand.output,
        "LedgerBatchInputTokens": batch.input,
        "LedgerBatchOutputTokens": batch.output,
        "LedgerStateTransitions": ledger.state_transitions,
        "LedgerExpressExecutions": ledger.express_executions,
        "LedgerExpressGbSeconds": ledger.express_gb_seconds,
        "LedgerLambdaInvocations": ledger.lambda_invocations,
        "LedgerLambdaGbSeconds": ledger.lambda_gb_seconds,
    }
