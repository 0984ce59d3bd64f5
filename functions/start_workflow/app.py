"""SQS -> Step Functions: one deterministically named execution per upload, within the admission limit."""

from __future__ import annotations

from functools import cache
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from describer_aws import clients
from describer_aws.observability import logger, metrics, tracer
from describer_rules.catalogue import load_catalogue
from describer_steps.photo_sets import PhotoSets
from describer_steps.prepare import known_category
from describer_steps.settings import StarterSettings, load_settings
from describer_steps.start_workflow import SqsRecord, admit, park_malformed, reoffer_soon


@cache
def _dependencies() -> tuple[StarterSettings, Any, Any, PhotoSets]:
    settings, sqs = load_settings(StarterSettings), clients.client("sqs")
    photo_sets = PhotoSets(
        clients.client("s3"),
        sqs,
        settings.admission_queue_url,
        settings.photo_settle_seconds,
        settings.key_prefixes,
        known_category(load_catalogue()),
    )
    return settings, clients.client("stepfunctions"), sqs, photo_sets


@logger.inject_lambda_context(log_event=False)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    settings, sfn, sqs, photo_sets = _dependencies()
    records = [SqsRecord.model_validate(record) for record in event.get("Records", [])]
    outcome = admit(records, sfn, settings.state_machine_arn, settings.max_running_executions, photo_sets)
    reoffer_soon(sqs, settings.admission_queue_url, [r for r in records if r.messageId in outcome.deferred])
    malformed = [r for r in records if r.messageId in outcome.malformed]
    outcome.failed += park_malformed(sqs, settings.admission_dead_letter_queue_url, malformed)
    metrics.add_metric(name="ExecutionsStarted", unit=MetricUnit.Count, value=len(outcome.started))
    metrics.add_metric(name="UploadsDeferred", unit=MetricUnit.Count, value=len(outcome.deferred))
    metrics.add_metric(name="MalformedEvents", unit=MetricUnit.Count, value=len(outcome.malformed))
    logger.info(
        "admission",
        extra={name: len(ids) for name, ids in outcome.model_dump().items()},
    )
    return outcome.batch_response()
