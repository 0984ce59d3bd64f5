"""PlanBackfillItem: one listed object -> the DescribeProduct run it needs, or nothing to do."""

from __future__ import annotations

from functools import cache
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from describer_aws import clients
from describer_aws.observability import logger, tracer
from describer_aws.results_table import ResultsTable
from describer_rules.catalogue import load_catalogue
from describer_steps.backfill_plan import PlanInput, plan_item
from describer_steps.settings import BackfillSettings, load_settings


@cache
def _dependencies() -> tuple[BackfillSettings, Any, ResultsTable]:
    settings = load_settings(BackfillSettings)
    return settings, clients.client("s3"), clients.results_table(settings.results_table_name)


@logger.inject_lambda_context(log_event=False)
@tracer.capture_lambda_handler(capture_response=False)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    settings, s3, table = _dependencies()
    output = plan_item(
        PlanInput.model_validate(event),
        s3,
        table,
        load_catalogue(),
        settings.key_prefixes,
        settings.run_timeout_seconds,
    )
    logger.info("planned", extra={"product_id": output.product_id, "plan": output.plan.value})
    return output.model_dump(mode="json")
