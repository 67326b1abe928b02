"""Email threading: a story's later alerts (other rules) are handed out with the Message-ID of the
first one sent through the same notifier, so mail clients show one thread per story."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta

import pytest

from monitor.model import AlertMessage
from storage import DeliveryJob, Store
from tests.storage.storefakes import LEASE, T0, KeywordMatcher, ingest, item, spec

MIN = timedelta(minutes=1)
RULES = KeywordMatcher(
    {"kn23": ("KN-23", "high"), "depot": ("depot", "high"), "strike": ("strike", "high")}
)
LINK = "https://news.example/kn23"


def claim(
    store: Store, now: datetime, notifiers: tuple[str, ...] = ("console", "email")
) -> list[DeliveryJob]:
    return store.claim_deliveries("i1", now, limit=50, lease=LEASE, notifiers=notifiers)


def by_rule(jobs: list[DeliveryJob], notifier: str) -> dict[str, DeliveryJob]:
    return {job.alert.rule_id: job for job in jobs if job.notifier == notifier}


def report(
    store: Store, source: str, key: str, title: str, now: datetime, link: str = LINK
) -> None:
    """`source` tells the story at `link`; the keyword rules decide which alerts it raises."""
    result = ingest(store, source, [item(source, key, title, link=link)], now=now, matcher=RULES)
    assert result is not None and result.new_items == 1


@pytest.fixture
def story(store: Store) -> Store:
    """Sources a, b, c, d polled once already (so every new item alerts); a tells a KN-23 story."""
    store.sync_sources([spec(s) for s in "abcd"], T0 - 10 * MIN)
    for source in "abcd":
        ingest(store, source, [], now=T0 - 10 * MIN)
    report(store, "a", "a1", "North Korean KN-23 used", T0)
    return store


def test_a_later_alert_of_the_story_threads_under_the_first_sent(story: Store) -> None:
    [console, mail] = claim(story, T0)
    assert console.alert.thread_root is None and mail.alert.thread_root is None
    story.mark_sent(mail.delivery_id, T0, message_id="<first@example.org>")
    story.mark_sent(console.delivery_id, T0)  # console has no message id: nothing to thread under

    report(story, "b", "b1", "KN-23 hit an ammunition depot", T0 + MIN)  # same link: same story
    jobs = claim(story, T0 + MIN)
    assert {job.alert.rule_id for job in jobs} == {"depot"}  # kn23 already alerted on the story
    assert by_rule(jobs, "email")["depot"].alert.thread_root == "<first@example.org>"
    assert by_rule(jobs, "console")["depot"].alert.thread_root is None


def test_the_root_is_the_earliest_sent_not_the_first_created(story: Store) -> None:
    report(story, "b", "b1", "KN-23 hit an ammunition depot", T0 + MIN)
    jobs = by_rule(claim(story, T0 + MIN, ("email",)), "email")
    assert set(jobs) == {"kn23", "depot"}
    # Both were claimed before either was sent: neither threads, whatever order they go out in.
    assert [job.alert.thread_root for job in jobs.values()] == [None, None]
    story.mark_sent(jobs["depot"].delivery_id, T0 + 2 * MIN, message_id="<depot@example.org>")
    story.mark_sent(jobs["kn23"].delivery_id, T0 + 3 * MIN, message_id="<kn23@example.org>")

    report(story, "c", "c1", "Second strike on the KN-23 site", T0 + 4 * MIN)
    [strike] = claim(story, T0 + 4 * MIN, ("email",))
    assert strike.alert.rule_id == "strike"
    assert strike.alert.thread_root == "<depot@example.org>"


@pytest.mark.parametrize("outcome", ["pending", "retry", "failed", "dead"])
def test_only_a_sent_delivery_is_a_root(story: Store, outcome: str) -> None:
    [_console, mail] = claim(story, T0)
    if outcome == "retry":
        story.mark_retry(mail.delivery_id, T0, next_attempt_at=T0 + 10 * MIN, error="451 later")
    elif outcome == "failed":
        story.mark_failed(mail.delivery_id, T0, error="550 no")
    elif outcome == "dead":
        story.mark_dead(mail.delivery_id, T0, error="gave up")
    report(story, "b", "b1", "KN-23 hit an ammunition depot", T0 + MIN)
    jobs = claim(story, T0 + MIN, ("email",))
    assert [job.alert.rule_id for job in jobs] == ["depot"]
    assert jobs[0].alert.thread_root is None


def test_roots_never_cross_notifiers_or_stories(story: Store) -> None:
    [console, mail] = claim(story, T0)
    story.mark_sent(console.delivery_id, T0, message_id="<console@example.org>")
    story.mark_sent(mail.delivery_id, T0, message_id="<mail@example.org>")
    # Another story (another link, unrelated title) raises depot: nothing to thread under.
    report(
        story, "b", "b1", "Ammunition depot burns near Toropets", T0 + MIN, "https://b.example/x"
    )
    for job in claim(story, T0 + MIN):
        assert (job.alert.rule_id, job.alert.thread_root) == ("depot", None)
    report(story, "c", "c1", "KN-23 strike confirmed", T0 + 2 * MIN)  # the first story again
    roots = {job.notifier: job.alert.thread_root for job in claim(story, T0 + 2 * MIN)}
    assert roots == {"console": "<console@example.org>", "email": "<mail@example.org>"}


def test_a_retried_delivery_picks_up_a_root_sent_meanwhile(story: Store) -> None:
    report(story, "b", "b1", "KN-23 hit an ammunition depot", T0)
    jobs = by_rule(claim(story, T0, ("email",)), "email")
    story.mark_sent(jobs["kn23"].delivery_id, T0, message_id="<kn23@example.org>")
    story.mark_retry(jobs["depot"].delivery_id, T0, next_attempt_at=T0 + MIN, error="451 later")
    [retry] = claim(story, T0 + MIN, ("email",))
    assert (retry.alert.rule_id, retry.alert.thread_root) == ("depot", "<kn23@example.org>")


# -- reading one alert back, as the preview does --------------------------------------------------


def alert_ids(store: Store) -> dict[str, int]:
    return {view.rule: view.id for view in store.list_alerts(T0 - MIN)}


def test_alert_message_is_what_the_notifier_is_handed(story: Store) -> None:
    report(story, "b", "b1", "KN-23 hit an ammunition depot", T0 + MIN)
    jobs = by_rule(claim(story, T0 + MIN, ("email",)), "email")
    story.mark_sent(jobs["kn23"].delivery_id, T0 + MIN, message_id="<kn23@example.org>")
    ids = alert_ids(story)
    depot = story.alert_message(ids["depot"], notifier="email")
    assert isinstance(depot, AlertMessage)
    assert depot == replace(jobs["depot"].alert, thread_root="<kn23@example.org>")
    # The first alert threads under nothing, before or after it was sent, whatever came later.
    story.mark_sent(jobs["depot"].delivery_id, T0 + 2 * MIN, message_id="<depot@example.org>")
    kn23 = story.alert_message(ids["kn23"], notifier="email")
    assert kn23 is not None and kn23.thread_root is None and kn23.rule_id == "kn23"
    sent_depot = story.alert_message(ids["depot"], notifier="email")
    assert sent_depot is not None and sent_depot.thread_root == "<kn23@example.org>"
    # Without a notifier, or through one with nothing sent, there is no thread.
    assert story.alert_message(ids["depot"]) == replace(depot, thread_root=None)
    unthreaded = story.alert_message(ids["depot"], notifier="console")
    assert unthreaded is not None and unthreaded.thread_root is None


def test_alert_message_of_an_unknown_id_is_none(story: Store) -> None:
    assert story.alert_message(999_999, notifier="email") is None
    assert story.alert_message(-1) is None
