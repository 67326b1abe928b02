"""Explanations: why a rule did or did not match, per node, as text and as JSON."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from rules.ast import Bool, Document, Fuzzy, Near, Regex, Rule, Term
from rules.explain import Explanation, format_explanation, node_syntax, to_json
from rules.matcher import compile_rules

DPRK = Bool(any=(Term("North Korea"), Term("North Korean"), Term("Pyongyang")), label="$dprk")
TROOPS = Bool(any=(Term("troops"), Term("soldiers")), label="$troops")
RULE = Rule(
    "dprk-troops",
    "North Korean troops",
    "high",
    Bool(
        all=(Near((DPRK, TROOPS), 5), Bool(any=(Term("Kursk"), Fuzzy("Tikhoretsk", 90)))),
        none=(Term("South Korean troops"),),
    ),
)
KN23 = Rule("kn23", "KN-23", "medium", Bool(any=(Term("KN-23"), Regex(r"hwasong-?11"))))


def _explain(doc: Document, rule: Rule = RULE) -> Explanation:
    return compile_rules([rule, KN23]).explain(doc, rule.id)


def test_a_match_is_explained_node_by_node_with_what_each_matched() -> None:
    doc = Document("1", title="Pyongyang's soldiers fight in Kursk")
    text = format_explanation(_explain(doc))
    assert text.splitlines() == [
        "✓ rule dprk-troops  (level high)",
        "  ✓ bool:",
        "    ✓ all:",
        "      ✓ near (within 5):",
        "        ✓ $dprk (any):",
        "          ✗ North Korea",
        "          ✗ North Korean",
        '          ✓ Pyongyang  title[0:9] "Pyongyang"',
        "        ✓ $troops (any):",
        "          ✗ troops",
        '          ✓ soldiers  title[12:20] "soldiers"',
        "      ✓ any:",
        '        ✓ Kursk  title[30:35] "Kursk"',
        "        ✗ {fuzzy: Tikhoretsk, score: 90}",
        "    ✓ none:",
        "      ✗ South Korean troops",
    ]


def test_a_miss_shows_the_condition_that_failed() -> None:
    doc = Document("2", title="South Korean troops near Kursk, North Korean troops too")
    expl = _explain(doc)
    assert not expl.held
    assert expl.spans == ()
    text = format_explanation(expl)
    assert "✗ none:" in text
    assert '✓ South Korean troops  title[0:19] "South Korean troops"' in text


def test_a_rule_for_other_sources_says_so() -> None:
    rule = Rule("isw", "t", "low", Term("Kursk"), sources=("isw",))
    expl = _explain(Document("3", title="Kursk", source="bbc"), rule)
    assert not expl.held
    assert "does not apply to source 'bbc'" in expl.note
    assert expl.children[0].held  # the condition itself held


def test_json_is_serialisable_and_mirrors_the_tree() -> None:
    doc = Document("4", title="KN-23 and Hwasong11")
    data = to_json(_explain(doc, KN23))
    assert json.loads(json.dumps(data)) == data
    assert data["held"] is True
    assert data["spans"] == [
        {"field": "title", "start": 0, "end": 5, "text": "KN-23"},
        {"field": "title", "start": 10, "end": 19, "text": "Hwasong11"},
    ]
    children = data["children"]
    assert isinstance(children, list)
    assert children[0]["node"] == "bool:"


def test_nodes_are_written_back_in_rule_syntax() -> None:
    assert node_syntax(Term("KN-23")) == "KN-23"
    assert node_syntax(Term("Workers' Party")) == '"Workers\' Party"'
    assert node_syntax(Term("yes")) == '"yes"'
    assert node_syntax(Fuzzy("Hwasong-11", 85)) == "{fuzzy: Hwasong-11, score: 85}"
    assert node_syntax(Regex(r"kn-?\d+")) == r"{regex: kn-?\d+}"
    assert node_syntax(Regex(r"a{2,}|b")) == '{regex: "a{2,}|b"}'
    assert node_syntax(Near((Term("a"),), 3)) == "near (within 3):"
    assert node_syntax(Bool(any=(Term("a"),), label="$dprk")) == "$dprk:"


WORDS = st.sampled_from(["North Korean", "troops", "Kursk", "Tihoretsk", "South Korean", "x"])


@settings(max_examples=100, deadline=None)
@given(title=st.lists(WORDS, max_size=8).map(" ".join), source=st.sampled_from(["a", "isw"]))
def test_the_explanation_agrees_with_the_match(title: str, source: str) -> None:
    rules = [RULE, KN23, Rule("isw", "t", "low", Term("Kursk"), sources=("isw",))]
    doc = Document("d", title=title, source=source)
    matcher = compile_rules(rules)
    matched = {m.rule_id: m.spans for m in matcher.match(doc)}
    for rule in rules:
        expl = matcher.explain(doc, rule.id)
        assert expl.held == (rule.id in matched)
        assert expl.spans == matched.get(rule.id, ())
