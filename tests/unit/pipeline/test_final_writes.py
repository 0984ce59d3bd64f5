"""Nothing finished is undone: final writes go over the run's PROCESSING record only, and every final
record and review is announced once per version from the record's outbox, whatever fails in between
(moto, the real handlers, each late step sent with the run's own input)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from record_failure import app as record_failure_app
from save_result import app as save_result_app

from describer_aws.product_events import ProductEvents, flush_outbox
from describer_aws.results_table import (
    OUTBOX_EVENTS,
    OUTBOX_INDEX,
    OUTBOX_KEY,
    RecordVersion,
    ResultsTable,
    utc_now,
)
from describer_rules.contracts import ProductRecord, Review, ReviewStatus, Status
from describer_rules.errors import EndpointThrottled, TransientError
from describer_steps import save_result as save_result_step
from describer_steps.publish_events import publish_pending

from .conftest import EVENT_BUS, TABLE, Aws, FakeLambdaContext, image_bytes, template_resource
from .test_outcomes import _failure_event, _prepare, _save_event

CONTEXT = FakeLambdaContext()


def _subscribe(aws: Aws) -> str:
    """Every product event on the stack's bus, delivered to a queue as a downstream service would."""
    sqs = boto3.client("sqs")
    queue_url = sqs.create_queue(QueueName="every-event")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    aws.events.put_rule(
        Name="every-product-event",
        EventBusName=EVENT_BUS,
        EventPattern=json.dumps({"source": ["product-describer"]}),
    )
    aws.events.put_targets(
        Rule="every-product-event", EventBusName=EVENT_BUS, Targets=[{"Id": "q", "Arn": queue_arn}]
    )
    return str(queue_url)


def _announced(queue_url: str) -> list[tuple[str, str, int]]:
    """(detail-type, status, record_version) of every event delivered so far."""
    sqs = boto3.client("sqs")
    events: list[tuple[str, str, int]] = []
    while messages := sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10).get("Messages", []):
        for message in messages:
            event = json.loads(message["Body"])
            events.append(
                (event["detail-type"], event["detail"]["status"], event["detail"]["record_version"])
            )
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
    return events


def _table(aws: Aws) -> ResultsTable:
    return ResultsTable(TABLE, aws.dynamodb)


def _stored(aws: Aws, product_id: str) -> ProductRecord:
    record = _table(aws).get(product_id)
    assert record is not None
    return record


def _review(aws: Aws, product_id: str) -> ProductRecord:
    """What the review desk writes: the record it read, accepted, conditional on that version."""
    record = _stored(aws, product_id)
    review = Review(
        status=ReviewStatus.ACCEPTED, reviewer="arn:aws:iam::123456789012:user/r", reviewed_at=utc_now()
    )
    reviewed = record.model_copy(
        update={"needs_review": False, "review_decision": review, "updated_at": review.reviewed_at}
    )
    assert _table(aws).write_review(reviewed, RecordVersion.of(record))
    return reviewed


def _events_down(monkeypatch: pytest.MonkeyPatch) -> None:
    """An EventBridge outage: every PutEvents fails."""

    def refuse(self: ProductEvents, entry: dict[str, Any]) -> None:
        raise TransientError("EventBridge PutEvents: ServiceUnavailable")

    monkeypatch.setattr(ProductEvents, "put", refuse)


