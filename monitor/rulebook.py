"""The daemon's current rules: loaded and compiled once per change, swapped atomically, the last
good set kept.

An edit with errors keeps the previous compiled rules running and records the problems, so the logs
and `monitor sources` can say loudly that the files on disk are not what is running.
"""

from __future__ import annotations

import gc
import logging
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from monitor.errors import RuleError
from monitor.model import Item, level_rank
from rules import Matcher, RuleSet, compile_rules, load_rules
from rules.ast import Document, Rule, RuleMatch

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CompiledRules:
    ruleset: RuleSet
    matcher: Matcher
    by_id: Mapping[str, Rule]


def _signature(paths: Sequence[Path]) -> tuple[tuple[str, int, int], ...]:
    """Name, size and mtime of every rule file under `paths`: cheap to check every few seconds."""
    found: list[tuple[str, int, int]] = []
    for p in paths:
        files = [p] if p.is_file() else sorted([*p.rglob("*.yaml"), *p.rglob("*.yml")])
        for f in files:
            try:
                st = f.stat()
            except OSError:
                continue
            found.append((str(f), st.st_size, st.st_mtime_ns))
    return tuple(found)


class Rulebook:
    def __init__(
        self,
        paths: Sequence[Path],
        *,
        notifiers: Collection[str] | None = None,
        sources: Collection[str] | None = None,
    ) -> None:
        self._paths = tuple(paths)
        self._notifiers = notifiers
        self._sources = sources
        self._signature = _signature(self._paths)
        self.current = self._load()  # raises RuleError: at start-up, bad rules are fatal
        self.problems: tuple[str, ...] = ()

    def _load(self) -> CompiledRules:
        ruleset = load_rules(self._paths, notifiers=self._notifiers, sources=self._sources)
        matcher = compile_rules(ruleset.rules)
        return CompiledRules(ruleset, matcher, {r.id: r for r in ruleset.rules})

    def reload_if_changed(self, *, force: bool = False) -> bool:
        """Reload when a rule file was added, edited or deleted. True when new rules took effect."""
        sig = _signature(self._paths)
        if sig == self._signature and not force:
            return False
        self._signature = sig
        try:
            compiled = self._load()
        except RuleError as e:
            self.problems = tuple(str(p) for p in e.problems) or (str(e),)
            log.error(
                "rule files have errors; still running the last good rules (%d):\n%s",
                len(self.current.ruleset.rules),
                "\n".join(self.problems),
            )
            return False
        self.current = compiled
        self.problems = ()
        # The daemon froze what start-up left alive (`monitor.daemon.settle_heap`), the first rules
        # with it: hand it back to the collector, or the old rules' reference cycles would never be
        # freed.
        gc.unfreeze()
        log.info("rules reloaded: %d rules", len(compiled.ruleset.rules))
        return True


def item_document(item: Item, source_tags: Sequence[str]) -> Document:
    return Document(
        id=item.key,
        title=item.title,
        summary=item.summary,
        content=item.content,
        author=item.author,
        tags=item.tags,
        link=item.link or "",
        source=item.source_id,
        source_tags=tuple(source_tags),
    )


def make_router(
    rules: Mapping[str, Rule],
    default_notify: Sequence[str],
    min_levels: Mapping[str, str],
) -> Callable[[RuleMatch], Sequence[str]]:
    """Which notifiers an alert goes to: the rule's `notify`, else `default_notify`; only notifiers
    that exist and whose `min_level` the alert reaches. `info` alerts are stored, never sent."""

    def route(match: RuleMatch) -> Sequence[str]:
        if match.level == "info":
            return []
        rule = rules.get(match.rule_id)
        names = rule.notify if rule is not None and rule.notify is not None else default_notify
        rank = level_rank(match.level)
        return [n for n in names if n in min_levels and rank >= level_rank(min_levels[n])]

    return route
