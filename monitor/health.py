"""Source health alerts (DESIGN §3 `health:`): how they read, and the check the daemon runs on its
housekeeping tick. When to raise them, once and only once, is the storage's business
(`Store.check_health`); this module words them and logs what was raised."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from monitor.config import Config
from storage import HealthChange, HealthEvent, HealthText, Store

log = logging.getLogger(__name__)
Clock = Callable[[], datetime]

_UNITS = (("d", 86400), ("h", 3600), ("m", 60), ("s", 1))


def format_elapsed(elapsed: timedelta) -> str:
    """A span of time as people read it: its two largest units, rounded down, zeros left out.
    `6h 12m`, `7d 2h`, `7d`, `45m`, `1m 30s`; negative spans (clock skew) read as `0s`."""
    rest = max(0, int(elapsed.total_seconds()))
    amounts: list[tuple[int, str]] = []
    for unit, size in _UNITS:
        amount, rest = divmod(rest, size)
        amounts.append((amount, unit))
    first = next((i for i, (amount, _) in enumerate(amounts) if amount), len(amounts) - 1)
    shown = [f"{amount}{unit}" for amount, unit in amounts[first : first + 2] if amount]
    return " ".join(shown) or "0s"


def format_time(moment: datetime) -> str:
    """`2026-11-25 08:00 UTC`."""
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def describe(change: HealthChange) -> HealthText:
    """The words of a system alert: its rule title, a one-sentence title and a summary."""
    name = change.source_name
    if change.kind == "failing":
        return HealthText(f"Source failing: {name}", _failing(change), change.error_detail or "")
    if change.kind == "silent":
        return HealthText(
            f"Source silent: {name}",
            _silent(change),
            "Polls work but bring no new item: the feed may have moved or stopped updating.",
        )
    return HealthText(f"Source recovered: {name}", _recovered(change))


def _failing(change: HealthChange) -> str:
    last = change.last_success
    success = f"last success {format_time(last)}" if last else "never succeeded"
    return (
        f"{change.source_name} feed has failed for {format_elapsed(change.at - change.since)}: "
        f"{change.error or 'unknown error'} ({success})"
    )


def _silent(change: HealthChange) -> str:
    last = change.last_new_item
    where = (
        f"last new item {format_time(last)}"
        if last
        else f"none since its first poll {format_time(change.since)}"
    )
    return (
        f"{change.source_name} feed has had no new item for "
        f"{format_elapsed(change.at - change.since)} ({where})"
    )


def _recovered(change: HealthChange) -> str:
    if change.condition == "failing":
        back = change.last_success or change.at
        return (
            f"{change.source_name} feed works again after failing for "
            f"{format_elapsed(back - change.since)} ({change.error or 'unknown error'})"
        )
    back = change.last_new_item or change.at
    return (
        f"{change.source_name} feed has a new item again after "
        f"{format_elapsed(back - change.since)} of silence"
    )


def _on(threshold: timedelta) -> timedelta | None:
    """`0` in the config switches a check off."""
    return threshold if threshold > timedelta(0) else None


async def run_health_check(store: Store, config: Config, clock: Clock) -> list[HealthEvent]:
    """Raise the system alerts due now (their deliveries then go out with the rule alerts'), log
    them, and return them. Safe to run from every instance: each alert happens once."""
    health = config.health
    events = await asyncio.to_thread(
        store.check_health,
        clock(),
        failing_after=_on(health.failing_after),
        silent_after=_on(health.silent_after),
        notify=health.notify,
        describe=describe,
    )
    for event in events:
        level = logging.INFO if event.kind == "recovered" else logging.WARNING
        log.log(level, "source %s: %s", event.source_id, event.detail)
    return events


__all__ = ["describe", "format_elapsed", "format_time", "run_health_check"]
