"""Conditional GET of one feed, with every failure sorted into a stable kind (`FetchError.kind`).

Redirects are followed here, hop by hop, rather than by httpx (`follow_redirects=False`), because:
- the caller needs to know when a chain *started* with a permanent redirect (301/308), to update
  the source's URL, which httpx's history does not summarise;
- loops and over-long chains must become the stable kind `redirect_loop`, with no URL secrets in
  the detail;
- each hop takes the per-host slot of the host it talks to, so a feed host that redirects to a
  shared CDN host cannot multiply the load on that CDN;
- only http(s) targets are followed, and the conditional-GET validators go along to every hop,
  since the ETag we hold came from the end of the chain.

Status codes and transport exceptions become failure kinds in `monitor._fetch_kinds`, and only
there. Bodies are read raw and decoded by `monitor._decode`, so that the `max_bytes` cap applies to
the decoded size with bounded memory (gzip bombs), and the whole fetch runs under one deadline
(`timeout`) that also stops servers trickling bytes just fast enough to defeat a read timeout.

Politeness (`monitor._pacing`): requests we start to one host are at least `min_spacing` apart, on
top of the per-host and global slots; a host that answers 429/503 with Retry-After is paused, and
every request to it until then fails at once with `RateLimited`, without being sent.

The request, result and deadline of a fetch live in `monitor._fetch_values`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import replace
from types import TracebackType
from typing import Literal

import httpx

from monitor._decode import ACCEPT_ENCODING, read_body
from monitor._feedclient import FeedClient, Reply
from monitor._fetch_kinds import (
    RateLimited,
    classify,
    max_age_seconds,
    retry_after_seconds,
    safe_url,
    status_error,
)
from monitor._fetch_values import (
    Deadline,
    FetchRequest,
    FetchResult,
    Redirect,
    header_value,
    host_key,
    parse_url,
)
from monitor._pacing import MIN_SPACING, HostPacer, Monotonic, Slots
from monitor._transport import HttpClient
from monitor.errors import FetchError

MAX_REDIRECTS = 5
Admit = Callable[[], Awaitable[None]]
ACCEPT = (
    "application/rss+xml, application/atom+xml, application/feed+json, application/rdf+xml;q=0.9, "
    "application/xml;q=0.9, text/xml;q=0.9, application/json;q=0.8, */*;q=0.5"
)
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_PERMANENT = frozenset({301, 308})


class Fetcher:
    """Owns one `FeedClient` (httpx's client, and aiohttp's session under it); use as an async
    context manager. `http_client`: whose connection pool it runs on (`monitor._transport`),
    unless `transport` is given; `min_spacing`: seconds between two requests started to one host;
    `monotonic`: the pacer's clock (tests pass their own); `idle_connections`: how many idle
    connections aiohttp's pool keeps (default `monitor._transport.idle_budget`)."""

    def __init__(
        self,
        *,
        timeout: float,
        max_bytes: int,
        user_agent: str,
        concurrency: int = 32,
        per_host: int = 2,
        connect_timeout: float | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        http_client: HttpClient = "aiohttp",
        min_spacing: float = MIN_SPACING,
        monotonic: Monotonic | None = None,
        idle_connections: int | None = None,
    ) -> None:
        self._timeout = timeout
        self._idle = idle_connections
        self._max_bytes = max_bytes
        self._per_host = per_host
        self._concurrency = concurrency
        self._headers = {
            "User-Agent": user_agent,
            "Accept": ACCEPT,
            "Accept-Encoding": ACCEPT_ENCODING,
        }
        self._httpx_timeout = httpx.Timeout(timeout, connect=connect_timeout or timeout)
        self._transport = transport
        self._http_client: HttpClient = http_client
        self._client: FeedClient | None = None
        self._slots = Slots(concurrency)
        self._hosts: dict[str, tuple[Slots, list[int]]] = {}
        self.pacer = HostPacer(min_spacing, clock=monotonic or time.monotonic)

    async def __aenter__(self) -> Fetcher:
        self._client = FeedClient(
            self._http_client,
            concurrency=self._concurrency,
            idle=self._idle,
            transport=self._transport,
            timeout=self._httpx_timeout,
            headers=self._headers,
        )
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def fetch(self, req: FetchRequest, *, admit: Admit | None = None) -> FetchResult:
        """Fetch `req.url`; raises FetchError(kind, detail, retry_after) on every failure.

        `admit`, when given, is awaited once the fetch holds its host's slot and before it waits
        for the host's pace: the caller's own limit on fetches under way, which a fetch queued
        behind a busy host should not hold."""
        if self._client is None:
            raise RuntimeError("Fetcher used outside 'async with'")
        clock = Deadline(self._timeout)
        try:
            result = await self._follow(req, clock, admit)
        except Exception as exc:
            raise classify(exc, req.url) from None
        return replace(result, elapsed=clock.elapsed())

    async def _follow(self, req: FetchRequest, clock: Deadline, admit: Admit | None) -> FetchResult:
        url = parse_url(req.url)
        seen = {str(url)}
        permanent: str | None = None
        leading_permanent = True
        held: str | None = None  # the host whose slot this fetch holds
        visited: set[str] = set()
        async with AsyncExitStack() as turn:
            for _ in range(MAX_REDIRECTS + 1):
                key = host_key(url)
                if key != held:
                    await self._take_turn(turn, key, visited, admit)
                    held, admit = key, None
                else:
                    self._check_pause(key)
                outcome = await self._hop(url, req, clock, key)
                if isinstance(outcome, FetchResult):
                    if permanent is None:
                        return outcome
                    return replace(outcome, permanent_redirect=permanent)
                url, permanent, leading_permanent = self._redirected(
                    url, outcome, seen, permanent, leading_permanent
                )
        raise FetchError(
            "redirect_loop", f"more than {MAX_REDIRECTS} redirects from {safe_url(req.url)}"
        )

    @staticmethod
    def _redirected(
        url: httpx.URL, outcome: Redirect, seen: set[str], permanent: str | None, leading: bool
    ) -> tuple[httpx.URL, str | None, bool]:
        """The next hop of a chain, and the permanent target so far (the end of its leading run
        of 301/308 hops)."""
        target = url.join(outcome.location)
        if target.scheme not in ("http", "https"):
            raise FetchError("invalid_url", f"redirect from {safe_url(url)} to a non-HTTP URL")
        if leading and outcome.status_code in _PERMANENT:
            permanent = str(target)
        else:
            leading = False
        if str(target) in seen:
            raise FetchError("redirect_loop", f"redirect loop at {safe_url(target)}")
        seen.add(str(target))
        return target, permanent, leading

    async def _take_turn(
        self, turn: AsyncExitStack, key: str, visited: set[str], admit: Admit | None
    ) -> None:
        """Give back the previous host's slot, take this host's, and wait for its pace. Hops that
        stay on one host keep its slot: a same-host redirect never queues again behind fetches
        that have not started, and spends none of its deadline there."""
        await turn.aclose()
        await turn.enter_async_context(self._host_slot(key))
        if admit is not None:
            await admit()
        await self._pace(key, first_visit=key not in visited)
        visited.add(key)

    @asynccontextmanager
    async def _host_slot(self, key: str) -> AsyncIterator[None]:
        host = self._hosts.get(key)
        if host is None:
            host = self._hosts[key] = (Slots(self._per_host), [0])
        slots, users = host
        users[0] += 1
        try:
            async with slots:
                yield
        finally:
            users[0] -= 1
            if users[0] == 0:  # forget idle hosts: thousands of sources, most of them one-off
                self._hosts.pop(key, None)

    def _request_headers(self, req: FetchRequest) -> dict[str, str]:
        headers: dict[str, str] = {}
        if etag := header_value(req.etag):
            headers["If-None-Match"] = etag
        if modified := header_value(req.last_modified):
            headers["If-Modified-Since"] = modified
        return headers

    async def _hop(
        self, url: httpx.URL, req: FetchRequest, clock: Deadline, key: str
    ) -> FetchResult | Redirect:
        assert self._client is not None
        # Taken after the host's slot and pace: a fetch queued behind a busy or paced host must
        # not hold one of the global slots that fetches from other hosts could use.
        async with (
            self._slots,
            asyncio.timeout(clock.remaining()),
            self._client.get(url, self._request_headers(req)) as reply,
        ):
            return await self._answer(reply, url, req, key)

    async def _pace(self, key: str, *, first_visit: bool) -> None:
        """Wait for the host's next start slot. A redirect back to a host this fetch already paced
        for goes straight on: the server sent us there, now, as part of one answer."""
        self._check_pause(key)
        if not first_visit:
            return
        delay = self.pacer.reserve(key)
        if delay > 0:
            await asyncio.sleep(delay)
            self._check_pause(key)  # the host may have asked for a pause while we waited

    def _check_pause(self, key: str) -> None:
        running = self.pacer.paused(key)
        if running is not None:
            pause, left = running
            raise RateLimited(
                pause.kind,
                f"{pause.origin} asked us to wait: paused for {left:.0f} s more, not sent",
                left,
                pause.origin,
            )

    async def _answer(
        self, reply: Reply, url: httpx.URL, req: FetchRequest, key: str
    ) -> FetchResult | Redirect:
        code, headers = reply.status_code, reply.headers
        where = safe_url(url)
        if headers.get("cf-mitigated", "").lower() == "challenge":
            raise FetchError("blocked", f"HTTP {code}: a bot challenge from {where}")
        if code in _REDIRECTS:
            location = headers.get("location", "").strip()
            if not location:
                raise FetchError(f"http_{code}", f"HTTP {code} without Location from {where}")
            return Redirect(code, location)
        if code == 304:
            # Read the (empty) body, so that the connection is kept for the next request.
            await reply.drain()
            return self._result("not_modified", url, code, headers, req, body_hash=req.body_hash)
        if code >= 300 or code < 200:
            error = status_error(code, headers, where)
            if error.retry_after is None:
                raise error
            origin = str(url.copy_with(path="/", query=None, fragment=None, userinfo=b""))
            pause = self.pacer.pause(key, error.retry_after, kind=error.kind, origin=origin)
            raise RateLimited(error.kind, error.detail, error.retry_after, pause.origin)
        etag = headers.get("etag")
        if etag and etag == req.etag:
            return self._result("unchanged", url, code, headers, req, body_hash=req.body_hash)
        pieces, digest = await read_body(reply.raw(), reply.headers, where, self._max_bytes)
        if digest == req.body_hash:  # the body is never joined: most polls end here
            return self._result("unchanged", url, code, headers, req, body_hash=digest)
        body = b"".join(pieces)
        return self._result("ok", url, code, headers, req, body_hash=digest, body=body)

    @staticmethod
    def _result(
        status: Literal["ok", "not_modified", "unchanged"],
        url: httpx.URL,
        code: int,
        headers: dict[str, str],
        req: FetchRequest,
        *,
        body_hash: str | None,
        body: bytes = b"",
    ) -> FetchResult:
        keep = status != "ok"
        return FetchResult(
            status=status,
            url=str(url),
            status_code=code,
            body=body,
            headers=headers,
            etag=headers.get("etag") or (req.etag if keep else None),
            last_modified=headers.get("last-modified") or (req.last_modified if keep else None),
            body_hash=body_hash,
            permanent_redirect=None,
            max_age=max_age_seconds(headers.get("cache-control")),
            elapsed=0.0,
        )


__all__ = [
    "ACCEPT",
    "MAX_REDIRECTS",
    "Admit",
    "FetchRequest",
    "FetchResult",
    "Fetcher",
    "RateLimited",
    "classify",
    "host_key",
    "max_age_seconds",
    "retry_after_seconds",
    "safe_url",
]
