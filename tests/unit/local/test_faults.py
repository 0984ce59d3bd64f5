"""Fault injection: each kind answered on the wire as AWS answers, and mapped by the real handlers'
domain code (real boto3 clients, the real model host) to the error class the state machine retries."""

from __future__ import annotations

import json
import threading
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config

from describer.local.commands import fault_summary
from describer.local.model_host import ModelHost
from describer.local.model_host.description_backends import OfflineWriter
from describer.local.model_host.faults import FaultInjector, FaultKind, FaultSpec
from describer.local.model_host.server import FAULTS_PATH
from describer_aws.clients import SDK_RETRIES
from describer_rules.catalogue import load_catalogue
from describer_rules.contracts import S3ObjectRef
from describer_rules.errors import (
    DescriptionThrottled,
    DescriptionUnavailable,
    EndpointThrottled,
    EndpointUnavailable,
    PipelineError,
)
from describer_steps.ask_attribute import ask_attributes
from describer_steps.settings import DescriptionSettings
from describer_steps.states import AskInput
from describer_steps.write_description import write_description
from endpoint.serve import EntryPoint

ENDPOINT = "describer-local"
# Answers every question with "Long Sleeves", whatever is asked.
_INFERENCE = """
import json

def model_fn(model_dir):
    return None

def input_fn(body, content_type):
    return json.loads(body)

def predict_fn(request, model):
    answers = [
        {"attribute": q["attribute"], "value": "Long Sleeves", "raw": "Long Sleeves", "known": True}
        for q in request["questions"]
    ]
    return {"answers": answers, "image_digest": "0" * 64, "model_id": "stand-in"}

def output_fn(prediction, accept):
    return json.dumps(prediction)
"""
REQUEST = AskInput(
    image=S3ObjectRef(bucket="uploads", key="incoming/Shirts/1.jpg", version_id="v1"),
    category="Shirts",
    question={"attribute": "Sleeve Length", "question": "What is the sleeve length?"},
)
READ_TIMEOUT_S = 0.5


@pytest.fixture(scope="module")
def host(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ModelHost]:
    model_dir: Path = tmp_path_factory.mktemp("model")
    (model_dir / "code").mkdir()
    (model_dir / "code" / "inference.py").write_text(_INFERENCE)
    server = ModelHost(("127.0.0.1", 0), EntryPoint(model_dir), [ENDPOINT], OfflineWriter())
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def _url(host: ModelHost) -> str:
    return f"http://127.0.0.1:{host.server_address[1]}"


def _client(service: str, host: ModelHost) -> Any:
    # As the handlers configure theirs: one quick SDK retry.
    config = Config(retries=SDK_RETRIES, read_timeout=READ_TIMEOUT_S)
    return boto3.client(
        service,
        endpoint_url=_url(host),
        region_name="us-east-1",
        aws_access_key_id="test",
        aws_secret_access_key="test",
        config=config,
    )


def _ask(host: ModelHost) -> Any:
    return ask_attributes(REQUEST, _client("sagemaker-runtime", host), ENDPOINT, load_catalogue())


def _describe(host: ModelHost) -> Any:
    settings = DescriptionSettings(bedrock_model_id="anthropic.claude")
    category = load_catalogue().category("Shirts")
    return write_description(
        category, {"Sleeve Length": "Long Sleeves"}, _client("bedrock-runtime", host), settings
    )


@pytest.mark.parametrize(
    ("kind", "expected"),
    [
        (FaultKind.ENDPOINT_THROTTLE, EndpointThrottled),
        (FaultKind.ENDPOINT_UNAVAILABLE, EndpointUnavailable),
        (FaultKind.ENDPOINT_SLOW, EndpointUnavailable),
        (FaultKind.BEDROCK_THROTTLE, DescriptionThrottled),
        (FaultKind.BEDROCK_UNAVAILABLE, DescriptionUnavailable),
        (FaultKind.BEDROCK_TIMEOUT, DescriptionUnavailable),
    ],
)
def test_each_fault_reaches_the_handlers_as_the_retryable_error(
    host: ModelHost, kind: FaultKind, expected: type[PipelineError]
) -> None:
    host.faults = FaultInjector(FaultSpec(rates={kind: 1.0}, slow_seconds=READ_TIMEOUT_S + 0.5))
    with pytest.raises(expected) as raised:
        _ask(host) if kind.route == "invocations" else _describe(host)
    assert raised.value.retryable
    # The SDK's one retry met the fault again, except on Bedrock's 408, which botocore does not retry.
    attempts = 1 if kind == FaultKind.BEDROCK_TIMEOUT else 2
    assert host.faults.report()["injected"] == {kind.value: attempts}


