"""Email digests: one message per period, grouped by rule, escaped like single alerts, classified
like single alerts. Alerts are written here; the shared corpus is read in place when present."""

from __future__ import annotations

import email
import email.message
import email.policy
import json
import random
import re
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.errors import ConfigError
from monitor.model import AlertMessage, AlsoReported, Level, Span
from notifiers import (
    DigestCapable,
    SendOutcome,
    build_notifier,
    render_digest_preview,
    render_preview,
    supports_digest,
)
from notifiers._digest import (
    MAX_ENTRIES,
    alert_time,
    build_digest_message,
    digest_subject,
    group_by_rule,
    period_label,
    render_digest,
)
from notifiers._email_message import SUBJECT_CHARS, Sender, parse_address
from notifiers.settings import ConsoleSettings, EmailSettings
from tests.notifiers.receivers import SmtpServer, closed_port
from tests.notifiers.samples import sample_alert, slack_settings, span_of, webhook_settings

PASSWORD = "digest-Secret-Passw0rd"
HOUR = timedelta(hours=1)
BASE = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
NEWS = "https://news.example.org/a/"
CORPUS = Path(__file__).resolve().parents[2].parent / "shared" / "corpus" / "news" / "dev.jsonl"

# (rule id, rule title, level, number of alerts): the three mission topics, one title hostile.
RULES: list[tuple[str, str, Level, int]] = [
    ("kn23", "KN-23", "high", 12),
    ("dprk-troops", "DPRK troops", "medium", 30),
    ("depot-strikes", "Depot strikes\r\nBcc: rules@evil.example", "critical", 8),
]
HOSTILE_TITLES = [
    "<script>alert('t')</script> KN-23 launch",
    "Depot fire\r\nBcc: victim@evil.example",
    "<!channel> DPRK troops <b>advance</b>",
]
TEMPLATE_TAGS = {
    "html", "head", "meta", "title", "body", "table", "tr", "td", "div", "span", "a", "mark",
    "strong", "code",
}  # fmt: skip


def rule_alert(rule: int, k: int) -> AlertMessage:
    """Alert k of rule `rule`: k=0 is the newest with a date, so newest-first is ascending k."""
    rule_id, rule_title, level, _ = RULES[rule]
    alert_id = 100 * (rule + 1) + k
    title = HOSTILE_TITLES[rule] if k == 0 else f"Report {k} on {rule_id} & co"
    summary = f"Officials said {rule_id} news <i>number</i> {k}: the matched term is here."
    matches = [span_of(summary, "matched term")]
    if k == 0:  # matched words are marked up by us: hostile ones must be escaped all the same
        matches.append(span_of(summary, "<i>number</i>"))
    return sample_alert(
        alert_id=alert_id,
        rule_id=rule_id,
        rule_title=rule_title,
        level=level,
        title=title,
        link=f"{NEWS}{alert_id}",
        published=BASE - timedelta(minutes=3 * k + rule),
        created=BASE + timedelta(minutes=5),
        summary=summary,
        matches=tuple(matches),
        source_name="Evil <b>Feed</b>\r\nX-Injected: 1" if k == 0 else "Example News",
        also=(AlsoReported("wire", "Wire <!here>", f"{title} again", "https://wire.example/x"),),
    )


def fifty_alerts() -> list[AlertMessage]:
    alerts = [rule_alert(r, k) for r, (*_, count) in enumerate(RULES) for k in range(count)]
    # An undated item is placed by its alert time, here the newest of its rule.
    undated = replace(alerts[5], published=None, created=BASE + timedelta(minutes=1))
    alerts[5] = undated
    random.Random(7).shuffle(alerts)
    return alerts


# The newest-first order inside each rule, sections by level: critical, high, medium.
EXPECTED_ORDER = (
    [300 + k for k in range(8)]
    + [105, *(100 + k for k in range(12) if k != 5)]
    + [200 + k for k in range(30)]
)


def settings_for(smtp: SmtpServer, **extra: Any) -> EmailSettings:
    values: dict[str, Any] = {
        "type": "email", "host": smtp.host, "port": smtp.port, "security": smtp.security,
        "from": "Source Monitor <monitor@example.org>",
        "to": ["analyst@example.org", "Second <second@example.org>"],
        "ca_file": smtp.ca_file, "timeout": "5s", "digest": "1h",
    }  # fmt: skip
    if smtp.users:
        values.update(username="bob", password=PASSWORD)
    values.update(extra)
    return EmailSettings.model_validate(values)


