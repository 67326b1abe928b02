"""Block Kit payload for one alert. All feed text is escaped per Slack's rules so a feed can never
produce a mention (`<!channel>`, `<@U123>`) or a link of its own; only the article link is built by
us.

Limits (Block Kit reference): header text 150 characters, section text 3000, 50 blocks per message.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from urllib.parse import quote

from monitor.model import AlertMessage
from notifiers._text import (
    ELLIPSIS,
    Segment,
    clean,
    iso_time,
    level_label,
    matched_terms,
    safe_link,
    snippet,
)

HEADER_LIMIT = 150
SECTION_LIMIT = 3000
MAX_BLOCKS = 50
TEXT_LIMIT = 3000  # the notification fallback; Slack truncates far later, readers much sooner
TITLE_CHARS = 300
ALSO_SHOWN = 10
URL_LIMIT = 2000

_MRKDWN_LOOKALIKES = str.maketrans({"*": "∗", "_": "ˍ", "~": "∼", "`": "ˋ"})
_ENTITIES = {"&": "&amp;", "<": "&lt;", ">": "&gt;"}


def escape(text: str) -> str:
    """Slack's control characters as entities (api.slack.com/reference/surfaces/formatting)."""
    return "".join(_ENTITIES.get(ch, ch) for ch in text)


def escape_cut(text: str, limit: int) -> str:
    """Escape, cutting the raw text (never an entity) so the result fits in `limit` characters."""
    escaped = escape(text)
    if len(escaped) <= limit:
        return escaped
    out: list[str] = []
    used = 0
    for ch in text:
        piece = _ENTITIES.get(ch, ch)
        if used + len(piece) > limit - 1:
            break
        out.append(piece)
        used += len(piece)
    return "".join(out).rstrip() + ELLIPSIS


def mrkdwn(text: str) -> str:
    """Feed text for a mrkdwn field: escaped, without live formatting characters. mrkdwn has no
    escape for `*_~` and backticks, and a feed's `*word*` next to our bold markers would garble
    them, so they become look-alikes."""
    return escape(text.translate(_MRKDWN_LOOKALIKES))


def mrkdwn_cut(text: str, limit: int) -> str:
    return escape_cut(text.translate(_MRKDWN_LOOKALIKES), limit)


def bold(text: str) -> str:
    """`*text*` with the text escaped and neutralised; Slack only bolds when the asterisks hug the
    text."""
    body = mrkdwn(text).strip()
    return f"*{body}*" if body else ""


def link(url: str | None, label: str) -> str:
    """`<url|label>` when the URL is a usable http(s) link, else the escaped label alone."""
    label = mrkdwn_cut(clean(label) or "(untitled)", TITLE_CHARS)
    url = safe_link(url)
    if url is None or len(url) > URL_LIMIT:
        return label
    # `|` and `>` would end the URL part early; percent-encoding keeps the address the same.
    target = escape(quote(url, safe=":/?#[]@!$&'()*+,;=%~"))
    return f"<{target}|{label}>"


def snippet_mrkdwn(segments: Sequence[Segment], limit: int = SECTION_LIMIT) -> str:
    out: list[str] = []
    used = 0
    for seg in segments:
        piece = bold(seg.text) if seg.hit else mrkdwn(seg.text)
        if used + len(piece) > limit - 1:
            out.append(ELLIPSIS)
            break
        out.append(piece)
        used += len(piece)
    return "".join(out).strip()


def _section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text}}


def _also_block(alert: AlertMessage) -> dict[str, Any] | None:
    if not alert.also:
        return None
    lines = ["*Also reported by*"]
    for other in alert.also[:ALSO_SHOWN]:
        name = mrkdwn_cut(clean(other.source_name or other.source_id), 100)
        lines.append(f"• {name}: {link(other.link, other.title)}")
    if len(alert.also) > ALSO_SHOWN:
        lines.append(f"• and {len(alert.also) - ALSO_SHOWN} more")
    text = "\n".join(lines)
    while len(text) > SECTION_LIMIT and len(lines) > 2:
        lines.pop(-1)
        text = "\n".join([*lines, f"• {ELLIPSIS}"])
    return _section(text)


def fallback_text(alert: AlertMessage) -> str:
    raw = f"[{level_label(alert)}] {clean(alert.rule_title)}: {clean(alert.title)}"
    return mrkdwn_cut(raw, TEXT_LIMIT)


def blocks(alert: AlertMessage) -> list[dict[str, Any]]:
    header = escape_cut(f"{level_label(alert)} · {clean(alert.rule_title)}", HEADER_LIMIT)
    source = mrkdwn_cut(clean(alert.source_name or alert.source_id), 200)
    out: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": header, "emoji": False}},
        _section(f"*{link(alert.link, alert.title)}*\n{source} · {iso_time(alert.published)}"),
    ]
    text = snippet_mrkdwn(snippet(alert))
    if text:
        out.append(_section(text))
    terms = matched_terms(alert)
    if terms:
        matched = "Matched: " + mrkdwn_cut(", ".join(terms), SECTION_LIMIT - 9)
        out.append({"type": "context", "elements": [{"type": "mrkdwn", "text": matched}]})
    also = _also_block(alert)
    if also is not None:
        out.append(also)
    return out[:MAX_BLOCKS]


def payload(alert: AlertMessage, channel: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "text": fallback_text(alert),
        "blocks": blocks(alert),
        # Slack would otherwise fetch the feed's URLs to build previews.
        "unfurl_links": False,
        "unfurl_media": False,
    }
    if channel is not None:
        body["channel"] = channel
    return body


__all__ = ["bold", "escape", "escape_cut", "link", "payload"]
