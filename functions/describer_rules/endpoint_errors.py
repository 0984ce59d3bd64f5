"""The endpoint's client-error contract, shared by the endpoint, the local model host and its callers.

The endpoint raises :class:`EndpointRequestError` for anything wrong with a request. ``str(error)``
is the JSON error body, so it survives every layer that only keeps an exception's message: the
SageMaker Hugging Face inference toolkit turns any exception into a 400 response carrying
``str(error)``, and SageMaker Runtime wraps that in a ``ModelError`` whose message quotes it.
:meth:`EndpointErrorBody.from_message` reads the body back out of such a message.
"""

from __future__ import annotations

import json
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ValidationError

from describer_rules.contracts import ErrorCode


class EndpointErrorCode(StrEnum):
    INVALID_REQUEST = "INVALID_REQUEST"  # not JSON, a field missing or of the wrong type, bad base64
    TOO_MANY_QUESTIONS = "TOO_MANY_QUESTIONS"
    UNSUPPORTED_MEDIA_TYPE = "UNSUPPORTED_MEDIA_TYPE"  # Content-Type or Accept other than JSON
    OBJECT_NOT_FOUND = "OBJECT_NOT_FOUND"  # no such S3 bucket, key or version
    OBJECT_UNREADABLE = "OBJECT_UNREADABLE"  # S3 refused the read (access denied, ...)
    IMAGE_TOO_LARGE = "IMAGE_TOO_LARGE"  # more bytes than the endpoint reads
    IMAGE_TOO_MANY_PIXELS = "IMAGE_TOO_MANY_PIXELS"
    NOT_AN_IMAGE = "NOT_AN_IMAGE"  # no image format recognised
    IMAGE_UNDECODABLE = "IMAGE_UNDECODABLE"  # recognised, but broken or truncated

    @property
    def record_code(self) -> ErrorCode:
        """The product record's failure code for this client error."""
        return _RECORD_CODES.get(self, ErrorCode.ENDPOINT_ERROR)


_RECORD_CODES = {
    EndpointErrorCode.OBJECT_NOT_FOUND: ErrorCode.OBJECT_NOT_FOUND,
    EndpointErrorCode.IMAGE_TOO_LARGE: ErrorCode.IMAGE_TOO_LARGE,
    EndpointErrorCode.IMAGE_TOO_MANY_PIXELS: ErrorCode.IMAGE_TOO_MANY_PIXELS,
    EndpointErrorCode.NOT_AN_IMAGE: ErrorCode.NOT_AN_IMAGE,
    EndpointErrorCode.IMAGE_UNDECODABLE: ErrorCode.IMAGE_UNDECODABLE,
}

HTTP_STATUS: dict[EndpointErrorCode, int] = {
    EndpointErrorCode.INVALID_REQUEST: 400,
    EndpointErrorCode.TOO_MANY_QUESTIONS: 413,
    EndpointErrorCode.UNSUPPORTED_MEDIA_TYPE: 415,
    EndpointErrorCode.OBJECT_NOT_FOUND: 404,
    EndpointErrorCode.OBJECT_UNREADABLE: 422,
    EndpointErrorCode.IMAGE_TOO_LARGE: 413,
    EndpointErrorCode.IMAGE_TOO_MANY_PIXELS: 413,
    EndpointErrorCode.NOT_AN_IMAGE: 422,
    EndpointErrorCode.IMAGE_UNDECODABLE: 422,
}


class EndpointErrorBody(BaseModel):
    """The JSON body of a 4xx answer. ``message`` names fields, never their values."""

    error: EndpointErrorCode
    status: int
    message: str

    @classmethod
    def from_message(cls, text: str) -> EndpointErrorBody | None:
        """The body quoted in an error message (e.g. a SageMaker ``ModelError``), or None.

        The body may sit in the text as it is, or as a string inside other JSON: the model server
        answers ``{"code": 400, "type": ..., "message": "<the body>"}`` and SageMaker quotes that.
        """
        decoder = json.JSONDecoder()
        position = text.find("{")
        while position >= 0:
            try:
                value, _ = decoder.raw_decode(text, position)
            except json.JSONDecodeError:
                value = None
            if isinstance(value, dict):
                found = cls._from_object(value)
                if found is not None:
                    return found
            position = text.find("{", position + 1)
        return None

    @classmethod
    def _from_object(cls, value: dict[str, Any]) -> EndpointErrorBody | None:
        try:
            return cls.model_validate(value)
        except ValidationError:
            pass
        for item in value.values():
            found = cls.from_message(item) if isinstance(item, str) else None
            if found is not None:
                return found
        return None


class EndpointRequestError(ValueError):
    """A request the endpoint will not answer: the caller must change it. Maps to a 4xx response."""

    def __init__(self, code: EndpointErrorCode, message: str) -> None:
        self.body = EndpointErrorBody(error=code, status=HTTP_STATUS[code], message=message)
        super().__init__(self.body.model_dump_json())

    @property
    def code(self) -> EndpointErrorCode:
        return self.body.error

    @property
    def status(self) -> int:
        return self.body.status
