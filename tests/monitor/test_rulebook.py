"""Hot reload: added, edited and deleted rule files (and lists they share) take effect; a broken
edit keeps the last good rules and says where the error is; routing follows `notify` and
`min_level`."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from monitor.errors import RuleError
from monitor.rulebook import Rulebook, make_router
from rules.ast import Document, RuleMatch

LISTS = "lists:\n  dprk: [North Korea, North Korean, DPRK]\n"
RULE_A = """\
rules:
  - id: troops
    title: Troops
    level: high
    match: {all: [$dprk, troops]}
"""
RULE_B = """\
rules:
  - id: kn23
    title: KN-23
    level: medium
    notify: [slack]
    match: {all: [$dprk, KN-23]}
"""


def touch(path: Path, text: str) -> None:
    path.write_text(text, encoding="utf-8")
    # Make the change visible even when two writes fall in the same mtime tick.
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))


def ids(book: Rulebook, title: str) -> list[str]:
    return [m.rule_id for m in book.current.matcher.match(Document(id="x", title=title))]


def test_added_edited_and_deleted_files_take_effect(tmp_path: Path) -> None:
    touch(tmp_path / "lists.yaml", LISTS)
    touch(tmp_path / "a.yaml", RULE_A)
    book = Rulebook([tmp_path])
    assert ids(book, "North Korean troops seen") == ["troops"]
    assert book.reload_if_changed() is False  # nothing changed: nothing reloaded

    touch(tmp_path / "b.yml", RULE_B)  # added, using a list from another file
    assert book.reload_if_changed() is True
    assert ids(book, "DPRK KN-23 and troops") == ["troops", "kn23"]

    touch(tmp_path / "lists.yaml", LISTS.replace("DPRK]", "DPRK, Pyongyang]"))  # shared list edited
    assert book.reload_if_changed() is True
    assert ids(book, "Pyongyang sends troops") == ["troops"]

    (tmp_path / "a.yaml").unlink()
    assert book.reload_if_changed() is True
    assert ids(book, "North Korean troops seen") == []


def test_a_broken_edit_keeps_the_last_good_rules(tmp_path: Path) -> None:
    touch(tmp_path / "lists.yaml", LISTS)
    touch(tmp_path / "a.yaml", RULE_A)
    book = Rulebook([tmp_path])
    touch(tmp_path / "a.yaml", RULE_A.replace("match:", "mtach:"))
    assert book.reload_if_changed() is False
    assert ids(book, "North Korean troops seen") == ["troops"]  # still running
    assert any(f"{tmp_path / 'a.yaml'}:" in p and "mtach" in p for p in book.problems)
    touch(tmp_path / "a.yaml", RULE_A.replace("troops]", "soldiers]"))
    assert book.reload_if_changed() is True
    assert book.problems == ()
    assert ids(book, "North Korean soldiers seen") == ["troops"]


def test_sighup_forces_a_reload_even_without_a_visible_change(tmp_path: Path) -> None:
    touch(tmp_path / "a.yaml", LISTS + RULE_A)
    book = Rulebook([tmp_path])
    assert book.reload_if_changed(force=True) is True


def test_bad_rules_at_start_are_fatal(tmp_path: Path) -> None:
    touch(tmp_path / "a.yaml", RULE_A)  # $dprk is defined nowhere
    with pytest.raises(RuleError, match="dprk"):
        Rulebook([tmp_path])


def test_routing_follows_notify_default_and_min_level(tmp_path: Path) -> None:
    touch(tmp_path / "a.yaml", LISTS + RULE_A + RULE_B.replace("rules:\n", ""))
    book = Rulebook([tmp_path])
    route = make_router(
        book.current.by_id, ["console", "mail"], {"console": "low", "mail": "high", "slack": "low"}
    )
    assert route(RuleMatch("troops", "high", ())) == ["console", "mail"]
    assert route(RuleMatch("kn23", "medium", ())) == ["slack"]  # the rule's own notify
    assert route(RuleMatch("troops", "medium", ())) == ["console"]  # below mail's min_level
    assert route(RuleMatch("troops", "info", ())) == []  # info is stored, never sent
    gone = make_router(book.current.by_id, ["console", "pager"], {"console": "low"})
    assert gone(RuleMatch("troops", "high", ())) == ["console"]  # unknown notifiers skipped
