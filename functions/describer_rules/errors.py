"""Typed pipeline errors: the exception's class name is the Step Functions error name.

A Lambda that raises one of these fails its task with ``Error`` = the class name, which the state
machine's Retry and Catch rules match on; the message always starts with the record's ErrorCode
(``"ENDPOINT_UNAVAILABLE: ..."``) so RecordFailure can recover the code from the task's Cause even
where the error name is lost (an unpatched ministack reports every handler error as
``Runtime.HandlerError``; the local stack patches it: ``describer/local/emulator/patch.py``).
Retryable classes are the ones the ASL retries; the rest are final.
"""

from __future__ import annotations

import re
from typing import ClassVar

from describer_rules.contracts import ErrorCode

_MESSAGE_LIMIT = 400


class PipelineError(Exception):
    """Base class; ``default_code`` is the record's error code unless the raiser gives another."""

    default_code: ClassVar[ErrorCode] = ErrorCode.INTERNAL_ERROR
    retryable: ClassVar[bool] = False

    def __init__(self, message: str, code: ErrorCode | None = None) -> None:
        self.code = code or self.default_code
        self.detail = message[:_MESSAGE_LIMIT]
        super().__init__(f"{self.code.value}: {self.detail}")


class InvalidInput(PipelineError):
    """The upload itself is unusable (bad key, missing object, not an acceptable image)."""


class TransientError(PipelineError):
    """S3 or DynamoDB throttled or briefly unavailable."""

    retryable = True


class EndpointThrottled(PipelineError):
    default_code = ErrorCode.ENDPOINT_UNAVAILABLE
    retryable = True


class EndpointUnavailable(PipelineError):
    """5xx, model not ready, connection or read timeout."""

    default_code = ErrorCode.ENDPOINT_UNAVAILABLE
    retryable = True


class EndpointFailed(PipelineError):
    """The endpoint refused the request or answered something unusable; retrying cannot help."""

    default_code = ErrorCode.ENDPOINT_ERROR


class DescriptionThrottled(PipelineError):
    default_code = ErrorCode.DESCRIPTION_UNAVAILABLE
    retryable = True


class DescriptionUnavailable(PipelineError):
    default_code = ErrorCode.DESCRIPTION_UNAVAILABLE
    retryable = True


class DescriptionFailed(PipelineError):
    """Bedrock refused the request (access, validation, unknown model); retrying cannot help."""

    default_code = ErrorCode.DESCRIPTION_UNAVAILABLE


class DescriptionInvalid(PipelineError):
    default_code = ErrorCode.DESCRIPTION_INVALID


class StyleGuideInvalid(PipelineError):
    """The configured style guide cannot be read or is not valid; retrying cannot help."""

    default_code = ErrorCode.STYLE_GUIDE_INVALID


def error_classes() -> dict[str, type[PipelineError]]:
    """Every pipeline error class by its Step Functions error name."""
    found: dict[str, type[PipelineError]] = {}
    pending = list(PipelineError.__subclasses__())
    while pending:
        cls = pending.pop()
        found[cls.__name__] = cls
        pending += cls.__subclasses__()
    return found


_CODE_PREFIX = re.compile(r"^\s*([A-Z][A-Z_]+):\s*(.*)$", re.DOTALL)


def split_coded_message(message: str) -> tuple[ErrorCode | None, str]:
    """Invert PipelineError's message format: ``"CODE: detail"`` -> (ErrorCode.CODE, "detail")."""
    match = _CODE_PREFIX.match(message)
    if match and match.group(1) in ErrorCode.__members__:
        return ErrorCode(match.group(1)), match.group(2).strip()
    return None, message.strip()
