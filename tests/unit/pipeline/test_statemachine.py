"""The DescribeProduct ASL: parsed, wired to the template, and its Retry/Catch routing exercised.

Routing is checked two ways: a small evaluator of the ASL's documented matching rules (a Retrier
is tried before a Catcher; the first matching entry wins; States.ALL matches everything) for every
error class the handlers raise, and the Step Functions TestState API on the local emulator
(ministack) for what a state does with a result or a caught error.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
import yaml
from botocore.config import Config

from describer_rules.errors import error_classes

from .conftest import DESCRIBE_ASL, template_parameter_default, template_resource

ASL_PATH = DESCRIBE_ASL
LAMBDA_TRANSIENT = [
    "Lambda.ServiceException",
    "Lambda.AWSLambdaException",
    "Lambda.SdkClientException",
    "Lambda.TooManyRequestsException",
]
ROLE = "arn:aws:iam::000000000000:role/describe-product"


def substituted_definition() -> dict[str, Any]:
    """The ASL with the template's DefinitionSubstitutions applied as text, as CloudFormation does (a
    parameter's default, a function ARN for each function), then read."""
    text = ASL_PATH.read_text()
    for name, value in template_resource("DescribeProductStateMachine")["DefinitionSubstitutions"].items():
        if isinstance(value, dict) and "Ref" in value:
            replacement = str(template_parameter_default(value["Ref"]))
        else:
            replacement = f"arn:aws:lambda:us-east-1:000000000000:function:{name}"
        text = text.replace("${" + name + "}", replacement)
    return dict(yaml.safe_load(text))


@pytest.fixture(scope="module")
def asl() -> dict[str, Any]:
    return substituted_definition()


