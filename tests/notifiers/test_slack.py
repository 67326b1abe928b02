import json
import re
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.errors import ConfigError
from monitor.model import AlsoReported, Span
from notifiers import SendOutcome, build_notifier
from notifiers._slack import SlackNotifier
from notifiers._slack_format import escape_cut, link, payload
from notifiers.settings import SlackSettings
from tests.notifiers.receivers import Reply, SlackStandIn, closed_port, slack_block_problem
from tests.notifiers.samples import FakeClock, hostile_alert, sample_alert, slack_settings, span_of


@pytest.fixture
def slack() -> Iterator[SlackStandIn]:
    with SlackStandIn() as stand_in:
        yield stand_in


def webhook(url: str, clock: FakeClock | None = None) -> SlackNotifier:
    settings = slack_settings(webhook_url=url, timeout="2s")
    return SlackNotifier("analysts-slack", settings, clock=clock or FakeClock())


def all_mrkdwn(body: dict[str, Any]) -> list[str]:
    """Every text Slack would parse for mentions and links in a payload."""
    texts = [body["text"]]
    for block in body["blocks"]:
        if "text" in block:
            texts.append(block["text"]["text"])
        texts.extend(e["text"] for e in block.get("elements", []))
    return texts


async def test_hostile_feed_text_cannot_mention_or_link(slack: SlackStandIn) -> None:
    notifier = webhook(slack.webhook_url)
    outcomes = await notifier.send([hostile_alert()])
    await notifier.aclose()
    assert outcomes == [SendOutcome()]
    [body] = slack.messages
    links: list[str] = []
    for text in all_mrkdwn(body):
        # Slack's control sequences: every `<` left in the text must be one of ours.
        links.extend(re.findall(r"<([^>]*)>", text))
        assert "<!" not in text and "<@" not in text and "<#" not in text
        assert "\r" not in text and "\x1b" not in text and "\u202e" not in text
    # The only link is the article, with both parts escaped.
    assert links == [
        "https://evil.example/x?a=1&amp;b=%3C2%3E%7C3|&lt;!channel&gt; &lt;@U123&gt; "
        "&lt;https://evil|click&gt; &amp; co Bcc: x@evil"
    ]
    assert "javascript" not in json.dumps(body)
    assert "&lt;@U999&gt;" in json.dumps(body)


def test_matched_words_are_bold_with_formatting_neutralised() -> None:
    summary = "Launch of *KN_23* `missiles` and ~Hwasong~ noted"
    alert = sample_alert(
        summary=summary, matches=(span_of(summary, "KN_23"), span_of(summary, "`missiles`"))
    )
    section = payload(alert)["blocks"][2]["text"]["text"]
    assert section == "Launch of ∗*KNˍ23*∗ *ˋmissilesˋ* and ∼Hwasong∼ noted"


def test_link_percent_encodes_what_would_end_it() -> None:
    url = "https://a.example/p?q=a|b>c<d"
    assert link(url, "T|x") == "<https://a.example/p?q=a%7Cb%3Ec%3Cd|T|x>"
    assert link("https://a.example/with space", "T") == "T"
    assert link("ftp://a.example/x", "Title & co") == "Title &amp; co"
    assert link(None, "") == "(untitled)"


def test_escape_cut_never_splits_an_entity() -> None:
    for limit in range(1, 30):
        out = escape_cut("&&&&&&&&&&", limit)
        assert len(out) <= limit
        assert re.fullmatch(r"(&amp;)*…?", out), out


async def test_huge_alert_stays_within_slack_limits(slack: SlackStandIn) -> None:
    huge = "W" * 5000 + " & <KN-23> " + "x" * 20000
    alert = sample_alert(
        title="&" * 4000,
        rule_title="<" * 500,
        summary=huge,
        matches=(span_of(huge, "KN-23"),),
        source_name="S" * 1000,
        also=tuple(AlsoReported(f"s{i}", "&" * 300, ">" * 500, None) for i in range(200)),
    )
    body = payload(alert)
    assert slack_block_problem(body) is None
    assert len(body["blocks"][0]["text"]["text"]) <= 150
    assert all(len(t) <= 3000 for t in all_mrkdwn(body))
    notifier = webhook(slack.webhook_url)
    assert await notifier.send([alert]) == [SendOutcome()]
    await notifier.aclose()


