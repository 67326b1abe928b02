"""Loading rule files: the valid fixtures, every mistake with its `line:col`, rule id and
did-you-mean, all mistakes in one pass, and hostile files that must fail fast."""

from __future__ import annotations

import os
import textwrap
import time
from pathlib import Path

import pytest
import yaml

import rules._files
import rules._yaml
from monitor.errors import MonitorError, RuleError
from rules import compile_rules, load_rules, reference_match
from rules.ast import Bool, Document, Fuzzy, Near, Node, Regex, Term, TestCase
from rules.testing import run_rule_tests

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "rules"
VALID = FIXTURES / "valid"


def write(folder: Path, text: str, name: str = "rules.yaml") -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return path


def errors(paths: list[Path], **kwargs: set[str]) -> list[str]:
    """Each problem as `line:col: [rule id] message` (the file is checked separately)."""
    with pytest.raises(RuleError) as caught:
        load_rules(paths, **kwargs)
    out = []
    for p in caught.value.problems:
        where = f"{p.location.line}:{p.location.column}" if p.location.line else "-"
        rule = f" [rule {p.rule_id}]" if p.rule_id else ""
        out.append(f"{where}:{rule} {p.message}")
    return out


def one_rule(tmp_path: Path, match: str) -> Node:
    path = write(tmp_path, f"rules:\n  - id: r\n    title: t\n    match: {match}\n")
    (rule,) = load_rules([path]).rules
    return rule.match


# --- the valid fixtures -------------------------------------------------------------------------


def test_loads_a_folder_recursively_sorted_skipping_hidden_and_other_files() -> None:
    ruleset = load_rules([VALID], notifiers={"analysts-slack"}, sources={"isw"})
    assert ruleset.files == (VALID / "analysts" / "more.yml", VALID / "mission.yaml")
    assert [r.id for r in ruleset.rules] == [
        "dprk-arms-query",
        "kn23-near",
        "kn23",
        "dprk-troops",
        "depot-strikes",
    ]
    assert dict(ruleset.lists) == {
        "kn23": ("KN-23", "KN-24", "Hwasong-11", "Hwasong 11"),
        "dprk": ("North Korea", "North Korean", "DPRK", "Pyongyang"),
        "troops": ("troops", "soldiers", "servicemen", "officers", "forces", "engineers"),
    }


def test_rule_fields() -> None:
    rules = {r.id: r for r in load_rules([VALID]).rules}
    kn23, troops, depots = rules["kn23"], rules["dprk-troops"], rules["depot-strikes"]
    assert (kn23.title, kn23.level, kn23.notify, kn23.sources) == (
        "North Korean KN-23 missiles in Russia's war",
        "high",
        ("analysts-slack",),
        None,
    )
    assert (kn23.file, kn23.line) == (str(VALID / "mission.yaml"), 7)
    assert kn23.tests.match == (
        TestCase(title="Russia fires North Korean KN-23 missiles at Kharkiv", line=14),
    )
    assert kn23.tests.no_match == (TestCase(title="KN95 masks shipped to Kharkiv", line=15),)
    assert troops.tests.match == (
        TestCase(
            title="Deployment report",
            summary="North Korean troops were seen near Kursk in Russia.",
            tags=("war",),
            line=27,
        ),
    )
    assert depots.level == "medium"  # the default
    assert depots.notify is None
    assert depots.sources == ("isw", "tag:news")


def test_the_design_example_compiles_to_the_expected_tree() -> None:
    rules = {r.id: r for r in load_rules([VALID]).rules}
    kn23 = Bool(
        any=(Term("KN-23"), Term("KN-24"), Term("Hwasong-11"), Term("Hwasong 11")), label="$kn23"
    )
    assert rules["kn23"].match == Bool(any=(kn23, Fuzzy("Hwasong-11", 90)))
    dprk = Bool(
        any=(Term("North Korea"), Term("North Korean"), Term("DPRK"), Term("Pyongyang")),
        label="$dprk",
    )
    troops = Bool(
        any=tuple(
            Term(t) for t in ("troops", "soldiers", "servicemen", "officers", "forces", "engineers")
        ),
        label="$troops",
    )
    places = Bool(any=tuple(Term(t) for t in ("Russia", "Russian", "Ukraine", "Kursk", "Donetsk")))
    assert rules["dprk-troops"].match == Bool(
        all=(Near((dprk, troops), 5), places), none=(Term("South Korean troops"),)
    )
    assert rules["kn23-near"].match == Near(
        (kn23, Bool(any=(Term("Russia"), Term("Russian")))), 4, fields=("title",)
    )
    depots = rules["depot-strikes"].match
    assert isinstance(depots, Bool) and depots.all is not None
    assert depots.all[1] == Bool(
        any=(Term("strike"), Term("struck"), Term("drone"), Term("explosion")),
        fields=("title", "summary"),
    )
    assert depots.none == (Regex(r"(?-i)\bOil\b"),)


