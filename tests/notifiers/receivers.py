"""Real receivers on 127.0.0.1 for notifier and end-to-end tests: a Slack stand-in, a webhook
receiver that verifies signatures, and an SMTP server (aiosmtpd) with STARTTLS, implicit TLS or
none, and AUTH.

Each runs in its own thread, so it serves async tests and tests that run `monitor` in a subprocess
alike. Use them as context managers:

    with SlackStandIn() as slack:
        settings = slack_settings(webhook_url=slack.webhook_url)  # tests/notifiers/samples.py
        ...
        assert slack.messages[0]["text"] == ...

    with SmtpServer(tmp_path, security="starttls", users={"bob": "pw"}) as smtp:
        ... EmailSettings(host=smtp.host, port=smtp.port, ca_file=smtp.ca_file, ...)
        assert smtp.mails[0].message["Subject"] == ...

Replies can be scripted (`reply(Reply(429, "rate_limited", retry_after="3"))`), and a request can
be left hanging until the receiver closes (`Reply(hang=True)`): client timeouts without sleeping.
"""

from __future__ import annotations

import asyncio
import email
import hashlib
import hmac
import json
import socket
import ssl
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.policy import default as default_policy
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, Self

import trustme
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

HOST = "127.0.0.1"
_HANG_LIMIT = 30.0  # a hung request is released at close, or after this long at worst


def closed_port() -> int:
    """A port on 127.0.0.1 where nothing listens (bound, then released): connections are refused."""
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
    return port


# --------------------------------------------------------------------------------------------- HTTP


@dataclass(frozen=True)
class Reply:
    """What an HTTP receiver answers. `hang` keeps the request open until the receiver closes."""

    status: int = 200
    body: str = "ok"
    retry_after: str | None = None
    headers: tuple[tuple[str, str], ...] = ()
    content_type: str = "text/plain; charset=utf-8"
    hang: bool = False

    @classmethod
    def json(cls, data: Any, status: int = 200) -> Reply:
        return cls(status, json.dumps(data), content_type="application/json; charset=utf-8")


@dataclass(frozen=True)
class Received:
    method: str
    path: str
    headers: dict[str, str]  # names lower-cased
    body: bytes
    reply: Reply
    verified: bool | None = None  # webhook signature check, when the receiver has a secret

    def json(self) -> Any:
        return json.loads(self.body)


class HttpReceiver:
    """A threaded HTTP/1.1 server on 127.0.0.1 that records every request and answers with the next
    scripted reply, else with `answer(...)` (200 `ok` here; subclasses imitate their service)."""

    def __init__(self) -> None:
        self.requests: list[Received] = []
        self._script: deque[Reply] = deque()
        self._lock = threading.Lock()
        self._closing = threading.Event()
        self._server = ThreadingHTTPServer((HOST, 0), self._handler_class())
        self._server.daemon_threads = True
        # A short poll interval keeps close() fast: shutdown() waits for the loop to notice.
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    @property
    def port(self) -> int:
        port: int = self._server.server_address[1]
        return port

    @property
    def base_url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def reply(self, *replies: Reply) -> None:
        """Answer the next requests with these replies, in order, then go back to normal."""
        with self._lock:
            self._script.extend(replies)

    def answer(self, method: str, path: str, headers: dict[str, str], body: bytes) -> Reply:
        return Reply()

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        self._closing.set()
        if self._thread.is_alive():
            self._server.shutdown()
        self._server.server_close()

    def _handle(self, method: str, path: str, headers: dict[str, str], body: bytes) -> Reply:
        with self._lock:
            scripted = self._script.popleft() if self._script else None
        reply = scripted or self.answer(method, path, headers, body)
        record = Received(method, path, headers, body, reply, self._verify(headers, body))
        with self._lock:
            self.requests.append(record)
        return reply

    def _verify(self, headers: dict[str, str], body: bytes) -> bool | None:
        return None

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # Headers and body go out in two writes; with Nagle on, each answer waits ~40 ms for
            # the client's delayed ACK.
            disable_nagle_algorithm = True

            def do_POST(self) -> None:
                self._serve("POST")

            def do_GET(self) -> None:
                self._serve("GET")

            def _serve(self, method: str) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                headers = {k.lower(): v for k, v in self.headers.items()}
                reply = receiver._handle(method, self.path, headers, body)
                if reply.hang:
                    receiver._closing.wait(_HANG_LIMIT)
                    self.close_connection = True
                    return
                self._write(reply)

            def _write(self, reply: Reply) -> None:
                data = reply.body.encode()
                try:
                    self.send_response(reply.status)
                    self.send_header("Content-Type", reply.content_type)
                    self.send_header("Content-Length", str(len(data)))
                    if reply.retry_after is not None:
                        self.send_header("Retry-After", reply.retry_after)
                    for name, value in reply.headers:
                        self.send_header(name, value)
                    self.end_headers()
                    self.wfile.write(data)
                except OSError:
                    self.close_connection = True  # the client gave up first

            def log_message(self, format: str, *args: Any) -> None:
                return None

        return Handler


