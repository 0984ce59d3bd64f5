"""Prepare: locate the upload, claim the product's record, validate the image, pick the questions."""

from __future__ import annotations

from functools import cache
from typing import Any

import boto3
from aws_lambda_powertools.utilities.typing import LambdaContext

from describer_core.catalogue import load_catalogue
from describer_core.observability import logger, tracer
from describer_core.preparation import prepare
from describer_core.records import ResultsTable
from describer_core.settings import PrepareSettings, load_settings
from describer_core.states import PrepareInput


@cache
def _dependencies() -> tuple[PrepareSettings, Any, ResultsTable]:
    settings = load_settings(PrepareSettings)
    return settings, boto3.client("s3"), ResultsTable(settings.results_table_name, boto3.client("dynamodb"))


@logger.inject_lambda_context(log_event=False)
@tracer.capture_lambda_handler(capture_response=False)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    settings, s3, table = _dependencies()
    output, facts = prepare(PrepareInput.model_validate(event), s3, table, load_catalogue(), settings)
    logger.append_keys(product_id=output.product.product_id)
    if output.claimed and facts is not None:
        logger.info(
            "prepared",
            extra={
                "category": output.product.category,
                "questions": len(output.questions),
                "image": facts.model_dump(),
            },
        )
    else:
        logger.info("superseded by a newer upload; nothing to do")
    return output.model_dump(mode="json")
