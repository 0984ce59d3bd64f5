"""BatchCopy: the backfill's batch copy pass, ``{"action": "submit"}`` or ``{"action": "collect"}``.

Submit puts every queued copy request into Bedrock batch jobs; collect reads the jobs that ended,
saves their products and answers ``open_jobs`` (the backfill waits and collects again while it is
above 0). A collect pass stops short of the function's timeout and leaves the rest for the next one.
"""

from __future__ import annotations

from functools import cache
from typing import Any, Literal

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import BaseModel

from describer_aws import clients
from describer_aws.batch_jobs import BatchJobs, CopyStore
from describer_aws.observability import logger, metrics, tracer
from describer_aws.style_guides import load_style_guide
from describer_rules.catalogue import load_catalogue
from describer_steps.batch_copy import BatchCopier
from describer_steps.settings import BatchCopySettings, load_settings

# What a collect pass leaves itself to write back the unfinished part of a submission.
_SAFETY_MS = 60_000


class BatchCopyRequest(BaseModel):
    action: Literal["submit", "collect"]


@cache
def _settings() -> BatchCopySettings:
    return load_settings(BatchCopySettings)


def _copier(context: LambdaContext) -> BatchCopier:
    settings = _settings()
    s3 = clients.client("s3")
    return BatchCopier(
        CopyStore(s3, settings.batch_copy_bucket, settings.batch_copy_prefix),
        BatchJobs(clients.client("bedrock"), settings.batch_copy_role_arn),
        clients.results_table(settings.results_table_name),
        clients.product_events(settings.event_bus_name),
        load_catalogue(),
        settings,
        clients.bedrock_runtime(),
        load_style_guide(settings.style_guide_uri, s3),
        should_stop=lambda: context.get_remaining_time_in_millis() < _SAFETY_MS,
    )


@logger.inject_lambda_context(log_event=False)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    request = BatchCopyRequest.model_validate(event)
    copier = _copier(context)
    report = copier.submit() if request.action == "submit" else copier.collect()
    for reason, count in report.fallbacks.items():
        metrics.add_metric(name=f"BatchCopyFallback_{reason}", unit=MetricUnit.Count, value=count)
    metrics.add_metric(name="BatchCopyBadLines", unit=MetricUnit.Count, value=sum(report.bad_lines.values()))
    metrics.add_metric(name="ImagesCompleted", unit=MetricUnit.Count, value=report.saved)
    for name, value in report.ledger_totals.items():  # the dashboard's cost by day
        metrics.add_metric(name=name, unit=MetricUnit.Count, value=value)
    output = report.as_dict()
    logger.info(f"batch copy {request.action}", extra=output)
    return output
