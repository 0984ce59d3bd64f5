"""The review desk's rules against the results table and the bus in moto: conditional writes, the
record of a review, the Product Reviewed event, refusals that write nothing."""

from __future__ import annotations

import pytest

from describer.review.desk import (
    ChangedSinceOpened,
    RecordGone,
    ReviewNotAnnounced,
    ReviewRefused,
    photos_of,
    review_queue,
)
from describer_aws.product_events import ProductEvents
from describer_aws.results_table import RecordVersion
from describer_rules.contracts import (
    ImageStatus,
    ProductEventType,
    ProductImage,
    ProductRecord,
    ReviewStatus,
    Status,
)

from .conftest import BUS, REVIEWER, SHIRT, Stack, shirt_record


def test_the_queue_is_oldest_first_with_counts_and_filters(stack: Stack) -> None:
    stack.put(shirt_record("b-newer", updated_at="2026-12-01T11:00:00.000Z"))
    stack.put(shirt_record("a-older", updated_at="2026-12-01T09:00:00.000Z"))
    tee = shirt_record("c-tee", updated_at="2026-12-01T10:00:00.000Z", category="Tshirts")
    stack.put(tee.model_copy(update={"unknown_attributes": ["Collar"]}))
    stack.put(shirt_record("d-sure", fabric_confidence=0.95))  # not in the sparse index

    queue = stack.desk().queue()
    assert [entry.record.product_id for entry in queue.entries] == ["a-older", "c-tee", "b-newer"]
    assert queue.total == 3
    assert queue.by_category == {"Shirts": 2, "Tshirts": 1}
    assert queue.by_attribute == {"Collar": 1, "Fabric": 3}
    assert [e.record.product_id for e in stack.desk().queue(category="Tshirts").entries] == ["c-tee"]
    assert [e.record.product_id for e in stack.desk().queue(attribute="Collar").entries] == ["c-tee"]
    assert review_queue([], 0.6).entries == []


def test_accept_clears_needs_review_and_the_queue_marker_and_announces_it(stack: Stack) -> None:
    record = stack.put(shirt_record())
    assert stack.item("15970")["review"] == {"S": "PENDING"}  # type: ignore[index]

    stack.desk().accept("15970", RecordVersion.of(record))

    item = stack.item("15970")
    assert item is not None and "review" not in item and item["needs_review"] == {"BOOL": False}
    stored = stack.table.get("15970")
    assert stored is not None and stored.review_decision is not None
    assert stored.review_decision.status == ReviewStatus.ACCEPTED
    assert stored.review_decision.reviewer == REVIEWER
    assert stored.review_decision.changes == []
    assert stored.attributes == record.attributes and stored.content == record.content
    assert stored.updated_at == stored.review_decision.reviewed_at != record.updated_at
    assert stack.desk().queue().total == 0
    [event] = stack.reviewed_events()
    assert event["detail-type"] == ProductEventType.REVIEWED.value
    assert event["detail"]["review_decision"]["status"] == "accepted"
    assert event["detail"]["product_id"] == "15970"


def test_a_corrected_attribute_rewrites_the_copy_and_records_before_and_after(stack: Stack) -> None:
    record = stack.put(shirt_record())
    desk = stack.desk()

    reviewed = desk.correct("15970", RecordVersion.of(record), {**SHIRT, "Fabric": "polyester"}, {})

    assert stack.rewriter.calls == [{**SHIRT, "Fabric": "Polyester"}]  # canonical spelling
    stored = stack.table.get("15970")
    assert stored == reviewed
    assert stored.attributes["Fabric"] == "Polyester"
    assert "Fabric" not in stored.confidence  # the model's probability was for the old value
    assert stored.needs_review is False
    # Written with every attribute vouched for: the copy now names the fabric it left out before.
    assert "polyester" in stored.content["en-US"].description.lower()
    assert "polyester" not in record.content["en-US"].description.lower()
    assert stored.description == stored.content["en-US"].description
    assert stored.token_usage["en-US"].input > record.token_usage["en-US"].input
    assert stored.review_decision is not None
    assert stored.review_decision.status == ReviewStatus.CORRECTED
    [change] = stored.review_decision.changes
    assert (change.field, change.before, change.after) == ("attributes.Fabric", "Cotton", "Polyester")
    [event] = stack.reviewed_events()
    assert event["detail"]["review_decision"]["changes"][0]["after"] == "Polyester"
    assert "polyester" in event["detail"]["content"]["en-US"]["description"].lower()


def test_an_edited_copy_field_is_checked_and_recorded(stack: Stack) -> None:
    record = stack.put(shirt_record())
    copy = record.content["en-US"]
    bullets = [*copy.bullets[:-1], "Long sleeves that roll up neatly"]
    edited = {"en-US": copy.model_copy(update={"bullets": bullets}), "es-ES": record.content["es-ES"]}

    stack.desk().correct("15970", RecordVersion.of(record), dict(SHIRT), edited)

    stored = stack.table.get("15970")
    assert stored is not None and stored.content["en-US"].bullets == bullets
    assert stored.content["es-ES"] == record.content["es-ES"]
    assert stack.rewriter.calls == []  # no attribute changed: the copy is not re-written
    assert stored.review_decision is not None
    [change] = stored.review_decision.changes
    assert change.field == "content.en-US.bullets"
    assert change.before == copy.bullets and change.after == bullets


