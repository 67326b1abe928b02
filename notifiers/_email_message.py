"""Building the alert email: validated addresses, an injection-proof subject, threading headers, and
a multipart/alternative body from the Jinja2 templates in notifiers/templates (HTML autoescaped)."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from datetime import UTC, datetime
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime, getaddresses, make_msgid
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from monitor.errors import ConfigError
from monitor.model import AlertMessage
from notifiers._text import (
    Segment,
    clean,
    highlight,
    iso_time,
    level_label,
    matched_terms,
    plain_snippet,
    safe_link,
    snippet,
    truncate,
)

# RFC 5322 §2.1.1 asks for lines under 78 characters: folding handles that, readers need a cap.
SUBJECT_CHARS = 200
_ADDR = re.compile(r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?")
_MSGID = re.compile(r"<[^<>\s@]+@[^<>\s@]+>")
LEVEL_COLORS = {
    "info": "#5f6b7a",
    "low": "#2f6f4f",
    "medium": "#9a6700",
    "high": "#b3261e",
    "critical": "#6e0d0d",
}

TEMPLATES = Environment(
    loader=PackageLoader("notifiers", "templates"),
    autoescape=select_autoescape(
        enabled_extensions=("html.j2",), disabled_extensions=("txt.j2",), default=True
    ),
    undefined=StrictUndefined,
    trim_blocks=True,
    keep_trailing_newline=True,
)


def parse_address(value: str, what: str) -> Address:
    """One mailbox (`Name <user@example.org>` or `user@example.org`), or ConfigError. Control
    characters and lists are refused so a config value can never add a header or a recipient."""
    if any(unicodedata.category(ch) in ("Cc", "Cf") for ch in value):
        raise ConfigError(f"{what}: an address cannot contain control characters or line breaks")
    pairs = getaddresses([value])
    if len(pairs) != 1 or not _ADDR.fullmatch(pairs[0][1]):
        raise ConfigError(f"{what}: {value!r} is not one email address like name@example.org")
    name, addr = pairs[0]
    local, domain = addr.rsplit("@", 1)
    try:
        return Address(display_name=clean(name), username=local, domain=domain)
    except (ValueError, IndexError):
        raise ConfigError(f"{what}: {value!r} is not a valid email address") from None


def subject(alert: AlertMessage) -> str:
    """`[HIGH] <rule title>: <item title>`, one line, capped: feed text can never start a new
    header."""
    text = f"[{level_label(alert)}] {clean(alert.rule_title)}: {clean(alert.title) or '(untitled)'}"
    return truncate(text, SUBJECT_CHARS)


@dataclass(frozen=True)
class Sender:
    """Who sends, and the domain used for Message-ID and List-Id."""

    from_: Address
    to: tuple[Address, ...]

    @property
    def domain(self) -> str:
        return self.from_.domain.lower()


def title_segments(alert: AlertMessage, title: str) -> list[Segment]:
    """The title with matched words marked, unless it had to be cut (offsets would not fit)."""
    segments = highlight(alert.title, alert.matches, "title")
    if "".join(s.text for s in segments) != title:
        return [Segment(title)]
    return segments


def _context(alert: AlertMessage, subject_line: str) -> dict[str, Any]:
    segments = snippet(alert)
    title = truncate(clean(alert.title), 500) or "(untitled)"
    source = clean(alert.source_name) or clean(alert.source_id)
    also = [
        {
            "source": clean(o.source_name or o.source_id),
            "title": truncate(clean(o.title), 300),
            "link": safe_link(o.link),
        }
        for o in alert.also
    ]
    return {
        "subject": subject_line,
        "level": level_label(alert),
        "level_color": level_color(alert.level),
        "rule_id": clean(alert.rule_id),
        "rule_title": clean(alert.rule_title),
        "alert_id": alert.alert_id,
        "title": title,
        "title_segments": title_segments(alert, title),
        "link": safe_link(alert.link),
        "source": source,
        "published": iso_time(alert.published),
        "snippet": segments,
        "snippet_text": plain_snippet(segments),
        "terms": matched_terms(alert),
        "also": also,
    }


def render_bodies(alert: AlertMessage, subject_line: str) -> tuple[str, str]:
    """(plain text, HTML)."""
    context = _context(alert, subject_line)
    text = TEMPLATES.get_template("alert.txt.j2").render(
        {**context, "snippet": context["snippet_text"]}
    )
    html = TEMPLATES.get_template("alert.html.j2").render(context)
    return text, html


def level_color(level: str) -> str:
    return LEVEL_COLORS.get(level, LEVEL_COLORS["info"])


def new_message(
    sender: Sender, subject_line: str, *, idstring: str, now: datetime | None = None
) -> EmailMessage:
    """The headers every email we send carries, single alert or digest: the subject must already
    be one clean line."""
    msg = EmailMessage(policy=SMTP)
    msg["Subject"] = subject_line
    msg["From"] = sender.from_
    msg["To"] = sender.to
    msg["Date"] = format_datetime(now or datetime.now(UTC))
    msg["Message-ID"] = make_msgid(idstring, domain=sender.domain)
    msg["List-Id"] = f"<source-monitor.{sender.domain}>"
    # RFC 3834: automatic mail; stops vacation auto-replies looping back.
    msg["Auto-Submitted"] = "auto-generated"
    msg["X-Auto-Response-Suppress"] = "All"
    return msg


def attach_bodies(msg: EmailMessage, text: str, html: str) -> None:
    """Plain text first: RFC 2046 §5.1.4 puts the preferred (richest) alternative last."""
    msg.set_content(text, subtype="plain", charset="utf-8")
    msg.add_alternative(html, subtype="html", charset="utf-8")


def build_message(
    alert: AlertMessage, sender: Sender, *, now: datetime | None = None
) -> EmailMessage:
    line = subject(alert)
    msg = new_message(sender, line, idstring=f"alert{alert.alert_id}", now=now)
    msg["X-Monitor-Rule"] = clean(alert.rule_id)[:100]
    msg["X-Monitor-Level"] = alert.level
    if alert.thread_root and _MSGID.fullmatch(alert.thread_root):
        msg["In-Reply-To"] = alert.thread_root
        msg["References"] = alert.thread_root
    attach_bodies(msg, *render_bodies(alert, line))
    return msg


__all__ = [
    "LEVEL_COLORS",
    "SUBJECT_CHARS",
    "TEMPLATES",
    "Sender",
    "attach_bodies",
    "build_message",
    "level_color",
    "new_message",
    "parse_address",
    "render_bodies",
    "subject",
    "title_segments",
]
