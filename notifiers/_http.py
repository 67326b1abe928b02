"""HTTP for the Slack and webhook notifiers: one place that turns httpx answers and exceptions into
DeliveryError, with retry classification and Retry-After parsing.

Messages name the service (`slack webhook`), never the URL: webhook URLs are credentials.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from urllib.parse import urlsplit

import httpx

from monitor import USER_AGENT
from monitor.errors import ConfigError, DeliveryError

# Statuses where the receiver asks us to come back later, possibly saying when (RFC 9110 §10.2.3).
_RETRY_LATER = (429, 503)
# A short machine code (`invalid_payload`, `no_service`) is worth showing; anything longer could
# echo our request, headers included, so it is left out.
_CODE = re.compile(r"[A-Za-z0-9_.\-]{1,64}")


def new_client(timeout: float) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        timeout=httpx.Timeout(timeout),
        headers={"User-Agent": USER_AGENT},
        follow_redirects=False,  # a redirect could carry the payload (and a token) to another host
        trust_env=False,
    )


def check_url(url: str, what: str) -> None:
    """ConfigError for a URL httpx cannot send to; the message names the setting, not the URL."""
    try:
        parts = urlsplit(url)
        httpx.URL(url)
    except (ValueError, httpx.InvalidURL):
        raise ConfigError(f"{what} is not a valid URL") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"{what} must be an http:// or https:// URL")
    if any(ch.isspace() or ord(ch) < 32 for ch in url):
        raise ConfigError(f"{what} contains spaces or control characters")


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from a Retry-After header: delay-seconds or an HTTP-date (RFC 9110 §10.2.3).
    Unparseable values give None; dates in the past give 0."""
    if value is None:
        return None
    value = value.strip()
    if re.fullmatch(r"\d+(\.\d+)?", value):
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    now = now or datetime.now(UTC)
    return max(0.0, (when - now).total_seconds())


def classify_status(
    service: str, status: int, body: str = "", retry_after: str | None = None
) -> DeliveryError | None:
    """None for 2xx; otherwise the DeliveryError the delivery loop acts on."""
    if 200 <= status < 300:
        return None
    code = body.strip()
    detail = f" ({code})" if _CODE.fullmatch(code) else ""
    message = f"{service} answered {status}{detail}"
    if status in _RETRY_LATER:
        return DeliveryError(message, retryable=True, retry_after=parse_retry_after(retry_after))
    if 500 <= status < 600 or status == 408:
        return DeliveryError(message, retryable=True)
    if 300 <= status < 400:
        return DeliveryError(f"{message}: redirects are not followed", retryable=False)
    return DeliveryError(message, retryable=False)


def classify_exception(service: str, exc: Exception, timeout: float) -> DeliveryError:
    """Transport failures are retryable; str(exc) is not used because httpx puts URLs in it."""
    if isinstance(exc, httpx.TimeoutException):
        return DeliveryError(f"{service} timed out after {timeout:g}s", retryable=True)
    if isinstance(exc, httpx.ConnectError):
        return DeliveryError(f"{service}: could not connect", retryable=True)
    if isinstance(exc, httpx.UnsupportedProtocol | httpx.InvalidURL):
        return DeliveryError(f"{service}: the configured URL is not usable", retryable=False)
    return DeliveryError(f"{service}: {type(exc).__name__}", retryable=True)


def redact(error: DeliveryError, secrets: Iterable[str]) -> DeliveryError:
    """Last line of defence: no configured secret ever leaves in an error message."""
    message = str(error)
    for secret in secrets:
        if secret and secret in message:
            message = message.replace(secret, "***")
    if message == str(error):
        return error
    return DeliveryError(message, retryable=error.retryable, retry_after=error.retry_after)


async def post(
    client: httpx.AsyncClient,
    service: str,
    url: str,
    *,
    content: bytes,
    headers: dict[str, str],
    timeout_s: float,
) -> tuple[httpx.Response | None, DeliveryError | None]:
    """POST and classify: (response, None) on 2xx, (response or None, error) otherwise."""
    try:
        response = await client.post(url, content=content, headers=headers)
    except (httpx.HTTPError, httpx.InvalidURL) as exc:
        return None, classify_exception(service, exc, timeout_s)
    error = classify_status(
        service, response.status_code, response.text[:200], response.headers.get("Retry-After")
    )
    return response, error


__all__ = [
    "check_url",
    "classify_exception",
    "classify_status",
    "new_client",
    "parse_retry_after",
    "post",
    "redact",
]
