"""The results table behind one small class: every write is conditional on the run being current.

A run is *current* for a product when the record does not exist yet, holds an older upload (a
smaller order token), or holds this very upload and run (same order token and execution name)
while it still says PROCESSING. So a duplicate or stale event changes nothing, a newer upload takes
the record over, a run that was overtaken cannot overwrite the newer run's result, and a late or
repeated step of a run that already ended (a retried SaveResult, a RecordFailure after SaveResult's
write) never undoes its COMPLETED record or a review of it: ``write_final`` then finds the run's own
final record and reports it instead (docs/pipeline.md#final-writes).

Every write counts ``record_version`` up by one, a review too. A final write also appends its event
to the record's outbox in the same UpdateItem, so the event is committed with the version it
announces; ``describer_aws.product_events.flush_outbox`` publishes it and takes it out.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.exceptions import ClientError
from pydantic import BaseModel, Field

from describer_aws.aws_errors import client_error_code, is_transient
from describer_aws.product_events import outbox_entry
from describer_rules.contracts import ProductEventType, ProductRecord, Status
from describer_rules.errors import TransientError

if TYPE_CHECKING:  # the stubs are a dev dependency; the Lambdas never import them
    from mypy_boto3_dynamodb import DynamoDBClient


_CURRENT_RUN = (
    "(attribute_not_exists(#product_id) OR #order_token < :order_token"
    " OR (#order_token = :order_token AND #execution_name = :execution_name AND #status = :processing))"
)
# A final write is conditional on the version it read too, so the version it announces is exact.
_READ_VERSION = " AND (attribute_not_exists(#record_version) OR #record_version = :read_version)"
_NEVER_VERSIONED = " AND attribute_not_exists(#record_version)"
_VERSION = "record_version"
# A final write reads, then writes conditionally; another writer in between makes it read again.
_FINAL_WRITE_ATTEMPTS = 5
FINAL_STATUSES = frozenset({Status.COMPLETED, Status.FAILED})
# The outbox: the record's events not yet published (PutEvents entries without the bus, as JSON),
# and the sparse by-outbox index's key, present (PENDING) only while the list is not empty.
OUTBOX_EVENTS = "outbox_events"
OUTBOX_KEY = "outbox"
OUTBOX_PENDING = "PENDING"
# Who may publish the outbox now: until this time (``utc_now`` text) the flush that leased it.
OUTBOX_LEASE = "outbox_lease"
_LEASE_FREE = "attribute_exists(#events) AND (attribute_not_exists(#lease) OR #lease < :now)"
# The sparse index on OUTBOX_KEY (template.yaml): the records with events still to publish.
OUTBOX_INDEX = "by-outbox"
# Set once, on the first write of a product.
_CREATED_AT = "created_at"
# The sparse key of the review index: present (this value) only on records that need review, so
# the index holds just those and operators list them with one Query.
REVIEW_KEY = "review"
REVIEW_PENDING = "PENDING"
# What a review may change (ResultsTable.write_review), and all the reviewer's IAM policy lets it
# write (template.yaml ReviewerPolicy, dynamodb:Attributes; a test keeps the two the same).
REVIEW_FIELDS = (
    "attributes",
    "confidence",
    "unknown_attributes",
    "token_usage",
    "model_ids",
    "content",
    "description",
    "needs_review",
    "review_decision",
    "updated_at",
    REVIEW_KEY,
    "record_version",  # a review is a version of its own (write_review)
)
_SERIALIZER = TypeSerializer()
_DESERIALIZER = TypeDeserializer()


def utc_now() -> str:
    """ISO 8601 in UTC with milliseconds: sorts as text, which the status index relies on."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def sortable_utc(timestamp: str) -> str:
    """An ISO 8601 time as fixed-width UTC with microseconds, so that times compare as text.

    ``2026-12-01T10:17:10Z`` and ``2026-12-01T10:17:10.530Z`` do not (``Z`` sorts after ``.``);
    ``2026-12-01T10:17:10.000000Z`` and ``...10.530000Z`` do. A text that is not an ISO 8601 time
    is returned unchanged.
    """
    try:
        moment = datetime.fromisoformat(timestamp.replace("Z", "+00:00"))
    except ValueError:
        return timestamp
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class RecordVersion(BaseModel):
    """Which version of a record a person read: its run and its last write."""

    updated_at: str = Field(min_length=1)
    order_token: str = Field(min_length=1)
    execution_name: str = Field(min_length=1)

    @classmethod
    def of(cls, record: ProductRecord) -> RecordVersion:
        if record.order_token is None or record.execution_name is None:
            raise ValueError(f"record {record.product_id} has no run to be conditional on")
        return cls(
            updated_at=record.updated_at,
            order_token=record.order_token,
            execution_name=record.execution_name,
        )


