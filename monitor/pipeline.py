"""One poll of one source, step by step: fetch (conditional GET) -> parse (off the event loop) ->
normalise -> ingest (store new items, group stories, match, and write alerts with their deliveries
in one transaction).

Every failure is sorted into a stable kind and written on the source; nothing a feed sends can stop
the others.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from monitor.config import Config
from monitor.errors import FetchError
from monitor.fetch import Fetcher, FetchRequest, FetchResult
from monitor.metrics import Metrics
from monitor.model import Item
from monitor.parse import FeedParser
from monitor.rulebook import Rulebook, item_document, make_router
from monitor.schedule import next_poll_after_failure, next_poll_after_success
from storage import IngestResult, SourceState, Store, StoryMatcher

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]


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
        self._metrics = metrics
        self._min_levels = {name: s.min_level for name, s in config.notifiers.items()}
        # A claimed source stays leased for a whole fetch + parse + ingest, with room to spare.
        self.lease = config.polling.timeout * 3 + config.polling.interval / 10

    async def claim(self, *, include_not_due: bool = False, limit: int = 500) -> list[SourceState]:
        return await asyncio.to_thread(
            self._store.claim_due_sources,
            self._instance,
            self._clock(),
            limit=limit,
            lease=self.lease,
            include_not_due=include_not_due,
        )

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
        outcome = await self._poll(state)
        if self._metrics is not None:
            seconds = time.monotonic() - started
            if isinstance(outcome, FetchError):
                self._metrics.poll(state.id, outcome.kind, seconds)
            else:
                self._metrics.poll(state.id, "unchanged" if outcome is None else "ok", seconds)
                if outcome is not None:
                    self._metrics.items(state.id, outcome.new_items)
        return outcome

    async def _poll(self, state: SourceState) -> IngestResult | FetchError | None:
        request = FetchRequest(
            source_id=state.id,
            url=state.url,
            etag=state.etag,
            last_modified=state.last_modified,
            body_hash=state.body_hash,
        )
        try:
            result = await self._fetcher.fetch(request)
            if result.status != "ok":
                await self._record_unchanged(state, result)
                return None
            parsed = await self._parser.parse(state.id, result.body, result.headers, result.url)
        except FetchError as e:
            await self._record_failure(state, e)
            return e
        except Exception as e:  # a bug of ours must cost one poll of one source, never the daemon
            log.exception("source %s: internal error while polling", state.id)
            error = FetchError("internal", type(e).__name__)
            await self._record_failure(state, error)
            return error
        if parsed.bozo:
            log.info("source %s: feed is not well-formed (%s), read anyway", state.id, parsed.bozo)
        return await self._ingest(state, result, parsed.items, parsed.ttl)

    async def _record_unchanged(self, state: SourceState, result: FetchResult) -> None:
        now = self._clock()
        next_poll = next_poll_after_success(now, state.interval, self._rng, max_age=result.max_age)
        await asyncio.to_thread(
            self._store.record_not_modified,
            state.id,
            self._instance,
            now,
            next_poll_at=next_poll,
            etag=result.etag,
            last_modified=result.last_modified,
        )
        log.debug("source %s: %s", state.id, result.status)

    async def _record_failure(self, state: SourceState, error: FetchError) -> None:
        now = self._clock()
        next_poll = next_poll_after_failure(
            now,
            state.interval,
            state.consecutive_failures + 1,
            self._rng,
            retry_after=error.retry_after,
        )
        log.warning("source %s: %s", state.id, error)
        await asyncio.to_thread(
            self._store.record_failure,
            state.id,
            self._instance,
            now,
            kind=error.kind,
            detail=error.detail[:500],
            next_poll_at=next_poll,
        )

    async def _ingest(
        self, state: SourceState, result: FetchResult, items: Sequence[Item], ttl: float | None
    ) -> IngestResult | None:
        compiled = self._rulebook.current
        matcher = compiled.matcher
        tags = state.tags
        route = make_router(compiled.by_id, self._config.default_notify, self._min_levels)
        now = self._clock()
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
        )
        if outcome is None:
            log.warning("source %s: lease lost while polling; another instance took over", state.id)
        elif outcome.new_items:
            log.info(
                "source %s: %d new items, %d alerts", state.id, outcome.new_items, outcome.alerts
            )
        return outcome
