"""AskAttribute and MergeAttributes: one question to the SageMaker endpoint, then one attribute object.

The request names the image by its S3 location (``ProductRequest``); image bytes never travel
through the workflow's state. Every answer is normalised against the catalogue with
``parse_answer``: a value outside the vocabulary is kept as the model said it and flagged.
"""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING

from botocore.exceptions import BotoCoreError, ClientError
from pydantic import ValidationError

from describer_core.answers import parse_answer
from describer_core.catalogue import Catalogue
from describer_core.contracts import AttributeAnswer, ProductRequest, ProductResponse
from describer_core.endpoint_errors import EndpointErrorBody
from describer_core.errors import (
    EndpointFailed,
    EndpointThrottled,
    EndpointUnavailable,
    client_error_code,
    client_error_status,
    is_throttling,
    is_transient,
)
from describer_core.states import AskInput, AskOutput, MergedAttributes

if TYPE_CHECKING:  # the stubs are a dev dependency; the Lambdas never import them
    from mypy_boto3_sagemaker_runtime import SageMakerRuntimeClient


CONTENT_TYPE = "application/json"
_UNAVAILABLE_CODES = frozenset(
    {"ModelNotReadyException", "ServiceUnavailable", "InternalFailure", "InternalDependencyException"}
)


def ask_attribute(
    request: AskInput, runtime_client: SageMakerRuntimeClient, endpoint_name: str, catalogue: Catalogue
) -> AskOutput:
    body = ProductRequest(image_s3=request.image, questions=[request.question], category=request.category)
    started = time.monotonic()
    try:
        response = runtime_client.invoke_endpoint(
            EndpointName=endpoint_name,
            ContentType=CONTENT_TYPE,
            Accept=CONTENT_TYPE,
            Body=body.model_dump_json(exclude_none=True).encode(),
        )
        payload = response["Body"].read()
    except ClientError as error:
        raise _endpoint_error(error) from error
    except BotoCoreError as error:
        raise EndpointUnavailable(f"{type(error).__name__} calling {endpoint_name}") from error
    elapsed_ms = int((time.monotonic() - started) * 1000)
    answer = _answer_for(payload, request, catalogue)
    return AskOutput(answer=answer, endpoint=endpoint_name, endpoint_ms=elapsed_ms)


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


def _answer_for(payload: bytes, request: AskInput, catalogue: Catalogue) -> AttributeAnswer:
    try:
        response = ProductResponse.model_validate(json.loads(payload))
    except (ValueError, ValidationError):
        raise EndpointFailed("the endpoint's reply is not a ProductResponse") from None
    spec = catalogue.category(request.category).attribute(request.question.attribute)
    for answer in response.answers:
        if answer.attribute.casefold() == spec.name.casefold():
            parsed = parse_answer(answer.raw or answer.value, spec)
            return AttributeAnswer(
                attribute=spec.name, value=parsed.value, raw=parsed.raw, known=parsed.known
            )
    raise EndpointFailed(f"the endpoint's reply has no answer about {spec.name!r}")


def merge_attributes(answers: list[AskOutput]) -> MergedAttributes:
    """One ``{attribute: value}`` object, plus which attributes fell outside the vocabulary."""
    attributes = {item.answer.attribute: item.answer.value for item in answers if item.answer.value}
    unknown = sorted({item.answer.attribute for item in answers if not item.answer.known})
    return MergedAttributes(
        attributes=attributes,
        unknown_attributes=unknown,
        endpoint=answers[0].endpoint if answers else None,
        endpoint_ms=sum(item.endpoint_ms for item in answers),
    )
