"""Slack: an incoming webhook, or chat.postMessage with a bot token and channel."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence

from monitor.errors import ConfigError, DeliveryError
from monitor.model import AlertMessage
from notifiers._base import Clock, Pacer, SendOutcome, SystemClock, not_attempted
from notifiers._http import check_url, new_client, post, redact
from notifiers._slack_format import payload
from notifiers.settings import SlackSettings

# Slack allows about one message per second per webhook/channel (api.slack.com/apis/rate-limits):
# the default of the `min_interval` setting.
PACE_SECONDS = 1.0
# chat.postMessage answers HTTP 200 with `ok: false`; these codes are worth retrying, the rest
# (invalid_auth, channel_not_found, not_in_channel, invalid_blocks, ...) need a human.
_RETRYABLE_API_ERRORS = frozenset(
    {"ratelimited", "internal_error", "fatal_error", "service_unavailable", "request_timeout"}
)


class SlackNotifier:
    def __init__(self, name: str, settings: SlackSettings, *, clock: Clock | None = None) -> None:
        self.name = name
        self.settings = settings
        if settings.webhook_url is not None:
            self._url = settings.webhook_url.get_secret_value()
            self._service = "slack webhook"
            check_url(self._url, f"notifier {name!r}: webhook_url")
        elif settings.token is not None and settings.channel:
            self._url = settings.api_url
            self._service = "slack chat.postMessage"
            check_url(self._url, f"notifier {name!r}: api_url")
        else:
            raise ConfigError(f"notifier {name!r}: slack needs webhook_url, or token and channel")
        self._secrets = [
            s.get_secret_value() for s in (settings.webhook_url, settings.token) if s is not None
        ]
        self._timeout = settings.timeout.total_seconds()
        self._client = new_client(self._timeout)
        self._pacer = Pacer(settings.min_interval.total_seconds(), clock or SystemClock())

    def preview(self, alert: AlertMessage) -> str:
        return json.dumps(self._payload(alert), indent=2, ensure_ascii=False)

    async def send(self, alerts: Sequence[AlertMessage]) -> list[SendOutcome]:
        outcomes: list[SendOutcome] = []
        stop: DeliveryError | None = None
        for alert in alerts:
            if stop is not None:
                outcomes.append(SendOutcome(not_attempted(stop)))
                continue
            outcome = await self._send_one(alert)
            if outcome.error is not None and outcome.error.retryable:
                stop = outcome.error  # the next ones would meet the same outage or rate limit
            outcomes.append(outcome)
        return outcomes

    async def aclose(self) -> None:
        await self._client.aclose()

    def _payload(self, alert: AlertMessage) -> dict[str, object]:
        bot = self.settings.webhook_url is None
        return payload(alert, channel=self.settings.channel if bot else None)

    async def _send_one(self, alert: AlertMessage) -> SendOutcome:
        await self._pacer.wait()
        headers = {"Content-Type": "application/json; charset=utf-8"}
        if self.settings.webhook_url is None and self.settings.token is not None:
            headers["Authorization"] = f"Bearer {self.settings.token.get_secret_value()}"
        body = json.dumps(self._payload(alert), ensure_ascii=False).encode()
        response, error = await post(
            self._client,
            self._service,
            self._url,
            content=body,
            headers=headers,
            timeout_s=self._timeout,
        )
        if error is None and response is not None and self.settings.webhook_url is None:
            return self._api_outcome(response.content)
        if error is not None:
            if error.retry_after is not None:
                self._pacer.hold(error.retry_after)
            return SendOutcome(redact(error, self._secrets))
        return SendOutcome()

    def _api_outcome(self, content: bytes) -> SendOutcome:
        try:
            answer = json.loads(content)
        except ValueError:
            answer = None
        if not isinstance(answer, dict):
            error = DeliveryError(f"{self._service} answered with no JSON object", retryable=True)
            return SendOutcome(error)
        if answer.get("ok") is True:
            ts = answer.get("ts")
            return SendOutcome(message_id=ts if isinstance(ts, str) else None)
        # Slack's codes are snake_case words; anything else from the server is not worth echoing.
        code = re.sub(r"[^a-z0-9_]", "", str(answer.get("error", "")))[:64] or "unknown_error"
        error = DeliveryError(
            f"{self._service} answered ok=false ({code})",
            retryable=code in _RETRYABLE_API_ERRORS,
        )
        return SendOutcome(redact(error, self._secrets))


__all__ = ["PACE_SECONDS", "SlackNotifier"]
