"""Email threading end to end: when another rule alerts on a story that already went out by email,
its email replies to the first one (In-Reply-To and References carry the first Message-ID), so a
mail client shows the story as one thread. Run with the real `monitor run --once` against a real
SMTP server."""

from __future__ import annotations

from email.message import EmailMessage

from tests.e2e.conftest import Harness, write_config
from tests.e2e.feeds import Entry, ago, rss

FIRST = Entry(
    "Russia fires North Korean KN-23 missiles at Kharkiv", "https://a.test/kn23", ago(hours=1)
)
# Same story (the same canonical link, tracking parameter aside), told by another source, and this
# time about a depot: the depots rule alerts on the story the kn23 rule already alerted on.
LATER = Entry(
    "Drone strike on ammunition depot follows KN-23 attack",
    "https://a.test/kn23?utm_source=rss",
    ago(minutes=10),
)
OTHER = Entry(
    "Explosions at Toropets ammunition depot after drone strike",
    "https://c.test/toropets",
    ago(minutes=5),
)
SOURCES = [("a", "/a.xml"), ("b", "/b.xml")]


def mail_with(h: Harness, words: str) -> EmailMessage:
    [found] = [m.message for m in h.smtp.mails if words in str(m.message["Subject"])]
    return found


def run_once(h: Harness) -> None:
    result = h.monitor("run", "--once")
    assert result.returncode == 0, result.stderr
    assert "0 to retry, 0 failed, 0 dead" in result.stdout, result.stdout


def test_a_story_s_later_alert_replies_to_its_first_email(harness: Harness) -> None:
    h = harness
    write_config(h, SOURCES)
    h.feeds.route("/a.xml", rss([FIRST]))
    h.feeds.route("/b.xml", rss([]))
    run_once(h)
    first = mail_with(h, FIRST.title)
    root = str(first["Message-ID"])
    assert first["In-Reply-To"] is None and first["References"] is None

    h.feeds.route("/b.xml", rss([LATER, OTHER]))
    run_once(h)
    assert len(h.smtp.mails) == 3
    reply = mail_with(h, LATER.title)
    assert "Strikes on ammunition depots" in str(reply["Subject"])
    assert (str(reply["In-Reply-To"]), str(reply["References"])) == (root, root)
    assert str(reply["Message-ID"]) != root
    # Another story starts its own thread.
    other = mail_with(h, OTHER.title)
    assert other["In-Reply-To"] is None and other["References"] is None
    # Slack got every alert too; threading is an email header, nothing changes there.
    titles = sorted(m["text"] for m in h.slack.messages)
    assert len(titles) == 3 and all(
        any(e.title in t for t in titles) for e in (FIRST, LATER, OTHER)
    )
