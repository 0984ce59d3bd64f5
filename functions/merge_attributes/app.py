"""MergeAttributes: the Map's answers become one {attribute: value} object with confidences."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from describer_aws.observability import logger, tracer
from describer_steps.merge_attributes import merge_attributes
from describer_steps.settings import ReviewSettings, load_settings
from describer_steps.states import MergeInput


@logger.inject_lambda_context(log_event=False)
@tracer.capture_lambda_handler(capture_response=False)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    settings = load_settings(ReviewSettings)
    merged = merge_attributes(MergeInput.model_validate(event).answers, settings.review_threshold)
    logger.info("merged", extra={"needs_review": merged.needs_review, "confidence": merged.confidence})
    return merged.model_dump(mode="json")
