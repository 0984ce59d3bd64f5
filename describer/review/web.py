"""The review desk's web server: Python's own ThreadingHTTPServer, Jinja2 pages, plain HTML forms.

No JavaScript and nothing fetched at run time: server-rendered pages work in any browser and keep the
attack surface to forms. Access: a random token and a random base path per start, printed once in
the URL (every page lives under that path, and links relatively); opening it starts a session (a
cookie scoped to that path and named for the desk's port, HttpOnly, SameSite=Strict, Secure under
TLS) that expires when idle and after a lifetime, and every other request needs that session (401
without one, 403 with a wrong token). Every form that changes something carries the session's CSRF token (403
without it). Every value is escaped by Jinja2's autoescape (product ids come from object keys, copy
from a model), and a strict Content-Security-Policy allows no script at all.

Hardened against a hostile network or page (docs/review.md, Security): a request must name an
allowed Host (421 otherwise: DNS rebinding); every connection has a socket timeout and their number
is bounded (a slow or idle client cannot pin the threads); a body is read only up to its declared,
bounded length; any request the desk cannot parse is a 400 and any failure a page, never a reset.
"""

from __future__ import annotations

import hmac
import secrets
import ssl
import sys
import threading
import urllib.parse
from collections.abc import Callable, Iterable, Mapping
from http import HTTPStatus
from http.cookies import CookieError, SimpleCookie
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError
from jinja2 import Environment, FileSystemLoader
from pydantic import ValidationError

from describer.review.access import Sessions, allowed_hosts, safe_redirect
from describer.review.desk import (
    REVIEW_ID,
    ChangedSinceOpened,
    RecordGone,
    ReviewDesk,
    ReviewNotAnnounced,
    ReviewRefused,
    attributes_to_review,
    new_review_id,
    photos_of,
)
from describer_aws.results_table import RecordVersion
from describer_rules.contracts import LocaleContent, ProductRecord
from describer_rules.errors import TransientError

HERE = Path(__file__).resolve().parent
SESSION_COOKIE = "review_session"
MAX_FORM_BYTES = 256 * 1024
MAX_FORM_FIELDS = 1000
# The largest photo the desk streams to a browser; a larger object (an IMAGE_TOO_LARGE source can be
# gigabytes) is refused from its size, before a byte of it is read.
MAX_PHOTO_BYTES = 20 * 1024 * 1024
CONNECTION_TIMEOUT_S = 20.0
MAX_CONNECTIONS = 32
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


class BadRequest(ValueError):
    """A request the desk cannot parse: answered 400 with this message."""


def image_type(head: bytes) -> str | None:
    """The image type by its first bytes (JPEG, PNG, GIF, WebP); None for anything else."""
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    return next((kind for magic, kind in _IMAGE_TYPES if head.startswith(magic)), None)


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
    """The desk's server: ``tls`` serves HTTPS; ``host_names`` are more Host names a request may use
    (a name browsers reach a non-loopback bind by); at most ``max_connections`` at once, each closed
    after ``timeout_s`` without progress."""

    daemon_threads = True

    def __init__(
        self,
        address: tuple[str, int],
        app: ReviewApp,
        tls: ssl.SSLContext | None = None,
        host_names: Iterable[str] = (),
        timeout_s: float = CONNECTION_TIMEOUT_S,
        max_connections: int = MAX_CONNECTIONS,
    ) -> None:
        super().__init__(address, ReviewHandler)
        self.app = app
        self.tls = tls
        self.timeout_s = timeout_s
        self._slots = threading.BoundedSemaphore(max_connections)
        host_names = list(host_names)
        self.allowed_hosts = allowed_hosts(address[0], self.port, host_names, tls is not None)
        self.public_name = host_names[0] if host_names else address[0]
        # Cookies are not scoped by port: a name of its own keeps two desks on one host apart, and a
        # random path per start (the cookie's Path) keeps other services on the host from receiving
        # it: a browser sends it only to this path, which only the printed link names.
        self.cookie_name = f"{SESSION_COOKIE}_{self.port}"
        self.base = "/" + secrets.token_urlsafe(12)
        if tls is not None:
            # The handshake runs in the connection's own thread, under its timeout (not in accept).
            self.socket = tls.wrap_socket(self.socket, server_side=True, do_handshake_on_connect=False)

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    @property
    def url(self) -> str:
        scheme = "https" if self.tls is not None else "http"
        name = f"[{self.public_name}]" if ":" in self.public_name else self.public_name
        return f"{scheme}://{name}:{self.port}{self.base}/?token={self.app.sessions.token}"

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self._slots.acquire(blocking=False):
            # Full: close at once rather than queue (an idle crowd must not block the reviewers).
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._slots.release()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()

    def handle_error(self, request: Any, client_address: Any) -> None:
        error = sys.exc_info()[1]
        if isinstance(error, OSError):  # a client gone, timed out, or failing the TLS handshake
            sys.stderr.write(f"review desk: connection from {client_address[0]} ended: {error!r}\n")
            return
        super().handle_error(request, client_address)


