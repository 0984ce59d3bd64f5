"""Cross-request batching: a request's answers are those it gets alone, and a bad request fails alone."""

from __future__ import annotations

import http.client
import json
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import torch

from benchmarks.endpoint_speedup import benchmark_questions, product_photo
from describer.local.model_host import ModelHost
from describer.local.model_host.description_backends import OfflineWriter
from describer_rules.contracts import MAX_REQUEST_BYTES, Question
from describer_rules.endpoint_errors import EndpointErrorBody, EndpointErrorCode
from endpoint import inference
from endpoint.batching import MAX_BATCH_ENV, WINDOW_ENV, BatchSettings, Collector
from endpoint.model import DescriberModel
from endpoint.requests import decode_image
from endpoint.scoring import CandidateScores
from endpoint.serve import EntryPoint

from .conftest import BUCKET

SMALL_PHOTO = (96, 128)
REQUESTS = 6
ENDPOINT = "batching-test"
# Long enough that concurrent test threads always meet, however busy the machine.
PATIENT = BatchSettings(window_ms=1000, max_batch=8)


def _batched(loaded: DescriberModel, settings: BatchSettings = PATIENT) -> DescriberModel:
    return DescriberModel(
        loaded.model, loaded.processor, loaded.catalogue, loaded.model_id, batching=settings
    )


def _workload(model: DescriberModel) -> tuple[str, list[bytes], list[list[Question]]]:
    """Distinct photos, each with its own number of questions (prompts and candidates pad differently)."""
    category, questions = benchmark_questions(model.catalogue, 6)
    photos = [product_photo(100 + index, SMALL_PHOTO) for index in range(REQUESTS)]
    asked = [questions[: 2 + index % 5] for index in range(REQUESTS)]
    return category, photos, asked


def _alone(
    model: DescriberModel, category: str, photo: bytes, questions: Sequence[Question]
) -> tuple[torch.Tensor, list[CandidateScores | None], list[dict[str, Any]]]:
    features = model.encode_image(decode_image(photo))
    answers, scores = model.score_and_answer(features, questions, category)
    return features, scores, [answer.model_dump() for answer in answers]


def _together(calls: Sequence[Callable[[], Any]]) -> list[Any]:
    """Run ``calls`` in threads that start at the same moment."""
    barrier = threading.Barrier(len(calls))

    def run(call: Callable[[], Any]) -> Any:
        barrier.wait()
        return call()

    with ThreadPoolExecutor(len(calls)) as pool:
        return list(pool.map(run, calls))


def _assert_same_answers(batched: list[dict[str, Any]], alone: list[dict[str, Any]]) -> None:
    assert len(batched) == len(alone)
    for got, expected in zip(batched, alone, strict=True):
        assert {k: v for k, v in got.items() if k not in ("confidence", "alternatives")} == {
            k: v for k, v in expected.items() if k not in ("confidence", "alternatives")
        }
        assert got["confidence"] == pytest.approx(expected["confidence"], rel=1e-4, abs=1e-5)
        assert [a["value"] for a in got["alternatives"]] == [a["value"] for a in expected["alternatives"]]


def test_batched_answers_equal_the_answers_each_request_gets_alone(loaded_model: DescriberModel) -> None:
    single = DescriberModel(loaded_model.model, loaded_model.processor, loaded_model.catalogue, "m")
    batched = _batched(loaded_model)
    assert batched.batcher is not None and single.batcher is None
    category, photos, asked = _workload(single)
    alone = [
        _alone(single, category, photo, questions) for photo, questions in zip(photos, asked, strict=True)
    ]

    scoring_together = threading.Barrier(REQUESTS)  # they all reach scoring at once, however busy the machine

    def request(photo: bytes, questions: list[Question]) -> tuple[Any, ...]:
        assert batched.batcher is not None
        with batched.batcher.request():
            _, features = batched.image_features(photo)
            scoring_together.wait()
            answers, scores = batched.score_and_answer(features, questions, category)
        return features, scores, [answer.model_dump() for answer in answers]

    results = _together(
        [lambda p=photo, q=questions: request(p, q) for photo, questions in zip(photos, asked, strict=True)]
    )

    stats = batched.batcher.stats()
    # They really met: fewer vision passes and decoder batches than requests.
    assert stats["vision"]["items"] == REQUESTS and stats["vision"]["batches"] < REQUESTS
    assert stats["scoring"]["items"] == REQUESTS and stats["scoring"]["largest"] > 1
    for (features, scores, answers), (features_alone, scores_alone, answers_alone) in zip(
        results, alone, strict=True
    ):
        torch.testing.assert_close(features, features_alone, rtol=1e-4, atol=1e-5)
        for got, expected in zip(scores, scores_alone, strict=True):
            assert got is not None and expected is not None
            assert (got.attribute, got.values) == (expected.attribute, expected.values)
            assert got.scores == pytest.approx(expected.scores, rel=1e-4, abs=1e-4)
        _assert_same_answers(answers, answers_alone)


