"""The starter Lambda against moto's Step Functions: deterministic names, duplicates, admission control."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from botocore.exceptions import EndpointConnectionError
from start_workflow import app as starter_app

from describer_rules.catalogue import load_catalogue
from describer_rules.contracts import ErrorCode
from describer_rules.errors import InvalidInput
from describer_steps.photo_sets import MAX_DELAY_S, PhotoSets
from describer_steps.prepare import SourceObject, known_category
from describer_steps.start_workflow import SqsRecord, admit
from describer_steps.states import ObjectCreatedEvent, RedriveMessage, WorkflowInput

from .conftest import BUCKET, REPO, Aws, FakeLambdaContext, event_bridge_event

CONTEXT = FakeLambdaContext()


@pytest.fixture
def state_machine(aws: Aws, monkeypatch: pytest.MonkeyPatch) -> str:
    definition = {"StartAt": "Wait", "States": {"Wait": {"Type": "Wait", "Seconds": 60, "End": True}}}
    arn = aws.sfn.create_state_machine(
        name="describe-product",
        definition=json.dumps(definition),
        roleArn="arn:aws:iam::123456789012:role/sfn",
    )["stateMachineArn"]
    monkeypatch.setenv("STATE_MACHINE_ARN", arn)
    queue_url = boto3.client("sqs").create_queue(QueueName="admission")["QueueUrl"]
    monkeypatch.setenv("ADMISSION_QUEUE_URL", queue_url)
    dead_letter_url = boto3.client("sqs").create_queue(QueueName="admission-dlq")["QueueUrl"]
    monkeypatch.setenv("ADMISSION_DEAD_LETTER_QUEUE_URL", dead_letter_url)
    return str(arn)


def _sqs(*events: dict[str, Any]) -> dict[str, Any]:
    sample = json.loads((REPO / "events" / "sqs_object_created.json").read_text())["Records"][0]
    return {
        "Records": [
            {**sample, "messageId": f"m{i}", "body": json.dumps(event)} for i, event in enumerate(events)
        ]
    }


def _running(state_machine: str) -> list[dict[str, Any]]:
    sfn = boto3.client("stepfunctions")
    return list(sfn.list_executions(stateMachineArn=state_machine, statusFilter="RUNNING")["executions"])


def test_each_upload_starts_one_execution_named_after_it(state_machine: str) -> None:
    event = event_bridge_event("incoming/Shirts/15970.jpg", "v1")
    assert starter_app.handler(_sqs(event), CONTEXT) == {"batchItemFailures": []}
    [execution] = _running(state_machine)
    described = boto3.client("stepfunctions").describe_execution(executionArn=execution["executionArn"])
    workflow = WorkflowInput.model_validate_json(described["input"])
    assert execution["name"] == workflow.execution_name
    assert (workflow.key, workflow.version_id, workflow.sequencer) == (
        "incoming/Shirts/15970.jpg",
        "v1",
        "0062E99A88DC407460",
    )


def test_a_redelivered_event_is_success_without_a_second_run(state_machine: str) -> None:
    event = event_bridge_event("incoming/Shirts/15970.jpg", "v1")
    assert starter_app.handler(_sqs(event, event), CONTEXT) == {"batchItemFailures": []}
    assert starter_app.handler(_sqs(event), CONTEXT) == {"batchItemFailures": []}
    assert len(_running(state_machine)) == 1


def test_a_redelivery_after_the_run_ended_is_success_without_a_second_run(state_machine: str) -> None:
    event = event_bridge_event("incoming/Shirts/15970.jpg", "v1")
    starter_app.handler(_sqs(event), CONTEXT)
    sfn = boto3.client("stepfunctions")
    sfn.stop_execution(executionArn=_running(state_machine)[0]["executionArn"])
    assert starter_app.handler(_sqs(event), CONTEXT) == {"batchItemFailures": []}
    assert _running(state_machine) == []


def test_uploads_over_the_running_limit_go_back_to_the_queue(state_machine: str) -> None:
    events = [event_bridge_event(f"incoming/Shirts/{n}.jpg", "v1") for n in range(3)]
    response = starter_app.handler(_sqs(*events), CONTEXT)
    assert response == {"batchItemFailures": [{"itemIdentifier": "m2"}]}
    assert len(_running(state_machine)) == 2
    again = starter_app.handler(_sqs(events[2]), CONTEXT)
    assert again == {"batchItemFailures": [{"itemIdentifier": "m0"}]}


def test_a_message_that_is_not_an_s3_event_goes_to_the_dead_letter_queue(state_machine: str) -> None:
    not_s3 = {"source": "aws.ec2", "detail-type": "Object Created"}
    good = event_bridge_event("incoming/Shirts/1.jpg", "v1")
    assert starter_app.handler(_sqs(not_s3, good), CONTEXT) == {"batchItemFailures": []}
    assert len(_running(state_machine)) == 1
    parked = boto3.client("sqs").receive_message(
        QueueUrl=os.environ["ADMISSION_DEAD_LETTER_QUEUE_URL"], MaxNumberOfMessages=10
    )["Messages"]
    assert [json.loads(message["Body"]) for message in parked] == [not_s3]


def test_a_malformed_message_that_cannot_be_parked_is_retried(
    state_machine: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ADMISSION_DEAD_LETTER_QUEUE_URL", os.environ["ADMISSION_QUEUE_URL"] + "-missing")
    malformed = {"source": "aws.s3", "detail-type": "Object Created"}
    assert starter_app.handler(_sqs(malformed), CONTEXT) == {"batchItemFailures": [{"itemIdentifier": "m0"}]}


class _Entries:
    """Matches ChangeMessageVisibilityBatch entries: one per deferred record, waits within bounds."""

    def __init__(self, bounds: dict[str, tuple[int, int]]) -> None:
        self.bounds = bounds

    def __eq__(self, entries: object) -> bool:
        assert isinstance(entries, list)
        assert {entry["ReceiptHandle"] for entry in entries} == set(self.bounds)
        for entry in entries:
            low, high = self.bounds[entry["ReceiptHandle"]]
            assert low <= entry["VisibilityTimeout"] <= high, entry
        return True


def test_deferred_messages_come_back_sooner_the_fewer_times_they_were_deferred() -> None:
    from botocore.stub import Stubber

    from describer_steps.start_workflow import SqsRecord, reoffer_soon

    def record(handle: str, receives: int) -> SqsRecord:
        return SqsRecord(
            messageId=handle,
            receiptHandle=handle,
            body="{}",
            attributes={"ApproximateReceiveCount": str(receives)},
        )

    sqs = boto3.client("sqs", region_name="us-east-1")
    with Stubber(sqs) as stubber:
        expected = {
            "QueueUrl": "q",
            "Entries": _Entries({"first": (5, 10), "second": (10, 15), "old": (60, 65)}),
        }
        stubber.add_response("change_message_visibility_batch", {"Successful": [], "Failed": []}, expected)
        reoffer_soon(sqs, "q", [record("first", 1), record("second", 2), record("old", 40)])
        stubber.assert_no_pending_responses()


def test_deferred_messages_of_a_real_queue_are_reoffered_without_error(state_machine: str) -> None:
    sqs = boto3.client("sqs")
    queue_url = os.environ["ADMISSION_QUEUE_URL"]
    for n in range(3):
        sqs.send_message(
            QueueUrl=queue_url, MessageBody=json.dumps(event_bridge_event(f"incoming/Shirts/{n}.jpg", "v1"))
        )
    received = sqs.receive_message(
        QueueUrl=queue_url, MaxNumberOfMessages=10, MessageSystemAttributeNames=["All"]
    )
    records = [
        {
            "messageId": m["MessageId"],
            "receiptHandle": m["ReceiptHandle"],
            "body": m["Body"],
            "attributes": m["Attributes"],
        }
        for m in received["Messages"]
    ]
    response = starter_app.handler({"Records": records}, CONTEXT)
    assert len(response["batchItemFailures"]) == 1
    assert len(_running(state_machine)) == 2


def test_a_redrive_message_starts_the_next_run_of_the_same_upload(state_machine: str) -> None:
    upload = WorkflowInput.from_event(
        ObjectCreatedEvent.model_validate(event_bridge_event("incoming/1.jpg", "v1"))
    )
    redrive = upload.model_copy(update={"redrive_count": 1})
    message = RedriveMessage(redrive=redrive).model_dump(mode="json")
    assert starter_app.handler(_sqs(message, message), CONTEXT) == {"batchItemFailures": []}
    [execution] = _running(state_machine)
    assert execution["name"] == redrive.execution_name != upload.execution_name


# --- product folders: settle, then one run per photo set ---------------------------------------------


class _Clock:
    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now


def _photo_sets(clock: _Clock, settle_seconds: int = 10) -> PhotoSets:
    return PhotoSets(
        boto3.client("s3"),
        boto3.client("sqs"),
        os.environ["ADMISSION_QUEUE_URL"],
        settle_seconds,
        ("incoming/", "catalogue/"),
        known_category(load_catalogue()),
        clock,
    )


def _admit(state_machine: str, photo_sets: PhotoSets, *bodies: dict[str, Any]) -> Any:
    records = [SqsRecord.model_validate(record) for record in _sqs(*bodies)["Records"]]
    return admit(records, boto3.client("stepfunctions"), state_machine, 20, photo_sets)


def _queued() -> list[tuple[dict[str, Any], str]]:
    """(body, DelaySeconds) of what the starter sent to the admission queue, drained."""
    url = os.environ["ADMISSION_QUEUE_URL"]
    # moto keeps delayed messages invisible: read its store instead of waiting the delay out.
    from moto.core.utils import unix_time_millis
    from moto.sqs.models import sqs_backends

    queue = sqs_backends["123456789012"]["us-east-1"].queues[url.rsplit("/", 1)[-1]]
    now_ms = unix_time_millis()
    sent = [
        (json.loads(message.body), str(round(max(0, message.delayed_until - now_ms) / 1000)))
        for message in queue._messages
    ]
    queue._messages.clear()
    return sent


def test_photos_of_a_product_folder_start_one_run_once_the_folder_has_settled(
    aws: Aws, state_machine: str
) -> None:
    clock = _Clock()
    photo_sets = _photo_sets(clock)
    folder = "incoming/Shirts/P-1/"
    versions = {name: aws.upload(f"{folder}{name}", b"x") for name in ("front.jpg", "back.jpg", "detail.jpg")}
    events = [event_bridge_event(f"{folder}{name}", version) for name, version in versions.items()]

    outcome = _admit(state_machine, photo_sets, *events)
    assert (len(outcome.settling), outcome.started) == (3, [])
    settle = {"settle": {"bucket": BUCKET, "folder": folder}}
    assert _queued() == [(settle, "10")] * 3

    # Too early: the newest photo is 4 s old, so the request comes back in the remaining 6 s.
    clock.now = datetime.now(UTC) + timedelta(seconds=4)
    assert len(_admit(state_machine, photo_sets, settle).settling) == 1
    [(_, delay)] = _queued()
    assert 5 <= int(delay) <= 7
    assert _running(state_machine) == []

    # Settled: the three requests of the burst (and a redelivery) start one run over the three photos.
    clock.now = datetime.now(UTC) + timedelta(seconds=11)
    outcome = _admit(state_machine, photo_sets, settle, settle, settle)
    assert (len(outcome.started), len(outcome.duplicates)) == (1, 2)
    _admit(state_machine, photo_sets, settle)  # a running twin: StartExecution is idempotent
    [execution] = _running(state_machine)
    described = aws.sfn.describe_execution(executionArn=execution["executionArn"])
    workflow = WorkflowInput.model_validate_json(described["input"])
    assert execution["name"] == workflow.execution_name and execution["name"].startswith("P-1-set-")
    assert workflow.key == folder
    assert [(photo.key, photo.version_id) for photo in workflow.photos or []] == sorted(
        (f"{folder}{name}", version) for name, version in versions.items()
    )

    # A photo deleted later: a new set, a new run that orders after the first.
    aws.s3.delete_object(Bucket=BUCKET, Key=f"{folder}back.jpg")
    deleted = {**event_bridge_event(f"{folder}back.jpg", "dm"), "detail-type": "Object Deleted"}
    assert len(_admit(state_machine, photo_sets, deleted).settling) == 1
    clock.now = datetime.now(UTC) + timedelta(seconds=11)
    assert len(_admit(state_machine, photo_sets, settle).started) == 1
    later = [
        WorkflowInput.model_validate_json(
            aws.sfn.describe_execution(executionArn=run["executionArn"])["input"]
        )
        for run in _running(state_machine)
        if run["name"] != execution["name"]
    ]
    assert [len(run.photos or []) for run in later] == [2]
    assert later[0].order_token > workflow.order_token


def test_a_product_folder_s_folder_marker_starts_nothing(aws: Aws, state_machine: str) -> None:
    outcome = _admit(state_machine, _photo_sets(_Clock()), event_bridge_event("incoming/Shirts/P-4/", "v1"))
    assert (outcome.ignored, outcome.settling, outcome.started) == (["m0"], [], [])
    assert _queued() == []


def test_deleting_a_one_photo_upload_starts_nothing(aws: Aws, state_machine: str) -> None:
    deleted = {**event_bridge_event("incoming/Shirts/15970.jpg", "dm"), "detail-type": "Object Deleted"}
    outcome = _admit(state_machine, _photo_sets(_Clock()), deleted)
    assert (outcome.ignored, outcome.started, outcome.malformed) == (["m0"], [], [])
    assert _running(state_machine) == []


def test_a_one_photo_upload_in_a_category_folder_is_not_a_product_folder(
    aws: Aws, state_machine: str
) -> None:
    outcome = _admit(
        state_machine, _photo_sets(_Clock()), event_bridge_event("incoming/brand/Shirts/1.jpg", "v1")
    )
    assert len(outcome.started) == 1 and outcome.settling == []


def test_the_starter_lambda_sends_product_folder_photos_to_settle(aws: Aws, state_machine: str) -> None:
    version = aws.upload("incoming/Tshirts/T-9/a.jpg", b"x")
    response = starter_app.handler(_sqs(event_bridge_event("incoming/Tshirts/T-9/a.jpg", version)), CONTEXT)
    assert response == {"batchItemFailures": []}
    assert _queued() == [({"settle": {"bucket": BUCKET, "folder": "incoming/Tshirts/T-9/"}}, "10")]


def _iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _settle_runs(state_machine: str, photo_sets: PhotoSets, clock: _Clock, *events: dict[str, Any]) -> None:
    """Send ``events`` through admission, then their settle requests once the folder is quiet."""
    assert len(_admit(state_machine, photo_sets, *events).settling) == len(events)
    requests = [body for body, _ in _queued()]
    clock.now = max(
        datetime.fromisoformat(event["time"].replace("Z", "+00:00")) for event in events
    ) + timedelta(seconds=11)
    _admit(state_machine, photo_sets, *requests)
    _queued()


def _deleted(key: str, version: str, moment: datetime, deletion_type: str) -> dict[str, Any]:
    """An "Object Deleted" event as S3 sends it through EventBridge."""
    event = {**event_bridge_event(key, version, time=_iso(moment)), "detail-type": "Object Deleted"}
    event["detail"] = {**event["detail"], "deletion-type": deletion_type}
    return event


def _runs_by_token(aws: Aws, state_machine: str) -> list[WorkflowInput]:
    runs = [
        WorkflowInput.model_validate_json(
            aws.sfn.describe_execution(executionArn=run["executionArn"])["input"]
        )
        for run in aws.sfn.list_executions(stateMachineArn=state_machine)["executions"]
    ]
    return sorted(runs, key=lambda run: run.order_token)


@pytest.mark.parametrize("removed", ["the newest version, for good", "a delete marker"])
def test_a_photo_set_s_order_token_never_goes_backwards(aws: Aws, state_machine: str, removed: str) -> None:
    """A version deleted for good or a delete marker removed takes the newest change out of the listing;
    the next set's run must still order after the last (records compare tokens as text)."""
    clock, folder = _Clock(), "incoming/Shirts/P-7/"
    photo_sets = _photo_sets(clock)
    start = datetime.now(UTC)
    front, back = aws.upload(f"{folder}front.jpg", b"x"), aws.upload(f"{folder}back.jpg", b"x")
    uploads = [event_bridge_event(f"{folder}front.jpg", front, time=_iso(start))]
    uploads.append(event_bridge_event(f"{folder}back.jpg", back, time=_iso(start)))
    _settle_runs(state_machine, photo_sets, clock, *uploads)
    if removed == "a delete marker":
        marker = aws.s3.delete_object(Bucket=BUCKET, Key=f"{folder}back.jpg")["VersionId"]
        deleted = _deleted(f"{folder}back.jpg", marker, clock.now, "Delete Marker Created")
        _settle_runs(state_machine, photo_sets, clock, deleted)
        gone = marker
    else:
        gone = back
    aws.s3.delete_object(Bucket=BUCKET, Key=f"{folder}back.jpg", VersionId=gone)
    removal = _deleted(f"{folder}back.jpg", gone, clock.now, "Permanently Deleted")
    _settle_runs(state_machine, photo_sets, clock, removal)

    both, front_only = [f"{folder}back.jpg", f"{folder}front.jpg"], [f"{folder}front.jpg"]
    # In token order the runs follow the changes: the last change's set has the largest token (and
    # a set restored to an earlier one is a new run, not a duplicate of the first).
    expected = [both, front_only, both] if removed == "a delete marker" else [both, front_only]
    runs = _runs_by_token(aws, state_machine)
    assert [[photo.key for photo in run.photos or []] for run in runs] == expected
    assert len({run.order_token for run in runs}) == len(runs)