class ReviewHandler(BaseHTTPRequestHandler):
    server: ReviewServer
    server_version = "describer-review"
    sys_version = ""

    def setup(self) -> None:
        self.request.settimeout(self.server.timeout_s)
        if isinstance(self.request, ssl.SSLSocket):
            self.request.do_handshake()
        super().setup()

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        # The request line's query string may hold the token: log the path only (within the desk).
        self.log_message("%s %s %s", self.command, self._page(self.path.split("?", 1)[0]) or "-", code)

    def _page(self, path: str) -> str | None:
        """The desk's page ``path`` names (``/``, ``/product``...), None when it is outside the desk's
        base path."""
        base = self.server.base
        return path[len(base) :] if path.startswith(base + "/") else None

    # --- Dispatch ------------------------------------------------------------------------------

    def do_GET(self) -> None:
        self._guarded(self._get)

    def do_POST(self) -> None:
        self._guarded(self._post)

    def _guarded(self, handle: Callable[[], None]) -> None:
        """``handle`` the request; what it cannot parse is a 400 and any other failure a 500 page,
        never a reset connection (nor a traceback on the page: that goes to the server's log)."""
        try:
            if not self._host_allowed():
                return
            handle()
        except BadRequest as error:
            self._message(HTTPStatus.BAD_REQUEST, "Bad request", str(error), kind="refused")
        except OSError:
            raise  # the connection itself failed (timed out, reset): http.server closes it
        except Exception:
            self.log_error("failed on %s %s", self.command, self._page(self.path.split("?", 1)[0]))
            sys.excepthook(*sys.exc_info())
            self._message(
                HTTPStatus.INTERNAL_SERVER_ERROR,
                "The desk failed",
                "the desk could not answer this request; its log says why",
                kind="gone",
            )

    def _get(self) -> None:
        url = urllib.parse.urlsplit(self.path)
        page = self._page(url.path)
        if page is None:
            self._message(HTTPStatus.NOT_FOUND, "Not found", "no such page", kind="gone")
            return
        query = _fields(url.query, "query")
        if page == "/static/review.css":
            self._send(
                HTTPStatus.OK, (HERE / "static" / "review.css").read_bytes(), "text/css; charset=utf-8"
            )
            return
        if "token" in query:
            self._login(query["token"], page)
            return
        csrf = self._csrf()
        if csrf is None:
            return
        try:
            if page == "/":
                self._queue(query)
            elif page == "/product":
                self._product(query.get("id", ""), csrf)
            elif page == "/photo":
                self._photo(query.get("id", ""), query.get("n", "0"))
            else:
                self._message(HTTPStatus.NOT_FOUND, "Not found", f"no page {page}", kind="gone")
        except RecordGone as error:
            self._message(HTTPStatus.NOT_FOUND, "No such product", str(error), kind="gone")
        except (ClientError, BotoCoreError, TransientError) as error:
            self._message(HTTPStatus.BAD_GATEWAY, "AWS did not answer", str(error), kind="gone")

    def _post(self) -> None:
        page = self._page(urllib.parse.urlsplit(self.path).path)
        if page is None:
            self._message(HTTPStatus.NOT_FOUND, "Not found", "no such form", kind="gone")
            return
        csrf = self._csrf()
        if csrf is None:
            return
        form = self._form()
        if form is None:
            return
        if not hmac.compare_digest(form.get("csrf", "").encode(), csrf.encode()):
            self._message(
                HTTPStatus.FORBIDDEN, "Forbidden", "the form's CSRF token is missing or wrong", kind="refused"
            )
            return
        if page == "/review":
            self._review(form)
        elif page == "/announce":
            self._announce(form)
        else:
            self._message(HTTPStatus.NOT_FOUND, "Not found", f"no form {page}", kind="gone")

    # --- Parsing -------------------------------------------------------------------------------

    def _host_allowed(self) -> bool:
        """Whether the request names this desk in its Host header (421 sent when it does not: a page
        of another site rebound to this address names that site)."""
        host = (self.headers.get("Host") or "").strip().lower()
        if host in self.server.allowed_hosts:
            return True
        self._message(
            HTTPStatus.MISDIRECTED_REQUEST,
            "Wrong host",
            "this desk answers only to the address it printed when it started",
            kind="refused",
        )
        return False

    def _form(self) -> dict[str, str] | None:
        """The urlencoded body, read only up to its declared length (None: 413 sent)."""
        if self.headers.get("Transfer-Encoding"):
            raise BadRequest("a form must come with a Content-Length, not a Transfer-Encoding")
        declared = (self.headers.get("Content-Length") or "0").strip()
        if not (declared.isascii() and declared.isdecimal()):
            raise BadRequest(f"Content-Length {declared[:40]!r} is not a number of bytes")
        length = int(declared)
        if length > MAX_FORM_BYTES:
            self.close_connection = True  # the body is left unread
            self._message(
                HTTPStatus.REQUEST_ENTITY_TOO_LARGE, "Too large", "the form is too large", kind="refused"
            )
            return None
        body = self.rfile.read(length)
        if len(body) != length:
            raise BadRequest("the form ended before its Content-Length")
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError as error:
            raise BadRequest("the form is not UTF-8") from error
        return _fields(text, "form")

    # --- Access --------------------------------------------------------------------------------

    def _session(self) -> str | None:
        try:
            cookie = SimpleCookie(self.headers.get("Cookie") or "")
        except CookieError:
            return None
        morsel = cookie.get(self.server.cookie_name)
        return morsel.value if morsel is not None else None

    def _csrf(self) -> str | None:
        """The session's CSRF token; None (and a 401 sent) when the request has no valid session."""
        csrf = self.server.app.sessions.csrf(self._session())
        if csrf is None:
            self._message(
                HTTPStatus.UNAUTHORIZED,
                "Sign in",
                "open the review link printed when `describer review serve` started (it holds the "
                "token); a session ends after a while without use",
                kind="refused",
            )
        return csrf

    def _login(self, token: str, path: str) -> None:
        sessions = self.server.app.sessions
        session = sessions.open(token)
        if session is None:
            self._message(HTTPStatus.FORBIDDEN, "Forbidden", "the token is wrong", kind="refused")
            return
        self.send_response(HTTPStatus.SEE_OTHER)
        cookie = (
            f"{self.server.cookie_name}={session}; HttpOnly; SameSite=Strict; Path={self.server.base}; "
            f"Max-Age={int(sessions.lifetime_s)}"
        )
        if self.server.tls is not None:
            cookie += "; Secure"
        self.send_header("Set-Cookie", cookie)
        self.send_header("Location", self.server.base + safe_redirect(path))
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
            review_id=new_review_id(),
            photos=[key for key, _ in photos_of(record)],
            to_review=attributes_to_review(record, desk.settings.review_threshold),
            vocabulary={name: desk.vocabulary(record, name) for name in record.attributes},
        )
        self._send(HTTPStatus.OK, body)

    def _photo(self, product_id: str, number: str) -> None:
        if not (number.isascii() and number.isdecimal()):
            raise BadRequest(f"photo number {number[:40]!r} is not a number")
        record = self.server.app.desk.open(product_id)
        photos = photos_of(record)
        if int(number) >= len(photos):
            self._message(
                HTTPStatus.NOT_FOUND, "No such photo", f"{product_id} has {len(photos)} photo(s)", kind="gone"
            )
            return
        key, version = photos[int(number)]
        arguments = {"Bucket": record.source_bucket, "Key": key}
        if version != "null":
            arguments["VersionId"] = version
        try:
            response = self.server.app.s3.get_object(**arguments)
            stream = response["Body"]
            try:
                size = int(response.get("ContentLength", 0))
                # The size and the type before the photo: refused ones are never read whole.
                body = stream.read(16) if size <= MAX_PHOTO_BYTES else b""
                kind = image_type(body)
                if size <= MAX_PHOTO_BYTES and kind is not None:
                    body += stream.read(MAX_PHOTO_BYTES + 1 - len(body))
            finally:
                stream.close()
        except (ClientError, BotoCoreError) as error:
            self._message(HTTPStatus.BAD_GATEWAY, "Photo unavailable", f"{key}: {error}", kind="gone")
            return
        if size > MAX_PHOTO_BYTES or len(body) > MAX_PHOTO_BYTES:
            self._message(
                HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                "Photo too large",
                f"{key} is over the desk's {MAX_PHOTO_BYTES}-byte limit",
                kind="refused",
            )
            return
        if kind is None:
            self._message(
                HTTPStatus.UNSUPPORTED_MEDIA_TYPE, "Not an image", f"{key} is not a photo", kind="refused"
            )
            return
        self._send(HTTPStatus.OK, body, kind)

    def _review(self, form: Mapping[str, str]) -> None:
        app = self.server.app
        product_id = form.get("id", "")
        review_id = _review_id(form)
        try:
            opened = RecordVersion(
                updated_at=form.get("updated_at", ""),
                order_token=form.get("order_token", ""),
                execution_name=form.get("execution_name", ""),
            )
            action = form.get("action", "")
            if action == "accept":
                record = app.desk.accept(product_id, opened, review_id)
            elif action == "reject":
                record = app.desk.reject(product_id, opened, form.get("reason", ""), review_id)
            elif action == "correct":
                record = app.desk.correct(
                    product_id, opened, submitted_attributes(form), submitted_copy(form), review_id
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
        except ReviewNotAnnounced as error:
            self._unannounced(error)
            return
        except (ClientError, BotoCoreError, TransientError) as error:
            self._message(
                HTTPStatus.BAD_GATEWAY,
                "AWS did not answer",
                f"{error}. The review may or may not be written: submit the same form again (go back "
                "and resubmit); a review already written is recognised, not written twice.",
                kind="gone",
                product_id=product_id or None,
            )
            return
        self._done(record)

    def _announce(self, form: Mapping[str, str]) -> None:
        product_id, review_id = form.get("id", ""), _review_id(form)
        if review_id is None:
            raise BadRequest("the form has no review id")
        try:
            record = self.server.app.desk.announce(product_id, review_id)
        except ChangedSinceOpened as error:
            self._message(
                HTTPStatus.CONFLICT,
                "Replaced since",
                f"{error}: that review is no longer its last change, and what replaced it has its own event.",
                kind="changed",
                product_id=product_id,
                record=error.current,
            )
            return
        except RecordGone as error:
            self._message(HTTPStatus.NOT_FOUND, "No such product", str(error), kind="gone")
            return
        except ReviewNotAnnounced as error:
            self._unannounced(error)
            return
        except (ClientError, BotoCoreError, TransientError) as error:
            self._message(HTTPStatus.BAD_GATEWAY, "AWS did not answer", str(error), kind="gone")
            return
        self._done(record)

    def _done(self, record: ProductRecord) -> None:
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

    def _unannounced(self, error: ReviewNotAnnounced) -> None:
        """The review is written but its event is not out: say so, and offer to announce it again."""
        record = error.record
        assert record.review_decision is not None
        body = self.server.app.render(
            "message.html",
            heading="Recorded, not yet announced",
            message=f"{error}. Announce it again below (or resubmit the same form): the review is not "
            "written twice.",
            kind="changed",
            product_id=record.product_id,
            record=record,
            announce={
                "csrf": self.server.app.sessions.csrf(self._session()) or "",
                "id": record.product_id,
                "review_id": record.review_decision.review_id or "",
            },
        )
        self._send(HTTPStatus.BAD_GATEWAY, body)

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
        if self.server.tls is not None:
            self.send_header("Strict-Transport-Security", "max-age=31536000")

    def _send(self, status: HTTPStatus, body: bytes, content_type: str = "text/html; charset=utf-8") -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self._security_headers()
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)


