"""The Lambda handlers' AWS clients, built in one place with the project's client settings.

Each handler's ``_dependencies()`` (``functools.cache``: once per cold start) builds what it needs from
these. Each client is made once per process as well (a warm Lambda reuses it): S3, DynamoDB,
EventBridge, SQS and Step Functions with boto3's defaults; the model clients (the SageMaker endpoint,
Bedrock) with the SDK retries the state machine's own retries are sized for (``errors.SDK_RETRIES``)
and their timeouts.
"""

from __future__ import annotations

from functools import cache
from typing import TYPE_CHECKING, Any

import boto3
from botocore.config import Config

from describer_core.errors import SDK_RETRIES
from describer_core.notifications import ProductEvents
from describer_core.records import ResultsTable

if TYPE_CHECKING:  # the stubs are a dev dependency; the Lambdas never import them
    from mypy_boto3_bedrock_runtime import BedrockRuntimeClient
    from mypy_boto3_sagemaker_runtime import SageMakerRuntimeClient

MODEL_CONNECT_TIMEOUT_S = 5
# Converse writes every locale's copy in one reply: within WriteDescription's timeout (template).
BEDROCK_READ_TIMEOUT_S = 60


@cache
def client(service: str) -> Any:
    """boto3's client for ``service`` ("s3", "dynamodb", "events", "sqs", "stepfunctions"), its defaults."""
    return boto3.client(service)  # type: ignore[call-overload]


@cache
def sagemaker_runtime(read_timeout_s: float) -> SageMakerRuntimeClient:
    """The endpoint's client: two attempts of (connect + read timeout) stay within the function's timeout
    (template)."""
    config = Config(retries=SDK_RETRIES, read_timeout=read_timeout_s, connect_timeout=MODEL_CONNECT_TIMEOUT_S)
    return boto3.client("sagemaker-runtime", config=config)


@cache
def bedrock_runtime() -> BedrockRuntimeClient:
    config = Config(
        retries=SDK_RETRIES, read_timeout=BEDROCK_READ_TIMEOUT_S, connect_timeout=MODEL_CONNECT_TIMEOUT_S
    )
    return boto3.client("bedrock-runtime", config=config)


def results_table(table_name: str) -> ResultsTable:
    return ResultsTable(table_name, client("dynamodb"))


def product_events(event_bus_name: str) -> ProductEvents:
    return ProductEvents(event_bus_name, client("events"))
