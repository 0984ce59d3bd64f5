"""Powertools Logger, Tracer and Metrics, set up once for every pipeline Lambda.

Service name, namespace and log level come from the environment (POWERTOOLS_SERVICE_NAME,
POWERTOOLS_METRICS_NAMESPACE, POWERTOOLS_LOG_LEVEL) that the template sets. Nothing here logs an
event, a payload or image bytes: handlers log identifiers and outcomes only.
"""

from __future__ import annotations

from aws_lambda_powertools import Logger, Metrics, Tracer

logger = Logger()
tracer = Tracer()
metrics = Metrics()
