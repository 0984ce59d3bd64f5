"""The endpoint reads a product's photo from S3 itself: the pipeline sends where it is, not its bytes."""

from __future__ import annotations

import threading
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

from describer_rules.contracts import S3ObjectRef
from describer_rules.endpoint_errors import EndpointErrorCode, EndpointRequestError
from endpoint.requests import MAX_IMAGE_BYTES

_NOT_FOUND_CODES = {"NoSuchKey", "NoSuchBucket", "NoSuchVersion", "404", "NotFound"}


class S3ImageReader:
    """One S3 client, created on first use; the endpoint URL comes from the environment."""

    def __init__(self) -> None:
        self._client: Any = None
        self._lock = threading.Lock()

    def read(self, ref: S3ObjectRef) -> bytes:
        """The object's bytes, at most MAX_IMAGE_BYTES; client errors for missing or unreadable ones."""
        params = {"Bucket": ref.bucket, "Key": ref.key}
        if ref.version_id:
            params["VersionId"] = ref.version_id
        try:
            response = self._s3().get_object(**params)
        except ClientError as error:
            code = str(error.response.get("Error", {}).get("Code", ""))
            if code in _NOT_FOUND_CODES:
                raise EndpointRequestError(
                    EndpointErrorCode.OBJECT_NOT_FOUND, f"S3 object not found ({code})"
                ) from None
            raise EndpointRequestError(
                EndpointErrorCode.OBJECT_UNREADABLE, f"S3 refused the read ({code})"
            ) from None
        body = response["Body"]
        try:
            if response.get("ContentLength", 0) > MAX_IMAGE_BYTES:
                raise EndpointRequestError(
                    EndpointErrorCode.IMAGE_TOO_LARGE, f"the object is over {MAX_IMAGE_BYTES} bytes"
                )
            data: bytes = body.read(MAX_IMAGE_BYTES + 1)
        finally:
            body.close()
        if len(data) > MAX_IMAGE_BYTES:
            raise EndpointRequestError(
                EndpointErrorCode.IMAGE_TOO_LARGE, f"the object is over {MAX_IMAGE_BYTES} bytes"
            )
        return data

    def _s3(self) -> Any:
        with self._lock:
            if self._client is None:
                config = Config(
                    connect_timeout=5, read_timeout=30, retries={"mode": "standard", "max_attempts": 3}
                )
                self._client = boto3.session.Session().client("s3", config=config)
            return self._client