# -------------------------------------------------------------------------------------------- Slack

SLACK_HEADER_LIMIT = 150
SLACK_SECTION_LIMIT = 3000
SLACK_MAX_BLOCKS = 50


def slack_block_problem(payload: Any) -> str | None:
    """Slack's own checks on a message payload, as error codes: None when Slack would accept it."""
    if not isinstance(payload, dict):
        return "invalid_payload"
    blocks = payload.get("blocks")
    if not payload.get("text") and not blocks:
        return "no_text"
    if blocks is None:
        return None
    if not isinstance(blocks, list) or len(blocks) > SLACK_MAX_BLOCKS:
        return "invalid_blocks"
    for block in blocks:
        if not isinstance(block, dict):
            return "invalid_blocks"
        text = block.get("text", {}).get("text", "")
        kind = block.get("type")
        if kind == "header" and (
            block["text"].get("type") != "plain_text" or len(text) > SLACK_HEADER_LIMIT
        ):
            return "invalid_blocks"
        if kind == "section" and len(text) > SLACK_SECTION_LIMIT:
            return "invalid_blocks"
    return None


class SlackStandIn(HttpReceiver):
    """Answers like Slack: the incoming webhook at `webhook_url` (200 `ok`, 400 `invalid_payload` /
    `no_text` / `invalid_blocks`, 404 `no_service` for an unknown hook) and chat.postMessage at
    `api_url` (HTTP 200 with `{"ok": true, "ts": ...}` or `{"ok": false, "error": ...}`).
    Script 429/500/503 answers with `reply(...)`; `RATE_LIMITED` and friends are ready-made."""

    RATE_LIMITED = Reply(429, "rate_limited", retry_after="3")
    SERVER_ERROR = Reply(500, "internal_error")
    UNAVAILABLE = Reply(503, "service_unavailable", retry_after="Wed, 21 Oct 2015 07:28:00 GMT")
    NO_SERVICE = Reply(404, "no_service")
    INVALID_PAYLOAD = Reply(400, "invalid_payload")
    GONE = Reply(410, "channel_is_archived")

    def __init__(self, token: str = "xoxb-test-token", channel: str = "C0ALERTS") -> None:
        super().__init__()
        self.hook_path = "/services/T0000TEST/B0000TEST/s3cr3tHookPart"
        self.token = token
        self.channel = channel
        self._ts = 0

    @property
    def webhook_url(self) -> str:
        return self.base_url + self.hook_path

    @property
    def api_url(self) -> str:
        return self.base_url + "/api/chat.postMessage"

    @property
    def messages(self) -> list[Any]:
        """Payloads Slack would have posted (accepted ones only)."""
        return [r.json() for r in self.requests if self._accepted(r)]

    def _accepted(self, r: Received) -> bool:
        if r.reply.status != 200:
            return False
        return r.reply.body == "ok" or json.loads(r.reply.body).get("ok") is True

    def answer(self, method: str, path: str, headers: dict[str, str], body: bytes) -> Reply:
        try:
            payload = json.loads(body)
        except ValueError:
            payload = None
        if path == "/api/chat.postMessage":
            return self._api(headers, payload)
        if path != self.hook_path:
            return self.NO_SERVICE
        problem = slack_block_problem(payload)
        return Reply(400, problem) if problem else Reply()

    def _api(self, headers: dict[str, str], payload: Any) -> Reply:
        if headers.get("authorization") != f"Bearer {self.token}":
            return Reply.json({"ok": False, "error": "invalid_auth"})
        problem = slack_block_problem(payload)
        if problem:
            return Reply.json({"ok": False, "error": problem})
        if payload.get("channel") != self.channel:
            return Reply.json({"ok": False, "error": "channel_not_found"})
        with self._lock:
            self._ts += 1
            ts = f"1764000000.{self._ts:06d}"
        return Reply.json({"ok": True, "channel": self.channel, "ts": ts})


