"""Generic webhook: POST the JSON payload documented in docs/webhook.md, signed when a secret is
set."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from monitor.errors import ConfigError, DeliveryError
from monitor.model import AlertMessage
from notifiers._base import SendOutcome, not_attempted
from notifiers._http import check_url, new_client, post, redact
from notifiers.settings import WebhookSettings

PAYLOAD_VERSION = 1
SIGNATURE_HEADER = "X-Monitor-Signature"
TIMESTAMP_HEADER = "X-Monitor-Timestamp"
# Ours to set: a user header must not override the signature, the body type or the length.
_RESERVED_HEADERS = frozenset(
    {SIGNATURE_HEADER.lower(), TIMESTAMP_HEADER.lower(), "content-type", "content-length", "host"}
)


def _iso(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def webhook_payload(alert: AlertMessage, sent_at: int) -> dict[str, Any]:
    """The documented payload (docs/webhook.md). Text is raw feed text: receivers escape for their
    output."""
    return {
        "version": PAYLOAD_VERSION,
        "alert_id": alert.alert_id,
        "story_id": alert.story_id,
        "rule": alert.rule_id,
        "rule_title": alert.rule_title,
        "level": alert.level,
        "created": _iso(alert.created),
        "sent_at": sent_at,
        "item": {
            "title": alert.title,
            "link": alert.link,
            "source": alert.source_id,
            "source_name": alert.source_name,
            "published": _iso(alert.published),
            "summary": alert.summary,
        },
        "matches": [
            {"field": s.field, "start": s.start, "end": s.end, "text": s.text}
            for s in alert.matches
        ],
        "also": [
            {"source": a.source_id, "source_name": a.source_name, "title": a.title, "link": a.link}
            for a in alert.also
        ],
    }


def sign(secret: str, body: bytes) -> str:
    """`sha256=<hex>`: HMAC-SHA256 of the exact body bytes."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def _check_headers(name: str, headers: dict[str, str]) -> None:
    for key, value in headers.items():
        if key.lower() in _RESERVED_HEADERS:
            raise ConfigError(f"notifier {name!r}: header {key!r} is set by source-monitor")
        if not key.isascii() or not key.replace("-", "").isalnum():
            raise ConfigError(f"notifier {name!r}: header name {key!r} is not a valid HTTP token")
        if any(ch in value for ch in "\r\n\0"):
            raise ConfigError(f"notifier {name!r}: header {key!r} contains a line break")


class WebhookNotifier:
    def __init__(
        self, name: str, settings: WebhookSettings, *, now: Callable[[], float] = time.time
    ) -> None:
        self.name = name
        self.settings = settings
        self._url = settings.url.get_secret_value()
        check_url(self._url, f"notifier {name!r}: url")
        _check_headers(name, settings.headers)
        self._secrets = [self._url]
        if settings.secret is not None:
            self._secrets.append(settings.secret.get_secret_value())
        # Header values may be credentials (Authorization: Bearer ...).
        self._secrets.extend(v for v in settings.headers.values() if len(v) >= 8)
        self._timeout = settings.timeout.total_seconds()
        self._client = new_client(self._timeout)
        self._now = now

    def request(self, alert: AlertMessage) -> tuple[bytes, dict[str, str]]:
        """The exact body and headers that `send` posts."""
        sent_at = int(self._now())
        body = json.dumps(webhook_payload(alert, sent_at), ensure_ascii=False).encode()
        headers = {**self.settings.headers, "Content-Type": "application/json; charset=utf-8"}
        if self.settings.secret is not None:
            headers[TIMESTAMP_HEADER] = str(sent_at)
            headers[SIGNATURE_HEADER] = sign(self.settings.secret.get_secret_value(), body)
        return body, headers

    def preview(self, alert: AlertMessage) -> str:
        body, headers = self.request(alert)
        shown = {k: ("<signature>" if k == SIGNATURE_HEADER else "***") for k in headers}
        shown.update({k: v for k, v in headers.items() if k in ("Content-Type", TIMESTAMP_HEADER)})
        lines = [f"POST <url of {self.name}>", *(f"{k}: {v}" for k, v in shown.items()), ""]
        pretty = json.dumps(json.loads(body), indent=2, ensure_ascii=False)
        return "\n".join(lines) + "\n" + pretty

    async def send(self, alerts: Sequence[AlertMessage]) -> list[SendOutcome]:
        outcomes: list[SendOutcome] = []
        stop: DeliveryError | None = None
        for alert in alerts:
            if stop is not None:
                outcomes.append(SendOutcome(not_attempted(stop)))
                continue
            body, headers = self.request(alert)
            _, error = await post(
                self._client,
                "webhook",
                self._url,
                content=body,
                headers=headers,
                timeout_s=self._timeout,
            )
            if error is not None:
                error = redact(error, self._secrets)
                stop = error if error.retryable else None
            outcomes.append(SendOutcome(error))
        return outcomes

    async def aclose(self) -> None:
        await self._client.aclose()


__all__ = ["SIGNATURE_HEADER", "TIMESTAMP_HEADER", "WebhookNotifier", "sign", "webhook_payload"]