def test_every_use_of_a_list_shares_one_node_across_files() -> None:
    rules = {r.id: r for r in load_rules([VALID]).rules}
    query_match = rules["dprk-arms-query"].match
    yaml_match = rules["dprk-troops"].match
    assert isinstance(query_match, Bool) and query_match.all is not None
    assert isinstance(yaml_match, Bool) and yaml_match.all is not None
    from_query = query_match.all[0]
    assert isinstance(from_query, Bool) and from_query.any is not None
    near = yaml_match.all[0]
    assert isinstance(near, Near)
    assert from_query.any[0] is near.operands[0]


def test_fixture_rules_pass_their_inline_tests_and_match_real_text() -> None:
    rules = load_rules([VALID]).rules
    report = run_rule_tests(rules)
    assert report.cases == 8 and report.failures == ()
    doc = Document(id="1", title="Drone strike on a munitions depot", source="isw")
    assert [m.rule_id for m in compile_rules(rules).match(doc)] == ["depot-strikes"]
    assert [m.rule_id for m in reference_match(rules, doc)] == ["depot-strikes"]


@pytest.mark.parametrize(
    ("yaml_condition", "query"),
    [
        ("{any: [a, b]}", "a OR b"),
        ("{all: [a, b], none: [c]}", "a AND b AND NOT c"),
        ("{all: [a, {any: [b, c]}]}", "a AND (b OR c)"),
        ("{near: [a, $l], within: 3}", "a NEAR/3 $l"),
        ("{near: [a, {fuzzy: b, score: 80}, c], within: 2}", "a NEAR/2 ~b:80 NEAR/2 c"),
        ("{fuzzy: Hwasong}", "~Hwasong"),
        ("{regex: 'kn-?23'}", "/kn-?23/"),
        ("'South Korea'", '"South Korea"'),
        ("$l", "$l"),
        ("{all: [{any: [$l, y]}], none: [x]}", "($l OR y) AND NOT x"),
    ],
)
def test_yaml_and_query_compile_to_the_same_tree(
    tmp_path: Path, yaml_condition: str, query: str
) -> None:
    quoted = '"' + query.replace('"', '\\"') + '"'
    path = write(
        tmp_path,
        f"""
        lists:
          l: [x1, x2]
        rules:
          - {{id: from-yaml, title: t, match: {yaml_condition}}}
          - {{id: from-query, title: t, query: {quoted}}}
          - {{id: query-node, title: t, match: {{query: {quoted}}}}}
        """,
    )
    a, b, c = load_rules([path]).rules
    assert a.match == b.match == c.match


def test_fields_on_any_condition(tmp_path: Path) -> None:
    assert one_rule(tmp_path, "{regex: 'kn-?23', fields: [link]}") == Bool(
        all=(Regex("kn-?23"),), fields=("link",)
    )
    assert one_rule(tmp_path, "{any: [a, b], fields: [title, tags]}") == Bool(
        any=(Term("a"), Term("b")), fields=("title", "tags")
    )
    assert one_rule(tmp_path, "{near: [a, b], within: 2, fields: [author]}") == Near(
        (Term("a"), Term("b")), 2, fields=("author",)
    )
    assert one_rule(tmp_path, "{fuzzy: abc, fields: [source]}") == Bool(
        all=(Fuzzy("abc"),), fields=("source",)
    )
    assert one_rule(tmp_path, "{query: 'a OR b', fields: [title]}") == Bool(
        any=(Term("a"), Term("b")), fields=("title",)
    )
    assert one_rule(tmp_path, "{query: 'a', fields: [title]}") == Bool(
        all=(Term("a"),), fields=("title",)
    )


