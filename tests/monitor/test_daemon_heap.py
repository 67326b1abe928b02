"""settle_heap: what start-up left alive leaves the collector's sight; young objects wait longer."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator
from pathlib import Path

import pytest

from monitor.daemon import GC_YOUNG_THRESHOLD, settle_heap
from monitor.rulebook import Rulebook


@pytest.fixture
def restored_gc() -> Iterator[None]:
    # The collector is process-wide: leave it as the other tests expect it.
    threshold = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*threshold)


@pytest.mark.usefixtures("restored_gc")
def test_settle_heap_freezes_what_is_alive_and_spaces_young_collections() -> None:
    kept: list[object] = [[n] for n in range(1000)]
    garbage = _Node()
    garbage.next = garbage  # a cycle only the collector can free: collected, not frozen
    gone = weakref.ref(garbage)
    del garbage
    _, older, oldest = gc.get_threshold()
    settle_heap()
    assert gc.get_freeze_count() >= len(kept)
    assert gc.get_threshold() == (GC_YOUNG_THRESHOLD, older, oldest)
    assert gone() is None


class _Node:
    next: object = None


@pytest.mark.usefixtures("restored_gc")
def test_a_rules_reload_hands_the_frozen_heap_back_to_the_collector(tmp_path: Path) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULE.format(term="depot"), encoding="utf-8")
    book = Rulebook([rules], notifiers=[])
    settle_heap()
    assert gc.get_freeze_count() > 0
    # What start-up loaded, the first rules among it, is garbage once a reload replaces it.
    rules.write_text(RULE.format(term="arsenal"), encoding="utf-8")
    assert book.reload_if_changed(force=True)
    assert gc.get_freeze_count() == 0


RULE = """\
rules:
  - id: r
    title: R
    level: high
    match: {{any: [{term}]}}
"""