def test_a_batch_that_fails_is_answered_one_request_at_a_time(
    loaded_model: DescriberModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A request that breaks the batched pass gets its own error; the others their own answers."""
    batched = _batched(loaded_model)
    category, photos, asked = _workload(batched)
    poisoned = batched.encode_image(decode_image(photos[2]))[0]
    real_score = DescriberModel.score_candidates

    def score(self: DescriberModel, features: torch.Tensor, prompts: Any, candidates: Any) -> Any:
        if any(torch.allclose(row, poisoned, rtol=1e-4, atol=1e-5) for row in features):
            if len(prompts) > len(asked[2]):
                raise RuntimeError("the batched pass broke")
            raise RuntimeError("this request's own failure")
        return real_score(self, features, prompts, candidates)

    monkeypatch.setattr(DescriberModel, "score_candidates", score)

    scoring_together = threading.Barrier(REQUESTS)

    def request(index: int) -> list[dict[str, Any]] | str:
        assert batched.batcher is not None
        with batched.batcher.request():
            try:
                _, features = batched.image_features(photos[index])
                scoring_together.wait()
                answers, _ = batched.score_and_answer(features, asked[index], category)
            except RuntimeError as error:
                return str(error)
        return [answer.model_dump() for answer in answers]

    results = _together([lambda i=index: request(i) for index in range(REQUESTS)])

    assert results[2] == "this request's own failure"
    monkeypatch.setattr(DescriberModel, "score_candidates", real_score)
    for index, result in enumerate(results):
        if index != 2:
            assert isinstance(result, list)
            _assert_same_answers(result, _alone(batched, category, photos[index], asked[index])[2])
    assert batched.batcher is not None and batched.batcher.stats()["scoring"]["fallbacks"] >= 1


def test_a_collector_answers_each_item_of_a_failed_batch_alone() -> None:
    """The collector itself, no model: one batch of every item, then each alone after it fails."""
    items = list(range(REQUESTS))
    runs: list[list[int]] = []

    def run_batch(batch: list[int]) -> list[int]:
        runs.append(batch)
        if 3 in batch:
            raise ValueError(f"item 3 in a batch of {len(batch)}")
        return [item * 10 for item in batch]

    # Waits for company until every item is queued, so the first batch holds them all.
    collector = Collector(
        "test", run_batch, BatchSettings(window_ms=1000, workers=2), lambda queued: queued < REQUESTS
    )

    def submit(item: int) -> int | str:
        try:
            return collector.submit(item)
        except ValueError as error:
            return str(error)

    results = _together([lambda i=item: submit(i) for item in items])

    assert results == [0, 10, 20, "item 3 in a batch of 1", 40, 50]
    assert sorted(runs[0]) == items and sorted(map(len, runs[1:])) == [1] * REQUESTS
    assert (collector.batches, collector.largest, collector.fallbacks) == (1, REQUESTS, 1)


def test_settings_come_from_the_model_dir_and_the_environment_overrides_them() -> None:
    metadata = {"batching": {"window_ms": 12, "max_batch": 4}}
    assert BatchSettings.resolve(metadata, {}) == BatchSettings(window_ms=12, max_batch=4)
    assert BatchSettings.resolve(metadata, {MAX_BATCH_ENV: "1"}).enabled is False
    assert BatchSettings.resolve({}, {WINDOW_ENV: "0"}) == BatchSettings(window_ms=0)
    with pytest.raises(ValueError, match="max_batch"):
        BatchSettings.resolve({}, {MAX_BATCH_ENV: "0"})


def test_a_lone_request_does_not_wait_for_company(loaded_model: DescriberModel) -> None:
    batched = _batched(loaded_model)
    assert batched.batcher is not None
    with batched.batcher.request():
        # One request in flight and it is the one queued: nobody else can come.
        assert batched.batcher._others_in_flight(1) is False
        with batched.batcher.request():
            assert batched.batcher._others_in_flight(1) is True


# --- over HTTP, through the local model host as the container would serve it -----------------------


@pytest.fixture
def host(loaded_model: DescriberModel, s3: Any) -> Iterator[tuple[str, int, DescriberModel]]:
    model = _batched(loaded_model)
    server = ModelHost(("127.0.0.1", 0), EntryPoint.of(inference, model), [ENDPOINT], OfflineWriter())
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield "127.0.0.1", server.server_address[1], model
    server.shutdown()
    server.server_close()


def _post(address: tuple[str, int], body: bytes) -> tuple[int, dict[str, Any]]:
    connection = http.client.HTTPConnection(*address, timeout=120)
    try:
        connection.request(
            "POST",
            f"/endpoints/{ENDPOINT}/invocations",
            body,
            {"Content-Type": "application/json", "Accept": "application/json"},
        )
        response = connection.getresponse()
        return response.status, json.loads(response.read())
    finally:
        connection.close()


def _product_body(key: str, questions: Sequence[Question], category: str) -> bytes:
    return json.dumps(
        {
            "image_s3": {"bucket": BUCKET, "key": key},
            "questions": [question.model_dump() for question in questions],
            "category": category,
        }
    ).encode()


def test_bad_requests_among_good_ones_fail_alone_over_http(
    host: tuple[str, int, DescriberModel], s3: Any
) -> None:
    address, model = (host[0], host[1]), host[2]
    category, photos, asked = _workload(model)
    for index, photo in enumerate(photos):
        s3.put_object(Bucket=BUCKET, Key=f"p{index}.jpg", Body=photo)
    s3.put_object(Bucket=BUCKET, Key="text.jpg", Body=b"not an image at all")
    good = [_product_body(f"p{index}.jpg", asked[index], category) for index in range(REQUESTS)]
    bad = {
        "not json": (b"{not json", EndpointErrorCode.INVALID_REQUEST),
        "not an image": (_product_body("text.jpg", asked[0], category), EndpointErrorCode.NOT_AN_IMAGE),
        "no object": (_product_body("gone.jpg", asked[0], category), EndpointErrorCode.OBJECT_NOT_FOUND),
    }
    bodies = good + [body for body, _ in bad.values()]

    results = _together([lambda b=body: _post(address, b) for body in bodies])

    for index, (status, reply) in enumerate(results[:REQUESTS]):
        assert status == 200, reply
        expected = _alone(model, category, photos[index], asked[index])[2]
        _assert_same_answers(reply["answers"], expected)
    for (status, reply), (_, code) in zip(results[REQUESTS:], bad.values(), strict=True):
        assert (status, reply["__type"]) == (424, "ModelError")
        assert EndpointErrorBody.from_message(reply["Message"]).error is code


def post_oversized(address: tuple[str, int], path: str) -> tuple[int, dict[str, Any]]:
    """A POST that announces one byte over the limit and sends only its first kilobyte."""
    with socket.create_connection(address, timeout=60) as client:
        client.sendall(
            f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            f"Content-Length: {MAX_REQUEST_BYTES + 1}\r\n\r\n".encode()
            + b"{" * 1024
        )
        response = http.client.HTTPResponse(client)
        response.begin()
        return response.status, json.loads(response.read())


def test_an_oversized_body_is_refused_unread_and_the_others_are_answered(
    host: tuple[str, int, DescriberModel], s3: Any
) -> None:
    address, model = (host[0], host[1]), host[2]
    category, photos, asked = _workload(model)
    s3.put_object(Bucket=BUCKET, Key="p.jpg", Body=photos[0])

    good = _product_body("p.jpg", asked[0], category)
    oversized = partial(post_oversized, address, f"/endpoints/{ENDPOINT}/invocations")
    results = _together([oversized, lambda: _post(address, good), lambda: _post(address, good)])

    status, reply = results[0]
    assert (status, reply["__type"]) == (400, "ValidationError")
    assert "larger than 6 MB" in reply["Message"]
    expected = _alone(model, category, photos[0], asked[0])[2]
    for status, reply in results[1:]:
        assert status == 200
        _assert_same_answers(reply["answers"], expected)


def test_a_client_that_leaves_mid_batch_does_not_break_the_others(
    host: tuple[str, int, DescriberModel], s3: Any
) -> None:
    address, model = (host[0], host[1]), host[2]
    category, photos, asked = _workload(model)
    for index, photo in enumerate(photos):
        s3.put_object(Bucket=BUCKET, Key=f"p{index}.jpg", Body=photo)
    bodies = [_product_body(f"p{index}.jpg", asked[index], category) for index in range(REQUESTS)]
    assert model.batcher is not None

    def leaver() -> None:
        with socket.create_connection(address, timeout=60) as client:
            body = bodies[0]
            client.sendall(
                f"POST /endpoints/{ENDPOINT}/invocations HTTP/1.1\r\nHost: x\r\n"
                f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n".encode()
                + body
            )
        # Closed before the answer: the host's write of it fails, nobody else's.

    results = _together([leaver] + [lambda b=body: _post(address, b) for body in bodies[1:]])

    for index, (status, reply) in enumerate(results[1:], start=1):
        assert status == 200, reply
        _assert_same_answers(reply["answers"], _alone(model, category, photos[index], asked[index])[2])
    # The host still answers, the one who left included when it asks again.
    status, reply = _post(address, bodies[0])
    assert status == 200
    _assert_same_answers(reply["answers"], _alone(model, category, photos[0], asked[0])[2])


def test_the_model_dirs_code_batches_without_the_repository(model_dir: Path) -> None:
    """As the container imports it: ``code/`` first on the path, no ``training`` package anywhere, and
    the ``endpoint`` package the one shipped in ``code/``."""
    code = model_dir / "code"
    script = (
        "import sys; sys.modules['training'] = None; sys.path.insert(0, sys.argv[1]); import inference; "
        "from endpoint.batching import BatchSettings; import endpoint; "
        "print(inference.DescriberModel.__module__, endpoint.__file__, BatchSettings.resolve({}).max_batch)"
    )
    result = subprocess.run(
        [sys.executable, "-c", script, str(code)], capture_output=True, text=True, check=True
    )
    assert result.stdout.split() == [
        "endpoint.model",
        str(code / "endpoint" / "__init__.py"),
        str(BatchSettings().max_batch),
    ]
