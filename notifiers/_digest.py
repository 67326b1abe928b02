"""Digests: every alert of one period in a single email, grouped by rule.

The delivery loop collects a digest notifier's pending deliveries once per period and hands them to
`send_digest`; one SendOutcome then stands for all of them (the digest is one message: it is
accepted or refused as a whole).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from typing import Protocol, runtime_checkable

from monitor.errors import ConfigError
from monitor.model import AlertMessage, Level, level_rank
from notifiers._base import Notifier, SendOutcome
from notifiers._email_message import (
    SUBJECT_CHARS,
    TEMPLATES,
    Sender,
    attach_bodies,
    level_color,
    new_message,
    title_segments,
)
from notifiers._text import (
    Segment,
    clean,
    iso_time,
    plain_snippet,
    safe_link,
    snippet,
    truncate,
)

SUBJECT_PREFIX = "[source-monitor]"
# A digest of a flood (a feed republishing its archive) must still be a message a mail server
# accepts and a client opens: about 2 KB of HTML per entry keeps 500 entries near 1 MB. The rest
# are counted per rule and remain listed by `monitor alerts`.
MAX_ENTRIES = 500
DIGEST_SNIPPET_CHARS = 240  # shorter than a single alert's: a digest is scanned, not read
_RULE_IN_SUBJECT = 40
_TITLE_CHARS = 300
_ALSO_SHOWN = 5
DEFAULT_PREVIEW_PERIOD = timedelta(hours=1)


@runtime_checkable
class DigestCapable(Protocol):
    """A notifier that can send many alerts as one message."""

    async def send_digest(
        self, alerts: Sequence[AlertMessage], *, period: timedelta
    ) -> SendOutcome: ...


@runtime_checkable
class _DigestPreviewable(Protocol):
    def digest_preview(self, alerts: Sequence[AlertMessage], *, period: timedelta) -> str: ...


def supports_digest(notifier: Notifier) -> bool:
    """Whether `notifier` has `send_digest`. Whether it should use it is its settings' `digest`."""
    return isinstance(notifier, DigestCapable)


def render_digest_preview(
    notifier: Notifier, alerts: Sequence[AlertMessage], *, period: timedelta | None = None
) -> str:
    """The HTML body of the digest `notifier` would send for `alerts`. The period named in it is
    `period`, else the notifier's `digest` setting, else one hour. ConfigError for a notifier that
    sends no digests."""
    if not isinstance(notifier, _DigestPreviewable):
        raise ConfigError(f"notifier {notifier.name!r} does not send digests (only email does)")
    chosen = period or getattr(notifier.settings, "digest", None) or DEFAULT_PREVIEW_PERIOD
    return notifier.digest_preview(alerts, period=chosen)


# ------------------------------------------------------------------------------------- grouping


@dataclass(frozen=True)
class RuleSection:
    """The alerts of one rule, newest first; `level` is the highest among them."""

    rule_id: str
    title: str
    level: Level
    alerts: tuple[AlertMessage, ...]


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def alert_time(alert: AlertMessage) -> datetime:
    """When the item appeared: its published time, but never after we alerted on it (feeds
    post-date items), and the alert's time for items without a date."""
    created = _utc(alert.created)
    return min(_utc(alert.published), created) if alert.published else created


def group_by_rule(alerts: Sequence[AlertMessage]) -> list[RuleSection]:
    """Sections ordered by level, highest first, then by rule title so a rule keeps its place from
    one digest to the next; inside a section, newest first."""
    by_rule: dict[str, list[AlertMessage]] = {}
    for alert in alerts:
        by_rule.setdefault(alert.rule_id, []).append(alert)
    sections = []
    for rule_id, members in by_rule.items():
        members.sort(key=lambda a: (alert_time(a), a.alert_id), reverse=True)
        level = max((a.level for a in members), key=level_rank)
        title = clean(members[0].rule_title) or clean(rule_id)
        sections.append(RuleSection(rule_id, title, level, tuple(members)))
    sections.sort(key=lambda s: (-level_rank(s.level), s.title.casefold(), s.rule_id))
    return sections


def period_label(period: timedelta) -> str:
    """`1h`, `1h30m`, `2d`, `45s`: the config's own notation."""
    seconds = max(0, round(period.total_seconds()))
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        count, seconds = divmod(seconds, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts) or "0s"


def _headline(sections: Sequence[RuleSection], period: timedelta) -> str:
    total = sum(len(s.alerts) for s in sections)
    noun = "alert" if total == 1 else "alerts"
    return f"{total} {noun} in the last {period_label(period)}"


