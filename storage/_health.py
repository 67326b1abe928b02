"""Source health: one system alert when a source has been failing or silent for too long, and one
when it recovers, through the same outbox as rule alerts.

Each time a condition begins is an episode. Its start (`since`) is read from the source's state:
`failing_since` for failing, the last new item (else the first poll) for silent. Every instance
computes the same start, so the episode's unique key lets exactly one raise win, and a recovery is
an UPDATE ... WHERE recovered_at IS NULL that only one transaction can make. On PostgreSQL the
check also runs under an advisory lock so concurrent checks queue instead of racing; SQLite's
BEGIN IMMEDIATE already admits one writer at a time. The state lives in the database, so a restart
neither repeats nor forgets an alert.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Row

from ._deliveries import pending
from ._engine import Database
from ._schema import alerts, deliveries, health_episodes, sources
from ._types import Condition, HealthChange, HealthEvent, HealthKind, HealthText

RULE_ID = "health"
# The migration lock's key ("srcmon") + 2: the next free key after the story lock's.
_LOCK_KEY = 0x7372636D6F6E + 2
_LEVEL: Mapping[HealthKind, str] = {"failing": "high", "silent": "high", "recovered": "low"}

_SOURCES: sa.Select[Any] = (
    sa.select(
        sources.c.id,
        sources.c.name,
        sources.c.url,
        sources.c.status,
        sources.c.error_kind,
        sources.c.error_detail,
        sources.c.last_success_at,
        sources.c.last_new_item_at,
        sources.c.failing_since,
        sources.c.first_poll_at,
    )
    # A disabled source (gone from the config) is neither watched nor reported recovered.
    .where(sources.c.status != "disabled", sources.c.first_poll_at.is_not(None))
    .order_by(sources.c.id)
)


@dataclass(frozen=True)
class Check:
    """One health check: thresholds (None = off), where alerts go and how they read."""

    now: datetime
    failing_after: timedelta | None
    silent_after: timedelta | None
    notify: Sequence[str]
    describe: Callable[[HealthChange], HealthText]

    def thresholds(self) -> dict[Condition, timedelta]:
        found: dict[Condition, timedelta] = {}
        if self.failing_after is not None and self.failing_after > timedelta(0):
            found["failing"] = self.failing_after
        if self.silent_after is not None and self.silent_after > timedelta(0):
            found["silent"] = self.silent_after
        return found


def check_health(db: Database, conn: Connection, check: Check) -> list[HealthEvent]:
    thresholds = check.thresholds()
    if not thresholds:
        return []
    if db.dialect == "postgresql":
        conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _LOCK_KEY})
    episodes = {
        (row.source_id, row.condition): row
        for row in conn.execute(
            sa.select(health_episodes).where(health_episodes.c.recovered_at.is_(None))
        )
    }
    checker = _Checker(db, conn, check)
    events: list[HealthEvent] = []
    for source in conn.execute(_SOURCES).all():
        for condition, after in thresholds.items():
            episode = episodes.get((source.id, condition))
            events.extend(checker.source_events(source, condition, after, episode))
    return events


def _started(source: Row[Any], condition: Condition) -> datetime | None:
    """When the condition, as the source's state shows it now, began; None when it does not hold.
    A source is silent from its last new item, or from its first poll when it never had one."""
    since: datetime | None = (
        source.failing_since
        if condition == "failing"
        else source.last_new_item_at or source.first_poll_at
    )
    return since


class _Checker:
    def __init__(self, db: Database, conn: Connection, check: Check) -> None:
        self.db = db
        self.conn = conn
        self.check = check
        self.now = check.now

    def source_events(
        self, source: Row[Any], condition: Condition, after: timedelta, episode: Row[Any] | None
    ) -> Iterator[HealthEvent]:
        since = _started(source, condition)
        if episode is not None and episode.since == since:
            return  # still going on, and already reported
        if episode is not None:
            event = self._recover(source, episode)
            if event is not None:
                yield event
        if since is not None and self.now - since >= after and self._may_raise(source, condition):
            event = self._raise(source, condition, since)
            if event is not None:
                yield event

    def _may_raise(self, source: Row[Any], condition: Condition) -> bool:
        """A failing source has no new items either: while the failing check covers it, its
        silence is not news, so only a source whose last poll worked is reported silent."""
        if condition == "failing":
            return True
        return source.status == "ok" or "failing" not in self.check.thresholds()

    def _raise(self, source: Row[Any], condition: Condition, since: datetime) -> HealthEvent | None:
        stmt = self.db.insert_ignore(
            health_episodes, ["source_id", "condition", "since"], [health_episodes.c.id]
        )
        row = {
            "source_id": source.id,
            "condition": condition,
            "since": since,
            "reason": source.error_kind if condition == "failing" else None,
            "raised_at": self.now,
        }
        if self.conn.execute(stmt, row).first() is None:
            return None  # another instance raised this episode
        return self._alert(source, self._change(source, condition, condition, since))

    def _recover(self, source: Row[Any], episode: Row[Any]) -> HealthEvent | None:
        ended = self.conn.execute(
            health_episodes.update()
            .where(health_episodes.c.id == episode.id, health_episodes.c.recovered_at.is_(None))
            .values(recovered_at=self.now)
        )
        if ended.rowcount != 1:
            return None  # another instance reported the recovery
        change = self._change(source, "recovered", episode.condition, episode.since)
        if episode.condition == "failing":
            # The source works again, so its state holds no error: name the one it had.
            change = replace(change, error=episode.reason, error_detail=None)
        return self._alert(source, change)

    def _change(
        self, source: Row[Any], kind: HealthKind, condition: Condition, since: datetime
    ) -> HealthChange:
        return HealthChange(
            kind=kind,
            condition=condition,
            source_id=source.id,
            source_name=source.name or source.id,
            url=source.url,
            since=since,
            at=self.now,
            error=source.error_kind,
            error_detail=source.error_detail,
            last_success=source.last_success_at,
            last_new_item=source.last_new_item_at,
        )

    def _alert(self, source: Row[Any], change: HealthChange) -> HealthEvent:
        text = self.check.describe(change)
        alert_id: int = self.conn.execute(
            alerts.insert()
            .values(
                rule_id=RULE_ID,
                rule_title=text.rule_title,
                level=_LEVEL[change.kind],
                created_at=self.now,
                spans=[],
                source_id=source.id,
                title=text.title,
                link=source.url,
                summary=text.summary,
            )
            .returning(alerts.c.id)
        ).scalar_one()
        notifiers = dict.fromkeys(self.check.notify)
        if notifiers:
            self.conn.execute(
                deliveries.insert(), [pending(alert_id, name, self.now) for name in notifiers]
            )
        return HealthEvent(source.id, change.kind, text.title, change.condition, alert_id)
