"""AskAttribute: the InvokeEndpoint request shape (botocore Stubber), answer parsing, error classes."""

from __future__ import annotations

import io
import json
from typing import Any

import boto3
import pytest
from botocore.response import StreamingBody
from botocore.stub import ANY, Stubber

from describer_core.attributes import ask_attribute, merge_attributes
from describer_core.catalogue import load_catalogue
from describer_core.contracts import ErrorCode, ProductRequest, S3ObjectRef
from describer_core.endpoint_errors import EndpointErrorCode, EndpointRequestError
from describer_core.errors import EndpointFailed, EndpointThrottled, EndpointUnavailable, PipelineError
from describer_core.states import AskInput

ENDPOINT = "describer-endpoint"
REQUEST = AskInput(
    image=S3ObjectRef(bucket="uploads", key="incoming/Shirts/a b.jpg", version_id="v1"),
    category="Shirts",
    question={
        "attribute": "Sleeve Length",
        "question": "What is the sleeve length of the shirt in this picture?",
    },
)


def _body(payload: dict[str, Any]) -> StreamingBody:
    raw = json.dumps(payload).encode()
    return StreamingBody(io.BytesIO(raw), len(raw))


def _reply(raw: str, value: str = "ignored", attribute: str = "Sleeve Length") -> dict[str, Any]:
    answer = {"attribute": attribute, "value": value, "raw": raw, "known": False}
    return {"answers": [answer], "image_digest": "0" * 64, "model_id": "blip2-lora"}


class _BodyMatcher:
    """Compares equal to an InvokeEndpoint Body that is a ProductRequest naming the image by S3 reference."""

    def __eq__(self, body: object) -> bool:
        request = ProductRequest.model_validate_json(body)  # type: ignore[arg-type]
        assert request.image_s3 == REQUEST.image
        assert [q.model_dump() for q in request.questions] == [REQUEST.question.model_dump()]
        assert request.category == "Shirts"
        assert b"base64" not in body and "image" not in json.loads(body)  # type: ignore[operator]
        return True


def _ask_with(stub: Any) -> Any:
    client = boto3.client("sagemaker-runtime", region_name="us-east-1")
    with Stubber(client) as stubber:
        stub(stubber)
        return ask_attribute(REQUEST, client, ENDPOINT, load_catalogue())


@pytest.mark.parametrize(
    "raw", ["Sleeve Length: Long Sleeves", '{"Sleeve Length": "long sleeves"}', "long-sleeves"]
)
def test_request_shape_and_answer_normalised_to_the_catalogue(raw: str) -> None:
    expected = {
        "EndpointName": ENDPOINT,
        "ContentType": "application/json",
        "Accept": "application/json",
        "Body": _BodyMatcher(),
    }
    output = _ask_with(
        lambda stubber: stubber.add_response("invoke_endpoint", {"Body": _body(_reply(raw))}, expected)
    )
    assert output.answer.attribute == "Sleeve Length"
    assert (output.answer.value, output.answer.known, output.answer.raw) == ("Long Sleeves", True, raw)
    assert output.endpoint == ENDPOINT


def test_out_of_vocabulary_value_is_kept_raw_and_flagged() -> None:
    output = _ask_with(
        lambda stubber: stubber.add_response(
            "invoke_endpoint",
            {"Body": _body(_reply("Sleeve Length: Cap Sleeves"))},
            {"EndpointName": ENDPOINT, "Body": ANY, "ContentType": ANY, "Accept": ANY},
        )
    )
    assert (output.answer.value, output.answer.known) == ("Cap Sleeves", False)


def _error(stubber: Stubber, code: str, status: int, **modeled: Any) -> None:
    stubber.add_client_error(
        "invoke_endpoint",
        service_error_code=code,
        service_message="msg",
        http_status_code=status,
        modeled_fields=modeled,
    )


