"""Commands that work without the daemon: `monitor match` over JSON Lines, `monitor notify-test`."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any, Literal, TextIO

from monitor.config import Config
from monitor.errors import ConfigError
from monitor.model import AlertMessage, Span
from notifiers import build_notifier
from rules import compile_rules
from rules._yaml import did_you_mean
from rules.ast import Document, Rule
from rules.explain import format_explanation, to_json

_TEXT_FIELDS = ("title", "summary", "content", "link", "source", "author")


def document_from_json(obj: Any) -> Document:
    """A `monitor match` input line (DESIGN §5); raises ValueError naming what is wrong."""
    if not isinstance(obj, dict):
        raise ValueError("expected a JSON object")
    if obj.get("id") in (None, ""):
        raise ValueError("missing 'id'")
    values: dict[str, str] = {}
    for name in _TEXT_FIELDS:
        value = obj.get(name) or ""
        if not isinstance(value, str):
            raise ValueError(f"'{name}' must be a string")
        values[name] = value
    tags = obj.get("tags") or []
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        raise ValueError("'tags' must be a list of strings")
    return Document(
        id=str(obj["id"]),
        title=values["title"],
        summary=values["summary"],
        content=values["content"],
        link=values["link"],
        source=values["source"],
        author=values["author"],
        tags=tuple(tags),
    )


def match_lines(
    rules: Sequence[Rule],
    lines: Iterable[str],
    out: TextIO,
    err: TextIO,
    *,
    explain: Literal["json", "text"] | None = None,
) -> int:
    """Print one JSON line per (item, rule) match (with `explain="json"`, the explanation inside it;
    with `"text"`, a readable tree instead); report malformed lines on `err`. Returns how many lines
    were malformed."""
    matcher = compile_rules(rules)
    bad = 0
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            doc = document_from_json(json.loads(line))
        except ValueError as e:  # json.JSONDecodeError is a ValueError
            bad += 1
            err.write(f"line {number}: {e}\n")
            continue
        for m in matcher.match(doc):
            record: dict[str, Any] = {
                "id": doc.id,
                "rule": m.rule_id,
                "level": m.level,
                "matches": [
                    {"field": s.field, "start": s.start, "end": s.end, "text": s.text}
                    for s in m.spans
                ],
            }
            if explain == "text":
                out.write(f"item {doc.id}: {format_explanation(matcher.explain(doc, m.rule_id))}\n")
                continue
            if explain == "json":
                record["explain"] = to_json(matcher.explain(doc, m.rule_id))
            out.write(json.dumps(record, ensure_ascii=False) + "\n")
    return bad


def sample_alert() -> AlertMessage:
    title = "Sample alert: North Korean KN-23 missile debris identified in Kharkiv"
    start = title.index("KN-23")
    return AlertMessage(
        alert_id=0,
        rule_id="notify-test",
        rule_title="source-monitor notifier test",
        level="high",
        title=title,
        link="https://example.org/source-monitor/notify-test",
        source_id="source-monitor",
        source_name="source-monitor",
        published=datetime.now(UTC),
        created=datetime.now(UTC),
        summary="This is a test alert sent by `monitor notify-test`. No action is needed.",
        matches=(Span("title", start, start + 5, "KN-23"),),
    )


async def send_sample(config: Config, name: str) -> tuple[bool, str]:
    """Send one sample alert through notifier `name`; returns (accepted, what the receiver said)."""
    if name not in config.notifiers:
        hint = did_you_mean(name, config.notifiers)
        raise ConfigError(f"{config.path}: no notifier named '{name}'{hint}")
    notifier = build_notifier(name, config.notifiers[name])
    try:
        [outcome] = await notifier.send([sample_alert()])
    finally:
        await notifier.aclose()
    if outcome.error is None:
        return True, f"{name}: accepted"
    kind = "will be retried" if outcome.error.retryable else "permanent"
    return False, f"{name}: refused ({kind}): {outcome.error}"
