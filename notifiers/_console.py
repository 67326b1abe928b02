"""Console: a readable block per alert on stdout. Control characters are removed so a feed cannot
move the cursor, recolour the terminal or fake extra lines."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import TextIO

from monitor.errors import DeliveryError
from monitor.model import AlertMessage
from notifiers._base import SendOutcome
from notifiers._text import (
    clean,
    iso_time,
    level_label,
    matched_terms,
    plain_snippet,
    safe_link,
    snippet,
    truncate,
)
from notifiers.settings import ConsoleSettings

_WIDTH_TITLE = 500


def render_block(alert: AlertMessage) -> str:
    source = clean(alert.source_name)
    source = f"{source} ({clean(alert.source_id)})" if source else clean(alert.source_id)
    lines = [
        f"[{level_label(alert)}] {truncate(clean(alert.rule_title), _WIDTH_TITLE)}",
        f"  title:   {truncate(clean(alert.title), _WIDTH_TITLE) or '(untitled)'}",
        f"  link:    {safe_link(alert.link) or '-'}",
        f"  source:  {source}",
        f"  time:    {iso_time(alert.published)}",
    ]
    text = plain_snippet(snippet(alert))
    if text:
        lines.append(f"  snippet: {text}")
    terms = matched_terms(alert)
    if terms:
        lines.append(f"  matched: {', '.join(terms)}")
    for other in alert.also:
        name = clean(other.source_name or other.source_id)
        lines.append(f"  also:    {name}: {truncate(clean(other.title), _WIDTH_TITLE)}")
    return "\n".join(lines) + "\n"


class ConsoleNotifier:
    def __init__(self, name: str, settings: ConsoleSettings, stream: TextIO | None = None) -> None:
        self.name = name
        self.settings = settings
        self._stream = stream

    def preview(self, alert: AlertMessage) -> str:
        return render_block(alert)

    async def send(self, alerts: Sequence[AlertMessage]) -> list[SendOutcome]:
        # sys.stdout is looked up at send time so a redirected stdout (tests, daemon logs) is
        # honoured.
        stream = self._stream or sys.stdout
        try:
            for alert in alerts:
                stream.write(render_block(alert) + "\n")
            stream.flush()
        except (OSError, ValueError) as exc:  # closed pipe or file, full disk: the daemon goes on
            error = DeliveryError(f"console: cannot write ({type(exc).__name__})", retryable=True)
            return [SendOutcome(error) for _ in alerts]
        return [SendOutcome() for _ in alerts]

    async def aclose(self) -> None:
        return None


__all__ = ["ConsoleNotifier", "render_block"]