@pytest.mark.parametrize(
    ("code", "status", "modeled", "expected", "record_code"),
    [
        ("ThrottlingException", 400, {}, EndpointThrottled, ErrorCode.ENDPOINT_UNAVAILABLE),
        ("ModelNotReadyException", 429, {}, EndpointUnavailable, ErrorCode.ENDPOINT_UNAVAILABLE),
        ("ModelNotReadyException", 400, {}, EndpointUnavailable, ErrorCode.ENDPOINT_UNAVAILABLE),
        ("ServiceUnavailable", 503, {}, EndpointUnavailable, ErrorCode.ENDPOINT_UNAVAILABLE),
        ("InternalFailure", 500, {}, EndpointUnavailable, ErrorCode.ENDPOINT_UNAVAILABLE),
        ("ModelError", 424, {"OriginalStatusCode": 503}, EndpointUnavailable, ErrorCode.ENDPOINT_UNAVAILABLE),
        ("ModelError", 424, {"OriginalStatusCode": 429}, EndpointThrottled, ErrorCode.ENDPOINT_UNAVAILABLE),
        ("ModelError", 424, {"OriginalStatusCode": 400}, EndpointFailed, ErrorCode.ENDPOINT_ERROR),
        ("ValidationError", 400, {}, EndpointFailed, ErrorCode.ENDPOINT_ERROR),
    ],
)
def test_endpoint_errors_become_typed_errors(
    code: str, status: int, modeled: dict[str, Any], expected: type[PipelineError], record_code: ErrorCode
) -> None:
    with pytest.raises(PipelineError) as raised:
        _ask_with(lambda stubber: _error(stubber, code, status, **modeled))
    assert type(raised.value) is expected
    assert raised.value.code is record_code
    assert str(raised.value).startswith(f"{record_code.value}: ")


def test_endpoint_client_error_body_keeps_its_product_error_code() -> None:
    body = str(EndpointRequestError(EndpointErrorCode.IMAGE_UNDECODABLE, "image does not decode"))
    client = boto3.client("sagemaker-runtime", region_name="us-east-1")
    with Stubber(client) as stubber:
        stubber.add_client_error(
            "invoke_endpoint",
            service_error_code="ModelError",
            service_message=f'Received client error (422) from primary with message "{body}". See logs.',
            http_status_code=424,
            modeled_fields={"OriginalStatusCode": 422},
        )
        with pytest.raises(EndpointFailed) as raised:
            ask_attribute(REQUEST, client, ENDPOINT, load_catalogue())
    assert raised.value.code is ErrorCode.IMAGE_UNDECODABLE


@pytest.mark.parametrize("payload", [{"answers": "nope"}, _reply("Pattern: Solid", attribute="Pattern")])
def test_unusable_replies_are_endpoint_errors(payload: dict[str, Any]) -> None:
    with pytest.raises(EndpointFailed):
        _ask_with(
            lambda stubber: stubber.add_response(
                "invoke_endpoint",
                {"Body": _body(payload)},
                {"EndpointName": ENDPOINT, "Body": ANY, "ContentType": ANY, "Accept": ANY},
            )
        )


def test_merge_makes_one_object_and_lists_unknown_attributes() -> None:
    from describer_core.contracts import AttributeAnswer
    from describer_core.states import AskOutput

    def item(attribute: str, value: str, known: bool) -> AskOutput:
        answer = AttributeAnswer(attribute=attribute, value=value, raw=value, known=known)
        return AskOutput(answer=answer, endpoint=ENDPOINT, endpoint_ms=10)

    merged = merge_attributes(
        [item("Sleeve Length", "Long Sleeves", True), item("Fabric", "Linen", False), item("Fit", "", False)]
    )
    assert merged.attributes == {"Sleeve Length": "Long Sleeves", "Fabric": "Linen"}
    assert merged.unknown_attributes == ["Fabric", "Fit"]
    assert merged.endpoint_ms == 30
    assert merged.unknown_rate == pytest.approx(2 / 3)
