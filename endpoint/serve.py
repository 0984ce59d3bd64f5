"""The endpoint's own model server: concurrent requests into one model, so that they meet in its batcher.

The SageMaker Hugging Face inference container serves ``inference.py`` through multi-model-server,
whose Python worker answers one request at a time: concurrent requests never reach the batcher
together there (docs/endpoint.md, "The model server's workers"). This server is the entry point of
the endpoint's serving image (``endpoint/Dockerfile``, built on the Hugging Face one): the contract
of a SageMaker container (https://docs.aws.amazon.com/sagemaker/latest/dg/your-algorithms-inference-code.html),
stdlib only:

- started as ``serve`` (SageMaker runs the image with that argument); listens on
  ``SAGEMAKER_BIND_TO_PORT`` (8080); the model dir is ``SM_MODEL_DIR`` (``/opt/ml/model``);
- ``GET /ping``: 200 once the model is loaded;
- ``POST /invocations``: ``<model dir>/code/inference.py``'s four functions, loaded as the toolkit
  loads them (``EntryPoint``), each request on its own thread, at most ``MAX_CONCURRENT`` at once
  (``DESCRIBER_MAX_CONCURRENT``; more wait for a turn). An ``EndpointRequestError`` answers with
  its own status and JSON body (SageMaker Runtime passes both on in its ``ModelError``), a body
  over ``MAX_REQUEST_BYTES`` is refused unread (413), anything else is a 500 whose body names no
  payload.

Run: ``python -m endpoint.serve serve [--model-dir DIR] [--port PORT]`` (``serve`` optional).
"""

from __future__ import annotations

import argparse
import importlib.util
import inspect
import json
import logging
import os
import sys
import threading
from collections.abc import Sequence
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import ModuleType
from typing import Any

from describer_rules.contracts import MAX_REQUEST_BYTES
from describer_rules.endpoint_errors import EndpointRequestError

LOG = logging.getLogger("describer.endpoint.serve")
JSON = "application/json"
DEFAULT_MODEL_DIR = "/opt/ml/model"
DEFAULT_PORT = 8080
# Requests answered at once; the batcher takes at most max_batch of them into one pass, and the
# others prepare theirs (S3 reads, image decoding) meanwhile. More would only hold memory.
MAX_CONCURRENT = 32


class EntryPoint:
    """``<model dir>/code/inference.py``, loaded as the SageMaker container loads it, and its model.

    ``code/`` goes first on the import path, so ``inference.py`` imports the model dir's own
    ``endpoint`` package, unless the process imported the repository's first (the local model host
    does, through this module): there ``make demo-model`` keeps ``code/`` a copy of it.
    """

    def __init__(self, model_dir: Path) -> None:
        code_dir = Path(model_dir) / "code"
        script = code_dir / "inference.py"
        if not script.is_file():
            raise FileNotFoundError(f"{script} not found: not a describer model dir")
        sys.path.insert(0, str(code_dir))  # its endpoint/ and describer_rules/ packages
        spec = importlib.util.spec_from_file_location("inference", script)
        if spec is None or spec.loader is None:
            raise ImportError(f"cannot load {script}")
        self.module: ModuleType = importlib.util.module_from_spec(spec)
        sys.modules["inference"] = self.module
        spec.loader.exec_module(self.module)
        model_fn = self.module.model_fn
        # The Hugging Face toolkit passes a context as well when model_fn takes a second argument.
        takes_context = len(inspect.signature(model_fn).parameters) > 1
        self.model = model_fn(str(model_dir), None) if takes_context else model_fn(str(model_dir))

    @classmethod
    def of(cls, module: ModuleType, model: Any) -> EntryPoint:
        """``module``'s toolkit functions over an already loaded ``model`` (tests and benchmarks)."""
        instance = cls.__new__(cls)
        instance.module, instance.model = module, model
        return instance

    def invoke(self, body: bytes, content_type: str, accept: str) -> tuple[bytes, str]:
        """input_fn -> predict_fn -> output_fn; a rejected request raises ``EndpointRequestError``.

        Called from every request thread at once: one model in one process; ``inference.py``
        batches concurrent requests (``endpoint/batching.py``).
        """
        data = self.module.input_fn(body, content_type)
        prediction = self.module.predict_fn(data, self.model)
        output = self.module.output_fn(prediction, accept)
        return (output.encode() if isinstance(output, str) else bytes(output)), accept


class ModelServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128  # a burst waits in the backlog, not in SYN retries

    def __init__(
        self, address: tuple[str, int], entry_point: EntryPoint, max_concurrent: int = MAX_CONCURRENT
    ) -> None:
        super().__init__(address, _Handler)
        self.entry_point = entry_point
        self.turns = threading.BoundedSemaphore(max_concurrent)


class _Handler(BaseHTTPRequestHandler):
    server: ModelServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        LOG.debug("%s " + format, self.address_string(), *args)

    def do_GET(self) -> None:
        if self.path == "/ping":
            self._send(HTTPStatus.OK, b"{}")
        else:
            self._send_error(HTTPStatus.NOT_FOUND, "NotFound", f"no route for GET {self.path}")

    def do_POST(self) -> None:
        if self.path.split("?", 1)[0] != "/invocations":
            self.close_connection = True  # its body is not read
            self._send_error(HTTPStatus.NOT_FOUND, "NotFound", f"no route for POST {self.path}")
            return
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_REQUEST_BYTES:
            self.close_connection = True  # refused unread; the rest of it is still coming
            self._send_error(
                HTTPStatus.REQUEST_ENTITY_TOO_LARGE, "RequestTooLarge", f"over {MAX_REQUEST_BYTES} bytes"
            )
            return
        body = self.rfile.read(length)
        content_type = self.headers.get("Content-Type") or JSON
        accept = self.headers.get("Accept") or JSON
        with self.server.turns:
            try:
                output, output_type = self.server.entry_point.invoke(body, content_type, accept)
            except EndpointRequestError as error:
                self._send(error.status, str(error).encode())
                return
            except Exception:
                # The trace goes to the log; the reply names no payload.
                LOG.exception("inference failed")
                self._send_error(HTTPStatus.INTERNAL_SERVER_ERROR, "InternalServerError", "inference failed")
                return
        self._send(HTTPStatus.OK, output, output_type)

    def _send_error(self, status: int, code: str, message: str) -> None:
        self._send(status, json.dumps({"error": code, "status": int(status), "message": message}).encode())

    def _send(self, status: int, body: bytes, content_type: str = JSON) -> None:
        try:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            # The client left (its own read timeout); nobody else's reply is affected.
            self.close_connection = True


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m endpoint.serve", description=__doc__.split("\n")[0])
    parser.add_argument("command", nargs="?", choices=("serve",), default="serve")
    environ = os.environ
    model_dir = Path(environ.get("SM_MODEL_DIR", DEFAULT_MODEL_DIR))
    parser.add_argument("--model-dir", type=Path, default=model_dir)
    parser.add_argument("--host", default="0.0.0.0")  # a container's port is its interface
    parser.add_argument("--port", type=int, default=int(environ.get("SAGEMAKER_BIND_TO_PORT", DEFAULT_PORT)))
    parser.add_argument(
        "--max-concurrent", type=int, default=int(environ.get("DESCRIBER_MAX_CONCURRENT", MAX_CONCURRENT))
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    entry_point = EntryPoint(args.model_dir)
    server = ModelServer((args.host, args.port), entry_point, args.max_concurrent)
    LOG.info("serving %s with %s on port %d", args.model_dir, Path(__file__).parent, server.server_address[1])
    try:
        server.serve_forever()
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
