"""SaveResult and RecordFailure against moto: error -> record mapping, conditional writes."""

from __future__ import annotations

import json
from typing import Any

import pytest
from prepare import app as prepare_app
from record_failure import app as record_failure_app
from save_result import app as save_result_app

from describer_rules.contracts import ErrorCode, ProductRecord
from describer_rules.errors import EndpointThrottled, InvalidInput
from describer_steps.record_failure import classify_error
from describer_steps.states import CaughtError, SaveInput, WorkflowInput

from .conftest import BUCKET, REPO, Aws, FakeLambdaContext, image_bytes

CONTEXT = FakeLambdaContext()


def _lambda_cause(error: Exception) -> str:
    """The Cause Step Functions records for a Python Lambda that raised ``error``."""
    return json.dumps(
        {
            "errorMessage": str(error),
            "errorType": type(error).__name__,
            "requestId": "r",
            "stackTrace": ["..."],
        }
    )


@pytest.mark.parametrize(
    ("error", "cause", "code", "message"),
    [
        (
            "InvalidInput",
            _lambda_cause(InvalidInput("GIF is not accepted", ErrorCode.NOT_AN_IMAGE)),
            ErrorCode.NOT_AN_IMAGE,
            "GIF is not accepted",
        ),
        # The local emulator names every handler error Runtime.HandlerError: the code survives in the message.
        (
            "Runtime.HandlerError",
            _lambda_cause(EndpointThrottled("SageMaker ThrottlingException")),
            ErrorCode.ENDPOINT_UNAVAILABLE,
            "SageMaker ThrottlingException",
        ),
        ("EndpointThrottled", "", ErrorCode.ENDPOINT_UNAVAILABLE, "EndpointThrottled: "),
        ("States.Timeout", "", ErrorCode.INTERNAL_ERROR, "States.Timeout: "),
        (
            "ValidationError",
            _lambda_cause(
                ValueError("1 validation error for SaveInput\nproduct\n  input_value={'secret': 1}")
            ),
            ErrorCode.INTERNAL_ERROR,
            "ValidationError: 1 validation error for SaveInput",
        ),
        (
            "Lambda.Unknown",
            "The cause could not be determined because Lambda did not return an error type.",
            ErrorCode.INTERNAL_ERROR,
            "Lambda.Unknown: The cause could not be determined because Lambda did not return an error type.",
        ),
    ],
)
def test_caught_errors_map_to_codes_and_never_carry_input(
    error: str, cause: str, code: ErrorCode, message: str
) -> None:
    assert classify_error(CaughtError(Error=error, Cause=cause)) == (code, message)


def _prepare(
    aws: Aws, key: str, body: bytes, time: str = "2026-11-21T03:00:00Z"
) -> tuple[WorkflowInput, dict]:
    version = aws.upload(key, body)
    workflow = WorkflowInput(bucket=BUCKET, key=key, version_id=version, event_time=time, sequencer="0A")
    output = prepare_app.handler(
        {"workflow": workflow.model_dump(), "execution_name": workflow.execution_name}, CONTEXT
    )
    return workflow, output


def _failure_event(workflow: WorkflowInput, state: dict[str, Any], error: Exception) -> dict[str, Any]:
    caught = {"Error": type(error).__name__, "Cause": _lambda_cause(error)}
    return {
        "execution_name": workflow.execution_name,
        "workflow": workflow.model_dump(),
        "state": {**state, "error": caught},
    }


def test_failure_after_prepare_is_recorded_on_the_claimed_product(aws: Aws) -> None:
    workflow, prepared = _prepare(aws, "incoming/Shirts/15970.jpg", image_bytes())
    event = _failure_event(workflow, prepared, EndpointThrottled("SageMaker ThrottlingException"))
    output = record_failure_app.handler(event, CONTEXT)
    assert output == {
        "error_code": "ENDPOINT_UNAVAILABLE",
        "error_message": "SageMaker ThrottlingException",
        "recorded": True,
        "completed": False,
        "superseded": False,
        "events_pending": False,
    }
    record = aws.record("15970")
    assert record is not None
    assert (record["status"], record["error_code"]) == ("FAILED", "ENDPOINT_UNAVAILABLE")


def test_failure_inside_prepare_rederives_the_product_from_the_object(aws: Aws) -> None:
    version = aws.upload("incoming/photo.gif", image_bytes("GIF"))
    workflow = WorkflowInput(bucket=BUCKET, key="incoming/photo.gif", version_id=version, event_time="t")
    aws.s3.copy_object(
        Bucket=BUCKET,
        Key="incoming/photo.gif",
        CopySource={"Bucket": BUCKET, "Key": "incoming/photo.gif"},
        Metadata={"product-id": "SKU-1"},
        MetadataDirective="REPLACE",
    )
    # The event's version has no metadata; the newer copy's metadata must not leak into this run.
    event = _failure_event(workflow, workflow.model_dump(), InvalidInput("GIF", ErrorCode.NOT_AN_IMAGE))
    assert record_failure_app.handler(event, CONTEXT)["recorded"] is True
    record = aws.record("photo")
    assert record is not None and record["error_code"] == "NOT_AN_IMAGE"
    assert aws.record("SKU-1") is None