class FinalWrite(BaseModel):
    """What a final write found: ``written`` by this call, and the run's own final record as stored.

    ``record`` is None when the run is no longer the product's current one (a newer upload, or a
    record of another run); else the record this call wrote, or the run's final record an earlier
    attempt wrote (maybe reviewed since), which this call left as it was.
    """

    written: bool
    record: ProductRecord | None


class PendingEvents(BaseModel):
    """A record's outbox: its events not yet published, oldest first, leased until ``lease``."""

    product_id: str
    entries: list[dict[str, str]]
    lease: str

    def lease_left_s(self) -> float:
        """Seconds until the lease runs out and another flush may take the outbox."""
        until = datetime.fromisoformat(self.lease.replace("Z", "+00:00"))
        return (until - datetime.now(UTC)).total_seconds()


class ResultsTable:
    def __init__(self, table_name: str, dynamodb_client: DynamoDBClient) -> None:
        self.table_name = table_name
        self._client = dynamodb_client

    def write_if_current(self, record: ProductRecord) -> bool:
        """Write ``record`` whole if its run is current for the product; False when it is not.

        A PROCESSING record (Prepare's claim) in one UpdateItem; a final one through ``write_final``.
        """
        if record.status in FINAL_STATUSES:
            return self.write_final(record).written
        _require_run(record)
        return self._write(record, _CURRENT_RUN, {"#status": "status"}, _processing(), None) is not None

    def write_final(self, record: ProductRecord) -> FinalWrite:
        """Write a COMPLETED or FAILED ``record`` over its run's PROCESSING record (or an older one).

        Never over the run's own final record: a repeated SaveResult, or a RecordFailure after
        SaveResult's write, finds it and changes nothing (no review erased, no second event). The
        write appends the record's event to its outbox.
        """
        _require_run(record)
        if record.status not in FINAL_STATUSES:
            raise ValueError(f"{record.status.value} is not a final status")
        event = ProductEventType.DESCRIBED if record.status == Status.COMPLETED else ProductEventType.FAILED
        for _ in range(_FINAL_WRITE_ATTEMPTS):
            stored = self.get(record.product_id)
            if stored is not None and not _may_overwrite(stored, record):
                own = stored if _same_run(stored, record) and stored.status in FINAL_STATUSES else None
                return FinalWrite(written=False, record=own)
            version = 0 if stored is None else stored.record_version
            versioned = record.model_copy(update={_VERSION: version + 1})
            condition = _CURRENT_RUN + (_READ_VERSION if version else _NEVER_VERSIONED)
            values = _processing() | ({":read_version": {"N": str(version)}} if version else {})
            if self._write(versioned, condition, {"#status": "status"}, values, event) is not None:
                return FinalWrite(written=True, record=versioned)
        raise TransientError(f"record {record.product_id} kept changing during its final write")

    def write_review(self, record: ProductRecord, opened: RecordVersion) -> bool:
        """Write ``record``'s review fields (REVIEW_FIELDS, nothing else) if the stored record is still
        the version ``opened``; False otherwise.

        A person's change (a review) is conditional on the record they read, by its last write
        (``updated_at``: every write sets it, the desk never to the value it replaces) and by its
        ``record_version``. The update and its condition name only REVIEW_FIELDS and the key, so the
        reviewer's IAM policy can allow exactly those (``dynamodb:Attributes``): reviewer credentials
        cannot touch ``status``, ``order_token`` or the run. The pipeline's own writes stay
        conditional on the run only, so a newer upload still wins over an older review. A review is
        a version of its own: ``record`` carries the version it was stored as (the version read,
        plus one), so the Product Reviewed event built from it announces that.
        """
        read_version = record.record_version
        versioned = record.model_copy(update={_VERSION: read_version + 1})
        condition = "attribute_exists(#product_id) AND #updated_at = :opened_updated_at"
        # A record written before versions is pinned by its updated_at alone.
        condition += " AND #record_version = :read_version" if read_version else ""
        values = {":opened_updated_at": {"S": opened.updated_at}}
        values |= {":read_version": {"N": str(read_version)}} if read_version else {}
        if self._write(versioned, condition, {}, values, None, fields=REVIEW_FIELDS) is None:
            return False
        record.record_version = versioned.record_version
        return True

    def lease_events(self, product_id: str, lease_s: float) -> PendingEvents | None:
        """The record's outbox, leased to the caller for ``lease_s`` seconds; None when it is empty or
        another flush holds it (so two flushes never publish the same entries at once)."""
        now = datetime.now(UTC)
        until = (now + timedelta(seconds=lease_s)).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        response = self._update_if(
            product_id,
            UpdateExpression="SET #lease = :until",
            ConditionExpression=_LEASE_FREE,
            ExpressionAttributeNames={"#events": OUTBOX_EVENTS, "#lease": OUTBOX_LEASE},
            ExpressionAttributeValues={
                ":until": {"S": until},
                ":now": {"S": now.isoformat(timespec="milliseconds").replace("+00:00", "Z")},
            },
            ReturnValues="ALL_NEW",
        )
        stored = None if response is None else response["Attributes"].get(OUTBOX_EVENTS)
        if not stored:
            return None
        entries = [json.loads(text) for text in _DESERIALIZER.deserialize(stored)]
        return PendingEvents(product_id=product_id, entries=entries, lease=until)

    def with_pending_events(self, written_before: str) -> list[str]:
        """The products whose outbox is not empty, last written before ``written_before`` (oldest first)."""
        paginator = self._client.get_paginator("query")
        pages = paginator.paginate(
            TableName=self.table_name,
            IndexName=OUTBOX_INDEX,
            KeyConditionExpression="#outbox = :pending AND #updated_at < :before",
            ExpressionAttributeNames={"#outbox": OUTBOX_KEY, "#updated_at": "updated_at"},
            ExpressionAttributeValues={":pending": {"S": OUTBOX_PENDING}, ":before": {"S": written_before}},
        )
        return [item["product_id"]["S"] for page in pages for item in page["Items"]]

    def clear_events(self, pending: PendingEvents, published: int) -> bool:
        """Take the first ``published`` of ``pending``'s entries out of the outbox and give the lease back.

        Only what this flush published goes: an entry appended since it leased the outbox (a newer
        run's final write) or one PutEvents did not take stays pending for the next flush. Conditional
        on the lease, so a flush that outlived it never takes out entries another flush holds; False
        then.
        """
        if published == len(pending.entries) and self._update_outbox(
            pending,
            "REMOVE #events, #outbox, #lease",
            " AND size(#events) = :count",
            {":count": {"N": str(published)}},
        ):
            return True
        # DynamoDB removes the indexes of the list as it was; highest first, an emulator that removes
        # them one by one takes out the same entries.
        taken = [f"#events[{index}]" for index in reversed(range(published))]
        return self._update_outbox(pending, "REMOVE " + ", ".join([*taken, "#lease"]), "", {})

    def _update_outbox(
        self, pending: PendingEvents, update: str, condition: str, values: dict[str, Any]
    ) -> bool:
        """An UpdateItem of the outbox while ``pending``'s lease is still the record's; False when not."""
        attributes = {"#events": OUTBOX_EVENTS, "#outbox": OUTBOX_KEY, "#lease": OUTBOX_LEASE}
        response = self._update_if(
            pending.product_id,
            UpdateExpression=update,
            ConditionExpression="#lease = :mine" + condition,
            # DynamoDB refuses names the expressions do not use.
            ExpressionAttributeNames={
                name: attribute for name, attribute in attributes.items() if name in update + condition
            },
            ExpressionAttributeValues={":mine": {"S": pending.lease}} | values,
        )
        return response is not None

    def _write(
        self,
        record: ProductRecord,
        condition: str,
        extra_names: dict[str, str],
        extra_values: dict[str, Any],
        event: ProductEventType | None,
        fields: tuple[str, ...] | None = None,
    ) -> ProductRecord | None:
        """The conditional UpdateItem; None when the condition does not hold.

        With ``event`` the record's ``record_version`` is written as it is and the event appended to
        the outbox; with ``fields`` (a review) only those, ``record_version`` as it is; with neither
        (a claim, which reads nothing) the stored version counts up by one.
        """
        # DynamoDB numbers travel as Decimal (the serializer refuses floats such as a confidence).
        counted = event is None and fields is None
        exclude = {"product_id", _CREATED_AT} | ({_VERSION} if counted else set())
        item = json.loads(record.model_dump_json(exclude=exclude), parse_float=Decimal)
        item[REVIEW_KEY] = REVIEW_PENDING if record.needs_review else None
        if fields is not None:
            item = {field: item.get(field) for field in fields}
        names = {f"#{field}": field for field in item}
        names["#product_id"] = "product_id"
        set_fields = [field for field, value in item.items() if value is not None]
        removed = [field for field, value in item.items() if value is None]
        values: dict[str, Any] = {f":{field}": _SERIALIZER.serialize(item[field]) for field in set_fields}
        update = "SET " + ", ".join(f"#{field} = :{field}" for field in set_fields)
        names["#record_version"] = _VERSION
        if fields is None:
            values[":created_at"] = {"S": record.created_at}
            update += ", #created_at = if_not_exists(#created_at, :created_at)"
            names["#created_at"] = _CREATED_AT
        if counted:
            update += ", #record_version = if_not_exists(#record_version, :zero) + :one"
            values |= {":zero": {"N": "0"}, ":one": {"N": "1"}}
        elif event is not None:
            update += (
                ", #events = list_append(if_not_exists(#events, :no_events), :event), #outbox = :pending"
            )
            names |= {"#events": OUTBOX_EVENTS, "#outbox": OUTBOX_KEY}
            values |= {
                ":no_events": {"L": []},
                ":event": {"L": [{"S": json.dumps(outbox_entry(record, event))}]},
                ":pending": {"S": OUTBOX_PENDING},
            }
        if removed:
            update += " REMOVE " + ", ".join(f"#{field}" for field in removed)
        response = self._update_if(
            record.product_id,
            UpdateExpression=update,
            ConditionExpression=condition,
            ExpressionAttributeNames=names | extra_names,
            ExpressionAttributeValues=values | extra_values,
        )
        return None if response is None else record

    def _update_if(self, product_id: str, **request: Any) -> dict[str, Any] | None:
        """A conditional UpdateItem of the product's record; None when its condition does not hold."""
        try:
            return dict(
                self._client.update_item(
                    TableName=self.table_name, Key={"product_id": {"S": product_id}}, **request
                )
            )
        except ClientError as error:
            if client_error_code(error) == "ConditionalCheckFailedException":
                return None
            if is_transient(error):
                raise TransientError(f"DynamoDB UpdateItem: {client_error_code(error)}") from error
            raise

    def get(self, product_id: str) -> ProductRecord | None:
        response = self._client.get_item(
            TableName=self.table_name, Key={"product_id": {"S": product_id}}, ConsistentRead=True
        )
        item = response.get("Item")
        return None if item is None else ProductRecord.model_validate(_from_item(item))


def _require_run(record: ProductRecord) -> None:
    if record.order_token is None or record.execution_name is None:
        raise ValueError("a conditional write needs the record's order_token and execution_name")


def _processing() -> dict[str, Any]:
    return {":processing": {"S": Status.PROCESSING.value}}


def _same_run(stored: ProductRecord, record: ProductRecord) -> bool:
    return stored.order_token == record.order_token and stored.execution_name == record.execution_name


def _may_overwrite(stored: ProductRecord, record: ProductRecord) -> bool:
    """``_CURRENT_RUN`` on a record read: an older upload, or this run's own PROCESSING record."""
    assert record.order_token is not None  # _require_run
    if stored.order_token is None:  # DynamoDB's comparison with a missing attribute is false
        return False
    if stored.order_token < record.order_token:
        return True
    return _same_run(stored, record) and stored.status == Status.PROCESSING


def _from_item(item: dict[str, Any]) -> dict[str, Any]:
    return {name: _DESERIALIZER.deserialize(attribute) for name, attribute in item.items()}
