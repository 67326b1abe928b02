"""One poll of one source, step by step: fetch (conditional GET) -> parse (off the event loop) ->
normalise -> ingest (store new items, group stories, match, and write alerts with their deliveries
in one transaction).

Every failure is sorted into a stable kind and written on the source; nothing a feed sends can stop
the others. Failures are judged before they are counted:
- a host that asks us to wait (429/503 with Retry-After) pauses every source on it, and the source
  shows `rate_limited`, without a failure counted (no backoff growth);
- HTTP 410 makes the source `gone`: never polled again until its URL changes in the config;
- when every fetch of a tick fails at the network level, across at least 3 hosts, the fault is
  ours (network, resolver, proxy): the kind is recorded, the failure is not counted.
And a permanent redirect (301/308) seen on 3 successful polls in a row moves the source to its new
URL (kept across restarts while the config's URL is unchanged); 302/307 never do. Those outcomes
are written by `monitor._poll_records`.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from monitor._batch import Batcher
from monitor._outage import NETWORK_KINDS, Tick
from monitor._poll_records import PollRecords
from monitor.config import Config
from monitor.errors import FetchError, StorageError
from monitor.fetch import Admit, Fetcher, FetchRequest, FetchResult, RateLimited, host_key
from monitor.metrics import Metrics
from monitor.model import Item
from monitor.parse import FeedParser
from monitor.rulebook import Rulebook, item_document, make_router
from monitor.schedule import next_poll_after_success
from storage import IngestResult, SourceState, Store, StoryMatcher, UnchangedPoll

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]

# Unchanged polls are stored in batches: one transaction for up to UNCHANGED_BATCH of them, written
# at most UNCHANGED_LINGER seconds after the first came in (a small delay next to a fetch's).
UNCHANGED_BATCH = 256
UNCHANGED_LINGER = 0.03
# Polls certain to bring a body (no validators) fetching or waiting for the parser at once, per
# parse worker (`Poller._bodies`).
BODIES_PER_WORKER = 16


@dataclass
class PollStats:
    polled: int = 0
    failed: int = 0
    unchanged: int = 0
    new_items: int = 0
    alerts: int = 0
    errors: dict[str, int] = field(default_factory=dict)


class Poller:
    def __init__(
        self,
        config: Config,
        store: Store,
        fetcher: Fetcher,
        parser: FeedParser,
        rulebook: Rulebook,
        stories: StoryMatcher,
        *,
        instance_id: str,
        clock: Clock,
        rng: random.Random | None = None,
        metrics: Metrics | None = None,
        unchanged_batch: int = UNCHANGED_BATCH,
        unchanged_linger: float = UNCHANGED_LINGER,
    ) -> None:
        self._config = config
        self._store = store
        self._fetcher = fetcher
        self._parser = parser
        self._rulebook = rulebook
        self._stories = stories
        self._instance = instance_id
        self._clock = clock
        self._rng = rng or random.Random()
        self._records = PollRecords(store, instance_id=instance_id, clock=clock, rng=self._rng)
        self._metrics = metrics
        self._min_levels = {name: s.min_level for name, s in config.notifiers.items()}
        self._ticks: dict[str, Tick] = {}
        # Polls past their fetch with a changed body: parsing and storing. Each holds its body,
        # then its parsed items (several times the body's size in Python objects) until stored,
        # and storing is one writer at a time: more than a few per parse worker only queue, and
        # a first poll of every feed would hold them all at once (the soak's peak memory).
        self._changing = asyncio.Semaphore(2 * parser.workers)
        # Polls with nothing to make their fetch conditional (a first poll): each will bring a
        # body, and bodies arrive far faster than the parser takes them, so the others would wait
        # for `_changing` holding theirs (up to `polling.concurrency` bodies: 22 MB of corpus
        # feeds at 100 in flight, the soak's peak). At most this many fetch or wait at once,
        # counted from when a poll has its host's slot (`_Gate`): enough to keep the parser fed
        # while some wait on their host's spacing.
        self._bodies = asyncio.Semaphore(BODIES_PER_WORKER * parser.workers)
        self._unchanged = Batcher(
            self._write_unchanged, max_size=unchanged_batch, linger=unchanged_linger
        )
        # A claimed source stays leased for a whole fetch + parse + ingest, with room to spare.
        self.lease = config.polling.timeout * 3 + config.polling.interval / 10
        # How long a network failure waits for the rest of its tick before it is simply counted.
        self._verdict_wait = (config.polling.timeout * 2).total_seconds()

    async def claim(self, *, include_not_due: bool = False, limit: int = 500) -> list[SourceState]:
        states = await asyncio.to_thread(
            self._store.claim_due_sources,
            self._instance,
            self._clock(),
            limit=limit,
            lease=self.lease,
            include_not_due=include_not_due,
        )
        tick = Tick({s.id: host_key(s.url) for s in states})
        for state in states:
            self._ticks[state.id] = tick
        return states

    async def poll_all(self, states: Sequence[SourceState]) -> PollStats:
        stats = PollStats()
        results = await asyncio.gather(*(self.poll(s) for s in states), return_exceptions=True)
        for state, result in zip(states, results, strict=True):
            stats.polled += 1
            if isinstance(result, FetchError):
                stats.failed += 1
                stats.errors[result.kind] = stats.errors.get(result.kind, 0) + 1
            elif isinstance(result, BaseException):
                log.error("source %s: unexpected error %r", state.id, result)
                stats.failed += 1
                stats.errors["internal"] = stats.errors.get("internal", 0) + 1
            elif result is None:
                stats.unchanged += 1
            else:
                stats.new_items += result.new_items
                stats.alerts += result.alerts
        return stats

    async def poll(self, state: SourceState) -> IngestResult | FetchError | None:
        """Poll one claimed source: what was ingested, the failure, or None when unchanged."""
        started = time.monotonic()
        tick = self._ticks.pop(state.id, None)
        try:
            outcome: IngestResult | FetchError | None = await self._poll(state, tick)
        except StorageError as e:
            # The database refused the write (locked, unreachable): nothing of this poll was
            # stored, so it is polled again when its lease ends; the daemon carries on.
            log.error("source %s: could not store this poll: %s", state.id, e)
            outcome = FetchError("storage", str(e)[:300])
        finally:
            if tick is not None:  # whatever happened, the others of the tick must not wait for it
                tick.settle(state.id, network=False)
        if self._metrics is not None:
            seconds = time.monotonic() - started
            if isinstance(outcome, FetchError):
                self._metrics.poll(state.id, outcome.kind, seconds)
            else:
                self._metrics.poll(state.id, "unchanged" if outcome is None else "ok", seconds)
                if outcome is not None:
                    self._metrics.items(state.id, outcome.new_items)
        return outcome

    async def _poll(
        self, state: SourceState, tick: Tick | None
    ) -> IngestResult | FetchError | None:
        if state.etag or state.last_modified or state.body_hash:
            return await self._poll_once(state, tick, None)
        gate = _Gate(self._bodies)  # certain to bring a body (see __init__)
        try:
            return await self._poll_once(state, tick, gate.enter)
        finally:
            gate.leave()

    async def _poll_once(
        self, state: SourceState, tick: Tick | None, admit: Admit | None
    ) -> IngestResult | FetchError | None:
        request = FetchRequest(
            source_id=state.id,
            url=state.url,
            etag=state.etag,
            last_modified=state.last_modified,
            body_hash=state.body_hash,
        )
        try:
            result = await self._fetcher.fetch(request, admit=admit)
        except FetchError as e:
            return await self._failed(state, e, tick)
        except Exception as e:  # a bug of ours must cost one poll of one source, never the daemon
            return await self._failed(state, _internal(state, e), tick)
        if tick is not None:
            tick.settle(state.id, network=False)
        # One `now` for the whole outcome: a redirect's note and the success it belongs to.
        now = self._clock()
        try:
            if result.permanent_redirect is not None:
                await self._records.redirect(state, result.permanent_redirect, now)
            if result.status != "ok":
                await self._record_unchanged(state, result, now)
                return None
        except StorageError:
            raise  # not the source's failure: poll() reports it as `storage`
        except Exception as e:
            return await self._failed(state, _internal(state, e), None)
        async with self._changing:
            return await self._parse_and_ingest(state, result, now)

    async def _parse_and_ingest(
        self, state: SourceState, result: FetchResult, now: datetime
    ) -> IngestResult | FetchError | None:
        try:
            parsed = await self._parser.parse(state.id, result.body, result.headers, result.url)
        except FetchError as e:
            return await self._failed(state, e, None)
        except Exception as e:
            return await self._failed(state, _internal(state, e), None)
        if parsed.bozo:
            log.info("source %s: feed is not well-formed (%s), read anyway", state.id, parsed.bozo)
        return await self._ingest(state, result, parsed.items, parsed.ttl, now)

    async def _failed(self, state: SourceState, error: FetchError, tick: Tick | None) -> FetchError:
        """Record a failure as what it is: the host's wish, the feed's end, our outage or the
        source's failure."""
        network = error.kind in NETWORK_KINDS
        if tick is not None and not network:
            tick.settle(state.id, network=False)
        if isinstance(error, RateLimited):
            await self._records.rate_limited(state, error)
        elif error.kind == "gone":
            await self._records.gone(state, error)
        else:
            ours = False
            if network and tick is not None:
                ours = await tick.network_failure(state.id, wait=self._verdict_wait)
            await self._records.failure(state, error, count=not ours)
        return error

    async def _record_unchanged(
        self, state: SourceState, result: FetchResult, now: datetime
    ) -> None:
        # No body to read a <ttl> from: the one of the latest body still holds.
        next_poll = next_poll_after_success(
            now, state.interval, self._rng, ttl=state.feed_ttl, max_age=result.max_age
        )
        poll = UnchangedPoll(state.id, now, next_poll, result.etag, result.last_modified)
        # Returns once the batch holding this poll is stored; a failed batch raises here, so this
        # poll's outcome is `storage` like any poll whose write failed.
        written = await self._unchanged.add(poll)
        if state.id in written:
            log.debug("source %s: %s", state.id, result.status)
        else:
            log.warning("source %s: lease lost while polling; another instance took over", state.id)

    def _write_unchanged(self, polls: Sequence[UnchangedPoll]) -> set[str]:
        """One transaction for a batch of unchanged polls (runs in a worker thread)."""
        return self._store.record_not_modified_many(self._instance, polls)

    async def _ingest(
        self,
        state: SourceState,
        result: FetchResult,
        items: Sequence[Item],
        ttl: float | None,
        now: datetime,
    ) -> IngestResult | None:
        compiled = self._rulebook.current
        matcher = compiled.matcher
        tags = state.tags
        route = make_router(compiled.by_id, self._config.default_notify, self._min_levels)
        next_poll = next_poll_after_success(
            now, state.interval, self._rng, ttl=ttl, max_age=result.max_age
        )
        outcome = await asyncio.to_thread(
            self._store.ingest,
            state.id,
            self._instance,
            now=now,
            items=items,
            etag=result.etag,
            last_modified=result.last_modified,
            body_hash=result.body_hash,
            next_poll_at=next_poll,
            backfill=self._config.first_poll.backfill,
            matcher=lambda item: matcher.match(item_document(item, tags)),
            route=route,
            stories=self._stories,
            dedup_window=self._config.dedup.window,
            rule_titles={r.id: r.title for r in compiled.ruleset.rules},
            feed_ttl=ttl,
        )
        if outcome is None:
            log.warning("source %s: lease lost while polling; another instance took over", state.id)
        elif outcome.new_items:
            log.info(
                "source %s: %d new items, %d alerts", state.id, outcome.new_items, outcome.alerts
            )
        return outcome


class _Gate:
    """One poll's slot of `Poller._bodies`. The Fetcher takes it once the poll holds its host's
    slot, so polls queued behind a busy host hold none (a watch list with many feeds on one site
    would fill the gate with them); at most `per_host` of a host's polls hold it while they wait
    for the host's pace. Given back when the poll ends, parsed and stored or failed."""

    def __init__(self, slots: asyncio.Semaphore) -> None:
        self._slots = slots
        self._held = False

    async def enter(self) -> None:
        if not self._held:
            await self._slots.acquire()
            self._held = True

    def leave(self) -> None:
        if self._held:
            self._held = False
            self._slots.release()


def _internal(state: SourceState, error: Exception) -> FetchError:
    log.error("source %s: internal error while polling", state.id, exc_info=error)
    return FetchError("internal", type(error).__name__)