@pytest.mark.parametrize(
    ("attributes", "edit", "message"),
    [
        ({"Fabric": "Denim"}, None, r"Fabric: 'Denim' is not a catalogue value \(one of: Cotton, Polyester"),
        ({"Waist": "High"}, None, "Waist: the record has no such attribute"),
        ({}, {"title": "A" * 200}, "en-US: title_length"),
        ({}, {"description": "A blue shirt in red."}, "en-US: description_length"),
        ({}, {"bullets": ["Short sleeves", "Blue", "Slim fit"]}, "attribute_contradicted"),
        ({}, None, "nothing was changed: use Accept"),
    ],
)
def test_a_refused_correction_names_the_problem_and_writes_nothing(
    stack: Stack, attributes: dict[str, str], edit: dict[str, object] | None, message: str
) -> None:
    record = stack.put(shirt_record())
    before = stack.item("15970")
    content = {"en-US": record.content["en-US"].model_copy(update=edit)} if edit else {}

    with pytest.raises(ReviewRefused, match=message):
        stack.desk().correct("15970", RecordVersion.of(record), attributes, content)

    assert stack.item("15970") == before
    assert stack.reviewed_events() == []


def test_two_reviewers_of_one_version_one_is_applied_the_other_told(stack: Stack) -> None:
    record = stack.put(shirt_record())
    opened = RecordVersion.of(record)  # both open the same version
    first, second = stack.desk("arn:aws:sts::1:user/first"), stack.desk("arn:aws:sts::1:user/second")

    first.correct("15970", opened, {"Fabric": "Polyester"}, {})
    with pytest.raises(ChangedSinceOpened, match="changed since you opened it") as told:
        second.correct("15970", opened, {"Fabric": "Blended"}, {})

    stored = stack.table.get("15970")
    assert stored is not None and stored.attributes["Fabric"] == "Polyester"
    assert stored.review_decision is not None and stored.review_decision.reviewer.endswith("/first")
    assert told.value.current == stored
    assert len(stack.reviewed_events()) == 1


def test_a_write_in_between_is_caught_by_the_conditional_write_itself(stack: Stack) -> None:
    """The other reviewer saves while this one's copy is being re-written: the version check before
    the rewrite passed, the conditional write still refuses."""
    record = stack.put(shirt_record())
    opened = RecordVersion.of(record)
    stack.rewriter.before_return = lambda: stack.desk("arn:aws:sts::1:user/other").accept("15970", opened)

    with pytest.raises(ChangedSinceOpened):
        stack.desk().correct("15970", opened, {"Fabric": "Polyester"}, {})

    stored = stack.table.get("15970")
    assert stored is not None and stored.attributes["Fabric"] == "Cotton"
    assert stored.review_decision is not None and stored.review_decision.status == ReviewStatus.ACCEPTED


def test_a_newer_upload_wins_over_an_older_review(stack: Stack) -> None:
    record = stack.put(shirt_record())
    opened = RecordVersion.of(record)
    newer = shirt_record(order_token="2026-12-01T12:00:00.000000Z#0002").model_copy(
        update={"status": Status.PROCESSING, "execution_name": "15970-newer-run"}
    )
    assert stack.table.write_if_current(newer)  # the pipeline's write is not blocked by the review

    with pytest.raises(ChangedSinceOpened, match="now PROCESSING"):
        stack.desk().accept("15970", opened)
    stored = stack.table.get("15970")
    assert stored is not None and stored.execution_name == "15970-newer-run"
    assert stored.review_decision is None


def test_a_reviewed_record_is_still_taken_over_by_a_newer_upload(stack: Stack) -> None:
    record = stack.put(shirt_record())
    stack.desk().accept("15970", RecordVersion.of(record))
    newer = shirt_record(order_token="2026-12-01T12:00:00.000000Z#0002")

    assert stack.table.write_if_current(newer)
    stored = stack.table.get("15970")
    assert stored is not None and stored.review_decision is None and stored.needs_review is True
    assert stack.item("15970")["review"] == {"S": "PENDING"}  # type: ignore[index]


def test_a_record_that_no_longer_exists_is_refused(stack: Stack) -> None:
    record = stack.put(shirt_record())
    stack.dynamodb.delete_item(TableName="results-review-test", Key={"product_id": {"S": "15970"}})

    with pytest.raises(RecordGone, match="'15970' no longer exists"):
        stack.desk().accept("15970", RecordVersion.of(record))
    assert stack.item("15970") is None


def test_reject_needs_a_reason_and_records_it(stack: Stack) -> None:
    record = stack.put(shirt_record())
    with pytest.raises(ReviewRefused, match="needs a reason"):
        stack.desk().reject("15970", RecordVersion.of(record), "  ")

    stack.desk().reject("15970", RecordVersion.of(record), "The photo shows two shirts")

    stored = stack.table.get("15970")
    assert stored is not None and stored.review_decision is not None
    assert stored.review_decision.status == ReviewStatus.REJECTED
    assert stored.review_decision.reason == "The photo shows two shirts"
    assert stored.needs_review is False and stored.content == record.content


