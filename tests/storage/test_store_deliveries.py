"""Deliveries: claiming with leases, the sent/retry/failed/dead state machine, alert views."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from monitor.model import AlsoReported, Span
from storage import DeliveryJob, Store
from tests.storage.storefakes import LEASE, T0, ingest, item, spec

MIN = timedelta(minutes=1)
BOTH = ("console", "email")


@pytest.fixture
def alerted(store: Store) -> Store:
    """One kn23 alert on a story told by a (first) and b; console + email deliveries pending."""
    store.sync_sources([spec("a", name="Agency A"), spec("b", name="")], T0)
    for source in ("a", "b"):
        ingest(store, source, [], now=T0 - 2 * MIN)
    link = "https://news.example/kn23"
    first = item(
        "a", "a1", "North Korean KN-23 used", link=link, summary="<b>untrusted</b>", published=T0
    )
    ingest(store, "a", [first], now=T0)
    ingest(store, "b", [item("b", "b1", "KN-23 seen", link=link)], now=T0 + MIN)
    return store


def claim(store: Store, now: datetime = T0, *, instance: str = "i1") -> list[DeliveryJob]:
    return store.claim_deliveries(instance, now, limit=10, lease=LEASE, notifiers=BOTH)


def test_claim_builds_the_alert_message(alerted: Store) -> None:
    jobs = claim(alerted)
    assert [job.notifier for job in jobs] == ["console", "email"]
    job = jobs[0]
    assert (job.attempts, job.created) == (0, T0)
    alert = job.alert
    assert (alert.rule_id, alert.rule_title, alert.level) == ("kn23", "Rule kn23", "high")
    assert (alert.title, alert.link, alert.summary) == (
        "North Korean KN-23 used",
        "https://news.example/kn23",
        "<b>untrusted</b>",
    )
    assert (alert.source_id, alert.source_name, alert.published, alert.created) == (
        "a",
        "Agency A",
        T0,
        T0,
    )
    assert alert.matches == (Span("title", 13, 18, "KN-23"),)
    # b has no display name: its id stands in
    assert alert.also == (AlsoReported("b", "b", "KN-23 seen", "https://news.example/kn23"),)
    assert alert.story_id is not None and jobs[1].alert == alert


def test_claim_respects_leases_notifiers_and_due_time(alerted: Store) -> None:
    store = alerted
    assert store.claim_deliveries("i1", T0 - MIN, limit=10, lease=LEASE, notifiers=BOTH) == []
    assert store.claim_deliveries("i1", T0, limit=10, lease=LEASE, notifiers=[]) == []
    assert store.claim_deliveries("i1", T0, limit=0, lease=LEASE, notifiers=BOTH) == []
    only_email = store.claim_deliveries("i1", T0, limit=10, lease=LEASE, notifiers=["email"])
    assert [j.notifier for j in only_email] == ["email"]
    assert [j.notifier for j in claim(store, instance="i2")] == ["console"]
    assert claim(store, T0 + MIN, instance="i3") == []  # both leased
    # a sender that died: its lease runs out and another instance takes over
    assert len(claim(store, T0 + LEASE, instance="i3")) == 2


def test_sent_is_final(alerted: Store) -> None:
    store = alerted
    console, _email = claim(store)
    store.mark_sent(console.delivery_id, T0 + MIN, message_id="<m1@example>")
    store.mark_retry(console.delivery_id, T0 + MIN, next_attempt_at=T0, error="late report")
    states = {d.notifier: d for d in store.list_alerts(T0)[0].deliveries}
    sent = states["console"]
    assert (sent.status, sent.attempts, sent.sent_at, sent.next_attempt, sent.last_error) == (
        "sent",
        1,
        T0 + MIN,
        None,
        None,
    )
    assert states["email"].status == "pending"  # one notifier never marks another


def test_retry_then_dead_and_failed(alerted: Store) -> None:
    store = alerted
    console, email = claim(store)
    store.mark_retry(email.delivery_id, T0, next_attempt_at=T0 + 5 * MIN, error="timeout")
    store.mark_failed(console.delivery_id, T0, error="HTTP 400 bad payload")
    assert store.next_delivery_at() == T0 + 5 * MIN
    assert claim(store, T0 + 4 * MIN) == []
    (again,) = claim(store, T0 + 5 * MIN)
    assert (again.notifier, again.attempts) == ("email", 1)
    store.mark_dead(again.delivery_id, T0 + 5 * MIN, error="gave up after 24h")
    assert store.next_delivery_at() is None
    states = {d.notifier: d for d in store.list_alerts(T0)[0].deliveries}
    assert (states["email"].status, states["email"].attempts) == ("dead", 2)
    assert states["email"].last_error == "gave up after 24h"
    assert (states["console"].status, states["console"].attempts) == ("failed", 1)
    assert claim(store, T0 + LEASE * 10) == []


def test_marks_without_a_send_keep_the_attempt_count(alerted: Store) -> None:
    store = alerted
    console, email = claim(store)
    store.mark_failed(console.delivery_id, T0, error="notifier removed", attempted=False)
    store.mark_dead(email.delivery_id, T0, error="too old", attempted=False)
    assert [d.attempts for d in store.list_alerts(T0)[0].deliveries] == [0, 0]


def test_next_delivery_waits_for_a_held_lease(alerted: Store) -> None:
    store = alerted
    assert store.next_delivery_at() == T0
    claim(store)
    assert store.next_delivery_at() == T0 + LEASE


def test_release_instance_hands_back_leases(alerted: Store) -> None:
    store = alerted
    store.acquire_instance("i1", T0)
    assert len(claim(store)) == 2
    store.release_instance("i1")
    assert len(claim(store, instance="i2")) == 2


def test_list_alerts_newest_first_since(alerted: Store) -> None:
    store = alerted
    ingest(store, "b", [item("b", "b2", "Ammunition depot burns")], now=T0 + 2 * MIN)
    assert [a.rule for a in store.list_alerts(T0)] == ["depot", "kn23"]
    assert [a.rule for a in store.list_alerts(T0 + MIN)] == ["depot"]
    assert [a.rule for a in store.list_alerts(T0, limit=1)] == ["depot"]
    depot = store.list_alerts(T0)[0]
    assert (depot.source, depot.source_name, depot.also) == ("b", "b", ())
    assert depot.spans == (Span("title", 11, 16, "depot"),)


def test_a_late_retry_never_releases_a_lease_taken_over(alerted: Store) -> None:
    store = alerted
    [job, _] = claim(store, T0, instance="i1")
    taken = claim(store, T0 + LEASE, instance="i2")  # i1 stalled past its lease; i2 took over
    assert job.delivery_id in {j.delivery_id for j in taken}
    # i1 wakes up and reports "retry later": i2 is still sending, so nothing changes
    later = T0 + LEASE + MIN
    store.mark_retry(job.delivery_id, later, next_attempt_at=later, error="late", instance_id="i1")
    assert claim(store, later, instance="i3") == []  # i2's lease still holds
    store.mark_sent(job.delivery_id, later)
    [view] = [d for a in store.list_alerts(T0 - MIN) for d in a.deliveries if d.status == "sent"]
    assert view.last_error is None  # the stale report left no trace
