"""A real HTTP server on 127.0.0.1 for fetch, pipeline and end-to-end tests.

It runs in its own threads (so it serves async tests and `monitor` subprocesses alike) and answers
whatever routes a test registers (`from tests.monitor.feedserver import FeedServer`):

    with FeedServer() as server:
        server.route("/feed.xml", rss, etag='"v1"', last_modified="Wed, 01 Jan 2025 10:00:00 GMT")
        server.route("/old", status=301, redirect="/feed.xml")
        server.route("/slow", body=rss, trickle=0.05)        # one byte every 50 ms
        server.route("/hang", hang=True)                     # accepts, never answers
        server.route("/huge", stream=2 * 1024**3)            # 2 GB of filler, produced on the fly
        url = server.url("/feed.xml")
        ...
        assert server.hits("/feed.xml") == 2
        assert server.requests("/feed.xml")[1].headers["if-none-match"] == '"v1"'

Routes can be replaced at any time (`route` again), e.g. to change a feed between two polls. Unknown
paths answer 404. Everything stops, including hanging and trickling answers, when the block exits.
"""

from __future__ import annotations

import contextlib
import gzip as gzip_module
import socket
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

_FILLER = b"<!-- filler -->\n" * 4096  # 64 KiB


@dataclass(frozen=True)
class Route:
    body: bytes = b""
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str | None = "application/rss+xml; charset=utf-8"
    etag: str | None = None
    last_modified: str | None = None
    redirect: str | None = None
    gzip: bool = False
    delay: float = 0.0
    trickle: float | None = None
    hang: bool = False
    stream: int | None = None
    content_length: bool = True


@dataclass(frozen=True)
class SeenRequest:
    method: str
    path: str  # with its query string
    headers: dict[str, str]  # lower-cased names


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True
    owner: FeedServer


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        pass  # keep test output clean

    def setup(self) -> None:
        super().setup()
        self.server.owner._track(self.connection, True)

    def finish(self) -> None:
        self.server.owner._track(self.connection, False)
        super().finish()

    def do_GET(self) -> None:
        self.server.owner._handle(self)

    def do_HEAD(self) -> None:
        self.server.owner._handle(self)