def _fields(text: str, what: str) -> dict[str, str]:
    """name -> first value of a query string or urlencoded form; BadRequest when it cannot be parsed."""
    try:
        parsed = urllib.parse.parse_qs(
            text, keep_blank_values=True, max_num_fields=MAX_FORM_FIELDS, errors="strict"
        )
    except (ValueError, UnicodeDecodeError) as error:
        raise BadRequest(f"the {what} cannot be parsed ({error})") from error
    return {name: values[0] for name, values in parsed.items()}


def _review_id(form: Mapping[str, str]) -> str | None:
    review_id = form.get("review_id") or None
    if review_id is not None and not REVIEW_ID.fullmatch(review_id):
        raise BadRequest("the form's review id is malformed")
    return review_id


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
    """locale -> the copy as submitted; bullets and keywords one a line. BadRequest for a field name
    that is not ``copy:<locale>:<part>``."""
    parts: dict[str, dict[str, Any]] = {}
    for name, value in form.items():
        if not name.startswith("copy:"):
            continue
        locale, _, part = name.removeprefix("copy:").partition(":")
        if not locale or not part:
            raise BadRequest(f"form field {name[:60]!r} is not copy:<locale>:<part>")
        text = value.replace("\r\n", "\n")
        parts.setdefault(locale, {})[part] = (
            [line.strip() for line in text.split("\n") if line.strip()]
            if part in ("bullets", "keywords")
            else text
        )
    return {locale: LocaleContent.model_validate(values) for locale, values in parts.items()}


def serve(
    app: ReviewApp,
    host: str = "127.0.0.1",
    port: int = 0,
    tls: ssl.SSLContext | None = None,
    host_names: Iterable[str] = (),
    timeout_s: float = CONNECTION_TIMEOUT_S,
    max_connections: int = MAX_CONNECTIONS,
) -> ReviewServer:
    """A server bound to ``host:port`` (port 0: a free one); call ``serve_forever`` on it."""
    return ReviewServer((host, port), app, tls, host_names, timeout_s, max_connections)
