"""Who may use the review desk and from where: sessions that expire, safe redirects, the Host names
a request may carry, and the rule that a desk beyond this machine needs TLS (or says it goes without)."""

from __future__ import annotations

import hmac
import ipaddress
import re
import secrets
import ssl
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

SESSION_IDLE_S = 30 * 60
SESSION_LIFETIME_S = 8 * 60 * 60
MAX_SESSIONS = 100
LOOPBACK_NAMES = ("127.0.0.1", "localhost", "[::1]")
# Segments of plain characters, none of them "." or "..": a path that stays a path of the desk.
_SEGMENT = r"(?!\.\.?(?:/|$))[A-Za-z0-9._~-]+"
_SAFE_PATH = re.compile(rf"/(?:{_SEGMENT}(?:/{_SEGMENT})*)?")


def safe_redirect(path: str) -> str:
    """``path`` when it is a plain path of this origin, else ``/``: never ``//host``, ``/\\host``,
    an absolute URL, or anything a browser could read as another origin."""
    return path if _SAFE_PATH.fullmatch(path) else "/"


def is_loopback(host: str) -> bool:
    if host.strip("[]").lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def exposure_refusal(
    host: str, tls: bool, insecure_remote: bool, host_names: Iterable[str] = ()
) -> str | None:
    """Why binding ``host`` is refused (None: it is not). Beyond this machine the token and the
    session cookie would travel in clear text, so another host needs TLS or an explicit flag; and a
    wildcard address is no name a browser sends, so it needs the names the desk answers to."""
    if not (is_loopback(host) or tls or insecure_remote):
        return (
            f"--host {host} exposes the desk beyond this machine, and its token and session cookie would "
            "travel in clear text: give --tls-cert and --tls-key, or --insecure-remote to accept that"
        )
    try:
        wildcard = ipaddress.ip_address(host.strip("[]")).is_unspecified
    except ValueError:
        wildcard = False
    if wildcard and not list(host_names):
        return f"--host {host} is every address: name the one browsers use with --host-name"
    return None


def allowed_hosts(host: str, port: int, names: Iterable[str] = (), tls: bool = False) -> frozenset[str]:
    """The Host header values a request may carry: the loopback names for a loopback bind, else the
    bound address and ``names``; each with the port, and bare when the port is the scheme's default."""
    bare = list(LOOPBACK_NAMES) if is_loopback(host) else [host]
    bare += list(names)
    bare = [f"[{name}]" if ":" in name and not name.startswith("[") else name for name in bare]
    default_port = 443 if tls else 80
    hosts = {f"{name}:{port}".lower() for name in bare}
    if port == default_port:
        hosts |= {name.lower() for name in bare}
    return frozenset(hosts)


@dataclass
class _Session:
    csrf: str
    opened: float
    seen: float


@dataclass
class Sessions:
    """Session id -> its CSRF token, for one start of the server; a session ends after
    ``idle_s`` without a request or ``lifetime_s`` after it opened, whichever is first."""

    token: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    idle_s: float = SESSION_IDLE_S
    lifetime_s: float = SESSION_LIFETIME_S
    max_sessions: int = MAX_SESSIONS
    clock: Callable[[], float] = time.monotonic
    _sessions: dict[str, _Session] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def open(self, token: str) -> str | None:
        if not hmac.compare_digest(token.encode(), self.token.encode()):
            return None
        session, now = secrets.token_urlsafe(32), self.clock()
        with self._lock:
            for name in [name for name, held in self._sessions.items() if self._expired(held, now)]:
                del self._sessions[name]
            while len(self._sessions) >= self.max_sessions:  # the oldest goes first
                del self._sessions[min(self._sessions, key=lambda name: self._sessions[name].opened)]
            self._sessions[session] = _Session(csrf=secrets.token_urlsafe(32), opened=now, seen=now)
        return session

    def csrf(self, session: str | None) -> str | None:
        if not session:
            return None
        now = self.clock()
        with self._lock:
            held = self._sessions.get(session)
            if held is None:
                return None
            if self._expired(held, now):
                del self._sessions[session]
                return None
            held.seen = now
            return held.csrf

    def _expired(self, session: _Session, now: float) -> bool:
        return now - session.seen > self.idle_s or now - session.opened > self.lifetime_s


def tls_context(cert_file: Path, key_file: Path) -> ssl.SSLContext:
    """A server-side TLS context (TLS 1.2 at least) from a PEM certificate chain and its key."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(cert_file, key_file)
    return context