class Html(HTMLParser):
    """Tags, links and marked words of an HTML body, and its text."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.hrefs: list[str] = []
        self.marked: list[str] = []
        self.text: list[str] = []
        self._in_mark = False
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self._in_mark = tag == "mark"
        self.hrefs.extend(v or "" for k, v in attrs if k == "href")

    def handle_endtag(self, tag: str) -> None:
        self._in_mark = False

    def handle_data(self, data: str) -> None:
        self.text.append(data)
        if self._in_mark:
            self.marked.append(data)

    def entry_ids(self) -> list[int]:
        return [int(h.removeprefix(NEWS)) for h in self.hrefs if h.startswith(NEWS)]


def bodies(message: email.message.EmailMessage) -> tuple[str, str]:
    """Both parts, with the wire's CRLF line ends as LF; a lone CR would have been feed text."""
    plain, html = message.get_body(("plain",)), message.get_body(("html",))
    assert plain is not None and html is not None
    texts = plain.get_content().replace("\r\n", "\n"), html.get_content().replace("\r\n", "\n")
    assert not any("\r" in text for text in texts)
    return texts


def plain_entry_ids(plain: str) -> list[int]:
    return [int(m) for m in re.findall(rf"^  {re.escape(NEWS)}(\d+)$", plain, re.MULTILINE)]


def sender() -> Sender:
    return Sender(parse_address("m@example.org", "from"), (parse_address("a@example.org", "to"),))


async def test_fifty_alerts_arrive_as_one_well_formed_message(tmp_path: Path) -> None:
    with SmtpServer(tmp_path, security="starttls", users={"bob": PASSWORD}) as smtp:
        notifier = build_notifier("mail", settings_for(smtp))
        assert isinstance(notifier, DigestCapable)
        outcome = await notifier.send_digest(fifty_alerts(), period=HOUR)
        [mail] = smtp.mails
    assert outcome.error is None and outcome.message_id == mail.message["Message-ID"]
    assert mail.tls and mail.authenticated_as == "bob"
    assert mail.rcpt_tos == ("analyst@example.org", "second@example.org")
    msg = mail.message
    assert msg.get_content_type() == "multipart/alternative"
    assert [p.get_content_type() for p in msg.iter_parts()] == ["text/plain", "text/html"]
    plain, html = bodies(msg)
    parsed = Html(html)
    assert parsed.entry_ids() == EXPECTED_ORDER
    assert plain_entry_ids(plain) == EXPECTED_ORDER
    assert len(re.findall(r"^- ", plain, re.MULTILINE)) == 50
    assert parsed.marked.count("matched term") == 50


async def test_digest_headers_are_clean(tmp_path: Path) -> None:
    with SmtpServer(tmp_path, security="none") as smtp:
        notifier = build_notifier("mail", settings_for(smtp))
        assert isinstance(notifier, DigestCapable)
        outcome = await notifier.send_digest(fifty_alerts(), period=HOUR)
        [mail] = smtp.mails
    msg = mail.message
    assert msg["Subject"] == (
        "[source-monitor] 50 alerts in the last 1h: "
        "Depot strikes Bcc: rules@evil.example (8), KN-23 (12), DPRK troops (30)"
    )
    assert msg["Bcc"] is None and msg["In-Reply-To"] is None
    assert msg["List-Id"] == "<source-monitor.example.org>"
    assert msg["Auto-Submitted"] == "auto-generated" and msg["Date"] is not None
    assert msg["X-Monitor-Level"] == "critical" and msg["X-Monitor-Digest"] == "50"
    assert outcome.message_id is not None and outcome.message_id.endswith("@example.org>")
    raw_headers = mail.data.split(b"\r\n\r\n", 1)[0].decode()
    unfolded = re.sub(r"\r\n[ \t]", " ", raw_headers).split("\r\n")
    assert not any(line.lower().startswith("bcc") for line in unfolded)
    assert len(unfolded) == len(msg.keys())


async def test_hostile_feed_text_is_escaped_in_both_parts(tmp_path: Path) -> None:
    with SmtpServer(tmp_path, security="none") as smtp:
        notifier = build_notifier("mail", settings_for(smtp))
        assert isinstance(notifier, DigestCapable)
        await notifier.send_digest(fifty_alerts(), period=HOUR)
        [mail] = smtp.mails
    plain, html = bodies(mail.message)
    parsed = Html(html)
    assert set(parsed.tags) <= TEMPLATE_TAGS
    assert "&lt;script&gt;alert(&#39;t&#39;)&lt;/script&gt; KN-23 launch" in html
    assert "&lt;!channel&gt; DPRK troops &lt;b&gt;advance&lt;/b&gt;" in html
    assert "Wire &lt;!here&gt;" in html and "Evil &lt;b&gt;Feed&lt;/b&gt; X-Injected: 1" in html
    assert parsed.marked.count("<i>number</i>") == 3
    assert html.count(">&lt;i&gt;number&lt;/i&gt;</mark>") == 3
    assert "\n  Evil <b>Feed</b> X-Injected: 1 · 2026-11-26 " in plain
    # Plain text needs no escaping, only one line per feed field.
    assert "- Depot fire Bcc: victim@evil.example\n" in plain
    assert "\n- <script>alert('t')</script> KN-23 launch\n" in plain
    assert not any(line.startswith("Bcc") for line in plain.splitlines())


