"""The results table behind one small class: every write is conditional on the run being current.

A run is *current* for a product when the record does not exist yet, holds an older upload (a
smaller order token), or holds this very upload and run (same order token and execution name).
So a duplicate or stale event changes nothing, a newer upload takes the record over, and a run
that was overtaken cannot overwrite the newer run's result.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.exceptions import ClientError
from pydantic import BaseModel, Field

from describer_aws.aws_errors import client_error_code, is_transient
from describer_rules.contracts import ProductRecord, Status
from describer_rules.errors import TransientError

if TYPE_CHECKING:  # the stubs are a dev dependency; the Lambdas never import them
    from mypy_boto3_dynamodb import DynamoDBClient


_CURRENT_RUN = (
    "attribute_not_exists(#product_id) OR #order_token < :order_token"
    " OR (#order_token = :order_token AND #execution_name = :execution_name{same_run})"
)
# For a run that already ended: its own record may only be changed while it still says PROCESSING.
_STILL_PROCESSING = " AND #status = :processing"
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


class ResultsTable:
    def __init__(self, table_name: str, dynamodb_client: DynamoDBClient) -> None:
        self.table_name = table_name
        self._client = dynamodb_client

    def write_if_current(self, record: ProductRecord, still_processing: bool = False) -> bool:
        """Write ``record`` whole if its run is current for the product; False when it is not.

        ``still_processing``: and, when the record is this run's own, only if it is still PROCESSING
        (a run that ended without its final write), never over the run's own COMPLETED or FAILED.
        """
        if record.order_token is None or record.execution_name is None:
            raise ValueError("a conditional write needs the record's order_token and execution_name")
        condition = _CURRENT_RUN.format(same_run=_STILL_PROCESSING if still_processing else "")
        extra_values = {":processing": {"S": Status.PROCESSING.value}} if still_processing else {}
        return self._write(record, condition, {"#status": "status"} if still_processing else {}, extra_values)

    def write_review(self, record: ProductRecord, opened: RecordVersion) -> bool:
        """Write ``record``'s review fields (REVIEW_FIELDS, nothing else) if the stored record is still
        the version ``opened``; False otherwise.

        A person's change (a review) is conditional on the record they read, by its last write
        (``updated_at``: every write sets it, the desk never to the value it replaces). The update and
        its condition name only REVIEW_FIELDS and the key, so the reviewer's IAM policy can allow
        exactly those (``dynamodb:Attributes``): reviewer credentials cannot touch ``status``,
        ``order_token`` or the run. The pipeline's own writes stay conditional on the run only, so a
        newer upload still wins over an older review.
        """
        condition = "attribute_exists(#product_id) AND #updated_at = :opened_updated_at"
        return self._write(
            record, condition, {}, {":opened_updated_at": {"S": opened.updated_at}}, fields=REVIEW_FIELDS
        )

    def _write(
        self,
        record: ProductRecord,
        condition: str,
        extra_names: dict[str, str],
        extra_values: dict[str, Any],
        fields: tuple[str, ...] | None = None,
    ) -> bool:
        # DynamoDB numbers travel as Decimal (the serializer refuses floats such as a confidence).
        item = json.loads(record.model_dump_json(exclude={"product_id", _CREATED_AT}), parse_float=Decimal)
        item[REVIEW_KEY] = REVIEW_PENDING if record.needs_review else None
        if fields is not None:
            item = {field: item.get(field) for field in fields}
        names = {f"#{field}": field for field in item}
        names["#product_id"] = "product_id"
        set_fields = [field for field, value in item.items() if value is not None]
        removed = [field for field, value in item.items() if value is None]
        values: dict[str, Any] = {f":{field}": _SERIALIZER.serialize(item[field]) for field in set_fields}
        update = "SET " + ", ".join(f"#{field} = :{field}" for field in set_fields)
        if fields is None:
            values[":created_at"] = {"S": record.created_at}
            update += ", #created_at = if_not_exists(#created_at, :created_at)"
            names["#created_at"] = _CREATED_AT
        if removed:
            update += " REMOVE " + ", ".join(f"#{field}" for field in removed)
        try:
            self._client.update_item(
                TableName=self.table_name,
                Key={"product_id": {"S": record.product_id}},
                UpdateExpression=update,
                ConditionExpression=condition,
                ExpressionAttributeNames=names | extra_names,
                ExpressionAttributeValues=values | extra_values,
            )
        except ClientError as error:
            if client_error_code(error) == "ConditionalCheckFailedException":
                return False
            if is_transient(error):
                raise TransientError(f"DynamoDB UpdateItem: {client_error_code(error)}") from error
            raise
        return True

    def get(self, product_id: str) -> ProductRecord | None:
        response = self._client.get_item(
            TableName=self.table_name, Key={"product_id": {"S": product_id}}, ConsistentRead=True
        )
        item = response.get("Item")
        return None if item is None else ProductRecord.model_validate(_from_item(item))


def _from_item(item: dict[str, Any]) -> dict[str, Any]:
    return {name: _DESERIALIZER.deserialize(attribute) for name, attribute in item.items()}
