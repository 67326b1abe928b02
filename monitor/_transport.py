"""The connection pool under the Fetcher's httpx client: aiohttp's by default, or httpx's own.

httpx's async pool is CPU-bound under concurrency (DESIGN §8, encode/httpx#3215); the same httpx
API over aiohttp's pool, through `httpx-aiohttp`'s `AiohttpTransport`, costs a fraction of that:
0.7-0.9 ms of CPU per request against 12-16 ms, with 100 in flight on loopback. The setting
`polling.http_client: httpx` goes back to httpx's pool, should aiohttp misbehave with some server.

Both clients honour the environment as httpx does, because httpx decides it for both:
HTTP(S)_PROXY/ALL_PROXY/NO_PROXY become httpx mounts (one transport per proxy, each built by the
hooks of `AiohttpClient`), SSL_CERT_FILE/SSL_CERT_DIR the CA bundle. aiohttp's own `trust_env` is
left off: it would resolve proxies and ~/.netrc again, on two worker threads, for every request,
and send netrc credentials to feed hosts, which httpx never does.

aiohttp's parser (llhttp) is stricter than httpx's (h11) about a response's head: bytes after a
body-less 304 in the same packet, more than 128 header lines, or one over 8 KiB fail the whole
response. Such an answer is asked again through httpx's pool (`_Transport`), so a feed that httpx
reads still reads, and one it refuses fails with the same kind as before.

Transport failures surface as the crude httpx exceptions `httpx_aiohttp` maps aiohttp's onto, with
aiohttp's own as `__cause__`; `monitor._fetch_kinds.classify` sorts them by that cause.

The Fetcher sends its requests through `monitor._feedclient`, which skips httpx when it can.
"""

from __future__ import annotations

import ssl
import sys
from collections import deque
from typing import Any, get_args

import aiohttp
import httpx
from aiohttp.client_proto import ResponseHandler
from aiohttp.client_reqrep import ConnectionKey
from aiohttp.http import HttpProcessingError
from httpx_aiohttp import AiohttpTransport

from monitor._config_model import HttpClient

HTTP_CLIENTS: tuple[HttpClient, ...] = get_args(HttpClient)

# httpx's keep-alive expiry, so that both pools keep idle connections alike.
KEEPALIVE_SECONDS = 5.0
DNS_CACHE_SECONDS = 300
_HTTPX_LIMITS = httpx.Limits(max_connections=100, max_keepalive_connections=20)  # httpx's defaults
# CPython fixed SSL transports leaking on close in 3.12.8/3.13.1 (cpython#118960); aiohttp warns
# when asked to clean them up on a fixed version.
_CLEANUP_CLOSED = sys.version_info < (3, 12, 8) or (3, 13, 0) <= sys.version_info < (3, 13, 1)
# A request extension telling `_Transport` to skip aiohttp: llhttp has refused the answer already.
H11_ONLY = "monitor.h11_only"


def open_client(
    http_client: HttpClient,
    *,
    concurrency: int,
    transport: httpx.AsyncBaseTransport | None = None,
    timeout: httpx.Timeout,
    headers: dict[str, str],
) -> httpx.AsyncClient:
    """The Fetcher's client. A `transport` (tests, benchmarks) replaces the pool and, as always
    in httpx, the environment's proxies."""
    # max_connections equal to the fetches in flight: httpx's pool costs far more CPU when it is
    # larger than the work (DESIGN §8).
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    kind = httpx.AsyncClient if http_client == "httpx" else AiohttpClient
    return kind(
        transport=transport,
        limits=limits,
        timeout=timeout,
        follow_redirects=False,
        headers=headers,
    )


