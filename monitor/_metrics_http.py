"""The HTTP endpoint of `monitor.metrics`: `/metrics` and `/healthz` on a minimal asyncio server.

Apart from the registry so each can be read alone: this half is about sockets, limits and
timeouts, the other about what is counted. It imports no prometheus_client: `Metrics.render`
does the exposition.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Any

from monitor.errors import ConfigError

if TYPE_CHECKING:
    from monitor.metrics import Metrics

# Named after the public module, so log lines and logging config stay as they were before the split.
log = logging.getLogger("monitor.metrics")

# prometheus_client's CONTENT_TYPE_PLAIN_0_0_4, spelled out so the server needs no import of it.
_EXPOSITION_TYPE = "text/plain; version=0.0.4; charset=utf-8"
_MAX_LINE = 8192  # request line or one header; Prometheus sends a few hundred bytes
_MAX_HEADERS = 100


class _BadRequest(Exception):
    def __init__(self, status: int, reason: str) -> None:
        self.status, self.reason = status, reason
        super().__init__(f"{status} {reason}")


@dataclass(frozen=True)
class _Response:
    status: int
    reason: str
    body: bytes
    content_type: str = "text/plain; charset=utf-8"
    extra: tuple[tuple[str, str], ...] = ()

    def encode(self, head_only: bool) -> bytes:
        lines = [
            f"HTTP/1.1 {self.status} {self.reason}",
            f"Content-Type: {self.content_type}",
            f"Content-Length: {len(self.body)}",
            "Cache-Control: no-store",
            "Connection: close",
            *(f"{k}: {v}" for k, v in self.extra),
        ]
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("ascii")
        return head if head_only else head + self.body


def split_address(address: str) -> tuple[str, int]:
    """`127.0.0.1:9108`, `localhost:9108`, `[::1]:9108` -> (host, port); port 0: any free port."""
    host, sep, port = address.rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if not sep or not host or not port.isdigit() or int(port) > 65535:
        raise ConfigError(f"metrics: expected host:port such as 127.0.0.1:9108, got {address!r}")
    return host, int(port)


async def _read_request(reader: asyncio.StreamReader) -> tuple[str, str] | None:
    """Read the request head; return (method, path), or None if the client sent nothing."""
    try:
        line = await reader.readline()
        if not line:
            return None
        for _ in range(_MAX_HEADERS):
            header = await reader.readline()
            if header in (b"\r\n", b"\n"):
                break
            if not header.endswith(b"\n"):
                raise _BadRequest(400, "Bad Request")
        else:
            raise _BadRequest(431, "Request Header Fields Too Large")
    except ValueError as exc:  # StreamReader's limit: a line longer than _MAX_LINE
        raise _BadRequest(431, "Request Header Fields Too Large") from exc
    parts = line.decode("latin-1").rstrip("\r\n").split(" ")
    if len(parts) != 3 or not parts[2].startswith("HTTP/1.") or not parts[1].startswith("/"):
        raise _BadRequest(400, "Bad Request")
    return parts[0], parts[1].partition("?")[0]


class MetricsServer:
    """Serves `/metrics` and `/healthz` with a minimal HTTP/1.1 server (one request per connection).

    `/healthz` answers 200 while the daemon's last `Metrics.heartbeat` is under `stale_after`
    seconds old, else 503. Before the first heartbeat the server's own start counts as one, so a
    daemon that is still starting is not reported dead.
    """

    def __init__(
        self,
        metrics: Metrics,
        address: str,
        *,
        stale_after: float = 120.0,
        clock: Callable[[], float] = time.time,
        read_timeout: float = 10.0,
    ) -> None:
        self._metrics = metrics
        self._address = address
        self._host, self._port = split_address(address)
        self._stale_after = stale_after
        self._clock = clock
        self._read_timeout = read_timeout
        self._server: asyncio.Server | None = None
        self._accepting = False
        self._started_at = 0.0
        self._connections: dict[asyncio.Task[Any], asyncio.StreamWriter] = {}

    @property
    def addresses(self) -> list[str]:
        """Every `host:port` actually listened on (`localhost` may give both 127.0.0.1 and ::1)."""
        if self._server is None:
            return []
        names = (sock.getsockname() for sock in self._server.sockets)
        return [f"[{n[0]}]:{n[1]}" if ":" in n[0] else f"{n[0]}:{n[1]}" for n in names]

    @property
    def port(self) -> int:
        """The bound port (the ephemeral one when the address says port 0)."""
        if self._server is None or not self._server.sockets:
            return self._port
        return int(self._server.sockets[0].getsockname()[1])

    async def start(self) -> None:
        if self._server is not None:
            raise RuntimeError("metrics server already started")
        self._accepting = True
        try:
            self._server = await asyncio.start_server(
                self._on_connect, self._host, self._port, limit=_MAX_LINE
            )
        except OSError as exc:
            self._accepting = False
            reason = exc.strerror or str(exc)
            raise ConfigError(f"metrics: cannot listen on {self._address}: {reason}") from exc
        self._started_at = self._clock()
        log.info("metrics on %s", ", ".join(f"http://{a}/metrics" for a in self.addresses))

    async def stop(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        self._accepting = False
        server.close()
        # Python 3.11's wait_closed() does not wait for open connections, and a connection task
        # that ends cancelled makes asyncio log an error: abort each transport, so its task ends.
        for writer in self._connections.values():
            writer.transport.abort()
        await asyncio.gather(*self._connections, return_exceptions=True)
        await server.wait_closed()

    async def __aenter__(self) -> MetricsServer:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    async def _on_connect(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if not self._accepting or task is None:  # accepted just before stop()
            writer.transport.abort()
            return
        self._connections[task] = writer
        try:
            async with asyncio.timeout(self._read_timeout):
                await self._exchange(reader, writer)
        except (TimeoutError, ConnectionError):
            pass  # a slow or vanished client is its own problem
        except Exception:
            log.exception("metrics: request failed")
        finally:
            del self._connections[task]
            writer.close()
            with suppress(ConnectionError):
                await writer.wait_closed()

    async def _exchange(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request = await _read_request(reader)
        except _BadRequest as bad:
            writer.write(
                _Response(bad.status, bad.reason, f"{bad.reason}\n".encode()).encode(False)
            )
        else:
            if request is None:
                return
            method, path = request
            try:
                response = await self._respond(method, path)
            except Exception:
                log.exception("metrics: cannot answer %s %s", method, path)
                response = _Response(500, "Internal Server Error", b"internal error\n")
            writer.write(response.encode(head_only=method == "HEAD"))
        await writer.drain()

    async def _respond(self, method: str, path: str) -> _Response:
        if path not in ("/metrics", "/healthz"):
            return _Response(404, "Not Found", b"not found: try /metrics or /healthz\n")
        if method not in ("GET", "HEAD"):
            return _Response(
                405, "Method Not Allowed", b"use GET\n", extra=(("Allow", "GET, HEAD"),)
            )
        if path == "/metrics":
            # 2,000 sources take about 0.1 s of CPU to render: do it off the event loop, so polls
            # and deliveries keep their timing.
            body = await asyncio.to_thread(self._metrics.render)
            return _Response(200, "OK", body, _EXPOSITION_TYPE)
        return self._health()

    def _health(self) -> _Response:
        last = self._metrics.last_tick
        age = self._clock() - (self._started_at if last is None else last)
        if age < self._stale_after:
            return _Response(200, "OK", b"ok\n")
        body = f"stale: last tick {age:.0f}s ago (limit {self._stale_after:.0f}s)\n".encode()
        return _Response(503, "Service Unavailable", body)


__all__ = ["MetricsServer", "split_address"]