def test_only_a_completed_record_is_reviewed(stack: Stack) -> None:
    failed = stack.put(shirt_record().model_copy(update={"status": Status.FAILED, "content": {}}))
    with pytest.raises(ReviewRefused, match="is FAILED: only a COMPLETED record"):
        stack.desk().accept("15970", RecordVersion.of(failed))


def test_a_review_whose_event_cannot_be_published_is_recorded_and_says_so(stack: Stack) -> None:
    record = stack.put(shirt_record())
    desk = stack.desk()
    desk.events = ProductEvents("no-such-bus", stack.events)

    with pytest.raises(ReviewNotAnnounced, match="is recorded, but its Product Reviewed event could not"):
        desk.accept("15970", RecordVersion.of(record))
    stored = stack.table.get("15970")
    assert stored is not None and stored.review_decision is not None and stored.needs_review is False


def test_a_resubmitted_review_is_the_same_review_and_is_announced_again(stack: Stack) -> None:
    record = stack.put(shirt_record())
    opened, review_id = RecordVersion.of(record), "form-of-alex-0123456789"
    desk = stack.desk()
    desk.events = ProductEvents("no-such-bus", stack.events)
    with pytest.raises(ReviewNotAnnounced) as unannounced:
        desk.correct("15970", opened, {"Fabric": "Polyester"}, {}, review_id)
    written = stack.table.get("15970")
    assert written == unannounced.value.record and written is not None
    assert written.review_decision is not None and written.review_decision.review_id == review_id

    desk.events = ProductEvents(BUS, stack.events)
    calls = len(stack.rewriter.calls)
    assert desk.correct("15970", opened, {"Fabric": "Polyester"}, {}, review_id) == written
    assert len(stack.rewriter.calls) == calls  # recognised before any work: no second rewrite
    assert stack.table.get("15970") == written
    [event] = stack.reviewed_events()
    assert event["detail"]["review_decision"]["review_id"] == review_id
    assert desk.announce("15970", review_id) == written  # announcing again is always allowed

    # Another review of the old version, or the same id from another reviewer, is a change in between.
    with pytest.raises(ChangedSinceOpened):
        desk.accept("15970", opened, "another-review-0123456789")
    with pytest.raises(ChangedSinceOpened):
        stack.desk("arn:aws:sts::1:user/other").accept("15970", opened, review_id)
    with pytest.raises(ReviewRefused, match="malformed"):
        desk.accept("15970", opened, "short")


def test_the_desk_retries_the_announcements_a_reviewer_left_behind(stack: Stack) -> None:
    left, replaced = stack.put(shirt_record("left")), stack.put(shirt_record("replaced"))
    desk = stack.desk()
    desk.events = ProductEvents("no-such-bus", stack.events)
    for record in (left, replaced):
        with pytest.raises(ReviewNotAnnounced):
            desk.accept(record.product_id, RecordVersion.of(record))
    assert desk.retry_announcements() == 2  # still failing: both wait
    newer = shirt_record("replaced", order_token="2026-12-01T12:00:00.000000Z#0002")
    assert stack.table.write_if_current(newer)  # a newer upload: that review needs no event now

    desk.events = ProductEvents(BUS, stack.events)
    assert desk.retry_announcements() == 0
    assert [event["detail"]["product_id"] for event in stack.reviewed_events()] == ["left"]
    assert desk.retry_announcements() == 0 and stack.reviewed_events() == []


def test_a_review_written_before_its_retry_was_refused_counts_as_written(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    """UpdateItem landed but its answer was lost; botocore's retry then fails the condition."""
    record = stack.put(shirt_record())
    write = stack.table.write_review

    def landed_then_refused(reviewed: ProductRecord, opened: RecordVersion) -> bool:
        assert write(reviewed, opened)
        return write(reviewed, opened)

    monkeypatch.setattr(stack.table, "write_review", landed_then_refused)
    reviewed = stack.desk().accept("15970", RecordVersion.of(record))
    assert stack.table.get("15970") == reviewed and len(stack.reviewed_events()) == 1


def test_the_photos_shown_are_the_used_ones_primary_first() -> None:
    images = [
        ProductImage(key="incoming/Shirts/1/back.jpg", version="v1", status=ImageStatus.USED),
        ProductImage(
            key="incoming/Shirts/1/blurry.jpg", version="v2", status=ImageStatus.SKIPPED, reason="X"
        ),
        ProductImage(key="incoming/Shirts/1/front.jpg", version="v3", status=ImageStatus.USED),
    ]
    record = shirt_record().model_copy(
        update={"images": images, "primary_image": "incoming/Shirts/1/front.jpg"}
    )
    assert photos_of(record) == [("incoming/Shirts/1/front.jpg", "v3"), ("incoming/Shirts/1/back.jpg", "v1")]
    assert photos_of(shirt_record()) == [("incoming/Shirts/15970.jpg", "null")]
