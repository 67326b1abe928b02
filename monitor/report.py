"""`monitor sources` and `monitor alerts`: the store's views as tables or JSON (DESIGN §5)."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import click

from monitor.config import Config
from monitor.errors import RuleError
from rules import load_rules
from storage import AlertView, SourceView, Store


def _iso(value: datetime | None) -> str | None:
    return value.isoformat(timespec="seconds") if value else None


def _short(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M") if value else "-"


def source_json(view: SourceView) -> dict[str, Any]:
    return {
        "id": view.id,
        "url": view.url,
        "name": view.name,
        "status": view.status,
        "error": view.error,
        "error_detail": view.error_detail,
        "consecutive_failures": view.consecutive_failures,
        "last_poll": _iso(view.last_poll),
        "last_success": _iso(view.last_success),
        "last_new_item": _iso(view.last_new_item),
        "next_poll": _iso(view.next_poll),
        "last_instance": view.last_instance,
        "items": view.items,
    }


def alert_json(view: AlertView) -> dict[str, Any]:
    return {
        "id": view.id,
        "rule": view.rule,
        "rule_title": view.rule_title,
        "level": view.level,
        "created": _iso(view.created),
        "item": {"title": view.title, "link": view.link, "source": view.source},
        "also": [
            {"source": a.source_id, "name": a.source_name, "title": a.title, "link": a.link}
            for a in view.also
        ],
        "matches": [
            {"field": s.field, "start": s.start, "end": s.end, "text": s.text} for s in view.spans
        ],
        "deliveries": [
            {
                "notifier": d.notifier,
                "status": d.status,
                "attempts": d.attempts,
                "last_error": d.last_error,
                "next_attempt": _iso(d.next_attempt),
                "sent_at": _iso(d.sent_at),
            }
            for d in view.deliveries
        ],
    }


def rules_status(config: Config) -> str | None:
    """A warning when the rule files on disk do not load: a running daemon then keeps its last good
    rules, so what runs is not what the files say until they are fixed."""
    try:
        load_rules(config.rules, notifiers=list(config.notifiers))
    except RuleError as e:
        shown = [str(p) for p in e.problems[:3]] or [str(e)]
        more = f"\n  ... and {len(e.problems) - 3} more" if len(e.problems) > 3 else ""
        return (
            f"rules: {max(len(e.problems), 1)} problem(s) in the rule files; a running daemon "
            "keeps its last good rules until they are fixed (see `monitor check`):\n  "
            + "\n  ".join(shown)
            + more
        )
    return None


def print_sources(config: Config, *, as_json: bool) -> None:
    store = Store.open(config.database)
    try:
        views = store.list_sources()
    finally:
        store.close()
    status = rules_status(config)
    if status:
        click.echo(status, err=True)
    if as_json:
        click.echo(json.dumps([source_json(v) for v in views], indent=2))
        return
    click.echo(
        f"{'SOURCE':<24} {'STATUS':<8} {'ERROR':<14} {'FAILS':>5}  {'LAST SUCCESS':<16}  "
        f"{'LAST NEW ITEM':<16}  NEXT POLL"
    )
    for v in views:
        error = (v.error or "-")[:14]
        click.echo(
            f"{v.id[:24]:<24} {v.status:<8} {error:<14} {v.consecutive_failures:>5}  "
            f"{_short(v.last_success):<16}  {_short(v.last_new_item):<16}  {_short(v.next_poll)}"
        )
    failing = [v for v in views if v.status == "error"]
    click.echo(f"{len(views)} sources, {len(failing)} failing")


def print_alerts(config: Config, since: datetime, *, as_json: bool) -> None:
    store = Store.open(config.database)
    try:
        views = store.list_alerts(since)
    finally:
        store.close()
    if as_json:
        click.echo(json.dumps([alert_json(v) for v in views], indent=2))
        return
    for v in views:
        click.echo(f"{_short(v.created)}  [{v.level.upper()}] {v.rule}: {v.title}")
        click.echo(f"    {v.source}  {v.link or ''}")
        if v.also:
            click.echo("    also reported by: " + ", ".join(a.source_name for a in v.also))
        for d in v.deliveries:
            err = f"  ({d.last_error})" if d.last_error else ""
            click.echo(f"    -> {d.notifier}: {d.status}, {d.attempts} attempts{err}")
    click.echo(f"{len(views)} alerts")
