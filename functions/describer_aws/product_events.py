"""Events for downstream services: every final record is announced on the stack's EventBridge bus.

``source`` is ``product-describer``, ``detail-type`` ``Product Described`` or ``Product Description
Failed`` (``Product Reviewed`` when a person reviewed it), ``detail`` a ``ProductEventDetail``. The
copy rides along only while the entry stays within ``OUTBOX_ENTRY_BYTES`` (otherwise consumers
read the record); image bytes never do.

Final records' events are published from an outbox (docs/pipeline.md#events): the write of a final
record appends its entry to the record's ``outbox_events`` in the same UpdateItem
(``ResultsTable``), so a run that lost its record to a newer upload announces nothing, and an
event is never lost between the write and PutEvents. ``flush_outbox`` publishes a record's pending
entries and then takes out those it published: right after the write (SaveResult, RecordFailure,
RecordStopped), and every minute for whatever is still pending (PublishEvents, ``publish_pending``).
Delivery is at least once, like EventBridge itself; each event carries its ``record_version``, so a
consumer that keeps the highest version per product sees every version exactly once.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from describer_aws.aws_errors import client_error_code, is_transient
from describer_rules.contracts import (
    EVENT_SOURCE,
    ProductEventDetail,
    ProductEventType,
    ProductRecord,
    Status,
)
from describer_rules.errors import TransientError

if TYPE_CHECKING:  # results_table builds its outbox entries here
    from describer_aws.results_table import ResultsTable

MAX_EVENT_BYTES = 256 * 1024
# An outbox entry waits in the record's item (at most 400 KB with the record): the copy rides along
# only while the entry stays within this.
OUTBOX_ENTRY_BYTES = 64 * 1024
# A flush publishes a record's few entries in well under this; a crashed one blocks the next this long.
OUTBOX_LEASE_S = 60
# A flush starts a PutEvents only while this much of its lease is left (botocore's retries of one
# take well under it), so no put is still under way when another flush may lease the outbox.
OUTBOX_PUT_S = 30


def event_detail(record: ProductRecord, with_content: bool = True) -> ProductEventDetail:
    return ProductEventDetail(
        product_id=record.product_id,
        status=record.status,
        category=record.category,
        source_bucket=record.source_bucket,
        source_key=record.source_key,
        source_version=record.source_version,
        locales=list(record.content),
        error_code=record.error_code,
        error_message=record.error_message,
        execution_name=record.execution_name,
        updated_at=record.updated_at,
        content=record.content if with_content and record.content else None,
        review_decision=record.review_decision,
        record_version=record.record_version,
    )


def entry_size(entry: dict[str, Any]) -> int:
    """EventBridge's size of a PutEvents entry (its documented calculation)."""
    size = 14 if entry.get("Time") else 0
    for name in ("Source", "DetailType", "Detail"):
        size += len(str(entry.get(name, "")).encode())
    return size + sum(len(resource.encode()) for resource in entry.get("Resources", []))


def product_event(
    record: ProductRecord, bus_name: str, detail_type: ProductEventType | None = None
) -> dict[str, Any]:
    """The PutEvents entry announcing ``record``: with its content when that fits, else without.

    ``detail_type``: by default the record's final status (Described or Failed).
    """
    return {"EventBusName": bus_name} | outbox_entry(record, detail_type, MAX_EVENT_BYTES)


def outbox_entry(
    record: ProductRecord, detail_type: ProductEventType | None = None, max_bytes: int = OUTBOX_ENTRY_BYTES
) -> dict[str, str]:
    """The entry announcing ``record`` without its bus: with the content when within ``max_bytes``."""
    if detail_type is None:
        detail_type = (
            ProductEventType.DESCRIBED if record.status == Status.COMPLETED else ProductEventType.FAILED
        )
    for with_content in (True, False):
        entry = {
            "Source": EVENT_SOURCE,
            "DetailType": detail_type.value,
            "Detail": event_detail(record, with_content).model_dump_json(exclude_none=True),
        }
        if entry_size(entry) <= max_bytes:
            break
    return entry


class ProductEvents:
    def __init__(self, bus_name: str, events_client: Any) -> None:
        self.bus_name = bus_name
        self._client = events_client

    def publish(self, record: ProductRecord, detail_type: ProductEventType | None = None) -> None:
        self.put(product_event(record, self.bus_name, detail_type))

    def put(self, entry: dict[str, Any]) -> None:
        """One PutEvents entry onto this bus; TransientError when it was not accepted."""
        try:
            response = self._client.put_events(Entries=[{**entry, "EventBusName": self.bus_name}])
        except ClientError as error:
            if is_transient(error):
                raise TransientError(f"EventBridge PutEvents: {client_error_code(error)}") from error
            raise
        except BotoCoreError as error:
            raise TransientError(f"{type(error).__name__} calling EventBridge") from error
        if response.get("FailedEntryCount"):
            code = response["Entries"][0].get("ErrorCode", "unknown")
            raise TransientError(f"EventBridge PutEvents: entry failed with {code}")


def flush_outbox(product_id: str, table: ResultsTable, events: ProductEvents) -> int:
    """Publish the record's pending events, oldest first, and take them out; how many were published.

    The outbox is leased first (``OUTBOX_LEASE_S``), so a writer's flush and PublishEvents' never
    publish the same entries at once; a record whose outbox another flush holds is left to it. Only
    the entries published leave it: one appended meanwhile (a newer run's final write) or one after a
    PutEvents failure (TransientError, raised) stays for the next flush, which sends just those. A
    consumer sees an event twice only when a flush dies between PutEvents and taking the entry out.
    """
    pending = table.lease_events(product_id, OUTBOX_LEASE_S)
    if pending is None:
        return 0
    published = 0
    try:
        for entry in pending.entries:
            if pending.lease_left_s() < OUTBOX_PUT_S:
                break  # the put could outlast the lease: another flush may take these entries then
            events.put(entry)
            published += 1
    finally:
        table.clear_events(pending, published)
    return published


def publish_committed(product_id: str, table: ResultsTable, events: ProductEvents) -> bool:
    """``flush_outbox`` right after a write; False when it failed and the events wait for PublishEvents.

    A step that wrote its record has done its part: an EventBridge outage must not fail it (nor turn
    a COMPLETED run into a failed one), since the events are committed with the record.
    """
    try:
        flush_outbox(product_id, table, events)
    except (TransientError, ClientError):
        return False
    return True
