"""Alerts for notifier tests, hostile ones included. Written for these tests: no corpus text."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from monitor.model import AlertMessage, AlsoReported, Span
from notifiers.settings import AppriseSettings, SlackSettings, WebhookSettings

HOSTILE_TITLE = "<!channel> <@U123> <https://evil|click> & co\r\nBcc: x@evil"
HOSTILE_SUMMARY = (
    "Officials said <script>alert(1)</script> the KN-23 strike hit a depot; "
    "\x1b[31m<!here> *bold* _it_ ~s~ `code` & more\u202e"
)


# Settings as the config loader builds them: validated from plain values (secrets become SecretStr).
def slack_settings(**values: Any) -> SlackSettings:
    return SlackSettings.model_validate({"type": "slack", **values})


def webhook_settings(**values: Any) -> WebhookSettings:
    return WebhookSettings.model_validate({"type": "webhook", **values})


def apprise_settings(**values: Any) -> AppriseSettings:
    return AppriseSettings.model_validate({"type": "apprise", **values})


class FakeClock:
    """Monotonic time that only moves when a notifier sleeps: pacing tests never wait."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def span_of(text: str, word: str, field: str = "summary") -> Span:
    start = text.index(word)
    return Span(field, start, start + len(word), word)


def sample_alert(**overrides: Any) -> AlertMessage:
    summary = "Ukraine's air force said Russia fired North Korean KN-23 missiles at Kharkiv."
    alert = AlertMessage(
        alert_id=42,
        rule_id="kn23",
        rule_title="North Korean KN-23 missiles in Russia's war",
        level="high",
        title="Russia fires North Korean missiles at Kharkiv",
        link="https://news.example.org/world/kn23-kharkiv?utm_source=x&id=7",
        source_id="example-news",
        source_name="Example News",
        published=datetime(2026, 11, 26, 9, 30, tzinfo=UTC),
        created=datetime(2026, 11, 26, 9, 35, tzinfo=UTC),
        summary=summary,
        matches=(span_of(summary, "KN-23"),),
        also=(
            AlsoReported("other-wire", "Other Wire", "KN-23 used again", "https://wire.example/a"),
        ),
        story_id=9,
    )
    return replace(alert, **overrides)


def hostile_alert(**overrides: Any) -> AlertMessage:
    alert = sample_alert(
        title=HOSTILE_TITLE,
        rule_title="Depots & <arsenals>",
        summary=HOSTILE_SUMMARY,
        matches=(span_of(HOSTILE_SUMMARY, "KN-23"), span_of(HOSTILE_SUMMARY, "*bold*")),
        link="https://evil.example/x?a=1&b=<2>|3",
        source_name="Evil <!everyone> Feed\r\nX-Injected: 1",
        also=(AlsoReported("evil2", "<@U999>", "<!channel> again", "javascript:alert(1)"),),
    )
    return replace(alert, **overrides)


__all__ = [
    "HOSTILE_SUMMARY",
    "HOSTILE_TITLE",
    "FakeClock",
    "apprise_settings",
    "hostile_alert",
    "sample_alert",
    "slack_settings",
    "span_of",
    "webhook_settings",
]
