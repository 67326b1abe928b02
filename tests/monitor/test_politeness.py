"""Fetching like a good citizen: the scheduling maths (backoff, hints, rate limits), the host pacer
on an injected clock, and the fetcher's spacing and pauses against real servers on 127.0.0.1."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import cast

import pytest
from hypothesis import given
from hypothesis import strategies as st

from monitor._pacing import MAX_PAUSE, HostPacer, Slots
from monitor._transport import HTTP_CLIENTS, HttpClient
from monitor.errors import FetchError
from monitor.fetch import Fetcher, FetchRequest, FetchResult, RateLimited, host_key
from monitor.schedule import (
    MAX_BACKOFF,
    MAX_HINT,
    host_paused_until,
    next_poll_after_failure,
    next_poll_after_rate_limit,
    next_poll_after_success,
)
from tests.monitor.feedserver import FeedServer

T0 = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
MIN = timedelta(minutes=1)
RSS = (
    b'<?xml version="1.0"?><rss version="2.0"><channel><title>t</title>'
    b"<item><title>one</title><link>https://news.test/1</link></item></channel></rss>"
)


class Fixed(random.Random):
    """A random source that always draws the same number: 0 (no jitter) or just under 1 (most)."""

    def __init__(self, value: float) -> None:
        super().__init__()
        self.value = value

    def random(self) -> float:
        return self.value


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


NO_JITTER = Fixed(0.0)
MOST_JITTER = Fixed(0.999999)


# -- scheduling maths ----------------------------------------------------------------------------


def test_backoff_doubles_per_consecutive_failure_from_one_interval() -> None:
    waits = [next_poll_after_failure(T0, 15 * MIN, n, NO_JITTER) - T0 for n in range(1, 9)]
    assert waits == [15 * MIN * 2**k for k in range(7)] + [MAX_BACKOFF]  # 16h, then capped
    assert next_poll_after_failure(T0, 15 * MIN, 500, NO_JITTER) - T0 == MAX_BACKOFF


def test_backoff_never_shorter_than_the_interval_itself() -> None:
    # A source polled every 2 days fails: the 24h cap must not make it poll more often.
    assert next_poll_after_failure(T0, timedelta(days=2), 9, NO_JITTER) - T0 == timedelta(days=2)


def test_backoff_honours_a_longer_retry_after_within_the_cap() -> None:
    assert next_poll_after_failure(T0, MIN, 1, NO_JITTER, retry_after=3600) - T0 == 60 * MIN
    assert next_poll_after_failure(T0, 60 * MIN, 1, NO_JITTER, retry_after=60) - T0 == 60 * MIN
    assert next_poll_after_failure(T0, MIN, 1, NO_JITTER, retry_after=10**9) - T0 == MAX_BACKOFF
    assert next_poll_after_failure(T0, MIN, 1, NO_JITTER, retry_after=-5) - T0 == MIN


@given(
    interval_s=st.integers(min_value=1, max_value=3 * 86400),
    failures=st.integers(min_value=0, max_value=10_000),
    jitter=st.floats(min_value=0.0, max_value=0.999999),
)
def test_backoff_bounds_and_growth(interval_s: int, failures: int, jitter: float) -> None:
    interval = timedelta(seconds=interval_s)
    rng = Fixed(jitter)
    wait = next_poll_after_failure(T0, interval, failures, rng) - T0
    ceiling = max(MAX_BACKOFF, interval)
    assert interval <= wait <= ceiling * 1.05
    # never shorter after one more failure
    assert next_poll_after_failure(T0, interval, failures + 1, rng) - T0 >= wait


def test_jitter_adds_at_most_five_percent_and_never_subtracts() -> None:
    for when in (
        next_poll_after_success(T0, 20 * MIN, MOST_JITTER),
        next_poll_after_failure(T0, 20 * MIN, 1, MOST_JITTER),
        next_poll_after_rate_limit(T0, 20 * MIN, 0, MOST_JITTER),
    ):
        assert 20 * MIN <= when - T0 <= 21 * MIN
    spread = {next_poll_after_success(T0, 20 * MIN, random.Random(seed)) for seed in range(20)}
    assert len(spread) == 20  # sources configured together drift apart


def test_feed_hints_slow_polling_down_but_never_beyond_six_hours() -> None:
    assert next_poll_after_success(T0, 15 * MIN, NO_JITTER, ttl=3600) - T0 == 60 * MIN
    assert next_poll_after_success(T0, 15 * MIN, NO_JITTER, max_age=60) - T0 == 15 * MIN
    assert next_poll_after_success(T0, 15 * MIN, NO_JITTER, ttl=10**7) - T0 == MAX_HINT
    assert next_poll_after_success(T0, 15 * MIN, NO_JITTER, ttl=-1, max_age=0) - T0 == 15 * MIN


def test_rate_limit_waits_for_the_host_and_at_least_one_interval_without_growth() -> None:
    assert next_poll_after_rate_limit(T0, 15 * MIN, 120, NO_JITTER) - T0 == 15 * MIN
    assert next_poll_after_rate_limit(T0, MIN, 7200, NO_JITTER) - T0 == 120 * MIN
    assert next_poll_after_rate_limit(T0, MIN, 10**9, NO_JITTER) - T0 == MAX_BACKOFF
    assert next_poll_after_rate_limit(T0, MIN, -30, NO_JITTER) - T0 == MIN
    # however often it happens, the wait stays the same: rate limits are not failures
    assert next_poll_after_rate_limit(T0 + 5 * MIN, MIN, 7200, NO_JITTER) - T0 == 125 * MIN


def test_host_pause_is_exact_and_capped() -> None:
    assert host_paused_until(T0, 90) == T0 + timedelta(seconds=90)
    assert host_paused_until(T0, 0) == T0
    assert host_paused_until(T0, -3) == T0
    assert host_paused_until(T0, 30 * 86400) == T0 + MAX_BACKOFF


# -- host pacer (injected clock) -----------------------------------------------------------------


def test_first_request_to_a_host_goes_at_once_then_requests_queue_a_spacing_apart() -> None:
    clock = FakeClock()
    pacer = HostPacer(1.0, clock=clock)
    assert [pacer.reserve("a:https") for _ in range(4)] == [0.0, 1.0, 2.0, 3.0]
    assert pacer.reserve("b:https") == 0.0  # other hosts are not held up
    clock.now += 2.5  # slots at +0..+3 were handed out: the next free one is +4
    assert pacer.reserve("a:https") == pytest.approx(1.5)
    clock.now += 60
    assert pacer.reserve("a:https") == 0.0


def test_zero_spacing_never_waits_and_negative_is_refused() -> None:
    pacer = HostPacer(0.0, clock=FakeClock())
    assert {pacer.reserve("a:80") for _ in range(10)} == {0.0}
    with pytest.raises(ValueError):
        HostPacer(-1.0)


def test_a_pause_runs_out_and_is_only_ever_extended() -> None:
    clock = FakeClock()
    pacer = HostPacer(1.0, clock=clock)
    assert pacer.paused("a:443") is None
    pacer.pause("a:443", 120, kind="http_429", origin="https://a/")
    clock.now += 20
    running = pacer.paused("a:443")
    assert running is not None
    pause, left = running
    assert (pause.kind, pause.origin, left) == ("http_429", "https://a/", 100.0)
    pacer.pause("a:443", 5, kind="http_503", origin="https://a/")  # shorter: no effect
    assert pacer.paused("a:443") == (pause, 100.0)
    pacer.pause("a:443", 300, kind="http_503", origin="https://a/")
    running = pacer.paused("a:443")
    assert running is not None and running[0].kind == "http_503" and running[1] == 300.0
    clock.now += 300
    assert pacer.paused("a:443") is None
    assert pacer.paused("b:443") is None


def test_pauses_are_capped_and_a_zero_pause_pauses_nothing() -> None:
    clock = FakeClock()
    pacer = HostPacer(1.0, clock=clock)
    pacer.pause("a:443", 30 * 86400, kind="http_503", origin="https://a/")
    running = pacer.paused("a:443")
    assert running is not None and running[1] == MAX_PAUSE
    pacer.pause("b:443", 0, kind="http_429", origin="https://b/")
    pacer.pause("c:443", -10, kind="http_429", origin="https://c/")
    assert pacer.paused("b:443") is None and pacer.paused("c:443") is None


def test_idle_hosts_are_forgotten() -> None:
    clock = FakeClock()
    pacer = HostPacer(1.0, clock=clock)
    for n in range(5000):
        pacer.reserve(f"host{n}:443")
    pacer.pause("busy:443", 3600, kind="http_429", origin="https://busy/")
    assert pacer.tracked() == 5001
    clock.now += 61
    pacer.reserve("late:443")
    assert pacer.tracked() == 2  # the running pause and the host just reserved
    assert pacer.paused("busy:443") is not None


def test_host_key_is_host_and_port() -> None:
    assert host_key("https://Feeds.Example.org/a?x=1") == "feeds.example.org:https"
    assert host_key("https://feeds.example.org:8443/a") == "feeds.example.org:8443"
    assert host_key("http://[::1]:8080/x") == "::1:8080"
    assert host_key("http://a:b:c/") == "http://a:b:c/"  # unparsable: its own unit


# -- slots: the fetcher's limits on requests in flight -------------------------------------------


async def settle() -> None:
    """Let every task that can run, run (a few turns of the loop)."""
    for _ in range(5):
        await asyncio.sleep(0)


class Holders:
    """Tasks that enter `slots`, note the order they got in, and hold until told to leave."""

    def __init__(self, slots: Slots) -> None:
        self.slots = slots
        self.order: list[int] = []
        self.inside = 0
        self.most = 0
        self.leave: dict[int, asyncio.Event] = {}
        self.tasks: dict[int, asyncio.Task[None]] = {}

    def start(self, n: int) -> None:
        self.leave[n] = asyncio.Event()
        self.tasks[n] = asyncio.create_task(self._hold(n))

    async def _hold(self, n: int) -> None:
        async with self.slots:
            self.order.append(n)
            self.inside += 1
            self.most = max(self.most, self.inside)
            try:
                await self.leave[n].wait()
            finally:
                self.inside -= 1


async def test_slots_are_taken_first_come_first_served() -> None:
    holders = Holders(Slots(2))
    for n in range(8):
        holders.start(n)
        await settle()
    assert holders.order == [0, 1] and holders.slots.free == 0
    for n in range(8):
        holders.leave[n].set()
        await settle()
    assert holders.order == list(range(8))
    assert holders.most == 2 and holders.slots.free == 2


async def test_a_waiter_cancelled_in_the_queue_is_skipped() -> None:
    holders = Holders(Slots(1))
    for n in range(4):
        holders.start(n)
        await settle()
    holders.tasks[1].cancel()
    await settle()
    holders.leave[0].set()
    await settle()
    assert holders.order == [0, 2]
    for n in (2, 3):
        holders.leave[n].set()
        await settle()
    assert holders.order == [0, 2, 3] and holders.slots.free == 1


async def test_a_waiter_cancelled_after_it_was_handed_a_slot_hands_it_on() -> None:
    holders = Holders(Slots(1))
    for n in range(3):
        holders.start(n)
        await settle()
    holders.leave[0].set()
    await asyncio.sleep(0)  # 0 leaves and hands its slot to 1, which has not run yet
    assert holders.order == [0] and holders.inside == 0 and holders.slots.free == 0
    holders.tasks[1].cancel()
    await settle()
    assert holders.tasks[1].cancelled()
    assert holders.order == [0, 2]
    holders.leave[2].set()
    await settle()
    assert holders.slots.free == 1


@given(st.lists(st.sampled_from(["enter", "leave", "cancel"]), max_size=60), st.integers(1, 4))
def test_slots_never_exceed_the_limit_nor_leak(steps: list[str], limit: int) -> None:
    async def run() -> None:
        holders = Holders(Slots(limit))
        started = 0
        for step in steps:
            alive = [n for n, t in holders.tasks.items() if not t.done()]
            if step == "enter":
                holders.start(started)
                started += 1
            elif step == "leave" and alive:
                holders.leave[alive[0]].set()
            elif step == "cancel" and alive:
                holders.tasks[alive[-1]].cancel()
            await settle()
            assert holders.inside <= limit
        for n in holders.tasks:
            holders.leave[n].set()
        await asyncio.gather(*holders.tasks.values(), return_exceptions=True)
        assert holders.slots.free == limit
        # Entries are first come, first served: the order taken is the order of arrival.
        assert holders.order == sorted(holders.order)

    asyncio.run(run())


def test_slots_need_a_positive_limit() -> None:
    with pytest.raises(ValueError):
        Slots(0)


# -- the fetcher against real servers ------------------------------------------------------------


@pytest.fixture
def server() -> Iterator[FeedServer]:
    with FeedServer() as s:
        yield s


@pytest.fixture
def other() -> Iterator[FeedServer]:
    with FeedServer() as s:
        yield s


@pytest.fixture(params=HTTP_CLIENTS)
def client(request: pytest.FixtureRequest) -> HttpClient:
    """Politeness holds on both connection pools (`monitor._transport`)."""
    return cast(HttpClient, request.param)


def fetcher(client: HttpClient, spacing: float = 0.0, clock: FakeClock | None = None) -> Fetcher:
    return Fetcher(
        timeout=5, max_bytes=1 << 20, user_agent="t", per_host=4, min_spacing=spacing,
        monotonic=clock, http_client=client,
    )  # fmt: skip


async def fetch(f: Fetcher, url: str) -> FetchResult:
    return await f.fetch(FetchRequest(source_id="s", url=url))


async def failure(f: Fetcher, url: str) -> FetchError:
    with pytest.raises(FetchError) as info:
        await fetch(f, url)
    return info.value


async def test_requests_to_one_host_start_a_spacing_apart(
    server: FeedServer, other: FeedServer, client: HttpClient
) -> None:
    server.route("/feed", RSS)
    other.route("/feed", RSS)
    started = time.monotonic()
    done: dict[str, float] = {}

    async def timed(name: str, url: str) -> None:
        await fetch(f, url)
        done[name] = time.monotonic() - started

    async with fetcher(client, spacing=0.4) as f:
        await asyncio.gather(
            *(timed(f"same{n}", server.url(f"/feed?n={n}")) for n in range(3)),
            timed("other", other.url("/feed")),
        )
    assert server.hits("/feed") == 3
    assert done["same0"] < 0.4 and done["other"] < 0.4  # nobody waits for a host's first slot
    assert done["same1"] >= 0.4 and done["same2"] >= 0.8


async def test_redirect_hops_within_one_host_are_not_paced(
    server: FeedServer, client: HttpClient
) -> None:
    server.route("/a", status=301, redirect="/b")
    server.route("/b", status=302, redirect="/feed")
    server.route("/feed", RSS)
    started = time.monotonic()
    async with fetcher(client, spacing=5.0) as f:
        result = await fetch(f, server.url("/a"))
    assert result.status == "ok" and time.monotonic() - started < 2.0


async def test_429_with_retry_after_pauses_the_host_and_sends_nothing_more(
    server: FeedServer, other: FeedServer, client: HttpClient
) -> None:
    server.route("/busy", status=429, headers={"Retry-After": "120"})
    server.route("/feed", RSS)
    other.route("/feed", RSS)
    clock = FakeClock()
    async with fetcher(client, clock=clock) as f:
        first = await failure(f, server.url("/busy"))
        assert isinstance(first, RateLimited)
        assert (first.kind, first.retry_after, first.origin) == ("http_429", 120, server.url("/"))
        clock.now += 20
        second = await failure(f, server.url("/feed"))  # same host: not even sent
        assert isinstance(second, RateLimited) and second.retry_after == 100
        assert "not sent" in second.detail and second.kind == "http_429"
        assert server.hits("/feed") == 0
        assert (await fetch(f, other.url("/feed"))).status == "ok"  # other port, other host
        clock.now += 101
        assert (await fetch(f, server.url("/feed"))).status == "ok"  # the pause is over
    assert server.hits("/busy") == 1


async def test_503_with_an_http_date_retry_after_pauses_the_host(
    server: FeedServer, client: HttpClient
) -> None:
    now = datetime.now(UTC)
    server.route(
        "/down",
        status=503,
        headers={
            "Retry-After": format_datetime(now + timedelta(seconds=600), usegmt=True),
            "Date": format_datetime(now, usegmt=True),
        },
    )
    server.route("/feed", RSS)
    async with fetcher(client) as f:
        error = await failure(f, server.url("/down"))
        assert isinstance(error, RateLimited) and error.kind == "http_503"
        assert error.retry_after == pytest.approx(600, abs=2)
        assert isinstance(await failure(f, server.url("/feed")), RateLimited)
    assert server.hits("/feed") == 0


@pytest.mark.parametrize(("status", "kind"), [(429, "http_429"), (503, "http_503")])
async def test_without_retry_after_it_is_a_plain_failure_and_nothing_is_paused(
    server: FeedServer, status: int, kind: str, client: HttpClient
) -> None:
    server.route("/busy", status=status)
    server.route("/feed", RSS)
    async with fetcher(client) as f:
        error = await failure(f, server.url("/busy"))
        assert error.kind == kind and not isinstance(error, RateLimited)
        assert error.retry_after is None
        assert (await fetch(f, server.url("/feed"))).status == "ok"


@pytest.mark.parametrize("value", ["soon", "-5", "", "Wed, 99 Foo 2025"])
async def test_unreadable_retry_after_pauses_nothing(
    server: FeedServer, value: str, client: HttpClient
) -> None:
    server.route("/busy", status=429, headers={"Retry-After": value})
    server.route("/feed", RSS)
    async with fetcher(client) as f:
        assert not isinstance(await failure(f, server.url("/busy")), RateLimited)
        assert (await fetch(f, server.url("/feed"))).status == "ok"


async def test_a_redirect_into_a_paused_host_is_not_followed(
    server: FeedServer, other: FeedServer, client: HttpClient
) -> None:
    other.route("/busy", status=429, headers={"Retry-After": "60"})
    other.route("/feed", RSS)
    server.route("/moved", status=301, redirect=other.url("/feed"))
    async with fetcher(client) as f:
        await failure(f, other.url("/busy"))
        error = await failure(f, server.url("/moved"))
    assert isinstance(error, RateLimited) and error.origin == other.url("/")
    assert server.hits("/moved") == 1 and other.hits("/feed") == 0


async def test_a_request_queued_behind_the_pace_sees_a_pause_that_began_meanwhile(
    server: FeedServer, client: HttpClient
) -> None:
    server.route("/busy", status=429, headers={"Retry-After": "60"}, delay=0.1)
    server.route("/feed", RSS)
    async with fetcher(client, spacing=0.3) as f:
        results = await asyncio.gather(
            fetch(f, server.url("/busy")), fetch(f, server.url("/feed")), return_exceptions=True
        )
    assert all(isinstance(r, RateLimited) for r in results)
    assert server.hits("/feed") == 0


async def test_a_same_host_redirect_keeps_its_turn_at_the_host(
    server: FeedServer, client: HttpClient
) -> None:
    server.route("/moved", status=302, redirect="/feed")
    server.route("/feed", RSS)
    server.route("/slow", RSS, delay=0.6)
    started = time.monotonic()
    done: dict[str, float] = {}

    async def timed(name: str, url: str) -> None:
        await fetch(f, url)
        done[name] = time.monotonic() - started

    async with Fetcher(
        timeout=5, max_bytes=1 << 20, user_agent="t", per_host=1, http_client=client
    ) as f:
        f.pacer.spacing = 0.0
        await asyncio.gather(
            timed("moved", server.url("/moved")), timed("slow", server.url("/slow"))
        )
    # the redirect's second hop did not queue behind /slow, which asked for the host after it
    assert done["moved"] < 0.5 <= done["slow"]
