"""Notifiers: build a payload for an alert, send it, and classify the answer. Retries belong to the
delivery loop; each `send` reports one SendOutcome per alert, each `send_digest` one per digest."""

from notifiers._base import Clock, Notifier, OutcomeHook, RecordsEachOutcome, SendOutcome
from notifiers._digest import DigestCapable, render_digest_preview, supports_digest
from notifiers._factory import build_notifier, render_preview

__all__ = [
    "Clock",
    "DigestCapable",
    "Notifier",
    "OutcomeHook",
    "RecordsEachOutcome",
    "SendOutcome",
    "build_notifier",
    "render_digest_preview",
    "render_preview",
    "supports_digest",
]
