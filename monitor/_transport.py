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

import resource
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
# Idle connections aiohttp's pool may keep, at most (`idle_budget`).
MAX_IDLE = 2048
DNS_CACHE_SECONDS = 300
_HTTPX_LIMITS = httpx.Limits(max_connections=100, max_keepalive_connections=20)  # httpx's defaults
# CPython fixed SSL transports leaking on close in 3.12.8/3.13.1 (cpython#118960); aiohttp warns
# when asked to clean them up on a fixed version.
_CLEANUP_CLOSED = sys.version_info < (3, 12, 8) or (3, 13, 0) <= sys.version_info < (3, 13, 1)
# A request extension telling `_Transport` to skip aiohttp: llhttp has refused the answer already.
H11_ONLY = "monitor.h11_only"


def idle_budget(concurrency: int) -> int:
    """How many idle connections aiohttp's pool may keep for `concurrency` in use.

    One per host of a cycle is what saves connecting again: a site with several feeds is asked
    `min_spacing` apart, well within keep-alive, and a new connection costs more CPU than the
    request on it (fetch_bench: 2,000 connections a cycle for 1,000 hosts when only 200 were
    kept). Each is an open file, so they get half the soft open-files limit (1,024 by default,
    8,192 under our systemd unit), less those in use, and no more than `MAX_IDLE`; never fewer
    than `concurrency`, the bound before."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        soft = 2 * (MAX_IDLE + concurrency)
    return max(concurrency, min(MAX_IDLE, soft // 2 - concurrency))


def open_client(
    http_client: HttpClient,
    *,
    concurrency: int,
    idle: int | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
    timeout: httpx.Timeout,
    headers: dict[str, str],
) -> httpx.AsyncClient:
    """The Fetcher's client. A `transport` (tests, benchmarks) replaces the pool and, as always
    in httpx, the environment's proxies. `idle`: the idle connections aiohttp's pool keeps
    (default `idle_budget(concurrency)`); httpx's pool counts them within `concurrency`."""
    kind: type[httpx.AsyncClient]
    if http_client == "httpx":
        # max_connections equal to the fetches in flight: httpx's pool costs far more CPU when
        # it is larger than the work (DESIGN §8).
        kind, keep = httpx.AsyncClient, concurrency
    else:
        kind, keep = AiohttpClient, idle_budget(concurrency) if idle is None else idle
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=keep)
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
    open files a service may have. As httpx's `max_keepalive_connections` does, keep at most
    `idle_limit` idle (`idle_budget`) and close the longest idle first; and keep one per host
    (each costs ~10-18 KB of memory, and a host's next feed needs one). (`_conns` is aiohttp's
    idle pool, oldest first per host; tests/monitor/test_transport.py checks the bound.)

    `_released` lists idle entries in the order they were released (oldest first), entries
    reused, expired or closed since included: it is at least as long as the idle pool, so while
    it is within the cap, so is the pool (most releases stop there). Past the cap, `_trim` keeps
    the entries still idle and, if the pool is full, closes the longest idle down to 7/8 of the
    cap: a full pool is trimmed once per eighth of the cap, not at every release. Each trim is
    linear in the cap, so a release costs O(1) amortised whatever the number of hosts."""

    def __init__(self, *, idle_limit: int, **options: Any) -> None:
        super().__init__(**options)
        self._idle_limit = idle_limit
        self._released: deque[tuple[ConnectionKey, ResponseHandler, float]] = deque()

    def _release(
        self, key: ConnectionKey, protocol: ResponseHandler, *, should_close: bool = False
    ) -> None:
        super()._release(key, protocol, should_close=should_close)
        queue = self._conns.get(key)
        if queue and queue[-1][0] is protocol:
            while len(queue) > 1:  # one idle connection per host is enough for its next feed
                self._close_idle(key, queue.popleft()[0])
            self._released.append((key, protocol, queue[-1][1]))
            if len(self._released) > self._idle_limit:
                self._trim()

    def _trim(self) -> None:
        idle = self._conns  # a defaultdict: `get` adds no key
        live = deque(entry for entry in self._released if entry[1:] in idle.get(entry[0], ()))
        if len(live) > self._idle_limit:
            keep = self._idle_limit - self._idle_limit // 8
            while len(live) > keep:
                key, proto, at = live.popleft()
                queue = idle[key]
                queue.remove((proto, at))
                if not queue:
                    del idle[key]
                self._close_idle(key, proto)
        self._released = live

    def _close_idle(self, key: ConnectionKey, proto: ResponseHandler) -> None:
        """Close an idle connection taken out of the pool, as aiohttp's own cleanup does."""
        transport = proto.transport
        proto.close()
        if key.is_ssl and not self._cleanup_closed_disabled:
            self._cleanup_closed_transports.append(transport)


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
            idle_limit=self.limits.max_keepalive_connections or 0,
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
    "MAX_IDLE",
    "AiohttpClient",
    "HttpClient",
    "idle_budget",
    "open_client",
    "refused_head",
]
