"""The review desk's web server: Python's own ThreadingHTTPServer, Jinja2 pages, plain HTML forms.

No JavaScript and nothing fetched at run time: server-rendered pages work in any browser and keep the
attack surface to forms. Access: a random token per start, printed once in the URL; opening it starts
a session (an HttpOnly, SameSite=Strict cookie), and every other request needs that session (401
without one, 403 with a wrong token). Every form that changes something carries the session's CSRF
token (403 without it). Every value is escaped by Jinja2's autoescape (product ids come from object
keys, copy from a model), and a strict Content-Security-Policy allows no script at all.
"""

from __future__ import annotations

import hmac
import secrets
import threading
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field
from http import HTTPStatus
from http.cookies import CookieError, SimpleCookie
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError
from jinja2 import Environment, FileSystemLoader
from pydantic import ValidationError

from describer.review.desk import (
    ChangedSinceOpened,
    RecordGone,
    ReviewDesk,
    ReviewRefused,
    attributes_to_review,
    photos_of,
)
from describer_aws.results_table import RecordVersion
from describer_rules.contracts import LocaleContent, ProductRecord
from describer_rules.errors import TransientError

HERE = Path(__file__).resolve().parent
SESSION_COOKIE = "review_session"
MAX_FORM_BYTES = 256 * 1024
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; img-src 'self'; style-src 'self'; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
    "X-Frame-Options": "DENY",
}
_IMAGE_TYPES = ((b"\xff\xd8\xff", "image/jpeg"), (b"\x89PNG\r\n\x1a\n", "image/png"), (b"GIF8", "image/gif"))


def image_type(head: bytes) -> str | None:
    """The image type by its first bytes (JPEG, PNG, GIF, WebP); None for anything else."""
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    return next((kind for magic, kind in _IMAGE_TYPES if head.startswith(magic)), None)


@dataclass
class Sessions:
    """Session id -> CSRF token, for one start of the server."""

    token: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    _csrf: dict[str, str] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def open(self, token: str) -> str | None:
        if not hmac.compare_digest(token.encode(), self.token.encode()):
            return None
        session = secrets.token_urlsafe(32)
        with self._lock:
            self._csrf[session] = secrets.token_urlsafe(32)
        return session

    def csrf(self, session: str | None) -> str | None:
        if not session:
            return None
        with self._lock:
            return self._csrf.get(session)


class ReviewApp:
    """Everything a request needs: the desk, the sessions, the templates, the S3 client for photos."""

    def __init__(
        self, desk: ReviewDesk, s3_client: Any, stack_name: str, sessions: Sessions | None = None
    ) -> None:
        self.desk = desk
        self.s3 = s3_client
        self.stack_name = stack_name
        self.sessions = sessions or Sessions()
        self.templates = Environment(
            loader=FileSystemLoader(HERE / "templates"), autoescape=True, trim_blocks=True, lstrip_blocks=True
        )

    def render(self, name: str, **context: Any) -> bytes:
        template = self.templates.get_template(name)
        return template.render(reviewer=self.desk.reviewer, stack=self.stack_name, **context).encode()


class ReviewServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], app: ReviewApp) -> None:
        super().__init__(address, ReviewHandler)
        self.app = app

    @property
    def url(self) -> str:
        host, port = self.server_address[0], self.server_address[1]
        return f"http://{host!s}:{port}/?token={self.app.sessions.token}"