def test_a_burst_whose_events_come_seconds_after_the_uploads_starts_one_run(
    aws: Aws, state_machine: str
) -> None:
    """Upload events may be stamped a second or more after their versions' LastModified: the burst's
    settle requests must still agree on one run."""
    clock, folder = _Clock(), "incoming/Shirts/P-8/"
    photo_sets = _photo_sets(clock)
    start = datetime.now(UTC)
    names = ("a.jpg", "b.jpg", "c.jpg")
    versions = [aws.upload(f"{folder}{name}", b"x") for name in names]
    events = [
        event_bridge_event(f"{folder}{name}", version, time=_iso(start + timedelta(seconds=1 + index)))
        for index, (name, version) in enumerate(zip(names, versions, strict=True))
    ]
    _settle_runs(state_machine, photo_sets, clock, *events)
    assert len(_runs_by_token(aws, state_machine)) == 1


def test_the_template_s_photo_parameters_match_the_code() -> None:
    from cfnlint.decode import decode

    from describer_rules.contracts import MAX_PHOTOS_PER_REQUEST
    from describer_steps.settings import DEFAULT_MAX_PHOTOS_PER_PRODUCT, DEFAULT_PHOTO_SETTLE_SECONDS

    template, _ = decode(str(REPO / "template.yaml"))
    assert template is not None
    settle, photos = (
        template["Parameters"]["PhotoSettleSeconds"],
        template["Parameters"]["MaxPhotosPerProduct"],
    )
    assert (settle["Default"], settle["MaxValue"]) == (DEFAULT_PHOTO_SETTLE_SECONDS, MAX_DELAY_S)
    assert (photos["Default"], photos["MaxValue"]) == (DEFAULT_MAX_PHOTOS_PER_PRODUCT, MAX_PHOTOS_PER_REQUEST)
    rule = template["Resources"]["UploadCreatedRule"]["Properties"]["EventPattern"]
    assert rule["detail-type"] == ["Object Created", "Object Deleted"]