async def test_sections_carry_title_level_and_count(tmp_path: Path) -> None:
    _, text, html = render_digest(fifty_alerts(), HOUR)
    headings = re.findall(r"^== (.*) ==$", text, re.MULTILINE)
    assert headings == [
        "CRITICAL · Depot strikes Bcc: rules@evil.example (8)",
        "HIGH · KN-23 (12)",
        "MEDIUM · DPRK troops (30)",
    ]
    assert "HIGH &middot; KN-23 &middot; 12 alerts" in html
    assert "CRITICAL &middot; Depot strikes Bcc: rules@evil.example &middot; 8 alerts" in html
    assert "no date (alerted 2026-11-26 12:01 UTC)" in text


def test_sections_by_level_then_title_newest_first() -> None:
    def alert(alert_id: int, rule: str, level: Level, minutes: int) -> AlertMessage:
        published = BASE + timedelta(minutes=minutes)
        return sample_alert(
            alert_id=alert_id, rule_id=rule, rule_title=rule.title(), level=level,
            published=published, created=BASE + HOUR,
        )  # fmt: skip

    alerts = [
        alert(1, "zulu", "high", 0), alert(2, "alpha", "low", 5), alert(3, "mike", "high", 9),
        alert(4, "zulu", "high", 7), alert(5, "mike", "critical", 1), alert(6, "alpha", "low", 5),
    ]  # fmt: skip
    sections = group_by_rule(alerts)
    # A rule's level is its highest alert's; equal levels keep a stable alphabetical place.
    assert [(s.rule_id, s.level) for s in sections] == [
        ("mike", "critical"), ("zulu", "high"), ("alpha", "low"),
    ]  # fmt: skip
    assert [[a.alert_id for a in s.alerts] for s in sections] == [[3, 5], [4, 1], [6, 2]]


def test_alert_time_is_never_after_the_alert() -> None:
    naive = datetime(2026, 11, 26, 12, 0)
    assert alert_time(sample_alert(published=naive, created=BASE + HOUR)) == BASE
    future = sample_alert(published=BASE + timedelta(days=300), created=BASE)
    assert alert_time(future) == BASE
    assert alert_time(sample_alert(published=None, created=BASE)) == BASE


@pytest.mark.parametrize(
    ("period", "label"),
    [
        (timedelta(hours=1), "1h"),
        (timedelta(minutes=90), "1h30m"),
        (timedelta(days=2), "2d"),
        (timedelta(seconds=45), "45s"),
        (timedelta(0), "0s"),
        (timedelta(days=1, seconds=1), "1d1s"),
    ],
)
def test_period_label(period: timedelta, label: str) -> None:
    assert period_label(period) == label


def test_subject_names_as_many_rules_as_fit() -> None:
    alerts = [
        sample_alert(alert_id=i, rule_id=f"rule-{i:02}", rule_title=f"Rule number {i:02} title")
        for i in range(30)
    ]
    line = digest_subject(group_by_rule(alerts), timedelta(minutes=15))
    assert line.startswith("[source-monitor] 30 alerts in the last 15m: Rule number 00 title (1), ")
    assert re.search(r", \+\d+ more$", line) and len(line) <= SUBJECT_CHARS
    shown = len(re.findall(r"Rule number \d\d title \(1\)", line))
    assert shown + int(line.rsplit("+", 1)[1].split()[0]) == 30


def test_subject_is_one_line_even_for_hostile_rule_titles() -> None:
    one = [sample_alert(rule_title="\x00KN-23\r\nBcc: a@evil.example\u2028" + "x" * 400)]
    line = digest_subject(group_by_rule(one), HOUR)
    assert line.startswith("[source-monitor] 1 alert in the last 1h: KN-23 Bcc: a@evil.example x")
    assert line.endswith("… (1)") and len(line) <= SUBJECT_CHARS
    assert not re.search(r"[\x00-\x1f\u2028]", line)