class ReviewHandler(BaseHTTPRequestHandler):
    server: ReviewServer
    server_version = "describer-review"
    sys_version = ""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        # The request line's query string may hold the token: log the path only.
        self.log_message("%s %s %s", self.command, self.path.split("?", 1)[0], code)

    # --- Dispatch ------------------------------------------------------------------------------

    def do_GET(self) -> None:
        url = urllib.parse.urlsplit(self.path)
        query = {name: values[0] for name, values in urllib.parse.parse_qs(url.query).items()}
        if url.path == "/static/review.css":
            self._send(
                HTTPStatus.OK, (HERE / "static" / "review.css").read_bytes(), "text/css; charset=utf-8"
            )
            return
        if "token" in query:
            self._login(query["token"], url.path)
            return
        csrf = self._csrf()
        if csrf is None:
            return
        try:
            if url.path == "/":
                self._queue(query)
            elif url.path == "/product":
                self._product(query.get("id", ""), csrf)
            elif url.path == "/photo":
                self._photo(query.get("id", ""), query.get("n", "0"))
            else:
                self._message(HTTPStatus.NOT_FOUND, "Not found", f"no page {url.path}", kind="gone")
        except RecordGone as error:
            self._message(HTTPStatus.NOT_FOUND, "No such product", str(error), kind="gone")
        except (ClientError, BotoCoreError, TransientError) as error:
            self._message(HTTPStatus.BAD_GATEWAY, "AWS did not answer", str(error), kind="gone")

    def do_POST(self) -> None:
        url = urllib.parse.urlsplit(self.path)
        csrf = self._csrf()
        if csrf is None:
            return
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_FORM_BYTES:
            self._message(
                HTTPStatus.REQUEST_ENTITY_TOO_LARGE, "Too large", "the form is too large", kind="refused"
            )
            return
        form = {
            name: values[0]
            for name, values in urllib.parse.parse_qs(
                self.rfile.read(length).decode("utf-8", errors="replace"), keep_blank_values=True
            ).items()
        }
        if not hmac.compare_digest(form.get("csrf", "").encode(), csrf.encode()):
            self._message(
                HTTPStatus.FORBIDDEN, "Forbidden", "the form's CSRF token is missing or wrong", kind="refused"
            )
            return
        if url.path != "/review":
            self._message(HTTPStatus.NOT_FOUND, "Not found", f"no form {url.path}", kind="gone")
            return
        self._review(form)

    # --- Access --------------------------------------------------------------------------------

    def _session(self) -> str | None:
        try:
            cookie = SimpleCookie(self.headers.get("Cookie") or "")
        except CookieError:
            return None
        morsel = cookie.get(SESSION_COOKIE)
        return morsel.value if morsel is not None else None

    def _csrf(self) -> str | None:
        """The session's CSRF token; None (and a 401 sent) when the request has no valid session."""
        csrf = self.server.app.sessions.csrf(self._session())
        if csrf is None:
            self._message(
                HTTPStatus.UNAUTHORIZED,
                "Sign in",
                "open the review link printed when `describer review serve` started (it holds the token)",
                kind="refused",
            )
        return csrf

    def _login(self, token: str, path: str) -> None:
        session = self.server.app.sessions.open(token)
        if session is None:
            self._message(HTTPStatus.FORBIDDEN, "Forbidden", "the token is wrong", kind="refused")
            return
        self.send_response(HTTPStatus.SEE_OTHER)
        cookie = f"{SESSION_COOKIE}={session}; HttpOnly; SameSite=Strict; Path=/"
        self.send_header("Set-Cookie", cookie)
        self.send_header("Location", path or "/")
        self._security_headers()
        self.send_header("Content-Length", "0")
        self.end_headers()

    # --- Pages ---------------------------------------------------------------------------------

    def _queue(self, query: Mapping[str, str]) -> None:
        category, attribute = query.get("category") or None, query.get("attribute") or None
        queue = self.server.app.desk.queue(category, attribute)
        body = self.server.app.render("queue.html", queue=queue, category=category, attribute=attribute)
        self._send(HTTPStatus.OK, body)

    def _product(self, product_id: str, csrf: str) -> None:
        desk = self.server.app.desk
        record = desk.open(product_id)
        body = self.server.app.render(
            "product.html",
            record=record,
            csrf=csrf,
            photos=[key for key, _ in photos_of(record)],
            to_review=attributes_to_review(record, desk.settings.review_threshold),
            vocabulary={name: desk.vocabulary(record, name) for name in record.attributes},
        )
        self._send(HTTPStatus.OK, body)

    def _photo(self, product_id: str, number: str) -> None:
        record = self.server.app.desk.open(product_id)
        photos = photos_of(record)
        if not number.isdigit() or int(number) >= len(photos):
            self._message(
                HTTPStatus.NOT_FOUND, "No such photo", f"{product_id} has {len(photos)} photo(s)", kind="gone"
            )
            return
        key, version = photos[int(number)]
        arguments = {"Bucket": record.source_bucket, "Key": key}
        if version != "null":
            arguments["VersionId"] = version
        try:
            body = self.server.app.s3.get_object(**arguments)["Body"].read()
        except (ClientError, BotoCoreError) as error:
            self._message(HTTPStatus.BAD_GATEWAY, "Photo unavailable", f"{key}: {error}", kind="gone")
            return
        kind = image_type(body[:16])
        if kind is None:
            self._message(
                HTTPStatus.UNSUPPORTED_MEDIA_TYPE, "Not an image", f"{key} is not a photo", kind="refused"
            )
            return
        self._send(HTTPStatus.OK, body, kind)

    def _review(self, form: Mapping[str, str]) -> None:
        app = self.server.app
        product_id = form.get("id", "")
        try:
            opened = RecordVersion(
                updated_at=form.get("updated_at", ""),
                order_token=form.get("order_token", ""),
                execution_name=form.get("execution_name", ""),
            )
            action = form.get("action", "")
            if action == "accept":
                record = app.desk.accept(product_id, opened)
            elif action == "reject":
                record = app.desk.reject(product_id, opened, form.get("reason", ""))
            elif action == "correct":
                record = app.desk.correct(
                    product_id, opened, submitted_attributes(form), submitted_copy(form)
                )
            else:
                raise ReviewRefused(f"unknown action {action!r}: accept, correct or reject")
        except ChangedSinceOpened as error:
            self._message(
                HTTPStatus.CONFLICT,
                "Changed since you opened it",
                f"{error} Nothing of yours was written: open it again to see the current record.",
                kind="changed",
                product_id=product_id,
                record=error.current,
            )
            return
        except RecordGone as error:
            self._message(
                HTTPStatus.NOT_FOUND, "No such product", f"{error}; nothing was written", kind="gone"
            )
            return
        except ValidationError as error:
            problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in error.errors())
            self._refused(product_id, problems)
            return
        except ReviewRefused as error:
            self._refused(product_id, str(error))
            return
        assert record.review_decision is not None
        status = record.review_decision.status.value
        self._message(
            HTTPStatus.OK,
            f"Review recorded: {status}",
            f"{record.product_id} is {status}; the Product Reviewed event is on the bus.",
            kind="done",
            product_id=record.product_id,
            record=record,
        )

    def _refused(self, product_id: str, message: str) -> None:
        self._message(
            HTTPStatus.UNPROCESSABLE_ENTITY,
            "Refused",
            f"{message}. Nothing was written.",
            kind="refused",
            product_id=product_id or None,
        )

    # --- Responses -----------------------------------------------------------------------------

    def _message(
        self,
        status: HTTPStatus,
        heading: str,
        message: str,
        kind: str,
        product_id: str | None = None,
        record: ProductRecord | None = None,
    ) -> None:
        body = self.server.app.render(
            "message.html", heading=heading, message=message, kind=kind, product_id=product_id, record=record
        )
        self._send(status, body)

    def _security_headers(self) -> None:
        for name, value in SECURITY_HEADERS.items():
            self.send_header(name, value)

    def _send(self, status: HTTPStatus, body: bytes, content_type: str = "text/html; charset=utf-8") -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self._security_headers()
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)