def test_terms_are_stripped_and_list_duplicates_kept_once(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        lists:
          l: [" KN-23 ", KN-23, Hwasong]
        rules:
          - {id: r, title: "  Title  ", match: {any: ["  KN-24 ", $l]}}
        """,
    )
    ruleset = load_rules([path])
    assert ruleset.lists["l"] == ("KN-23", "Hwasong")
    (rule,) = ruleset.rules
    assert rule.title == "Title"
    assert rule.match == Bool(
        any=(Term("KN-24"), Bool(any=(Term("KN-23"), Term("Hwasong")), label="$l"))
    )


def test_empty_files_and_files_with_only_lists_load(tmp_path: Path) -> None:
    write(tmp_path, "", "empty.yaml")
    write(tmp_path, "# just a comment\n", "comment.yaml")
    write(tmp_path, "rules:\nlists:\n", "nulls.yaml")
    write(tmp_path, "lists:\n  x: [a]\n", "lists.yml")
    ruleset = load_rules([tmp_path])
    assert ruleset.rules == ()
    assert dict(ruleset.lists) == {"x": ("a",)}
    assert len(ruleset.files) == 4


def test_utf8_bom_and_non_ascii_terms(tmp_path: Path) -> None:
    path = tmp_path / "bom.yaml"
    path.write_bytes("\ufeffrules:\n  - {id: r, title: Торопец, match: Тихорецк}\n".encode("utf-8"))
    (rule,) = load_rules([path]).rules
    assert (rule.title, rule.match) == ("Торопец", Term("Тихорецк"))


# --- every mistake, located ---------------------------------------------------------------------


def test_the_error_fixture_reports_every_problem_at_once() -> None:
    with pytest.raises(RuleError) as caught:
        load_rules([FIXTURES / "errors"])
    file = str(FIXTURES / "errors" / "many.yaml")
    assert str(caught.value).splitlines() == [
        f"{file}:4:10: list '$empty' is empty",
        f"{file}:8:5: [rule typo-key] unknown key 'levl' (did you mean 'level'?)",
        f"{file}:12:12: [rule typo-list] unknown list '$dprkk' (did you mean '$dprk'?)",
        f"{file}:15:20: [rule bad-regex] invalid regex: missing ) at position 6",
        f"{file}:18:36: [rule bad-score] score must be from 0 to 100, got 101",
        f"{file}:21:44: [rule bad-near] within must be at least 1 word, got 0",
        f"{file}:22:9: [rule typo-key] duplicate rule id 'typo-key' (first defined at {file}:6:9)",
        f"{file}:27:12: [rule bad-query] query: unclosed '(': add the matching ')'",
    ]
    assert isinstance(caught.value, MonitorError)


RULE = "rules:\n  - id: r\n    title: t\n"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # rule keys
        (
            RULE + "    levl: high\n    match: a\n",
            "4:5: [rule r] unknown key 'levl' (did you mean 'level'?)",
        ),
        (
            RULE + "    match: a\n    notfy: [x]\n",
            "5:5: [rule r] unknown key 'notfy' (did you mean 'notify'?)",
        ),
        (
            RULE + "    level: hgh\n    match: a\n",
            "4:12: [rule r] rules.0.level: level must be one of info, low, medium, high, "
            "critical, got 'hgh' (did you mean 'high'?)",
        ),
        (
            RULE + "    level: 3\n    match: a\n",
            "4:12: [rule r] rules.0.level: level must be one of info, low, medium, high, "
            "critical, got '3'",
        ),
        (
            "rules:\n  - id: KN23\n    title: t\n    match: a\n",
            "2:9: [rule KN23] rules.0.id: rule id 'KN23' must be lower-case letters, digits, "
            "'-' and '_', starting with a letter or digit (like dprk-troops)",
        ),
        (
            "rules:\n  - id: 23\n    title: t\n    match: a\n",
            "2:9: rules.0.id: Input should be a valid string",
        ),
        (
            "rules:\n  - id: r\n    match: a\n",
            "2:5: [rule r] rules.0: missing required key 'title'",
        ),
        (
            "rules:\n  - id: r\n    title: ' '\n    match: a\n",
            "3:12: [rule r] rules.0.title: title is empty",
        ),
        (
            RULE,
            "2:5: [rule r] rule needs match: (a condition) or query: (a query string)",
        ),
        (
            RULE + "    match: a\n    query: b\n",
            "5:5: [rule r] give either match: or query:, not both",
        ),
        (
            RULE + "    query: 5\n",
            "4:12: [rule r] query: must be text, not the number 5",
        ),
        (
            "rules:\n  - just a string\n",
            "2:5: a rule is a mapping with id, title and match (or query), not the text 'just "
            "a string'",
        ),
        (
            "rules: {id: r}\n",
            "1:8: rules: Input should be a valid list",
        ),
        (
            "- id: r\n",
            "1:1: a rule file is a mapping with `lists:` and/or `rules:`, not a list",
        ),
        (
            "rulez: []\n",
            "1:1: unknown key 'rulez' (did you mean 'rules'?)",
        ),
        # conditions
        (
            RULE + "    match: {anny: [a]}\n",
            "4:13: [rule r] unknown key 'anny' in a condition (did you mean 'any'?)",
        ),
        (
            RULE + "    match: {any: [a], fuzy: b}\n",
            "4:23: [rule r] unknown key 'fuzy' in a condition (did you mean 'fuzzy'?)",
        ),
        (
            RULE + "    match: {fuzzy: a, any: [b]}\n",
            "4:12: [rule r] one condition cannot be both 'fuzzy' and 'any': list them under "
            "`all:` (both) or `any:` (either)",
        ),
        (
            RULE + "    match: {any: [a], within: 3}\n",
            "4:23: [rule r] 'within' goes with 'near'",
        ),
        (
            RULE + "    match: {regex: a, score: 3}\n",
            "4:23: [rule r] 'score' goes with 'fuzzy'",
        ),
        (
            RULE + "    match: {fields: [title]}\n",
            "4:12: [rule r] condition needs one of: any, all, none, near, fuzzy, regex, query",
        ),
        (
            RULE + "    match: {}\n",
            "4:12: [rule r] empty condition {}",
        ),
        (
            RULE + "    match:\n",
            "4:11: [rule r] empty condition",
        ),
        (
            RULE + "    match: [a, b]\n",
            "4:12: [rule r] a list is not one condition: write `any: [...]` (one of them) or "
            "`all: [...]` (every one)",
        ),
        (
            RULE + "    match: {any: [KN-23, 23]}\n",
            "4:26: [rule r] a term must be text, not the number 23: put it in quotes",
        ),
        (
            RULE + "    match: {any: [yes, b]}\n",
            "4:19: [rule r] a term must be text, not true/false (YAML reads yes, no, on, off, "
            "true, false as such): put it in quotes",
        ),
        (
            RULE + "    match: {any: [a, '']}\n",
            "4:22: [rule r] empty term",
        ),
        (
            RULE + "    match: {any: [a, '--']}\n",
            "4:22: [rule r] term '--' has no letters or digits",
        ),
        (
            RULE + "    match: {any: a}\n",
            "4:18: [rule r] any: must be a list, not the text 'a'",
        ),
        (
            RULE + "    match: {all: []}\n",
            "4:18: [rule r] all: is empty",
        ),
        (
            RULE + "    match: KN-23 OR Hwasong\n",
            "4:12: [rule r] term 'KN-23 OR Hwasong' contains a query operator; write it as a "
            "`query:` to combine terms, or write the word in lower case to match it as text",
        ),
        (
            RULE + "    match: $dprk\n",
            "4:12: [rule r] unknown list '$dprk' (no lists are defined)",
        ),
        (
            RULE + "    match: {fuzzy: a, score: 101}\n",
            "4:30: [rule r] score must be from 0 to 100, got 101",
        ),
        (
            RULE + "    match: {fuzzy: a, score: '80'}\n",
            "4:30: [rule r] score must be a whole number from 0 to 100, got '80'",
        ),
        (
            RULE + "    match: {fuzzy: a, score: 8.5}\n",
            "4:30: [rule r] score must be a whole number from 0 to 100, got '8.5'",
        ),
        (
            RULE + "    match: {fuzzy: 5}\n",
            "4:20: [rule r] fuzzy: must be text, not the number 5",
        ),
        (
            RULE + "    match: {regex: '(x'}\n",
            "4:20: [rule r] invalid regex: missing ) at position 2",
        ),
        (
            RULE + "    match: {regex: 'a|'}\n",
            "4:20: [rule r] regex matches empty text, so it would match every item",
        ),
        (
            RULE + "    match: {regex: '(\\w+\\s?)+$'}\n",
            "4:20: [rule r] regex repeats a group that itself repeats without bound (like "
            "`(a+)+`), which can take exponential time on some text; bound the outer repeat "
            "(`{1,5}`), or make it possessive (`)++`) or atomic (`(?>...)`)",
        ),
        (
            RULE + f"    match: {{regex: '{'x' * 2001}'}}\n",
            "4:20: [rule r] regex is too long (2001 characters, at most 2000)",
        ),
        (
            RULE + "    match: {near: [a, b]}\n",
            "4:12: [rule r] near: needs `within: N` (how many words apart, at most)",
        ),
        (
            RULE + "    match: {near: [a], within: 2}\n",
            "4:19: [rule r] near: needs a list of at least two terms",
        ),
        (
            RULE + "    match: {near: [a, b], within: 0}\n",
            "4:35: [rule r] within must be at least 1 word, got 0",
        ),
        (
            RULE + "    match: {near: [a, b], within: '5'}\n",
            "4:35: [rule r] within must be a whole number of words (1 or more), got '5'",
        ),
        (
            RULE + "    match: {near: [a, {all: [b, c]}], within: 3}\n",
            "4:23: [rule r] near: operands are terms, $lists, {fuzzy: ...}, {regex: ...} or "
            "{any: [...]} of these",
        ),
        (
            RULE + "    match: {near: [a, {any: [b], fields: [title]}], within: 3}\n",
            "4:23: [rule r] near: operands are terms, $lists, {fuzzy: ...}, {regex: ...} or "
            "{any: [...]} of these",
        ),
        (
            RULE + "    match: {any: [a], fields: [titel]}\n",
            "4:32: [rule r] unknown field 'titel' (did you mean 'title'?)",
        ),
        (
            RULE + "    match: {any: [a], fields: [xyz]}\n",
            "4:32: [rule r] unknown field 'xyz' (fields: title, summary, content, author, "
            "tags, link, source)",
        ),
        (
            RULE + "    match: {any: [a], fields: [title, title]}\n",
            "4:39: [rule r] field 'title' is listed twice",
        ),
        (
            RULE + "    match: {any: [a], fields: title}\n",
            "4:31: [rule r] fields: must be a list such as [title, summary], not the text 'title'",
        ),
        (
            RULE + "    match: {none: [a]}\n",
            "4:12: [rule r] the rule only excludes (none: / NOT), so it would match almost "
            "every item; say what an item must contain",
        ),
        (
            RULE + "    query: NOT a\n",
            "4:12: [rule r] the rule only excludes (none: / NOT), so it would match almost "
            "every item; say what an item must contain",
        ),
        # queries: the column inside the query is added to the value's column
        (
            RULE + "    query: a AND (b\n",
            "4:18: [rule r] query: unclosed '(': add the matching ')'",
        ),
        (
            RULE + "    query: 'a AND OR b'\n",
            "4:19: [rule r] query: expected a term after AND, found 'OR'",
        ),
        (
            RULE + '    query: "x and y"\n',
            "4:15: [rule r] query: operators are written in upper case: AND; to search for the "
            'word itself, quote it: "and"',
        ),
        (
            RULE + "    match: {all: [x, {query: 'a NEAR/0 b'}]}\n",
            "4:33: [rule r] query: NEAR distance: within must be at least 1 word, got 0",
        ),
        (
            RULE + "    query: |\n      a AND\n",
            "4:12: [rule r] query: expected a term after AND, found end of query (column 7 of "
            "the query)",
        ),
        (
            RULE + "    query: 'it''s AND'\n",
            "4:12: [rule r] query: expected a term after AND, found end of query (column 9 of "
            "the query)",
        ),
        (
            RULE + "    query: a $dprkk\n",
            "4:14: [rule r] query: unknown list '$dprkk' (no lists are defined)",
        ),
        # lists
        (
            "lists:\n  l: []\n",
            "2:6: list '$l' is empty",
        ),
        (
            "lists:\n  l: a\n",
            "2:6: list '$l' must be a list of terms, not the text 'a'",
        ),
        (
            "lists:\n  l: [a, 1.5]\n",
            "2:10: a term must be text, not the number 1.5: put it in quotes",
        ),
        (
            "lists:\n  l: [a, $m]\n  m: [b]\n",
            "2:10: a list holds terms, not other lists ('$m')",
        ),
        (
            "lists:\n  l: [a, 'b OR c']\n",
            "2:10: term 'b OR c' contains a query operator; write it as a `query:` to combine "
            "terms, or write the word in lower case to match it as text",
        ),
        (
            "lists:\n  bad name: [a]\n",
            "2:3: list name 'bad name' must be letters, digits, '-' and '_'",
        ),
        (
            "lists:\n  1: [a]\n",
            "2:3: list name '1' must be letters, digits, '-' and '_'",
        ),
        (
            "lists: [a]\n",
            "1:8: lists: Input should be a valid dictionary",
        ),
        (
            "lists:\n  kn23: [a]\nrules:\n  - {id: r, title: t, match: $KN23}\n",
            "4:30: [rule r] unknown list '$KN23' (did you mean '$kn23'?)",
        ),
        # inline tests
        (
            RULE + "    match: a\n    tests: [x]\n",
            "5:12: [rule r] rules.0.tests: tests: is a mapping of `match:` and/or `no_match:` "
            "lists of examples",
        ),
        (
            RULE + "    match: a\n    tests:\n      match: [5]\n",
            "6:15: [rule r] a test case is a text (used as the title) or a mapping of title, "
            "summary, content, source, tags with some text",
        ),
        (
            RULE + "    match: a\n    tests:\n      match: ['  ']\n",
            "6:15: [rule r] a test case is a text (used as the title) or a mapping of title, "
            "summary, content, source, tags with some text",
        ),
        (
            RULE + "    match: a\n    tests:\n      match: [{tags: [x]}]\n",
            "6:15: [rule r] a test case is a text (used as the title) or a mapping of title, "
            "summary, content, source, tags with some text",
        ),
        (
            RULE + "    match: a\n    tests:\n      match: [{titel: x}]\n",
            "6:16: [rule r] unknown key 'titel' (did you mean 'title'?)",
        ),
        (
            RULE + "    match: a\n    tests:\n      no-match: [x]\n",
            "6:7: [rule r] unknown key 'no-match' (did you mean 'no_match'?)",
        ),
    ],
)
def test_each_mistake_is_located_with_a_teaching_message(
    tmp_path: Path, text: str, expected: str
) -> None:
    assert errors([write(tmp_path, text)]) == [expected]


def test_a_list_with_a_bad_term_is_reported_once(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        lists:
          l: [a, 5]
        rules:
          - {id: r, title: t, match: $l}
          - {id: s, title: t, query: $l AND b}
        """,
    )
    assert errors([path]) == ["2:10: a term must be text, not the number 5: put it in quotes"]


