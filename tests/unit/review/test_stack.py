"""The desk's link to the stack: the WriteDescription invocation and its settings, and ReviewerPolicy."""

from __future__ import annotations

import io
import json
import re
from typing import Any

import boto3
import pytest
from botocore.response import StreamingBody
from botocore.stub import ANY, Stubber

from describer.review.stack import CopyNotRewritten, LambdaCopyWriter, describe_input, writer_settings
from describer_aws.results_table import REVIEW_FIELDS, RecordVersion
from describer_steps.states import DescribeInput, DescriptionResult

from .conftest import SHIRT, Stack, granted_actions, reviewer_policy_statements, shirt_record

# What a reviewer's credentials must never change: the run, its status, the product's source.
PIPELINE_FIELDS = {
    "status",
    "order_token",
    "execution_name",
    "created_at",
    "source_key",
    "source_version",
    "images",
}


def _payload(data: dict[str, Any]) -> StreamingBody:
    raw = json.dumps(data).encode()
    return StreamingBody(io.BytesIO(raw), len(raw))


def _client() -> Any:
    return boto3.client("lambda", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")


def test_the_writer_is_asked_as_the_workflow_asks_it_with_every_attribute_vouched_for() -> None:
    record = shirt_record()
    request = describe_input(record, {**SHIRT, "Fabric": "Polyester"})
    assert DescribeInput.model_validate(request.model_dump(mode="json")) == request
    assert request.attributes["Fabric"] == "Polyester" and request.confidence == {}
    assert request.product.source.key == record.source_key and request.product.source.version_id is None
    assert request.product.order_token == record.order_token


def test_a_written_copy_comes_back_as_the_description_result() -> None:
    client, record = _client(), shirt_record()
    result = DescriptionResult(
        text=record.content["en-US"].description,
        model_id="offline-describer-v1",
        input_tokens=10,
        output_tokens=20,
        attempts=1,
        description_ms=5,
        content=record.content,
        token_usage=record.token_usage,
    )
    with Stubber(client) as stubber:
        stubber.add_response(
            "invoke",
            {"StatusCode": 200, "Payload": _payload(result.model_dump(mode="json"))},
            {"FunctionName": "writer", "InvocationType": "RequestResponse", "Payload": ANY},
        )
        assert LambdaCopyWriter(client, "writer").rewrite(record, SHIRT) == result


def test_a_writer_failure_refuses_the_correction_naming_why() -> None:
    client = _client()
    failure = {"errorType": "DescriptionInvalid", "errorMessage": "en-US: rule title_length broken"}
    with Stubber(client) as stubber:
        stubber.add_response(
            "invoke", {"StatusCode": 200, "FunctionError": "Unhandled", "Payload": _payload(failure)}
        )
        with pytest.raises(CopyNotRewritten, match="DescriptionInvalid: en-US: rule title_length"):
            LambdaCopyWriter(client, "writer").rewrite(shirt_record(), SHIRT)
        stubber.add_client_error("invoke", "ResourceNotFoundException", "Function not found")
        with pytest.raises(CopyNotRewritten, match="ResourceNotFoundException"):
            LambdaCopyWriter(client, "writer").rewrite(shirt_record(), SHIRT)


def test_the_settings_are_the_deployed_functions_own() -> None:
    client = _client()
    environment = {
        "BEDROCK_MODEL_ID": "m",
        "LOCALES": "de-DE,en-US",
        "TITLE_MAX_CHARS": "60",
        "REVIEW_THRESHOLD": "0.7",
    }
    with Stubber(client) as stubber:
        stubber.add_response(
            "get_function_configuration",
            {"FunctionName": "writer", "Environment": {"Variables": environment}},
            {"FunctionName": "writer"},
        )
        settings = writer_settings(client, "writer")
    assert settings.locales == ["de-DE", "en-US"] and settings.default_locale == "de-DE"
    assert (settings.title_max_chars, settings.review_threshold) == (60, 0.7)


def test_the_reviewer_policy_grants_what_the_desk_calls_and_no_more() -> None:
    statements = reviewer_policy_statements()
    assert granted_actions() == {
        "cloudformation:DescribeStacks",
        "dynamodb:Query",
        "dynamodb:GetItem",
        "dynamodb:UpdateItem",
        "s3:GetObject",
        "s3:GetObjectVersion",
        "lambda:InvokeFunction",
        "lambda:GetFunctionConfiguration",
        "events:PutEvents",
    }
    assert "*" not in "".join(granted_actions())
    [put] = [s for s in statements if s["Action"] == "events:PutEvents"]
    assert put["Condition"]["StringEquals"] == {
        "events:source": "product-describer",
        "events:detail-type": "Product Reviewed",
    }
    [query] = [s for s in statements if s["Action"] == "dynamodb:Query"]
    assert query["Resource"] == {"Fn::Sub": "${ResultsTable.Arn}/index/by-review"}
    [lambda_calls] = [s for s in statements if "lambda:InvokeFunction" in s["Action"]]
    assert lambda_calls["Resource"] == {"Fn::GetAtt": ["WriteDescriptionFunction", "Arn"]}


def _review_update() -> dict[str, Any]:
    [update] = [s for s in reviewer_policy_statements() if "dynamodb:UpdateItem" in s["Action"]]
    return update


def test_a_reviewer_may_update_the_review_fields_only() -> None:
    condition = _review_update()["Condition"]
    allowed = set(condition["ForAllValues:StringEquals"]["dynamodb:Attributes"])
    assert allowed == {"product_id", *REVIEW_FIELDS} and not allowed & PIPELINE_FIELDS
    # ForAllValues holds for a request naming no attribute at all: require that it names them.
    assert condition["Null"] == {"dynamodb:Attributes": "false"}
    assert condition["StringEqualsIfExists"]["dynamodb:ReturnValues"] == ["NONE", "UPDATED_NEW"]


def test_every_review_write_names_only_what_the_policy_allows(stack: Stack) -> None:
    """The UpdateItem requests of an accept, a correction and a rejection, as IAM would see them:
    every attribute they name (set, removed or in the condition) is one the policy allows."""
    allowed = set(_review_update()["Condition"]["ForAllValues:StringEquals"]["dynamodb:Attributes"])
    requests: list[dict[str, Any]] = []
    stack.dynamodb.meta.events.register(
        "provide-client-params.dynamodb.UpdateItem", lambda params, **_: requests.append(dict(params))
    )
    records = [stack.put(shirt_record(product_id)) for product_id in ("a", "b", "c")]
    requests.clear()
    desk = stack.desk()
    desk.accept("a", RecordVersion.of(records[0]))
    desk.correct("b", RecordVersion.of(records[1]), {"Fabric": "Polyester"}, {})
    desk.reject("c", RecordVersion.of(records[2]), "blurry")

    assert len(requests) == 3
    for request in requests:
        named = set(request["ExpressionAttributeNames"].values()) | set(request["Key"])
        assert named <= allowed, named - allowed
        expressions = request["UpdateExpression"] + " " + request["ConditionExpression"]
        bare = set(re.findall(r"(?<![#:\w])[A-Za-z_]\w*", expressions))  # names not behind # or :
        assert bare <= {"SET", "REMOVE", "AND", "attribute_exists"}, bare
        assert request.get("ReturnValues", "NONE") in ("NONE", "UPDATED_NEW")
