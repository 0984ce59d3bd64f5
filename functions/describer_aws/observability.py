"""Powertools Logger, Tracer and Metrics, set up once for every pipeline Lambda.

Service name, namespace and log level come from the environment (POWERTOOLS_SERVICE_NAME,
POWERTOOLS_METRICS_NAMESPACE, POWERTOOLS_LOG_LEVEL) that the template sets: the service is the stack's
name, so two stacks in one account keep their metrics apart, and every metric's dimensions are the
service plus at most one drawn from a closed set (ErrorCode, Locale). Nothing here logs an
event, a payload or image bytes: handlers log identifiers and outcomes only.
"""

from __future__ import annotations

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit

logger = Logger()
tracer = Tracer()
metrics = Metrics()

# Every final record adds one datapoint: 100 when it is FAILED, 0 when COMPLETED. Its Average over a
# period is the failure rate in percent, which the FailureRateAlarm watches with a plain metric alarm.
FAILURE_PERCENT_METRIC = "ImageFailurePercent"


def count_final_record(failed: bool) -> None:
    metrics.add_metric(name=FAILURE_PERCENT_METRIC, unit=MetricUnit.Percent, value=100 if failed else 0)
