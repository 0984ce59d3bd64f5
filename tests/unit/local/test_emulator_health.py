"""Start-up waits until the emulator reports every service the deployment and the stack need."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from describer.local import emulator


@pytest.fixture
def health_server() -> Iterator[tuple[int, dict[str, str]]]:
    """A stand-in health endpoint; the test sets the services it reports."""
    services: dict[str, str] = {}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = json.dumps({"services": services}).encode()
            self.send_response(200 if self.path == "/_ministack/health" else 404)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1], services
    server.shutdown()
    server.server_close()


def test_healthy_only_when_every_required_service_is_available(health_server) -> None:
    port, services = health_server
    services.update({name: "available" for name in emulator.REQUIRED_SERVICES})
    assert emulator.is_healthy(port)
    for name in ("events", "cloudformation", "sqs"):
        services[name] = "starting"
        assert not emulator.is_healthy(port), name
        services[name] = "running"
    assert emulator.is_healthy(port)


def test_the_pipeline_services_are_required() -> None:
    assert {"events", "cloudformation", "sqs", "s3", "lambda", "states", "dynamodb"} <= set(
        emulator.REQUIRED_SERVICES
    )