class FeedServer:
    """Context manager; see the module docstring."""

    def __init__(self) -> None:
        self._routes: dict[str, Route] = {}
        self._seen: dict[str, list[SeenRequest]] = defaultdict(list)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.owner = self
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.05,), daemon=True
        )
        self._connections: set[socket.socket] = set()
        self._in_flight = 0
        self._max_in_flight = 0
        self._opened = 0

    # -- public API ------------------------------------------------------------------------------
    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def url(self, path: str) -> str:
        return self.base_url + path

    def route(
        self,
        path: str,
        body: bytes | str = b"",
        *,
        status: int | None = None,
        headers: dict[str, str] | None = None,
        content_type: str | None = "application/rss+xml; charset=utf-8",
        etag: str | None = None,
        last_modified: str | None = None,
        redirect: str | None = None,
        gzip: bool = False,
        delay: float = 0.0,
        trickle: float | None = None,
        hang: bool = False,
        stream: int | None = None,
        content_length: bool = True,
    ) -> None:
        """Register (or replace) what `path` answers.

        body: sent as is (str is UTF-8 encoded); `gzip=True` compresses it, with Content-Encoding.
        status: default 200, or 302 when `redirect` (a path or absolute URL for Location) is given.
        etag / last_modified: sent as headers; a request whose If-None-Match equals the ETag, or
            whose If-Modified-Since equals Last-Modified, gets 304 Not Modified.
        delay: seconds to wait before answering. trickle: seconds between single body bytes.
        hang: accept the request and never answer. stream: send this many filler bytes (generated,
            not held in memory) instead of `body`. content_length=False: send the body chunked, with
            no announced length.
        """
        data = body.encode("utf-8") if isinstance(body, str) else body
        code = status if status is not None else (302 if redirect else 200)
        route = Route(data, code, dict(headers or {}), content_type, etag, last_modified, redirect,
                      gzip, delay, trickle, hang, stream, content_length)  # fmt: skip
        with self._lock:
            self._routes[path] = route

    def hits(self, path: str) -> int:
        """How many requests reached `path` (query strings ignored)."""
        return len(self.requests(path))

    def requests(self, path: str) -> list[SeenRequest]:
        with self._lock:
            return list(self._seen.get(path, ()))

    @property
    def max_in_flight(self) -> int:
        """The most requests this server was answering at the same time."""
        with self._lock:
            return self._max_in_flight

    @property
    def connections_opened(self) -> int:
        """How many connections clients have opened to this server (keep-alive reuses one)."""
        with self._lock:
            return self._opened

    @property
    def open_connections(self) -> int:
        """How many connections are open now (idle keep-alive ones included)."""
        with self._lock:
            return len(self._connections)

    # -- lifecycle -------------------------------------------------------------------------------
    def __enter__(self) -> FeedServer:
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
        self._stop.set()
        self._server.shutdown()
        with self._lock:
            connections = list(self._connections)
        for conn in connections:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        self._server.server_close()
        self._thread.join(timeout=5)

    # -- serving ---------------------------------------------------------------------------------
    def _handle(self, handler: _Handler) -> None:
        path = handler.path.split("?", 1)[0]
        seen = SeenRequest(
            handler.command, handler.path, {k.lower(): v for k, v in handler.headers.items()}
        )
        with self._lock:
            self._seen[path].append(seen)
            route = self._routes.get(path)
            self._in_flight += 1
            self._max_in_flight = max(self._max_in_flight, self._in_flight)
        try:
            self._answer(handler, route, seen)
        except OSError:  # the client went away (broken pipe, reset): what some tests are about
            handler.close_connection = True
        finally:
            with self._lock:
                self._in_flight -= 1

    def _track(self, connection: socket.socket, add: bool) -> None:
        with self._lock:
            if add:
                self._connections.add(connection)
                self._opened += 1
            else:
                self._connections.discard(connection)

    def _wait(self, seconds: float) -> bool:
        """Sleep unless the server is stopping; True when it is."""
        return self._stop.wait(seconds)

    def _answer(self, handler: _Handler, route: Route | None, seen: SeenRequest) -> None:
        if route is None:
            self._send_simple(handler, 404, b"not found\n")
            return
        if route.hang:
            self._wait(3600)
            handler.close_connection = True
            return
        if route.delay and self._wait(route.delay):
            return
        if self._not_modified(route, seen):
            self._send_head(handler, 304, route, None)
            return
        if route.stream is not None:
            self._send_stream(handler, route)
            return
        body = gzip_module.compress(route.body) if route.gzip else route.body
        self._send_head(handler, route.status, route, len(body) if route.content_length else None)
        if handler.command == "HEAD":
            return
        self._send_body(handler, route, body)

    @staticmethod
    def _not_modified(route: Route, seen: SeenRequest) -> bool:
        inm = seen.headers.get("if-none-match")
        ims = seen.headers.get("if-modified-since")
        if route.etag is not None and inm is not None:
            return inm == route.etag
        return route.last_modified is not None and ims == route.last_modified

    def _send_head(self, handler: _Handler, status: int, route: Route, length: int | None) -> None:
        handler.send_response(status)
        if route.content_type and status != 304:
            handler.send_header("Content-Type", route.content_type)
        if route.etag:
            handler.send_header("ETag", route.etag)
        if route.last_modified:
            handler.send_header("Last-Modified", route.last_modified)
        if route.redirect and status in (301, 302, 303, 307, 308):
            handler.send_header("Location", route.redirect)
        if route.gzip:
            handler.send_header("Content-Encoding", "gzip")
        for name, value in route.headers.items():
            handler.send_header(name, value)
        if status == 304:
            pass
        elif length is None:
            handler.send_header("Transfer-Encoding", "chunked")
        else:
            handler.send_header("Content-Length", str(length))
        handler.end_headers()

    def _send_body(self, handler: _Handler, route: Route, body: bytes) -> None:
        chunked = not route.content_length
        if route.trickle is None:
            self._write(handler, body, chunked)
        else:
            for i in range(len(body)):
                if self._wait(route.trickle):
                    return
                self._write(handler, body[i : i + 1], chunked)
        if chunked:
            handler.wfile.write(b"0\r\n\r\n")

    @staticmethod
    def _write(handler: _Handler, data: bytes, chunked: bool) -> None:
        if chunked:
            handler.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        else:
            handler.wfile.write(data)
        handler.wfile.flush()

    def _send_stream(self, handler: _Handler, route: Route) -> None:
        total = route.stream or 0
        self._send_head(handler, route.status, route, total if route.content_length else None)
        sent = 0
        while sent < total and not self._stop.is_set():
            piece = _FILLER[: min(len(_FILLER), total - sent)]
            self._write(handler, piece, not route.content_length)
            sent += len(piece)
        if not route.content_length:
            handler.wfile.write(b"0\r\n\r\n")

    @staticmethod
    def _send_simple(handler: _Handler, status: int, body: bytes) -> None:
        handler.send_response(status)
        handler.send_header("Content-Type", "text/plain")
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)


def wait_until(predicate: Callable[[], bool], timeout: float = 5.0) -> bool:
    """Poll `predicate` until true (server-side effects may land just after a client returns)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.01)
    return bool(predicate())


__all__ = ["FeedServer", "Route", "SeenRequest", "wait_until"]
