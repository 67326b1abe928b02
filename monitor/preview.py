"""`monitor preview`: what a notifier would send for an alert, written to a file for an operator.

Rendering goes through the notifier's own templates (`notifiers.render_preview`,
`render_digest_preview`), so a preview is the message as sent, not an imitation of it: an edited
template shows here before it reaches an analyst. A stored alert is read as its notifier would be
handed it, threading headers included; nothing is sent and nothing in the database changes.
"""

from __future__ import annotations

import asyncio
import email
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass, replace
from email.message import EmailMessage
from email.policy import default as default_policy
from pathlib import Path
from typing import Protocol, runtime_checkable

from monitor.config import Config
from monitor.errors import ConfigError, MonitorError
from monitor.model import AlertMessage, level_rank
from monitor.offline import sample_alert
from notifiers import Notifier, build_notifier, render_digest_preview, render_preview
from notifiers.settings import EmailSettings, WebhookSettings
from rules._yaml import did_you_mean
from storage import Store

STDOUT = "-"


class PreviewUsageError(ValueError):
    """Options that do not go together (the CLI reports it as a usage error, exit code 2)."""


@dataclass(frozen=True)
class PreviewRequest:
    """What to render: stored alerts by id, or the sample alert of `monitor notify-test`."""

    notifier: str
    alert_ids: tuple[int, ...] = ()
    sample: bool = False
    digest: bool = False  # the digest email of all the alerts (its HTML body)
    html: bool = False  # email only: the HTML part instead of the whole message

    def __post_init__(self) -> None:
        if self.sample == bool(self.alert_ids):
            raise PreviewUsageError("give either --alert ID or --sample")
        if len(self.alert_ids) > 1 and not self.digest:
            raise PreviewUsageError("several --alert ids make sense only with --digest")
        if self.digest and self.html:
            raise PreviewUsageError("--digest already renders HTML: leave out --html")


@dataclass(frozen=True)
class Preview:
    text: str
    what: str  # one line for the operator: what the file holds
    notes: tuple[str, ...] = ()  # worth knowing, e.g. an alert this notifier never sends


@runtime_checkable
class _Requester(Protocol):
    """A notifier that can show the exact HTTP body it posts (the webhook)."""

    def request(self, alert: AlertMessage) -> tuple[bytes, dict[str, str]]: ...


def load_alerts(config: Config, alert_ids: Sequence[int], notifier: str) -> list[AlertMessage]:
    """The stored alerts, as `notifier` would be handed them; MonitorError naming a missing id."""
    store = Store.open(config.database)
    try:
        found = {i: store.alert_message(i, notifier=notifier) for i in dict.fromkeys(alert_ids)}
    finally:
        store.close()
    missing = [str(i) for i, alert in found.items() if alert is None]
    if missing:
        raise MonitorError(f"no alert with id {', '.join(missing)} (see `monitor alerts`)")
    return [alert for alert in found.values() if alert is not None]


def render(config: Config, request: PreviewRequest) -> Preview:
    """Render the requested alerts through the named notifier. ConfigError for an unknown
    notifier, PreviewUsageError for an option its type cannot honour."""
    settings = config.notifiers.get(request.notifier)
    if settings is None:
        hint = did_you_mean(request.notifier, config.notifiers)
        raise ConfigError(f"{config.path}: no notifier named '{request.notifier}'{hint}")
    is_email = isinstance(settings, EmailSettings)
    if (request.html or request.digest) and not is_email:
        option = "--html" if request.html else "--digest"
        raise PreviewUsageError(f"{option} needs an email notifier; '{request.notifier}' is not")
    if request.sample:
        alerts = [sample_alert()]
    else:
        alerts = load_alerts(config, request.alert_ids, request.notifier)
    notifier = build_notifier(request.notifier, settings)
    try:
        preview = _render(notifier, alerts, request)
    finally:
        asyncio.run(notifier.aclose())
    return replace(preview, notes=_unsent(request.notifier, settings.min_level, alerts))


def _render(notifier: Notifier, alerts: Sequence[AlertMessage], request: PreviewRequest) -> Preview:
    kind = notifier.settings.type
    if request.digest:
        return Preview(render_digest_preview(notifier, alerts), "digest email, HTML body")
    [alert] = alerts
    if request.html:
        return Preview(_html_part(render_preview(notifier, alert)), "email, HTML part")
    if isinstance(notifier, _Requester) and isinstance(notifier.settings, WebhookSettings):
        body, _headers = notifier.request(alert)
        return Preview(_pretty_json(body), "webhook JSON body")
    text = render_preview(notifier, alert)
    what = {"email": "whole email message", "slack": "Slack JSON payload"}.get(kind, "text")
    return Preview(text, what)


def _html_part(message_text: str) -> str:
    parsed = email.message_from_string(message_text, policy=default_policy)
    assert isinstance(parsed, EmailMessage)
    part = parsed.get_body(preferencelist=("html",))
    if part is None:  # every alert email is multipart/alternative with an HTML part
        raise MonitorError("the email has no HTML part")
    assert isinstance(part, EmailMessage)
    content = part.get_content()
    assert isinstance(content, str)
    return content


def _pretty_json(body: bytes) -> str:
    return json.dumps(json.loads(body), indent=2, ensure_ascii=False) + "\n"


def _unsent(name: str, min_level: str, alerts: Sequence[AlertMessage]) -> tuple[str, ...]:
    """Alerts the daemon never routes to this notifier: `info`, or below its `min_level`."""
    return tuple(
        f"alert {a.alert_id} ({a.level}) is below min_level {min_level} of '{name}': "
        "it is never sent through it"
        for a in alerts
        if a.level == "info" or level_rank(a.level) < level_rank(min_level)
    )


def write_preview(config: Config, request: PreviewRequest, output: str) -> str:
    """Render and write to `output` (`-`: stdout); returns what was written, and any notes."""
    preview = render(config, request)
    text = preview.text if preview.text.endswith("\n") else preview.text + "\n"
    if output == STDOUT:
        sys.stdout.write(text)
        sys.stdout.flush()
        where = ""
    else:
        path = Path(output)
        try:
            path.write_text(text, encoding="utf-8", newline="\n")
        except OSError as e:
            raise MonitorError(f"{path}: cannot write the preview ({e.strerror or e})") from None
        where = f" written to {path} ({len(text.encode())} bytes)"
    lines = [f"{request.notifier}: {preview.what}{where}"]
    return "\n".join(lines + [f"note: {note}" for note in preview.notes])


__all__ = [
    "Preview",
    "PreviewRequest",
    "PreviewUsageError",
    "load_alerts",
    "render",
    "write_preview",
]
