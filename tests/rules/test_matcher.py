"""The compiled matcher on the semantics users rely on (DESIGN §4), with the bad input it will
meet."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from monitor.errors import RuleError
from monitor.model import Span
from rules.ast import Bool, Document, Fuzzy, Near, Node, Regex, Rule, RuleMatch, Term
from rules.matcher import compile_rules
from rules.reference import reference_match

CORPUS = Path(__file__).resolve().parents[3] / "shared" / "corpus" / "news" / "dev.jsonl"


def rule(match: Node, rule_id: str = "r", **kw: object) -> Rule:
    return Rule(rule_id, "title", "high", match, **kw)  # type: ignore[arg-type]


def spans(match: Node, title: str = "", **fields: str) -> list[str] | None:
    """The matched texts of a one-rule match on a document, or None when it does not match."""
    doc = Document("d", title=title, **fields)  # type: ignore[arg-type]
    found = compile_rules([rule(match)]).match(doc)
    assert found == reference_match([rule(match)], doc)
    return [s.text for s in found[0].spans] if found else None


@pytest.mark.parametrize(
    "text", ["Russia fires KN-23 at Kharkiv", "KN23 launched", "a KN 23", "kn\u201123", "(KN-23)"]
)
def test_hyphen_space_and_nothing_are_interchangeable(text: str) -> None:
    assert spans(Term("KN-23"), text) is not None


@pytest.mark.parametrize("text", ["KN-235 rocket", "KN95 masks", "AKN-23", "KN-2 3x"])
def test_terms_match_whole_words_only(text: str) -> None:
    assert spans(Term("KN-23"), text) is None


def test_a_term_without_separator_does_not_match_a_split_text() -> None:
    assert spans(Term("KN23"), "KN 23") is None
    assert spans(Term("Korea"), "Ko rea") is None


def test_plurals_are_the_rule_authors_job_and_possessives_match() -> None:
    assert spans(Term("Korea"), "Koreans rally") is None
    assert spans(Term("Pyongyang"), "Pyongyang’s missiles") == ["Pyongyang"]
    assert spans(Term("North Korean"), "north-korean troops, NorthKorean") == [
        "north-korean",
        "NorthKorean",
    ]


def test_case_accents_and_scripts() -> None:
    assert spans(Term("tikhoretsk"), "Strike on TIKHORÉTSK depot") == ["TIKHORÉTSK"]
    assert spans(Term("КН-23"), "Ракета КН 23 и КНДР") == ["КН 23"]
    assert spans(Term("КНДР"), "Ракета КН 23 и КНДР") == ["КНДР"]
    assert spans(Term("КНДР"), "KNDR") is None


def test_spans_are_offsets_into_the_original_text() -> None:
    doc = Document("d", title="Große Straße: e\u0301cole KN\u201123")
    rules = [rule(Bool(any=(Term("strasse"), Term("ecole"), Term("kn23"), Term("KN 23"))))]
    (found,) = compile_rules(rules).match(doc)
    assert [(s.start, s.end, s.text) for s in found.spans] == [
        (6, 12, "Straße"),
        (14, 20, "e\u0301cole"),
        (21, 26, "KN\u201123"),
    ]
    assert all(doc.title[s.start : s.end] == s.text for s in found.spans)


def test_fuzzy_terms_catch_spelling_drift_but_not_other_words() -> None:
    assert spans(Fuzzy("Tikhoretsk", 90), "Drones hit Tihoretsk") == ["Tihoretsk"]
    assert spans(Fuzzy("Hwasong-11", 90), "a Hwasong 11 missile") == ["Hwasong 11"]
    # ratio("hwasong 11", "hwasong 15") is exactly 90: why the shipped pack has no fuzzy Hwasong.
    assert spans(Fuzzy("Hwasong-11", 90), "the Hwasong-15 ICBM") == ["Hwasong-15"]
    assert spans(Fuzzy("Hwasong-11", 91), "the Hwasong-15 ICBM") is None
    assert spans(Fuzzy("Kursk", 90), "Kurs, K u r s k") is None
    assert spans(Fuzzy("Kursk", 90), "Kursks") == ["Kursks"]  # 100 * (1 - 1 / 11) = 90.9
    assert spans(Fuzzy("Tikhoretsk", 100), "Drones hit Tihoretsk") is None
    assert spans(Fuzzy("Tikhoretsk", 80), "") is None


def test_regex_is_case_insensitive_unless_it_says_otherwise_and_spans_are_exact() -> None:
    assert spans(Regex(r"kn-?\d+"), "Russia's KN-23, kn24") == ["KN-23", "kn24"]
    assert spans(Regex(r"(?-i)KN-\d+"), "kn-23 and KN-24") == ["KN-24"]
    assert spans(Regex(r"x*"), "abc") == []  # holds with an empty match: no span to show


def test_a_pathological_regex_cannot_hang_matching() -> None:
    rules = [rule(Regex(r"(a|aa)+$"), "evil"), rule(Term("kharkiv"), "good")]
    doc = Document("d", title="a" * 20_000 + "b Kharkiv")
    matcher = compile_rules(rules)
    started = time.monotonic()
    found = matcher.match(doc)
    assert time.monotonic() - started < 5  # each regex search has a 50 ms budget per field
    assert [m.rule_id for m in found] == ["good"]
    expl = matcher.explain(doc, "evil")
    assert not expl.held
    assert "ran out of time" in expl.children[0].note


def test_any_all_none() -> None:
    node = Bool(
        all=(Bool(any=(Term("troops"), Term("soldiers"))), Term("Kursk")),
        none=(Term("South Korean"),),
    )
    assert spans(node, "North Korean soldiers in Kursk") == ["soldiers", "Kursk"]
    assert spans(node, "South Korean soldiers in Kursk") is None
    assert spans(node, "North Korean soldiers") is None


def test_spans_come_only_from_the_conditions_that_made_the_rule_hold() -> None:
    node = Bool(any=(Term("Kursk"), Term("Belgorod")), none=(Term("Tokyo"),))
    assert spans(node, "Kursk, not Belgorod, not Paris") == ["Kursk", "Belgorod"]
    assert spans(Bool(all=(Term("a"),), none=(Term("zzz"),)), "a b") == ["a"]


def test_fields_default_and_inherit() -> None:
    doc = Document(
        "d",
        title="Strike",
        summary="Toropets depot",
        author="Tikhoretsk desk",
        tags=("war", "Russia"),
        link="https://example.org/kn-23",
        source="isw",
    )
    cases: list[tuple[Node, list[tuple[str, int, int]] | None]] = [
        (Term("Tikhoretsk"), None),  # author is not searched unless asked
        (Bool(any=(Term("Tikhoretsk"),), fields=("author",)), [("author", 0, 10)]),
        (Bool(any=(Term("Russia"),), fields=("tags",)), [("tags", 5, 11)]),
        (Bool(any=(Term("kn-23"),), fields=("link",)), [("link", 20, 25)]),
        (Bool(any=(Term("isw"),), fields=("source",)), [("source", 0, 3)]),
        (
            Bool(all=(Term("strike"), Bool(any=(Term("depot"),), fields=("title",))), fields=None),
            None,
        ),
    ]
    for node, expected in cases:
        rules = [rule(node)]
        found = compile_rules(rules).match(doc)
        assert found == reference_match(rules, doc)
        got = [(s.field, s.start, s.end) for s in found[0].spans] if found else None
        assert got == expected, node


@pytest.mark.parametrize(
    ("text", "within", "held"),
    [
        ("North Korean troops", 0, True),
        ("troops from North Korea", 1, True),  # either order
        ("North Korean a b c troops", 3, True),
        ("North Korean a b c troops", 2, False),
        ("North Korean. Troops", 0, True),  # punctuation is not a word
    ],
)
def test_near_counts_words_between_in_either_order(text: str, within: int, held: bool) -> None:
    node = Near((Bool(any=(Term("North Korean"), Term("North Korea"))), Term("troops")), within)
    assert (spans(node, text) is not None) is held


def test_near_needs_one_field() -> None:
    node = Near((Term("Kursk"), Term("troops")), 5)
    assert spans(node, "Kursk", summary="troops") is None
    assert spans(node, "Kursk troops", summary="troops") == ["Kursk", "troops"]


def test_sources_limit_where_a_rule_applies() -> None:
    rules = [
        rule(Term("Kursk"), "any"),
        rule(Term("Kursk"), "isw-only", sources=("isw",)),
        rule(Term("Kursk"), "think-tanks", sources=("tag:think-tank",)),
    ]
    matcher = compile_rules(rules)
    doc = Document("d", title="Kursk", source="bbc", source_tags=("news",))
    assert [m.rule_id for m in matcher.match(doc)] == ["any"]
    doc = Document("d", title="Kursk", source="isw", source_tags=("think-tank",))
    assert [m.rule_id for m in matcher.match(doc)] == ["any", "isw-only", "think-tanks"]


def test_rules_come_back_in_the_given_order_with_levels() -> None:
    rules = [
        Rule("z", "t", "low", Term("b")),
        Rule("a", "t", "critical", Term("a")),
        Rule("m", "t", "info", Term("nothing")),
    ]
    found = compile_rules(rules).match(Document("d", title="a b"))
    assert found == [
        RuleMatch("z", "low", (Span("title", 2, 3, "b"),)),
        RuleMatch("a", "critical", (Span("title", 0, 1, "a"),)),
    ]


def test_an_empty_document_and_rules_without_terms() -> None:
    rules = [
        rule(Bool(none=(Term("war"),)), "no-war"),
        rule(Bool(all=()), "vacuous"),
        rule(Bool(any=()), "never"),
        rule(Regex(r"^$"), "empty-title", sources=None),
    ]
    found = compile_rules(rules).match(Document("d"))
    assert [m.rule_id for m in found] == ["no-war", "vacuous", "empty-title"]


@pytest.mark.parametrize(
    ("node", "message"),
    [
        (Regex("(unclosed"), "invalid regex"),
        (Term(" -- "), "empty"),
        (Fuzzy("!!!", 90), "no words"),
        (Fuzzy("Kursk", 101), "between 0 and 100"),
        (Near((Bool(all=(Term("a"),)),), 3), "near operand"),
        (Near((), 3), "at least one operand"),
    ],
)
def test_invalid_trees_are_refused_with_the_rule_and_its_place(node: Node, message: str) -> None:
    bad = Rule("bad-rule", "t", "high", node, file="rules/mine.yaml", line=7)
    with pytest.raises(RuleError) as caught:
        compile_rules([rule(Term("ok"), "fine"), bad])
    (problem,) = caught.value.problems
    assert problem.rule_id == "bad-rule"
    assert str(problem.location) == "rules/mine.yaml:7"
    assert message in problem.message


def test_explaining_an_unknown_rule_is_an_error() -> None:
    with pytest.raises(RuleError, match="no rule with id 'nope'"):
        compile_rules([rule(Term("a"))]).explain(Document("d"), "nope")


@pytest.mark.skipif(not CORPUS.is_file(), reason="the shared corpus is absent")
def test_real_news_gets_the_reference_answers() -> None:
    from benchmarks.match_bench import generated_rules

    rows = [json.loads(line) for line in CORPUS.read_text(encoding="utf-8").splitlines()][:60]
    docs = [
        Document(str(r["id"]), title=r["title"] or "", summary=r["summary"] or "") for r in rows
    ]
    rules = generated_rules(120)
    matcher = compile_rules(rules)
    for doc in docs:
        assert matcher.match(doc) == reference_match(rules, doc)


def test_fuzzy_terms_of_several_words_score_only_near_an_anchor_but_miss_nothing() -> None:
    # 85 is low enough that "Iskander M" has no verbatim piece to look for: the anchor filter
    # (a word sharing 4 letters in order with "iskanderm") is what narrows it.
    assert spans(Fuzzy("Iskander-M", 85), "an Iskandr M strike") == ["Iskandr M"]
    assert spans(Fuzzy("Iskander-M", 85), "Iskander, M") == ["Iskander, M"]
    assert spans(Fuzzy("Iskander-M", 85), "under the leader's sander") is None
    assert spans(Fuzzy("Shahed-136", 90), "Shahed 136s and a Shahed-136") == [
        "Shahed 136s",
        "Shahed-136",
    ]


def test_a_term_and_a_fuzzy_term_in_one_list_give_each_span_once() -> None:
    listed = Bool(any=(Term("Tikhoretsk"), Fuzzy("Tikhoretsk", 85), Term("depot")))
    assert spans(listed, "Tikhoretsk depot, Tihoretsk") == ["Tikhoretsk", "depot", "Tihoretsk"]


def test_one_matcher_serves_several_threads_with_the_same_answers() -> None:
    from concurrent.futures import ThreadPoolExecutor

    from benchmarks.match_bench import generated_rules, synthetic_items

    rules = generated_rules(100)
    docs = synthetic_items()[:400]
    expected = [compile_rules(rules).match(d) for d in docs]
    matcher = compile_rules(rules)  # its word memo starts empty and is filled by 4 threads at once
    with ThreadPoolExecutor(4) as pool:
        runs = [pool.submit(lambda: [matcher.match(d) for d in docs]) for _ in range(4)]
        assert all(run.result() == expected for run in runs)
