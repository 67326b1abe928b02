"""The poller judging failures before counting them, against a real SQLite store and real HTTP
servers on 127.0.0.1: a host's Retry-After pauses the host without penalty, 410 ends polling until
the URL changes, three 301s in a row move a source (302/307 never do), a network outage on our side
costs nothing, and ordinary failures back off."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import sqlite3
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from monitor import pipeline
from monitor._batch import Batcher
from monitor.config import Config, load_config
from monitor.daemon import source_specs
from monitor.errors import FetchError
from monitor.fetch import Admit, Fetcher, FetchRequest, FetchResult, RateLimited
from monitor.parse import FeedParser, ParsedFeed
from monitor.pipeline import UNCHANGED_BATCH, UNCHANGED_LINGER, Poller
from monitor.rulebook import Rulebook
from monitor.stories import TitleStoryMatcher
from storage import IngestResult, SourceState, SourceView, Store, UnchangedPoll
from tests.monitor.feedserver import FeedServer

T0 = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
INTERVAL = timedelta(minutes=10)
RSS = (
    '<?xml version="1.0"?><rss version="2.0"><channel><title>t</title><link>https://news.test/</link>'
    "<item><title>Depot fire</title><link>https://news.test/1</link><guid>1</guid></item>"
    "</channel></rss>"
)
RULES = """\
rules:
  - id: depots
    title: Depots
    level: high
    match: {any: [ammunition depot]}
"""


class Clock:
    """The test's time: the store's datetimes, and (as seconds) the fetcher's pacing clock."""

    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now

    def monotonic(self) -> float:
        return self.now.timestamp()

    def advance(self, delta: timedelta) -> None:
        self.now += delta


@dataclass
class Env:
    folder: Path
    clock: Clock
    store: Store
    poller: Poller
    config: Config

    async def round(self, *, due_only: bool = False) -> dict[str, object]:
        """Claim (all, or only what is due) and poll everything claimed, as the daemon does;
        then a second passes, as between any two polls."""
        states = await self.poller.claim(include_not_due=not due_only)
        results = await asyncio.gather(*(self.poller.poll(s) for s in states))
        self.clock.advance(timedelta(seconds=1))
        return {s.id: r for s, r in zip(states, results, strict=True)}

    async def claim(self) -> dict[str, SourceState]:
        return {s.id: s for s in await self.poller.claim(include_not_due=True)}

    def source(self, source_id: str) -> SourceView:
        return next(v for v in self.store.list_sources() if v.id == source_id)

    def resync(self, sources: Sequence[tuple[str, str]]) -> None:
        self.config = write_config(self.folder, sources)
        self.store.sync_sources(source_specs(self.config), self.clock())


def write_config(folder: Path, sources: Sequence[tuple[str, str]]) -> Config:
    lines = [
        f"database: sqlite:///{folder / 'state' / 'monitor.db'}",
        "polling: {interval: 10m, timeout: 3s, max_bytes: 1MiB, concurrency: 8, per_host: 2}",
        "sources:",
        *(f"  - {{id: {sid}, url: '{url}'}}" for sid, url in sources),
        "rules: [rules.yaml]",
        "notifiers:",
        "  console: {type: console}",
        "default_notify: [console]",
    ]
    (folder / "rules.yaml").write_text(RULES, encoding="utf-8")
    path = folder / "config.yaml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return load_config(path, env={})


@asynccontextmanager
async def environment(
    folder: Path,
    sources: Sequence[tuple[str, str]],
    *,
    batch: int = UNCHANGED_BATCH,
    linger: float = UNCHANGED_LINGER,
    parser: FeedParser | None = None,
    min_spacing: float | None = None,
) -> AsyncIterator[Env]:
    """Without `min_spacing`, no pacing and the test's clock; with it, real pacing on the real
    monotonic clock."""
    clock = Clock()
    # No pacing by default: see test_politeness.
    pacing: dict[str, Any] = {"min_spacing": 0.0, "monotonic": clock.monotonic}
    if min_spacing is not None:
        pacing = {"min_spacing": min_spacing}
    config = write_config(folder, sources)
    store = Store.open(config.database)
    parser = parser or FeedParser(processes=False)
    try:
        store.sync_sources(source_specs(config), clock())
        async with Fetcher(timeout=3, max_bytes=1 << 20, user_agent="t", **pacing) as fetcher:
            rulebook = Rulebook(config.rules, notifiers=list(config.notifiers))
            poller = Poller(
                config, store, fetcher, parser, rulebook, TitleStoryMatcher(),
                instance_id="test", clock=clock, unchanged_batch=batch, unchanged_linger=linger,
            )  # fmt: skip
            yield Env(folder, clock, store, poller, config)
    finally:
        parser.close()
        store.close()


