"""ResultsTable's error handling: lost condition, throttling, anything else."""

from __future__ import annotations

import boto3
import pytest
from botocore.exceptions import ClientError
from botocore.stub import Stubber

from describer_aws.results_table import ResultsTable
from describer_rules.contracts import S3ObjectRef, Status
from describer_rules.errors import TransientError
from describer_steps.states import ProductIdentity

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
