"""Source health alerts: their wording, and the check the daemon runs, from config.yaml to the
outbox of a real SQLite store."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from monitor.config import Config, load_config
from monitor.health import describe, format_elapsed, format_time, run_health_check
from storage import HealthChange, SourceSpec, Store

T0 = datetime(2026, 11, 25, 8, 0, tzinfo=UTC)
MIN = timedelta(minutes=1)
HOUR = timedelta(hours=1)
DAY = timedelta(days=1)
NAME = "Institute for the Study of War"


@pytest.mark.parametrize(
    ("elapsed", "text"),
    [
        (timedelta(hours=6, minutes=12), "6h 12m"),
        (timedelta(hours=6), "6h"),
        (timedelta(days=7, hours=2, minutes=5), "7d 2h"),
        (timedelta(days=7, minutes=5), "7d"),
        (timedelta(minutes=45, seconds=30), "45m 30s"),
        (timedelta(seconds=90), "1m 30s"),
        (timedelta(seconds=59.9), "59s"),
        (timedelta(0), "0s"),
        (timedelta(minutes=-5), "0s"),  # clock skew between instances
        (timedelta(days=400), "400d"),
    ],
)
def test_format_elapsed(elapsed: timedelta, text: str) -> None:
    assert format_elapsed(elapsed) == text


def test_format_time_is_utc() -> None:
    tokyo = timezone(timedelta(hours=9))
    assert format_time(datetime(2026, 11, 25, 17, 0, tzinfo=tokyo)) == "2026-11-25 08:00 UTC"


def change(kind: str, condition: str, **facts: object) -> HealthChange:
    values: dict[str, object] = {
        "kind": kind,
        "condition": condition,
        "source_id": "isw",
        "source_name": NAME,
        "url": "https://isw.example/rss.xml",
        "since": T0,
        "at": T0 + timedelta(hours=6, minutes=12),
        "error": "http_404",
        "error_detail": "HTTP 404 Not Found",
        "last_success": None,
        "last_new_item": None,
    }
    values.update(facts)
    return HealthChange(**values)  # type: ignore[arg-type]


def test_failing_names_duration_error_and_last_success() -> None:
    text = describe(change("failing", "failing", last_success=T0 - 2 * HOUR))
    assert text.rule_title == f"Source failing: {NAME}"
    assert text.title == (
        f"{NAME} feed has failed for 6h 12m: http_404 (last success 2026-11-25 06:00 UTC)"
    )
    assert text.summary == "HTTP 404 Not Found"


def test_failing_of_a_source_that_never_worked() -> None:
    text = describe(change("failing", "failing", error=None, error_detail=None))
    assert text.title == f"{NAME} feed has failed for 6h 12m: unknown error (never succeeded)"
    assert text.summary == ""


def test_silent_since_the_last_item_or_the_first_poll() -> None:
    at = T0 + timedelta(days=7, hours=3)
    text = describe(change("silent", "silent", at=at, last_new_item=T0))
    assert text.rule_title == f"Source silent: {NAME}"
    assert text.title == (
        f"{NAME} feed has had no new item for 7d 3h (last new item 2026-11-25 08:00 UTC)"
    )
    assert "no new item" in text.summary
    never = describe(change("silent", "silent", at=at))
    assert never.title == (
        f"{NAME} feed has had no new item for 7d 3h "
        "(none since its first poll 2026-11-25 08:00 UTC)"
    )


def test_recovery_says_what_ended_and_how_long_it_lasted() -> None:
    back = T0 + timedelta(hours=7, minutes=30)
    failing = describe(change("recovered", "failing", last_success=back, at=back + 10 * MIN))
    assert failing.rule_title == f"Source recovered: {NAME}"
    assert failing.title == f"{NAME} feed works again after failing for 7h 30m (http_404)"
    silent = describe(change("recovered", "silent", last_new_item=T0 + 9 * DAY))
    assert silent.title == f"{NAME} feed has a new item again after 9d of silence"


def test_untrusted_names_are_left_for_notifiers_to_escape() -> None:
    text = describe(change("failing", "failing", source_name="<!channel> *x*\r\nBcc: y"))
    assert text.rule_title == "Source failing: <!channel> *x*\r\nBcc: y"


# -- the check the daemon runs ---------------------------------------------------------------------

CONFIG = """\
database: sqlite:///data/monitor.db
sources:
  - id: isw
    url: https://isw.example/rss.xml
    name: {name}
  - id: quiet
    url: https://quiet.example/feed.xml