@pytest.mark.parametrize(
    ("kind", "status", "code"),
    [
        (FaultKind.ENDPOINT_THROTTLE, 400, "ThrottlingException"),
        (FaultKind.BEDROCK_THROTTLE, 429, "ThrottlingException"),
        (FaultKind.BEDROCK_UNAVAILABLE, 503, "ServiceUnavailableException"),
        (FaultKind.BEDROCK_TIMEOUT, 408, "ModelTimeoutException"),
    ],
)
def test_faults_use_the_services_status_codes_and_error_codes(
    host: ModelHost, kind: FaultKind, status: int, code: str
) -> None:
    host.faults = FaultInjector(FaultSpec(rates={kind: 1.0}))
    client = _client("sagemaker-runtime" if kind.route == "invocations" else "bedrock-runtime", host)
    operation = (
        (lambda: client.invoke_endpoint(EndpointName=ENDPOINT, Body=b"{}"))
        if kind.route == "invocations"
        else (lambda: client.converse(modelId="m", messages=[{"role": "user", "content": [{"text": "x"}]}]))
    )
    with pytest.raises(client.exceptions.ClientError) as raised:
        operation()
    error = raised.value.response
    assert (error["ResponseMetadata"]["HTTPStatusCode"], error["Error"]["Code"]) == (status, code)
    assert error["Error"]["Message"]


def test_endpoint_unavailable_answers_both_modelled_errors(host: ModelHost) -> None:
    host.faults = FaultInjector(FaultSpec(rates={FaultKind.ENDPOINT_UNAVAILABLE: 1.0}, seed=3))
    client = _client("sagemaker-runtime", host)
    seen = set()
    for _ in range(20):
        try:
            client.invoke_endpoint(EndpointName=ENDPOINT, Body=b"{}")
        except client.exceptions.ModelNotReadyException as error:
            seen.add((error.response["ResponseMetadata"]["HTTPStatusCode"], "ModelNotReadyException"))
        except client.exceptions.ServiceUnavailable as error:
            seen.add((error.response["ResponseMetadata"]["HTTPStatusCode"], "ServiceUnavailable"))
    assert seen == {(429, "ModelNotReadyException"), (503, "ServiceUnavailable")}


def test_without_faults_the_host_serves_cleanly_and_reports_none(host: ModelHost) -> None:
    host.faults = FaultInjector()
    assert _ask(host).answers[0].value == "Long Sleeves"
    assert _describe(host).text
    with urllib.request.urlopen(_url(host) + FAULTS_PATH) as response:
        report = json.loads(response.read())
    assert report["injected"] == {}
    assert report["requests"] == {"invocations": 1, "converse": 1}


def test_faults_are_replaced_over_http(host: ModelHost) -> None:
    spec = FaultSpec.parse("endpoint-throttle=0.2,bedrock-unavailable=0.05", seed=9)
    request = urllib.request.Request(
        _url(host) + FAULTS_PATH, data=spec.model_dump_json().encode(), method="PUT"
    )
    with urllib.request.urlopen(request) as response:
        assert FaultSpec.model_validate(json.loads(response.read())["spec"]) == spec
    assert host.faults.spec == spec


def test_rates_are_shares_of_one_seeded_draw_per_request() -> None:
    spec = FaultSpec.parse("endpoint-throttle=0.2,endpoint-unavailable=0.05,bedrock-throttle=0.5", seed=1)
    first, second = FaultInjector(spec), FaultInjector(spec)
    draws = [first.draw("invocations") for _ in range(4000)]
    assert draws == [second.draw("invocations") for _ in range(4000)]
    throttled = sum(d is not None and d.kind == FaultKind.ENDPOINT_THROTTLE for d in draws)
    unavailable = sum(d is not None and d.kind == FaultKind.ENDPOINT_UNAVAILABLE for d in draws)
    assert 700 < throttled < 900
    assert 120 < unavailable < 280
    # The converse route's rate never applies to endpoint calls.
    assert not any(d is not None and d.kind.route != "invocations" for d in draws)


@pytest.mark.parametrize(
    "text",
    ["endpoint-throttle", "endpoint-throttle=2", "disk-full=0.1", "endpoint-throttle=0.6,endpoint-slow=0.6"],
)
def test_bad_fault_texts_are_refused(text: str) -> None:
    with pytest.raises(ValueError):
        FaultSpec.parse(text)


def test_the_text_round_trips() -> None:
    spec = FaultSpec.parse(" endpoint-throttle=0.2, bedrock-timeout=0.05 ")
    assert FaultSpec.parse(spec.text()) == spec
    assert not FaultSpec.parse("").active


def test_status_says_what_is_injected_and_how_often() -> None:
    injector = FaultInjector(FaultSpec.parse("endpoint-throttle=1,bedrock-timeout=0.5", seed=2))
    injector.draw("invocations")
    injector.draw("invocations")
    summary = fault_summary(injector.report())
    assert "endpoint-throttle=1: 2 of 2 endpoint calls" in summary
    assert "bedrock-timeout=0.5: 0 of 0 Bedrock calls" in summary
    assert fault_summary(FaultInjector().report()) == "none (serving cleanly)"
