"""Events for downstream services: every final record is announced on the stack's EventBridge bus.

``source`` is ``product-describer``, ``detail-type`` ``Product Described`` or ``Product Description
Failed`` (``Product Reviewed`` when a person reviewed it), ``detail`` a ``ProductEventDetail``. The
copy rides along only while the entry stays within EventBridge's 256 KB limit (otherwise consumers
read the record); image bytes never do. Publishing
follows the conditional write, so a run that lost its record to a newer upload announces nothing,
and a publish that fails raises TransientError: the step is retried, rewriting the same record and
publishing again (at least once, like EventBridge itself).
"""

from __future__ import annotations

from typing import Any

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

MAX_EVENT_BYTES = 256 * 1024


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
    if detail_type is None:
        detail_type = (
            ProductEventType.DESCRIBED if record.status == Status.COMPLETED else ProductEventType.FAILED
        )
    for with_content in (True, False):
        entry = {
            "EventBusName": bus_name,
            "Source": EVENT_SOURCE,
            "DetailType": detail_type.value,
            "Detail": event_detail(record, with_content).model_dump_json(exclude_none=True),
        }
        if entry_size(entry) <= MAX_EVENT_BYTES:
            break
    return entry


class ProductEvents:
    def __init__(self, bus_name: str, events_client: Any) -> None:
        self.bus_name = bus_name
        self._client = events_client

    def publish(self, record: ProductRecord, detail_type: ProductEventType | None = None) -> None:
        try:
            response = self._client.put_events(Entries=[product_event(record, self.bus_name, detail_type)])
        except ClientError as error:
            if is_transient(error):
                raise TransientError(f"EventBridge PutEvents: {client_error_code(error)}") from error
            raise
        except BotoCoreError as error:
            raise TransientError(f"{type(error).__name__} calling EventBridge") from error
        if response.get("FailedEntryCount"):
            code = response["Entries"][0].get("ErrorCode", "unknown")
            raise TransientError(f"EventBridge PutEvents: entry failed with {code}")
