"""Deliveries: leasing due ones to senders, recording each outcome (sent, retry, failed, dead)."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Row

from ._engine import Database
from ._schema import UTCDateTime, deliveries
from ._types import DeliveryJob
from ._views import alert_rows, also_reported, message, sent_in_stories, thread_root


def claim_deliveries(
    db: Database,
    conn: Connection,
    instance_id: str,
    now: datetime,
    *,
    limit: int,
    lease: timedelta,
    notifiers: Collection[str],
) -> list[DeliveryJob]:
    if limit <= 0 or not notifiers:
        return []
    due = (
        sa.select(deliveries.c.id)
        .where(
            deliveries.c.status == "pending",
            deliveries.c.next_attempt_at <= now,
            deliveries.c.notifier.in_(sorted(notifiers)),
            sa.or_(deliveries.c.lease_owner.is_(None), deliveries.c.lease_until <= now),
        )
        .order_by(deliveries.c.next_attempt_at, deliveries.c.id)
        .limit(limit)
    )
    claimed = list(
        conn.execute(
            deliveries.update()
            .where(deliveries.c.id.in_(db.lock_rows(due).scalar_subquery()))
            .values(lease_owner=instance_id, lease_until=now + lease)
            .returning(
                deliveries.c.id,
                deliveries.c.alert_id,
                deliveries.c.notifier,
                deliveries.c.attempts,
                deliveries.c.created_at,
                deliveries.c.next_attempt_at,
            )
        )
    )
    claimed.sort(key=lambda row: (row.next_attempt_at, row.id))
    return _jobs(conn, claimed)


def _jobs(conn: Connection, claimed: Sequence[Row[Any]]) -> list[DeliveryJob]:
    """The claimed rows with everything their notifiers need to send them."""
    context = alert_rows(conn, sorted({row.alert_id for row in claimed}))
    stories = {row.story_id for row in context.values()}
    also = also_reported(conn, stories)
    # "A story's later alerts thread under the first": looked up at claim time, so an alert
    # threads under whatever of its story went out through the same notifier before it.
    sent = sent_in_stories(conn, stories, {row.notifier for row in claimed})
    jobs = []
    for row in claimed:
        alert = context[row.alert_id]
        root = thread_root(sent.get((alert.story_id, row.notifier), []), row.alert_id)
        jobs.append(
            DeliveryJob(
                delivery_id=row.id,
                notifier=row.notifier,
                attempts=row.attempts,
                created=row.created_at,
                alert=message(alert, also.get(alert.story_id, []), root),
            )
        )
    return jobs


def pending(alert_id: int, notifier: str, now: datetime) -> dict[str, Any]:
    """A new delivery row: due now, never tried."""
    return {
        "alert_id": alert_id,
        "notifier": notifier,
        "status": "pending",
        "attempts": 0,
        "next_attempt_at": now,
        "created_at": now,
    }


def mark(
    conn: Connection,
    delivery_id: int,
    values: dict[str, Any],
    *,
    attempted: bool,
    owner: str | None = None,
) -> None:
    """Record an outcome and release the lease. Only a pending delivery changes: a late report
    from a sender whose lease expired never overwrites a final state. With `owner`, only while
    that sender still holds the lease (or nobody does): a late "retry later" must not release a
    lease another instance took over and is sending under."""
    if attempted:
        values["attempts"] = deliveries.c.attempts + 1
    where = [deliveries.c.id == delivery_id, deliveries.c.status == "pending"]
    if owner is not None:
        where.append(sa.or_(deliveries.c.lease_owner == owner, deliveries.c.lease_owner.is_(None)))
    conn.execute(
        deliveries.update()
        .where(*where)
        .values({**values, "lease_owner": None, "lease_until": None})
    )


def next_delivery_at(conn: Connection) -> datetime | None:
    """Earliest time a pending delivery can be claimed: its next attempt, or its lease's end when a
    sender holds it past that."""
    leased = sa.and_(
        deliveries.c.lease_until.is_not(None),
        deliveries.c.lease_until > deliveries.c.next_attempt_at,
    )
    ready = sa.case((leased, deliveries.c.lease_until), else_=deliveries.c.next_attempt_at)
    query = sa.select(sa.func.min(sa.type_coerce(ready, UTCDateTime))).where(
        deliveries.c.status == "pending"
    )
    value = conn.execute(query).scalar_one_or_none()
    if value is None:
        return None
    assert isinstance(value, datetime)
    return value


def oldest_pending(conn: Connection, notifier: str) -> datetime | None:
    """When the oldest delivery still pending for `notifier` was created (digests wait on it)."""
    oldest = sa.func.min(sa.type_coerce(deliveries.c.created_at, UTCDateTime))
    query = sa.select(sa.type_coerce(oldest, UTCDateTime)).where(
        deliveries.c.status == "pending", deliveries.c.notifier == notifier
    )
    value = conn.execute(query).scalar_one_or_none()
    if value is None:
        return None
    assert isinstance(value, datetime)
    return value