def test_a_broken_rule_does_not_hide_the_next(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        rules:
          - {id: a, title: t, match: {anny: [x]}}
          - {id: b, title: t, match: {regex: '('}}
          - {id: c, title: t, match: ok}
          - {id: d, title: t, match: {all: [$nope, {fuzzy: x, score: -1}]}}
        """,
    )
    assert errors([path]) == [
        "2:31: [rule a] unknown key 'anny' in a condition (did you mean 'any'?)",
        "3:38: [rule b] invalid regex: missing ) at position 1",
        "5:37: [rule d] unknown list '$nope' (no lists are defined)",
        "5:62: [rule d] score must be from 0 to 100, got -1",
    ]


def test_notifiers_are_checked_when_given(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        rules:
          - {id: r, title: t, match: a, notify: [analysts-slak, console, console]}
        """,
    )
    configured = {"analysts-slack", "console"}
    assert errors([path], notifiers=configured) == [
        "2:42: [rule r] unknown notifier 'analysts-slak' (did you mean 'analysts-slack'?)",
        "2:66: [rule r] notifier 'console' is listed twice",
    ]
    assert errors([path], notifiers=set()) == [
        "2:42: [rule r] unknown notifier 'analysts-slak' (no notifiers are configured)",
        "2:57: [rule r] unknown notifier 'console' (no notifiers are configured)",
        "2:66: [rule r] notifier 'console' is listed twice",
    ]
    assert errors([path], notifiers={"email", "console"}) == [
        "2:42: [rule r] unknown notifier 'analysts-slak' (configured: console, email)",
        "2:66: [rule r] notifier 'console' is listed twice",
    ]
    assert errors([path]) == ["2:66: [rule r] notifier 'console' is listed twice"]


