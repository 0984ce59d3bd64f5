"""FeedExport: on a schedule, rewrites feeds/<format>/<locale>.<ext> from what changed since the last run."""

from __future__ import annotations

from functools import cache
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from describer_aws import clients
from describer_aws.observability import logger, tracer
from describer_steps.feed_export import FeedExportSettings, export_feeds
from describer_steps.settings import load_settings


@cache
def _settings() -> FeedExportSettings:
    return load_settings(FeedExportSettings)


@logger.inject_lambda_context(log_event=False)
@tracer.capture_lambda_handler(capture_response=False)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    written = export_feeds(_settings(), clients.client("dynamodb"), clients.client("s3"))
    for feed in written:
        logger.info("feed written", extra=feed.model_dump())
    return {"feeds": [feed.model_dump() for feed in written]}