def digest_subject(sections: Sequence[RuleSection], period: timedelta) -> str:
    """`[source-monitor] 50 alerts in the last 1h: KN-23 (12), DPRK troops (30), +2 more`: as many
    rules as fit in one capped line, in section order. Titles are cleaned, so no CR/LF."""
    head = f"{SUBJECT_PREFIX} {_headline(sections, period)}"
    parts = [f"{truncate(s.title, _RULE_IN_SUBJECT)} ({len(s.alerts)})" for s in sections]
    for shown in range(len(parts), 0, -1):
        rest = len(parts) - shown
        line = f"{head}: {', '.join(parts[:shown])}" + (f", +{rest} more" if rest else "")
        if len(line) <= SUBJECT_CHARS:
            return line
    return truncate(head, SUBJECT_CHARS)


# ------------------------------------------------------------------------------------ rendering


@dataclass(frozen=True)
class _Also:
    source: str
    link: str | None


@dataclass(frozen=True)
class _Entry:
    title: str
    title_segments: list[Segment]
    link: str | None
    source: str
    time: str
    snippet: list[Segment]
    snippet_text: str
    also: list[_Also]
    also_more: int


@dataclass(frozen=True)
class _Section:
    anchor: str
    title: str
    level: str
    level_color: str
    count: int
    entries: list[_Entry]
    hidden: int


def _when(alert: AlertMessage) -> str:
    if alert.published is None:
        return f"no date (alerted {iso_time(alert.created)})"
    return iso_time(alert_time(alert))


def _entry(alert: AlertMessage) -> _Entry:
    title = truncate(clean(alert.title), _TITLE_CHARS) or "(untitled)"
    segments = snippet(alert, DIGEST_SNIPPET_CHARS)
    also = [
        _Also(clean(o.source_name) or clean(o.source_id), safe_link(o.link)) for o in alert.also
    ]
    return _Entry(
        title=title,
        title_segments=title_segments(alert, title),
        link=safe_link(alert.link),
        source=clean(alert.source_name) or clean(alert.source_id),
        time=_when(alert),
        snippet=segments,
        snippet_text=plain_snippet(segments),
        also=also[:_ALSO_SHOWN],
        also_more=max(0, len(also) - _ALSO_SHOWN),
    )


def _sections(groups: Sequence[RuleSection], limit: int) -> list[_Section]:
    """Entries in section order until `limit` is spent; a section past it shows its count only."""
    out = []
    budget = limit
    for number, group in enumerate(groups, 1):
        shown = group.alerts[: max(0, budget)]
        budget -= len(shown)
        out.append(
            _Section(
                anchor=f"rule-{number}",
                title=group.title,
                level=group.level.upper(),
                level_color=level_color(group.level),
                count=len(group.alerts),
                entries=[_entry(a) for a in shown],
                hidden=len(group.alerts) - len(shown),
            )
        )
    return out


def render_digest(
    alerts: Sequence[AlertMessage], period: timedelta, *, limit: int = MAX_ENTRIES
) -> tuple[str, str, str]:
    """(subject, plain text, HTML) of the digest of `alerts`."""
    groups = group_by_rule(alerts)
    line = digest_subject(groups, period)
    context = {
        "subject": line,
        "headline": _headline(groups, period),
        "sections": _sections(groups, limit),
        "rule_ids": ", ".join(clean(g.rule_id) for g in groups),
    }
    text = TEMPLATES.get_template("digest.txt.j2").render(context)
    html = TEMPLATES.get_template("digest.html.j2").render(context)
    return line, text, html


def build_digest_message(
    alerts: Sequence[AlertMessage],
    sender: Sender,
    period: timedelta,
    *,
    now: datetime | None = None,
    limit: int = MAX_ENTRIES,
) -> EmailMessage:
    """One multipart/alternative email for all of `alerts` (at least one)."""
    if not alerts:
        raise ValueError("a digest needs at least one alert")
    line, text, html = render_digest(alerts, period, limit=limit)
    msg = new_message(sender, line, idstring="digest", now=now)
    msg["X-Monitor-Level"] = max((a.level for a in alerts), key=level_rank)
    msg["X-Monitor-Digest"] = str(len(alerts))
    attach_bodies(msg, text, html)
    return msg


__all__ = [
    "DEFAULT_PREVIEW_PERIOD",
    "DIGEST_SNIPPET_CHARS",
    "MAX_ENTRIES",
    "SUBJECT_PREFIX",
    "DigestCapable",
    "RuleSection",
    "alert_time",
    "build_digest_message",
    "digest_subject",
    "group_by_rule",
    "period_label",
    "render_digest",
    "render_digest_preview",
    "supports_digest",
]
