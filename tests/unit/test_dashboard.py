"""The dashboard and the alarms: the body is JSON once substituted, the cost estimate's prices come from
describer/prices.json and its model from describer/sagemaker/scaling.py (and reproduces `make cost`'s
figure on its metered usage), and every alarm notifies the optional SNS topic."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

import pytest
from cfnlint.decode import decode

from describer.cost import load_prices, writer_price_key
from describer.sagemaker.launcher import DEFAULT_ENDPOINT_INSTANCE_TYPE, VARIANT_NAME
from describer.sagemaker.scaling import (
    GPU_SECONDS_PER_CALL,
    GPU_SECONDS_PER_EXTRA_QUESTION,
    TARGET_UTILISATION,
)

# Here rather than in tests/unit/pipeline: it reads describer/ and training/, which the Lambdas'
# python3.13 test environment (make unit-py313) does not install.
REPO = Path(__file__).resolve().parents[2]
TEMPLATE = REPO / "template.yaml"

ALARMS = (
    "AdmissionDeadLetterAlarm",
    "WorkflowFailuresAlarm",
    "FailureRateAlarm",
    "AdmissionAgeAlarm",
    "StoppedExecutionDeadLetterAlarm",
    "EventsNotPublishedAlarm",
)


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    decoded, matches = decode(str(TEMPLATE))
    assert decoded is not None, matches
    return dict(decoded)


def _default(template: dict[str, Any], name: str) -> float:
    return float(template["Parameters"][name]["Default"])


def _body(template: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    body, names = template["Resources"]["Dashboard"]["Properties"]["DashboardBody"]["Fn::Sub"]
    return str(body), dict(names)


def _substituted(template: dict[str, Any]) -> dict[str, Any]:
    """The body as CloudFormation renders it with the parameters' defaults and stand-in resource names."""
    body, names = _body(template)

    def value(match: re.Match[str]) -> str:
        name = match.group(1)
        if name in names:
            return str(names[name])
        if name in template["Parameters"]:
            return str(template["Parameters"][name]["Default"])
        resource = name.split(".")[0]
        assert name.startswith("AWS::") or resource in template["Resources"], name
        return f"stand-in-{name}"

    return dict(json.loads(re.sub(r"\$\{([\w:.]+)\}", value, body)))


def _metrics(widget: dict[str, Any]) -> list[list[Any]]:
    return list(widget["properties"].get("metrics", []))


def test_the_body_is_json_and_shows_every_figure_the_issue_names(template: dict[str, Any]) -> None:
    widgets = _substituted(template)["widgets"]
    titles = " | ".join(widget["properties"]["title"] for widget in widgets)
    for figure in (
        "Uploads admitted",
        "Failures by error code",
        "review share",
        "Endpoint latency",
        "Bedrock tokens per locale",
        "Admission queue",
        "Estimated cost per 1,000 images",
        "Alarms",
    ):
        assert figure in titles, figure
    [alarms] = [widget for widget in widgets if widget["type"] == "alarm"]
    assert alarms["properties"]["alarms"] == [f"stand-in-{name}.Arn" for name in sorted(ALARMS, key=_order)]
    named = {entry[1] for widget in widgets for entry in _metrics(widget) if isinstance(entry[0], str)}
    assert {
        "ExecutionsStarted",
        "ExecutionsTimedOut",
        "ApproximateAgeOfOldestMessage",
        "Invocation5XXErrors",
    } <= named


def _order(name: str) -> int:
    return [
        "FailureRateAlarm",
        "AdmissionAgeAlarm",
        "AdmissionDeadLetterAlarm",
        "WorkflowFailuresAlarm",
        "StoppedExecutionDeadLetterAlarm",
        "EventsNotPublishedAlarm",
    ].index(name)


