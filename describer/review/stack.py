"""The review desk wired to a deployed stack (local or on AWS), with the reviewer's own credentials.

The copy of a corrected product is re-written by invoking the stack's WriteDescription Lambda with the
corrected attributes, the same ``DescribeInput`` the workflow passes it: the same writer, validator,
model, locales and style guide as the pipeline, under the Lambda's own Bedrock permissions (the
reviewer needs ``lambda:InvokeFunction`` on that one function, not Bedrock). The settings the desk
checks edited copy with are read from that function's configuration, so they cannot drift either.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from describer.deployment import Deployment
from describer.review.desk import ReviewDesk, ReviewRefused
from describer_aws.product_events import ProductEvents
from describer_aws.results_table import ResultsTable
from describer_aws.style_guides import load_style_guide
from describer_rules.contracts import ProductRecord, S3ObjectRef
from describer_steps.settings import DescriptionSettings, load_settings
from describer_steps.states import DescribeInput, DescriptionResult, ProductIdentity

WRITER_OUTPUT = "WriteDescriptionFunctionName"


class CopyNotRewritten(ReviewRefused):
    """The writer could not re-write the copy (it broke the content rules twice, Bedrock failed)."""


def describe_input(record: ProductRecord, attributes: Mapping[str, str]) -> DescribeInput:
    """WriteDescription's input for ``record`` with the reviewed ``attributes`` (all vouched for)."""
    if record.order_token is None:
        raise ReviewRefused(f"record {record.product_id!r} has no order token")
    version = None if record.source_version == "null" else record.source_version
    product = ProductIdentity(
        product_id=record.product_id,
        category=record.category,
        source=S3ObjectRef(bucket=record.source_bucket, key=record.source_key, version_id=version),
        order_token=record.order_token,
    )
    return DescribeInput(product=product, attributes=dict(attributes), confidence={})


@dataclass
class LambdaCopyWriter:
    lambda_client: Any
    function_name: str

    def rewrite(self, record: ProductRecord, attributes: Mapping[str, str]) -> DescriptionResult:
        payload = describe_input(record, attributes).model_dump_json()
        try:
            response = self.lambda_client.invoke(
                FunctionName=self.function_name, InvocationType="RequestResponse", Payload=payload.encode()
            )
        except (ClientError, BotoCoreError) as error:
            raise CopyNotRewritten(f"the copy could not be re-written: {error}") from error
        body = response["Payload"].read()
        if response.get("FunctionError"):
            try:
                failure = json.loads(body)
                reason = f"{failure.get('errorType', 'Error')}: {failure.get('errorMessage', '')}"
            except (ValueError, AttributeError):
                reason = body.decode(errors="replace")[:500]
            raise CopyNotRewritten(f"the copy could not be re-written ({reason}); nothing was changed")
        return DescriptionResult.model_validate_json(body)


def writer_settings(lambda_client: Any, function_name: str) -> DescriptionSettings:
    """The writer's settings as deployed: the WriteDescription function's environment."""
    configuration = lambda_client.get_function_configuration(FunctionName=function_name)
    return load_settings(DescriptionSettings, configuration.get("Environment", {}).get("Variables", {}))


def caller_identity(deployment: Deployment) -> str:
    """The reviewer: STS GetCallerIdentity's ARN for the credentials the desk runs with."""
    return str(deployment.client("sts").get_caller_identity()["Arn"])


def review_desk(deployment: Deployment) -> ReviewDesk:
    function_name = deployment.outputs[WRITER_OUTPUT]
    lambda_client = deployment.client("lambda")
    settings = writer_settings(lambda_client, function_name)
    style = (
        load_style_guide(settings.style_guide_uri, deployment.client("s3"))
        if settings.style_guide_uri
        else None
    )
    return ReviewDesk(
        table=ResultsTable(deployment.results_table, deployment.client("dynamodb")),
        events=ProductEvents(deployment.event_bus, deployment.client("events")),
        rewriter=LambdaCopyWriter(lambda_client, function_name),
        settings=settings,
        reviewer=caller_identity(deployment),
        needing_review=lambda: deployment.records_needing_review(oldest_first=True),
        style=style,
    )