# --- one bad message fails alone ---------------------------------------------------------------------


def test_a_listing_that_fails_fails_its_own_message_alone(aws: Aws, state_machine: str) -> None:
    """A BotoCoreError from ListObjectVersions: that settle request is retried, the rest of the batch is
    done, and the photo event beside it is not sent to settle a second time."""
    clock = _Clock()
    s3 = boto3.client("s3")

    def unreachable(params: dict[str, Any], **kwargs: Any) -> None:
        if "incoming/Shirts/BAD/" in str(params):  # one folder's listing: the network fails
            raise EndpointConnectionError(endpoint_url="https://s3.example")

    s3.meta.events.register("before-call.s3.ListObjectVersions", unreachable)
    photo_sets = PhotoSets(
        s3,
        boto3.client("sqs"),
        os.environ["ADMISSION_QUEUE_URL"],
        10,
        ("incoming/",),
        known_category(load_catalogue()),
        clock,
    )
    version = aws.upload("incoming/Shirts/OK/a.jpg", b"x")
    bad_settle = {"settle": {"bucket": BUCKET, "folder": "incoming/Shirts/BAD/"}}
    batch = [
        event_bridge_event("incoming/Shirts/OK/a.jpg", version),
        bad_settle,
        event_bridge_event("incoming/Shirts/15970.jpg", "v1"),
    ]
    outcome = _admit(state_machine, photo_sets, *batch)
    assert (outcome.settling, outcome.failed, outcome.started) == (["m0"], ["m1"], ["m2"])
    assert outcome.batch_response() == {"batchItemFailures": [{"itemIdentifier": "m1"}]}
    assert [body["settle"]["folder"] for body, _ in _queued()] == ["incoming/Shirts/OK/"]