@pytest.mark.parametrize(
    ("reply", "retryable", "retry_after", "message"),
    [
        (SlackStandIn.RATE_LIMITED, True, 3.0, "slack webhook answered 429 (rate_limited)"),
        (SlackStandIn.UNAVAILABLE, True, 0.0, "slack webhook answered 503 (service_unavailable)"),
        (SlackStandIn.SERVER_ERROR, True, None, "slack webhook answered 500 (internal_error)"),
        (SlackStandIn.INVALID_PAYLOAD, False, None, "slack webhook answered 400 (invalid_payload)"),
        (SlackStandIn.NO_SERVICE, False, None, "slack webhook answered 404 (no_service)"),
        (SlackStandIn.GONE, False, None, "slack webhook answered 410 (channel_is_archived)"),
        (Reply(403, "invalid_token"), False, None, "slack webhook answered 403 (invalid_token)"),
        (Reply(301, "moved"), False, None, "slack webhook answered 301 (moved): redirects are"),
    ],
)
async def test_slack_answers_are_classified(
    slack: SlackStandIn, reply: Reply, retryable: bool, retry_after: float | None, message: str
) -> None:
    slack.reply(reply)
    notifier = webhook(slack.webhook_url)
    [outcome] = await notifier.send([sample_alert()])
    await notifier.aclose()
    assert outcome.error is not None
    assert str(outcome.error).startswith(message)
    assert outcome.error.retryable is retryable
    assert outcome.error.retry_after == retry_after


async def test_unknown_webhook_is_a_permanent_error(slack: SlackStandIn) -> None:
    notifier = webhook(slack.base_url + "/services/T/B/wrong")
    [outcome] = await notifier.send([sample_alert()])
    await notifier.aclose()
    assert outcome.error is not None and not outcome.error.retryable
    assert "no_service" in str(outcome.error)
    assert "wrong" not in str(outcome.error)


async def test_rate_limit_stops_the_batch_and_paces_the_next_send(slack: SlackStandIn) -> None:
    clock = FakeClock()
    notifier = webhook(slack.webhook_url, clock)
    slack.reply(SlackStandIn.RATE_LIMITED)
    outcomes = await notifier.send([sample_alert(alert_id=i) for i in range(3)])
    assert len(slack.requests) == 1
    errors = [o.error for o in outcomes]
    assert all(e is not None and e.retryable and e.retry_after == 3.0 for e in errors)
    assert str(errors[1]).startswith("not attempted: slack webhook answered 429")
    # The next send waits out Retry-After instead of hitting Slack again at once.
    assert await notifier.send([sample_alert()]) == [SendOutcome()]
    assert clock.sleeps == [pytest.approx(3.0)]
    await notifier.aclose()


async def test_permanent_refusal_does_not_stop_the_batch(slack: SlackStandIn) -> None:
    slack.reply(SlackStandIn.INVALID_PAYLOAD)
    notifier = webhook(slack.webhook_url)
    outcomes = await notifier.send([sample_alert(alert_id=1), sample_alert(alert_id=2)])
    await notifier.aclose()
    assert outcomes[0].error is not None and outcomes[1] == SendOutcome()
    assert len(slack.messages) == 1


async def test_about_one_message_per_second(slack: SlackStandIn) -> None:
    clock = FakeClock()
    notifier = webhook(slack.webhook_url, clock)
    outcomes = await notifier.send([sample_alert(alert_id=i) for i in range(4)])
    assert outcomes == [SendOutcome()] * 4
    assert clock.sleeps == [1.0, 1.0, 1.0]
    clock.now += 5  # idle for a while: no wait next time
    await notifier.send([sample_alert()])
    assert clock.sleeps == [1.0, 1.0, 1.0]
    await notifier.aclose()


async def test_timeout_and_refused_connection_are_retryable(slack: SlackStandIn) -> None:
    slack.reply(Reply(hang=True))
    settings = slack_settings(webhook_url=slack.webhook_url, timeout="200ms")
    notifier = SlackNotifier("s", settings, clock=FakeClock())
    [outcome] = await notifier.send([sample_alert()])
    await notifier.aclose()
    assert outcome.error is not None and outcome.error.retryable
    assert str(outcome.error) == "slack webhook timed out after 0.2s"

    notifier = webhook(f"http://127.0.0.1:{closed_port()}/services/T/B/secret")
    [outcome] = await notifier.send([sample_alert()])
    await notifier.aclose()
    assert outcome.error is not None and outcome.error.retryable
    assert str(outcome.error) == "slack webhook: could not connect"


async def test_bot_token_posts_to_chat_post_message(slack: SlackStandIn) -> None:
    settings = slack_settings(token=slack.token, channel=slack.channel, api_url=slack.api_url)
    notifier = SlackNotifier("bot", settings, clock=FakeClock())
    outcomes = await notifier.send([sample_alert(alert_id=1), sample_alert(alert_id=2)])
    await notifier.aclose()
    assert [o.message_id for o in outcomes] == ["1764000000.000001", "1764000000.000002"]
    assert [r.headers["authorization"] for r in slack.requests] == [f"Bearer {slack.token}"] * 2
    assert slack.messages[0]["channel"] == slack.channel


