"""One story, one alert, through the whole daemon: re-posts with new GUIDs, the same story from
another source (same link, or a near-identical title), near misses that must stay apart, edits,
and a restart in the middle of a poll."""

from __future__ import annotations

import signal
import time
from typing import Any

from tests.e2e.conftest import Harness, write_config
from tests.e2e.feeds import Entry, ago, rss
from tests.e2e.test_restart import stop, wait_for

SOURCES = [("bbc", "/bbc.xml"), ("sky", "/sky.xml"), ("nyt", "/nyt.xml")]


def alerts(h: Harness) -> list[dict[str, Any]]:
    return [a for a in h.json("alerts", "--since", "30d") if a["level"] != "info"]


def run_once(h: Harness) -> None:
    result = h.monitor("run", "--once")
    assert result.returncode == 0, result.stderr


def test_one_alert_per_story_across_sources_reposts_and_edits(harness: Harness) -> None:
    h = harness
    write_config(h, SOURCES)
    first = Entry(
        "North Korea sends 3,000 more troops to Russia - BBC News",
        "https://bbc.test/news/world-1?at_medium=RSS",
        ago(hours=1),
        guid="bbc-1",
    )
    h.feeds.route("/bbc.xml", rss([first]))
    h.feeds.route("/sky.xml", rss([]))
    h.feeds.route("/nyt.xml", rss([]))
    run_once(h)
    assert [a["item"]["title"] for a in alerts(h)] == [first.title]

    # Another source, its own link and headline suffix: the same story.
    sky = Entry(
        "North Korea sends 3,000 more troops to Russia | Sky News",
        "https://sky.test/story/9?utm_source=rss",
        ago(minutes=30),
        guid="sky-9",
    )
    # The publisher re-posts the same article under a new GUID, and edits the first headline.
    repost = Entry(
        first.title, "https://bbc.test/news/world-1", ago(minutes=20), guid="bbc-1-again"
    )
    edited = Entry(first.title.replace("3,000 more", "3,000 more North Korean"), first.link,
                   first.published, guid="bbc-1")  # fmt: skip
    h.feeds.route("/bbc.xml", rss([repost, edited]))
    h.feeds.route("/sky.xml", rss([sky]))
    # Near misses: different numbers or places are different stories.
    kn23 = Entry("KN-23 debris found in Kharkiv", "https://nyt.test/a", ago(minutes=10))
    kn24 = Entry("KN-24 debris found in Kharkiv", "https://nyt.test/b", ago(minutes=9))
    h.feeds.route("/nyt.xml", rss([kn23, kn24]))
    run_once(h)

    found = alerts(h)
    titles = sorted(a["item"]["title"] for a in found)
    assert titles == sorted([first.title, kn23.title, kn24.title]) or titles == sorted(
        [edited.title, kn23.title, kn24.title]
    )
    story = next(a for a in found if "troops" in a["item"]["title"])
    assert [a["source"] for a in story["also"]] == ["sky"]
    # The edit updated the stored text instead of alerting again.
    assert story["item"]["title"] == edited.title


def test_kill_mid_poll_then_restart_alerts_exactly_once(harness: Harness) -> None:
    h = harness
    write_config(h, SOURCES)
    entries = [Entry(f"KN-23 strike number {n} reported", f"https://bbc.test/{n}", ago(minutes=n))
               for n in range(1, 6)]  # fmt: skip
    h.feeds.route("/bbc.xml", rss(entries), delay=4.0)  # the poll is in flight for 4 s
    h.feeds.route("/sky.xml", rss([]))
    h.feeds.route("/nyt.xml", rss([]))
    first = h.popen("run")
    wait_for("the slow fetch to start", lambda: h.feeds.hits("/bbc.xml") >= 1, timeout=30)
    time.sleep(0.5)
    assert stop(first, signal.SIGKILL) == -signal.SIGKILL
    assert alerts(h) == []  # nothing half-written

    h.feeds.route("/bbc.xml", rss(entries))
    second = h.popen("run")
    try:
        wait_for("5 alerts", lambda: len(alerts(h)) == 5, timeout=60)
        wait_for("5 deliveries", lambda: len(h.slack_accepted()) == 5, timeout=60)
    finally:
        assert stop(second, signal.SIGTERM) == 0
    assert sorted(a["item"]["title"] for a in alerts(h)) == sorted(e.title for e in entries)
    assert len(h.smtp.mails) == 5