class AiohttpClient(httpx.AsyncClient):
    """httpx's client with aiohttp pools where httpx would make its own: the direct one and one
    per environment proxy. httpx itself decides which requests go through which proxy. `direct`:
    the pool of requests without a proxy (None when a transport was injected); `proxied`: whether
    the environment names any proxy."""

    direct: _Transport | None = None
    proxied = False

    def _init_transport(
        self,
        verify: ssl.SSLContext | str | bool = True,
        cert: Any = None,
        trust_env: bool = True,
        http1: bool = True,
        http2: bool = False,
        limits: httpx.Limits = _HTTPX_LIMITS,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> httpx.AsyncBaseTransport:
        if transport is not None:
            return transport
        context = httpx.create_ssl_context(verify=verify, trust_env=trust_env)
        self.direct = _Transport(limits, context)
        return self.direct

    def _init_proxy_transport(
        self,
        proxy: httpx.Proxy,
        verify: ssl.SSLContext | str | bool = True,
        cert: Any = None,
        trust_env: bool = True,
        http1: bool = True,
        http2: bool = False,
        limits: httpx.Limits = _HTTPX_LIMITS,
    ) -> httpx.AsyncBaseTransport:
        self.proxied = True
        context = httpx.create_ssl_context(verify=verify, trust_env=trust_env)
        return _Transport(limits, context, proxy)


class _Connector(aiohttp.TCPConnector):
    """aiohttp's pool bounds the connections in use (`limit`), not the idle ones: with thousands
    of one-off feed hosts, each fetch of the last keep-alive period would hold a socket, past the
    1,024 files a systemd service may open. As httpx's `max_keepalive_connections` does, keep at
    most `limit` idle and close the longest idle first. (`_conns` is aiohttp's idle pool, oldest
    first per host; tests/monitor/test_transport.py checks the bound.)

    The longest idle is found in O(1): `_released` lists idle entries in the order they were
    released, and an entry still idle is at the head of its host's queue (aiohttp appends there
    and reuses from the front); entries reused or expired since are skipped on the way."""

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self._released: deque[tuple[ConnectionKey, ResponseHandler, float]] = deque()

    def _release(
        self, key: ConnectionKey, protocol: ResponseHandler, *, should_close: bool = False
    ) -> None:
        super()._release(key, protocol, should_close=should_close)
        idle = self._conns
        queue = idle.get(key)
        if queue and queue[-1][0] is protocol:
            self._released.append((key, protocol, queue[-1][1]))
        if not self._limit or len(self._released) <= self._limit:
            return
        # Summing per host is C-speed and at most `limit` + 1 hosts long (3 us for 200).
        over = sum(map(len, idle.values())) - self._limit
        while over > 0 and self._released:
            oldest, proto, at = self._released.popleft()
            queue = idle.get(oldest)
            if not queue or queue[0][0] is not proto or queue[0][1] != at:
                continue  # reused, expired or closed since
            queue.popleft()
            if not queue:
                del idle[oldest]
            over -= 1
            transport = proto.transport
            proto.close()
            if oldest.is_ssl and not self._cleanup_closed_disabled:  # as aiohttp's own cleanup
                self._cleanup_closed_transports.append(transport)
        if len(self._released) > 4 * self._limit:  # mostly entries reused since: start afresh
            entries = [(key, p, at) for key, queue in idle.items() for p, at in queue]
            self._released = deque(sorted(entries, key=lambda entry: entry[2]))


class _Transport(AiohttpTransport):
    """One aiohttp pool, its session made on first use (inside the running loop); and httpx's
    pool, made when first needed, for the answers llhttp refuses to parse (module docstring)."""

    def __init__(
        self, limits: httpx.Limits, context: ssl.SSLContext, proxy: httpx.Proxy | None = None
    ) -> None:
        super().__init__(verify=context, proxy=proxy, limits=limits, client=self._new_session)
        self._context = context
        self._h11: httpx.AsyncHTTPTransport | None = None

    def session(self) -> aiohttp.ClientSession:
        """aiohttp's session, made on first use, as `AiohttpTransport` makes it."""
        if not isinstance(self.client, aiohttp.ClientSession):
            self.client = self.get_client()
        return self.client

    def _new_session(self) -> aiohttp.ClientSession:
        connector = _Connector(
            limit=self.limits.max_connections or 0,
            limit_per_host=0,  # the Fetcher's per-host slots decide
            ssl=self._context,
            ttl_dns_cache=DNS_CACHE_SECONDS,
            keepalive_timeout=KEEPALIVE_SECONDS,
            enable_cleanup_closed=_CLEANUP_CLOSED,
        )
        return aiohttp.ClientSession(
            connector=connector,
            cookie_jar=aiohttp.DummyCookieJar(),  # httpx's client owns cookies
            auto_decompress=False,  # monitor._decode decodes, under the size cap
            trust_env=False,  # httpx has read the environment (module docstring)
        )

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.userinfo:
            # httpx has made them an Authorization header already, and aiohttp refuses a request
            # with both. httpx's response still names the caller's request, credentials and all.
            request = httpx.Request(
                request.method,
                request.url.copy_with(userinfo=b""),
                headers=request.headers,
                extensions=request.extensions,
            )
        if not request.extensions.get(H11_ONLY):
            try:
                return await super().handle_async_request(request)
            except aiohttp.ClientResponseError as exc:
                if not refused_head(exc):
                    raise
        # A response head llhttp refused: ask again, and let h11 judge it (module docstring).
        if self._h11 is None:
            self._h11 = httpx.AsyncHTTPTransport(
                verify=self._context, limits=self.limits, proxy=self.proxy
            )
        return await self._h11.handle_async_request(request)

    async def aclose(self) -> None:
        await super().aclose()
        if self._h11 is not None:
            await self._h11.aclose()


def refused_head(exc: aiohttp.ClientResponseError) -> bool:
    """Whether llhttp refused the response's head (one that h11 may still read)."""
    return isinstance(exc.__cause__, HttpProcessingError)


__all__ = [
    "DNS_CACHE_SECONDS",
    "H11_ONLY",
    "HTTP_CLIENTS",
    "KEEPALIVE_SECONDS",
    "AiohttpClient",
    "HttpClient",
    "open_client",
    "refused_head",
]
