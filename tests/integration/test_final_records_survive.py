"""A reviewed record survives a repeated SaveResult and a late RecordFailure of its own run.

One of the demo's COMPLETED records that needs review is accepted through the review desk's real
write path; then the deployed SaveResult Lambda is invoked again with the input its run gave it, and
the deployed RecordFailure Lambda with the input the run's Catch would give it had SaveResult failed
after its write (a timeout). Neither changes the record or announces it again (issue 26, 1b and 1a).
"""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from benchmarks.chaos import ProductEventCapture
from describer.deployment import Deployment, fetch_records
from describer.local.samples import SampleFile
from describer.review.stack import review_desk
from describer_aws.results_table import OUTBOX_EVENTS, OUTBOX_KEY, REVIEW_KEY, RecordVersion
from describer_rules.contracts import ProductEventType, ProductRecord, ReviewStatus, Status
from describer_steps.states import FailureInput, FailureOutput, SaveInput, SaveOutput

pytestmark = pytest.mark.integration


def _history(deployment: Deployment, execution_arn: str) -> list[dict[str, Any]]:
    sfn = deployment.client("stepfunctions")
    pages = sfn.get_paginator("get_execution_history").paginate(executionArn=execution_arn)
    return [event for page in pages for event in page["events"]]


def _task_inputs(
    deployment: Deployment, execution_arn: str, state_name: str
) -> tuple[str, dict[str, Any], dict[str, Any]]:
    """The function the run's ``state_name`` task called, that task's input (the state's Parameters
    applied to the state input the history recorded, as Step Functions applied them) and the state
    input itself."""
    sfn = deployment.client("stepfunctions")
    execution = sfn.describe_execution(executionArn=execution_arn)
    assert execution["status"] == "SUCCEEDED", execution["status"]
    history = _history(deployment, execution_arn)
    [entered] = [
        event
        for event in history
        if event["type"] == "TaskStateEntered" and event["stateEnteredEventDetails"]["name"] == state_name
    ]
    state_input = json.loads(entered["stateEnteredEventDetails"]["input"])
    scheduled = next(e for e in history if e["id"] > entered["id"] and e["type"] == "TaskScheduled")
    definition = json.loads(
        sfn.describe_state_machine(stateMachineArn=execution["stateMachineArn"])["definition"]
    )
    context = {
        "$$.Execution.Name": execution["name"],
        "$$.Execution.StartTime": execution["startDate"].isoformat(),
        "$$.Execution.Input": json.loads(execution["input"]),
    }
    parameters = {}
    for name, path in definition["States"][state_name]["Parameters"].items():
        field = name.removesuffix(".$")
        if path in context:
            parameters[field] = context[path]
        else:
            assert path.startswith("$."), path  # the task states here read top-level fields only
            parameters[field] = state_input[path.removeprefix("$.")]
    return scheduled["taskScheduledEventDetails"]["resource"], parameters, state_input


def _functions(deployment: Deployment) -> dict[str, str]:
    """The stack's Lambda functions' names by logical id."""
    resources = deployment.client("cloudformation").describe_stack_resources(StackName=deployment.stack_name)
    return {
        resource["LogicalResourceId"]: resource["PhysicalResourceId"]
        for resource in resources["StackResources"]
        if resource["ResourceType"] == "AWS::Lambda::Function"
    }


def _invoke(deployment: Deployment, function: str, payload: dict[str, Any]) -> dict[str, Any]:
    response = deployment.client("lambda").invoke(FunctionName=function, Payload=json.dumps(payload).encode())
    body = json.loads(response["Payload"].read())
    assert "FunctionError" not in response, body
    return dict(body)


def _item(deployment: Deployment, product_id: str) -> dict[str, Any]:
    return dict(
        deployment.client("dynamodb").get_item(
            TableName=deployment.results_table, Key={"product_id": {"S": product_id}}
        )["Item"]
    )


def test_a_reviewed_record_survives_a_repeated_save_and_a_late_failure(
    deployment: Deployment, demo_uploads: list[tuple[SampleFile, ProductRecord]]
) -> None:
    # A demo photo's record that awaits review (read again: the demo's records are shared).
    ids = [s.product_id for s, r in demo_uploads if r.status is Status.COMPLETED and r.needs_review]
    current = fetch_records(deployment, ids)
    record = next(r for r in current.values() if r.needs_review and r.review_decision is None)
    assert record.execution_name is not None
    machine = deployment.outputs["StateMachineArn"]
    execution_arn = f"{machine.replace(':stateMachine:', ':execution:')}:{record.execution_name}"
    save_function, save_input, state_input = _task_inputs(deployment, execution_arn, "SaveResult")
    SaveInput.model_validate(save_input)
    # What SaveResult's Catch hands RecordFailure when the step fails after its write.
    failure_input = {
        "execution_name": save_input["execution_name"],
        "workflow": json.loads(
            deployment.client("stepfunctions").describe_execution(executionArn=execution_arn)["input"]
        ),
        "state": {**state_input, "error": {"Error": "Sandbox.Timedout", "Cause": "Task timed out"}},
    }
    FailureInput.model_validate(failure_input)
    functions = _functions(deployment)
    assert functions["SaveResultFunction"] in save_function

    with ProductEventCapture(deployment) as capture:
        reviewed = review_desk(deployment).accept(record.product_id, RecordVersion.of(record))
        assert reviewed.review_decision is not None
        assert reviewed.review_decision.status is ReviewStatus.ACCEPTED and not reviewed.needs_review
        (stored,) = fetch_records(deployment, [record.product_id]).values()

        # The run's own SaveResult again, then a late RecordFailure of the same run.
        saved = SaveOutput.model_validate(_invoke(deployment, save_function, save_input))
        failed = FailureOutput.model_validate(
            _invoke(deployment, functions["RecordFailureFunction"], failure_input)
        )

        time.sleep(2)  # anything either step published has reached the capture's queue
        events = [
            (kind, version) for product, kind, _, version in capture.drain() if product == record.product_id
        ]

    (after,) = fetch_records(deployment, [record.product_id]).values()
    assert after.status is Status.COMPLETED and after.execution_name == record.execution_name
    assert after.review_decision == reviewed.review_decision and not after.needs_review
    assert after.record_version == record.record_version + 1  # the review's version, nothing since
    assert after == stored
    item = _item(deployment, record.product_id)
    # Off the review queue, and no event waits in the outbox.
    assert not {REVIEW_KEY, OUTBOX_KEY, OUTBOX_EVENTS} & set(item), sorted(item)
    # The review was announced; no second Described, no Failed.
    assert events == [(ProductEventType.REVIEWED.value, after.record_version)]
    # Each step saw the run's own final record: saved by an earlier attempt; the run completed.
    assert (saved.saved, saved.written) == (True, False)
    assert (failed.completed, failed.recorded, failed.superseded) == (True, False, False)
