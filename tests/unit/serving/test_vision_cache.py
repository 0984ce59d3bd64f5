"""The vision feature cache: bounded LRU, and one computation however many requests ask at once."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from functools import partial

import pytest
import torch
from PIL import Image

from benchmarks.endpoint_speedup import benchmark_questions, product_photo
from describer_rules.contracts import ProductRequest, S3ObjectRef
from describer_rules.endpoint_errors import EndpointErrorCode, EndpointRequestError
from endpoint import model as endpoint_model
from endpoint.model import DescriberModel
from endpoint.vision_cache import VisionFeatureCache

from .conftest import BUCKET

SMALL_PHOTO = (96, 128)
REQUESTS = 6


def _features(value: float, elements: int = 4) -> torch.Tensor:
    return torch.full((elements,), value, dtype=torch.float32)


def test_least_recently_used_entry_goes_first_when_entries_are_bounded() -> None:
    cache = VisionFeatureCache(max_entries=2, max_bytes=1 << 20)
    cache.get_or_compute("a", lambda: _features(1))
    cache.get_or_compute("b", lambda: _features(2))
    cache.get_or_compute("a", lambda: _features(9))  # a hit: "a" becomes the most recent
    cache.get_or_compute("c", lambda: _features(3))

    assert len(cache) == 2
    assert cache.get_or_compute("a", lambda: _features(9))[0] == 1
    assert cache.get_or_compute("b", lambda: _features(8))[0] == 8  # "b" was evicted, so recomputed


def test_bytes_are_bounded() -> None:
    entry_bytes = _features(0).numel() * 4
    cache = VisionFeatureCache(max_entries=100, max_bytes=3 * entry_bytes)
    for index in range(10):
        cache.get_or_compute(str(index), partial(_features, float(index)))
        assert cache.nbytes <= 3 * entry_bytes
    assert len(cache) == 3
    cache.get_or_compute("huge", lambda: _features(0, elements=1000))
    assert cache.nbytes <= 3 * entry_bytes


def _wait_until(condition, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.005)


def test_concurrent_requests_for_one_image_run_the_vision_pass_once(
    endpoint: DescriberModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    category, questions = benchmark_questions(endpoint.catalogue, REQUESTS)
    photo = product_photo(21, SMALL_PHOTO)
    encode = endpoint.encode_image
    passes: list[int] = []

    def encode_once_everyone_waits(image: Image.Image) -> torch.Tensor:
        passes.append(threading.get_ident())
        # Hold the first computation until every other request is waiting for it.
        _wait_until(lambda: endpoint.cache.waits >= REQUESTS - 1)
        return encode(image)

    monkeypatch.setattr(endpoint, "encode_image", encode_once_everyone_waits)
    with ThreadPoolExecutor(REQUESTS) as pool:
        responses = list(
            pool.map(lambda question: endpoint.describe_image(photo, [question], category), questions)
        )

    assert len(passes) == 1
    assert endpoint.cache.computations == 1
    assert endpoint.cache.waits == REQUESTS - 1
    # Each concurrent one-question answer equals its answer in one batched request.
    together = endpoint.describe_image(photo, questions, category).answers
    assert [response.answers[0].value for response in responses] == [answer.value for answer in together]
    assert [response.answers[0].confidence for response in responses] == pytest.approx(
        [answer.confidence for answer in together], abs=1e-5
    )


def test_a_failed_vision_pass_reaches_every_waiter_and_is_not_cached(
    endpoint: DescriberModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    category, questions = benchmark_questions(endpoint.catalogue, REQUESTS)
    not_an_image = b"this is a text file, not a photo"
    decode = endpoint_model.decode_image

    def decode_once_everyone_waits(data: bytes) -> Image.Image:
        _wait_until(lambda: endpoint.cache.waits >= REQUESTS - 1)
        return decode(data)

    monkeypatch.setattr(endpoint_model, "decode_image", decode_once_everyone_waits)

    def ask(question):
        with pytest.raises(EndpointRequestError) as raised:
            endpoint.describe_image(not_an_image, [question], category)
        return raised.value.code

    with ThreadPoolExecutor(REQUESTS) as pool:
        codes = list(pool.map(ask, questions))

    assert codes == [EndpointErrorCode.NOT_AN_IMAGE] * REQUESTS
    assert endpoint.cache.computations == 1
    assert len(endpoint.cache) == 0
    with pytest.raises(EndpointRequestError):
        endpoint.describe_image(not_an_image, questions[:1], category)
    assert endpoint.cache.computations == 2


def test_later_calls_about_a_cached_object_version_do_not_read_it_again(endpoint: DescriberModel, s3) -> None:
    s3.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
    photo = product_photo(22, SMALL_PHOTO)
    version = s3.put_object(Bucket=BUCKET, Key="incoming/Shirts/7.jpg", Body=photo)["VersionId"]
    category, questions = benchmark_questions(endpoint.catalogue, 4)
    pinned = S3ObjectRef(bucket=BUCKET, key="incoming/Shirts/7.jpg", version_id=version)

    first = endpoint.answer_product(
        ProductRequest(image_s3=pinned, questions=questions[:2], category=category)
    )
    # The object is gone: only a request that does not read it again can still be answered.
    s3.delete_object(Bucket=BUCKET, Key="incoming/Shirts/7.jpg", VersionId=version)
    second = endpoint.answer_product(
        ProductRequest(image_s3=pinned, questions=questions[2:], category=category)
    )

    assert second.image_digest == first.image_digest
    assert endpoint.cache.computations == 1
    with pytest.raises(EndpointRequestError) as unpinned:
        endpoint.answer_product(
            ProductRequest(image_s3=pinned.model_copy(update={"version_id": None}), questions=questions)
        )
    assert unpinned.value.code == EndpointErrorCode.OBJECT_NOT_FOUND
