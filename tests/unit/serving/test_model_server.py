"""The endpoint's own model server (endpoint/serve.py): the SageMaker container contract, and concurrent
requests answered in shared batches exactly as each is answered alone."""

from __future__ import annotations

import http.client
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from describer_rules.endpoint_errors import EndpointErrorCode
from endpoint import inference
from endpoint.model import DescriberModel
from endpoint.serve import EntryPoint, ModelServer

from .conftest import BUCKET
from .test_batching import (
    REQUESTS,
    _alone,
    _assert_same_answers,
    _batched,
    _product_body,
    _together,
    _workload,
    post_oversized,
)

Address = tuple[str, int]


def _call(address: Address, method: str, path: str, body: bytes = b"") -> tuple[int, dict[str, Any]]:
    connection = http.client.HTTPConnection(*address, timeout=120)
    try:
        connection.request(method, path, body, {"Content-Type": "application/json"})
        response = connection.getresponse()
        return response.status, json.loads(response.read() or b"{}")
    finally:
        connection.close()


@pytest.fixture
def server(loaded_model: DescriberModel, s3: Any) -> Iterator[tuple[Address, DescriberModel]]:
    model = _batched(loaded_model)
    server = ModelServer(("127.0.0.1", 0), EntryPoint.of(inference, model))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield ("127.0.0.1", server.server_address[1]), model
    server.shutdown()
    server.server_close()


def test_concurrent_requests_share_batches_and_get_their_answers_alone(
    server: tuple[Address, DescriberModel], s3: Any
) -> None:
    address, model = server
    category, photos, asked = _workload(model)
    for index, photo in enumerate(photos):
        s3.put_object(Bucket=BUCKET, Key=f"p{index}.jpg", Body=photo)
    bodies = [_product_body(f"p{index}.jpg", asked[index], category) for index in range(REQUESTS)]
    bad = _product_body("gone.jpg", asked[0], category)

    results = _together([lambda b=body: _call(address, "POST", "/invocations", b) for body in [*bodies, bad]])

    for index, (status, reply) in enumerate(results[:REQUESTS]):
        assert status == 200, reply
        _assert_same_answers(reply["answers"], _alone(model, category, photos[index], asked[index])[2])
    # The container's own status and error body, which SageMaker Runtime passes on in its ModelError.
    assert results[-1][0] == 404 and results[-1][1]["error"] == EndpointErrorCode.OBJECT_NOT_FOUND
    assert model.batcher is not None and model.batcher.scoring.largest > 1


def test_an_oversized_body_is_refused_unread_and_others_are_answered(
    server: tuple[Address, DescriberModel], s3: Any
) -> None:
    address, model = server
    category, photos, asked = _workload(model)
    s3.put_object(Bucket=BUCKET, Key="p.jpg", Body=photos[0])

    status, reply = post_oversized(address, "/invocations")
    assert (status, reply["error"]) == (413, "RequestTooLarge")

    status, reply = _call(address, "POST", "/invocations", _product_body("p.jpg", asked[0], category))
    assert status == 200
    _assert_same_answers(reply["answers"], _alone(model, category, photos[0], asked[0])[2])
    assert _call(address, "GET", "/nope")[0] == 404


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_the_serving_entry_point_runs_the_model_dirs_own_code(
    model_dir: Path, loaded_model: DescriberModel, tmp_path: Path
) -> None:
    """As the serving image runs it: ``python -m endpoint.serve serve`` with only ``code/`` on the path."""
    from moto.server import ThreadedMotoServer

    s3_server = ThreadedMotoServer(port=0, verbose=False)
    s3_server.start()
    s3_url = f"http://127.0.0.1:{s3_server._server.server_port}"  # type: ignore[union-attr]
    port = _free_port()
    environ = {
        **{name: value for name, value in os.environ.items() if not name.startswith("AWS_")},
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": s3_url,
        "PYTHONPATH": str(model_dir / "code"),
        "OMP_NUM_THREADS": "1",
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "endpoint.serve", "serve", "--model-dir", str(model_dir), "--port", str(port)],
        cwd=tmp_path,
        env=environ,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        s3 = boto3.client(
            "s3",
            endpoint_url=s3_url,
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )
        s3.create_bucket(Bucket=BUCKET)
        category, photos, asked = _workload(loaded_model)
        s3.put_object(Bucket=BUCKET, Key="p.jpg", Body=photos[0])
        address = ("127.0.0.1", port)
        _wait_for_ping(address, process)

        status, reply = _call(address, "POST", "/invocations", _product_body("p.jpg", asked[0], category))
        assert status == 200, reply
        _assert_same_answers(reply["answers"], _alone(loaded_model, category, photos[0], asked[0])[2])
        status, reply = _call(address, "POST", "/invocations", b"{not json")
        assert (status, reply["error"]) == (400, EndpointErrorCode.INVALID_REQUEST)
    finally:
        process.terminate()
        _, stderr = process.communicate(timeout=30)
        s3_server.stop()
    # The model dir's own endpoint package served, not the repository's; no payload in the log.
    assert f"serving {model_dir} with {model_dir / 'code' / 'endpoint'} on port" in stderr.decode()
    assert "not json" not in stderr.decode()


def _wait_for_ping(address: Address, process: subprocess.Popen[bytes], timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"the server exited with {process.returncode}")
        try:
            if _call(address, "GET", "/ping")[0] == 200:
                return
        except OSError:
            time.sleep(0.2)
    raise AssertionError("the server did not answer /ping")