def test_failure_for_a_vanished_object_is_recorded_from_the_key(aws: Aws) -> None:
    workflow = WorkflowInput(
        bucket=BUCKET, key="incoming/Shirts/gone+now.jpg", version_id=None, event_time="t"
    )
    error = InvalidInput("the uploaded object version no longer exists", ErrorCode.OBJECT_NOT_FOUND)
    assert record_failure_app.handler(_failure_event(workflow, workflow.model_dump(), error), CONTEXT)[
        "recorded"
    ]
    record = aws.record("gone now")
    assert record is not None and record["error_code"] == "OBJECT_NOT_FOUND"


def test_failure_with_an_unusable_key_is_recorded_under_a_stand_in_id(aws: Aws) -> None:
    workflow = WorkflowInput(bucket=BUCKET, key="outside/x.jpg", version_id=None, event_time="t")
    error = InvalidInput("key is outside the upload prefix", ErrorCode.INVALID_KEY)
    event = _failure_event(workflow, workflow.model_dump(), error)

    output = record_failure_app.handler(event, CONTEXT)
    again = record_failure_app.handler(event, CONTEXT)

    assert (output["error_code"], output["recorded"], again["recorded"]) == ("INVALID_KEY", True, True)
    items = aws.dynamodb.scan(TableName="results-test")["Items"]
    assert len(items) == 1, "a repeated event for the same upload must find the same record"
    record = aws.record(items[0]["product_id"]["S"])
    assert record is not None and record["product_id"].startswith("unidentified-")
    assert (record["status"], record["error_code"], record["source_key"]) == (
        "FAILED",
        "INVALID_KEY",
        "outside/x.jpg",
    )


def _save_event(workflow: WorkflowInput, prepared: dict[str, Any]) -> dict[str, Any]:
    sample = json.loads((REPO / "events" / "save_result.json").read_text())
    return {**sample, "execution_name": workflow.execution_name, "product": prepared["product"]}


def test_save_result_writes_the_completed_record(aws: Aws) -> None:
    workflow, prepared = _prepare(aws, "incoming/Shirts/15970.jpg", image_bytes())
    event = _save_event(workflow, prepared)
    assert save_result_app.handler(event, CONTEXT) == {
        "product_id": "15970",
        "saved": True,
        "written": True,
        "events_pending": False,
    }
    stored = ProductRecord.model_validate(_plain(aws, "15970"))
    request = SaveInput.model_validate(event)
    assert stored.status == "COMPLETED"
    assert stored.attributes == request.merged.attributes
    assert stored.unknown_attributes == ["Occasion"]
    assert stored.confidence == request.merged.confidence
    assert stored.needs_review
    assert stored.description == request.description.text
    assert stored.model_ids.model_dump() == {
        "attributes": "product-describer",
        "description": request.description.model_id,
    }
    assert stored.source_version == prepared["product"]["source"]["version_id"]
    assert set(stored.timings_ms) == {"prepare", "attributes", "attributes_wall", "description", "total"}
    assert stored.error_code is None and stored.created_at <= stored.updated_at


def test_superseded_run_cannot_overwrite_the_newer_result_or_fail_it(aws: Aws) -> None:
    old_workflow, old_prepared = _prepare(
        aws, "incoming/Shirts/9.jpg", image_bytes(), time="2026-11-21T03:00:00Z"
    )
    new_workflow, new_prepared = _prepare(
        aws, "incoming/Shirts/9.jpg", image_bytes("PNG"), time="2026-11-21T03:00:09Z"
    )
    assert new_prepared["claimed"] is True
    assert save_result_app.handler(_save_event(old_workflow, old_prepared), CONTEXT)["saved"] is False
    late_failure = _failure_event(old_workflow, old_prepared, EndpointThrottled("late"))
    late = record_failure_app.handler(late_failure, CONTEXT)
    assert (late["recorded"], late["superseded"]) == (False, True)
    record = aws.record("9")
    assert record is not None
    assert (record["status"], record["execution_name"]) == ("PROCESSING", new_workflow.execution_name)
    assert save_result_app.handler(_save_event(new_workflow, new_prepared), CONTEXT)["saved"] is True


def test_a_redelivered_old_event_after_completion_changes_nothing(aws: Aws) -> None:
    old_workflow, _ = _prepare(aws, "incoming/Shirts/10.jpg", image_bytes(), time="2026-11-21T03:00:00Z")
    new_workflow, new_prepared = _prepare(
        aws, "incoming/Shirts/10.jpg", image_bytes(), time="2026-11-21T03:01:00Z"
    )
    save_result_app.handler(_save_event(new_workflow, new_prepared), CONTEXT)
    completed = aws.record("10")
    replay = prepare_app.handler(
        {"workflow": old_workflow.model_dump(), "execution_name": old_workflow.execution_name + "-replay"},
        CONTEXT,
    )
    assert replay["claimed"] is False
    assert aws.record("10") == completed


def _plain(aws: Aws, product_id: str) -> dict[str, Any]:
    from describer_aws.results_table import ResultsTable

    record = ResultsTable("results-test", aws.dynamodb).get(product_id)
    assert record is not None
    return record.model_dump()
