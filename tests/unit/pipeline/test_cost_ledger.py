"""The record's cost ledger: metered units as the steps measured them, derived ones from the path the
workflow really takes and the memory the template really gives each function."""

from __future__ import annotations

from typing import Any

import pytest

from describer_rules.contracts import CostLedger, ProductRecord, PurchaseMode, TokenUsage
from describer_rules.cost_ledger import DESCRIBED_PATH, LAMBDA_MEMORY_MB, described_ledger

from .conftest import load_template, template_resource
from .test_statemachine import substituted_definition


def test_the_described_path_is_the_workflows_default_route() -> None:
    asl = substituted_definition()
    path, state = [], asl["StartAt"]
    while state:
        path.append(state)
        definition = asl["States"][state]
        state = definition.get("Default") or definition.get("Next")
    assert tuple(path) == DESCRIBED_PATH


@pytest.mark.parametrize("function", sorted(LAMBDA_MEMORY_MB))
def test_memory_sizes_are_the_templates(function: str) -> None:
    default = int(load_template()["Globals"]["Function"]["MemorySize"])
    assert int(template_resource(function).get("MemorySize", default)) == LAMBDA_MEMORY_MB[function]


def test_a_described_run_meters_tokens_and_endpoint_time_and_derives_the_rest() -> None:
    ledger = described_ledger(
        prepare_ms=400,
        endpoint_ms=1500,
        endpoint_calls=3,
        description_ms=2000,
        token_usage={"en-US": TokenUsage(input=300, output=200), "de-DE": TokenUsage(input=310, output=220)},
    )
    assert ledger.endpoint_seconds == 1.5
    assert ledger.bedrock == {PurchaseMode.ON_DEMAND: TokenUsage(input=610, output=420)}
    assert ledger.state_transitions == len(DESCRIBED_PATH) + 3
    assert ledger.lambda_invocations == 4 + 3
    # Prepare 0.4 s at 1 GB, the calls 1.5 s and the copy 2 s at 0.25 GB.
    assert ledger.lambda_gb_seconds == pytest.approx(0.4 + 0.375 + 0.5)
    assert set(ledger.derived) == {"state_transitions", "lambda_invocations", "lambda_gb_seconds"}


def test_batch_tokens_and_their_fallbacks_are_kept_apart() -> None:
    ledger = described_ledger(
        prepare_ms=0,
        endpoint_ms=0,
        endpoint_calls=1,
        description_ms=0,
        token_usage={"en-US": TokenUsage(input=300, output=200)},
        mode=PurchaseMode.BATCH,
        on_demand_usage={"de-DE": TokenUsage(input=320, output=230)},
        fallbacks=1,
    )
    assert ledger.bedrock == {
        PurchaseMode.BATCH: TokenUsage(input=300, output=200),
        PurchaseMode.ON_DEMAND: TokenUsage(input=320, output=230),
    }
    assert ledger.bedrock_fallbacks == 1


def test_a_record_without_a_ledger_still_reads() -> None:
    """Records written before the ledger have no ``cost``; one written with it round-trips."""
    record: dict[str, Any] = {
        "product_id": "p1",
        "category": "Shirts",
        "status": "COMPLETED",
        "source_bucket": "b",
        "source_key": "incoming/Shirts/p1.jpg",
        "source_version": "null",
        "created_at": "2026-12-01T00:00:00.000Z",
        "updated_at": "2026-12-01T00:00:00.000Z",
    }
    assert ProductRecord.model_validate(record).cost is None
    ledger = CostLedger(bedrock={PurchaseMode.BATCH: TokenUsage(input=1, output=2)})
    dumped = ProductRecord.model_validate(record | {"cost": ledger.model_dump(mode="json")})
    assert dumped.cost == ledger
    assert dumped.model_dump(mode="json")["cost"]["bedrock"] == {"batch": {"input": 1, "output": 2}}
