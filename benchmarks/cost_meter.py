"""`make cost`: N products through a fresh local stack, their calls metered, priced per 1,000 images.

Metered, as on AWS: each Lambda invocation's REPORT line in CloudWatch Logs (billed duration and
memory size), the state transitions in each execution's history, and, from the local model host's
counters, the endpoint calls and questions and the Bedrock calls and tokens. Whatever the pipeline
does at run time (questions per call, descriptions per locale) is what gets counted. The first
product warms the stack up and is not metered (a cold start is a cost per worker, not per product).
Products go one at a time: on AWS each invocation has its own share of a vCPU, so a Lambda's
duration must not include waiting behind its neighbours for this machine's few cores.
"""

from __future__ import annotations

import dataclasses
import json
import re
import tempfile
import time
import urllib.request
from collections import defaultdict
from datetime import datetime
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from benchmarks.backfill import executions_since
from describer.cost import (
    FunctionUsage,
    ProductUsage,
    Scenario,
    WriterCalls,
    batch_backfill_usage,
    cost_per_thousand,
    load_prices,
    writer_price_key,
)
from describer.deployment import Deployment, UploadRef, wait_for_final_records
from describer.endpoint_figures import EndpointTiming, endpoint_timing
from describer.local.model_host.server import USAGE_PATH
from describer.local.samples import synthetic_photos
from describer.local.stack import PROJECT_ROOT, LocalSettings
from describer.sagemaker.launcher import DEFAULT_ENDPOINT_INSTANCE_TYPE
from describer.sagemaker.scaling import TARGET_UTILISATION
from describer_aws.results_table import utc_now
from describer_rules.contracts import ProductRecord

COST_SEED = 23
_REPORT = re.compile(r"Billed Duration: (\d+) ms\s+Memory Size: (\d+) MB")
UTILISATIONS = (0.1, TARGET_UTILISATION, 0.9)
BACKFILL_UTILISATION = 0.9  # a backfill keeps the endpoint busy: it has a catalogue queued


def model_host_usage(settings: LocalSettings) -> dict[str, Any]:
    with urllib.request.urlopen(settings.model_host_url + USAGE_PATH, timeout=10) as response:
        usage: dict[str, Any] = json.loads(response.read())
    return usage


def lambda_usage(deployment: Deployment, since_ms: int) -> dict[str, FunctionUsage]:
    """Invocations and GB-seconds per function (logical id) from REPORT lines logged since ``since_ms``."""
    resources = deployment.client("cloudformation").list_stack_resources(StackName=deployment.stack_name)
    functions = {
        summary["LogicalResourceId"]: summary["PhysicalResourceId"]
        for summary in resources["StackResourceSummaries"]
        if summary["ResourceType"] == "AWS::Lambda::Function"
    }
    logs = deployment.client("logs")
    usage = {}
    for logical_id, name in sorted(functions.items()):
        invocations, gb_seconds = 0, 0.0
        arguments = {"logGroupName": f"/aws/lambda/{name}", "startTime": since_ms, "filterPattern": "REPORT"}
        try:
            pages = logs.get_paginator("filter_log_events").paginate(**arguments)
            for page in pages:
                for event in page["events"]:
                    if match := _REPORT.search(event["message"]):
                        invocations += 1
                        gb_seconds += int(match[1]) / 1000 * int(match[2]) / 1024
        except logs.exceptions.ResourceNotFoundException:
            continue  # never invoked
        if invocations:
            usage[logical_id] = FunctionUsage(invocations=invocations, gb_seconds=gb_seconds)
    return usage


