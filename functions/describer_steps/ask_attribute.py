"""AskAttribute: one group of a product's questions to the SageMaker endpoint.

The request names the image by its S3 location (``ProductRequest``); image bytes never travel
through the workflow's state. Each call is routed to the instance holding the image's vision
features (``endpoint_calls``). Every answer is normalised against the catalogue with
``parse_answer``: a value outside the vocabulary is kept as the model said it and flagged; a scored
answer keeps its confidence and alternatives.
"""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING

from botocore.exceptions import BotoCoreError, ClientError
from pydantic import ValidationError

from describer_aws.aws_errors import client_error_code, client_error_status, is_throttling, is_transient
from describer_rules.answers import parse_answer
from describer_rules.catalogue import AttributeSpec, Catalogue
from describer_rules.contracts import (
    AttributeAnswer,
    ProductRequest,
    ProductResponse,
    Question,
    S3ObjectRef,
)
from describer_rules.endpoint_calls import prefix_aware_id, product_request_body
from describer_rules.endpoint_errors import EndpointErrorBody
from describer_rules.errors import EndpointFailed, EndpointThrottled, EndpointUnavailable
from describer_steps.states import AskInput, AskOutput

if TYPE_CHECKING:  # the stubs are a dev dependency; the Lambdas never import them
    from mypy_boto3_sagemaker_runtime import SageMakerRuntimeClient


CONTENT_TYPE = "application/json"
_UNAVAILABLE_CODES = frozenset(
    {"ModelNotReadyException", "ServiceUnavailable", "InternalFailure", "InternalDependencyException"}
)


def ask_attributes(
    request: AskInput, runtime_client: SageMakerRuntimeClient, endpoint_name: str, catalogue: Catalogue
) -> AskOutput:
    """One endpoint call for a group of questions, routed to the instance holding the image."""
    others = [photo for photo in request.images if photo != request.image]
    body = ProductRequest(
        image_s3=request.image, images_s3=others, questions=request.questions, category=request.category
    )
    started_ms = int(time.time() * 1000)
    started = time.monotonic()
    try:
        response = runtime_client.invoke_endpoint(
            EndpointName=endpoint_name,
            ContentType=CONTENT_TYPE,
            Accept=CONTENT_TYPE,
            PrefixAwareId=prefix_aware_id(request.image),
            Body=product_request_body(body),
        )
        payload = response["Body"].read()
    except ClientError as error:
        raise _endpoint_error(error) from error
    except BotoCoreError as error:
        raise EndpointUnavailable(f"{type(error).__name__} calling {endpoint_name}") from error
    elapsed_ms = int((time.monotonic() - started) * 1000)
    answers = _answers_for(payload, request, catalogue)
    return AskOutput(answers=answers, endpoint=endpoint_name, endpoint_ms=elapsed_ms, started_ms=started_ms)


def ask_one(
    image: S3ObjectRef,
    question: Question,
    category: str,
    runtime_client: SageMakerRuntimeClient,
    endpoint_name: str,
    catalogue: Catalogue,
) -> AttributeAnswer:
    """One question about one image (Prepare's article-type question), answered like the Map's."""
    request = AskInput(image=image, category=category, questions=[question])
    return ask_attributes(request, runtime_client, endpoint_name, catalogue).answers[0]


def _endpoint_error(error: ClientError) -> Exception:
    code = client_error_code(error)
    message = str(error.response.get("Error", {}).get("Message", ""))
    if code == "ModelError":
        # The container's own status: its 429 and 5xx are load or a transient fault, a 4xx is final.
        original = int(str(error.response.get("OriginalStatusCode") or 0))
        if original == 429:
            return EndpointThrottled("the model container is overloaded (429)")
        if original >= 500:
            return EndpointUnavailable(f"the model container failed ({original})")
        body = EndpointErrorBody.from_message(message)
        if body is not None:
            return EndpointFailed(
                f"endpoint refused the request: {body.error} {body.message}", body.error.record_code
            )
        return EndpointFailed(f"the model container refused the request ({original})")
    if code in _UNAVAILABLE_CODES:
        return EndpointUnavailable(f"SageMaker {code}")
    if is_throttling(error):
        return EndpointThrottled(f"SageMaker {code or 'throttled'}")
    if is_transient(error):
        return EndpointUnavailable(f"SageMaker {code or client_error_status(error)}")
    return EndpointFailed(f"SageMaker {code}: {message}")


def _answers_for(payload: bytes, request: AskInput, catalogue: Catalogue) -> list[AttributeAnswer]:
    try:
        response = ProductResponse.model_validate(json.loads(payload))
    except (ValueError, ValidationError):
        raise EndpointFailed("the endpoint's reply is not a ProductResponse") from None
    category = catalogue.category(request.category)
    by_attribute = {answer.attribute.casefold(): answer for answer in response.answers}
    answers = []
    for question in request.questions:
        try:
            spec = category.attribute(question.attribute)
        except KeyError:
            spec = AttributeSpec(name=question.attribute, values={})  # not in the catalogue: unknown
        answer = by_attribute.get(spec.name.casefold())
        if answer is None:
            raise EndpointFailed(f"the endpoint's reply has no answer about {spec.name!r}")
        parsed = parse_answer(answer.raw or answer.value, spec)
        answers.append(
            answer.model_copy(update={"attribute": spec.name, **parsed.model_dump(exclude={"attribute"})})
        )
    return answers
