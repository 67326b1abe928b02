"""Apprise (optional extra): title and plain-text body through any Apprise URL. Apprise only answers
success or failure, so every failure is treated as retryable."""

from __future__ import annotations

import asyncio
import importlib
import warnings
from collections.abc import Sequence
from typing import Any

from monitor.errors import ConfigError, DeliveryError
from monitor.model import AlertMessage
from notifiers._base import SendOutcome, not_attempted
from notifiers._console import render_block
from notifiers._email_message import subject
from notifiers.settings import AppriseSettings

_NOTIFY_TYPES = {"info": "info", "low": "info", "medium": "warning", "high": "warning"}


def _load_apprise(name: str) -> Any:
    try:
        return importlib.import_module("apprise")
    except ImportError:
        raise ConfigError(
            f"notifier {name!r}: the apprise notifier needs Apprise: "
            "pip install 'source-monitor[apprise]'"
        ) from None


class AppriseNotifier:
    def __init__(self, name: str, settings: AppriseSettings) -> None:
        self.name = name
        self.settings = settings
        apprise = _load_apprise(name)
        if not settings.urls:
            raise ConfigError(f"notifier {name!r}: apprise needs at least one URL in 'urls'")
        self._apprise = apprise.Apprise()
        # Apprise imports its plugins on first use, some of them deprecated stdlib modules (imghdr):
        # warnings users cannot act on, and errors under `-W error`.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            for number, url in enumerate(settings.urls, start=1):
                # The message names the position, not the URL: Apprise URLs carry tokens.
                if not self._apprise.add(url.get_secret_value()):
                    raise ConfigError(f"notifier {name!r}: apprise URL #{number} is not recognised")

    def preview(self, alert: AlertMessage) -> str:
        return f"{subject(alert)}\n\n{render_block(alert)}"

    async def send(self, alerts: Sequence[AlertMessage]) -> list[SendOutcome]:
        outcomes: list[SendOutcome] = []
        stop: DeliveryError | None = None
        for alert in alerts:
            if stop is not None:
                outcomes.append(SendOutcome(not_attempted(stop)))
                continue
            error = await asyncio.to_thread(self._notify, alert)
            stop = error
            outcomes.append(SendOutcome(error))
        return outcomes

    async def aclose(self) -> None:
        return None

    def _notify(self, alert: AlertMessage) -> DeliveryError | None:
        try:
            result = self._apprise.notify(
                title=subject(alert),
                body=render_block(alert),
                notify_type=_NOTIFY_TYPES.get(alert.level, "failure"),
                body_format="text",
            )
        except Exception as exc:
            return DeliveryError(f"apprise failed ({type(exc).__name__})", retryable=True)
        if not result:
            return DeliveryError("apprise: at least one URL failed to deliver", retryable=True)
        return None


__all__ = ["AppriseNotifier"]
