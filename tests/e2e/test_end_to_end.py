"""The whole path, for real: `monitor run --once` polls a local feed server, matches, stores, and
delivers to a real SMTP server and a Slack stand-in; feeds change between runs."""

from __future__ import annotations

import json
from typing import Any

from tests.e2e.conftest import Harness, write_config
from tests.e2e.feeds import HTML_PAGE, Entry, ago, atom, rdf, rss

SOURCES = [
    ("rss", "/rss.xml"),
    ("atom", "/atom.xml"),
    ("rdf", "/rdf.xml"),
    ("noguid", "/noguid.xml"),
    ("cyrillic", "/cp1251.xml"),
    ("webpage", "/page.html"),
    ("broken", "/broken.xml"),
]

A_OLD = Entry("KN-23 fragments found after last year's strike", "https://a.test/old", ago(days=10))
A_NEW = Entry(
    "Russia fires North Korean KN-23 missiles at Kharkiv", "https://a.test/kn23", ago(hours=1)
)
A_OTHER = Entry("Weather turns cold in Moscow", "https://a.test/weather", ago(hours=1))
A_INFO = Entry("Pyongyang hosts a trade fair", "https://a.test/fair", ago(hours=1))
B_NEW = Entry(
    "Drone strike sets off explosions at Toropets ammunition depot",
    "https://b.test/toropets",
    ago(hours=2),
    guid="urn:b:1",
)
C_UNDATED = Entry("Hwasong-11 launcher spotted near Bryansk", "https://c.test/1", None)
D_NEW = Entry("Ukraine says Hwasong-11 debris recovered", "https://d.test/debris", ago(hours=3))
E_NEW = Entry("Россия применила северокорейские ракеты КН-23", "https://e.test/kn23", ago(hours=1))

A_LATER = Entry("Second KN-23 strike on Kyiv confirmed", "https://a.test/kn23-2", None)
C_LATER = Entry("Arsenal hit by drone strike near Tikhoretsk", "https://c.test/2", None)
D_SAME_LINK = Entry(
    "Kyiv: another KN-23 strike confirmed", "https://a.test/kn23-2?utm_source=rss", ago(minutes=5)
)


def serve_round_one(h: Harness) -> None:
    f = h.feeds
    f.route("/rss.xml", rss([A_OLD, A_NEW, A_OTHER, A_INFO]), etag='"rss-1"')
    f.route("/atom.xml", atom([B_NEW]), content_type="application/atom+xml", etag='W/"atom-1"')
    f.route("/rdf.xml", rdf([C_UNDATED]), last_modified="Tue, 24 Nov 2026 10:00:00 GMT")
    f.route("/noguid.xml", rss([D_NEW], with_guids=False))
    # The charset is declared only in the XML prolog, as many Russian-language feeds do.
    f.route("/cp1251.xml", rss([E_NEW], encoding="windows-1251"), content_type="application/xml")
    f.route("/page.html", HTML_PAGE, content_type="text/html; charset=utf-8")
    f.route("/broken.xml", b"oops", status=500)


def serve_round_two(h: Harness) -> None:
    f = h.feeds
    f.route("/rss.xml", rss([A_LATER, A_OLD, A_NEW, A_OTHER, A_INFO]), etag='"rss-2"')
    f.route("/rdf.xml", rdf([C_LATER, C_UNDATED]), last_modified="Thu, 26 Nov 2026 10:00:00 GMT")
    f.route("/noguid.xml", rss([D_SAME_LINK, D_NEW], with_guids=False))


# Two sources report one story; whichever is stored first carries the alert, the other is "also".
SAME_STORY = {D_SAME_LINK.title: A_LATER.title}


def story_title(title: str) -> str:
    return SAME_STORY.get(title, title)


def alerts(h: Harness) -> list[Any]:
    return [a for a in h.json("alerts", "--since", "30d") if a["level"] != "info"]


def alerted_titles(h: Harness) -> list[str]:
    return sorted(story_title(a["item"]["title"]) for a in alerts(h))