def _all_states(states: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    for name, state in states.items():
        yield name, state
        if "ItemProcessor" in state:
            yield from _all_states(state["ItemProcessor"]["States"])


def test_the_definition_is_yaml_as_committed_and_its_timeout_a_number_once_substituted(
    asl: dict[str, Any],
) -> None:
    """Editors, Workflow Studio and validators read the file itself, before any substitution."""
    definition = yaml.safe_load(ASL_PATH.read_text())
    assert definition["States"]["AskAttributes"]["Type"] == "Map"
    assert definition["TimeoutSeconds"] == "${RunTimeoutSeconds}"
    assert asl["TimeoutSeconds"] == template_parameter_default("RunTimeoutSeconds")


def test_every_placeholder_is_a_template_substitution() -> None:
    placeholders = set(re.findall(r"\$\{(\w+)\}", ASL_PATH.read_text()))
    assert placeholders == set(template_resource("DescribeProductStateMachine")["DefinitionSubstitutions"])


def test_the_workflow_runs_prepare_to_save_result(asl: dict[str, Any]) -> None:
    path, state = [], asl["StartAt"]
    while state:
        path.append(state)
        definition = asl["States"][state]
        state = definition.get("Default") or definition.get("Next")
    assert path == [
        "Prepare",
        "IsCurrentUpload",
        "AskAttributes",
        "MergeAttributes",
        "WriteDescription",
        "SaveResult",
        "Completed",
    ]
    assert asl["States"]["AskAttributes"]["MaxConcurrencyPath"] == "$.map_concurrency"
    assert asl["States"]["Failed"]["Type"] == "Fail"


def test_every_work_state_catches_everything_into_record_failure(asl: dict[str, Any]) -> None:
    for name, state in asl["States"].items():
        if state["Type"] in ("Task", "Map") and name != "RecordFailure":
            assert state["Catch"] == [
                {"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": "RecordFailure"}
            ], name
    assert asl["States"]["RecordFailure"]["Next"] == "FailureOutcome"
    assert asl["States"]["FailureOutcome"]["Default"] == "Failed"
    assert "Catch" not in asl["States"]["RecordFailure"], "a failing RecordFailure must not loop"


def test_every_task_retries_lambda_service_errors_with_jittered_backoff(asl: dict[str, Any]) -> None:
    for name, state in _all_states(asl["States"]):
        if state["Type"] != "Task":
            continue
        assert any(set(LAMBDA_TRANSIENT) <= set(r["ErrorEquals"]) for r in state["Retry"]), name
        for retrier in state["Retry"]:
            assert retrier["BackoffRate"] >= 2 and retrier["JitterStrategy"] == "FULL", name
            assert "States.ALL" not in retrier["ErrorEquals"], name


def route(state: dict[str, Any], error: str) -> str:
    """What Step Functions does when ``state`` fails with ``error`` the first time."""
    for retrier in state.get("Retry", []):
        if error in retrier["ErrorEquals"] or "States.ALL" in retrier["ErrorEquals"]:
            return "retry"
    for catcher in state.get("Catch", []):
        if error in catcher["ErrorEquals"] or "States.ALL" in catcher["ErrorEquals"]:
            return f"catch:{catcher['Next']}"
    return "fail"


# Which state can raise which handler error.
RAISED_BY = {
    "Prepare": ["InvalidInput", "TransientError"],
    "AskAttribute": ["EndpointThrottled", "EndpointUnavailable", "EndpointFailed"],
    "WriteDescription": [
        "DescriptionThrottled",
        "DescriptionUnavailable",
        "DescriptionFailed",
        "DescriptionInvalid",
        "StyleGuideInvalid",
    ],
    "SaveResult": ["TransientError"],
    "RecordFailure": ["TransientError"],
}


def test_retryable_errors_retry_and_final_errors_go_to_record_failure(asl: dict[str, Any]) -> None:
    classes = error_classes()
    assert set(classes) == {name for names in RAISED_BY.values() for name in names}
    states = dict(_all_states(asl["States"]))
    for state_name, errors in RAISED_BY.items():
        for error in errors:
            # Inside the Map a final error ends the iteration; the Map state catches it (below).
            final = "fail" if state_name == "AskAttribute" else "catch:RecordFailure"
            expected = "retry" if classes[error].retryable else final
            assert route(states[state_name], error) == expected, (state_name, error)
        assert route(states[state_name], "Lambda.TooManyRequestsException") == "retry"
    assert route(states["AskAttributes"], "EndpointFailed") == "catch:RecordFailure"
    assert route(states["AskAttributes"], "States.Timeout") == "catch:RecordFailure"


def test_throttling_retries_back_off_for_minutes_not_seconds(asl: dict[str, Any]) -> None:
    states = dict(_all_states(asl["States"]))
    for state_name, error in [
        ("AskAttribute", "EndpointThrottled"),
        ("WriteDescription", "DescriptionThrottled"),
    ]:
        [retrier] = [r for r in states[state_name]["Retry"] if error in r["ErrorEquals"]]
        waits = [
            min(retrier["IntervalSeconds"] * retrier["BackoffRate"] ** n, retrier["MaxDelaySeconds"])
            for n in range(retrier["MaxAttempts"])
        ]
        assert sum(waits) >= 180, (state_name, waits)


# --- TestState on the local emulator ----------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="module")
def emulator_sfn(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    port = _free_port()
    state_dir = tmp_path_factory.mktemp("ministack")
    env = {
        **os.environ,
        "GATEWAY_PORT": str(port),
        "SERVICES": "stepfunctions",
        "STATE_DIR": str(state_dir),
        "TMPDIR": str(state_dir),
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "ministack"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(f"{url}/_ministack/health", timeout=1).close()
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("ministack did not start") from None
                time.sleep(0.1)
        yield boto3.client(
            "stepfunctions",
            endpoint_url=url,
            # TestState's endpoint carries a "sync-" host prefix that only resolves on AWS.
            config=Config(inject_host_prefix=False),
            region_name="us-east-1",
            aws_access_key_id="test",
            aws_secret_access_key="test",
        )
    finally:
        process.terminate()
        process.wait(timeout=10)


def _test_state(sfn: Any, state: str, state_input: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
    context = {
        "Execution": {
            "Input": {"bucket": "b", "key": "incoming/x.jpg"},
            "Name": "run-1",
            "StartTime": "2026-11-21T03:00:00Z",
        }
    }
    return dict(
        sfn.test_state(
            definition=json.dumps(substituted_definition()),
            stateName=state,
            roleArn=ROLE,
            input=json.dumps(state_input),
            context=json.dumps(context),
            **kwargs,
        )
    )


def test_prepare_result_flows_to_the_claim_check(emulator_sfn: Any) -> None:
    prepared = {"claimed": True, "product": {"product_id": "1"}, "questions": [], "prepare_ms": 5}
    result = _test_state(emulator_sfn, "Prepare", {"bucket": "b"}, mock={"result": json.dumps(prepared)})
    assert (result["status"], result["nextState"]) == ("SUCCEEDED", "IsCurrentUpload")
    assert json.loads(result["output"]) == prepared


@pytest.mark.parametrize(("claimed", "next_state"), [(True, "AskAttributes"), (False, "Superseded")])
def test_a_superseded_run_ends_without_model_calls(emulator_sfn: Any, claimed: bool, next_state: str) -> None:
    result = _test_state(emulator_sfn, "IsCurrentUpload", {"claimed": claimed})
    assert result["nextState"] == next_state


@pytest.mark.parametrize(
    ("state", "error"),
    [
        ("Prepare", "InvalidInput"),
        ("MergeAttributes", "Runtime.HandlerError"),
        ("WriteDescription", "DescriptionInvalid"),
        ("SaveResult", "States.Timeout"),
    ],
)
def test_final_errors_are_caught_into_record_failure_with_the_state_kept(
    emulator_sfn: Any, state: str, error: str
) -> None:
    state_input = {"product": {"product_id": "1"}, "merged": {"attributes": {}}}
    cause = json.dumps({"errorMessage": "NOT_AN_IMAGE: GIF is not accepted", "errorType": error})
    result = _test_state(
        emulator_sfn, state, state_input, mock={"errorOutput": {"error": error, "cause": cause}}
    )
    assert (result["status"], result["nextState"]) == ("CAUGHT_ERROR", "RecordFailure")
    assert json.loads(result["output"]) == {**state_input, "error": {"Error": error, "Cause": cause}}


def test_record_failure_receives_the_run_and_the_failed_state(emulator_sfn: Any) -> None:
    state_input = {"product": {"product_id": "1"}, "error": {"Error": "InvalidInput", "Cause": "x"}}
    recorded = {"error_code": "NOT_AN_IMAGE", "error_message": "GIF is not accepted", "recorded": True}
    result = _test_state(
        emulator_sfn,
        "RecordFailure",
        state_input,
        mock={"result": json.dumps(recorded)},
        inspectionLevel="DEBUG",
    )
    assert result["nextState"] == "FailureOutcome"
    parameters = json.loads(result["inspectionData"]["afterParameters"])
    assert parameters == {
        "execution_name": "run-1",
        "workflow": {"bucket": "b", "key": "incoming/x.jpg"},
        "state": state_input,
    }


def test_the_execution_fails_with_the_recorded_error_code(emulator_sfn: Any) -> None:
    result = _test_state(
        emulator_sfn, "Failed", {"error_code": "NOT_AN_IMAGE", "error_message": "GIF is not accepted"}
    )
    assert (result["status"], result["error"], result["cause"]) == (
        "FAILED",
        "NOT_AN_IMAGE",
        "GIF is not accepted",
    )


@pytest.mark.parametrize(
    ("completed", "superseded", "next_state"),
    [(True, False, "Completed"), (False, True, "Superseded"), (False, False, "Failed")],
)
def test_a_run_whose_record_was_completed_or_taken_over_does_not_fail(
    emulator_sfn: Any, completed: bool, superseded: bool, next_state: str
) -> None:
    """RecordFailure after SaveResult's write (a timeout after it): the run did complete; a newer
    upload owns the record: the run had nothing to do, as when its claim lost."""
    state_input = {
        "error_code": "INTERNAL_ERROR",
        "error_message": "x",
        "recorded": False,
        "completed": completed,
        "superseded": superseded,
    }
    result = _test_state(emulator_sfn, "FailureOutcome", state_input)
    assert result["nextState"] == next_state
