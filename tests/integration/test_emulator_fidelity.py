"""The local emulator reports a failed handler as AWS Lambda does, so Retry and Catch run as on AWS.

A function whose handler raises ``FlakyUpstream`` runs under a state machine that retries that
error name twice and then catches it. On AWS, Step Functions sees ``Error: FlakyUpstream`` (the
Lambda ``errorType``); an emulator that reports ``Runtime.HandlerError`` instead would skip the
retries and land in the ``States.ALL`` catcher.
"""

from __future__ import annotations

import io
import json
import time
import zipfile
from typing import Any

import pytest

from describer.deployment import Deployment

pytestmark = pytest.mark.integration

HANDLER = '''
class FlakyUpstream(Exception):
    """A typed, retryable failure, like the pipeline's EndpointThrottled."""


def handler(event, context):
    raise FlakyUpstream("upstream said no")
'''
ROLE = "arn:aws:iam::000000000000:role/emulator-fidelity"


def _function_zip() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("flaky.py", HANDLER)
    return buffer.getvalue()


def _definition(function_arn: str) -> str:
    return json.dumps(
        {
            "StartAt": "Call",
            "States": {
                "Call": {
                    "Type": "Task",
                    "Resource": function_arn,
                    "Retry": [
                        {
                            "ErrorEquals": ["FlakyUpstream"],
                            "IntervalSeconds": 1,
                            "MaxAttempts": 2,
                            "BackoffRate": 1,
                        }
                    ],
                    "Catch": [
                        {"ErrorEquals": ["FlakyUpstream"], "ResultPath": "$.error", "Next": "CaughtTyped"},
                        {"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": "CaughtOther"},
                    ],
                    "End": True,
                },
                "CaughtTyped": {"Type": "Succeed"},
                "CaughtOther": {"Type": "Fail", "Error": "WrongCatcher"},
            },
        }
    )


def _failed_errors(history: list[dict[str, Any]]) -> list[str]:
    """The error names of the task's failed attempts, in order."""
    return [
        details["error"]
        for event in history
        if event["type"].endswith("Failed")
        for key, details in event.items()
        if key.endswith("FailedEventDetails") and isinstance(details, dict) and "error" in details
    ]


def test_a_typed_handler_error_is_retried_then_caught(deployment: Deployment) -> None:
    lambdas = deployment.client("lambda")
    function_arn = lambdas.create_function(
        FunctionName="emulator-fidelity-flaky",
        Runtime="python3.13",
        Role=ROLE,
        Handler="flaky.handler",
        Code={"ZipFile": _function_zip()},
        Timeout=10,
    )["FunctionArn"]
    sfn = deployment.client("stepfunctions")
    machine = sfn.create_state_machine(
        name="emulator-fidelity", definition=_definition(function_arn), roleArn=ROLE
    )["stateMachineArn"]

    execution = sfn.start_execution(stateMachineArn=machine, input="{}")["executionArn"]
    deadline = time.monotonic() + 60
    while (described := sfn.describe_execution(executionArn=execution))["status"] == "RUNNING":
        assert time.monotonic() < deadline, "the execution did not finish"
        time.sleep(0.2)

    history = sfn.get_execution_history(executionArn=execution)["events"]
    assert described["status"] == "SUCCEEDED", _failed_errors(history)
    # One first attempt and two retries, each failing with the exception's class name.
    assert _failed_errors(history) == ["FlakyUpstream"] * 3
    caught = json.loads(described["output"])["error"]
    assert caught["Error"] == "FlakyUpstream"
    assert json.loads(caught["Cause"])["errorMessage"] == "upstream said no"
