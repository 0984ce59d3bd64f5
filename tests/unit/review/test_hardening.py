"""The review desk against a hostile network or page: slow and idle connections, malformed requests,
huge photos, foreign Host headers, stolen or stale sessions, open redirects, exposure without TLS,
and a review whose event or write fails on the way."""

from __future__ import annotations

import datetime
import http.client
import socket
import ssl
import threading
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from describer.cli import main
from describer.review import web
from describer.review.access import (
    SESSION_LIFETIME_S,
    Sessions,
    allowed_hosts,
    exposure_refusal,
    safe_redirect,
    tls_context,
)
from describer.review.web import ReviewApp, ReviewServer, serve
from describer_aws.product_events import ProductEvents

from .conftest import BUS, Browser, Stack, browser_of, form_fields, shirt_record


def _running(server: ReviewServer) -> ReviewServer:
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@pytest.fixture
def quick(stack: Stack) -> Iterator[ReviewServer]:
    """A desk that gives up on a silent connection after half a second and holds two at most."""
    app = ReviewApp(stack.desk(), stack.s3, "product-describer-test")
    running = _running(serve(app, "127.0.0.1", 0, timeout_s=0.5, max_connections=2))
    yield running
    running.shutdown()
    running.server_close()


def _raw(port: int, request: bytes) -> tuple[int, str]:
    """Send ``request`` as is and read the answer; the socket stays open for writing, as a slow
    client's would (a server that waits for more bytes makes this time out, failing the test)."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as connection:
        connection.sendall(request)
        answer = b""
        while chunk := connection.recv(65536):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), body.decode(errors="replace")


def _post(server: ReviewServer, browser: Browser, headers: str, body: bytes = b"") -> tuple[int, str]:
    request = (
        f"POST {server.base}/review HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\nCookie: {browser.cookie}\r\n"
        "Content-Type: application/x-www-form-urlencoded\r\n"
    )
    return _raw(server.port, (request + headers + "\r\n").encode() + body)


# --- Connections -------------------------------------------------------------------------------


def test_an_idle_connection_is_closed_and_a_full_desk_turns_the_next_away(quick: ReviewServer) -> None:
    idle = [socket.create_connection(("127.0.0.1", quick.port), timeout=30) for _ in range(2)]
    try:
        with socket.create_connection(("127.0.0.1", quick.port), timeout=30) as third:
            assert third.recv(1) == b""  # over the cap: closed at once, never queued behind the idle
        for connection in idle:
            assert connection.recv(1) == b""  # closed by the desk's timeout, not by the client
    finally:
        for connection in idle:
            connection.close()
    assert browser_of(quick).request("GET", "/")[0] == 200  # the threads are free again


def test_a_body_that_never_comes_does_not_hold_the_thread(quick: ReviewServer) -> None:
    browser = browser_of(quick)
    with socket.create_connection(("127.0.0.1", quick.port), timeout=30) as connection:
        head = f"POST {quick.base}/review HTTP/1.1\r\nHost: 127.0.0.1:{quick.port}\r\n"
        connection.sendall((head + f"Cookie: {browser.cookie}\r\nContent-Length: 100\r\n\r\ncsrf=").encode())
        assert connection.recv(65536) == b""  # the desk gave up waiting for the other 95 bytes


# --- Request parsing ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "body", "status"),
    [
        ("Content-Length: -1\r\n", b"csrf=x", 400),
        ("Content-Length: ten\r\n", b"csrf=x", 400),
        ("Content-Length: 1, 1\r\n", b"c", 400),
        ("Content-Length: \u00b2\r\n", b"c", 400),
        (f"Content-Length: {web.MAX_FORM_BYTES + 1}\r\n", b"csrf=x", 413),
        ("Transfer-Encoding: chunked\r\n", b"6\r\ncsrf=x\r\n0\r\n\r\n", 400),
        ("Content-Length: 8\r\n", b"csrf=%ff", 400),  # not UTF-8
        (f"Content-Length: {4 * web.MAX_FORM_FIELDS + 3}\r\n", b"&".join([b"a=1"] * 1001), 400),  # fields
    ],
)
def test_a_malformed_or_oversized_body_is_refused_without_reading_it(
    server: ReviewServer, headers: str, body: bytes, status: int
) -> None:
    browser = browser_of(server)
    answer, page = _post(server, browser, headers, body)
    assert answer == status and "Traceback" not in page


def test_a_malformed_copy_field_or_photo_number_is_a_bad_request(stack: Stack, server: ReviewServer) -> None:
    stack.put(shirt_record())
    before = stack.item("15970")
    browser = browser_of(server)
    _, page = browser.request("GET", "/product?id=15970")
    for broken in ("copy:x", "copy:en-US", "copy::title"):
        status, text = browser.request(
            "POST", "/review", form_fields(page) | {broken: "t", "action": "correct"}
        )
        assert status == 400 and "is not copy:&lt;locale&gt;:&lt;part&gt;" in text
    status, _ = browser.request(
        "POST", "/review", form_fields(page) | {"review_id": "<x>", "action": "accept"}
    )
    assert status == 400
    for number in ("\u00b2", "-1", "1e3", "\u0661"):  # superscript two passes isdigit(), int() refuses it
        status, text = browser.request(
            "GET", "/photo?" + urllib.parse.urlencode({"id": "15970", "n": number})
        )
        assert status == 400 and "is not a number" in text
    assert browser.request("GET", "/?category=%ff")[0] == 400  # a query that is not UTF-8
    assert stack.item("15970") == before


def test_a_failure_inside_the_desk_is_a_page_not_a_reset(
    server: ReviewServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*_: Any) -> Any:
        raise RuntimeError("a bug")

    monkeypatch.setattr(server.app.desk, "queue", broken)
    status, page = browser_of(server).request("GET", "/")
    assert status == 500 and "The desk failed" in page and "a bug" not in page


# --- Photos ------------------------------------------------------------------------------------


class _Body:
    def __init__(self, data: bytes) -> None:
        self.data, self.asked = data, []  # type: ignore[var-annotated]
        self.closed = False

    def read(self, size: int = -1) -> bytes:
        self.asked.append(size)
        assert size is not None and size >= 0, "read a whole object"
        chunk, self.data = self.data[:size], self.data[size:]
        return chunk

    def close(self) -> None:
        self.closed = True


class _S3:
    def __init__(self, size: int, head: bytes) -> None:
        self.body, self.size = _Body(head + b"\x00" * 64), size

    def get_object(self, **_: Any) -> dict[str, Any]:
        return {"ContentLength": self.size, "Body": self.body}


def test_a_huge_or_foreign_photo_is_refused_before_it_is_read(stack: Stack, server: ReviewServer) -> None:
    stack.put(shirt_record())
    browser = browser_of(server)
    gigabytes = _S3(5 * 1024**3, b"\xff\xd8\xff")
    server.app.s3 = gigabytes
    status, page = browser.request("GET", "/photo?id=15970&n=0")
    assert status == 413 and "over the desk" in page
    assert gigabytes.body.asked == [] and gigabytes.body.closed
    script = _S3(100, b"<script>alert(1)</script>")
    server.app.s3 = script
    assert browser.request("GET", "/photo?id=15970&n=0")[0] == 415
    assert script.body.asked == [16] and script.body.closed


# --- Exposure ----------------------------------------------------------------------------------


def test_a_foreign_host_header_is_refused(stack: Stack, server: ReviewServer) -> None:
    """A page of evil.example whose name is rebound to 127.0.0.1 sends Host: evil.example."""
    stack.put(shirt_record())
    browser = browser_of(server)
    for host in ("evil.example", f"evil.example:{server.port}", "127.0.0.1:1", ""):
        status, page = browser.request("GET", "/product?id=15970", headers={"Host": host})
        assert status == 421 and "15970" not in page
    assert browser.request("GET", "/product?id=15970", headers={"Host": f"localhost:{server.port}"})[0] == 200
    assert allowed_hosts("10.0.0.5", 443, ["desk.example"], tls=True) == {
        "10.0.0.5:443",
        "10.0.0.5",
        "desk.example:443",
        "desk.example",
    }


def test_a_host_beyond_this_machine_needs_tls_or_an_explicit_flag(capsys: pytest.CaptureFixture[str]) -> None:
    assert exposure_refusal("127.0.0.1", tls=False, insecure_remote=False) is None
    assert exposure_refusal("::1", tls=False, insecure_remote=False) is None
    assert "clear text" in (exposure_refusal("10.0.0.5", tls=False, insecure_remote=False) or "")
    assert exposure_refusal("10.0.0.5", tls=True, insecure_remote=False) is None
    assert exposure_refusal("10.0.0.5", tls=False, insecure_remote=True) is None
    assert "--host-name" in (exposure_refusal("0.0.0.0", tls=True, insecure_remote=False) or "")
    assert exposure_refusal("0.0.0.0", tls=True, insecure_remote=False, host_names=["desk.example"]) is None
    # Refused before any stack is looked for (there is none here).
    assert main(["review", "serve", "--host", "0.0.0.0", "--port", "0"]) == 2
    assert main(["review", "serve", "--host", "10.0.0.5", "--tls-cert", "cert.pem"]) == 2
    assert "clear text" in capsys.readouterr().err


def _certificate(folder: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = folder / "cert.pem", folder / "key.pem"
    cert_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return cert_file, key_file


def test_under_tls_the_cookie_is_secure_and_a_silent_handshake_blocks_no_one(
    stack: Stack, tmp_path: Path
) -> None:
    cert_file, key_file = _certificate(tmp_path)
    app = ReviewApp(stack.desk(), stack.s3, "product-describer-test")
    running = _running(serve(app, "127.0.0.1", 0, tls=tls_context(cert_file, key_file), timeout_s=60))
    try:
        assert running.url.startswith(f"https://127.0.0.1:{running.port}{running.base}/?token=")
        silent = socket.create_connection(("127.0.0.1", running.port), timeout=30)  # never says hello
        client = ssl.create_default_context(cafile=str(cert_file))
        connection = http.client.HTTPSConnection("localhost", running.port, timeout=10, context=client)
        connection.request("GET", f"{running.base}/?token={app.sessions.token}")
        response = connection.getresponse()
        cookie = response.getheader("Set-Cookie") or ""
        assert response.status == 303 and "; Secure" in cookie and "HttpOnly" in cookie
        assert "max-age" in (response.getheader("Strict-Transport-Security") or "")
        connection.close()
        silent.close()
    finally:
        running.shutdown()
        running.server_close()


# --- Sessions ----------------------------------------------------------------------------------


def test_the_session_cookie_is_the_desks_own_and_scoped(server: ReviewServer) -> None:
    browser = browser_of(server, signed_in=False)
    assert browser.request("GET", f"/?token={server.app.sessions.token}")[0] == 303
    cookie = browser.last_headers["set-cookie"]
    assert cookie.startswith(f"review_session_{server.port}=")
    for part in ("HttpOnly", "SameSite=Strict", f"Path={server.base};", f"Max-Age={SESSION_LIFETIME_S}"):
        assert part in cookie
    assert "Secure" not in cookie  # plain HTTP on loopback: a Secure cookie would never come back
    # The desk lives under a random path per start (the cookie's Path): nothing answers outside it.
    assert len(server.base) > 12 and server.url.split("?")[0].endswith(f"{server.base}/")
    outside = Browser(server.port, "", cookie.split(";", 1)[0])
    assert outside.request("GET", "/")[0] == 404 and outside.request("POST", "/review", {})[0] == 404
    browser.cookie = cookie.split(";", 1)[0].replace(f"_{server.port}=", "=")  # another desk's name
    assert browser.request("GET", "/")[0] == 401


def test_sessions_expire_when_idle_and_after_their_lifetime() -> None:
    now = [0.0]
    sessions = Sessions(idle_s=60, lifetime_s=300, max_sessions=2, clock=lambda: now[0])
    assert sessions.open("wrong") is None
    session = sessions.open(sessions.token)
    assert session is not None and sessions.csrf(session) is not None
    for _ in range(4):  # in use: it lives on, until its lifetime is over
        now[0] += 50
        assert sessions.csrf(session) is not None
    now[0] += 110
    assert sessions.csrf(session) is None
    idle = sessions.open(sessions.token)
    now[0] += 61
    assert sessions.csrf(idle) is None
    first, second, third = (sessions.open(sessions.token) for _ in range(3))
    assert sessions.csrf(first) is None and sessions.csrf(second) and sessions.csrf(third)


@pytest.mark.parametrize(
    ("target", "location"),
    [
        ("{base}/\\evil.com/?token={token}", "{base}/"),
        ("{base}//evil.com/?token={token}", "{base}/"),
        ("{base}/%5Cevil.com?token={token}", "{base}/"),
        ("http://evil.com{base}/?token={token}", "{base}/"),
        ("{base}/product?id=1&token={token}", "{base}/product"),
    ],
)
def test_signing_in_redirects_only_to_a_path_of_the_desk(
    server: ReviewServer, target: str, location: str
) -> None:
    target = target.format(base=server.base, token=server.app.sessions.token)
    request = f"GET {target} HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n\r\n"
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as connection:
        connection.sendall(request.encode())
        response = http.client.HTTPResponse(connection)
        response.begin()
        assert response.status == 303 and response.getheader("Location") == location.format(base=server.base)
    assert safe_redirect("/\\evil.com") == safe_redirect("//evil.com") == safe_redirect("https://x") == "/"
    assert safe_redirect("/../x") == safe_redirect("/a/./b") == safe_redirect("/%2e%2e") == "/"
    assert safe_redirect("/product") == "/product" and safe_redirect("/a.b/c..d") == "/a.b/c..d"


# --- A review whose announcement or write fails --------------------------------------------------


def test_a_review_not_announced_says_so_and_is_announced_again(stack: Stack, server: ReviewServer) -> None:
    stack.put(shirt_record())
    browser = browser_of(server)
    _, page = browser.request("GET", "/product?id=15970")
    form = form_fields(page) | {"action": "reject", "reason": "two shirts in one photo"}
    server.app.desk.events = ProductEvents("no-such-bus", stack.events)

    status, told = browser.request("POST", "/review", form)
    assert status == 502 and "Recorded, not yet announced" in told and 'action="announce"' in told
    written = stack.table.get("15970")
    assert written is not None and written.review_decision is not None
    assert stack.reviewed_events() == []

    status, again = browser.request("POST", "/review", form)  # the same form resubmitted
    assert status == 502 and "Changed since" not in again
    server.app.desk.events = ProductEvents(BUS, stack.events)
    announce = {
        name: value for name, value in form_fields(told).items() if name in ("csrf", "id", "review_id")
    }
    status, done = browser.request("POST", "/announce", announce)
    assert status == 200 and "Review recorded: rejected" in done
    status, done = browser.request("POST", "/review", form)  # and once more: the same review
    assert status == 200 and "Review recorded: rejected" in done
    assert stack.table.get("15970") == written  # written once, announced (twice: at least once)
    assert [event["detail"]["product_id"] for event in stack.reviewed_events()] == ["15970", "15970"]

    other = form | {"review_id": "another-review-0123456789"}
    assert browser.request("POST", "/review", other)[0] == 409  # a different review of the old version


def test_an_aws_error_on_the_write_is_a_page_and_the_resubmit_records_it(
    stack: Stack, server: ReviewServer
) -> None:
    stack.put(shirt_record())
    browser = browser_of(server)
    _, page = browser.request("GET", "/product?id=15970")
    form = form_fields(page) | {"action": "accept"}

    def denied(**_: Any) -> None:
        raise ClientError({"Error": {"Code": "AccessDeniedException", "Message": "no"}}, "UpdateItem")

    stack.dynamodb.meta.events.register("before-call.dynamodb.UpdateItem", denied, unique_id="deny")
    status, told = browser.request("POST", "/review", form)
    assert status == 502 and "AWS did not answer" in told and "AccessDeniedException" in told
    stack.dynamodb.meta.events.unregister("before-call.dynamodb.UpdateItem", unique_id="deny")
    assert browser.request("POST", "/review", form)[0] == 200
    assert len(stack.reviewed_events()) == 1