def test_put_events_failing_after_save_leaves_the_completed_record_and_its_event(
    aws: Aws, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 26 (1a): SaveResult writes COMPLETED, PutEvents fails, RecordFailure gets the run's input."""
    queue = _subscribe(aws)
    workflow, prepared = _prepare(aws, "incoming/Shirts/15970.jpg", image_bytes())
    with monkeypatch.context() as outage:
        _events_down(outage)
        saved = save_result_app.handler(_save_event(workflow, prepared), CONTEXT)
        late = record_failure_app.handler(
            _failure_event(workflow, prepared, TransientError("PutEvents")), CONTEXT
        )
    assert (saved["saved"], saved["events_pending"]) == (True, True)
    assert (late["recorded"], late["completed"], late["events_pending"]) == (False, True, True)
    record = _stored(aws, "15970")
    assert (record.status, record.error_code, record.record_version) == (Status.COMPLETED, None, 2)
    assert _announced(queue) == []
    assert aws.record("15970")[OUTBOX_KEY] == "PENDING"  # type: ignore[index]
    # EventBridge is back: the next flush (a retry, PublishEvents) sends the event once.
    assert flush_outbox("15970", _table(aws), ProductEvents(EVENT_BUS, aws.events)) == 1
    assert flush_outbox("15970", _table(aws), ProductEvents(EVENT_BUS, aws.events)) == 0
    assert _announced(queue) == [("Product Described", "COMPLETED", 2)]
    stored = aws.record("15970")
    assert stored is not None and OUTBOX_KEY not in stored and OUTBOX_EVENTS not in stored


def test_a_reviewed_record_survives_a_repeated_save_result_and_a_late_record_failure(aws: Aws) -> None:
    """Issue 26 (1b): each late step is sent with the run's own input."""
    queue = _subscribe(aws)
    workflow, prepared = _prepare(aws, "incoming/Shirts/16000.jpg", image_bytes())
    event = _save_event(workflow, prepared)
    assert save_result_app.handler(event, CONTEXT)["saved"] is True
    reviewed = _review(aws, "16000")
    assert reviewed.record_version == 3, "the desk's record carries the version it was stored as"

    again = save_result_app.handler(event, CONTEXT)
    late = record_failure_app.handler(_failure_event(workflow, prepared, EndpointThrottled("late")), CONTEXT)

    assert (again["saved"], again["written"]) == (True, False)
    assert (late["recorded"], late["completed"]) == (False, True)
    record = _stored(aws, "16000")
    assert record.review_decision == reviewed.review_decision
    assert (record.status, record.needs_review, record.record_version) == (Status.COMPLETED, False, 3)
    assert "review" not in aws.record("16000"), "back in the review queue"  # type: ignore[operator]
    flush_outbox("16000", _table(aws), ProductEvents(EVENT_BUS, aws.events))
    # Described once; the review (version 3) is the desk's to announce (describer/review).
    assert _announced(queue) == [("Product Described", "COMPLETED", 2)]


def test_a_late_record_failure_never_fails_a_completed_run_even_unreviewed(aws: Aws) -> None:
    workflow, prepared = _prepare(aws, "incoming/Shirts/16001.jpg", image_bytes())
    save_result_app.handler(_save_event(workflow, prepared), CONTEXT)
    completed = aws.record("16001")
    late = record_failure_app.handler(_failure_event(workflow, prepared, EndpointThrottled("late")), CONTEXT)
    assert late["completed"] is True
    assert aws.record("16001") == completed


def test_a_repeated_record_failure_counts_as_recorded_and_announces_once(aws: Aws) -> None:
    queue = _subscribe(aws)
    workflow, prepared = _prepare(aws, "incoming/Shirts/16002.jpg", image_bytes())
    event = _failure_event(workflow, prepared, EndpointThrottled("busy"))
    first = record_failure_app.handler(event, CONTEXT)
    again = record_failure_app.handler(event, CONTEXT)
    assert (first["recorded"], again["recorded"], again["completed"]) == (True, True, False)
    assert _stored(aws, "16002").record_version == 2
    assert _announced(queue) == [("Product Description Failed", "FAILED", 2)]


def test_a_save_result_after_the_run_failed_does_not_complete_it(aws: Aws) -> None:
    workflow, prepared = _prepare(aws, "incoming/Shirts/16003.jpg", image_bytes())
    record_failure_app.handler(_failure_event(workflow, prepared, EndpointThrottled("busy")), CONTEXT)
    assert save_result_app.handler(_save_event(workflow, prepared), CONTEXT)["saved"] is False
    assert _stored(aws, "16003").status == Status.FAILED


def test_a_newer_upload_still_takes_over_a_reviewed_record(aws: Aws) -> None:
    queue = _subscribe(aws)
    old_workflow, old_prepared = _prepare(aws, "incoming/Shirts/16004.jpg", image_bytes())
    save_result_app.handler(_save_event(old_workflow, old_prepared), CONTEXT)
    _review(aws, "16004")
    new_workflow, new_prepared = _prepare(
        aws, "incoming/Shirts/16004.jpg", image_bytes("PNG"), time="2026-11-21T03:05:00Z"
    )
    assert new_prepared["claimed"] is True
    assert save_result_app.handler(_save_event(new_workflow, new_prepared), CONTEXT)["written"] is True
    record = _stored(aws, "16004")
    assert (record.execution_name, record.review_decision, record.record_version) == (
        new_workflow.execution_name,
        None,
        5,
    )
    flush_outbox("16004", _table(aws), ProductEvents(EVENT_BUS, aws.events))
    versions = [version for _, _, version in _announced(queue)]
    assert versions == [2, 5], "every final write announced, in version order (the review, 3, by the desk)"


def test_a_timeout_after_the_write_is_retried_without_a_second_write(
    aws: Aws, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The Lambda ran out of time after its write: Step Functions retries SaveResult, which finds it saved."""
    queue = _subscribe(aws)
    workflow, prepared = _prepare(aws, "incoming/Shirts/16005.jpg", image_bytes())

    def timed_out(*args: Any) -> bool:
        raise TimeoutError("Task timed out after 30.00 seconds")

    with monkeypatch.context() as slow, pytest.raises(TimeoutError):
        slow.setattr(save_result_step, "publish_committed", timed_out)
        save_result_app.handler(_save_event(workflow, prepared), CONTEXT)
    written = _stored(aws, "16005")
    retry = save_result_app.handler(_save_event(workflow, prepared), CONTEXT)
    assert (retry["saved"], retry["written"], retry["events_pending"]) == (True, False, False)
    assert _stored(aws, "16005") == written
    assert _announced(queue) == [("Product Described", "COMPLETED", 2)]


def test_the_sweeper_publishes_what_an_outage_left_once(aws: Aws, monkeypatch: pytest.MonkeyPatch) -> None:
    queue = _subscribe(aws)
    workflow, prepared = _prepare(aws, "incoming/Shirts/16006.jpg", image_bytes())
    with monkeypatch.context() as outage:
        _events_down(outage)
        assert save_result_app.handler(_save_event(workflow, prepared), CONTEXT)["events_pending"] is True
        later = datetime.now(UTC) + timedelta(minutes=5)
        down = publish_pending(_table(aws), ProductEvents(EVENT_BUS, aws.events), later)
    assert (down.records, down.published, down.failed) == (1, 0, ["16006"])
    events = ProductEvents(EVENT_BUS, aws.events)
    fresh = publish_pending(_table(aws), events)
    assert fresh.records == 0, "a record written within the grace period is left to its writer"
    swept = publish_pending(_table(aws), events, later)
    again = publish_pending(_table(aws), events, later)
    assert (swept.published, again.records) == (1, 0)
    assert _announced(queue) == [("Product Described", "COMPLETED", 2)]


class _NewerRunSavedDuringPut(ProductEvents):
    """PutEvents during which a newer upload's SaveResult writes (and flushes), once."""

    def __init__(self, aws: Aws, save_event: dict[str, Any]) -> None:
        super().__init__(EVENT_BUS, aws.events)
        self.save_event: dict[str, Any] | None = save_event

    def put(self, entry: dict[str, Any]) -> None:
        if self.save_event is not None:
            event, self.save_event = self.save_event, None
            assert save_result_app.handler(event, CONTEXT)["written"] is True
        super().put(entry)


class _FirstPutOnly(ProductEvents):
    """PutEvents that takes one entry, then fails."""

    def __init__(self, aws: Aws) -> None:
        super().__init__(EVENT_BUS, aws.events)
        self.taken = 0

    def put(self, entry: dict[str, Any]) -> None:
        if self.taken:
            raise TransientError("EventBridge PutEvents: entry failed with InternalFailure")
        super().put(entry)
        self.taken += 1


def _two_runs_saved_during_an_outage(aws: Aws, key: str, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """The first upload's run saved during an outage; the newer upload's SaveResult event, not sent yet."""
    workflow, prepared = _prepare(aws, key, image_bytes())
    with monkeypatch.context() as outage:
        _events_down(outage)
        assert save_result_app.handler(_save_event(workflow, prepared), CONTEXT)["events_pending"] is True
    newer, newer_prepared = _prepare(aws, key, image_bytes("PNG"), time="2026-11-21T03:05:00Z")
    assert newer_prepared["claimed"] is True
    return _save_event(newer, newer_prepared)


def test_a_final_write_during_the_sweepers_put_leaves_each_event_published_once(
    aws: Aws, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`make chaos`'s duplicate: PublishEvents leases the outbox an outage left (the first run's event)
    and, while its PutEvents is under way, the newer upload's SaveResult appends its own event (its
    flush finds the lease held). The sweep takes out only the event it published; the next sends the
    newer one alone, not the first again once the lease ran out."""
    queue = _subscribe(aws)
    newer_save = _two_runs_saved_during_an_outage(aws, "incoming/Shirts/16007.jpg", monkeypatch)
    later = datetime.now(UTC) + timedelta(minutes=5)
    first = publish_pending(_table(aws), _NewerRunSavedDuringPut(aws, newer_save), later)
    # A minute on: a lease the first sweep still held has run out.
    aws.dynamodb.update_item(
        TableName=TABLE,
        Key={"product_id": {"S": "16007"}},
        UpdateExpression="SET outbox_lease = :past",
        ExpressionAttributeValues={":past": {"S": "2000-01-01T00:00:00.000Z"}},
    )
    second = publish_pending(_table(aws), ProductEvents(EVENT_BUS, aws.events), later)
    assert (first.published, second.published) == (1, 1)
    assert _announced(queue) == [("Product Described", "COMPLETED", 2), ("Product Described", "COMPLETED", 4)]
    assert OUTBOX_EVENTS not in (aws.record("16007") or {})


def test_put_events_failing_midway_sends_only_what_it_did_not_take(
    aws: Aws, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two events wait (both runs saved during an outage); PutEvents takes the first and fails on the
    second: the next flush sends the second only."""
    queue = _subscribe(aws)
    newer_save = _two_runs_saved_during_an_outage(aws, "incoming/Shirts/16008.jpg", monkeypatch)
    with monkeypatch.context() as outage:
        _events_down(outage)
        assert save_result_app.handler(newer_save, CONTEXT)["events_pending"] is True
    with pytest.raises(TransientError):
        flush_outbox("16008", _table(aws), _FirstPutOnly(aws))
    assert flush_outbox("16008", _table(aws), ProductEvents(EVENT_BUS, aws.events)) == 1
    assert _announced(queue) == [("Product Described", "COMPLETED", 2), ("Product Described", "COMPLETED", 4)]


def test_the_template_declares_the_outbox_index_the_sweeper_reads() -> None:
    table = template_resource("ResultsTable")
    [index] = [i for i in table["GlobalSecondaryIndexes"] if i["IndexName"] == OUTBOX_INDEX]
    assert [key["AttributeName"] for key in index["KeySchema"]] == [OUTBOX_KEY, "updated_at"]
    statements = template_resource("PublishEventsFunction")["Policies"][0]["Statement"]
    assert {"Fn::Sub": f"${{ResultsTable.Arn}}/index/{OUTBOX_INDEX}"} in [s["Resource"] for s in statements]
    assert "DeadLetterQueue" in template_resource("RecordStoppedFunction")
    alarm = template_resource("StoppedExecutionDeadLetterAlarm")
    assert alarm["Dimensions"][0]["Value"] == {"Fn::GetAtt": ["StoppedExecutionDeadLetterQueue", "QueueName"]}
