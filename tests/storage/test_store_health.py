"""Source health: one system alert when a source has failed or been silent too long, one when it
recovers; through the delivery outbox, once across restarts and concurrent instances."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.config import Config as AlembicConfig

from monitor.errors import StorageError
from monitor.health import describe
from storage import AlertView, HealthChange, HealthEvent, HealthText, Store
from storage._engine import _MIGRATIONS, Database, _create_engine, sqlite_path
from storage._schema import alerts, deliveries, items, sources, stories
from tests.storage.storefakes import LEASE, T0, ingest, item, spec

MIN = timedelta(minutes=1)
HOUR = timedelta(hours=1)
DAY = timedelta(days=1)
FAILING = 6 * HOUR
SILENT = 7 * DAY
NOTIFY = ("console", "email")


def check(
    store: Store,
    now: datetime,
    *,
    failing_after: timedelta | None = FAILING,
    silent_after: timedelta | None = SILENT,
    notify: Sequence[str] = NOTIFY,
    wording: Callable[[HealthChange], HealthText] = describe,
) -> list[tuple[str, str, str]]:
    events = store.check_health(
        now,
        failing_after=failing_after,
        silent_after=silent_after,
        notify=notify,
        describe=wording,
    )
    return [(e.source_id, e.kind, e.condition) for e in events]


def fail(store: Store, source_id: str, now: datetime, kind: str = "http_404") -> None:
    store.claim_due_sources("i1", now, limit=100, lease=LEASE, include_not_due=True)
    detail = "HTTP 404 Not Found"
    assert store.record_failure(
        source_id, "i1", now, kind=kind, detail=detail, next_poll_at=now + 15 * MIN
    )


def succeed(store: Store, source_id: str, now: datetime) -> None:
    store.claim_due_sources("i1", now, limit=100, lease=LEASE, include_not_due=True)
    assert store.record_not_modified(source_id, "i1", now, next_poll_at=now + 15 * MIN)


def health_alerts(store: Store) -> list[AlertView]:
    return [a for a in store.list_alerts(T0 - 30 * DAY) if a.rule == "health"]


@pytest.fixture
def watched(store: Store) -> Store:
    store.sync_sources([spec("a", name="Agency A"), spec("b", name="")], T0)
    return store


def test_failing_raises_one_alert_after_failing_after_not_before(watched: Store) -> None:
    store = watched
    for n in range(8):  # a failure every 45 minutes: the run started with the first one
        fail(store, "a", T0 + n * 45 * MIN)
    assert check(store, T0 + FAILING - MIN) == []
    assert check(store, T0 + FAILING + 12 * MIN) == [("a", "failing", "failing")]
    assert check(store, T0 + FAILING + 13 * MIN) == []
    fail(store, "a", T0 + 7 * HOUR)
    assert check(store, T0 + 9 * HOUR) == []
    (alert,) = health_alerts(store)
    assert (alert.rule, alert.rule_title, alert.level) == (
        "health",
        "Source failing: Agency A",
        "high",
    )
    assert alert.title == ("Agency A feed has failed for 6h 12m: http_404 (never succeeded)")
    assert (alert.link, alert.source, alert.source_name) == (
        "https://a.example/feed.xml",
        "a",
        "Agency A",
    )
    assert (alert.also, alert.spans, alert.story_id, alert.created) == (
        (),
        (),
        None,
        T0 + 6 * HOUR + 12 * MIN,
    )
    assert [(d.notifier, d.status) for d in alert.deliveries] == [
        ("console", "pending"),
        ("email", "pending"),
    ]


def test_failing_counts_from_the_first_failure_after_the_last_success(watched: Store) -> None:
    store = watched
    succeed(store, "a", T0)
    fail(store, "a", T0 + HOUR)
    succeed(store, "a", T0 + 3 * HOUR)  # a success ends the run of failures
    fail(store, "a", T0 + 4 * HOUR)
    assert check(store, T0 + 7 * HOUR) == []
    assert check(store, T0 + 10 * HOUR) == [("a", "failing", "failing")]
    (alert,) = health_alerts(store)
    assert alert.title == (
        "Agency A feed has failed for 6h: http_404 (last success 2026-03-01 15:00 UTC)"
    )


def test_recovery_raises_one_low_alert(watched: Store) -> None:
    store = watched
    fail(store, "a", T0, kind="timeout")
    assert check(store, T0 + FAILING) == [("a", "failing", "failing")]
    fail(store, "a", T0 + 7 * HOUR, kind="http_503")
    assert check(store, T0 + 8 * HOUR) == []  # another kind of error is the same run
    succeed(store, "a", T0 + 8 * HOUR + 30 * MIN)
    assert check(store, T0 + 9 * HOUR) == [("a", "recovered", "failing")]
    assert check(store, T0 + 10 * HOUR) == []
    recovered, failing = health_alerts(store)  # newest first
    assert (recovered.rule_title, recovered.level) == ("Source recovered: Agency A", "low")
    assert recovered.title == "Agency A feed works again after failing for 8h 30m (timeout)"
    assert failing.level == "high"
    assert [d.notifier for d in recovered.deliveries] == ["console", "email"]


def test_a_new_run_of_failures_alerts_again(watched: Store) -> None:
    store = watched
    fail(store, "a", T0)
    assert check(store, T0 + FAILING) == [("a", "failing", "failing")]
    # works and breaks again between two checks: the old run ended, a new one began
    succeed(store, "a", T0 + FAILING + MIN)
    fail(store, "a", T0 + FAILING + 2 * MIN)
    assert check(store, T0 + FAILING + 3 * MIN) == [("a", "recovered", "failing")]
    assert check(store, T0 + 2 * FAILING + MIN) == []
    assert check(store, T0 + 2 * FAILING + 2 * MIN) == [("a", "failing", "failing")]
    assert len(health_alerts(store)) == 3


def test_silent_since_the_last_new_item_and_its_recovery(watched: Store) -> None:
    store = watched
    ingest(store, "a", [], now=T0 - DAY)  # first poll: nothing
    ingest(store, "a", [item("a", "a1", "Depot strike reported")], now=T0)
    for day in range(1, 8):
        succeed(store, "a", T0 + day * DAY)
    assert check(store, T0 + SILENT - MIN) == []
    assert check(store, T0 + SILENT + 2 * HOUR) == [("a", "silent", "silent")]
    assert check(store, T0 + SILENT + 3 * HOUR) == []
    (silent,) = health_alerts(store)
    assert (silent.rule_title, silent.level) == ("Source silent: Agency A", "high")
    assert silent.title == (
        "Agency A feed has had no new item for 7d 2h (last new item 2026-03-01 12:00 UTC)"
    )
    ingest(store, "a", [item("a", "a1", "Depot strike reported")], now=T0 + 8 * DAY)
    assert check(store, T0 + 8 * DAY + MIN) == []  # the same item again is not new
    ingest(store, "a", [item("a", "a2", "Another report")], now=T0 + 9 * DAY)
    assert check(store, T0 + 9 * DAY + MIN) == [("a", "recovered", "silent")]
    assert check(store, T0 + 9 * DAY + 2 * MIN) == []
    recovered = health_alerts(store)[0]
    assert (recovered.rule_title, recovered.level) == ("Source recovered: Agency A", "low")
    assert recovered.title == "Agency A feed has a new item again after 9d of silence"


def test_a_source_that_never_had_an_item_is_silent_from_its_first_poll(watched: Store) -> None:
    store = watched
    succeed(store, "b", T0)
    succeed(store, "b", T0 + 5 * DAY)
    assert check(store, T0 + SILENT) == [("b", "silent", "silent")]
    (alert,) = health_alerts(store)
    # b has no display name: its id stands in
    assert (alert.rule_title, alert.source_name) == ("Source silent: b", "b")
    assert alert.title == (
        "b feed has had no new item for 7d (none since its first poll 2026-03-01 12:00 UTC)"
    )


def test_a_failing_source_is_reported_failing_not_silent(watched: Store) -> None:
    store = watched
    succeed(store, "a", T0)
    fail(store, "a", T0 + 6 * DAY)
    assert check(store, T0 + 8 * DAY) == [("a", "failing", "failing")]
    # with the failing check off, its silence is what there is to report
    assert check(store, T0 + 8 * DAY, failing_after=None) == [("a", "silent", "silent")]
    succeed(store, "a", T0 + 9 * DAY)  # works again, still nothing new: stays silent
    assert check(store, T0 + 9 * DAY) == [("a", "recovered", "failing")]


def test_a_silent_source_that_starts_failing_stays_silent(watched: Store) -> None:
    store = watched
    succeed(store, "a", T0)
    assert check(store, T0 + SILENT) == [("a", "silent", "silent")]
    fail(store, "a", T0 + SILENT + HOUR)
    assert check(store, T0 + SILENT + 2 * HOUR) == []


@pytest.mark.parametrize("off", [None, timedelta(0)])
def test_zero_or_none_switches_a_check_off(watched: Store, off: timedelta | None) -> None:
    store = watched
    fail(store, "a", T0)
    succeed(store, "b", T0)
    assert check(store, T0 + 30 * DAY, failing_after=off, silent_after=off) == []
    # with no failing check, a failing source's silence is reported too
    assert check(store, T0 + 30 * DAY, failing_after=off) == [
        ("a", "silent", "silent"),
        ("b", "silent", "silent"),
    ]
    assert check(store, T0 + 30 * DAY, silent_after=off) == [("a", "failing", "failing")]
    assert len(health_alerts(store)) == 3


def test_sources_never_polled_or_disabled_raise_nothing(watched: Store) -> None:
    store = watched
    fail(store, "a", T0)
    store.sync_sources([spec("b")], T0 + MIN)  # a leaves the config: disabled
    assert check(store, T0 + 30 * DAY) == []  # b was never polled
    assert health_alerts(store) == []


def test_deliveries_are_claimable_messages(watched: Store) -> None:
    store = watched
    fail(store, "a", T0)
    now = T0 + FAILING
    check(store, now, notify=["console", "email", "console"])
    jobs = store.claim_deliveries("i1", now, limit=10, lease=LEASE, notifiers=NOTIFY)
    assert [job.notifier for job in jobs] == ["console", "email"]
    message = jobs[0].alert
    assert (message.rule_id, message.rule_title, message.level) == (
        "health",
        "Source failing: Agency A",
        "high",
    )
    assert message.title == "Agency A feed has failed for 6h: http_404 (never succeeded)"
    assert (message.link, message.source_id, message.source_name) == (
        "https://a.example/feed.xml",
        "a",
        "Agency A",
    )
    assert (message.summary, message.published, message.created) == ("HTTP 404 Not Found", now, now)
    assert (message.matches, message.also, message.story_id) == ((), (), None)
    # the outbox's retry path handles them like any other delivery
    store.mark_retry(jobs[0].delivery_id, now, next_attempt_at=now + MIN, error="refused")
    store.mark_sent(jobs[1].delivery_id, now)
    assert store.claim_deliveries("i2", now, limit=10, lease=LEASE, notifiers=NOTIFY) == []
    (retried,) = store.claim_deliveries("i2", now + MIN, limit=10, lease=LEASE, notifiers=NOTIFY)
    assert (retried.notifier, retried.attempts, retried.alert) == ("console", 1, message)


def test_no_notifier_stores_the_alert_without_deliveries(watched: Store) -> None:
    store = watched
    fail(store, "a", T0)
    assert check(store, T0 + FAILING, notify=()) == [("a", "failing", "failing")]
    (alert,) = health_alerts(store)
    assert alert.deliveries == ()


def test_rule_alerts_and_system_alerts_list_together(watched: Store) -> None:
    store = watched
    ingest(store, "a", [], now=T0 - MIN)
    ingest(store, "a", [item("a", "a1", "KN-23 launch", link="https://a.example/1")], now=T0)
    fail(store, "b", T0)
    check(store, T0 + FAILING)
    listed = store.list_alerts(T0)
    assert [(a.rule, a.source, a.title) for a in listed] == [
        ("health", "b", "b feed has failed for 6h: http_404 (never succeeded)"),
        ("kn23", "a", "KN-23 launch"),
    ]
    assert listed[1].story_id is not None and listed[1].link == "https://a.example/1"


def test_the_state_survives_a_restart(db_url: str) -> None:
    store = Store.open(db_url)
    store.sync_sources([spec("a", name="Agency A")], T0)
    fail(store, "a", T0)
    assert check(store, T0 + FAILING) == [("a", "failing", "failing")]
    store.close()
    store = Store.open(db_url)
    try:
        assert check(store, T0 + FAILING + HOUR) == []
        succeed(store, "a", T0 + 7 * HOUR)
    finally:
        store.close()
    store = Store.open(db_url)
    try:
        assert check(store, T0 + 8 * HOUR) == [("a", "recovered", "failing")]
        assert check(store, T0 + 9 * HOUR) == []
    finally:
        store.close()


def test_instances_checking_at_once_raise_each_alert_once(db_url: str) -> None:
    stores = [Store.open(db_url) for _ in range(3)]
    try:
        ids = [f"s{n}" for n in range(20)]
        stores[0].sync_sources([spec(sid) for sid in ids], T0)
        for sid in ids:
            fail(stores[0], sid, T0)
        raised = _check_concurrently(stores, T0 + FAILING)
        assert sorted(e.source_id for e in raised) == sorted(ids)
        for sid in ids:
            succeed(stores[0], sid, T0 + 7 * HOUR)
        recovered = _check_concurrently(stores, T0 + 8 * HOUR)
        assert sorted((e.source_id, e.kind) for e in recovered) == [
            (sid, "recovered") for sid in sorted(ids)
        ]
        assert len(health_alerts(stores[0])) == 40
    finally:
        for store in stores:
            store.close()


def _check_concurrently(stores: list[Store], now: datetime) -> list[HealthEvent]:
    barrier = threading.Barrier(len(stores))
    results: list[HealthEvent] = []
    errors: list[BaseException] = []

    def run(store: Store) -> None:
        try:
            barrier.wait()
            events = store.check_health(
                now, failing_after=FAILING, silent_after=None, notify=NOTIFY, describe=describe
            )
            results.extend(events)
        except BaseException as error:  # reported below, in the test's thread
            errors.append(error)

    threads = [threading.Thread(target=run, args=(store,)) for store in stores]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    return results


def test_a_wording_error_writes_nothing(watched: Store) -> None:
    store = watched
    fail(store, "a", T0)

    def broken(change: HealthChange) -> HealthText:
        raise RuntimeError("wording failed")

    with pytest.raises(RuntimeError, match="wording failed"):
        check(store, T0 + FAILING, wording=broken)
    assert health_alerts(store) == []
    assert check(store, T0 + FAILING) == [("a", "failing", "failing")]  # nothing half-done


def test_naive_time_is_refused(watched: Store) -> None:
    with pytest.raises(StorageError, match="naive datetime"):
        check(watched, datetime(2026, 3, 1, 12, 0))


# -- migrating a database written by revision 0001 -----------------------------------------------


def test_upgrade_keeps_alerts_and_deliveries_and_starts_the_clocks(db_url: str) -> None:
    _write_revision_0001(db_url)
    store = Store.open(db_url)
    try:
        (old,) = store.list_alerts(T0 - DAY)
        assert (old.rule, old.title, old.source) == ("kn23", "KN-23 launch", "a")
        assert old.story_id is not None
        assert [(d.notifier, d.status) for d in old.deliveries] == [
            ("console", "sent"),
            ("email", "pending"),
        ]
        (job,) = store.claim_deliveries("i1", T0, limit=10, lease=LEASE, notifiers=NOTIFY)
        assert (job.notifier, job.alert.title) == ("email", "KN-23 launch")
        # b has failed since its last success; a has been silent since its only poll
        assert check(store, T0 + 5 * HOUR) == [("b", "failing", "failing")]
        assert check(store, T0 + SILENT - DAY) == [("c", "silent", "silent")]
        assert check(store, T0 + SILENT) == [("a", "silent", "silent")]
        with store._db.engine.connect() as conn:
            if conn.dialect.name == "sqlite":
                assert conn.exec_driver_sql("PRAGMA foreign_key_check").all() == []
                targets = {
                    row[2] for row in conn.exec_driver_sql("PRAGMA foreign_key_list(deliveries)")
                }
                assert targets == {"alerts"}
    finally:
        store.close()


def _write_revision_0001(url: str) -> None:
    """A database as revision 0001 left it: source a polled once, with an alert whose console
    delivery was sent and email delivery is pending; b failing since an hour after its last
    success; c polled a day earlier and never given an item."""
    parsed = sa.make_url(url)
    path = sqlite_path(parsed)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
    db = Database(_create_engine(parsed))  # SQLite with foreign keys on, as the Store opens it
    try:
        config = AlembicConfig()
        config.set_main_option("script_location", str(_MIGRATIONS))
        config.set_main_option("path_separator", "os")
        with db.engine.connect() as conn, conn.begin():
            config.attributes["connection"] = conn
            command.upgrade(config, "0001")
        with db.engine.begin() as conn:
            conn.execute(
                sources.insert(),
                [
                    _source_0001("a", last_poll_at=T0, last_success_at=T0, last_new_item_at=T0),
                    _source_0001(
                        "b",
                        status="error",
                        error_kind="http_404",
                        consecutive_failures=3,
                        last_poll_at=T0,
                        last_success_at=T0 - HOUR,
                    ),
                    _source_0001("c", last_poll_at=T0 - DAY, last_success_at=T0 - DAY),
                ],
            )
            _alert_0001(conn)
    finally:
        db.close()


def _source_0001(source_id: str, **state: object) -> dict[str, object]:
    row: dict[str, object] = {
        "id": source_id,
        "url": f"https://{source_id}.example/feed.xml",
        "name": source_id,
        "tags": [],
        "interval_s": 900,
        "status": "ok",
        "error_kind": None,
        "consecutive_failures": 0,
        "last_new_item_at": None,
        "next_poll_at": T0 + 15 * MIN,
        "polled_before": True,
    }
    row.update(state)
    return row


def _alert_0001(conn: sa.Connection) -> None:
    story_id = conn.execute(
        stories.insert().values(created_at=T0, title="KN-23 launch").returning(stories.c.id)
    ).scalar_one()
    item_id = conn.execute(
        items.insert()
        .values(
            source_id="a",
            key="a1",
            title="KN-23 launch",
            summary="",
            content="",
            author="",
            tags=[],
            fetched_at=T0,
            content_hash="h1",
            story_id=story_id,
            pruned=False,
        )
        .returning(items.c.id)
    ).scalar_one()
    alert_id = conn.execute(
        alerts.insert()
        .values(
            rule_id="kn23",
            rule_title="Rule kn23",
            level="high",
            story_id=story_id,
            item_id=item_id,
            created_at=T0,
            spans=[],
        )
        .returning(alerts.c.id)
    ).scalar_one()
    base = {"alert_id": alert_id, "created_at": T0}
    conn.execute(
        deliveries.insert(),
        [
            {
                **base,
                "notifier": "console",
                "status": "sent",
                "attempts": 1,
                "sent_at": T0,
                "next_attempt_at": None,
            },
            {
                **base,
                "notifier": "email",
                "status": "pending",
                "attempts": 0,
                "sent_at": None,
                "next_attempt_at": T0,
            },
        ],
    )
