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
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from types import TracebackType
from typing import Literal

import httpx

from monitor._decode import ACCEPT_ENCODING, decoder_for
from monitor._fetch_kinds import (
    classify,
    max_age_seconds,
    retry_after_seconds,
    safe_url,
    status_error,
)
from monitor.errors import FetchError

MAX_REDIRECTS = 5
ACCEPT = (
    "application/rss+xml, application/atom+xml, application/feed+json, application/rdf+xml;q=0.9, "
    "application/xml;q=0.9, text/xml;q=0.9, application/json;q=0.8, */*;q=0.5"
)
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_PERMANENT = frozenset({301, 308})


@dataclass(frozen=True)
class FetchRequest:
    source_id: str
    url: str
    etag: str | None = None
    last_modified: str | None = None
    body_hash: str | None = None


@dataclass(frozen=True)
class FetchResult:
    status: Literal[
        "ok", "not_modified", "unchanged"
    ]  # unchanged: 200 with same ETag or same body hash
    url: str  # final URL after redirects
    status_code: int
    body: bytes  # b"" unless status == "ok"
    headers: Mapping[str, str]  # lower-cased names; repeated headers joined with ", "
    # The validators to echo next time: the server's, verbatim; on 304/unchanged responses that omit
    # them, the request's own (so they are not lost).
    etag: str | None
    last_modified: str | None
    body_hash: str | None  # sha256 hex of the decoded body
    permanent_redirect: (
        str | None
    )  # where the leading run of 301/308 hops ended, if the chain had one
    max_age: float | None  # Cache-Control max-age seconds
    elapsed: float


class _Deadline:
    """One fetch's time budget. It starts when the first request is actually sent, so time spent
    queueing for a slot is not counted; later hops of a redirect chain spend what is left."""

    def __init__(self, timeout: float) -> None:
        self._timeout = timeout
        self._started: float | None = None

    def remaining(self) -> float:
        now = asyncio.get_running_loop().time()
        if self._started is None:
            self._started = now
        left = self._started + self._timeout - now
        if left <= 0:
            raise TimeoutError
        return left

    def elapsed(self) -> float:
        if self._started is None:
            return 0.0
        return asyncio.get_running_loop().time() - self._started


@dataclass(frozen=True)
class _Redirect:
    status_code: int
    location: str


def _header_value(value: str | None) -> str | None:
    # A validator is echoed verbatim, but one with control characters would corrupt our request.
    if not value or any(ord(c) < 32 or ord(c) == 127 for c in value):
        return None
    return value