def test_a_key_that_cannot_be_decoded_fails_no_batch_and_ends_in_a_failed_run(
    aws: Aws, state_machine: str
) -> None:
    """``folder_of`` raises InvalidInput for it: the upload runs as a one-photo upload, whose Prepare
    fails with INVALID_KEY (RecordFailure then writes its FAILED record), and its batch is unharmed."""
    undecodable = event_bridge_event("incoming/Shirts/P-1/%FF.jpg", "v1")
    good = event_bridge_event("incoming/Shirts/15970.jpg", "v1")
    assert starter_app.handler(_sqs(undecodable, good), CONTEXT) == {"batchItemFailures": []}
    inputs = [
        WorkflowInput.model_validate_json(
            aws.sfn.describe_execution(executionArn=run["executionArn"])["input"]
        )
        for run in _running(state_machine)
    ]
    assert sorted(run.key for run in inputs) == ["incoming/Shirts/15970.jpg", "incoming/Shirts/P-1/%FF.jpg"]
    bad = next(run for run in inputs if run.key.endswith("%FF.jpg"))
    assert bad.photos is None
    with pytest.raises(InvalidInput) as raised:
        SourceObject.locate(aws.s3, bad)
    assert raised.value.code == ErrorCode.INVALID_KEY


def test_an_unexpected_error_parks_its_message_and_spares_the_batch(
    aws: Aws, state_machine: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(self: PhotoSets, request: Any) -> Any:
        raise RuntimeError("a bug")

    monkeypatch.setattr(PhotoSets, "settled", broken)
    settle = {"settle": {"bucket": BUCKET, "folder": "incoming/Shirts/P-2/"}}
    good = event_bridge_event("incoming/Shirts/15970.jpg", "v1")
    assert starter_app.handler(_sqs(settle, good), CONTEXT) == {"batchItemFailures": []}
    assert len(_running(state_machine)) == 1
    parked = boto3.client("sqs").receive_message(
        QueueUrl=os.environ["ADMISSION_DEAD_LETTER_QUEUE_URL"], MaxNumberOfMessages=10
    )["Messages"]
    assert [json.loads(message["Body"]) for message in parked] == [settle]


def test_the_starter_reports_batch_item_failures() -> None:
    from cfnlint.decode import decode

    template, _ = decode(str(REPO / "template.yaml"))
    assert template is not None
    events = template["Resources"]["StartWorkflowFunction"]["Properties"]["Events"]
    assert events["Uploads"]["Properties"]["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
