"""PublishEvents: every minute, publish the product events still waiting in records' outboxes."""

from __future__ import annotations

from functools import cache
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from describer_aws import clients
from describer_aws.observability import logger, metrics, tracer
from describer_aws.product_events import ProductEvents
from describer_aws.results_table import ResultsTable
from describer_rules.errors import TransientError
from describer_steps.publish_events import publish_pending
from describer_steps.settings import FinalRecordSettings, load_settings


@cache
def _dependencies() -> tuple[ResultsTable, ProductEvents]:
    settings = load_settings(FinalRecordSettings)
    return clients.results_table(settings.results_table_name), clients.product_events(settings.event_bus_name)


@logger.inject_lambda_context(log_event=False)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    report = publish_pending(*_dependencies())
    metrics.add_metric(name="OutboxEventsPublished", unit=MetricUnit.Count, value=report.published)
    metrics.add_metric(name="OutboxRecordsFailed", unit=MetricUnit.Count, value=len(report.failed))
    logger.info("outbox swept", extra=report.model_dump())
    if report.failed:
        # An error is what the EventsNotPublished alarm counts; the events stay for the next sweep.
        raise TransientError(
            f"{len(report.failed)} record(s) still have events to publish: {report.failed[:5]}"
        )
    return report.model_dump()