def test_a_flood_is_capped_and_counted() -> None:
    alerts = [sample_alert(alert_id=i, link=f"{NEWS}{i}", rule_id="a", rule_title="A") for i in
              range(4)] + [sample_alert(alert_id=10 + i, link=f"{NEWS}{10 + i}", rule_id="b",
                                        rule_title="B", level="low") for i in range(3)]  # fmt: skip
    subject_line, text, html = render_digest(alerts, HOUR, limit=5)
    assert subject_line.endswith(": A (4), B (3)")
    assert len(Html(html).entry_ids()) == len(plain_entry_ids(text)) == 5
    assert "2 alerts of this rule not shown here: <code>monitor alerts</code> lists them" in html
    assert "\n  2 alerts of this rule not shown here: `monitor alerts` lists them all.\n" in text
    assert MAX_ENTRIES >= 100


def test_also_reported_by_is_short_and_links_only_http() -> None:
    others = tuple(
        AlsoReported(f"s{i}", f"Source {i}", "t", "javascript:alert(1)" if i == 0 else None)
        for i in range(8)
    )
    _, text, html = render_digest([sample_alert(also=others, link=None)], HOUR)
    assert "Also reported by: Source 0, Source 1, Source 2, Source 3, Source 4 and 3 more" in text
    assert Html(html).hrefs == ["#rule-1"]  # no link of ours, no `javascript:` of theirs


def test_matched_title_words_are_marked() -> None:
    title = "Blasts at the Tikhoretsk arsenal"
    alert = sample_alert(title=title, summary="", matches=(span_of(title, "Tikhoretsk", "title"),))
    parsed = Html(render_digest([alert], HOUR)[2])
    # Once in the linked title, once in the snippet that falls back to the title.
    assert parsed.marked == ["Tikhoretsk", "Tikhoretsk"]


# ---------------------------------------------------------------------- delivery classification


@pytest.mark.parametrize(
    ("reply", "retryable"),
    [("554 5.6.0 Message rejected", False), ("451 4.3.0 Try again later", True)],
)
async def test_a_refused_digest_is_classified_like_send(
    tmp_path: Path, reply: str, retryable: bool
) -> None:
    with SmtpServer(tmp_path, security="none") as smtp:
        notifier = build_notifier("mail", settings_for(smtp))
        assert isinstance(notifier, DigestCapable)
        smtp.fail_data(reply)
        outcome = await notifier.send_digest(fifty_alerts(), period=HOUR)
        assert smtp.mails == []
    assert outcome.error is not None and outcome.error.retryable is retryable
    assert str(outcome.error) == f"smtp server answered {reply}"


async def test_wrong_password_is_permanent_and_secret_free(tmp_path: Path) -> None:
    with SmtpServer(tmp_path, security="starttls", users={"bob": "another"}) as smtp:
        notifier = build_notifier("mail", settings_for(smtp, username="bob", password=PASSWORD))
        assert isinstance(notifier, DigestCapable)
        outcome = await notifier.send_digest(fifty_alerts(), period=HOUR)
        assert smtp.mails == []
    assert outcome.error is not None and not outcome.error.retryable
    assert str(outcome.error).startswith("smtp server answered 535")
    assert PASSWORD not in str(outcome.error)


async def test_unreachable_server_is_retryable() -> None:
    settings = EmailSettings.model_validate(
        {"type": "email", "host": "127.0.0.1", "port": closed_port(), "security": "none",
         "from": "m@example.org", "to": ["a@example.org"], "timeout": "2s", "digest": "1h"}
    )  # fmt: skip
    notifier = build_notifier("mail", settings)
    assert isinstance(notifier, DigestCapable)
    outcome = await notifier.send_digest([sample_alert()], period=HOUR)
    assert outcome.error is not None and outcome.error.retryable
    assert str(outcome.error).startswith("smtp: could not connect")


async def test_unbuildable_or_empty_digests_send_nothing(tmp_path: Path) -> None:
    with SmtpServer(tmp_path, security="none") as smtp:
        notifier = build_notifier("mail", settings_for(smtp))
        assert isinstance(notifier, DigestCapable)
        broken = await notifier.send_digest([sample_alert(), sample_alert(title=None)], period=HOUR)
        empty = await notifier.send_digest([], period=HOUR)
        assert smtp.mails == []
    assert broken.error is not None and not broken.error.retryable
    assert str(broken.error) == "digest could not be built (TypeError)"
    assert empty == SendOutcome()
    with pytest.raises(ValueError, match="at least one alert"):
        build_digest_message([], sender(), HOUR)


# --------------------------------------------------------------------------- API and previews