def test_an_empty_notify_list_means_no_notifications(tmp_path: Path) -> None:
    path = write(tmp_path, "rules:\n  - {id: r, title: t, match: a, notify: []}\n")
    (rule,) = load_rules([path], notifiers={"console"}).rules
    assert rule.notify == ()


def test_sources_are_checked_when_given(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        rules:
          - {id: r, title: t, match: a, sources: [isww, "tag:news", "tag:", isw]}
          - {id: s, title: t, match: a, sources: []}
        """,
    )
    assert errors([path], sources={"isw", "reuters"}) == [
        "2:43: [rule r] unknown source 'isww' (did you mean 'isw'?)",
        "2:61: [rule r] tag: needs a tag name, like tag:think-tank",
        "3:42: [rule s] sources: is empty; leave it out to apply the rule to every source",
    ]
    good = write(tmp_path, "rules:\n  - {id: r, title: t, match: a, sources: [isw, 'tag:x']}\n")
    (rule,) = load_rules([good], sources={"isw"}).rules
    assert rule.sources == ("isw", "tag:x")
    assert load_rules([good]).rules == (rule,)


def test_duplicates_across_files_name_the_first_definition(tmp_path: Path) -> None:
    first = write(tmp_path, "lists:\n  l: [a]\nrules:\n  - {id: r, title: t, match: a}\n", "a.yaml")
    second = write(
        tmp_path, "lists:\n  l: [b]\nrules:\n  - {id: r, title: t, match: b}\n", "b.yaml"
    )
    with pytest.raises(RuleError) as caught:
        load_rules([tmp_path])
    assert [str(p) for p in caught.value.problems] == [
        f"{second}:2:3: list '$l' is already defined at {first}:2:3",
        f"{second}:4:10: [rule r] duplicate rule id 'r' (first defined at {first}:4:10)",
    ]


def test_query_errors_keep_columns_in_flow_mappings(tmp_path: Path) -> None:
    path = write(tmp_path, "rules:\n  - {id: r, title: t, query: 'KN-23 OR OR x'}\n")
    assert errors([path]) == ["2:40: [rule r] query: expected a term after OR, found 'OR'"]


# --- files and folders ----------------------------------------------------------------------------


def test_missing_paths_and_empty_folders(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(RuleError) as caught:
        load_rules([tmp_path / "nope.yaml", tmp_path / "empty"])
    assert [str(p) for p in caught.value.problems] == [
        f"{tmp_path / 'nope.yaml'}: no such file or folder",
        f"{tmp_path / 'empty'}: folder holds no rule files (*.yaml, *.yml)",
    ]


def test_a_file_named_twice_loads_once_and_any_name_is_accepted(tmp_path: Path) -> None:
    path = write(tmp_path, "rules:\n  - {id: r, title: t, match: a}\n", "rules.txt")
    ruleset = load_rules([path, path, tmp_path / "." / "rules.txt"])
    assert ruleset.files == (path,)
    assert len(ruleset.rules) == 1
    assert load_rules([]).rules == ()


def test_symlink_loops_do_not_hang(tmp_path: Path) -> None:
    write(tmp_path, "rules:\n  - {id: r, title: t, match: a}\n", "sub/rules.yaml")
    os.symlink(tmp_path, tmp_path / "sub" / "loop")
    assert [r.id for r in load_rules([tmp_path]).rules] == ["r"]


def test_broken_yaml_names_file_line_and_column(tmp_path: Path) -> None:
    path = write(tmp_path, "rules:\n  - id: r\n    title: [unclosed\n    match: a\n")
    with pytest.raises(RuleError) as caught:
        load_rules([path])
    (problem,) = caught.value.problems
    assert str(problem).startswith(f"{path}:4:")
    assert "invalid YAML" in problem.message
    dup = write(tmp_path, "rules:\n  - id: r\n    title: t\n    title: u\n", "dup.yaml")
    assert errors([dup]) == ["4:5: duplicate key 'title'"]
    tab = write(tmp_path, "rules:\n\t- id: r\n", "tab.yaml")
    assert errors([tab])[0].startswith("2:1: invalid YAML")


def test_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "latin1.yaml"
    path.write_bytes("rules:\n  - {id: r, title: Kyiv\xe9, match: a}\n".encode("latin-1"))
    assert errors([path]) == ["2:24: not UTF-8 text: save the file as UTF-8"]


def test_unreadable_broken_files_do_not_stop_the_others_being_checked(tmp_path: Path) -> None:
    write(tmp_path, "rules: [\n", "a.yaml")
    write(tmp_path, "rules:\n  - {id: r, title: t, match: {anny: [x]}}\n", "b.yaml")
    found = errors([tmp_path])
    assert len(found) == 2
    assert "invalid YAML" in found[0]
    assert found[1] == "2:31: [rule r] unknown key 'anny' in a condition (did you mean 'any'?)"


# --- hostile input --------------------------------------------------------------------------------


def _fast(seconds: float = 5.0) -> float:
    """A loose deadline: these inputs take milliseconds when handled and forever when not."""
    return time.perf_counter() + seconds


def test_billion_laughs_fails_fast(tmp_path: Path) -> None:
    lines = ['lists:\n  a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]\n']
    for prev, name in zip("abcdefgh", "bcdefghi", strict=True):
        lines.append(f"  {name}: &{name} [{', '.join([f'*{prev}'] * 9)}]\n")
    path = write(tmp_path, "".join(lines))
    deadline = _fast()
    found = errors([path])
    assert time.perf_counter() < deadline
    assert found == [
        "7:22: YAML aliases expand to more than 250,000 values; use $lists instead of "
        "repeating YAML anchors"
    ]


def test_small_aliases_are_fine(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        rules:
          - {id: a, title: t, match: &m {any: [x, y]}}
          - {id: b, title: t, match: *m}
        """,
    )
    a, b = load_rules([path]).rules
    assert a.match == b.match == Bool(any=(Term("x"), Term("y")))


