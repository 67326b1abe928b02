"""The delivery loop against a real SQLite store, a Slack stand-in and a real SMTP server, with an
injected clock: retries, Retry-After, permanent refusals, giving up, independence of notifiers,
digests."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from monitor.delivery import Deliverer, RetryPolicy
from monitor.metrics import Metrics
from monitor.model import Item
from notifiers import Notifier, build_notifier
from notifiers.settings import EmailSettings
from rules.ast import RuleMatch
from storage import Store
from tests.notifiers.receivers import Reply, SlackStandIn, SmtpServer, closed_port
from tests.notifiers.samples import FakeClock, slack_settings
from tests.storage.storefakes import T0, KeywordMatcher, WordStories, item, spec

POLICY = RetryPolicy(
    first=timedelta(seconds=10), max=timedelta(minutes=5), give_up=timedelta(hours=1)
)


@dataclass
class Clock:
    now: datetime = T0
    seen: list[datetime] = field(default_factory=list)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **kw: float) -> None:
        self.now += timedelta(**kw)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    opened = Store.open(f"sqlite:///{tmp_path / 'monitor.db'}")
    opened.sync_sources([spec("src")], T0)
    yield opened
    opened.close()


def add_alerts(store: Store, titles: Sequence[str], notifiers: Sequence[str]) -> None:
    """Store a poll whose items each raise one alert routed to `notifiers`."""
    store.claim_due_sources("i1", T0, limit=10, lease=timedelta(minutes=5), include_not_due=True)
    items: list[Item] = [
        item("src", f"k{n}", t, link=f"https://x.test/{n}") for n, t in enumerate(titles)
    ]
    matcher = KeywordMatcher({"kn23": ("KN-23", "high")})

    def route(_: RuleMatch) -> Sequence[str]:
        return notifiers

    result = store.ingest(
        "src", "i1", now=T0, items=items, etag=None, last_modified=None, body_hash=None,
        next_poll_at=T0 + timedelta(minutes=15), backfill=timedelta(days=1), matcher=matcher,
        route=route, stories=WordStories(), dedup_window=timedelta(hours=72),
    )  # fmt: skip
    assert result is not None and result.alerts == len(titles)


TITLES = [f"KN-23 strike number {n} on {city}" for n, city in enumerate(["Kyiv", "Lviv", "Odesa"])]


def email_notifier(smtp_port: int, ca_file: str | None, **extra: object) -> Notifier:
    settings = EmailSettings.model_validate(
        {
            "type": "email", "host": "127.0.0.1", "port": smtp_port, "security": "none",
            "from": "Monitor <m@example.org>", "to": ["a@example.org"], "ca_file": ca_file, **extra,
        }
    )  # fmt: skip
    return build_notifier("mail", settings)


OPENED: list[Notifier] = []


@pytest.fixture(autouse=True)
async def close_notifiers() -> AsyncIterator[None]:
    yield
    while OPENED:
        await OPENED.pop().aclose()


def paced_slack(slack: SlackStandIn) -> Notifier:
    """Slack's one-message-a-second pacing on a fake clock, so tests never sleep."""
    return build_notifier("slack", slack_settings(webhook_url=slack.webhook_url), clock=FakeClock())


def deliverer(store: Store, clock: Clock, **notifiers: Notifier) -> Deliverer:
    OPENED.extend(notifiers.values())
    return Deliverer(
        store, notifiers, POLICY, instance_id="i1", clock=clock, rng=random.Random(1),
        metrics=Metrics("i1"),
        digests={n: s.digest for n, s in ((k, v.settings) for k, v in notifiers.items())
                 if isinstance(s, EmailSettings) and s.digest},
    )  # fmt: skip


def statuses(store: Store) -> list[tuple[str, str, int]]:
    return sorted(
        (d.notifier, d.status, d.attempts)
        for a in store.list_alerts(T0 - timedelta(days=1))
        for d in a.deliveries
    )


async def test_slack_500_then_200_delivers_once(store: Store) -> None:
    add_alerts(store, TITLES[:1], ["slack"])
    clock = Clock()
    with SlackStandIn() as slack:
        slack.reply(SlackStandIn.SERVER_ERROR)
        d = deliverer(
            store,
            clock,
            slack=build_notifier("slack", slack_settings(webhook_url=slack.webhook_url)),
        )
        assert (await d.run_once()).retried == 1
        assert (await d.run_once()).sent == 0  # not due yet: backoff
        clock.advance(seconds=10)
        assert (await d.run_once()).sent == 1
        clock.advance(minutes=10)
        assert (await d.run_once()).sent == 0
        assert len(slack.messages) == 1 and len(slack.requests) == 2
    assert statuses(store) == [("slack", "sent", 2)]