def test_cost_prices_are_the_price_tables(template: dict[str, Any]) -> None:
    prices = load_prices()
    model_id = template["Parameters"]["BedrockModelId"]["Default"]
    bedrock = prices["bedrock_per_million_tokens"]
    rates = bedrock[writer_price_key(model_id, prices)]
    assert model_id.startswith("us."), "the default is a geographic profile: its premium applies"
    premium = 1 + bedrock["geographic_profile_premium"]
    assert _default(template, "CostBedrockInputPerMillionTokens") == pytest.approx(rates["input"] * premium)
    assert _default(template, "CostBedrockOutputPerMillionTokens") == pytest.approx(rates["output"] * premium)
    hourly = prices["sagemaker_realtime_per_hour"][DEFAULT_ENDPOINT_INSTANCE_TYPE]
    per_gpu_second = hourly / 3600 / TARGET_UTILISATION
    assert _default(template, "CostEndpointPerGpuSecond") == pytest.approx(per_gpu_second, abs=5e-7)
    _, names = _body(template)
    assert float(names["GpuSecondsPerCall"]) == GPU_SECONDS_PER_CALL
    assert float(names["GpuSecondsPerExtraQuestion"]) == GPU_SECONDS_PER_EXTRA_QUESTION
    assert names["VariantName"] == VARIANT_NAME


def _cost_md_default_row() -> dict[str, float]:
    text = (REPO / "docs" / "cost.md").read_text()
    header = next(line for line in text.splitlines() if line.startswith("| configuration (USD per 1,000"))
    row = next(line for line in text.splitlines() if line.startswith("| **default:"))
    columns = [cell.strip().strip("*") for cell in header.strip("|").split("|")]
    cells = [cell.strip().strip("*") for cell in row.strip("|").split("|")]
    return {column: float(cell) for column, cell in zip(columns[1:], cells[1:], strict=True)}


def test_the_rest_of_the_cost_is_make_costs_figure(template: dict[str, Any]) -> None:
    row = _cost_md_default_row()
    rest = row["Lambda"] + row["Step Functions"] + row["rest"]
    assert _default(template, "CostOtherPerThousandImages") == pytest.approx(rest)


def _evaluate(expression: str, series: dict[str, float]) -> float:
    python = re.sub(r"FILL\((\w+), 0\)", r"\1", expression)
    assert re.fullmatch(r"[\w\s.+\-*/()]+", python), python
    return float(eval(python, {"__builtins__": {}}, dict(series)))  # arithmetic only (checked above)


def test_the_cost_estimate_gives_make_costs_figure_on_its_metered_usage(template: dict[str, Any]) -> None:
    widgets = _substituted(template)["widgets"]
    [cost] = [w for w in widgets if w["properties"]["title"].startswith("Estimated cost")]
    [expression] = [entry[0]["expression"] for entry in _metrics(cost) if isinstance(entry[0], dict)]
    ids = {entry[-1]["id"]: entry[1] for entry in _metrics(cost) if isinstance(entry[0], str)}
    assert ids == {
        "tin": "BedrockInputTokens",
        "tout": "BedrockOutputTokens",
        "calls": "EndpointLatency",
        "questions": "EndpointQuestions",
        "done": "ImagesCompleted",
    }
    # docs/cost.md's metered usage per product (en-US): 332 / 246 tokens, 2 endpoint calls of 6 questions.
    products = 1000
    usage = {"tin": 332, "tout": 246, "calls": 2, "questions": 6}
    series = {name: per_product * products for name, per_product in usage.items()} | {"done": products}
    assert _evaluate(expression, series) == pytest.approx(_cost_md_default_row()["total"], abs=0.02)


def test_every_alarm_notifies_the_optional_topic(template: dict[str, Any]) -> None:
    assert template["Parameters"]["AlarmTopicArn"]["Default"] == ""
    assert template["Conditions"]["HasAlarmTopic"] == {
        "Fn::Not": [{"Fn::Equals": [{"Ref": "AlarmTopicArn"}, ""]}]
    }
    alarms = {name: r for name, r in template["Resources"].items() if r["Type"] == "AWS::CloudWatch::Alarm"}
    assert set(alarms) == set(ALARMS)
    for name, alarm in alarms.items():
        for actions in ("AlarmActions", "OKActions"):
            assert alarm["Properties"][actions] == {
                "Fn::If": ["HasAlarmTopic", [{"Ref": "AlarmTopicArn"}], {"Ref": "AWS::NoValue"}]
            }, name
        # The local emulator deploys plain metric alarms only (no metric math).
        assert "Metrics" not in alarm["Properties"], name


