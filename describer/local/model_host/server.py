"""The local model host: SageMaker Runtime and Bedrock Runtime on one port, for the local stack.

Routes (the wire formats of botocore's service models, so unchanged boto3 clients talk to it):
- ``GET /ping``: 200 once the model is loaded (the SageMaker container health check).
- ``POST /endpoints/{name}/invocations``: SageMaker ``InvokeEndpoint``, answered by the real
  ``inference.py`` shipped in ``<model dir>/code/``, loaded and called as the endpoint's own model
  server calls it (``endpoint.serve.EntryPoint``: the SageMaker Hugging Face toolkit contract,
  ``model_fn``, ``input_fn``, ``predict_fn``, ``output_fn``, every request on its own thread).
  Its ``EndpointRequestError`` becomes ``ModelError`` (424) carrying the error's own status as
  ``OriginalStatusCode`` and its JSON body quoted in the message, as SageMaker reports a
  container's 4xx; any other exception is a ``ModelError`` with original status 500; an unknown
  endpoint is a ``ValidationError``.
  A ``PrefixAwareId`` (header ``X-Amzn-SageMaker-Prefix-Aware-Id``) is checked as SageMaker checks
  it (1-64 printable characters, else ``ValidationError``) and recorded: this one instance stands
  for the one a ``PREFIX_AWARE`` endpoint picks for that id and the body's first
  ``ROUTING_PREFIX_BYTES`` bytes, so ``GET /routing`` tells, per id, how many calls came and how
  many different routing prefixes they had (1 means they would all meet on one instance).
- ``POST /model/{modelId}/converse``: Bedrock ``Converse``, answered by the configured description
  backend (``description_backends``).
- ``POST /model-invocation-job``, ``GET /model-invocation-job/{id}``, ``POST
  /model-invocation-job/{id}/stop``: Bedrock batch inference (``batch_jobs``), its records answered
  by the same Converse; ``GET``/``PUT /_local/batch-faults``: how jobs end (``batch_jobs.BatchFaults``).
- ``GET /_local/usage``: what the host served since it started (endpoint calls, questions and
  seconds; Converse calls and tokens per model id and per locale), which ``make cost`` meters.
- ``GET``/``PUT /_local/faults``: the injected faults (``faults.FaultSpec``) and their counts; both
  model routes first ask the injector whether to fail as AWS would.

Run: ``python -m describer.local.model_host --model-dir DIR --endpoint-name NAME --port PORT``.
Reads of ``s3://`` images go wherever ``AWS_ENDPOINT_URL`` points (the emulator, locally).
"""

from __future__ import annotations

import argparse
import json
import logging
import re
import time
from collections.abc import Sequence
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Literal
from urllib.parse import unquote

from describer.local.model_host.batch_jobs import BatchFaults, BatchJobs
from describer.local.model_host.description_backends import (
    ConverseError,
    ConverseRequest,
    DescriptionBackend,
    backend_from_environment,
)
from describer.local.model_host.faults import FaultInjector, FaultSpec, Route
from describer.local.model_host.usage import RoutingLog, Usage
from describer_rules.contracts import MAX_REQUEST_BYTES
from describer_rules.endpoint_errors import EndpointRequestError
from endpoint.serve import EntryPoint

LOG = logging.getLogger("describer.model_host")
ACCOUNT_ID = "000000000000"
LOG_GROUP_ARN_PREFIX = f"arn:aws:logs:us-east-1:{ACCOUNT_ID}:log-group:/aws/sagemaker/Endpoints"

USAGE_PATH = "/_local/usage"
_INVOCATIONS = re.compile(r"^/endpoints/([^/]+)/invocations$")
PREFIX_AWARE_ID_HEADER = "X-Amzn-SageMaker-Prefix-Aware-Id"
# botocore's PrefixAwareIdHeader: 1-64 characters, printable, not starting with whitespace.
_PREFIX_AWARE_ID = re.compile(r"\A\S[\x20-\x7e]{0,63}\Z")
_CONVERSE = re.compile(r"^/model/(.+)/converse$")
_BATCH_JOB = re.compile(r"^/model-invocation-job/([^/]+)$")
_BATCH_STOP = re.compile(r"^/model-invocation-job/([^/]+)/stop$")
FAULTS_PATH = "/_local/faults"
BATCH_FAULTS_PATH = "/_local/batch-faults"


