"""What a request to the endpoint may be: its two JSON shapes, and the image it names or carries.

Everything wrong with a request raises ``EndpointRequestError`` (a client error with its status),
before any of it reaches the model; nothing here quotes the request back (it may hold an image).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import io
from typing import Any

from PIL import Image
from pydantic import BaseModel, ValidationError

from describer_rules.contracts import MAX_QUESTIONS_PER_REQUEST, ProductRequest, ReferenceRequest
from describer_rules.endpoint_errors import EndpointErrorCode, EndpointRequestError
from describer_rules.errors import InvalidInput
from describer_rules.images import ImageSettings, inspect_image

JSON_CONTENT_TYPE = "application/json"
# The same limits as the pipeline's Prepare step, so the two never disagree about an image.
MAX_IMAGE_BYTES = ImageSettings().max_image_bytes
MAX_IMAGE_PIXELS = ImageSettings().max_image_pixels


def validation_message(error: ValidationError) -> str:
    """Field locations and reasons only: pydantic's own str() would quote the input (the image)."""
    problems = [
        f"{'.'.join(str(part) for part in item['loc']) or 'body'}: {item['msg']}" for item in error.errors()
    ]
    return "; ".join(problems)


def _validate(model: type[BaseModel], payload: dict[str, Any]) -> Any:
    try:
        return model.model_validate(payload)
    except ValidationError as error:
        raise EndpointRequestError(EndpointErrorCode.INVALID_REQUEST, validation_message(error)) from None


def parse_request(payload: object) -> ReferenceRequest | ProductRequest:
    """Which of the two requests ``payload`` is, validated."""
    if not isinstance(payload, dict):
        raise EndpointRequestError(EndpointErrorCode.INVALID_REQUEST, "the body must be a JSON object")
    if "image_s3" in payload or "questions" in payload:
        questions = payload.get("questions")
        if isinstance(questions, list) and len(questions) > MAX_QUESTIONS_PER_REQUEST:
            raise EndpointRequestError(
                EndpointErrorCode.TOO_MANY_QUESTIONS,
                f"{len(questions)} questions; at most {MAX_QUESTIONS_PER_REQUEST} per request",
            )
        request: ProductRequest = _validate(ProductRequest, payload)
        return request
    if "prompt" in payload or "image" in payload:
        reference: ReferenceRequest = _validate(ReferenceRequest, payload)
        return reference
    raise EndpointRequestError(
        EndpointErrorCode.INVALID_REQUEST,
        "expected 'image_s3' and 'questions' (product request) or 'prompt' and 'image' (reference request)",
    )


def decode_base64_image(text: str) -> bytes:
    compact = "".join(text.split())
    if len(compact) > (MAX_IMAGE_BYTES + 2) // 3 * 4:
        raise EndpointRequestError(
            EndpointErrorCode.IMAGE_TOO_LARGE, f"the image is larger than {MAX_IMAGE_BYTES} bytes"
        )
    try:
        return base64.b64decode(compact, validate=True)
    except (binascii.Error, ValueError):
        raise EndpointRequestError(EndpointErrorCode.INVALID_REQUEST, "image: not valid base64") from None


def decode_image(data: bytes) -> Image.Image:
    """The image as RGB once it passes the pipeline's own image rule; a client error otherwise."""
    try:
        inspect_image(data, max_bytes=MAX_IMAGE_BYTES, max_pixels=MAX_IMAGE_PIXELS)
    except InvalidInput as rejected:
        raise EndpointRequestError(EndpointErrorCode(rejected.code.value), rejected.detail) from None
    with Image.open(io.BytesIO(data)) as image:
        return image.convert("RGB")


def image_digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
