"""QueueCopy: the batch backfill's product keeps its attributes at COPY_QUEUED and waits for a batch job."""

from __future__ import annotations

from functools import cache
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from describer_aws import clients
from describer_aws.batch_jobs import CopyStore
from describer_aws.observability import logger, tracer
from describer_aws.results_table import ResultsTable
from describer_steps.batch_copy import QueuedCopy, queue_copy
from describer_steps.settings import BatchCopyStoreSettings, load_settings


@cache
def _dependencies() -> tuple[ResultsTable, CopyStore]:
    settings = load_settings(BatchCopyStoreSettings)
    store = CopyStore(clients.client("s3"), settings.batch_copy_bucket, settings.batch_copy_prefix)
    return clients.results_table(settings.results_table_name), store


@logger.inject_lambda_context(log_event=False)
@tracer.capture_lambda_handler(capture_response=False)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    request = QueuedCopy.model_validate(event)
    logger.append_keys(product_id=request.product.product_id)
    output = queue_copy(request, *_dependencies())
    logger.info("copy queued" if output.queued else "superseded by a newer upload; nothing queued")
    return output.model_dump(mode="json")