def state_transitions(deployment: Deployment, executions: list[dict[str, Any]]) -> int:
    """States entered, plus Task attempts without a StateEntered of their own (retries on AWS; on the
    emulator also the Map iterations' tasks, whose entries it does not log)."""
    sfn = deployment.client("stepfunctions")
    total = 0
    for execution in executions:
        kinds: dict[str, int] = defaultdict(int)
        for page in sfn.get_paginator("get_execution_history").paginate(
            executionArn=execution["executionArn"]
        ):
            for event in page["events"]:
                kinds[event["type"]] += 1
        entered = sum(count for kind, count in kinds.items() if kind.endswith("StateEntered"))
        total += entered + max(0, kinds["TaskScheduled"] - kinds["TaskStateEntered"])
    return total


def _delta(after: dict[str, Any], before: dict[str, Any], section: str) -> dict[str, dict[str, float]]:
    """What one section of the model host's counters grew by, per key."""
    return {
        key: {
            name: value - before.get(section, {}).get(key, {}).get(name, 0) for name, value in counts.items()
        }
        for key, counts in after.get(section, {}).items()
    }


def meter(
    deployment: Deployment, settings: LocalSettings, products: int, timeout_s: float
) -> tuple[ProductUsage, list[ProductRecord]]:
    with tempfile.TemporaryDirectory() as scratch:
        photos = synthetic_photos(Path(scratch), per_category=products // 2 + 1, seed=COST_SEED)
        warm_up, metered = photos[0], photos[1 : 1 + products]
        _upload_and_wait(deployment, [warm_up], timeout_s)
        time.sleep(2)  # the warm-up's last REPORT lines are logged after its records are written
        before, since = model_host_usage(settings), datetime.now().astimezone()
        records: dict[str, Any] = {}
        for photo in metered:
            records |= _upload_and_wait(deployment, [photo], timeout_s)
        time.sleep(2)
    after = model_host_usage(settings)
    endpoint = {name: after["endpoint"][name] - before["endpoint"][name] for name in after["endpoint"]}
    locales = _from_ledgers(_delta(after, before, "locales"), list(records.values()))
    functions = lambda_usage(deployment, int(since.timestamp() * 1000))
    transitions = state_transitions(deployment, executions_since(deployment, since))
    record_bytes = sum(len(record.model_dump_json()) for record in records.values()) / len(records)
    per = float(len(metered))
    usage = ProductUsage(
        products=len(metered),
        functions={
            name: FunctionUsage(invocations=f.invocations / per, gb_seconds=f.gb_seconds / per)
            for name, f in functions.items()
        },
        state_transitions=transitions / per,
        endpoint_calls=endpoint["invocations"] / per,
        endpoint_questions=endpoint["questions"] / per,
        local_endpoint_seconds=endpoint["seconds"] / per,
        converse_calls=sum(counts["calls"] for counts in locales.values()) / per,
        input_tokens=sum(counts["input_tokens"] for counts in locales.values()) / per,
        output_tokens=sum(counts["output_tokens"] for counts in locales.values()) / per,
        locales={
            locale: WriterCalls(**{name: value / per for name, value in counts.items()})
            for locale, counts in locales.items()
            if counts["calls"]
        },
        record_bytes=record_bytes,
    )
    return usage, list(records.values())


def _from_ledgers(
    counted: dict[str, dict[str, float]], records: list[ProductRecord]
) -> dict[str, dict[str, float]]:
    """Bedrock tokens per locale as the records' ledgers hold them (Bedrock's own counts, which the
    pipeline wrote), the calls as the model host counted them; a record without a ledger fails."""
    missing = [record.product_id for record in records if record.cost is None]
    if missing:
        raise RuntimeError(f"records without a cost ledger: {', '.join(missing)}")
    tokens: dict[str, dict[str, float]] = defaultdict(lambda: {"input_tokens": 0.0, "output_tokens": 0.0})
    for record in records:
        for locale, usage in record.token_usage.items():
            tokens[locale]["input_tokens"] += usage.input
            tokens[locale]["output_tokens"] += usage.output
    return {
        locale: {
            "calls": counts.get("calls", 0.0),
            **tokens.get(locale, {"input_tokens": 0.0, "output_tokens": 0.0}),
        }
        for locale, counts in counted.items()
    }


def ledger_means(records: list[ProductRecord]) -> dict[str, float]:
    """The ledgers' derived units, averaged: shown beside the metered ones they estimate."""
    ledgers = [record.cost for record in records if record.cost is not None]
    if not ledgers:
        return {}
    return {
        "state_transitions": sum(ledger.state_transitions for ledger in ledgers) / len(ledgers),
        "lambda_gb_seconds": sum(ledger.lambda_gb_seconds for ledger in ledgers) / len(ledgers),
        "endpoint_calls": sum(ledger.endpoint_calls for ledger in ledgers) / len(ledgers),
    }


def _upload_and_wait(deployment: Deployment, photos: list[Any], timeout_s: float) -> dict[str, ProductRecord]:
    uploads = {}
    for photo in photos:
        uploaded_at = utc_now()
        uploads[photo.product_id] = UploadRef.from_response(
            deployment.upload(photo.path, photo.key), uploaded_at
        )
    records = wait_for_final_records(deployment, uploads, timeout_s)
    failed = [record.product_id for record in records.values() if record.error_code is not None]
    if failed:
        raise RuntimeError(f"metered products failed: {', '.join(failed)}")
    return records


def template_default(parameter: str) -> str:
    """A template parameter's default: what a deployment uses unless told otherwise."""
    from cfnlint.decode import decode

    template, matches = decode(str(PROJECT_ROOT / "template.yaml"))
    if template is None:
        raise RuntimeError(f"template.yaml does not parse: {matches}")
    return str(template["Parameters"][parameter]["Default"])


def scenarios(prices: dict[str, Any]) -> tuple[Scenario, Scenario, list[Scenario]]:
    """The default configuration, the backfill's (batch copy), and the alternatives printed next to them."""
    model_id = template_default("BedrockModelId")
    default = Scenario(
        writer=writer_price_key(model_id, prices),
        utilisation=TARGET_UTILISATION,
        instance_type=DEFAULT_ENDPOINT_INSTANCE_TYPE,
        geographic_profile=model_id.startswith("us."),
    )
    backfill = Scenario(
        writer=default.writer,
        utilisation=BACKFILL_UTILISATION,
        instance_type=DEFAULT_ENDPOINT_INSTANCE_TYPE,
        batch=True,
        geographic_profile=default.geographic_profile,
        backfill=True,
    )
    writers = [key for key, rates in prices["bedrock_per_million_tokens"].items() if isinstance(rates, dict)]
    others = [
        Scenario(default.writer, utilisation, DEFAULT_ENDPOINT_INSTANCE_TYPE)
        for utilisation in UTILISATIONS
        if utilisation != TARGET_UTILISATION
    ]
    for writer in writers:
        others.append(Scenario(writer, TARGET_UTILISATION, DEFAULT_ENDPOINT_INSTANCE_TYPE))
        others.append(
            Scenario(writer, BACKFILL_UTILISATION, DEFAULT_ENDPOINT_INSTANCE_TYPE, batch=True, backfill=True)
        )
    # The child workflow type, decided by price (docs/cost.md): the same backfill with a Standard child.
    others.insert(0, dataclasses.replace(backfill, express_child=False))
    return default, backfill, [scenario for scenario in others if scenario not in (default, backfill)]


def how_counted(scenario: Scenario, default: Scenario) -> str:
    """Which of a row's figures are metered and which priced from the table or modelled."""
    parts = ["usage metered on the local stack"]
    if scenario.backfill:
        child = "Express child" if scenario.express_child else "Standard child and DescribeProduct run"
        parts.append(f"moved to the batch backfill path ({child}, no starter; modelled)")
    if scenario.writer != default.writer:
        parts.append(f"{default.writer}'s metered tokens at {scenario.writer}'s table price")
    parts.append("batch -50 % from the table" if scenario.batch else "on-demand table prices")
    return "; ".join(parts)


def usage_table(
    usage: ProductUsage, timing: EndpointTiming, ledgers: dict[str, float] | None = None
) -> Table:
    table = Table(title=f"What one product used (mean of {usage.products}, local stack)")
    table.add_column("quantity")
    table.add_column("per product", justify="right")
    table.add_column("how it was counted")
    for name, function in sorted(usage.functions.items()):
        table.add_row(
            f"Lambda {name}",
            f"{function.invocations:.2f} calls, {function.gb_seconds:.3f} GB-s",
            "metered: REPORT lines (billed ms x memory); durations of this machine",
        )
    ledgers = ledgers or {}
    table.add_row(
        "state transitions",
        f"{usage.state_transitions:.1f}",
        "metered: execution histories"
        + (f" (the records' ledgers derive {ledgers['state_transitions']:.1f})" if ledgers else ""),
    )
    if ledgers:
        table.add_row(
            "Lambda GB-s, the records' ledgers",
            f"{ledgers['lambda_gb_seconds']:.3f}",
            "derived in the record: each step's duration x its memory (the REPORT lines above meter it)",
        )
    table.add_row(
        "endpoint calls / questions",
        f"{usage.endpoint_calls:.1f} / {usage.endpoint_questions:.1f}",
        "metered: model host",
    )
    table.add_row(
        "endpoint GPU seconds, one request at a time",
        f"{usage.endpoint_seconds(timing.model_copy(update={'gain': 1.0})):.2f}",
        f"{timing.seconds_source}: {timing.seconds_per_call:g} s a call"
        f" + {timing.seconds_per_extra_question:g} s a further question"
        f" (local CPU model: {usage.local_endpoint_seconds:.2f} s)",
    )
    table.add_row(
        "endpoint instance seconds, concurrent requests batched",
        f"{usage.endpoint_seconds(timing):.2f}",
        f"÷ {timing.gain:.2f}, throughput at 16 concurrent over 1: {timing.gain_source}",
    )
    for locale, calls in sorted(usage.locales.items()):
        table.add_row(
            f"Bedrock {locale}: calls, tokens in / out",
            f"{calls.calls:.2f}, {calls.input_tokens:.0f} / {calls.output_tokens:.0f}",
            "metered: the records' cost ledgers (the real prompt; the offline writer's copy stands in for"
            " Claude's, chars / 4)",
        )
    table.add_row(
        "DynamoDB write units",
        f"{usage.dynamodb_write_units:.0f}",
        f"from the code, record {usage.record_bytes:.0f} B",
    )
    table.add_row(
        "S3 GET/HEAD, SQS requests, X-Ray traces",
        f"{usage.s3_gets:.1f}, {usage.sqs_requests}, {usage.traces}",
        "from the code",
    )
    return table


def scenario_cost(
    usage: ProductUsage, prices: dict[str, Any], scenario: Scenario, timing: EndpointTiming
) -> dict[str, float]:
    """Dollars per 1,000 images by component; a backfill scenario on the batch path's usage."""
    if scenario.backfill:
        usage = batch_backfill_usage(usage, scenario.express_child)
    return cost_per_thousand(usage, prices, scenario, timing)


def price_rows(
    metered: ProductUsage,
    usage: ProductUsage,
    prices: dict[str, Any],
    timing: EndpointTiming,
    max_tokens: int,
) -> list[tuple[str, str, dict[str, float]]]:
    """(label, how it was counted, dollars by component) per row; the default first, the backfill second."""
    default, backfill, others = scenarios(prices)
    rows = [
        (
            f"DEFAULT: {default.label}",
            how_counted(default, default),
            scenario_cost(usage, prices, default, timing),
        ),
        (
            f"BACKFILL: {backfill.label}",
            how_counted(backfill, default),
            scenario_cost(usage, prices, backfill, timing),
        ),
    ]
    rows += [
        (scenario.label, how_counted(scenario, default), scenario_cost(usage, prices, scenario, timing))
        for scenario in others
    ]
    # The offline writer's text stands in for Claude's: the worst case is every reply at the token limit.
    longest = usage.model_copy(update={"output_tokens": usage.converse_calls * max_tokens})
    rows.append(
        (
            f"DEFAULT, every reply at DescriptionMaxTokens ({longest.output_tokens:.0f} tokens out)",
            "a bound: metered calls, the token limit for output",
            cost_per_thousand(longest, prices, default, timing),
        )
    )
    if usage is not metered:
        rows.append(
            (
                f"DEFAULT in the local stack's locales ({', '.join(sorted(metered.locales))})",
                "metered",
                cost_per_thousand(metered, prices, default, timing),
            )
        )
    if timing.gain != 1.0:
        rows.append(
            (
                "DEFAULT, one request at a time on the endpoint (no batching gain)",
                "metered; endpoint without the measured gain",
                cost_per_thousand(usage, prices, default, timing.model_copy(update={"gain": 1.0})),
            )
        )
    return rows


def summary_lines(rows: list[tuple[str, str, dict[str, float]]]) -> list[str]:
    """`make cost`'s last lines: the default's figure, then the backfill's."""
    (_, _, default), (_, _, backfill) = rows[0], rows[1]
    return [
        f"cost per 1000 images: ${sum(default.values()):.2f}",
        f"backfill cost per 1000 images: ${sum(backfill.values()):.2f}",
    ]


def run_cost(settings: LocalSettings, products: int, timeout_s: float, console: Console) -> int:
    deployment = Deployment.local(settings.state_dir)
    prices = load_prices()
    metered, records = meter(deployment, settings, products, timeout_s)
    timing = endpoint_timing()
    console.print(usage_table(metered, timing, ledger_means(records)))
    # The local stack writes more locales than the template's default: price the default's own.
    default_locales = template_default("Locales").split(",")
    usage = metered.in_locales(default_locales)
    default, _, _ = scenarios(prices)
    rows = price_rows(metered, usage, prices, timing, int(template_default("DescriptionMaxTokens")))
    table = Table(title=f"Cost per 1,000 images, USD ({prices['region']}, prices of {prices['as_of']})")
    table.add_column("configuration")
    for component in rows[0][2]:
        table.add_column(component, justify="right")
    table.add_column("total", justify="right")
    table.add_column("metered / priced", overflow="fold")
    for index, (label, how, cost) in enumerate(rows):
        shown = f"[bold]{label}[/]" if index < 2 else label
        table.add_row(
            shown, *(f"{dollars:.2f}" for dollars in cost.values()), f"[bold]{sum(cost.values()):.2f}[/]", how
        )
    reference = prices["published_reference"]["per_thousand_products"]
    table.add_row(
        "published AWS sample (smart product onboarding)", *("" for _ in rows[0][2]), f"{reference:.2f}", ""
    )
    table.caption = (
        f"SageMaker endpoint seconds: {timing.seconds_source}; batching gain {timing.gain:.2f}x: "
        f"{timing.gain_source}. Bedrock tokens from the records' cost ledgers; the rest metered or counted "
        "(table above). Every price from describer/prices.json."
    )
    console.print(table)
    console.print(
        f"Endpoint: {default.instance_type}, priced by the hour and divided by how busy it is; the"
        f" default is the autoscaling target ({TARGET_UTILISATION:.0%}),"
        f" a backfill {BACKFILL_UTILISATION:.0%}."
        f" Writer: {default.writer}"
        f" ({'us. geographic profile, +10%' if default.geographic_profile else 'global profile'}),"
        f" copy in {', '.join(default_locales)}. Backfill: `describer backfill --copy batch` (docs/cost.md)."
    )
    for line in summary_lines(rows):
        console.print(line)
    return 0