class Fetcher:
    """Owns one httpx.AsyncClient; use as an async context manager."""

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
    ) -> None:
        self._timeout = timeout
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
        self._client: httpx.AsyncClient | None = None
        self._slots = asyncio.Semaphore(concurrency)
        self._hosts: dict[str, tuple[asyncio.Semaphore, list[int]]] = {}

    async def __aenter__(self) -> Fetcher:
        # max_connections equal to the fetches in flight: httpx's pool costs far more CPU when it is
        # larger than the work (DESIGN §8).
        limits = httpx.Limits(
            max_connections=self._concurrency, max_keepalive_connections=self._concurrency
        )
        transport = self._transport or httpx.AsyncHTTPTransport(limits=limits, retries=0)
        self._client = httpx.AsyncClient(
            transport=transport,
            timeout=self._httpx_timeout,
            follow_redirects=False,
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

    async def fetch(self, req: FetchRequest) -> FetchResult:
        """Fetch `req.url`; raises FetchError(kind, detail, retry_after) on every failure."""
        if self._client is None:
            raise RuntimeError("Fetcher used outside 'async with'")
        clock = _Deadline(self._timeout)
        try:
            result = await self._follow(req, clock)
        except Exception as exc:
            raise classify(exc, req.url) from None
        return replace(result, elapsed=clock.elapsed())

    async def _follow(self, req: FetchRequest, clock: _Deadline) -> FetchResult:
        url = httpx.URL(req.url)
        seen = {str(url)}
        permanent: str | None = None
        leading_permanent = True
        for _ in range(MAX_REDIRECTS + 1):
            outcome = await self._hop(url, req, clock)
            if isinstance(outcome, FetchResult):
                return replace(outcome, permanent_redirect=permanent)
            target = url.join(outcome.location)
            if target.scheme not in ("http", "https"):
                raise FetchError("invalid_url", f"redirect from {safe_url(url)} to a non-HTTP URL")
            if leading_permanent and outcome.status_code in _PERMANENT:
                permanent = str(target)
            else:
                leading_permanent = False
            if str(target) in seen:
                raise FetchError("redirect_loop", f"redirect loop at {safe_url(target)}")
            seen.add(str(target))
            url = target
        raise FetchError(
            "redirect_loop", f"more than {MAX_REDIRECTS} redirects from {safe_url(req.url)}"
        )

    @asynccontextmanager
    async def _host_slot(self, url: httpx.URL) -> AsyncIterator[None]:
        key = f"{url.host}:{url.port or url.scheme}"
        semaphore, users = self._hosts.setdefault(key, (asyncio.Semaphore(self._per_host), [0]))
        users[0] += 1
        try:
            async with semaphore:
                yield
        finally:
            users[0] -= 1
            if users[0] == 0:  # forget idle hosts: thousands of sources, most of them one-off
                self._hosts.pop(key, None)

    def _request_headers(self, req: FetchRequest) -> dict[str, str]:
        headers: dict[str, str] = {}
        if etag := _header_value(req.etag):
            headers["If-None-Match"] = etag
        if modified := _header_value(req.last_modified):
            headers["If-Modified-Since"] = modified
        return headers

    async def _hop(
        self, url: httpx.URL, req: FetchRequest, clock: _Deadline
    ) -> FetchResult | _Redirect:
        assert self._client is not None
        # The host's slot first, then a global one: a fetch queued behind a busy host must not hold
        # one of the global slots that fetches from other hosts could use.
        async with (
            self._host_slot(url),
            self._slots,
            asyncio.timeout(clock.remaining()),
            self._client.stream("GET", url, headers=self._request_headers(req)) as response,
        ):
            return await self._answer(response, req)

    async def _answer(self, response: httpx.Response, req: FetchRequest) -> FetchResult | _Redirect:
        code = response.status_code
        headers = {k.lower(): v for k, v in response.headers.items()}
        where = safe_url(response.url)
        if headers.get("cf-mitigated", "").lower() == "challenge":
            raise FetchError("blocked", f"HTTP {code}: a bot challenge from {where}")
        if code in _REDIRECTS:
            location = headers.get("location", "").strip()
            if not location:
                raise FetchError(f"http_{code}", f"HTTP {code} without Location from {where}")
            return _Redirect(code, location)
        if code == 304:
            return self._result("not_modified", response, headers, req, body_hash=req.body_hash)
        if code >= 300 or code < 200:
            raise status_error(code, headers, where)
        etag = headers.get("etag")
        if etag and etag == req.etag:
            return self._result("unchanged", response, headers, req, body_hash=req.body_hash)
        body = await self._read_body(response, where)
        digest = hashlib.sha256(body).hexdigest()
        if digest == req.body_hash:
            return self._result("unchanged", response, headers, req, body_hash=digest)
        return self._result("ok", response, headers, req, body_hash=digest, body=body)

    async def _read_body(self, response: httpx.Response, where: str) -> bytes:
        limit = self._max_bytes
        declared = response.headers.get("content-length", "")
        if (
            not response.headers.get("content-encoding")
            and declared.isdigit()
            and int(declared) > limit
        ):
            raise FetchError("too_large", f"{declared} bytes announced by {where}, limit {limit}")
        decoder = decoder_for(response.headers.get("content-encoding"))
        body = bytearray()
        async for chunk in response.aiter_raw():
            self._extend(body, decoder.feed(chunk), where)
        self._extend(body, decoder.finish(), where)
        if not body.strip():
            raise FetchError("empty", f"empty body from {where}")
        return bytes(body)

    def _extend(self, body: bytearray, pieces: Iterator[bytes], where: str) -> None:
        for piece in pieces:
            body += piece
            if len(body) > self._max_bytes:
                raise FetchError("too_large", f"more than {self._max_bytes} bytes from {where}")

    @staticmethod
    def _result(
        status: Literal["ok", "not_modified", "unchanged"],
        response: httpx.Response,
        headers: dict[str, str],
        req: FetchRequest,
        *,
        body_hash: str | None,
        body: bytes = b"",
    ) -> FetchResult:
        keep = status != "ok"
        return FetchResult(
            status=status,
            url=str(response.url),
            status_code=response.status_code,
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
    "FetchRequest",
    "FetchResult",
    "Fetcher",
    "classify",
    "max_age_seconds",
    "retry_after_seconds",
    "safe_url",
]