def submitted_attributes(form: Mapping[str, str]) -> dict[str, str]:
    """attribute -> value: the typed value where one was typed, else the picked one."""
    picked = {name.removeprefix("attr:"): value for name, value in form.items() if name.startswith("attr:")}
    typed = {
        name.removeprefix("other:"): value.strip()
        for name, value in form.items()
        if name.startswith("other:") and value.strip()
    }
    return picked | typed


def submitted_copy(form: Mapping[str, str]) -> dict[str, LocaleContent]:
    """locale -> the copy as submitted; bullets and keywords one a line."""
    parts: dict[str, dict[str, Any]] = {}
    for name, value in form.items():
        if not name.startswith("copy:"):
            continue
        _, locale, part = name.split(":", 2)
        text = value.replace("\r\n", "\n")
        parts.setdefault(locale, {})[part] = (
            [line.strip() for line in text.split("\n") if line.strip()]
            if part in ("bullets", "keywords")
            else text
        )
    return {locale: LocaleContent.model_validate(values) for locale, values in parts.items()}


def serve(app: ReviewApp, host: str = "127.0.0.1", port: int = 0) -> ReviewServer:
    """A server bound to ``host:port`` (port 0: a free one); call ``serve_forever`` on it."""
    return ReviewServer((host, port), app)