def slack_titles(h: Harness) -> list[str]:
    return sorted(_slack_title(m) for m in h.slack_accepted())


def _slack_title(message: Any) -> str:
    text = json.dumps(message, ensure_ascii=False)
    for entry in (A_NEW, B_NEW, D_NEW, E_NEW, A_LATER, C_LATER, D_SAME_LINK):
        if entry.title in text:
            return story_title(entry.title)
    raise AssertionError(f"no known title in Slack message {text[:300]}")


def mail_subjects(h: Harness) -> list[str]:
    # CPython's folder may break right after "Subject:" when the value fits on a line of its own;
    # unfolding then leaves a leading space, which mail clients drop too.
    return [str(mail.message["Subject"]).lstrip() for mail in h.smtp.mails]


def test_two_polls_then_nothing_new(harness: Harness) -> None:
    h = harness
    write_config(h, SOURCES)
    serve_round_one(h)

    first = h.monitor("run", "--once")
    assert first.returncode == 0, first.stderr
    expected_one = sorted([A_NEW.title, B_NEW.title, D_NEW.title, E_NEW.title])
    # Old items (10 days), undated items (RDF) and info-level rules alert nothing on a first poll.
    assert alerted_titles(h) == expected_one
    assert slack_titles(h) == expected_one
    assert len(h.smtp.mails) == 4
    assert all(s.startswith("[HIGH] ") for s in mail_subjects(h)), mail_subjects(h)
    assert all(m.tls and m.authenticated_as == "alice" for m in h.smtp.mails)
    assert any(E_NEW.title in s for s in mail_subjects(h)), "windows-1251 text decoded"

    sources = {s["id"]: s for s in h.json("sources")}
    assert sources["webpage"]["status"] == "error" and sources["webpage"]["error"] == "not_a_feed"
    assert sources["broken"]["status"] == "error" and sources["broken"]["error"] == "http_500"
    for sid in ("rss", "atom", "rdf", "noguid", "cyrillic"):
        assert sources[sid]["status"] == "ok", sources[sid]
        assert sources[sid]["error"] is None and sources[sid]["consecutive_failures"] == 0

    serve_round_two(h)
    second = h.monitor("run", "--once")
    assert second.returncode == 0, second.stderr
    # Later polls alert new items whatever their date; a report of the same story from another
    # source (same canonical link, tracking parameter aside) joins it instead of alerting again.
    expected_two = sorted([*expected_one, A_LATER.title, C_LATER.title])
    assert alerted_titles(h) == expected_two
    assert slack_titles(h) == expected_two
    assert len(h.smtp.mails) == 6
    story = next(a for a in alerts(h) if story_title(a["item"]["title"]) == A_LATER.title)
    assert {story["item"]["source"], *(a["source"] for a in story["also"])} == {"rss", "noguid"}
    assert {d["notifier"]: d["status"] for d in story["deliveries"]} == {
        "slack": "sent",
        "mail": "sent",
    }
    sources = {s["id"]: s for s in h.json("sources")}
    assert sources["broken"]["consecutive_failures"] == 2

    atom_requests = h.feeds.requests("/atom.xml")
    rdf_requests = h.feeds.requests("/rdf.xml")
    third = h.monitor("run", "--once")
    assert third.returncode == 0, third.stderr
    assert slack_titles(h) == expected_two and len(h.smtp.mails) == 6  # nothing new, nothing sent
    # Conditional GET: the server's validators are echoed verbatim.
    assert h.feeds.requests("/atom.xml")[-1].headers.get("if-none-match") == 'W/"atom-1"'
    last_rdf = h.feeds.requests("/rdf.xml")[-1]
    assert last_rdf.headers.get("if-modified-since") == "Thu, 26 Nov 2026 10:00:00 GMT"
    assert len(h.feeds.requests("/atom.xml")) == len(atom_requests) + 1
    assert len(h.feeds.requests("/rdf.xml")) == len(rdf_requests) + 1
    assert "0 new items, 0 alerts" in third.stdout
