"""The backfill: planning one listed object (moto), and the backfill ASL's shape and wiring.

The planner decides whether a listed object version needs a DescribeProduct run; the run itself is
the upload workflow, tested elsewhere. What must hold: the run is named exactly as admission names
an upload of that version (so one version never runs twice), a version with a final record is
skipped, and a transient failure is retried under a new name whose claim wins.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from describer_aws.product_events import ProductEvents
from describer_aws.results_table import ResultsTable
from describer_rules.catalogue import load_catalogue
from describer_rules.contracts import ErrorCode, Status
from describer_steps.backfill_plan import MAX_ATTEMPTS, ItemPlan, PlanInput, plan_item
from describer_steps.prepare import prepare
from describer_steps.record_failure import UNIDENTIFIED_PRODUCT_PREFIX, record_failure
from describer_steps.settings import BackfillSettings, PrepareSettings, load_settings
from describer_steps.states import (
    CaughtError,
    FailedState,
    FailureInput,
    ObjectCreatedEvent,
    PrepareInput,
    WorkflowInput,
)

from .conftest import (
    BUCKET,
    EVENT_BUS,
    REPO,
    TABLE,
    TEMPLATE,
    Aws,
    event_bridge_event,
    image_bytes,
    template_resource,
)
from .test_statemachine import route

BACKFILL_ASL = REPO / "statemachine" / "backfill.asl.json"


def _plan(aws: Aws, key: str, category: str | None = None) -> Any:
    table = ResultsTable(TABLE, aws.dynamodb)
    prefixes = load_settings(BackfillSettings).key_prefixes
    return plan_item(
        PlanInput(bucket=BUCKET, key=key, category=category), aws.s3, table, load_catalogue(), prefixes
    )


def _run_prepare(aws: Aws, workflow: WorkflowInput) -> bool:
    table = ResultsTable(TABLE, aws.dynamodb)
    request = PrepareInput(workflow=workflow, execution_name=workflow.execution_name)
    output, _ = prepare(request, aws.s3, table, load_catalogue(), load_settings(PrepareSettings))
    return output.claimed


def _fail(aws: Aws, workflow: WorkflowInput, error: str, message: str) -> None:
    request = FailureInput(
        execution_name=workflow.execution_name,
        workflow=workflow,
        state=FailedState(error=CaughtError(Error=error, Cause=message)),
    )
    table, events = ResultsTable(TABLE, aws.dynamodb), ProductEvents(EVENT_BUS, aws.events)
    record_failure(request, aws.s3, table, events, load_catalogue(), ("incoming/", "catalogue/"))


def test_a_new_object_runs_under_the_name_admission_gives_the_same_version(aws: Aws) -> None:
    version = aws.upload("catalogue/Shirts/4711.jpg", image_bytes())
    planned = _plan(aws, "catalogue/Shirts/4711.jpg")
    assert (planned.start, planned.plan, planned.product_id) == (True, ItemPlan.DESCRIBE, "4711")
    assert planned.workflow.version_id == version
    # The S3 event for this very object version would start the same execution name.
    event = event_bridge_event("catalogue/Shirts/4711.jpg", version)
    from_event = WorkflowInput.from_event(ObjectCreatedEvent.model_validate(event))
    assert planned.execution_name == from_event.execution_name
    # The product is read under the backfill prefix with its category folder.
    assert _run_prepare(aws, planned.workflow)
    record = aws.record("4711")
    assert record is not None and record["category"] == "Shirts" and record["source_version"] == version


def test_a_completed_version_is_skipped_and_a_newer_version_runs(aws: Aws) -> None:
    aws.upload("catalogue/Tshirts/5.jpg", image_bytes())
    planned = _plan(aws, "catalogue/Tshirts/5.jpg")
    table = ResultsTable(TABLE, aws.dynamodb)
    identity = _identity_of(aws, planned)
    table.write_if_current(identity.record(Status.COMPLETED, planned.execution_name))
    again = _plan(aws, "catalogue/Tshirts/5.jpg")
    assert (again.start, again.plan) == (False, ItemPlan.DONE)
    aws.upload("catalogue/Tshirts/5.jpg", image_bytes("PNG"))
    newer = _plan(aws, "catalogue/Tshirts/5.jpg")
    assert (newer.start, newer.plan) == (True, ItemPlan.DESCRIBE)
    assert newer.execution_name != planned.execution_name


def test_a_product_waiting_for_its_batch_copy_starts_nothing_on_a_rerun(aws: Aws) -> None:
    from describer_rules.contracts import RecordStage

    aws.upload("catalogue/Tshirts/6.jpg", image_bytes())
    planned = _plan(aws, "catalogue/Tshirts/6.jpg")
    table = ResultsTable(TABLE, aws.dynamodb)
    record = _identity_of(aws, planned).record(
        Status.PROCESSING, planned.execution_name, stage=RecordStage.COPY_QUEUED
    )
    table.write_if_current(record)
    again = _plan(aws, "catalogue/Tshirts/6.jpg")
    assert (again.start, again.plan) == (False, ItemPlan.DONE)


def _identity_of(aws: Aws, planned: Any) -> Any:
    from describer_steps.prepare import SourceObject, identify_product

    source = SourceObject.locate(aws.s3, planned.workflow)
    return identify_product(source, planned.workflow, ("incoming/", "catalogue/"), load_catalogue())


def test_bad_objects_that_failed_for_good_are_skipped(aws: Aws) -> None:
    aws.upload("catalogue/Shirts/77.txt", b"not a photo")
    planned = _plan(aws, "catalogue/Shirts/77.txt")
    assert planned.start
    _fail(aws, planned.workflow, "InvalidInput", "NOT_AN_IMAGE: text/plain is not an image")
    assert aws.record("77")["error_code"] == ErrorCode.NOT_AN_IMAGE  # type: ignore[index]
    assert _plan(aws, "catalogue/Shirts/77.txt").plan == ItemPlan.DONE


def test_a_transient_failure_is_retried_under_a_new_name_whose_claim_wins(aws: Aws) -> None:
    aws.upload("catalogue/Shirts/88.jpg", image_bytes())
    first = _plan(aws, "catalogue/Shirts/88.jpg")
    assert _run_prepare(aws, first.workflow)
    _fail(aws, first.workflow, "EndpointUnavailable", "ENDPOINT_UNAVAILABLE: the endpoint did not answer")
    retry = _plan(aws, "catalogue/Shirts/88.jpg")
    assert (retry.start, retry.plan, retry.workflow.redrive_count) == (True, ItemPlan.RETRY, 1)
    assert retry.execution_name != first.execution_name
    assert retry.workflow.order_token > first.workflow.order_token
    assert _run_prepare(aws, retry.workflow)
    # The first attempt's run, delivered again, is stale now.
    assert not _run_prepare(aws, first.workflow)
    assert aws.record("88")["execution_name"] == retry.execution_name  # type: ignore[index]


def test_a_version_that_keeps_failing_is_left_for_an_operator(aws: Aws) -> None:
    aws.upload("catalogue/Shirts/99.jpg", image_bytes())
    for attempt in range(MAX_ATTEMPTS):
        planned = _plan(aws, "catalogue/Shirts/99.jpg")
        assert planned.start and planned.workflow.redrive_count == attempt
        _run_prepare(aws, planned.workflow)
        _fail(aws, planned.workflow, "EndpointUnavailable", "ENDPOINT_UNAVAILABLE: down")
    assert _plan(aws, "catalogue/Shirts/99.jpg").plan == ItemPlan.GAVE_UP


def test_a_key_naming_no_product_is_planned_under_the_record_failure_stand_in(aws: Aws) -> None:
    aws.upload("catalogue/Shirts/", b"")
    planned = _plan(aws, "catalogue/Shirts/")
    assert planned.start and planned.product_id.startswith(UNIDENTIFIED_PRODUCT_PREFIX)
    _fail(aws, planned.workflow, "InvalidInput", "INVALID_KEY: no product id: the key names no file")
    assert aws.record(planned.product_id) is not None
    assert _plan(aws, "catalogue/Shirts/").plan == ItemPlan.DONE


def test_the_operator_named_category_applies_unless_metadata_names_one(aws: Aws) -> None:
    aws.upload("catalogue/12.jpg", image_bytes())
    aws.upload("catalogue/13.jpg", image_bytes(), metadata={"category": "Shirts"})
    assert _identity_of(aws, _plan(aws, "catalogue/12.jpg", category="Tshirts")).category == "Tshirts"
    assert _identity_of(aws, _plan(aws, "catalogue/13.jpg", category="Tshirts")).category == "Shirts"


def test_an_object_deleted_after_the_listing_still_gets_its_failed_record(aws: Aws) -> None:
    planned = _plan(aws, "catalogue/Shirts/404.jpg")
    assert planned.start and planned.product_id == "404" and planned.workflow.version_id is None
    _fail(
        aws,
        planned.workflow,
        "InvalidInput",
        "OBJECT_NOT_FOUND: the uploaded object version no longer exists",
    )
    assert aws.record("404")["status"] == Status.FAILED  # type: ignore[index]


# --- The backfill ASL -------------------------------------------------------------------------------


def _substituted() -> str:
    text = BACKFILL_ASL.read_text()
    for name, given in template_resource("BackfillStateMachine")["DefinitionSubstitutions"].items():
        value = {"BackfillMaxConcurrency": "10", "BackfillToleratedFailurePercentage": "5"}.get(
            name, given if isinstance(given, str) else f"arn:aws:states:us-east-1:000000000000:{name}"
        )
        text = text.replace("${" + name + "}", value)
    return text


@pytest.fixture(scope="module")
def backfill_asl() -> dict[str, Any]:
    return dict(json.loads(_substituted()))


def test_every_placeholder_is_a_template_substitution() -> None:
    placeholders = set(re.findall(r"\$\{(\w+)\}", BACKFILL_ASL.read_text()))
    assert placeholders == set(template_resource("BackfillStateMachine")["DefinitionSubstitutions"])
    assert "${" not in _substituted()


def test_concurrency_and_tolerance_are_the_template_parameters() -> None:
    substitutions = template_resource("BackfillStateMachine")["DefinitionSubstitutions"]
    assert substitutions["BackfillMaxConcurrency"] == {"Ref": "BackfillMaxConcurrency"}
    assert substitutions["BackfillToleratedFailurePercentage"] == {
        "Ref": "BackfillToleratedFailurePercentage"
    }
    # Substituted inside strings (the file stays JSON), made numbers by the first state, read by both maps.
    definition = json.loads(BACKFILL_ASL.read_text())
    assert definition["StartAt"] == "Limits"
    limits = definition["States"]["Limits"]
    assert limits["Parameters"] == {
        "max_concurrency.$": "States.StringToJson('${BackfillMaxConcurrency}')",
        "tolerated_failure_percentage.$": "States.StringToJson('${BackfillToleratedFailurePercentage}')",
        "batch_poll_seconds.$": "States.StringToJson('${BatchCopyPollSeconds}')",
    }
    assert (limits["ResultPath"], limits["Next"]) == ("$.limits", "Source")
    for name in ("DescribePrefix", "DescribeManifest", "DescribePrefixBatch", "DescribeManifestBatch"):
        state = definition["States"][name]
        assert state["MaxConcurrencyPath"] == "$.limits.max_concurrency"
        assert state["ToleratedFailurePercentagePath"] == "$.limits.tolerated_failure_percentage"
        assert "MaxConcurrency" not in state and "ToleratedFailurePercentage" not in state


def test_the_definition_is_json_as_committed() -> None:
    json.loads(BACKFILL_ASL.read_text())


def test_both_sources_are_distributed_maps_with_one_item_processor(backfill_asl: dict[str, Any]) -> None:
    states = backfill_asl["States"]
    prefix, manifest = states["DescribePrefix"], states["DescribeManifest"]
    assert prefix["ItemReader"]["Resource"] == "arn:aws:states:::s3:listObjectsV2"
    assert manifest["ItemReader"]["Resource"] == "arn:aws:states:::s3:getObject"
    assert manifest["ItemReader"]["ReaderConfig"]["InputType"] == "CSV"
    assert prefix["ItemProcessor"] == manifest["ItemProcessor"]
    assert prefix["ItemSelector"] == manifest["ItemSelector"]
    assert prefix["ItemProcessor"]["ProcessorConfig"] == {"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"}
    assert prefix["ResultWriter"]["Parameters"]["Prefix"] == "backfill/results/"
    # The item selector builds exactly what the planner's model reads.
    assert {key.removesuffix(".$") for key in prefix["ItemSelector"]} == set(PlanInput.model_fields)


def test_an_item_runs_the_upload_workflow_only_when_planned(backfill_asl: dict[str, Any]) -> None:
    states = backfill_asl["States"]["DescribePrefix"]["ItemProcessor"]["States"]
    assert states["NeedsRun"]["Choices"] == [
        {"Variable": "$.start", "BooleanEquals": False, "Next": "AlreadyFinal"}
    ]
    run = states["DescribeProduct"]
    assert run["Resource"] == "arn:aws:states:::states:startExecution.sync:2"
    assert run["Parameters"] == {
        "StateMachineArn": "arn:aws:states:us-east-1:000000000000:DescribeProductStateMachineArn",
        "Name.$": "$.execution_name",
        "Input.$": "$.workflow",
    }
    # A product that ends FAILED has its record: the item is done. Start errors are retried, then count
    # against the tolerated failures; a name already taken means the run exists.
    for error in ["States.TaskFailed", *ErrorCode]:  # AWS's error, and the emulator's: the run's code
        assert route(run, error) == "catch:ProductFailed", error
    assert route(run, "StepFunctions.ExecutionLimitExceededException") == "retry"
    assert route(run, "StepFunctions.ExecutionAlreadyExistsException") == "catch:StartedElsewhere"
    assert route(run, "States.Timeout") == "fail"
    assert route(states["PlanItem"], "TransientError") == "retry"
    assert route(states["PlanItem"], "ValidationError") == "fail"


def test_backfill_role_reads_only_the_catalogue_and_writes_only_results() -> None:
    template = TEMPLATE.read_text()
    policies = template_resource("BackfillStateMachine")["Policies"]
    statements = [s for policy in policies if "Statement" in policy for s in policy["Statement"]]
    by_action = {json.dumps(s["Action"]): s for s in statements}
    assert by_action['"s3:ListBucket"']["Condition"] == {
        "StringLike": {"s3:prefix": {"Fn::Sub": "${BackfillPrefix}*"}}
    }
    writes = [s for s in statements if "s3:PutObject" in s["Action"]]
    assert [w["Resource"] for w in writes] == [{"Fn::Sub": "${UploadBucket.Arn}/backfill/results/*"}]
    assert "s3:*" not in template.split("BackfillStateMachine:")[1].split("BackfillLogGroup:")[0]
    planner = template_resource("PlanBackfillItemFunction")["Policies"][0]["Statement"]
    assert {json.dumps(s["Action"]) for s in planner} == {
        '["s3:GetObject", "s3:GetObjectVersion"]',
        '["s3:ListBucket", "s3:ListBucketVersions"]',  # a product folder's photo set
        '"dynamodb:GetItem"',
    }
    listing = next(s for s in planner if "s3:ListBucketVersions" in s["Action"])
    assert listing["Condition"] == {"StringLike": {"s3:prefix": {"Fn::Sub": "${BackfillPrefix}*"}}}


def test_a_product_folder_is_planned_once_as_its_photo_set(aws: Aws) -> None:
    versions = {
        name: aws.upload(f"catalogue/Shirts/F-3/{name}", image_bytes()) for name in ("a.jpg", "b.jpg")
    }
    plans = [_plan(aws, f"catalogue/Shirts/F-3/{name}") for name in versions]
    assert {plan.execution_name for plan in plans} == {plans[0].execution_name}
    planned = plans[0]
    assert (planned.start, planned.plan, planned.product_id) == (True, ItemPlan.DESCRIBE, "F-3")
    assert planned.workflow.key == "catalogue/Shirts/F-3/"
    assert [(photo.key, photo.version_id) for photo in planned.workflow.photos or []] == [
        (f"catalogue/Shirts/F-3/{name}", version) for name, version in versions.items()
    ]
    # Its run claims the record under the listing's order token: a later backfill finds it in hand.
    assert _run_prepare(aws, planned.workflow)
    table = ResultsTable(TABLE, aws.dynamodb)
    record = table.get("F-3")
    assert record is not None
    table.write_if_current(record.model_copy(update={"status": Status.COMPLETED}))
    assert _plan(aws, "catalogue/Shirts/F-3/b.jpg").plan == ItemPlan.DONE
    # A photo added since: a new set, described again.
    aws.upload("catalogue/Shirts/F-3/c.jpg", image_bytes())
    again = _plan(aws, "catalogue/Shirts/F-3/a.jpg")
    assert (again.plan, len(again.workflow.photos or [])) == (ItemPlan.DESCRIBE, 3)
    assert again.execution_name != planned.execution_name


def test_a_record_stuck_processing_past_the_run_bound_is_run_again(aws: Aws) -> None:
    """Issue 26 (6): its run ended without a final write; joining its name would start nothing."""
    aws.upload("catalogue/Shirts/77.jpg", image_bytes())
    planned = _plan(aws, "catalogue/Shirts/77.jpg")
    assert _run_prepare(aws, planned.workflow)
    table = ResultsTable(TABLE, aws.dynamodb)
    prefixes = load_settings(BackfillSettings).key_prefixes
    request = PlanInput(bucket=BUCKET, key="catalogue/Shirts/77.jpg")
    under_way = plan_item(request, aws.s3, table, load_catalogue(), prefixes, run_timeout_s=600)
    assert (under_way.plan, under_way.execution_name) == (ItemPlan.DESCRIBE, planned.execution_name)
    aws.dynamodb.update_item(
        TableName=TABLE,
        Key={"product_id": {"S": "77"}},
        UpdateExpression="SET updated_at = :long_ago",
        ExpressionAttributeValues={":long_ago": {"S": "2026-01-01T00:00:00.000Z"}},
    )
    stuck = plan_item(request, aws.s3, table, load_catalogue(), prefixes, run_timeout_s=600)
    assert (stuck.start, stuck.plan, stuck.workflow.redrive_count) == (True, ItemPlan.RETRY, 1)
    assert stuck.execution_name != planned.execution_name
    assert _run_prepare(aws, stuck.workflow), "the re-run claims the stuck record"
    unbounded = plan_item(request, aws.s3, table, load_catalogue(), prefixes)
    assert unbounded.plan == ItemPlan.DESCRIBE


def _describe_product_states() -> dict[str, Any]:
    import yaml

    return dict(yaml.safe_load((REPO / "statemachine" / "describe_product.asl.yaml").read_text())["States"])


def test_copy_batch_takes_the_batch_maps_then_polls_the_jobs_until_none_is_open() -> None:
    definition = json.loads(BACKFILL_ASL.read_text())
    states = definition["States"]
    batch = {"Variable": "$.copy", "StringEquals": "batch"}
    manifest_batch, prefix_batch, *plain = states["Source"]["Choices"]
    assert batch in manifest_batch["And"] and manifest_batch["Next"] == "DescribeManifestBatch"
    assert batch in prefix_batch["And"] and prefix_batch["Next"] == "DescribePrefixBatch"
    assert plain == [{"Variable": "$.manifest_key", "IsPresent": True, "Next": "DescribeManifest"}]
    for name in ("DescribePrefix", "DescribeManifest"):
        on_demand, by_batch = states[name], states[name + "Batch"]
        assert by_batch["ItemReader"] == on_demand["ItemReader"]
        assert by_batch["ItemSelector"] == on_demand["ItemSelector"]
        assert by_batch["ResultPath"] == "$.map_run" and by_batch["Next"] == "SubmitCopyJobs"
    assert states["DescribePrefixBatch"]["ItemProcessor"] == states["DescribeManifestBatch"]["ItemProcessor"]
    assert states["SubmitCopyJobs"]["Parameters"] == {"action": "submit"}
    assert states["SubmitCopyJobs"]["Next"] == "CollectCopyJobs"
    assert states["CollectCopyJobs"]["Parameters"] == {"action": "collect"}
    assert states["CopyJobsOpen"]["Choices"] == [
        {"Variable": "$.collected.open_jobs", "NumericGreaterThan": 0, "Next": "WaitForCopyJobs"}
    ]
    assert states["WaitForCopyJobs"]["Next"] == "CollectCopyJobs"
    assert states["WaitForCopyJobs"]["SecondsPath"] == "$.limits.batch_poll_seconds"


def test_the_batch_child_is_express_and_runs_describe_products_steps_up_to_queue_copy() -> None:
    child = json.loads(BACKFILL_ASL.read_text())["States"]["DescribePrefixBatch"]["ItemProcessor"]
    # Express: a fraction of Standard's price (docs/cost.md); at least once, and exactly once by the
    # record claim (Prepare's conditional claim, QueueCopy's and the save's conditional writes).
    assert child["ProcessorConfig"] == {"Mode": "DISTRIBUTED", "ExecutionType": "EXPRESS"}
    states = child["States"]
    path, state = [], child["StartAt"]
    while state:
        path.append(state)
        state = states[state].get("Default") or states[state].get("Next")
    assert path == [
        "PlanItem",
        "NeedsRun",
        "Prepare",
        "IsCurrentUpload",
        "AskAttributes",
        "MergeAttributes",
        "QueueCopy",
        "CopyQueued",
    ]
    describe = _describe_product_states()
    # The same retries as DescribeProduct's own steps: one policy for both workflows.
    for name in ("Prepare", "MergeAttributes"):
        assert states[name]["Retry"] == describe[name]["Retry"], name
    assert (
        states["AskAttributes"]["ItemProcessor"]["States"]["AskAttribute"]["Retry"]
        == describe["AskAttributes"]["ItemProcessor"]["States"]["AskAttribute"]["Retry"]
    )
    assert states["Prepare"]["Parameters"] == {
        "workflow.$": "$.workflow",
        "execution_name.$": "$.execution_name",
    }
    # Every failure after the plan ends in RecordFailure's FAILED record; the item itself succeeds.
    for name in ("AskAttributes", "MergeAttributes", "QueueCopy"):
        assert states[name]["Catch"][0]["Next"] == "RecordProductFailure", name
    assert states["Prepare"]["Catch"][0]["Next"] == "RecordFailure"
    assert states["RecordFailure"]["Next"] == states["RecordProductFailure"]["Next"] == "ProductFailed"
    assert states["QueueCopy"]["Parameters"]["execution_name.$"] == "$.execution_name"
    # QueueCopy's input is the model QueueCopy reads.
    from describer_steps.batch_copy import QueuedCopy

    assert {key.removesuffix(".$") for key in states["QueueCopy"]["Parameters"]} == set(
        QueuedCopy.model_fields
    )
