"""The cost arithmetic (`make cost`): usage times the price table, worked by hand."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from benchmarks.cost_meter import (
    price_rows,
    scenarios,
    state_transitions,
    summary_lines,
    template_default,
    usage_table,
)
from describer.cost import (
    FunctionUsage,
    ProductUsage,
    Scenario,
    WriterCalls,
    batch_backfill_usage,
    cost_by_day,
    cost_per_thousand,
    ledger_dollars,
    load_prices,
    writer_price_key,
)
from describer.endpoint_figures import (
    EndpointTiming,
    GpuFigures,
    LoadFigures,
    LoadLevel,
    endpoint_timing,
)
from describer.sagemaker.scaling import GPU_SECONDS_PER_CALL, GPU_SECONDS_PER_EXTRA_QUESTION

PRICES = load_prices()


def _usage(**overrides: Any) -> ProductUsage:
    values: dict[str, Any] = {
        "products": 10,
        "functions": {
            "PrepareFunction": FunctionUsage(invocations=1, gb_seconds=0.5),
            "AskAttributeFunction": FunctionUsage(invocations=6, gb_seconds=0.25),
        },
        "state_transitions": 20,
        "endpoint_calls": 6,
        "endpoint_questions": 6,
        "converse_calls": 1,
        "input_tokens": 1000,
        "output_tokens": 200,
        "record_bytes": 1500,
    }
    return ProductUsage(**(values | overrides))


def test_each_component_is_usage_times_its_price() -> None:
    scenario = Scenario(
        "claude-haiku-4-5", utilisation=0.5, instance_type="ml.g5.xlarge", geographic_profile=False
    )
    cost = cost_per_thousand(_usage(), PRICES, scenario)
    assert cost["Lambda"] == pytest.approx(1000 * (7 * 0.20e-6 + 0.75 * 0.0000166667))
    assert cost["Step Functions"] == pytest.approx(1000 * 20 * 0.025 / 1000)
    # 6 single-question calls on the GPU, paid by the hour at half load.
    assert cost["SageMaker endpoint"] == pytest.approx(1000 * 6 * GPU_SECONDS_PER_CALL * 1.408 / 3600 / 0.5)
    assert cost["Bedrock"] == pytest.approx(1000 * (1000 * 1.00 + 200 * 5.00) / 1e6)
    # Claim (1) + record of 1,500 bytes (2), then the index: put (1) + key change (2).
    assert cost["DynamoDB"] == pytest.approx(1000 * 6 * 0.625e-6)
    assert cost["S3"] == pytest.approx(1000 * 8 * 0.0004 / 1000)
    assert cost["EventBridge"] == 0


def test_batch_halves_and_a_geographic_profile_adds_a_tenth_to_bedrock() -> None:
    plain = Scenario("claude-sonnet-4-6", 0.5, "ml.g5.xlarge", geographic_profile=False)
    batch_geo = Scenario("claude-sonnet-4-6", 0.5, "ml.g5.xlarge", batch=True, geographic_profile=True)
    on_demand = cost_per_thousand(_usage(), PRICES, plain)["Bedrock"]
    assert on_demand == pytest.approx(1000 * (1000 * 3 + 200 * 15) / 1e6)
    assert cost_per_thousand(_usage(), PRICES, batch_geo)["Bedrock"] == pytest.approx(on_demand * 0.5 * 1.1)


def test_one_call_per_product_costs_one_vision_pass() -> None:
    per_question = _usage(endpoint_calls=6, endpoint_questions=6)
    per_product = _usage(endpoint_calls=1, endpoint_questions=6)
    assert per_question.gpu_seconds == pytest.approx(6 * GPU_SECONDS_PER_CALL)
    assert per_product.gpu_seconds == pytest.approx(GPU_SECONDS_PER_CALL + 5 * GPU_SECONDS_PER_EXTRA_QUESTION)
    idle = Scenario("claude-haiku-4-5", 0.1, "ml.g5.xlarge")
    busy = Scenario("claude-haiku-4-5", 0.9, "ml.g5.xlarge")
    endpoint = [cost_per_thousand(per_product, PRICES, s)["SageMaker endpoint"] for s in (idle, busy)]
    assert endpoint[0] == pytest.approx(9 * endpoint[1])


def test_model_ids_find_their_prices() -> None:
    assert writer_price_key("us.anthropic.claude-haiku-4-5-20251001-v1:0", PRICES) == "claude-haiku-4-5"
    assert writer_price_key("us.anthropic.claude-sonnet-4-6", PRICES) == "claude-sonnet-4-6"
    with pytest.raises(KeyError):
        writer_price_key("amazon.nova-pro-v1:0", PRICES)


def test_every_price_names_its_source() -> None:
    sections = [value for value in PRICES.values() if isinstance(value, dict)]
    assert sections and all(section["source"].startswith(("https://", "AWS sample")) for section in sections)


def test_the_default_is_the_templates_writer_at_the_autoscaling_target() -> None:
    default, backfill, others = scenarios(PRICES)
    assert default.writer == writer_price_key(template_default("BedrockModelId"), PRICES)
    assert default not in others and backfill not in others
    assert (backfill.writer, backfill.batch, backfill.backfill, backfill.express_child) == (
        default.writer,
        True,
        True,
        True,
    )
    writers = {"claude-sonnet-4-6", "claude-haiku-4-5", "nova-micro", "nova-lite"}
    assert {scenario.writer for scenario in others} == writers
    assert {scenario.writer for scenario in others if scenario.backfill and scenario.batch} == writers
    assert len({scenario.utilisation for scenario in others}) >= 2


class _History:
    def __init__(self, histories: dict[str, list[str]]) -> None:
        self.histories = histories

    def get_paginator(self, name: str) -> _History:
        return self

    def paginate(self, executionArn: str) -> list[dict[str, Any]]:
        return [{"events": [{"type": kind} for kind in self.histories[executionArn]]}]


class _Deployment:
    def __init__(self, client: _History) -> None:
        self._client = client

    def client(self, service: str) -> _History:
        return self._client


def test_transitions_count_entered_states_and_task_attempts_without_an_entry() -> None:
    aws_style = ["ExecutionStarted", "TaskStateEntered", "TaskScheduled", "TaskFailed", "TaskScheduled"]
    aws_style += ["TaskSucceeded", "TaskStateExited", "SucceedStateEntered", "ExecutionSucceeded"]
    emulator_map = ["MapStateEntered", "TaskScheduled", "TaskSucceeded", "TaskScheduled", "TaskSucceeded"]
    client = _History({"a": aws_style, "b": emulator_map})
    # a: 2 states entered + 1 retry; b: the Map state + its 2 iterations' tasks.
    assert state_transitions(_Deployment(client), [{"executionArn": "a"}, {"executionArn": "b"}]) == 3 + 3  # type: ignore[arg-type]


def test_the_copy_in_fewer_locales_is_priced_with_their_own_calls() -> None:
    english = WriterCalls(calls=1, input_tokens=300, output_tokens=200)
    spanish = WriterCalls(calls=1, input_tokens=320, output_tokens=260)
    both = _usage(
        converse_calls=2, input_tokens=620, output_tokens=460, locales={"en-US": english, "es-ES": spanish}
    )
    only_english = both.in_locales(["en-US"])
    assert (only_english.converse_calls, only_english.input_tokens, only_english.output_tokens) == (
        1,
        300,
        200,
    )
    assert both.in_locales(["fr-FR"]) is both  # not metered: nothing to go by
    scenario = Scenario("claude-haiku-4-5", 0.5, "ml.g5.xlarge", geographic_profile=False)
    assert cost_per_thousand(only_english, PRICES, scenario)["Bedrock"] == pytest.approx(
        1000 * (300 + 200 * 5) / 1e6
    )


def _load_figures(one: float, sixteen: float) -> LoadFigures:
    def level(concurrency: int, products_per_s: float) -> LoadLevel:
        return LoadLevel(
            concurrency=concurrency,
            batching=True,
            products=16,
            failed=0,
            products_per_s=products_per_s,
            cpu_s_per_product=1 / products_per_s,  # here CPU time falls as throughput rises
            p50_s=1.0,
            p95_s=1.0,
            vision_passes=16,
            vision_batches=4,
            decoder_batches=4,
        )

    return LoadFigures(
        measured_at="2026-12-03 10:00 UTC",
        config="proportional",
        torch_threads=1,
        load_average="1.0 1.0 1.0",
        window_ms=5,
        max_batch=8,
        levels=[level(1, one), level(4, (one + sixteen) / 2), level(16, sixteen)],
    )


def test_the_load_benchs_gain_divides_the_modelled_endpoint_seconds(tmp_path: Path) -> None:
    load_file = tmp_path / "load-bench.json"
    assert endpoint_timing(load_file, tmp_path / "none.json") == EndpointTiming()  # nothing measured yet
    load_file.write_text(_load_figures(one=1.0, sixteen=2.5).model_dump_json())
    timing = endpoint_timing(load_file, tmp_path / "none.json")
    assert timing.gain == pytest.approx(2.5)
    assert timing.seconds_source == "modelled" and "make load-bench" in timing.gain_source
    usage = _usage(endpoint_calls=2, endpoint_questions=8)
    scenario = Scenario("claude-haiku-4-5", 0.5, "ml.g5.xlarge")
    modelled = cost_per_thousand(usage, PRICES, scenario)["SageMaker endpoint"]
    assert cost_per_thousand(usage, PRICES, scenario, timing)["SageMaker endpoint"] == pytest.approx(
        modelled / 2.5
    )


def test_the_gpu_benchs_seconds_replace_the_modelled_ones(tmp_path: Path) -> None:
    gpu_file = tmp_path / "gpu-bench.json"
    gpu_file.write_text(
        GpuFigures(
            measured_at="2026-12-03",
            device="NVIDIA A10G",
            dtype="bfloat16",
            seconds_per_call=0.2,
            seconds_per_extra_question=0.02,
            gain=4.0,
        ).model_dump_json()
    )
    load_file = tmp_path / "load-bench.json"
    load_file.write_text(_load_figures(one=1.0, sixteen=2.5).model_dump_json())
    timing = endpoint_timing(load_file, gpu_file)
    assert "gpu-bench" in timing.seconds_source and "gpu-bench" in timing.gain_source
    usage = _usage(endpoint_calls=2, endpoint_questions=8)  # two calls of four questions
    assert usage.endpoint_seconds(timing) == pytest.approx(2 * (0.2 + 3 * 0.02) / 4.0)
    gpu_file.write_text("{not json")  # a broken file is no measurement
    assert endpoint_timing(load_file, gpu_file).seconds_source == "modelled"


def test_the_usage_table_says_which_endpoint_figures_are_measured(tmp_path: Path) -> None:
    load_file = tmp_path / "load-bench.json"
    load_file.write_text(_load_figures(one=1.0, sixteen=2.0).model_dump_json())
    timing = endpoint_timing(load_file, tmp_path / "none.json")
    console = Console(width=300, record=True)
    console.print(usage_table(_usage(endpoint_calls=2, endpoint_questions=8), timing))
    text = console.export_text()
    one_at_a_time = 2 * (GPU_SECONDS_PER_CALL + 3 * GPU_SECONDS_PER_EXTRA_QUESTION)
    assert f"{one_at_a_time:.2f}" in text and f"{one_at_a_time / 2:.2f}" in text
    assert "modelled: 0.4 s a call" in text and "measured: make load-bench, CPU s per product" in text


def test_the_price_table_names_its_endpoint_sources_and_prices_one_request_at_a_time_too(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from benchmarks import cost_meter
    from describer.local.stack import LocalSettings

    load_file = tmp_path / "load-bench.json"
    load_file.write_text(_load_figures(one=1.0, sixteen=2.0).model_dump_json())
    timing = endpoint_timing(load_file, tmp_path / "none.json")
    usage = _usage(
        endpoint_calls=2,
        endpoint_questions=8,
        locales={"en-US": WriterCalls(calls=1, input_tokens=1000, output_tokens=200)},
    )
    monkeypatch.setattr(cost_meter.Deployment, "local", staticmethod(lambda state_dir: None))
    monkeypatch.setattr(cost_meter, "meter", lambda *args: (usage, []))
    monkeypatch.setattr(cost_meter, "endpoint_timing", lambda: timing)
    console = Console(width=400, record=True)

    assert cost_meter.run_cost(LocalSettings(state_dir=tmp_path), 1, 1.0, console) == 0

    text = console.export_text()
    assert "batching gain 2.00x: measured: make load-bench" in text
    assert "SageMaker endpoint seconds: modelled" in text
    default, backfill, _ = scenarios(PRICES)
    batched = sum(cost_per_thousand(usage, PRICES, default, timing).values())
    alone = sum(cost_per_thousand(usage, PRICES, default).values())
    assert "DEFAULT, one request at a time on the endpoint (no batching gain)" in text
    assert f"{alone:.2f}" in text and alone > batched
    backfilled = sum(cost_per_thousand(batch_backfill_usage(usage), PRICES, backfill, timing).values())
    assert text.strip().splitlines()[-2:] == [
        f"cost per 1000 images: ${batched:.2f}",
        f"backfill cost per 1000 images: ${backfilled:.2f}",
    ]


# What docs/cost.md's figures metered a product at (20 products, 2026-12-01): the arithmetic below is
# the acceptance figures, priced from the table with the modelled endpoint seconds.
def _documented_usage() -> ProductUsage:
    return ProductUsage(
        products=20,
        functions={
            "StartWorkflowFunction": FunctionUsage(invocations=1, gb_seconds=0.005),
            "PrepareFunction": FunctionUsage(invocations=1, gb_seconds=0.05),
            "AskAttributeFunction": FunctionUsage(invocations=2, gb_seconds=0.40),
            "MergeAttributesFunction": FunctionUsage(invocations=1, gb_seconds=0.002),
            "WriteDescriptionFunction": FunctionUsage(invocations=1, gb_seconds=0.01),
            "SaveResultFunction": FunctionUsage(invocations=1, gb_seconds=0.005),
        },
        state_transitions=9,
        endpoint_calls=2,
        endpoint_questions=6,
        converse_calls=1,
        input_tokens=332,
        output_tokens=246,
        record_bytes=3200,
        locales={"en-US": WriterCalls(calls=1, input_tokens=332, output_tokens=246)},
    )


def test_the_last_lines_give_the_default_and_the_backfill_figures() -> None:
    usage = _documented_usage()
    rows = price_rows(usage, usage, PRICES, EndpointTiming(), max_tokens=1000)
    assert rows[0][0].startswith("DEFAULT") and rows[1][0].startswith("BACKFILL")
    default_line, backfill_line = summary_lines(rows)
    assert default_line == "cost per 1000 images: $2.75"
    assert backfill_line.startswith("backfill cost per 1000 images: $")
    assert float(backfill_line.rsplit("$", 1)[1]) <= 1.50
    assert all(how for _, how, _ in rows)  # every row says how it was counted


def test_the_backfill_path_by_hand() -> None:
    usage = _documented_usage()
    backfill = batch_backfill_usage(usage)
    # No starter and no WriteDescription; PlanBackfillItem and QueueCopy priced like MergeAttributes.
    assert set(backfill.functions) == {
        "PrepareFunction",
        "AskAttributeFunction",
        "MergeAttributesFunction",
        "SaveResultFunction",
        "PlanBackfillItemFunction",
        "QueueCopyFunction",
    }
    # The child runs as long as its Lambdas: 0.05 s + 1.6 s + 3 x 0.008 s + 0.02 s, billed at 64 MB.
    seconds = 0.05 / 1 + 0.40 / 0.25 + 3 * 0.002 / 0.25 + 0.005 / 0.25
    assert backfill.express_gb_seconds == pytest.approx(seconds * 0.0625)
    assert (backfill.express_requests, backfill.sqs_requests) == (1, 0)
    assert backfill.dynamodb_write_units == usage.dynamodb_write_units + 4  # the COPY_QUEUED write
    scenario = Scenario("claude-haiku-4-5", 0.9, "ml.g5.xlarge", batch=True, backfill=True)
    cost = cost_per_thousand(backfill, PRICES, scenario)
    express = 1e-6 + seconds * 0.0625 * 0.00001667
    assert cost["Step Functions"] == pytest.approx(1000 * (0.05 * 0.025 / 1000 + express))
    assert cost["Bedrock"] == pytest.approx(1000 * 0.5 * 1.1 * (332 + 246 * 5) / 1e6)
    standard = batch_backfill_usage(usage, express_child=False)
    assert standard.state_transitions == pytest.approx(9 + 1 + 4 + 0.05)
    # Halving Bedrock alone leaves the Standard transitions: the Express child is what brings it under.
    standard_cost = cost_per_thousand(standard, PRICES, scenario)
    assert sum(standard_cost.values()) > 1.50 >= sum(cost.values())


def test_nova_has_no_geographic_premium() -> None:
    usage = _documented_usage()
    nova = Scenario("nova-micro", 0.5, "ml.g5.xlarge", geographic_profile=True)
    assert cost_per_thousand(usage, PRICES, nova)["Bedrock"] == pytest.approx(
        1000 * (332 * 0.035 + 246 * 0.14) / 1e6
    )
    assert writer_price_key("us.amazon.nova-lite-v1:0", PRICES) == "nova-lite"


def test_a_ledger_is_priced_per_purchase_mode_and_summed_by_day() -> None:
    from describer_rules.contracts import CostLedger, PurchaseMode, TokenUsage

    ledger = CostLedger(
        endpoint_seconds=0.9,
        endpoint_calls=2,
        bedrock={
            PurchaseMode.BATCH: TokenUsage(input=1000, output=200),
            PurchaseMode.ON_DEMAND: TokenUsage(input=500, output=100),
        },
        state_transitions=10,
        lambda_invocations=6,
        lambda_gb_seconds=0.8,
    )
    dollars = ledger_dollars(ledger, PRICES, "claude-haiku-4-5", False, "ml.g5.xlarge", 0.5)
    assert dollars["Bedrock"] == pytest.approx((0.5 * (1000 + 200 * 5) + (500 + 100 * 5)) / 1e6)
    assert dollars["SageMaker endpoint"] == pytest.approx(0.9 * 1.408 / 3600 / 0.5)
    assert dollars["Step Functions"] == pytest.approx(10 * 0.025 / 1000)
    assert dollars["Lambda"] == pytest.approx(6 * 0.2e-6 + 0.8 * 0.0000166667)
    days = cost_by_day(
        [
            ("2026-12-06T23:59:59.000Z", ledger, "anthropic.claude-haiku-4-5"),
            ("2026-12-07T00:00:01.000Z", ledger, "anthropic.claude-haiku-4-5"),
            ("2026-12-07T08:00:00.000Z", ledger, "anthropic.claude-haiku-4-5"),
            ("2026-12-07T09:00:00.000Z", None, None),  # written before the ledger
            ("2026-12-07T10:00:00.000Z", ledger, "a.model-not-in-the-table"),
        ],
        PRICES,
        "ml.g5.xlarge",
        0.5,
    )
    assert [(day.day, day.products, day.without_ledger) for day in days] == [
        ("2026-12-06", 1, 0),
        ("2026-12-07", 2, 2),
    ]
    assert days[1].total == pytest.approx(2 * sum(dollars.values()))
    # A us. profile adds Claude's premium to every token.
    premium = cost_by_day(
        [("2026-12-07T00:00:00Z", ledger, "us.anthropic.claude-haiku-4-5")],
        PRICES,
        "ml.g5.xlarge",
        0.5,
    )
    assert premium[0].dollars["Bedrock"] == pytest.approx(1.1 * dollars["Bedrock"])
