"""The Lambda handlers' AWS clients, built in one place with the project's client settings.

Each handler's ``_dependencies()`` (``functools.cache``: once per cold start) builds what it needs from
these. Each client is made once per process as well (a warm Lambda reuses it): S3, DynamoDB,
EventBridge, SQS and Step Functions with boto3's defaults; the model clients (the SageMaker endpoint,
Bedrock) with the SDK retries the state machine's own retries are sized for (``SDK_RETRIES``)
and their timeouts.
"""

from __future__ import annotations

from functools import cache
from typing import TYPE_CHECKING, Any

import boto3
from botocore.config import Config

from describer_aws.product_events import ProductEvents
from describer_aws.results_table import ResultsTable

if TYPE_CHECKING:  # the stubs are a dev dependency; the Lambdas never import them
    from mypy_boto3_bedrock_runtime import BedrockRuntimeClient
    from mypy_boto3_sagemaker_runtime import SageMakerRuntimeClient

MODEL_CONNECT_TIMEOUT_S = 5
# The model clients' botocore retries: one quick SDK retry (two attempts in all) on throttling, 5xx
# and timeouts; Step Functions owns the rest, with backoff and jitter. ("max_attempts" would count
# retries only: three attempts, more than a function's timeout allows for two slow replies.)
SDK_RETRIES: Any = {"mode": "standard", "total_max_attempts": 2}
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