# ------------------------------------------------------------------------------------------ Webhook


class WebhookReceiver(HttpReceiver):
    """Accepts POSTs with 200. With a `secret` it checks X-Monitor-Signature over the exact body and
    the timestamp's freshness as docs/webhook.md tells receivers to, and answers 401 if wrong."""

    def __init__(self, secret: str | None = None, tolerance: float = 300.0) -> None:
        super().__init__()
        self.secret = secret
        self.tolerance = tolerance

    @property
    def url(self) -> str:
        return self.base_url + "/hooks/alerts"

    @property
    def payloads(self) -> list[Any]:
        return [r.json() for r in self.requests if r.reply.status == 200]

    def answer(self, method: str, path: str, headers: dict[str, str], body: bytes) -> Reply:
        if self.secret is not None and not self._verify(headers, body):
            return Reply(401, "bad signature")
        return Reply()

    def _verify(self, headers: dict[str, str], body: bytes) -> bool | None:
        if self.secret is None:
            return None
        expected = "sha256=" + hmac.new(self.secret.encode(), body, hashlib.sha256).hexdigest()
        given = headers.get("x-monitor-signature", "")
        try:
            stamp = int(headers.get("x-monitor-timestamp", ""))
            sent_at = json.loads(body).get("sent_at")
        except (ValueError, AttributeError):
            return False
        fresh = abs(time.time() - stamp) <= self.tolerance and sent_at == stamp
        return hmac.compare_digest(expected, given) and fresh


# --------------------------------------------------------------------------------------------- SMTP

Security = Literal["starttls", "ssl", "none"]


@dataclass(frozen=True)
class ReceivedMail:
    mail_from: str
    rcpt_tos: tuple[str, ...]
    data: bytes
    connection: int  # which SMTP connection carried it, numbered from 0
    authenticated_as: str | None
    tls: bool

    @property
    def message(self) -> EmailMessage:
        parsed = email.message_from_bytes(self.data, policy=default_policy)
        assert isinstance(parsed, EmailMessage)
        return parsed


@dataclass
class _SmtpState:
    mails: list[ReceivedMail] = field(default_factory=list)
    connections: list[object] = field(default_factory=list)
    rcpt_replies: deque[str] = field(default_factory=deque)
    data_replies: deque[str] = field(default_factory=deque)
    auth_failures: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


def _is_tls(server: SMTP) -> bool:
    # Covers both STARTTLS and implicit TLS (aiosmtpd's session.ssl only knows STARTTLS).
    transport = server.transport
    return transport is not None and transport.get_extra_info("ssl_object") is not None