def converse_answer(
    writer: DescriptionBackend, usage: Usage, model_id: str, body: dict[str, Any]
) -> tuple[int, dict[str, Any]]:
    """A Converse reply (200 and the response) or its error (status and ``__type``/``message``)."""
    started = time.perf_counter()
    try:
        request = ConverseRequest.from_wire(body)
    except (ValueError, TypeError, AttributeError) as error:
        return 400, {"__type": "ValidationException", "message": f"Malformed Converse request: {error}"}
    try:
        reply = writer.converse(request)
    except ConverseError as error:
        return error.status, {"__type": error.code, "message": error.message}
    usage.add_converse(model_id, request.locale, reply.input_tokens, reply.output_tokens)
    content: list[dict[str, Any]] = [{"text": reply.text}]
    stop_reason = reply.stop_reason
    if request.tool_name is not None and stop_reason != "max_tokens":
        # A forced tool call answers with the tool's input, as Bedrock does.
        try:
            tool_input = json.loads(reply.text)
        except json.JSONDecodeError:
            tool_input = None
        if isinstance(tool_input, dict):
            tool_use = {"toolUseId": f"tooluse_{time.time_ns()}", "name": request.tool_name}
            content, stop_reason = [{"toolUse": {**tool_use, "input": tool_input}}], "tool_use"
    return 200, {
        "output": {"message": {"role": "assistant", "content": content}},
        "stopReason": stop_reason,
        "usage": {
            "inputTokens": reply.input_tokens,
            "outputTokens": reply.output_tokens,
            "totalTokens": reply.input_tokens + reply.output_tokens,
        },
        "metrics": {"latencyMs": int((time.perf_counter() - started) * 1000)},
        # Says who really wrote the text, whatever model id the caller asked for.
        "additionalModelResponseFields": {"writer": reply.model_id, "requested_model": model_id},
    }


