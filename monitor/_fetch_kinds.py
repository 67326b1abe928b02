"""HTTP outcomes as stable failure kinds: the one place where transport exceptions and status codes
become `FetchError(kind)`, plus the response headers that steer retries (Retry-After, max-age)."""

from __future__ import annotations

import socket
import ssl
from collections.abc import Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

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


def _caused_by(
    exc: BaseException, kind: type[BaseException] | tuple[type[BaseException], ...]
) -> bool:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, kind):
            return True
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return False


def classify(exc: BaseException, url: str | httpx.URL) -> FetchError:
    """The one place where transport exceptions become failure kinds."""
    where = safe_url(url)
    if isinstance(exc, FetchError):
        return exc
    if isinstance(exc, TimeoutError | httpx.TimeoutException):
        return FetchError("timeout", f"no complete answer in time from {where}")
    if isinstance(exc, httpx.UnsupportedProtocol | httpx.InvalidURL):
        return FetchError("invalid_url", f"cannot fetch {where}: {exc}")
    if _caused_by(exc, socket.gaierror):
        return FetchError("dns", f"cannot resolve the host of {where}")
    if _caused_by(exc, (ssl.SSLError, ssl.CertificateError)):
        return FetchError("tls", f"TLS handshake with {where} failed")
    if isinstance(exc, httpx.ConnectError) or _caused_by(exc, ConnectionRefusedError):
        return FetchError("connect", f"cannot connect to {where}")
    return FetchError("network", f"{type(exc).__name__} while fetching {where}")


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