def test_recursive_alias(tmp_path: Path) -> None:
    path = write(tmp_path, "rules: &r [*r]\n")
    assert errors([path]) == ["1:12: alias *r refers to its own container"]


@pytest.mark.parametrize(
    "text",
    [
        "rules: " + "[" * 5000 + "]" * 5000 + "\n",
        "rules:\n" + "".join("  " * i + "- \n" for i in range(1, 400)),
    ],
)
def test_deep_nesting_fails_fast(tmp_path: Path, text: str) -> None:
    path = write(tmp_path, text)
    deadline = _fast()
    (found,) = errors([path])
    assert time.perf_counter() < deadline
    assert "YAML nested more than 200 levels deep" in found


def test_without_libyaml_the_same_limits_hold(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(rules._files, "_FAST_SCAN", False)
    monkeypatch.setattr(rules._files, "_SCAN_LOADER", yaml.SafeLoader)
    monkeypatch.setattr(rules._yaml, "_LOADER", yaml.SafeLoader)
    bomb = ["lists:\n  a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n"]
    for prev, name in zip("abcdefgh", "bcdefghi", strict=True):
        bomb.append(f"  {name}: &{name} [{', '.join([f'*{prev}'] * 9)}]\n")
    deadline = _fast()
    assert errors([write(tmp_path, "".join(bomb), "bomb.yaml")]) == [
        "7:22: YAML aliases expand to more than 250,000 values; use $lists instead of "
        "repeating YAML anchors"
    ]
    deep = write(tmp_path, "rules: " + "[" * 5000 + "]" * 5000 + "\n", "deep.yaml")
    assert errors([deep]) == ["-: YAML is nested too deeply (more than 200 levels)"]
    assert time.perf_counter() < deadline
    assert load_rules([VALID]).rules


def test_deep_conditions_stop_at_64_levels(tmp_path: Path) -> None:
    deep = "{any: [" * 70 + "a" + "]}" * 70
    found = errors([write(tmp_path, RULE + f"    match: {deep}\n")])
    assert found == ["4:467: [rule r] conditions are nested too deeply (more than 64 levels)"]
    ok = "{any: [" * 60 + "a" + "]}" * 60
    assert load_rules([write(tmp_path, RULE + f"    match: {ok}\n", "ok.yaml")]).rules


def test_one_megabyte_strings(tmp_path: Path) -> None:
    big = "a" * 1_000_000
    path = write(tmp_path, RULE + f"    match: {{any: ['{big}', {{fuzzy: '{big}'}}]}}\n")
    deadline = _fast()
    found = errors([path])
    assert time.perf_counter() < deadline
    assert found == [
        "4:19: [rule r] term is too long (1000000 characters, at most 500)",
        "4:1000031: [rule r] term is too long (1000000 characters, at most 500)",
    ]
    assert all(len(line) < 200 for line in found)
    # YAML allows only explicit (`? key`) keys that long.
    key = write(tmp_path, RULE + f"    match:\n      ? {big}\n      : x\n", "key.yaml")
    (message,) = errors([key])
    assert message.startswith("5:9: [rule r] unknown key 'aaaa") and len(message) < 200


def test_files_over_five_mebibytes_are_refused_before_parsing(tmp_path: Path) -> None:
    path = tmp_path / "huge.yaml"
    path.write_bytes(b"# " + b"x" * (5 * 1024 * 1024))
    assert errors([path]) == ["-: file is too large (5,242,882 bytes, at most 5,242,880)"]


def test_ten_thousand_term_lists_load_fast(tmp_path: Path) -> None:
    terms = "".join(f"    - term {i}\n" for i in range(10_000))
    path = write(tmp_path, f"lists:\n  big:\n{terms}rules:\n  - {{id: r, title: t, match: $big}}\n")
    started = time.perf_counter()
    ruleset = load_rules([path])
    assert time.perf_counter() - started < 5  # about 0.4 s with the pure-Python YAML parser
    assert len(ruleset.lists["big"]) == 10_000
    (rule,) = ruleset.rules
    doc = Document(id="1", title="this mentions term 9999 only")
    assert [m.rule_id for m in compile_rules(ruleset.rules).match(doc)] == ["r"]
    assert isinstance(rule.match, Bool) and rule.match.any is not None
    assert len(rule.match.any) == 10_000


def test_thousands_of_problems_are_capped(tmp_path: Path) -> None:
    terms = "".join(f"    - {i}\n" for i in range(10_000))
    path = write(tmp_path, f"lists:\n  big:\n{terms}")
    found = errors([path])
    assert len(found) == 201
    assert found[0] == "3:7: a term must be text, not the number 0: put it in quotes"
    assert found[-1] == "203:7: ... and 9800 more problems not shown"
