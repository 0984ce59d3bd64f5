"""Several photos of one product in one request: one vision pass per photo, one fused answer each."""

from __future__ import annotations

import pytest

from benchmarks.endpoint_speedup import benchmark_questions, product_photo
from describer_rules.contracts import ProductRequest, S3ObjectRef
from describer_rules.endpoint_errors import EndpointRequestError
from describer_rules.fusion import fuse_answers
from endpoint.model import DescriberModel
from endpoint.requests import parse_request

from .conftest import BUCKET


def _upload(s3, key: str, seed: int) -> S3ObjectRef:
    s3.put_object(Bucket=BUCKET, Key=key, Body=product_photo(seed, (96, 128)))
    return S3ObjectRef(bucket=BUCKET, key=key)


def test_every_photo_is_encoded_once_and_each_answer_is_the_fusion_of_all(
    endpoint: DescriberModel, s3
) -> None:
    refs = [
        _upload(s3, f"incoming/Shirts/p1/{name}.jpg", seed)
        for seed, name in enumerate(("front", "back", "detail"))
    ]
    category, questions = benchmark_questions(endpoint.catalogue, 4)
    request = ProductRequest(image_s3=refs[0], images_s3=refs[1:], questions=questions, category=category)

    response = endpoint.answer_product(request)
    again = endpoint.answer_product(request.model_copy(update={"questions": questions[:2]}))

    assert endpoint.cache.computations == 3  # three photos, one vision pass each, none repeated
    assert len(response.image_digests) == 3 and len(set(response.image_digests)) == 3
    assert response.image_digest == response.image_digests[0]
    per_photo = []
    for ref in refs:
        _, features = endpoint.s3_image_features(ref)
        per_photo.append(endpoint.score_and_answer(features, questions, category))
    expected = fuse_answers(per_photo, endpoint.calibration.temperature, endpoint.fusion)
    assert [(a.attribute, a.value, a.photos_agreed) for a in response.answers] == [
        (a.attribute, a.value, a.photos_agreed) for a in expected
    ]
    assert [a.confidence for a in response.answers] == pytest.approx([a.confidence for a in expected])
    assert all(0 <= (answer.photos_agreed or 0) <= 3 for answer in response.answers)
    # Fewer questions pack the decoder's rows differently: the same answers, confidences to rounding.
    for asked_again, asked in zip(again.answers, response.answers[:2], strict=True):
        assert asked_again.model_dump(exclude={"confidence", "alternatives"}) == asked.model_dump(
            exclude={"confidence", "alternatives"}
        )
        assert asked_again.confidence == pytest.approx(asked.confidence, abs=1e-9)
        assert [(a.value, pytest.approx(a.confidence, abs=1e-9)) for a in asked_again.alternatives] == [
            (a.value, a.confidence) for a in asked.alternatives
        ]


def test_a_single_photo_request_is_answered_as_before(endpoint: DescriberModel, s3) -> None:
    ref = _upload(s3, "incoming/Shirts/15970.jpg", 7)
    category, questions = benchmark_questions(endpoint.catalogue, 3)
    response = endpoint.answer_product(ProductRequest(image_s3=ref, questions=questions, category=category))
    assert response.image_digests == []
    assert all(answer.photos_agreed is None for answer in response.answers)


def test_the_wire_format_takes_several_photos_and_bounds_them() -> None:
    photos = [{"bucket": BUCKET, "key": f"incoming/Shirts/p/{index}.jpg"} for index in range(20)]
    body = {
        "image_s3": photos[0],
        "images_s3": photos[1:],
        "questions": [{"attribute": "Fit", "question": "q"}],
    }
    request = parse_request(body)
    assert isinstance(request, ProductRequest) and len(request.photos) == 20
    with pytest.raises(EndpointRequestError):
        parse_request({**body, "images_s3": photos[1:] + photos[:1]})
