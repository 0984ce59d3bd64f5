"""The brand's style guide read from S3, once per Lambda container (the cache below); a new guide is
picked up by new containers (redeploy to force it)."""

from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING

from botocore.exceptions import BotoCoreError, ClientError

from describer_aws.aws_errors import client_error_code, is_transient
from describer_rules.errors import StyleGuideInvalid, TransientError
from describer_rules.style_guide import MAX_STYLE_GUIDE_BYTES, StyleGuide, parse_style_guide, split_s3_uri

if TYPE_CHECKING:  # the stubs are a dev dependency; the Lambdas never import them
    from mypy_boto3_s3 import S3Client


def load_style_guide(uri: str, s3_client: S3Client) -> StyleGuide | None:
    """The guide at ``uri`` (None when no guide is configured), read once per container."""
    if not uri:
        return None
    return _cached_guide(uri, s3_client)


@lru_cache(maxsize=4)
def _cached_guide(uri: str, s3_client: S3Client) -> StyleGuide:
    bucket, key = split_s3_uri(uri)
    try:
        response = s3_client.get_object(Bucket=bucket, Key=key)
        body = response["Body"].read(MAX_STYLE_GUIDE_BYTES + 1)
    except ClientError as error:
        if is_transient(error):
            raise TransientError(f"S3 GetObject of the style guide: {client_error_code(error)}") from error
        raise StyleGuideInvalid(f"cannot read {uri}: {client_error_code(error)}") from error
    except BotoCoreError as error:
        raise TransientError(f"{type(error).__name__} reading the style guide") from error
    return parse_style_guide(uri, body)
