"""The Store's side of delivering: leasing due deliveries to senders and recording each outcome."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from datetime import datetime, timedelta

from monitor.model import AlertMessage

from . import _deliveries, _views
from ._engine import Database
from ._types import DeliveryJob


class DeliveryStore:
    """Store methods for the pending deliveries; each runs in its own transaction."""

    _db: Database

    def claim_deliveries(
        self,
        instance_id: str,
        now: datetime,
        *,
        limit: int,
        lease: timedelta,
        notifiers: Collection[str],
    ) -> list[DeliveryJob]:
        """Lease up to `limit` due pending deliveries for these notifiers, earliest first."""
        with self._db.write("cannot claim deliveries") as conn:
            return _deliveries.claim_deliveries(
                self._db, conn, instance_id, now, limit=limit, lease=lease, notifiers=notifiers
            )

    def alert_message(self, alert_id: int, *, notifier: str | None = None) -> AlertMessage | None:
        """One stored alert as `notifier` is handed it (threaded under its story's first message
        through that notifier), for previews; None when no alert has this id."""
        with self._db.read("cannot read the alert") as conn:
            return _views.alert_message(conn, alert_id, notifier)

    def mark_sent(self, delivery_id: int, now: datetime, *, message_id: str | None = None) -> None:
        values = {
            "status": "sent",
            "sent_at": now,
            "message_id": message_id,
            "next_attempt_at": None,
        }
        self._mark(delivery_id, values, attempted=True)

    def mark_retry(
        self,
        delivery_id: int,
        now: datetime,
        *,
        next_attempt_at: datetime,
        error: str,
        attempted: bool = True,
        instance_id: str | None = None,
    ) -> None:
        """Try again at `next_attempt_at`; attempted=False hands back a delivery that was claimed
        but not tried (its batch stopped at an outage), without counting an attempt. With
        `instance_id`, nothing changes once another instance holds the lease."""
        values = {"next_attempt_at": next_attempt_at, "last_error": error}
        self._mark(delivery_id, values, attempted=attempted, owner=instance_id)

    def mark_failed(
        self, delivery_id: int, now: datetime, *, error: str, attempted: bool = True
    ) -> None:
        """The receiver refused for good (or, with attempted=False, it cannot be sent at all)."""
        values = {"status": "failed", "last_error": error, "next_attempt_at": None}
        self._mark(delivery_id, values, attempted=attempted)

    def mark_dead(
        self, delivery_id: int, now: datetime, *, error: str, attempted: bool = True
    ) -> None:
        """Gave up after retrying for too long."""
        values = {"status": "dead", "last_error": error, "next_attempt_at": None}
        self._mark(delivery_id, values, attempted=attempted)

    def _mark(
        self,
        delivery_id: int,
        values: Mapping[str, object],
        *,
        attempted: bool,
        owner: str | None = None,
    ) -> None:
        with self._db.write("cannot record the delivery") as conn:
            _deliveries.mark(conn, delivery_id, dict(values), attempted=attempted, owner=owner)

    def next_delivery_at(self) -> datetime | None:
        """When the earliest pending delivery can next be claimed; None when none is pending."""
        with self._db.read("cannot read deliveries") as conn:
            return _deliveries.next_delivery_at(conn)

    def oldest_pending(self, notifier: str) -> datetime | None:
        """Creation time of the oldest delivery still pending for `notifier`; None when none is."""
        with self._db.read("cannot read deliveries") as conn:
            return _deliveries.oldest_pending(conn, notifier)
