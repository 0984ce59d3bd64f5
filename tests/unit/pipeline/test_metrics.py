"""The metrics the dashboard and the alarms read: emitted by the handlers (EMF on stdout), one namespace,
bounded dimensions, and every ProductDescriber metric the template names is one some handler emits."""

from __future__ import annotations

import json
import re
from collections import defaultdict

import pytest
from botocore.stub import Stubber

from describer_aws.observability import FAILURE_PERCENT_METRIC
from describer_rules.contracts import S3ObjectRef

from .conftest import BUCKET, REPO, Aws, image_bytes
from .test_statemachine import substituted_definition
from .test_workflow_in_process import COPY, _converse_reply, _endpoint_stub, _start, models, run_workflow

__all__ = ["models"]  # the fixture, used by name below
# The dimensions a metric may carry: the service, and values drawn from closed sets.
BOUNDED_DIMENSIONS = {"service", "ErrorCode", "Locale"}


def _emitted(text: str) -> dict[str, list[tuple[frozenset[str], float, dict[str, str]]]]:
    """Metric name -> (dimension names, value, dimension values) for every EMF document printed."""
    found: dict[str, list[tuple[frozenset[str], float, dict[str, str]]]] = defaultdict(list)
    for line in text.splitlines():
        if '"CloudWatchMetrics"' not in line:
            continue
        document = json.loads(line)
        [directive] = document["_aws"]["CloudWatchMetrics"]
        assert directive["Namespace"] == "ProductDescriberTest"
        [dimensions] = directive["Dimensions"]
        for metric in directive["Metrics"]:
            for value in document[metric["Name"]]:
                values = {name: document[name] for name in dimensions}
                found[metric["Name"]].append((frozenset(dimensions), float(value), values))
    return found


def test_a_completed_product_emits_what_the_dashboard_shows(
    aws: Aws, models: tuple[Stubber, Stubber], capsys: pytest.CaptureFixture[str]
) -> None:
    sagemaker, bedrock = models
    answers = {
        "Sleeve Length": "Sleeve Length: Long Sleeves",
        "Pattern": '{"Pattern": "solid"}',
        "Fit": "Fit: Regular Fit",
        "Fabric": "Fabric: Linen",
        "Collar": "Collar: Spread Collar",
        "Colour": "Colour: Blue",
    }
    workflow, name = _start(aws, "incoming/Shirts/15970.jpg", image_bytes())
    _endpoint_stub(
        sagemaker, S3ObjectRef(bucket=BUCKET, key=workflow["key"], version_id=workflow["version_id"]), answers
    )
    bedrock.add_response("converse", _converse_reply(COPY))
    capsys.readouterr()
    with sagemaker, bedrock:
        end, _ = run_workflow(substituted_definition(), workflow, name)
    assert end == "Succeed"
    emitted = _emitted(capsys.readouterr().out)
    total = {metric: sum(value for _, value, _ in points) for metric, points in emitted.items()}
    assert total["ImagesCompleted"] == 1
    assert [value for _, value, _ in emitted["ImageFailurePercent"]] == [0]
    assert total["ImagesNeedingReview"] == 1  # Fabric's value is outside the vocabulary
    assert (len(emitted["EndpointLatency"]), total["EndpointQuestions"]) == (2, 6)  # two calls of three
    assert [(v, d) for _, v, d in emitted["BedrockInputTokensByLocale"]] == [
        (400, {"Locale": "en-US", "service": "product-describer-test"})
    ]
    assert total["BedrockOutputTokensByLocale"] == total["BedrockOutputTokens"] == 80
    # The cost ledger, for the dashboard's cost by day: the record's own units.
    assert (total["LedgerOnDemandInputTokens"], total["LedgerOnDemandOutputTokens"]) == (400, 80)
    assert total["LedgerStateTransitions"] == 7 + 2  # the described path and its two calls
    for metric, points in emitted.items():
        for dimensions, _, _ in points:
            assert dimensions <= BOUNDED_DIMENSIONS and "service" in dimensions, metric


def _emitted_in_code() -> set[str]:
    from describer_rules.contracts import CostLedger
    from describer_rules.cost_ledger import ledger_metrics

    names = set()
    for handler in (REPO / "functions").glob("*/app.py"):
        names |= set(re.findall(r'name="(\w+)", unit=', handler.read_text()))
        names |= set(re.findall(r'\("(\w+)", tokens\.\w+\)', handler.read_text()))
        if "ledger_metrics(" in handler.read_text():  # the cost ledger's metrics, by their names
            names |= set(ledger_metrics(CostLedger()))
    return names | {FAILURE_PERCENT_METRIC}


def _template_metric_names(template_text: str) -> set[str]:
    """ProductDescriber metric names the dashboard body and the alarms name."""
    body = re.findall(r'"ProductDescriber",\s*"(\w+)"', template_text)
    body += re.findall(r'MetricName=\\"(\w+)\\"', template_text)  # SEARCH expressions
    alarms = re.findall(r"Namespace: ProductDescriber\n\s+MetricName: (\w+)", template_text)
    return set(body) | set(alarms)


def test_every_metric_the_template_reads_is_emitted() -> None:
    named = _template_metric_names((REPO / "template.yaml").read_text())
    assert {
        "ImagesCompleted",
        "ImageFailurePercent",
        "ImagesNeedingReview",
        "BedrockInputTokensByLocale",
    } <= named
    assert named <= _emitted_in_code(), named - _emitted_in_code()


def test_the_metric_name_scan_finds_what_it_should() -> None:
    assert {"ImagesFailedByCode", "EndpointQuestions", "BedrockOutputTokensByLocale"} <= _emitted_in_code()
