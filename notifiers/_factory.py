"""Building a notifier from its settings, and previewing what it would send."""

from __future__ import annotations

from monitor.model import AlertMessage
from notifiers._apprise import AppriseNotifier
from notifiers._base import Clock, Notifier, Previewable
from notifiers._console import ConsoleNotifier, render_block
from notifiers._email import EmailNotifier
from notifiers._slack import SlackNotifier
from notifiers._webhook import WebhookNotifier
from notifiers.settings import (
    AppriseSettings,
    ConsoleSettings,
    EmailSettings,
    NotifierSettings,
    SlackSettings,
    WebhookSettings,
)


def build_notifier(
    name: str, settings: NotifierSettings, *, clock: Clock | None = None
) -> Notifier:
    """The notifier for one `notifiers:` entry. Raises ConfigError for settings that validate as
    data but cannot work (bad URL or address, missing optional dependency). `clock` paces Slack in
    tests."""
    if isinstance(settings, ConsoleSettings):
        return ConsoleNotifier(name, settings)
    if isinstance(settings, SlackSettings):
        return SlackNotifier(name, settings, clock=clock)
    if isinstance(settings, EmailSettings):
        return EmailNotifier(name, settings)
    if isinstance(settings, WebhookSettings):
        return WebhookNotifier(name, settings)
    if isinstance(settings, AppriseSettings):
        return AppriseNotifier(name, settings)
    raise TypeError(f"unknown notifier settings {type(settings).__name__}")


def render_preview(notifier: Notifier, alert: AlertMessage) -> str:
    """What `notifier` would send for `alert`: the console block, the Slack or webhook JSON, the
    whole email. Notifiers without a preview of their own fall back to the console block."""
    if isinstance(notifier, Previewable):
        return notifier.preview(alert)
    return render_block(alert)


__all__ = ["build_notifier", "render_preview"]
