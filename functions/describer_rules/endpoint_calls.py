"""How the pipeline calls the endpoint: a product's questions in groups, every group to one instance.

Prepare splits the questions into groups of at most ``questions_per_call`` (``group_questions``);
the AskAttributes Map sends each group as one ``InvokeEndpoint``. On an endpoint with several
instances the groups of one product must reach the instance that already holds the image's vision
features, so the endpoint config routes with SageMaker's ``PREFIX_AWARE`` strategy and every call
for the image carries:

- the same ``PrefixAwareId`` (``prefix_aware_id``: a digest of the image's bucket, key and version);
- a body whose first ``ROUTING_PREFIX_BYTES`` bytes are the same for every group of the image
  (``product_request_body``: the image reference first, padded with JSON whitespace; the router
  compares that many leading bytes, and 1,024 is the smallest ``PrefixLength`` it accepts).

Stateful sessions (``SessionId``) would pin harder, but the container would have to open and close
sessions and answer ``NEW_SESSION`` with a session header, which the Hugging Face inference toolkit
cannot, and the first call of a product would have to finish before its other groups could start.
Prefix-aware routing needs nothing from the container and, when the instance is busy past its
concurrency threshold, sends a call elsewhere, where it costs one more vision pass, never an error.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import TypeVar

from describer_rules.contracts import ProductRequest, S3ObjectRef

# Measured with `make bench` (docs/endpoint.md): 4 keeps a product's questions in more than one call
# (retried and run in parallel separately) at nearly the speed of one call for all of them.
DEFAULT_QUESTIONS_PER_CALL = 4

ItemT = TypeVar("ItemT")

# PrefixAwareRoutingConfig.PrefixLength: bytes from the start of the body (its minimum is 1,024).
ROUTING_PREFIX_BYTES = 1024
# In-flight calls on the prefix's instance before the router sends the next call to another one.
ROUTING_CONCURRENCY_THRESHOLD = 16


def group_questions(questions: Sequence[ItemT], per_call: int) -> list[list[ItemT]]:
    """The fewest groups of at most ``per_call`` questions, as even in size as possible, in order.

    Even groups finish at about the same time when the Map runs them in parallel: 6 questions at 4
    per call go out as 3 and 3, not 4 and 2.
    """
    if per_call < 1:
        raise ValueError(f"questions_per_call must be at least 1, not {per_call}")
    if not questions:
        return []
    count = -(-len(questions) // per_call)
    size, larger = divmod(len(questions), count)
    groups, start = [], 0
    for index in range(count):
        end = start + size + (index < larger)
        groups.append(list(questions[start:end]))
        start = end
    return groups


def prefix_aware_id(image: S3ObjectRef) -> str:
    """The routing id of one image version: 64 hex characters (the header's limit)."""
    name = f"s3://{image.bucket}/{image.key}?versionId={image.version_id or ''}"
    return hashlib.sha256(name.encode()).hexdigest()


def product_request_body(request: ProductRequest) -> bytes:
    """The request as JSON whose first ``ROUTING_PREFIX_BYTES`` bytes depend on the image only."""
    head = '{"image_s3":' + request.image_s3.model_dump_json(exclude_none=True)
    # One photo: the body as before several photos existed (no empty "images_s3").
    skipped = {"image_s3"} if request.images_s3 else {"image_s3", "images_s3"}
    rest = request.model_dump_json(exclude_none=True, exclude=skipped)
    padding = " " * max(0, ROUTING_PREFIX_BYTES - len(head.encode()))
    return f"{head}{padding},{rest[1:]}".encode()