def test_only_email_supports_digests() -> None:
    email_settings = EmailSettings.model_validate(
        {"type": "email", "host": "h", "from": "m@e.org", "to": ["a@e.org"], "digest": "2h"}
    )
    mail = build_notifier("mail", email_settings)
    others = [
        build_notifier("console", ConsoleSettings(type="console")),
        build_notifier(
            "slack", slack_settings(webhook_url="https://hooks.slack.com/services/T/B/X")
        ),
        build_notifier("hook", webhook_settings(url="https://example.org/h")),
    ]
    assert supports_digest(mail) and not any(supports_digest(n) for n in others)
    html = render_digest_preview(mail, fifty_alerts())
    assert html.startswith("<!DOCTYPE html>") and "50 alerts in the last 2h" in html
    assert Html(html).entry_ids() == EXPECTED_ORDER
    assert "in the last 15m" in render_digest_preview(
        mail, [sample_alert()], period=timedelta(minutes=15)
    )
    with pytest.raises(ConfigError, match="notifier 'slack' does not send digests"):
        render_digest_preview(others[1], [sample_alert()])


def test_email_preview_is_the_whole_message() -> None:
    settings = EmailSettings.model_validate(
        {"type": "email", "host": "h", "from": "Monitor <m@example.org>", "to": ["a@example.org"]}
    )
    text = render_preview(build_notifier("mail", settings), sample_alert())
    assert "\r" not in text
    parsed = email.message_from_string(text, policy=email.policy.default)
    assert isinstance(parsed, email.message.EmailMessage)
    assert parsed["Subject"].startswith("[HIGH] North Korean KN-23")
    assert parsed["From"] == "Monitor <m@example.org>" and parsed["Message-ID"]
    plain, html = bodies(parsed)
    assert "*KN-23*" in plain and Html(html).marked == ["KN-23"]


@settings(max_examples=60, deadline=None)
@given(
    title=st.text(alphabet=st.sampled_from([*"<>&\"'/=scriptimg \r\n", "\x00", "\u2028"])),
    rule_title=st.text(alphabet=st.sampled_from([*"<>&\"'/=b \r\n", "\x0b", "\u2029"])),
)
def test_no_feed_text_becomes_html_or_a_header(title: str, rule_title: str) -> None:
    alerts = [
        sample_alert(title=title, rule_title=rule_title, link='https://a.example/"><x',
                     matches=(Span("title", 0, len(title), title),), source_name=title),
        sample_alert(rule_id="other", summary=title, matches=(Span("summary", 0, 3, title[:3]),)),
    ]  # fmt: skip
    message = build_digest_message(alerts, sender(), HOUR)
    parsed = email.message_from_bytes(message.as_bytes(), policy=email.policy.default)
    assert isinstance(parsed, email.message.EmailMessage)
    assert set(parsed.keys()) == set(message.keys())
    assert not re.search(r"[\r\n]", str(parsed["Subject"]))
    plain, html = bodies(parsed)
    tags = Html(html)
    assert set(tags.tags) <= TEMPLATE_TAGS
    assert [h for h in tags.hrefs if not h.startswith("#")].count('https://a.example/"><x') == 1
    assert len(re.findall(r"^- ", plain, re.MULTILINE)) == 2


def test_real_entries_make_a_sound_digest() -> None:
    if not CORPUS.exists():
        pytest.skip("shared corpus not present")
    alerts = []
    for number, line in enumerate(CORPUS.read_text(encoding="utf-8").splitlines()[:200]):
        entry: dict[str, Any] = json.loads(line)
        summary, title = entry.get("summary") or "", entry.get("title") or ""
        spans = tuple(Span("summary", m.start(), m.end(), m.group())
                      for m in re.finditer(r"Russia\w*|Ukrain\w*", summary))  # fmt: skip
        published = entry.get("published")
        alerts.append(
            sample_alert(alert_id=number, rule_id=f"r{number % 4}", rule_title=f"Rule {number % 4}",
                         title=title, summary=summary, matches=spans, link=entry.get("link"),
                         source_name=entry.get("source") or "",
                         published=datetime.fromisoformat(published) if published else None)
        )  # fmt: skip
    message = build_digest_message(alerts, sender(), timedelta(days=1))
    parsed = email.message_from_bytes(message.as_bytes(), policy=email.policy.default)
    assert isinstance(parsed, email.message.EmailMessage)
    plain, html = bodies(parsed)
    assert set(Html(html).tags) <= TEMPLATE_TAGS
    assert len(re.findall(r"^- ", plain, re.MULTILINE)) == len(alerts)
