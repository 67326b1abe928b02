"""HTTP outcomes as stable failure kinds: the one place where transport exceptions and status codes
become `FetchError(kind)`, plus the response headers that steer retries (Retry-After, max-age)."""

from __future__ import annotations

import socket
import ssl
from collections.abc import Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

import aiohttp
import httpx

from monitor.errors import FetchError

_MAX_RETRY_AFTER = 7 * 86400.0


class RateLimited(FetchError):
    """The host asked us to wait (HTTP 429/503 with Retry-After), or a request to it fell inside
    such a pause and was never sent. Not the source's fault: the whole host waits, and the source
    is not penalised. `retry_after` (seconds left) is always set; `origin` is the host's
    `scheme://host[:port]/`, which may differ from the source's own host after a redirect."""

    def __init__(self, kind: str, detail: str, retry_after: float, origin: str) -> None:
        super().__init__(kind, detail, retry_after)
        self.retry_after: float = retry_after
        self.origin = origin


def safe_url(url: str | httpx.URL) -> str:
    """A URL fit for messages and logs: no user info, query or fragment (they may hold secrets)."""
    try:
        parsed = url if isinstance(url, httpx.URL) else httpx.URL(url)
        port = f":{parsed.port}" if parsed.port else ""
        return f"{parsed.scheme}://{parsed.host}{port}{parsed.path}"
    except (httpx.InvalidURL, TypeError, ValueError):
        return "<invalid URL>"


def _below(
    exc: BaseException, kind: type[BaseException] | tuple[type[BaseException], ...]
) -> BaseException | None:
    """The first exception of `kind` in the chain of causes and contexts from `exc` down."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, kind):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None


def _caused_by(
    exc: BaseException, kind: type[BaseException] | tuple[type[BaseException], ...]
) -> bool:
    return _below(exc, kind) is not None


# Kinds told by the exception's own type, first match wins; when aiohttp raised, its exception
# decides, since `httpx_aiohttp` maps aiohttp's onto httpx's crudely (every connection error, a
# server closing mid-body included, becomes `httpx.ConnectTimeout`). The rest are told by the
# standard library's exceptions below them, alike for both.
_AIOHTTP_KINDS: tuple[tuple[type[BaseException] | tuple[type[BaseException], ...], str], ...] = (
    (aiohttp.ClientConnectorDNSError, "dns"),
    ((aiohttp.ClientSSLError, aiohttp.ServerFingerprintMismatch), "tls"),
    (aiohttp.ServerTimeoutError, "timeout"),
    ((aiohttp.InvalidURL, aiohttp.NonHttpUrlClientError), "invalid_url"),
)
_HTTPX_KINDS: tuple[tuple[type[BaseException] | tuple[type[BaseException], ...], str], ...] = (
    (httpx.TimeoutException, "timeout"),
    ((httpx.UnsupportedProtocol, httpx.InvalidURL), "invalid_url"),
)


def _kind(exc: BaseException, aio: BaseException | None) -> str:
    """The kind of a transport exception; `aio`: the aiohttp exception below it, if any."""
    if isinstance(exc, TimeoutError):  # the fetch's deadline
        return "timeout"
    for types, kind in _AIOHTTP_KINDS if aio is not None else _HTTPX_KINDS:
        if isinstance(aio or exc, types):
            return kind
    if _caused_by(exc, socket.gaierror):
        return "dns"
    if _caused_by(exc, (ssl.SSLError, ssl.CertificateError)):
        return "tls"
    connect_error = (aiohttp.ClientConnectorError, httpx.ConnectError)
    if isinstance(aio or exc, connect_error) or _caused_by(exc, ConnectionRefusedError):
        return "connect"
    return "network"


def classify(exc: BaseException, url: str | httpx.URL) -> FetchError:
    """The one place where transport exceptions become failure kinds."""
    where = safe_url(url)
    if isinstance(exc, FetchError):
        return exc
    aio = _below(exc, aiohttp.ClientError)
    kind = _kind(exc, aio)
    if kind == "timeout":
        return FetchError(kind, f"no complete answer in time from {where}")
    if kind == "invalid_url":
        return FetchError(kind, f"cannot fetch {where}: {aio or exc}")
    if kind == "dns":
        return FetchError(kind, f"cannot resolve the host of {where}")
    if kind == "tls":
        return FetchError(kind, f"TLS handshake with {where} failed")
    if kind == "connect":
        return FetchError(kind, f"cannot connect to {where}")
    return FetchError(kind, f"{type(aio or exc).__name__} while fetching {where}")


def retry_after_seconds(headers: Mapping[str, str], now: datetime) -> float | None:
    """Retry-After as seconds (RFC 9110 §10.2.3): delay-seconds or an HTTP-date. An HTTP-date is
    taken relative to the response's own `Date`, when present, so clock skew does not distort it."""
    value = (headers.get("retry-after") or "").strip()
    if not value:
        return None
    if value.isdigit():
        return min(float(value), _MAX_RETRY_AFTER)
    try:
        when = parsedate_to_datetime(value)
        base = parsedate_to_datetime(headers["date"]) if headers.get("date") else now
    except (TypeError, ValueError, IndexError):
        base = now
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
    when = when if when.tzinfo else when.replace(tzinfo=UTC)
    base = base if base.tzinfo else base.replace(tzinfo=UTC)
    return min(max(0.0, (when - base).total_seconds()), _MAX_RETRY_AFTER)


def max_age_seconds(cache_control: str | None) -> float | None:
    for directive in (cache_control or "").split(","):
        name, _, value = directive.strip().partition("=")
        if name.lower() == "max-age":
            try:
                return max(0.0, float(int(value.strip().strip('"'))))
            except ValueError:
                return None
    return None


def status_error(code: int, headers: Mapping[str, str], where: str) -> FetchError:
    if code in (401, 403):
        return FetchError("blocked", f"HTTP {code}: access refused by {where}")
    if code == 410:
        return FetchError("gone", f"HTTP 410: the feed was removed from {where}")
    retry = retry_after_seconds(headers, datetime.now(UTC)) if code in (429, 503) else None
    return FetchError(f"http_{code}", f"HTTP {code} from {where}", retry_after=retry)


__all__ = [
    "RateLimited",
    "classify",
    "max_age_seconds",
    "retry_after_seconds",
    "safe_url",
    "status_error",
]