async def test_slack_400_fails_for_good_without_retrying(store: Store) -> None:
    add_alerts(store, TITLES[:1], ["slack"])
    clock = Clock()
    with SlackStandIn() as slack:
        slack.reply(SlackStandIn.INVALID_PAYLOAD)
        d = deliverer(
            store,
            clock,
            slack=build_notifier("slack", slack_settings(webhook_url=slack.webhook_url)),
        )
        assert (await d.run_once()).failed == 1
        clock.advance(hours=2)
        await d.run_once()
        assert len(slack.requests) == 1
    [alert] = store.list_alerts(T0 - timedelta(days=1))
    [delivery] = alert.deliveries
    assert delivery.status == "failed" and "400" in (delivery.last_error or "")
    assert slack.hook_path not in (delivery.last_error or "")  # no secret in what operators see


async def test_a_failing_email_server_never_holds_back_slack(store: Store, tmp_path: Path) -> None:
    add_alerts(store, TITLES, ["slack", "mail"])
    clock = Clock()
    with SlackStandIn() as slack:
        d = deliverer(
            store, clock,
            slack=paced_slack(slack),
            mail=email_notifier(closed_port(), None),
        )  # fmt: skip
        stats = await d.run_once()
        assert stats.sent == 3 and stats.retried == 3
        assert len(slack.messages) == 3
    assert statuses(store).count(("slack", "sent", 1)) == 3
    assert [s for s in statuses(store) if s[0] == "mail"] == [("mail", "pending", 1)] * 3


async def test_503_then_429_retry_after_then_200_exactly_once(store: Store, tmp_path: Path) -> None:
    add_alerts(store, TITLES, ["slack", "mail"])
    clock = Clock()
    with SlackStandIn() as slack, SmtpServer(tmp_path, security="none") as smtp:
        slack.reply(Reply(503, "service_unavailable"), Reply(503, "service_unavailable"))
        slack.reply(Reply(429, "rate_limited", retry_after="120"))
        d = deliverer(
            store, clock,
            slack=paced_slack(slack),
            mail=email_notifier(smtp.port, None),
        )  # fmt: skip
        request_times: list[datetime] = []
        for _ in range(400):  # ten simulated minutes, a tick every 1.5 s
            before = len(slack.requests)
            await d.run_once()
            request_times += [clock.now] * (len(slack.requests) - before)
            if clock.now == T0:
                assert len(smtp.mails) == 3, "email is delivered on time, whatever Slack does"
            clock.advance(seconds=1.5)
        assert len(slack.messages) == 3  # each alert exactly once
        statuses_429 = [r.reply.status for r in slack.requests]
        at_429 = request_times[statuses_429.index(429)]
        after = request_times[statuses_429.index(429) + 1]
        assert after - at_429 >= timedelta(seconds=120), "Retry-After honoured"
    assert statuses(store).count(("mail", "sent", 1)) == 3
    assert all(s[1] == "sent" for s in statuses(store))


async def test_gives_up_after_give_up_and_marks_dead(store: Store) -> None:
    add_alerts(store, TITLES[:1], ["slack"])
    clock = Clock()
    with SlackStandIn() as slack:
        slack.reply(*[SlackStandIn.SERVER_ERROR] * 100)
        d = deliverer(
            store,
            clock,
            slack=build_notifier("slack", slack_settings(webhook_url=slack.webhook_url)),
        )
        for _ in range(40):
            await d.run_once()
            clock.advance(minutes=3)
        attempts = len(slack.requests)
    [(_, status, tries)] = statuses(store)
    assert status == "dead" and tries == attempts
    assert 8 <= attempts <= 25  # backoff: far fewer tries than ticks, but it kept trying


async def test_digest_sends_one_email_per_period(store: Store, tmp_path: Path) -> None:
    add_alerts(store, TITLES, ["mail"])
    clock = Clock()
    with SmtpServer(tmp_path, security="none") as smtp:
        d = deliverer(store, clock, mail=email_notifier(smtp.port, None, digest="1h"))
        await d.run_once()
        clock.advance(minutes=59)
        await d.run_once()
        assert smtp.mails == []  # the oldest alert has not waited a whole period yet
        clock.advance(minutes=1)
        assert (await d.run_once()).sent == 3
        assert len(smtp.mails) == 1
        body = smtp.mails[0].message.get_body(("plain",))
        assert body is not None and all(t in body.get_content() for t in TITLES)
    assert statuses(store) == [("mail", "sent", 1)] * 3