@pytest.mark.parametrize(
    ("token", "channel", "answer", "retryable"),
    [
        ("xoxb-wrong", "C0ALERTS", "invalid_auth", False),
        ("xoxb-test-token", "C0NOPE", "channel_not_found", False),
    ],
)
async def test_bot_ok_false_is_an_error(
    slack: SlackStandIn, token: str, channel: str, answer: str, retryable: bool
) -> None:
    settings = slack_settings(token=token, channel=channel, api_url=slack.api_url)
    notifier = SlackNotifier("bot", settings, clock=FakeClock())
    [outcome] = await notifier.send([sample_alert()])
    await notifier.aclose()
    assert outcome.error is not None
    assert str(outcome.error) == f"slack chat.postMessage answered ok=false ({answer})"
    assert outcome.error.retryable is retryable
    assert token not in str(outcome.error)


async def test_bot_ratelimited_and_garbage_answers_are_retryable(slack: SlackStandIn) -> None:
    slack.reply(Reply.json({"ok": False, "error": "ratelimited"}), Reply(200, "<html>"))
    settings = slack_settings(token=slack.token, channel=slack.channel, api_url=slack.api_url)
    notifier = SlackNotifier("bot", settings, clock=FakeClock())
    [first] = await notifier.send([sample_alert()])
    [second] = await notifier.send([sample_alert()])
    await notifier.aclose()
    assert first.error is not None and first.error.retryable
    assert second.error is not None and second.error.retryable
    assert "no JSON" in str(second.error)


@pytest.mark.parametrize(
    "settings",
    [
        slack_settings(),
        slack_settings(token="xoxb-1"),
        slack_settings(webhook_url="not a url at all"),
        slack_settings(webhook_url="ftp://hooks.example/services/x"),
    ],
)
def test_unusable_settings_are_config_errors(settings: SlackSettings) -> None:
    with pytest.raises(ConfigError) as info:
        build_notifier("s", settings)
    assert "notifier 's'" in str(info.value)
    assert "hooks.example" not in str(info.value)


def test_preview_is_the_payload() -> None:
    notifier = webhook("https://hooks.slack.com/services/T/B/X")
    alert = replace(sample_alert(), title="A & B")
    assert json.loads(notifier.preview(alert)) == payload(alert)


def test_title_match_is_the_snippet_when_there_is_no_summary() -> None:
    title = "Toropets depot hit by drones"
    alert = sample_alert(title=title, summary="", matches=(span_of(title, "Toropets", "title"),))
    assert payload(alert)["blocks"][2]["text"]["text"] == "*Toropets* depot hit by drones"
    no_match = sample_alert(summary="", matches=())
    assert [b["type"] for b in payload(no_match)["blocks"]] == ["header", "section", "section"]


feed_text = st.text(
    alphabet=st.sampled_from([*"<>&|*_~`@!#:/ \r\n\tabcKN-23", "\x1b", "\u202e", "é"]),
    max_size=60,
)


@settings(max_examples=150, deadline=None)
@given(
    title=feed_text,
    summary=feed_text,
    source=feed_text,
    link=st.sampled_from([None, "https://a.example/x?q=<1>&r=|2", "javascript:x", "http://b/ c"]),
    cuts=st.lists(st.tuples(st.integers(0, 60), st.integers(0, 60)), max_size=4),
)
def test_no_feed_text_reaches_slack_as_markup(
    title: str, summary: str, source: str, link: str | None, cuts: list[tuple[int, int]]
) -> None:
    spans = tuple(Span("summary", a, b, summary[a:b]) for a, b in cuts)
    alert = sample_alert(
        title=title,
        summary=summary,
        source_name=source,
        link=link,
        matches=spans,
        also=(AlsoReported("x", source, title, link),),
    )
    body = payload(alert)
    assert slack_block_problem(body) is None
    for text in all_mrkdwn(body):
        # Each `&` starts one of the three entities, each `<` one of our own links.
        assert re.fullmatch(r"([^&]|&amp;|&lt;|&gt;)*", text)
        without_links = re.sub(r"<https?://[^\s<>|]+\|[^<>]*>", "", text)
        assert "<" not in without_links and ">" not in without_links
        assert not re.search(r"[\x00-\x08\x0b-\x1f\x7f\u202e]", text)
