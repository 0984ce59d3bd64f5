"""ResultsTable: error handling (lost condition, throttling, anything else) and final writes on versions."""

from __future__ import annotations

from collections.abc import Iterator

import boto3
import pytest
from botocore.exceptions import ClientError
from botocore.stub import Stubber
from moto import mock_aws

from describer_aws.results_table import ResultsTable
from describer_rules.contracts import ProductRecord, S3ObjectRef, Status
from describer_rules.errors import TransientError
from describer_steps.states import ProductIdentity

from .conftest import template_resource

PRODUCT = ProductIdentity(
    product_id="1", category="Shirts", source=S3ObjectRef(bucket="b", key="incoming/1.jpg"), order_token="t#1"
)


def _write_failing_with(code: str, status: int) -> bool:
    client = boto3.client("dynamodb", region_name="us-east-1")
    with Stubber(client) as stubber:
        stubber.add_client_error("update_item", service_error_code=code, http_status_code=status)
        return ResultsTable("results", client).write_if_current(PRODUCT.record(Status.PROCESSING, "run-1"))


def test_a_lost_condition_is_a_refusal_not_an_error() -> None:
    assert _write_failing_with("ConditionalCheckFailedException", 400) is False


@pytest.mark.parametrize(
    ("code", "status"), [("ProvisionedThroughputExceededException", 400), ("InternalServerError", 500)]
)
def test_throttling_and_5xx_are_transient(code: str, status: int) -> None:
    with pytest.raises(TransientError):
        _write_failing_with(code, status)


def test_other_errors_are_raised_as_they_are() -> None:
    with pytest.raises(ClientError):
        _write_failing_with("ValidationException", 400)


def test_a_record_without_its_run_cannot_be_written_conditionally() -> None:
    record = PRODUCT.record(Status.PROCESSING, "run-1").model_copy(update={"order_token": None})
    with pytest.raises(ValueError):
        ResultsTable("results", boto3.client("dynamodb", region_name="us-east-1")).write_if_current(record)


@pytest.fixture
def table() -> Iterator[ResultsTable]:
    with mock_aws():
        client = boto3.client("dynamodb", region_name="us-east-1")
        properties = template_resource("ResultsTable")
        client.create_table(
            TableName="results",
            BillingMode=properties["BillingMode"],
            AttributeDefinitions=properties["AttributeDefinitions"],
            KeySchema=properties["KeySchema"],
            GlobalSecondaryIndexes=properties["GlobalSecondaryIndexes"],
        )
        yield ResultsTable("results", client)


def test_a_final_write_reads_again_when_the_record_changed_after_its_read(
    table: ResultsTable, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Conditional on the version it read, so the version it announces is the one it wrote."""
    assert table.write_if_current(PRODUCT.record(Status.PROCESSING, "run-1"))
    read = table.get
    calls = []

    def read_then_claimed_again(product_id: str) -> ProductRecord | None:
        record = read(product_id)
        if not calls:  # Prepare's retry claims the record again in between (version 2)
            assert table.write_if_current(PRODUCT.record(Status.PROCESSING, "run-1"))
        calls.append(product_id)
        return record

    monkeypatch.setattr(table, "get", read_then_claimed_again)
    final = table.write_final(PRODUCT.record(Status.COMPLETED, "run-1"))
    assert (final.written, len(calls)) == (True, 2)
    assert final.record is not None and final.record.record_version == 3
    stored = read("1")
    assert stored is not None and (stored.status, stored.record_version) == (Status.COMPLETED, 3)


def test_a_final_write_of_an_overtaken_run_finds_no_record_of_its_own(table: ResultsTable) -> None:
    newer = PRODUCT.model_copy(update={"order_token": "t#2"})
    assert table.write_if_current(newer.record(Status.PROCESSING, "run-2"))
    final = table.write_final(PRODUCT.record(Status.FAILED, "run-1"))
    assert (final.written, final.record) == (False, None)
    assert table.lease_events("1", 60) is None


def test_a_processing_record_is_no_final_write() -> None:
    with pytest.raises(ValueError, match="not a final status"):
        ResultsTable("results", boto3.client("dynamodb", region_name="us-east-1")).write_final(
            PRODUCT.record(Status.PROCESSING, "run-1")
        )


def test_an_outbox_leased_to_one_flush_is_not_published_by_another(table: ResultsTable) -> None:
    """A writer's late flush and PublishEvents' sweep never publish the same entries at once."""
    assert table.write_if_current(PRODUCT.record(Status.PROCESSING, "run-1"))
    assert table.write_final(PRODUCT.record(Status.COMPLETED, "run-1")).written
    first = table.lease_events("1", 60)
    assert first is not None and [e["DetailType"] for e in first.entries] == ["Product Described"]
    assert table.lease_events("1", 60) is None, "leased to the first flush"
    assert table.clear_events(first, 0)  # its PutEvents failed: the lease given back, the entry kept
    second = table.lease_events("1", 60)
    assert second is not None and table.clear_events(second, 1)
    assert table.lease_events("1", 60) is None, "published and cleared"


def test_a_flush_that_outlived_its_lease_takes_nothing_out(table: ResultsTable) -> None:
    """A slow flush's lease ran out and another flush leased the outbox: only the holder takes entries
    out, so the slow one cannot take out an entry appended for the holder to publish."""
    assert table.write_if_current(PRODUCT.record(Status.PROCESSING, "run-1"))
    assert table.write_final(PRODUCT.record(Status.COMPLETED, "run-1")).written
    slow = table.lease_events("1", -1)  # leased, and run out already
    holder = table.lease_events("1", 60)
    assert slow is not None and holder is not None
    assert not table.clear_events(slow, 1)
    assert table.clear_events(holder, 1)
    assert table.lease_events("1", 60) is None, "published and cleared by the holder"