@pytest.fixture
def server() -> Iterator[FeedServer]:
    with FeedServer() as s:
        yield s


@pytest.fixture
def other() -> Iterator[FeedServer]:
    with FeedServer() as s:
        yield s


def closed_port_url() -> str:
    """A URL on 127.0.0.1 whose port nobody listens on: connecting is refused at once."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/feed.xml"


# -- rate limits ---------------------------------------------------------------------------------


async def test_retry_after_pauses_the_whole_host_and_is_not_counted(
    tmp_path: Path, server: FeedServer, other: FeedServer
) -> None:
    server.route("/busy", status=429, headers={"Retry-After": "120"})
    server.route("/calm", RSS)
    other.route("/feed", RSS)
    sources = [("busy", server.url("/busy")), ("calm", server.url("/calm"))]
    async with environment(tmp_path, [*sources, ("elsewhere", other.url("/feed"))]) as env:
        claimed = await env.claim()
        busy = await env.poller.poll(claimed["busy"])
        assert isinstance(busy, RateLimited) and busy.kind == "http_429"
        view = env.source("busy")
        assert (view.status, view.error, view.consecutive_failures) == (
            "rate_limited",
            "http_429",
            0,
        )
        assert view.next_poll is not None and view.next_poll >= T0 + INTERVAL
        # the host's other source was deferred until the host's pause ends, the other host was not
        assert env.source("calm").next_poll == T0 + timedelta(seconds=120)
        assert env.source("elsewhere").next_poll == T0
        calm = await env.poller.poll(claimed["calm"])  # claimed before the pause: not sent now
        assert isinstance(calm, RateLimited) and server.hits("/calm") == 0
        assert env.source("calm").status == "rate_limited"
        assert await env.poller.poll(claimed["elsewhere"]) is not None
        assert env.source("elsewhere").status == "ok"


async def test_repeated_rate_limits_never_grow_a_backoff(
    tmp_path: Path, server: FeedServer
) -> None:
    server.route("/busy", status=503, headers={"Retry-After": "60"})
    async with environment(tmp_path, [("busy", server.url("/busy"))]) as env:
        waits = []
        for _ in range(4):
            await env.round()
            view = env.source("busy")
            assert (view.status, view.consecutive_failures) == ("rate_limited", 0)
            assert view.next_poll is not None and view.last_poll is not None
            waits.append(view.next_poll - view.last_poll)
            env.clock.advance(INTERVAL * 2)  # the host's pause is over: the next one is sent
        assert server.hits("/busy") == 4
        assert all(INTERVAL <= w <= INTERVAL * 1.05 for w in waits)
        server.route("/busy", RSS)
        await env.round()
        view = env.source("busy")
        assert (view.status, view.error, view.consecutive_failures) == ("ok", None, 0)


async def test_429_without_retry_after_is_an_ordinary_failure(
    tmp_path: Path, server: FeedServer
) -> None:
    server.route("/busy", status=429)
    async with environment(tmp_path, [("busy", server.url("/busy"))]) as env:
        for failures in (1, 2):
            await env.round()
            view = env.source("busy")
            assert (view.status, view.error, view.consecutive_failures) == (
                "error",
                "http_429",
                failures,
            )


def test_a_host_pause_reaches_every_source_on_that_host_and_port(tmp_path: Path) -> None:
    sources = [
        ("plain", "https://Feeds.Example.org/a.xml"),
        ("port", "https://feeds.example.org:443/b.xml?x=1"),
        ("idn", "https://bücher.example/c.xml"),
        ("other-port", "https://feeds.example.org:8443/d.xml"),
        ("other-host", "https://example.org/e.xml"),
    ]
    config = write_config(tmp_path, sources)
    store = Store.open(config.database)
    try:
        store.sync_sources(source_specs(config), T0)
        until = T0 + timedelta(minutes=5)
        assert sorted(store.defer_host("https://feeds.example.org/", until)) == ["plain", "port"]
        assert store.defer_host("https://xn--bcher-kva.example/", until) == ["idn"]
        assert store.defer_host("not a url", until) == []
        due = {v.id: v.next_poll for v in store.list_sources()}
        assert due == {"plain": until, "port": until, "idn": until, "other-port": T0,
                       "other-host": T0}  # fmt: skip
        # a pause never brings a later poll forward
        assert store.defer_host("https://feeds.example.org/", T0 + timedelta(minutes=1)) == []
    finally:
        store.close()


# -- gone ----------------------------------------------------------------------------------------


async def test_410_gone_is_never_polled_again_until_the_url_changes(
    tmp_path: Path, server: FeedServer
) -> None:
    server.route("/feed", status=410)
    server.route("/new-feed", RSS)
    async with environment(tmp_path, [("a", server.url("/feed"))]) as env:
        outcome = (await env.round())["a"]
        assert isinstance(outcome, FetchError) and outcome.kind == "gone"
        view = env.source("a")
        assert (view.status, view.error) == ("gone", "gone")
        env.clock.advance(timedelta(days=30))
        assert await env.poller.claim() == []
        assert await env.poller.claim(include_not_due=True) == []
        env.resync([("a", server.url("/feed"))])  # a restart with the same config
        env.resync([])  # removed from the config, then added back unchanged
        assert env.source("a").status == "disabled"
        env.resync([("a", server.url("/feed"))])
        assert env.source("a").status == "gone"
        assert await env.poller.claim(include_not_due=True) == []
        assert server.hits("/feed") == 1
        env.resync([("a", server.url("/new-feed"))])
        view = env.source("a")
        assert (view.status, view.error, view.consecutive_failures) == ("new", None, 0)
        assert (await env.round(due_only=True))["a"] is not None
        assert env.source("a").status == "ok" and server.hits("/new-feed") == 1


# -- permanent redirects -------------------------------------------------------------------------


async def test_three_301s_in_a_row_move_the_source_and_the_move_survives_restarts(
    tmp_path: Path, server: FeedServer, caplog: pytest.LogCaptureFixture
) -> None:
    server.route("/old", status=301, redirect="/new")
    server.route("/new", RSS)
    server.route("/newer", RSS)
    caplog.set_level(logging.INFO, logger="monitor.pipeline")
    async with environment(tmp_path, [("a", server.url("/old"))]) as env:
        for _ in range(2):
            await env.round()
            assert env.store.moved_sources() == {}
        assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
        await env.round()
        assert env.store.moved_sources() == {"a": server.url("/new")}
        warning = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
        assert len(warning) == 1 and "config.yaml" in warning[0] and "/new" in warning[0]
        assert server.hits("/old") == 3
        await env.round()
        assert (server.hits("/old"), server.hits("/new")) == (3, 4)
        assert env.source("a").url == server.url("/old")  # the config's URL is still shown
    async with environment(tmp_path, [("a", server.url("/old"))]) as env:  # restart
        await env.round()
        assert (server.hits("/old"), server.hits("/new")) == (3, 5)
    async with environment(tmp_path, [("a", server.url("/newer"))]) as env:  # config edited
        assert env.store.moved_sources() == {}
        await env.round()
        assert (server.hits("/old"), server.hits("/new"), server.hits("/newer")) == (3, 5, 1)


@pytest.mark.parametrize("status", [302, 307])
async def test_temporary_redirects_never_move_a_source(
    tmp_path: Path, server: FeedServer, status: int
) -> None:
    server.route("/feed", status=status, redirect="/today")
    server.route("/today", RSS)
    async with environment(tmp_path, [("a", server.url("/feed"))]) as env:
        for _ in range(5):
            await env.round()
        assert env.store.moved_sources() == {}
        assert server.hits("/feed") == 5


async def test_a_direct_answer_breaks_the_run_but_a_failure_does_not(
    tmp_path: Path, server: FeedServer
) -> None:
    server.route("/new", RSS)
    async with environment(tmp_path, [("a", server.url("/old"))]) as env:
        for answer in ("301", "301", "direct", "301", "301", "500", "301"):
            if answer == "301":
                server.route("/old", status=301, redirect="/new")
            elif answer == "direct":
                server.route("/old", RSS)
            else:
                server.route("/old", status=500)
            assert env.store.moved_sources() == {}
            await env.round()
        assert env.store.moved_sources() == {"a": server.url("/new")}


async def test_a_new_permanent_target_starts_the_run_again(
    tmp_path: Path, server: FeedServer
) -> None:
    server.route("/b", RSS)
    server.route("/c", RSS)
    async with environment(tmp_path, [("a", server.url("/old"))]) as env:
        for target in ("/b", "/b", "/c", "/c"):
            server.route("/old", status=308, redirect=target)
            await env.round()
        assert env.store.moved_sources() == {}
        await env.round()
        assert env.store.moved_sources() == {"a": server.url("/c")}


# -- network outages -----------------------------------------------------------------------------


async def test_when_every_host_fails_at_the_network_level_nobody_is_penalised(
    tmp_path: Path,
) -> None:
    sources = [(f"s{n}", closed_port_url()) for n in range(3)]
    async with environment(tmp_path, sources) as env:
        for _ in range(3):
            outcomes = await env.round()
            assert {o.kind for o in outcomes.values() if isinstance(o, FetchError)} == {"connect"}
            env.clock.advance(INTERVAL * 2)
        for sid, _url in sources:
            view = env.source(sid)
            assert (view.status, view.error, view.consecutive_failures) == ("error", "connect", 0)
            assert view.next_poll is not None and view.last_poll is not None
            assert view.next_poll - view.last_poll <= INTERVAL * 1.05


async def test_network_failures_count_when_another_host_answers(
    tmp_path: Path, server: FeedServer
) -> None:
    server.route("/feed", RSS)
    sources = [*((f"s{n}", closed_port_url()) for n in range(3)), ("ok", server.url("/feed"))]
    async with environment(tmp_path, sources) as env:
        await env.round()
        assert [env.source(f"s{n}").consecutive_failures for n in range(3)] == [1, 1, 1]
        assert env.source("ok").status == "ok"


async def test_network_failures_on_fewer_than_three_hosts_count(tmp_path: Path) -> None:
    url = closed_port_url()
    sources = [("a", url), ("b", url.replace("feed.xml", "other.xml")), ("c", closed_port_url())]
    async with environment(tmp_path, sources) as env:
        await env.round()
        assert [env.source(s).consecutive_failures for s in "abc"] == [1, 1, 1]


# -- ordinary failures ---------------------------------------------------------------------------


async def test_ordinary_failures_back_off_and_a_success_resets(
    tmp_path: Path, server: FeedServer
) -> None:
    server.route("/feed", status=500)
    async with environment(tmp_path, [("a", server.url("/feed"))]) as env:
        waits = []
        for _ in range(4):
            await env.round()
            view = env.source("a")
            assert view.next_poll is not None and view.last_poll is not None
            waits.append((view.next_poll - view.last_poll) / INTERVAL)
        assert [round(w) for w in waits] == [1, 2, 4, 8]
        assert env.source("a").consecutive_failures == 4
        server.route("/feed", RSS)
        await env.round()
        view = env.source("a")
        assert (view.status, view.consecutive_failures, view.error) == ("ok", 0, None)


# -- unchanged polls -----------------------------------------------------------------------------


class BatchSpy:
    """Wraps the store's batch write: records each batch's ids, then writes it for real."""

    def __init__(self, store: Store) -> None:
        self.batches: list[list[str]] = []
        self._write = store.record_not_modified_many

    def __call__(self, instance_id: str, polls: Sequence[UnchangedPoll]) -> set[str]:
        self.batches.append([p.source_id for p in polls])
        return self._write(instance_id, polls)


async def test_concurrent_unchanged_polls_are_stored_in_a_few_transactions(
    tmp_path: Path,
    server: FeedServer,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    server.route("/feed", RSS, etag='"v1"')
    sources = [(f"s{n:02d}", server.url(f"/feed?n={n}")) for n in range(40)]
    # A linger far longer than the test: only a full batch is written, so the count is exact.
    async with environment(tmp_path, sources, batch=20, linger=600) as env:
        spy = BatchSpy(env.store)
        monkeypatch.setattr(env.store, "record_not_modified_many", spy)
        assert all(o is not None for o in (await env.round()).values())  # first polls: 200
        assert spy.batches == []
        polled_at = env.clock()
        caplog.set_level(logging.DEBUG, logger="monitor.pipeline")
        outcomes = await env.round()
        assert list(outcomes.values()) == [None] * 40
        assert [len(b) for b in spy.batches] == [20, 20]
        assert sorted(sid for b in spy.batches for sid in b) == [sid for sid, _ in sources]
        assert server.hits("/feed") == 80
        for sid, _url in sources:
            view = env.source(sid)
            assert (view.status, view.last_poll, view.last_success) == ("ok", polled_at, polled_at)
        lines = [r.getMessage() for r in caplog.records if r.levelno == logging.DEBUG]
        assert sorted(lines) == [f"source {sid}: not_modified" for sid, _ in sources]


async def test_an_unchanged_poll_is_written_after_the_linger_without_a_full_batch(
    tmp_path: Path, server: FeedServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    server.route("/feed", RSS)
    async with environment(tmp_path, [("a", server.url("/feed"))], linger=0.01) as env:
        spy = BatchSpy(env.store)
        monkeypatch.setattr(env.store, "record_not_modified_many", spy)
        await env.round()
        polled_at = env.clock()
        assert (await env.round())["a"] is None  # 200 with the same body: unchanged
        assert spy.batches == [["a"]]
        assert env.source("a").last_success == polled_at


async def test_a_failed_batch_reaches_each_of_its_polls_as_storage(
    tmp_path: Path,
    server: FeedServer,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    server.route("/feed", RSS, etag='"v1"')
    sources = [(f"s{n}", server.url(f"/feed?n={n}")) for n in range(6)]
    async with environment(tmp_path, sources, batch=6, linger=600) as env:
        await env.round()
        spy = BatchSpy(env.store)
        monkeypatch.setattr(env.store, "record_not_modified_many", spy)
        claimed = await env.claim()
        before = {sid: env.source(sid) for sid, _ in sources}
        # A real failure of the database: the table the batch writes is gone for a while.
        database = str(tmp_path / "state" / "monitor.db")
        with contextlib.closing(sqlite3.connect(database)) as conn:
            conn.execute("ALTER TABLE sources RENAME TO sources_away")
        outcomes = await asyncio.gather(*(env.poller.poll(s) for s in claimed.values()))
        assert len(spy.batches) == 1
        assert [o.kind if isinstance(o, FetchError) else o for o in outcomes] == ["storage"] * 6
        errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
        assert len(errors) == 6 and all("could not store this poll" in e for e in errors)
        with contextlib.closing(sqlite3.connect(database)) as conn:
            conn.execute("ALTER TABLE sources_away RENAME TO sources")
        # nothing of the failed polls was stored; they are polled again once their leases end
        assert {sid: env.source(sid) for sid, _ in sources} == before
        env.clock.advance(env.poller.lease)
        assert list((await env.round()).values()) == [None] * 6
        assert all(env.source(sid).last_success == env.clock() - timedelta(seconds=1)
                   for sid, _ in sources)  # fmt: skip


async def test_an_unchanged_poll_whose_lease_was_lost_writes_nothing_and_says_so(
    tmp_path: Path, server: FeedServer, caplog: pytest.LogCaptureFixture
) -> None:
    server.route("/feed", RSS, etag='"v1"')
    sources = [("a", server.url("/feed?a")), ("b", server.url("/feed?b"))]
    async with environment(tmp_path, sources, batch=2, linger=600) as env:
        await env.round()
        claimed = await env.claim()
        # this instance stalls past its lease; another one takes one of the two over
        late = env.clock() + env.poller.lease
        (taken,) = env.store.claim_due_sources("other", late, limit=1, lease=env.poller.lease,
                                               include_not_due=True)  # fmt: skip
        (kept,) = set(claimed) - {taken.id}
        before = env.source(taken.id)
        caplog.set_level(logging.WARNING, logger="monitor.pipeline")
        outcomes = await asyncio.gather(*(env.poller.poll(s) for s in claimed.values()))
        assert outcomes == [None, None]
        assert env.source(taken.id) == before
        assert env.source(kept).last_success == env.clock()
        warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
        assert warnings == [
            f"source {taken.id}: lease lost while polling; another instance took over"
        ]


async def test_a_cancelled_poll_never_cancels_the_batch_the_others_wait_for() -> None:
    written: list[list[str]] = []

    def write(entries: Sequence[str]) -> set[str]:
        written.append(list(entries))
        return set(entries)

    batcher: Batcher[str, set[str]] = Batcher(write, max_size=3, linger=600)
    first = asyncio.create_task(batcher.add("a"))
    second = asyncio.create_task(batcher.add("b"))
    await asyncio.sleep(0)
    first.cancel()  # e.g. a daemon stopping: its entry is written all the same
    assert await batcher.add("c") == {"a", "b", "c"}
    assert await second == {"a", "b", "c"}
    assert first.cancelled() and written == [["a", "b", "c"]]


@pytest.mark.parametrize("etag", ['"v1"', None], ids=["304", "same-body"])
async def test_a_feeds_ttl_still_holds_when_it_has_not_changed(
    tmp_path: Path, server: FeedServer, etag: str | None
) -> None:
    # <ttl> is in minutes: 3 hours, longer than the 10-minute interval. An unchanged poll has no
    # body to read it from; it must not fall back to the interval.
    body = RSS.replace("<channel>", "<channel><ttl>180</ttl>", 1)
    server.route("/feed", body, etag=etag)
    async with environment(tmp_path, [("a", server.url("/feed")), ("b", server.url("/b"))]) as env:
        server.route("/b", RSS, etag=etag)
        await env.round()
        for round_ in range(2):
            polled_at = env.clock()
            assert (await env.round()) == {"a": None, "b": None}  # unchanged
            assert server.hits("/feed") == 2 + round_
            wait = {sid: env.source(sid).next_poll - polled_at for sid in ("a", "b")}  # type: ignore[operator]
            assert timedelta(hours=3) <= wait["a"] <= timedelta(hours=3) * 1.05
            assert INTERVAL <= wait["b"] <= INTERVAL * 1.05
        # A body without <ttl> ends it: the interval is back.
        server.route("/feed", RSS.replace("Depot fire", "Depot fire again"), etag=None)
        polled_at = env.clock()
        await env.round()
        assert env.source("a").next_poll - polled_at <= INTERVAL * 1.05  # type: ignore[operator]


class SlowParser(FeedParser):
    """The real parser (in threads) taking 50 ms a feed, counting the feeds it parses at once."""

    def __init__(self) -> None:
        super().__init__(1, processes=False)
        self.parsing = self.most = 0

    async def parse(self, source_id: str, body: bytes, headers: Any, url: str) -> ParsedFeed:
        self.parsing += 1
        self.most = max(self.most, self.parsing)
        try:
            await asyncio.sleep(0.05)
            return await super().parse(source_id, body, headers, url)
        finally:
            self.parsing -= 1


async def test_only_a_few_changed_feeds_are_parsed_and_stored_at_once(
    tmp_path: Path, server: FeedServer, other: FeedServer
) -> None:
    # Bodies arrive four at a time (two servers, two per host), but one parse worker means at most
    # two polls parse or store at once: the others wait holding only their bodies, not the parsed
    # items (many times larger) of a first poll of every feed.
    feeds = [(s, f"/f{n}") for s in (server, other) for n in range(6)]
    for s, path in feeds:
        s.route(path, RSS.replace("Depot fire", f"Depot fire {path}"))
    sources = [(f"s{n:02d}", s.url(path)) for n, (s, path) in enumerate(feeds)]
    parser = SlowParser()
    async with environment(tmp_path, sources, parser=parser) as env:
        outcomes = await env.round()
    assert all(isinstance(o, IngestResult) and o.new_items == 1 for o in outcomes.values())
    assert parser.most == 2 * parser.workers == 2


@pytest.mark.parametrize("per_worker", [1, 3])
async def test_first_polls_fetch_no_faster_than_the_parser_takes_their_bodies(
    tmp_path: Path,
    server: FeedServer,
    other: FeedServer,
    monkeypatch: pytest.MonkeyPatch,
    per_worker: int,
) -> None:
    # A first poll always brings a body. Fetched bodies wait for the parser; only
    # BODIES_PER_WORKER x workers first polls may fetch or wait at once, so at most that many
    # less the one parsing hold a body nobody parses yet. Later polls (validators) are not held.
    monkeypatch.setattr(pipeline, "BODIES_PER_WORKER", per_worker)
    fetched = parsed = most_waiting = 0
    fetch = Fetcher.fetch

    async def counting_fetch(
        self: Fetcher, req: FetchRequest, *, admit: Admit | None = None
    ) -> FetchResult:
        nonlocal fetched, most_waiting
        result = await fetch(self, req, admit=admit)
        if result.status == "ok":
            fetched += 1
            most_waiting = max(most_waiting, fetched - parsed)
        return result

    class CountingParser(SlowParser):
        async def parse(self, source_id: str, body: bytes, headers: Any, url: str) -> ParsedFeed:
            nonlocal parsed
            parsed += 1
            return await super().parse(source_id, body, headers, url)

    monkeypatch.setattr(Fetcher, "fetch", counting_fetch)
    feeds = [(s, f"/f{n}") for s in (server, other) for n in range(6)]
    for s, path in feeds:
        s.route(path, RSS.replace("Depot fire", f"Depot fire {path}"), etag=f'"{path}"')
    sources = [(f"s{n:02d}", s.url(path)) for n, (s, path) in enumerate(feeds)]
    async with environment(tmp_path, sources, parser=CountingParser()) as env:
        first = await env.round()
        assert all(isinstance(o, IngestResult) and o.new_items == 1 for o in first.values())
        assert 1 <= most_waiting <= per_worker  # the one fetched is counted before its parse
        assert (await env.round()) == {sid: None for sid, _ in sources}  # 304s, not held


async def test_first_polls_queued_behind_a_paced_host_leave_the_gate_to_other_hosts(
    tmp_path: Path, server: FeedServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Six new feeds on one site, paced 0.5 s apart, claimed before six feeds of six other sites,
    # with room for 3 first polls at once. The site's polls queued for its host slots hold no
    # gate slot, so the other sites' feeds are polled at once, not after the site's (which would
    # take 2.5 s); the gate still bounds bodies as before (previous test).
    monkeypatch.setattr(pipeline, "BODIES_PER_WORKER", 3)
    spacing = 0.5
    with contextlib.ExitStack() as stack:
        others = [stack.enter_context(FeedServer()) for _ in range(6)]
        feeds = [("a", server, n) for n in range(6)] + [("o", s, n) for n, s in enumerate(others)]
        for _, s, n in feeds:
            s.route(f"/f{n}", RSS.replace("Depot fire", f"Depot fire {n}"))
        sources = [(f"{tag}{n}", s.url(f"/f{n}")) for tag, s, n in feeds]
        parser = FeedParser(1, processes=False)  # a gate of 3 x 1 worker
        async with environment(tmp_path, sources, parser=parser, min_spacing=spacing) as env:
            states = sorted(await env.poller.claim(include_not_due=True), key=lambda s: s.id)
            done: dict[str, float] = {}
            loop = asyncio.get_running_loop()

            async def poll(state: SourceState) -> object:
                outcome = await env.poller.poll(state)
                done[state.id] = loop.time()
                return outcome

            outcomes = await asyncio.gather(*(poll(s) for s in states))
    assert all(isinstance(o, IngestResult) and o.new_items == 1 for o in outcomes)
    site = sorted(t for sid, t in done.items() if sid.startswith("a"))
    assert site[-1] - site[0] >= 5 * spacing * 0.9  # the site was paced
    # Its third feed waits for two paces; every other site's feed is done before then.
    assert max(t for sid, t in done.items() if sid.startswith("o")) < site[2]
