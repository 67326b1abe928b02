"""Reading alerts back with their item, source, other sources of the story and delivery state."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Row

from monitor.model import AlertMessage, AlsoReported, Span

from ._engine import chunks
from ._schema import UTCDateTime, alerts, deliveries, items, sources
from ._types import AlertView, DeliveryView

# A rule alert takes its text and source from its item; a system alert (no item) carries its own.
_SOURCE_ID = sa.func.coalesce(items.c.source_id, alerts.c.source_id)

_ALERT_COLUMNS = (
    alerts.c.id,
    alerts.c.rule_id,
    alerts.c.rule_title,
    alerts.c.level,
    alerts.c.story_id,
    alerts.c.created_at,
    alerts.c.spans,
    sa.func.coalesce(items.c.title, alerts.c.title, "").label("title"),
    sa.func.coalesce(items.c.link, alerts.c.link).label("link"),
    sa.func.coalesce(items.c.summary, alerts.c.summary, "").label("summary"),
    # a system alert is published by the monitor itself, when it is raised
    sa.type_coerce(
        sa.case((alerts.c.item_id.is_(None), alerts.c.created_at), else_=items.c.published_at),
        UTCDateTime,
    ).label("published_at"),
    _SOURCE_ID.label("source_id"),
    sources.c.name.label("source_name"),
)


def _alert_query() -> sa.Select[Any]:
    return (
        sa.select(*_ALERT_COLUMNS)
        .outerjoin(items, items.c.id == alerts.c.item_id)
        .join(sources, sources.c.id == _SOURCE_ID)
    )


def alert_rows(conn: Connection, alert_ids: Sequence[int]) -> dict[int, Row[Any]]:
    found: dict[int, Row[Any]] = {}
    for part in chunks(alert_ids):
        found.update(
            {row.id: row for row in conn.execute(_alert_query().where(alerts.c.id.in_(part)))}
        )
    return found


def also_reported(
    conn: Connection, story_ids: Iterable[int | None]
) -> dict[int, list[AlsoReported]]:
    """Per story, the first item of each source, in the order the sources reported it. System
    alerts have no story (None): nothing to look up for them."""
    per_story: dict[int, list[AlsoReported]] = defaultdict(list)
    seen: set[tuple[int, str]] = set()
    for part in chunks(sorted({story_id for story_id in story_ids if story_id is not None})):
        query = (
            sa.select(
                items.c.story_id, items.c.source_id, items.c.title, items.c.link, sources.c.name
            )
            .join(sources, sources.c.id == items.c.source_id)
            .where(items.c.story_id.in_(part))
            .order_by(items.c.fetched_at, items.c.id)
        )
        for row in conn.execute(query):
            if (row.story_id, row.source_id) in seen:
                continue
            seen.add((row.story_id, row.source_id))
            per_story[row.story_id].append(
                AlsoReported(row.source_id, row.name or row.source_id, row.title, row.link)
            )
    return per_story


def others(also: Sequence[AlsoReported], source_id: str) -> tuple[AlsoReported, ...]:
    return tuple(entry for entry in also if entry.source_id != source_id)


def spans(stored: Sequence[dict[str, Any]]) -> tuple[Span, ...]:
    return tuple(Span(s["field"], int(s["start"]), int(s["end"]), s["text"]) for s in stored)


def message(
    row: Row[Any], also: Sequence[AlsoReported], thread_root: str | None = None
) -> AlertMessage:
    return AlertMessage(
        alert_id=row.id,
        rule_id=row.rule_id,
        rule_title=row.rule_title,
        level=row.level,
        title=row.title,
        link=row.link,
        source_id=row.source_id,
        source_name=row.source_name or row.source_id,
        published=row.published_at,
        created=row.created_at,
        summary=row.summary,
        matches=spans(row.spans),
        also=others(also, row.source_id),
        story_id=row.story_id,
        thread_root=thread_root,
    )


@dataclass(frozen=True)
class _Sent:
    alert_id: int
    message_id: str
    sent_at: datetime


def sent_in_stories(
    conn: Connection, story_ids: Iterable[int | None], notifiers: Collection[str]
) -> dict[tuple[int, str], list[_Sent]]:
    """Per (story, notifier), the deliveries sent with a message id, earliest first: the messages a
    later alert of the story can thread under."""
    story_of = _alerts_of(conn, {story_id for story_id in story_ids if story_id is not None})
    rows: list[Row[Any]] = []
    for part in chunks(sorted(story_of)) if notifiers else ():
        query = sa.select(
            deliveries.c.id,
            deliveries.c.alert_id,
            deliveries.c.notifier,
            deliveries.c.status,
            deliveries.c.message_id,
            deliveries.c.sent_at,
        ).where(deliveries.c.alert_id.in_(part), deliveries.c.notifier.in_(sorted(notifiers)))
        rows.extend(conn.execute(query))
    # Status is checked here, not in SQL: given `status = 'sent'`, SQLite reads every delivery ever
    # sent through the status index instead of seeking these few alerts' deliveries.
    sent = sorted(
        (row for row in rows if row.status == "sent" and row.message_id is not None),
        key=lambda row: (row.sent_at, row.id),
    )
    found: dict[tuple[int, str], list[_Sent]] = defaultdict(list)
    for row in sent:
        found[(story_of[row.alert_id], row.notifier)].append(
            _Sent(row.alert_id, row.message_id, row.sent_at)
        )
    return found


def _alerts_of(conn: Connection, story_ids: Collection[int]) -> dict[int, int]:
    """alert id -> story id, for every alert of these stories. Alerts have no index on story_id
    alone, so this seeks the unique (rule_id, story_id) index once per rule and story instead of
    reading every alert ever raised: rules are few, alerts grow without end."""
    if not story_ids:
        return {}
    seed = sa.select(sa.func.min(alerts.c.rule_id).label("id")).cte("rule_ids", recursive=True)
    after = sa.select(sa.func.min(alerts.c.rule_id)).where(alerts.c.rule_id > seed.c.id)
    rule_ids = seed.union_all(sa.select(after.scalar_subquery()).where(seed.c.id.is_not(None)))
    every_rule = sa.select(rule_ids.c.id).where(rule_ids.c.id.is_not(None))
    found: dict[int, int] = {}
    for part in chunks(sorted(story_ids)):
        query = sa.select(alerts.c.id, alerts.c.story_id).where(
            alerts.c.rule_id.in_(every_rule), alerts.c.story_id.in_(part)
        )
        found.update({row.id: row.story_id for row in conn.execute(query)})
    return found


def thread_root(
    sent: Sequence[_Sent], alert_id: int, *, sent_at: datetime | None = None
) -> str | None:
    """The message a story's later alert threads under: the earliest one sent for another alert of
    the story (a rule alerts once per story, so another alert means another rule). For an alert
    already sent, only what was sent before it counts: its own email was threaded that way."""
    for entry in sent:
        if sent_at is not None and entry.sent_at >= sent_at:
            return None
        if entry.alert_id != alert_id:
            return entry.message_id
    return None


def alert_message(conn: Connection, alert_id: int, notifier: str | None) -> AlertMessage | None:
    """One stored alert as it is handed to `notifier` (threaded under the story's first message
    through that notifier); None when no alert has this id."""
    row = alert_rows(conn, [alert_id]).get(alert_id)
    if row is None:
        return None
    also = also_reported(conn, [row.story_id]).get(row.story_id, [])
    if notifier is None or row.story_id is None:
        return message(row, also)
    own = conn.execute(
        sa.select(deliveries.c.sent_at).where(
            deliveries.c.alert_id == alert_id,
            deliveries.c.notifier == notifier,
            deliveries.c.status == "sent",
        )
    ).scalar_one_or_none()
    sent = sent_in_stories(conn, [row.story_id], [notifier]).get((row.story_id, notifier), [])
    return message(row, also, thread_root(sent, alert_id, sent_at=own))


def list_alerts(conn: Connection, since: datetime, limit: int | None) -> list[AlertView]:
    query = (
        _alert_query()
        .where(alerts.c.created_at >= since)
        .order_by(alerts.c.created_at.desc(), alerts.c.id.desc())
        .limit(limit)
    )
    rows = conn.execute(query).all()
    also = also_reported(conn, [row.story_id for row in rows])
    states = _delivery_views(conn, [row.id for row in rows])
    return [
        AlertView(
            id=row.id,
            rule=row.rule_id,
            rule_title=row.rule_title,
            level=row.level,
            created=row.created_at,
            title=row.title,
            link=row.link,
            source=row.source_id,
            also=others(also.get(row.story_id, []), row.source_id),
            deliveries=tuple(states.get(row.id, [])),
            spans=spans(row.spans),
            source_name=row.source_name or row.source_id,
            story_id=row.story_id,
        )
        for row in rows
    ]


def _delivery_views(conn: Connection, alert_ids: Sequence[int]) -> dict[int, list[DeliveryView]]:
    views: dict[int, list[DeliveryView]] = defaultdict(list)
    for part in chunks(alert_ids):
        query = (
            sa.select(deliveries)
            .where(deliveries.c.alert_id.in_(part))
            .order_by(deliveries.c.notifier)
        )
        for row in conn.execute(query):
            views[row.alert_id].append(
                DeliveryView(
                    notifier=row.notifier,
                    status=row.status,
                    attempts=row.attempts,
                    last_error=row.last_error,
                    next_attempt=row.next_attempt_at,
                    sent_at=row.sent_at,
                )
            )
    return views
