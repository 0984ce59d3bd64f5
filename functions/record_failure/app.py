"""RecordFailure: a caught error becomes a FAILED record with an error code, then the run fails."""

from __future__ import annotations

from functools import cache
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit, single_metric
from aws_lambda_powertools.utilities.typing import LambdaContext

from describer_core import wiring
from describer_core.catalogue import load_catalogue
from describer_core.notifications import ProductEvents
from describer_core.observability import count_final_record, logger, metrics, tracer
from describer_core.outcomes import record_failure
from describer_core.records import ResultsTable
from describer_core.settings import FailureSettings, load_settings
from describer_core.states import FailureInput


@cache
def _dependencies() -> tuple[FailureSettings, Any, ResultsTable, ProductEvents]:
    settings = load_settings(FailureSettings)
    table = wiring.results_table(settings.results_table_name)
    events = wiring.product_events(settings.event_bus_name)
    return settings, wiring.client("s3"), table, events


@logger.inject_lambda_context(log_event=False)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    settings, s3, table, events = _dependencies()
    output = record_failure(
        FailureInput.model_validate(event), s3, table, events, load_catalogue(), settings.key_prefixes
    )
    metrics.add_metric(name="ImagesFailed", unit=MetricUnit.Count, value=1)
    count_final_record(failed=True)
    with single_metric(name="ImagesFailedByCode", unit=MetricUnit.Count, value=1) as by_code:
        by_code.add_dimension(name="ErrorCode", value=output.error_code.value)
    logger.info("failed", extra=output.model_dump(mode="json"))
    return output.model_dump(mode="json")
