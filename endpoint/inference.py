"""The endpoint's entry point: the SageMaker Hugging Face inference toolkit's four functions.

Copied to ``<model dir>/code/inference.py`` beside the ``endpoint`` package (``training.model_dir``);
the toolkit, the serving entry point (``endpoint.serve``) and the local model host all load it from
there, with ``code/`` on the import path::

    model = model_fn(model_dir)                      # DescriberModel
    request = input_fn(body, content_type)           # ReferenceRequest | ProductRequest
    prediction = predict_fn(request, model)          # JSON-ready dict
    body = output_fn(prediction, accept)             # JSON text

Requests (``application/json``), both from ``describer_rules.contracts``:

- ``ReferenceRequest`` ``{"prompt": "<question>", "image": "<base64>"}`` (the reference solution's),
  answered ``{"Sleeve Length": "Long Sleeves"}``;
- ``ProductRequest`` ``{"image_s3": {"bucket", "key", "version_id"?}, "questions": [{"attribute",
  "question"}, ...], "category"?}``, answered with a ``ProductResponse``.

Error contract: everything wrong with a request raises
``describer_rules.endpoint_errors.EndpointRequestError``, a ``ValueError`` with ``.status`` (400
invalid request, 404 S3 object not found, 413 too many questions / image too large, 415 not JSON,
422 unreadable object or image) and ``.code``; ``str(error)`` is the JSON error body. A host maps it
to ``.status``; the SageMaker toolkit answers any exception with 400 and ``str(error)``, which the
caller parses with ``EndpointErrorBody.from_message``. Any other exception is a server error (5xx).
"""

from __future__ import annotations

import json
from typing import Any

from describer_rules.contracts import ProductRequest, ReferenceRequest
from describer_rules.endpoint_errors import EndpointErrorCode, EndpointRequestError
from endpoint.model import DescriberModel
from endpoint.requests import JSON_CONTENT_TYPE, parse_request


def model_fn(model_dir: str) -> DescriberModel:
    return DescriberModel.load(model_dir)


def input_fn(body: bytes | bytearray | str, content_type: str | None) -> ReferenceRequest | ProductRequest:
    media_type = (content_type or JSON_CONTENT_TYPE).split(";")[0].strip().lower()
    if media_type != JSON_CONTENT_TYPE:
        raise EndpointRequestError(
            EndpointErrorCode.UNSUPPORTED_MEDIA_TYPE, f"Content-Type must be {JSON_CONTENT_TYPE}"
        )
    try:
        payload = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise EndpointRequestError(EndpointErrorCode.INVALID_REQUEST, "the body is not valid JSON") from None
    return parse_request(payload)


def predict_fn(data: ReferenceRequest | ProductRequest, model: DescriberModel) -> dict[str, Any]:
    if model.batcher is not None:
        with model.batcher.request():
            return _predict(data, model)
    return _predict(data, model)


def _predict(data: ReferenceRequest | ProductRequest, model: DescriberModel) -> dict[str, Any]:
    if isinstance(data, ProductRequest):
        return model.answer_product(data).model_dump(mode="json")
    return dict(model.answer_reference(data))


def output_fn(prediction: dict[str, Any], accept: str | None) -> str:
    media_types = {part.split(";")[0].strip().lower() for part in (accept or "").split(",")} - {""}
    if media_types and not media_types & {JSON_CONTENT_TYPE, "application/*", "*/*"}:
        raise EndpointRequestError(
            EndpointErrorCode.UNSUPPORTED_MEDIA_TYPE, f"Accept must allow {JSON_CONTENT_TYPE}"
        )
    return json.dumps(prediction, ensure_ascii=False)
