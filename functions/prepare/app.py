"""Prepare: locate the upload, claim the product's record, validate the image, pick the questions."""

from __future__ import annotations

from functools import cache
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from describer_aws import clients
from describer_aws.observability import logger, tracer
from describer_aws.results_table import ResultsTable
from describer_rules.catalogue import GENERIC_CATEGORY, load_catalogue
from describer_rules.contracts import AttributeAnswer, Question, S3ObjectRef
from describer_steps.ask_attribute import ask_one
from describer_steps.prepare import CategoryAsker, prepare
from describer_steps.settings import PrepareSettings, load_settings
from describer_steps.states import PrepareInput


@cache
def _dependencies() -> tuple[PrepareSettings, Any, ResultsTable, CategoryAsker | None]:
    settings = load_settings(PrepareSettings)
    table = clients.results_table(settings.results_table_name)
    return settings, clients.client("s3"), table, _category_asker(settings)


def _category_asker(settings: PrepareSettings) -> CategoryAsker | None:
    """The article-type question to the endpoint, for a product no key or metadata categorises."""
    endpoint_name = settings.endpoint_name
    if not endpoint_name:
        return None
    runtime = clients.sagemaker_runtime(settings.endpoint_read_timeout_s)

    def ask(image: S3ObjectRef, question: Question) -> AttributeAnswer:
        return ask_one(image, question, GENERIC_CATEGORY, runtime, endpoint_name, load_catalogue())

    return ask


@logger.inject_lambda_context(log_event=False)
@tracer.capture_lambda_handler(capture_response=False)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    settings, s3, table, ask_category = _dependencies()
    request = PrepareInput.model_validate(event)
    output, facts = prepare(request, s3, table, load_catalogue(), settings, ask_category)
    logger.append_keys(product_id=output.product.product_id)
    if output.claimed and facts is not None:
        logger.info(
            "prepared",
            extra={
                "category": output.product.category,
                "category_source": output.product.category_source,
                "category_confidence": output.product.category_confidence,
                "questions": len(output.questions),
                "image": facts.model_dump(),
            },
        )
    else:
        logger.info("superseded by a newer upload; nothing to do")
    return output.model_dump(mode="json")