def test_the_failure_rate_and_queue_age_alarms(template: dict[str, Any]) -> None:
    rate = template["Resources"]["FailureRateAlarm"]["Properties"]
    assert (rate["Namespace"], rate["MetricName"], rate["Statistic"]) == (
        "ProductDescriber",
        "ImageFailurePercent",
        "Average",
    )
    assert rate["Dimensions"] == [{"Name": "service", "Value": {"Ref": "AWS::StackName"}}]
    assert rate["Threshold"] == {"Ref": "FailureRateAlarmPercent"}
    assert math.isclose(rate["Period"] * rate["EvaluationPeriods"], 1800)
    age = template["Resources"]["AdmissionAgeAlarm"]["Properties"]
    assert (age["MetricName"], age["Statistic"], age["Threshold"]) == (
        "ApproximateAgeOfOldestMessage",
        "Maximum",
        {"Ref": "AdmissionAgeAlarmSeconds"},
    )
    assert age["Dimensions"] == [
        {"Name": "QueueName", "Value": {"Fn::GetAtt": ["AdmissionQueue", "QueueName"]}}
    ]


def test_metrics_are_this_stacks_and_the_dashboard_is_an_output(template: dict[str, Any]) -> None:
    environment = template["Globals"]["Function"]["Environment"]["Variables"]
    assert environment["POWERTOOLS_SERVICE_NAME"] == {"Ref": "AWS::StackName"}
    url = json.dumps(template["Outputs"]["DashboardUrl"]["Value"])
    assert "${Dashboard}" in url and "cloudwatch" in url


def test_the_cost_by_day_widget_prices_the_ledgers_as_describer_status_does(template: dict[str, Any]) -> None:
    from describer.cost import ledger_dollars
    from describer_rules.contracts import CostLedger, PurchaseMode, TokenUsage
    from describer_rules.cost_ledger import ledger_metrics

    prices = load_prices()
    _, names = _body(template)
    assert float(names["BatchShare"]) == 1 - prices["bedrock_per_million_tokens"]["batch_discount"]
    sfn, aws_lambda = prices["step_functions"], prices["lambda"]
    assert float(names["StandardPerTransition"]) == pytest.approx(sfn["per_thousand_transitions"] / 1e3)
    assert float(names["ExpressPerRequest"]) == pytest.approx(sfn["express_per_million_requests"] / 1e6)
    assert float(names["ExpressPerGbSecond"]) == pytest.approx(sfn["express_per_gb_second"])
    assert float(names["LambdaPerRequest"]) == pytest.approx(aws_lambda["per_million_requests"] / 1e6)
    assert float(names["LambdaPerGbSecond"]) == pytest.approx(aws_lambda["per_gb_second"])
    widgets = _substituted(template)["widgets"]
    [by_day] = [w for w in widgets if w["properties"]["title"].startswith("Cost of what was done, by day")]
    assert by_day["properties"]["period"] == 86400
    metrics = _metrics(by_day)
    ids = {entry[-1]["id"]: entry[1] for entry in metrics if isinstance(entry[0], str)}
    expressions = [entry[0]["expression"] for entry in metrics if isinstance(entry[0], dict)]
    ledger = CostLedger(
        endpoint_seconds=0.62,
        endpoint_calls=2,
        bedrock={
            PurchaseMode.ON_DEMAND: TokenUsage(input=332, output=246),
            PurchaseMode.BATCH: TokenUsage(input=664, output=492),
        },
        state_transitions=9,
        express_executions=1,
        express_gb_seconds=0.1,
        lambda_invocations=6,
        lambda_gb_seconds=0.87,
    )
    values = ledger_metrics(ledger)
    assert set(ids.values()) == set(values)
    series = {metric_id: values[name] for metric_id, name in ids.items()}
    total = sum(_evaluate(expression, series) for expression in expressions)
    expected = ledger_dollars(ledger, prices, "claude-haiku-4-5", True, DEFAULT_ENDPOINT_INSTANCE_TYPE, 0.5)
    assert total == pytest.approx(sum(expected.values()), rel=1e-3)