class _Handler:
    def __init__(self, state: _SmtpState) -> None:
        self.state = state

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        with self.state.lock:
            scripted = self.state.rcpt_replies.popleft() if self.state.rcpt_replies else None
        if scripted:
            return scripted
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        with self.state.lock:
            scripted = self.state.data_replies.popleft() if self.state.data_replies else None
            if scripted:
                return scripted
            if not any(c is server for c in self.state.connections):
                self.state.connections.append(server)
            number = next(i for i, c in enumerate(self.state.connections) if c is server)
            content = envelope.original_content or envelope.content or b""
            assert isinstance(content, bytes)
            user = session.auth_data if session.authenticated else None
            self.state.mails.append(
                ReceivedMail(
                    mail_from=str(envelope.mail_from),
                    rcpt_tos=tuple(envelope.rcpt_tos),
                    data=content,
                    connection=number,
                    authenticated_as=str(user) if user is not None else None,
                    tls=_is_tls(server),
                )
            )
        return "250 2.0.0 Message accepted for delivery"


class _Controller(Controller):
    def _trigger_server(self) -> None:
        # Port 0 lets the OS pick a free port; the trigger connection must use the real one.
        assert isinstance(self.server, asyncio.Server)
        self.port = self.server.sockets[0].getsockname()[1]
        super()._trigger_server()  # type: ignore[no-untyped-call]


class SmtpServer:
    """aiosmtpd on 127.0.0.1 with a trustme certificate for 127.0.0.1/localhost.

    security `starttls`: STARTTLS offered and required before MAIL; AUTH only after TLS.
    security `ssl`: implicit TLS from the first byte. `none`: plain SMTP.
    `users` {name: password} turns on AUTH (required before MAIL in starttls mode).
    Script failures with `fail_rcpt("550 5.1.1 no such user")` / `fail_data("451 4.3.0 later")`.
    """

    def __init__(
        self,
        folder: Path,
        security: Security = "starttls",
        users: dict[str, str] | None = None,
    ) -> None:
        self.security = security
        self.users = dict(users or {})
        self._state = _SmtpState()
        self.ca = trustme.CA()
        cert = self.ca.issue_cert(HOST, "localhost")
        self.ca_file = str(folder / "smtp-test-ca.pem")
        self.ca.cert_pem.write_to_path(self.ca_file)
        server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        cert.configure_cert(server_ctx)
        self._controller = self._make_controller(server_ctx)
        self.host = HOST

    def _make_controller(self, server_ctx: ssl.SSLContext) -> _Controller:
        kwargs: dict[str, Any] = {"hostname": HOST, "port": 0, "server_hostname": "smtp.test"}
        if self.users:
            kwargs["authenticator"] = self._authenticate
        if self.security == "starttls":
            kwargs.update(tls_context=server_ctx, require_starttls=True, auth_require_tls=True)
            kwargs["auth_required"] = bool(self.users)
        elif self.security == "ssl":
            # Implicit TLS is invisible to aiosmtpd's "is this TLS?" check, so it must not insist.
            kwargs.update(ssl_context=server_ctx, auth_require_tls=False)
        else:
            kwargs.update(auth_require_tls=False)
        return _Controller(_Handler(self._state), **kwargs)

    def _authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any
    ) -> AuthResult:
        if isinstance(data, LoginPassword):
            user, password = data.login.decode(), data.password.decode()
            if self.users.get(user) == password:
                return AuthResult(success=True, auth_data=user)
        with self._state.lock:
            self._state.auth_failures += 1
        return AuthResult(success=False, handled=False)

    @property
    def port(self) -> int:
        port: int = self._controller.port
        return port

    @property
    def mails(self) -> list[ReceivedMail]:
        with self._state.lock:
            return list(self._state.mails)

    @property
    def auth_failures(self) -> int:
        return self._state.auth_failures

    def fail_rcpt(self, *replies: str) -> None:
        with self._state.lock:
            self._state.rcpt_replies.extend(replies)

    def fail_data(self, *replies: str) -> None:
        with self._state.lock:
            self._state.data_replies.extend(replies)

    def __enter__(self) -> Self:
        self._controller.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._controller.stop()


__all__ = [
    "HOST",
    "HttpReceiver",
    "Received",
    "ReceivedMail",
    "Reply",
    "SlackStandIn",
    "SmtpServer",
    "WebhookReceiver",
    "closed_port",
    "slack_block_problem",
]
