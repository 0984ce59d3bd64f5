"""SaveResult: the COMPLETED record, written only while this run is still the product's current one."""

from __future__ import annotations

from functools import cache
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from describer_aws import clients
from describer_aws.observability import count_final_record, logger, metrics, tracer
from describer_aws.product_events import ProductEvents
from describer_aws.results_table import ResultsTable
from describer_rules.cost_ledger import ledger_metrics
from describer_steps.save_result import run_ledger, save_result
from describer_steps.settings import FinalRecordSettings, load_settings
from describer_steps.states import SaveInput


@cache
def _dependencies() -> tuple[ResultsTable, ProductEvents]:
    settings = load_settings(FinalRecordSettings)
    return clients.results_table(settings.results_table_name), clients.product_events(settings.event_bus_name)


@logger.inject_lambda_context(log_event=False)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    request = SaveInput.model_validate(event)
    logger.append_keys(product_id=request.product.product_id)
    output = save_result(request, *_dependencies())
    if output.events_pending:
        logger.warning("Product Described waits in the outbox: PutEvents failed")
    if output.saved and not output.written:
        logger.info("already saved by an earlier attempt of this run; record left as it is")
    elif output.saved:
        metrics.add_metric(name="ImagesCompleted", unit=MetricUnit.Count, value=1)
        count_final_record(failed=False)
        # 0 or 1 per completed image: its Average is the review share.
        metrics.add_metric(
            name="ImagesNeedingReview", unit=MetricUnit.Count, value=int(request.merged.needs_review)
        )
        metrics.add_metric(
            name="UnknownValueRate", unit=MetricUnit.Percent, value=100 * request.merged.unknown_rate
        )
        for name, value in ledger_metrics(run_ledger(request)).items():  # the dashboard's cost by day
            metrics.add_metric(name=name, unit=MetricUnit.Count, value=value)
        logger.info("completed", extra={"unknown_attributes": request.merged.unknown_attributes})
    else:
        metrics.add_metric(name="ResultsSuperseded", unit=MetricUnit.Count, value=1)
        logger.info("superseded by a newer upload; result not saved")
    return output.model_dump(mode="json")
