"""The daemon: APScheduler 3.x drives short ticks (poll what is due, deliver what is due,
housekeeping); each source's next poll time lives in the database, so a restart resumes where it
stopped.

APScheduler is only an in-process timer here: the database is the source of truth for what is due.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gc
import logging
import os
import random
import signal
import socket
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from monitor._memory import trim
from monitor._migrate import in_memory, migrate_in_child
from monitor.config import Config
from monitor.delivery import Deliverer, DeliveryStats, RetryPolicy
from monitor.errors import MonitorError
from monitor.fetch import Fetcher
from monitor.health import run_health_check
from monitor.metrics import Metrics, MetricsServer
from monitor.parse import FeedParser
from monitor.pipeline import Poller, PollStats
from monitor.rulebook import Rulebook
from monitor.status import HEARTBEAT_EVERY, STALE_AFTER
from monitor.stories import TitleStoryMatcher
from notifiers import Notifier, build_notifier
from storage import SourceSpec, Store

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]

# Claims are cheap (one indexed query): a short tick keeps the fetch slots full when many sources
# fall due (2,000 sources at a 30 s interval need 67 claims a second; a 5 s tick capped a daemon at
# 2 x concurrency per 5 s).
POLL_TICK_SECONDS = 1.0
DELIVERY_TICK_SECONDS = 2.0
RULES_TICK_SECONDS = 3.0
HOUSEKEEPING_SECONDS = 60.0  # health checks, metrics gauges, retention
PRUNE_EVERY = timedelta(hours=1)


def utcnow() -> datetime:
    return datetime.now(UTC)


def new_instance_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


# Young objects collected every 20,000 allocations instead of 700: most die young anyway, so far
# fewer survive into the older generations whose collections walk the whole heap.
GC_YOUNG_THRESHOLD = 20_000


def settle_heap() -> None:
    """Once start-up is done: freeze what it left alive (config, rule packs, modules, compiled
    statements), which lives as long as the daemon, so that full collections stop walking it, and
    collect the young generation less often. A collection holds the GIL, and an unchanged poll
    cycle of 2,000 sources spent about 0.3 s of it in the collector (benchmarks.fetch_bench)."""
    gc.collect()
    gc.freeze()
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(GC_YOUNG_THRESHOLD, older, oldest)


def source_specs(config: Config) -> list[SourceSpec]:
    return [
        SourceSpec(id=s.id, url=s.url, name=s.name, tags=tuple(s.tags), interval=s.interval)
        for s in config.sources
    ]


class Daemon:
    """Owns every long-lived component; `run()` opens them, runs, and closes them in order."""

    def __init__(self, config: Config, *, clock: Clock = utcnow, instance_id: str | None = None):
        self.config = config
        self.clock = clock
        self.instance_id = instance_id or new_instance_id()
        self._rng = random.Random()
        self._stop = asyncio.Event()
        self._in_flight: set[asyncio.Task[object]] = set()
        self._last_prune: datetime | None = None
        # Only a daemon that serves /metrics counts into metrics (and imports prometheus_client).
        self.metrics = Metrics(self.instance_id) if config.metrics else None

    async def run(self, *, once: bool = False) -> tuple[PollStats, DeliveryStats]:
        cfg = self.config
        rulebook = Rulebook(cfg.rules, notifiers=list(cfg.notifiers), sources=None)
        if not once and not in_memory(cfg.database):
            # A long-running daemon keeps what it imports: Alembic stays in the child.
            await asyncio.to_thread(migrate_in_child, cfg.database)
        store = await asyncio.to_thread(Store.open, cfg.database)
        beat: asyncio.Task[None] | None = None
        try:
            await asyncio.to_thread(store.acquire_instance, self.instance_id, self.clock())
            beat = asyncio.create_task(self._heartbeat(store), name="heartbeat")
            await asyncio.to_thread(store.sync_sources, source_specs(cfg), self.clock())
            notifiers = {name: build_notifier(name, s) for name, s in cfg.notifiers.items()}
            parser = FeedParser()
            try:
                async with Fetcher(
                    timeout=cfg.polling.timeout.total_seconds(),
                    max_bytes=cfg.polling.max_bytes,
                    user_agent=cfg.polling.user_agent,
                    concurrency=cfg.polling.concurrency,
                    per_host=cfg.polling.per_host,
                    min_spacing=cfg.polling.host_spacing.total_seconds(),
                    http_client=cfg.polling.http_client,
                ) as fetcher:
                    poller = Poller(
                        cfg, store, fetcher, parser, rulebook, TitleStoryMatcher(),
                        instance_id=self.instance_id, clock=self.clock, rng=self._rng,
                        metrics=self.metrics,
                    )  # fmt: skip
                    policy = RetryPolicy(
                        cfg.delivery.retry_first, cfg.delivery.retry_max, cfg.delivery.give_up
                    )
                    deliverer = Deliverer(
                        store,
                        notifiers,
                        policy,
                        instance_id=self.instance_id,
                        clock=self.clock,
                        rng=self._rng,
                        digests=_digest_periods(cfg),
                        metrics=self.metrics,
                    )
                    settle_heap()
                    if once:
                        return await self._run_once(poller, deliverer)
                    await self._run_forever(store, poller, deliverer, rulebook)
                    return PollStats(), DeliveryStats()
            finally:
                parser.close()
                await _close_notifiers(notifiers)
        finally:
            if beat is not None:
                beat.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await beat
            with contextlib.suppress(Exception):
                await asyncio.to_thread(store.release_instance, self.instance_id)
            store.close()

    async def _run_once(
        self, poller: Poller, deliverer: Deliverer
    ) -> tuple[PollStats, DeliveryStats]:
        states = await poller.claim(include_not_due=True, limit=len(self.config.sources) + 1)
        poll_stats = await poller.poll_all(states)
        delivery_stats = await deliverer.run_once()
        return poll_stats, delivery_stats

    async def _run_forever(
        self, store: Store, poller: Poller, deliverer: Deliverer, rulebook: Rulebook
    ) -> None:
        server = None
        if self.config.metrics and self.metrics is not None:
            server = MetricsServer(self.metrics, self.config.metrics)
            await server.start()
            log.info("metrics on http://%s/metrics", self.config.metrics)
        try:
            await self._schedule(store, poller, deliverer, rulebook)
        finally:
            if server is not None:
                await server.stop()

    async def _schedule(
        self, store: Store, poller: Poller, deliverer: Deliverer, rulebook: Rulebook
    ) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._request_stop, sig)
        loop.add_signal_handler(signal.SIGHUP, lambda: rulebook.reload_if_changed(force=True))
        scheduler = AsyncIOScheduler(event_loop=loop, timezone=UTC)
        now = self.clock()
        jobs: list[tuple[Callable[[], object], float]] = [
            # Coroutine functions (or partials of them) run on the loop; APScheduler would hand a
            # lambda returning a coroutine to a thread and never await it.
            (functools.partial(self._tick_poll, poller), POLL_TICK_SECONDS),
            (functools.partial(self._tick_deliver, deliverer), DELIVERY_TICK_SECONDS),
            (rulebook.reload_if_changed, RULES_TICK_SECONDS),  # sync: runs in a worker thread
            (functools.partial(self._housekeeping, store, rulebook), HOUSEKEEPING_SECONDS),
        ]
        for func, seconds in jobs:
            scheduler.add_job(
                func, "interval", seconds=seconds, next_run_time=now,
                max_instances=1, coalesce=True, misfire_grace_time=None,
            )  # fmt: skip
        scheduler.start()
        log.info(
            "source-monitor running: %d sources, %d rules, instance %s",
            len(self.config.sources),
            len(rulebook.current.ruleset.rules),
            self.instance_id,
        )
        try:
            await self._stop.wait()
        finally:
            scheduler.shutdown(wait=False)
            for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
                loop.remove_signal_handler(sig)
            await self._finish_in_flight()
            await deliverer.close()
            await deliverer.run_once()

    def _request_stop(self, sig: signal.Signals) -> None:
        log.info("received %s: finishing in-flight work", sig.name)
        self._stop.set()

    async def _tick_poll(self, poller: Poller) -> None:
        """Claim what is due and start polling it; a slow source never holds up the tick."""
        if self._stop.is_set():
            return
        # A poll in flight holds its body, then its parsed items, until they are stored: a few MB
        # each for the largest feeds. More polls than fetch slots would only queue for the parse
        # workers and the database writer, busy already when that happens, so the cap is the fetch
        # slots (benchmarks/soak.py, 2,000 feeds: about 60 MB less at peak than twice the slots).
        room = self.config.polling.concurrency - len(self._in_flight)
        if room <= 0:
            return
        for state in await poller.claim(limit=room):
            task: asyncio.Task[object] = asyncio.create_task(poller.poll(state))
            self._in_flight.add(task)
            task.add_done_callback(self._in_flight.discard)

    async def _tick_deliver(self, deliverer: Deliverer) -> None:
        if not self._stop.is_set():
            deliverer.tick()

    async def _finish_in_flight(self) -> None:
        """Let polls in flight finish (each is bounded by the fetch deadline); polls still queued
        for a busy host's turn after that are cancelled: their sources stay due and are polled
        first at the next start (the leases go back with the instance)."""
        if not self._in_flight:
            return
        log.info("waiting for %d polls in flight", len(self._in_flight))
        grace = self.config.polling.timeout.total_seconds() + 10
        _, pending = await asyncio.wait(set(self._in_flight), timeout=grace)
        for task in pending:
            task.cancel()
        if pending:
            log.info("cancelled %d polls still waiting for their host's turn", len(pending))
            await asyncio.gather(*pending, return_exceptions=True)

    async def _heartbeat(self, store: Store) -> None:
        """Prove this instance alive, and release the leases of instances that stopped proving it
        (killed, frozen): their sources and deliveries are taken over within STALE_AFTER instead of
        waiting out whole leases. Runs in `--once` too, so a long single run is never reaped."""
        while True:
            now = self.clock()
            try:
                await asyncio.to_thread(store.heartbeat, self.instance_id, now)
                reaped = await asyncio.to_thread(
                    store.reap_instances, now, stale_after=STALE_AFTER, keep=self.instance_id
                )
            except MonitorError as e:  # the database may be briefly unavailable
                log.error("heartbeat failed: %s", e)
            else:
                for other in reaped:
                    log.warning("instance %s stopped its heartbeat: took over its leases", other)
            await asyncio.sleep(HEARTBEAT_EVERY.total_seconds())

    async def _housekeeping(self, store: Store, rulebook: Rulebook) -> None:
        """Once a minute: health alerts, metrics gauges; once an hour: retention."""
        now = self.clock()
        if self.metrics is not None:
            self.metrics.heartbeat(now.timestamp())
            self.metrics.set_rules(len(rulebook.current.ruleset.rules), not rulebook.problems)
        try:
            await run_health_check(store, self.config, self.clock)
            if self.metrics is not None:
                views = await asyncio.to_thread(store.list_sources)
                statuses: dict[str, int] = {}
                for v in views:
                    statuses[v.status] = statuses.get(v.status, 0) + 1
                self.metrics.set_sources_by_status(statuses)
            if self._last_prune is None or now - self._last_prune >= PRUNE_EVERY:
                self._last_prune = now
                pruned = await asyncio.to_thread(
                    store.prune, now, self.config.retention, story_window=self.config.dedup.window
                )
                if pruned:
                    log.info("pruned %d items older than the retention period", pruned)
            trim()  # hand back what the last minute's bursts freed
        except MonitorError as e:  # the database may be briefly unavailable: try next minute
            log.error("housekeeping failed: %s", e)


def _digest_periods(config: Config) -> dict[str, timedelta]:
    periods: dict[str, timedelta] = {}
    for name, settings in config.notifiers.items():
        period = getattr(settings, "digest", None)
        if isinstance(period, timedelta) and period > timedelta(0):
            periods[name] = period
    return periods


async def _close_notifiers(notifiers: dict[str, Notifier]) -> None:
    for n in notifiers.values():
        with contextlib.suppress(Exception):
            await n.aclose()
