"""AWS error classification: which ClientErrors are throttling or transient, read from the SDK's response."""

from __future__ import annotations

from botocore.exceptions import ClientError

_THROTTLING_CODES = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "TooManyRequestsException",
        "RequestLimitExceeded",
        "ProvisionedThroughputExceededException",
        "RequestThrottled",
        "SlowDown",
    }
)


def client_error_code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


def client_error_status(error: ClientError) -> int:
    return int(error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)


def is_throttling(error: ClientError) -> bool:
    return client_error_code(error) in _THROTTLING_CODES or client_error_status(error) == 429


def is_transient(error: ClientError) -> bool:
    """Throttling or a 5xx: worth retrying with backoff (botocore already retried connection errors)."""
    return is_throttling(error) or client_error_status(error) >= 500
