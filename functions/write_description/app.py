"""WriteDescription: Bedrock Converse writes the product's copy in every locale from the merged attributes."""

from __future__ import annotations

from functools import cache
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit, single_metric
from aws_lambda_powertools.utilities.typing import LambdaContext

from describer_aws import clients
from describer_aws.observability import logger, metrics, tracer
from describer_aws.style_guides import load_style_guide
from describer_rules.catalogue import load_catalogue
from describer_steps.settings import DescriptionSettings, load_settings
from describer_steps.states import DescribeInput
from describer_steps.write_description import write_description


@cache
def _dependencies() -> tuple[DescriptionSettings, Any, Any]:
    settings = load_settings(DescriptionSettings)
    s3 = clients.client("s3") if settings.style_guide_uri else None
    return settings, clients.bedrock_runtime(), s3


@logger.inject_lambda_context(log_event=False)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    settings, bedrock, s3 = _dependencies()
    request = DescribeInput.model_validate(event)
    logger.append_keys(product_id=request.product.product_id)
    style = load_style_guide(settings.style_guide_uri, s3)
    category = load_catalogue().category(request.product.category)
    result = write_description(category, request.attributes, bedrock, settings, request.confidence, style)
    metrics.add_metric(name="BedrockInputTokens", unit=MetricUnit.Count, value=result.input_tokens)
    metrics.add_metric(name="BedrockOutputTokens", unit=MetricUnit.Count, value=result.output_tokens)
    for locale, tokens in result.token_usage.items():  # bounded: the Locales parameter's tags
        for name, value in (
            ("BedrockInputTokensByLocale", tokens.input),
            ("BedrockOutputTokensByLocale", tokens.output),
        ):
            with single_metric(name=name, unit=MetricUnit.Count, value=value) as by_locale:
                by_locale.add_dimension(name="Locale", value=locale)
    output = result.model_dump(mode="json")
    logger.info("described", extra={"attempts": result.attempts, "token_usage": output["token_usage"]})
    return output
