"""Real news entries (the shared corpus, read in place) through every renderer: real titles bring
quotes, ampersands, non-ASCII and long summaries that hand-written samples miss."""

from __future__ import annotations

import email
import email.message
import email.policy
import json
import re
from datetime import datetime
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from monitor.model import AlertMessage, Span
from notifiers._console import render_block
from notifiers._email_message import Sender, build_message, parse_address
from notifiers._slack_format import payload
from notifiers._webhook import webhook_payload
from tests.notifiers.receivers import slack_block_problem
from tests.notifiers.samples import sample_alert

CORPUS = Path(__file__).resolve().parents[2].parent / "shared" / "corpus" / "news" / "dev.jsonl"
TERMS = re.compile(r"North Korea\w*|KN-23|Russia\w*|Ukrain\w*|depot|missiles?", re.IGNORECASE)


def corpus_alerts() -> list[AlertMessage]:
    if not CORPUS.exists():
        pytest.skip("shared corpus not present")
    alerts = []
    for number, line in enumerate(CORPUS.read_text(encoding="utf-8").splitlines()):
        entry: dict[str, Any] = json.loads(line)
        summary = entry.get("summary") or ""
        title = entry.get("title") or ""
        spans = [Span("summary", m.start(), m.end(), m.group()) for m in TERMS.finditer(summary)]
        spans += [Span("title", m.start(), m.end(), m.group()) for m in TERMS.finditer(title)]
        published = entry.get("published")
        alerts.append(
            sample_alert(
                alert_id=number,
                title=title,
                summary=summary,
                link=entry.get("link"),
                source_name=entry.get("source") or "",
                published=datetime.fromisoformat(published) if published else None,
                matches=tuple(spans),
            )
        )
    return alerts


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: set[str] = set()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.add(tag)


def test_real_entries_render_safely_everywhere() -> None:
    alerts = corpus_alerts()
    sender = Sender(parse_address("m@example.org", "from"), (parse_address("a@example.org", "to"),))
    template_tags = {"html", "head", "meta", "title", "body", "table", "tr", "td", "a", "mark",
                     "strong", "ul", "li"}  # fmt: skip
    for alert in alerts:
        body = payload(alert)
        assert slack_block_problem(body) is None, alert.alert_id
        assert "<!" not in json.dumps(body) and "<@" not in json.dumps(body)
        assert not re.search(r"[\x00-\x09\x0b-\x1f\x7f]", render_block(alert))
        assert json.loads(json.dumps(webhook_payload(alert, 0)))["item"]["title"] == alert.title

    # The stdlib email package takes milliseconds per message: every third entry is plenty.
    for alert in alerts[::3]:
        message = build_message(alert, sender)
        parsed = email.message_from_bytes(message.as_bytes(), policy=email.policy.default)
        assert isinstance(parsed, email.message.EmailMessage)
        assert set(parsed.keys()) == set(message.keys())
        html = parsed.get_body(("html",))
        assert html is not None
        tags = _Tags()
        tags.feed(html.get_content())
        assert tags.tags <= template_tags, alert.alert_id