class ModelHost(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 64  # a burst of concurrent calls waits in the backlog, not in SYN retries

    def __init__(
        self,
        address: tuple[str, int],
        model: EntryPoint,
        endpoint_names: Sequence[str],
        writer: DescriptionBackend,
        faults: FaultInjector | None = None,
    ) -> None:
        super().__init__(address, _Handler)
        self.model = model
        self.endpoint_names = set(endpoint_names)
        self.writer = writer
        self.usage = Usage()
        self.faults = faults or FaultInjector()
        self.routing = RoutingLog()
        self.batch = BatchJobs(self.converse_answer)

    def converse_answer(self, model_id: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        return converse_answer(self.writer, self.usage, model_id, body)


class _Handler(BaseHTTPRequestHandler):
    server: ModelHost
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        LOG.debug("%s " + format, self.address_string(), *args)

    def do_GET(self) -> None:
        if self.path == "/ping":
            self._send(HTTPStatus.OK, b"", "application/json")
        elif self.path == USAGE_PATH:
            self._send(HTTPStatus.OK, json.dumps(self.server.usage.snapshot()).encode(), "application/json")
        elif self.path == FAULTS_PATH:
            self._send(HTTPStatus.OK, json.dumps(self.server.faults.report()).encode(), "application/json")
        elif self.path == "/routing":
            self._send(HTTPStatus.OK, json.dumps(self.server.routing.summary()).encode(), "application/json")
        elif self.path == BATCH_FAULTS_PATH:
            self._send(HTTPStatus.OK, json.dumps(self.server.batch.report()).encode(), "application/json")
        elif match := _BATCH_JOB.match(self.path.split("?", 1)[0]):
            job = self.server.batch.get(unquote(match.group(1)))
            if job is None:
                self._error(404, "ResourceNotFoundException", "message", "The batch job does not exist.")
            else:
                self._send(HTTPStatus.OK, json.dumps(job).encode(), "application/json")
        else:
            self._error(404, "UnknownOperationException", "message", f"no route for GET {self.path}")

    def do_PUT(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.path == BATCH_FAULTS_PATH:
            try:
                self.server.batch.set_faults(BatchFaults.model_validate_json(body))
            except ValueError as error:
                self._error(400, "ValidationException", "message", str(error))
                return
            self._send(HTTPStatus.OK, json.dumps(self.server.batch.report()).encode(), "application/json")
            return
        if self.path != FAULTS_PATH:
            self._error(404, "UnknownOperationException", "message", f"no route for PUT {self.path}")
            return
        try:
            spec = FaultSpec.model_validate_json(body)
        except ValueError as error:
            self._error(400, "ValidationException", "message", str(error))
            return
        self.server.faults = FaultInjector(spec)
        LOG.info("faults: %s", spec.text() or "none")
        self._send(HTTPStatus.OK, json.dumps(self.server.faults.report()).encode(), "application/json")

    def do_POST(self) -> None:
        started = time.perf_counter()
        length = int(self.headers.get("Content-Length") or 0)
        path = self.path.split("?", 1)[0]
        if length > MAX_REQUEST_BYTES and _INVOCATIONS.match(path):
            # Refused unread, as SageMaker refuses it; the connection closes (its body is still coming).
            self.close_connection = True
            self._error(400, "ValidationError", "Message", "Request payload is larger than 6 MB.")
            LOG.info("invocations refused: %d bytes", length)
            return
        body = self.rfile.read(length) if length else b""
        route: Route | Literal["unknown"]
        if match := _INVOCATIONS.match(path):
            route = "invocations"
            if not self._injected_fault(route):
                self._invoke_endpoint(unquote(match.group(1)), body)
        elif match := _CONVERSE.match(path):
            route = "converse"
            if not self._injected_fault(route):
                self._converse(unquote(match.group(1)), body)
        elif path == "/model-invocation-job":
            route = "unknown"
            try:
                answer = self.server.batch.create(json.loads(body or b"{}"))
            except (KeyError, TypeError, ValueError) as error:
                self._error(400, "ValidationException", "message", f"Malformed job request: {error}")
            else:
                self._send(HTTPStatus.OK, json.dumps(answer).encode(), "application/json")
        elif match := _BATCH_STOP.match(path):
            route = "unknown"
            if self.server.batch.stop(unquote(match.group(1))):
                self._send(HTTPStatus.OK, b"{}", "application/json")
            else:
                self._error(404, "ResourceNotFoundException", "message", "The batch job does not exist.")
        else:
            self._error(404, "UnknownOperationException", "message", f"no route for POST {path}")
            route = "unknown"
        # Routes and timings only: request and response bodies hold images and product data.
        LOG.info("%s %d bytes in %.0f ms", route, len(body), (time.perf_counter() - started) * 1000)

    def _injected_fault(self, route: Route) -> bool:
        """Answer with an injected error (True), or delay a slow reply and let it be served (False)."""
        fault = self.server.faults.draw(route)
        if fault is None:
            return False
        LOG.info("injected %s", fault.kind.value)
        if fault.answer is None:
            time.sleep(fault.delay_s)  # the client's read timeout fires first; the reply goes nowhere
            return False
        answer = fault.answer
        self._error(answer.status, answer.code, answer.message_field, answer.message)
        return True

    def _invoke_endpoint(self, name: str, body: bytes) -> None:
        if name not in self.server.endpoint_names:
            self._error(
                400, "ValidationError", "Message", f"Endpoint {name} of account {ACCOUNT_ID} not found."
            )
            return
        prefix_aware_id = self.headers.get(PREFIX_AWARE_ID_HEADER)
        if prefix_aware_id is not None and not _PREFIX_AWARE_ID.match(prefix_aware_id):
            self._error(400, "ValidationError", "Message", "PrefixAwareId must be 1-64 printable characters.")
            return
        self.server.routing.record(prefix_aware_id, body)
        content_type = self.headers.get("Content-Type") or "application/json"
        accept = self.headers.get("Accept") or "application/json"
        started = time.perf_counter()
        try:
            output, output_type = self.server.model.invoke(body, content_type, accept)
            self.server.usage.add_invocation(body, time.perf_counter() - started)
        except EndpointRequestError as error:
            self._model_error(name, error.status, str(error))
            return
        except Exception as error:
            LOG.exception("inference failed on endpoint %s", name)
            self._model_error(name, 500, f"{type(error).__name__}: {error}")
            return
        self._send(HTTPStatus.OK, output, output_type, {"x-Amzn-Invoked-Production-Variant": "AllTraffic"})

    def _model_error(self, endpoint: str, status: int, message: str) -> None:
        kind = "client" if status < 500 else "server"
        self._error(
            424,
            "ModelError",
            "Message",
            f'Received {kind} error ({status}) from primary with message "{message}". '
            f"See the model host log in .local/ for endpoint {endpoint}.",
            {
                "OriginalStatusCode": status,
                "OriginalMessage": message,
                "LogStreamArn": f"{LOG_GROUP_ARN_PREFIX}/{endpoint}",
            },
        )

    def _converse(self, model_id: str, body: bytes) -> None:
        try:
            parsed = json.loads(body or b"{}")
        except json.JSONDecodeError as error:
            self._error(400, "ValidationException", "message", f"Malformed Converse request: {error}")
            return
        status, answer = self.server.converse_answer(model_id, parsed if isinstance(parsed, dict) else {})
        if status != 200:
            self._error(status, answer["__type"], "message", answer["message"])
            return
        self._send(HTTPStatus.OK, json.dumps(answer).encode(), "application/json")

    def _error(
        self,
        status: int,
        code: str,
        message_field: str,
        message: str,
        extra: dict[str, Any] | None = None,
    ) -> None:
        body = {"__type": code, message_field: message, **(extra or {})}
        self._send(status, json.dumps(body).encode(), "application/json", {"x-amzn-ErrorType": code})

    def _send(
        self, status: int, body: bytes, content_type: str, headers: dict[str, str] | None = None
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("x-amzn-RequestId", f"local-{time.time_ns()}")
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        try:
            self.end_headers()
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            LOG.info("the client left before the reply (a read timeout)")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Local SageMaker Runtime + Bedrock Runtime host")
    parser.add_argument("--model-dir", type=Path, required=True)
    parser.add_argument("--endpoint-name", action="append", required=True, help="may be repeated")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    writer = backend_from_environment()
    model = EntryPoint(args.model_dir)
    server = ModelHost((args.host, args.port), model, args.endpoint_name, writer)
    LOG.info(
        "serving endpoints %s and description writer %s on %s:%d",
        ", ".join(args.endpoint_name),
        writer.model_id,
        args.host,
        args.port,
    )
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0
