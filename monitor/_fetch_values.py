"""The values a fetch works with: its request and result, its deadline, a redirect, a URL's host.

Kept apart from `monitor.fetch` (which re-exports the public ones) so that the Fetcher's module
holds only the fetch itself.
"""

from __future__ import annotations

import asyncio
import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

import httpx

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


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
    body_hash: str | None  # xxh3_128 hex of the decoded body (`monitor._decode.read_body`)
    permanent_redirect: (
        str | None
    )  # where the leading run of 301/308 hops ended, if the chain had one
    max_age: float | None  # Cache-Control max-age seconds
    elapsed: float


class Deadline:
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
class Redirect:
    status_code: int
    location: str


def header_value(value: str | None) -> str | None:
    # A validator is echoed verbatim, but one with control characters would corrupt our request,
    # and httpx cannot encode one beyond ASCII (a Latin-1 ETag failed every later poll): without
    # it, the body hash still tells an unchanged feed.
    if not value or not value.isascii() or _CONTROL.search(value):
        return None
    return value


@functools.lru_cache(maxsize=8192)
def parse_url(url: str) -> httpx.URL:
    """Each source's URL is parsed on every poll, by the pipeline (`host_key`) and the fetch:
    about 10 us each time. httpx.URL is immutable, so the parse is kept (~450 bytes a URL)."""
    return httpx.URL(url)


def host_key(url: httpx.URL | str) -> str:
    """The unit of politeness: one host and port (slots, pacing, pauses). An unparsable URL is its
    own unit (its fetch fails as `invalid_url` anyway)."""
    try:
        parsed = url if isinstance(url, httpx.URL) else parse_url(url)
    except (httpx.InvalidURL, TypeError, ValueError):
        return str(url)
    return f"{parsed.host}:{parsed.port or parsed.scheme}"
