"""Notifiers: build a payload for an alert, send it, and classify the answer. Retries belong to the
delivery loop; each `send` reports one SendOutcome per alert."""

from notifiers._base import Clock, Notifier, SendOutcome
from notifiers._factory import build_notifier, render_preview

__all__ = ["Clock", "Notifier", "SendOutcome", "build_notifier", "render_preview"]
