"""AskAttribute: one group of catalogue questions about one image, one call to the SageMaker endpoint."""

from __future__ import annotations

from functools import cache
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from describer_aws import clients
from describer_aws.observability import logger, metrics, tracer
from describer_rules.catalogue import load_catalogue
from describer_steps.ask_attribute import ask_attributes
from describer_steps.settings import EndpointSettings, load_settings
from describer_steps.states import AskInput


@cache
def _dependencies() -> tuple[EndpointSettings, Any]:
    settings = load_settings(EndpointSettings)
    return settings, clients.sagemaker_runtime(settings.endpoint_read_timeout_s)


@logger.inject_lambda_context(log_event=False)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    settings, runtime = _dependencies()
    request = AskInput.model_validate(event)
    output = ask_attributes(request, runtime, settings.endpoint_name, load_catalogue())
    metrics.add_metric(name="EndpointLatency", unit=MetricUnit.Milliseconds, value=output.endpoint_ms)
    # With the call count (EndpointLatency's samples), the GPU time the dashboard's cost estimate models.
    metrics.add_metric(name="EndpointQuestions", unit=MetricUnit.Count, value=len(request.questions))
    logger.info(
        "answered",
        extra={
            "attributes": [answer.attribute for answer in output.answers],
            "unknown": [answer.attribute for answer in output.answers if not answer.known],
            "endpoint_ms": output.endpoint_ms,
        },
    )
    return output.model_dump(mode="json")