notifiers:
  console: {{type: console}}
  ops: {{type: webhook, url: "http://127.0.0.1:9/hook"}}
default_notify: [console]
health:
{health}
"""


def write_config(tmp_path: Path, health: str) -> Config:
    path = tmp_path / "config.yaml"
    path.write_text(CONFIG.format(name=NAME, health=health), encoding="utf-8")
    return load_config(path, env={})


@contextmanager
def opened(config: Config) -> Iterator[Store]:
    """The database the config names (data/monitor.db next to it)."""
    store = Store.open(config.database)
    try:
        yield store
    finally:
        store.close()


def poll(store: Store, config: Config, now: datetime, *, isw_fails: bool) -> None:
    """One round of polls as the poller records them: quiet works (and brings nothing), isw
    fails or works."""
    specs = [SourceSpec(s.id, s.url, s.name, s.tags, s.interval) for s in config.sources]
    store.sync_sources(specs, now)
    store.claim_due_sources("i1", now, limit=10, lease=5 * MIN, include_not_due=True)
    later = now + 15 * MIN
    assert store.record_not_modified("quiet", "i1", now, next_poll_at=later)
    if isw_fails:
        assert store.record_failure(
            "isw", "i1", now, kind="http_404", detail="HTTP 404", next_poll_at=later
        )
    else:
        assert store.record_not_modified("isw", "i1", now, next_poll_at=later)


async def test_run_health_check_raises_logs_and_queues_deliveries(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    config = write_config(tmp_path, "  failing_after: 6h\n  silent_after: 0\n  notify: [ops]")
    with opened(config) as store:
        await _failing_then_recovered(store, config, caplog)


async def _failing_then_recovered(
    store: Store, config: Config, caplog: pytest.LogCaptureFixture
) -> None:
    poll(store, config, T0 - 2 * HOUR, isw_fails=False)
    poll(store, config, T0, isw_fails=True)
    caplog.set_level(logging.INFO, logger="monitor.health")
    assert await run_health_check(store, config, lambda: T0 + 6 * HOUR - MIN) == []
    (event,) = await run_health_check(store, config, lambda: T0 + 6 * HOUR + 12 * MIN)
    assert (event.source_id, event.kind) == ("isw", "failing")
    assert event.detail == (
        f"{NAME} feed has failed for 6h 12m: http_404 (last success 2026-11-25 06:00 UTC)"
    )
    assert [(r.levelno, r.getMessage()) for r in caplog.records] == [
        (logging.WARNING, f"source isw: {event.detail}")
    ]
    # silent_after: 0 is off, though quiet has never had an item
    assert await run_health_check(store, config, lambda: T0 + 30 * DAY) == []
    jobs = store.claim_deliveries(
        "i1", T0 + 30 * DAY, limit=10, lease=5 * MIN, notifiers=["ops", "console"]
    )
    assert [(job.notifier, job.alert.rule_id, job.alert.title) for job in jobs] == [
        ("ops", "health", event.detail)
    ]

    caplog.clear()
    poll(store, config, T0 + 31 * DAY, isw_fails=False)
    (back,) = await run_health_check(store, config, lambda: T0 + 31 * DAY + MIN)
    assert (back.kind, back.detail) == (
        "recovered",
        f"{NAME} feed works again after failing for 31d (http_404)",
    )
    assert [r.levelno for r in caplog.records] == [logging.INFO]


async def test_health_notify_defaults_to_default_notify(tmp_path: Path) -> None:
    config = write_config(tmp_path, "  failing_after: 0\n  silent_after: 7d")
    assert config.health.notify == ("console",)
    with opened(config) as store:
        poll(store, config, T0, isw_fails=False)
        assert await run_health_check(store, config, lambda: T0 + 7 * DAY - MIN) == []
        events = await run_health_check(store, config, lambda: T0 + 7 * DAY)
        (alert,) = [a for a in store.list_alerts(T0) if a.source == "isw"]
    assert sorted((e.source_id, e.kind) for e in events) == [("isw", "silent"), ("quiet", "silent")]
    assert [(d.notifier, d.status) for d in alert.deliveries] == [("console", "pending")]
    assert alert.title == (
        f"{NAME} feed has had no new item for 7d (none since its first poll 2026-11-25 08:00 UTC)"
    )
