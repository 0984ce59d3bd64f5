"""RecordFailure: a caught error becomes a FAILED record with an error code, then the run fails."""

from __future__ import annotations

from functools import cache
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit, single_metric
from aws_lambda_powertools.utilities.typing import LambdaContext

from describer_aws import clients
from describer_aws.observability import count_final_record, logger, metrics, tracer
from describer_aws.product_events import ProductEvents
from describer_aws.results_table import ResultsTable
from describer_rules.catalogue import load_catalogue
from describer_steps.record_failure import record_failure
from describer_steps.settings import FailureSettings, load_settings
from describer_steps.states import FailureInput


@cache
def _dependencies() -> tuple[FailureSettings, Any, ResultsTable, ProductEvents]:
    settings = load_settings(FailureSettings)
    table = clients.results_table(settings.results_table_name)
    events = clients.product_events(settings.event_bus_name)
    return settings, clients.client("s3"), table, events


@logger.inject_lambda_context(log_event=False)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    settings, s3, table, events = _dependencies()
    output = record_failure(
        FailureInput.model_validate(event), s3, table, events, load_catalogue(), settings.key_prefixes
    )
    if output.events_pending:
        logger.warning("the record's event waits in the outbox: PutEvents failed")
    if output.completed:
        logger.info(
            "the run's record is already COMPLETED; left as it is", extra=output.model_dump(mode="json")
        )
        return output.model_dump(mode="json")
    if output.superseded:
        metrics.add_metric(name="ResultsSuperseded", unit=MetricUnit.Count, value=1)
        logger.info(
            "superseded by a newer upload; failure not recorded", extra=output.model_dump(mode="json")
        )
        return output.model_dump(mode="json")
    metrics.add_metric(name="ImagesFailed", unit=MetricUnit.Count, value=1)
    count_final_record(failed=True)
    with single_metric(name="ImagesFailedByCode", unit=MetricUnit.Count, value=1) as by_code:
        by_code.add_dimension(name="ErrorCode", value=output.error_code.value)
    logger.info("failed", extra=output.model_dump(mode="json"))
    return output.model_dump(mode="json")
