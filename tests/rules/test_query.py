"""Boolean query strings: every construct, precedence checked against Python's own booleans on
generated expressions, and every syntax error with its column."""

from __future__ import annotations

import time
from itertools import combinations
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rules.ast import Bool, Fuzzy, Near, Node, Regex, Term
from rules.query import QuerySyntaxError, parse_query

LISTS = {"dprk": ("North Korea", "DPRK"), "troops": ("troops", "soldiers")}
DPRK = Bool(any=(Term("North Korea"), Term("DPRK")), label="$dprk")
TROOPS = Bool(any=(Term("troops"), Term("soldiers")), label="$troops")


def q(text: str) -> Node:
    return parse_query(text, LISTS)


def test_the_example_from_the_brief() -> None:
    node = q('("KN-23" OR Hwasong-11) AND (Russia OR Ukraine) AND NOT "South Korea"')
    assert node == Bool(
        all=(
            Bool(any=(Term("KN-23"), Term("Hwasong-11"))),
            Bool(any=(Term("Russia"), Term("Ukraine"))),
        ),
        none=(Term("South Korea"),),
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("KN-23", Term("KN-23")),
        ("Hwasong-11", Term("Hwasong-11")),
        ('"South Korea"', Term("South Korea")),
        ('"say \\"hi\\""', Term('say "hi"')),
        ("24/7", Term("24/7")),
        ("~Hwasong", Fuzzy("Hwasong", 90)),
        ("~Hwasong-11:85", Fuzzy("Hwasong-11", 85)),
        ('~"Kim Jong Un"', Fuzzy("Kim Jong Un", 90)),
        ('~"Kim Jong Un":80', Fuzzy("Kim Jong Un", 80)),
        ("~10:30:85", Fuzzy("10:30", 85)),
        ("/kn-?2[34]/", Regex("kn-?2[34]")),
        ("/a\\/b/", Regex("a\\/b")),
        ("/(?-i)KN/", Regex("(?-i)KN")),
        ("$dprk", DPRK),
        ("(KN-23)", Term("KN-23")),
        ("((KN-23))", Term("KN-23")),
        ("NOT NOT KN-23", Term("KN-23")),
    ],
)
def test_operands(text: str, expected: Node) -> None:
    assert q(text) == expected


def test_operators_compile_to_flat_boolean_nodes() -> None:
    a, b, c = Term("a"), Term("b"), Term("c")
    assert q("a AND b AND c") == Bool(all=(a, b, c))
    assert q("a AND (b AND c)") == Bool(all=(a, b, c))
    assert q("a OR (b OR c)") == Bool(any=(a, b, c))
    assert q("a OR b AND c") == Bool(any=(a, Bool(all=(b, c))))
    assert q("(a OR b) AND c") == Bool(all=(Bool(any=(a, b)), c))
    assert q("NOT a") == Bool(none=(a,))
    assert q("a AND NOT b") == Bool(all=(a,), none=(b,))
    assert q("a AND NOT (b OR c)") == Bool(all=(a,), none=(b, c))
    assert q("NOT a AND b") == Bool(all=(b,), none=(a,))
    assert q("a OR NOT b") == Bool(any=(a, Bool(none=(b,))))


def test_adjacent_operands_are_joined_by_and() -> None:
    assert q("North Korea") == Bool(all=(Term("North"), Term("Korea")))
    assert q('KN-23 "North Korea" (a OR b)') == q('KN-23 AND "North Korea" AND (a OR b)')
    assert q("a NOT b") == Bool(all=(Term("a"),), none=(Term("b"),))


def test_lists_keep_their_label_inside_or() -> None:
    assert q("$dprk OR Pyongyang") == Bool(any=(DPRK, Term("Pyongyang")))


def test_lists_may_be_given_as_nodes_to_share_them() -> None:
    shared = Bool(any=(Term("x"),), label="$x")
    node = parse_query("$x AND $x", {"x": shared})
    assert isinstance(node, Bool) and node.all is not None
    assert node.all[0] is shared and node.all[1] is shared


def test_near() -> None:
    assert q("KN-23 NEAR/5 Russia") == Near((Term("KN-23"), Term("Russia")), 5)
    assert q("a NEAR/3 b NEAR/3 c") == Near((Term("a"), Term("b"), Term("c")), 3)
    assert q("$dprk NEAR/5 $troops") == Near((DPRK, TROOPS), 5)
    assert q("~Hwasong NEAR/2 /kn-?23/") == Near((Fuzzy("Hwasong"), Regex("kn-?23")), 2)
    # NEAR binds tighter than NOT and AND.
    assert q("x AND a NEAR/2 b") == Bool(all=(Term("x"), Near((Term("a"), Term("b")), 2)))
    assert q("NOT a NEAR/2 b") == Bool(none=(Near((Term("a"), Term("b")), 2),))


def test_near_operands_may_be_or_groups_flattened_to_one_level() -> None:
    node = q("($dprk OR Pyongyang) NEAR/5 troops")
    assert node == Near(
        (Bool(any=(Term("North Korea"), Term("DPRK"), Term("Pyongyang"))), Term("troops")), 5
    )
    assert q("(a OR b) NEAR/1 c") == Near((Bool(any=(Term("a"), Term("b"))), Term("c")), 1)


def test_non_ascii_words_and_whitespace() -> None:
    assert q("Торопец OR Тихорецк") == Bool(any=(Term("Торопец"), Term("Тихорецк")))
    assert q("\ta\n\nAND\u00a0b ") == Bool(all=(Term("a"), Term("b")))


@pytest.mark.parametrize(
    ("text", "message", "column"),
    [
        ("", "empty query", 1),
        ("   ", "empty query", 1),
        ("a AND", "expected a term after AND, found end of query", 6),
        ("a OR OR b", "expected a term after OR, found 'OR'", 6),
        ("AND a", "AND needs a term before it", 1),
        ("OR a", "OR needs a term before it", 1),
        ("NEAR/2 a", "NEAR/2 needs a term before it", 1),
        ("NOT", "expected a term after NOT, found end of query", 4),
        ("a AND )", "expected a term after AND, found ')'", 7),
        ("(a", "unclosed '('", 1),
        ("x (a OR (b)", "unclosed '('", 3),
        ("(", "unclosed '('", 1),
        ("a)", "unmatched ')'", 2),
        (")", "unmatched ')'", 1),
        ("a ()", "empty parentheses", 3),
        ("a and b", "operators are written in upper case: AND", 3),
        ("a Or b", "operators are written in upper case: OR", 3),
        ("not a", "operators are written in upper case: NOT", 1),
        ("a near/3 b", "NEAR is written in upper case", 3),
        ("a NEAR b", "NEAR is written in upper case with a distance in words", 3),
        ("a NEAR/x b", "NEAR is written in upper case", 3),
        ("a NEAR/0 b", "within must be at least 1 word, got 0", 3),
        ("a NEAR/2 b NEAR/3 c", "one NEAR chain has one distance", 12),
        ("(a AND b) NEAR/3 c", "NEAR joins terms", 1),
        ("a NEAR/3 (b AND c)", "NEAR joins terms", 10),
        ("a NEAR/3 NOT b", "expected a term after NEAR/3, found 'NOT'", 10),
        ("a && b", "write AND instead of &&", 3),
        ("a || b", "write OR instead of ||", 3),
        ("a -b", "to exclude a word write NOT b", 3),
        ('"abc', 'unclosed quote: end the phrase with "', 1),
        ('a ""', "empty term", 3),
        ('"  "', "empty term", 1),
        ("a ---", "term '---' has no letters or digits", 3),
        ("~", "~ must be followed by a word or a quoted phrase", 1),
        ("a ~ b", "~ must be followed by a word or a quoted phrase", 3),
        ("~$dprk", "~ applies to a word or a quoted phrase only", 1),
        ("~/x/", "~ applies to a word or a quoted phrase only", 1),
        ("~abc:101", "score must be from 0 to 100, got 101", 6),
        ('~"a b":101', "score must be from 0 to 100, got 101", 8),
        ('~"a b":x', 'a fuzzy score is written ~"phrase":85', 7),
        ("/abc", "unclosed regex", 1),
        ("x /(a+)+/", "regex repeats a group that itself repeats without bound", 3),
        ("/(x/", "invalid regex: missing )", 1),
        ("/a*/", "regex matches empty text", 1),
        ("//", "empty regex", 1),
        ("/x/i", "flags are not supported", 4),
        ("$", "'$' is not a list name", 1),
        ("$a.b", "'$a.b' is not a list name", 1),
        ("x $dprkk", "unknown list '$dprkk' (did you mean '$dprk'?)", 3),
        ("$zzz", "unknown list '$zzz'", 1),
        ("$DPRK", "unknown list '$DPRK' (did you mean '$dprk'?)", 1),
    ],
)
def test_syntax_errors_name_the_column(text: str, message: str, column: int) -> None:
    with pytest.raises(QuerySyntaxError) as caught:
        q(text)
    assert message in caught.value.message
    assert caught.value.column == column
    assert str(caught.value).endswith(f"(column {column})")
    assert isinstance(caught.value, ValueError)


def test_unknown_list_without_any_lists() -> None:
    with pytest.raises(QuerySyntaxError, match=r"unknown list '\$x' \(no lists are defined\)"):
        parse_query("$x")


def test_quoted_operator_words_are_terms() -> None:
    assert q('"and" OR "NOT"') == Bool(any=(Term("and"), Term("NOT")))
    assert q('"Bosnia and Herzegovina"') == Term("Bosnia and Herzegovina")


def test_deep_parentheses_fail_fast_with_a_column() -> None:
    with pytest.raises(QuerySyntaxError, match="nested too deeply") as caught:
        q("(" * 40_000 + "a" + ")" * 40_000)
    assert caught.value.column == 65
    assert q("(" * 60 + "a" + ")" * 60) == Term("a")


def test_huge_queries() -> None:
    with pytest.raises(QuerySyntaxError, match="query is too long"):
        q("a " * 500_000)
    many = " OR ".join(f"w{i}" for i in range(10_000))
    started = time.perf_counter()
    node = q(many)
    assert isinstance(node, Bool) and node.any is not None and len(node.any) == 10_000
    assert time.perf_counter() - started < 5  # linear: about 0.1 s; quadratic would be minutes
    with pytest.raises(QuerySyntaxError, match="unclosed quote"):
        q('"' + "x" * 90_000)
    with pytest.raises(QuerySyntaxError, match="unclosed regex"):
        q("/" + "\\x" * 45_000)
    with pytest.raises(QuerySyntaxError, match="term is too long"):
        q("x" * 90_000)


# Generated expressions: the parsed tree must hold exactly when Python's own booleans say so, for
# every combination of words present. This checks precedence, implicit AND and flattening at once.

Expr = tuple[Any, ...]
WORDS = ("alpha", "beta", "gamma", "delta")
PRECEDENCE = {"or": 1, "and": 2, "not": 3, "w": 4}


def _exprs() -> st.SearchStrategy[Expr]:
    leaves = st.sampled_from(WORDS).map(lambda w: ("w", w))
    return st.recursive(
        leaves,
        lambda inner: st.one_of(
            st.tuples(st.just("and"), inner, inner, st.booleans()),
            st.tuples(st.just("or"), inner, inner),
            st.tuples(st.just("not"), inner),
        ),
        max_leaves=10,
    )


def _render(e: Expr, parent: int = 0) -> str:
    """Fewest parentheses the precedence rules allow; AND sometimes implicit."""
    kind = e[0]
    if kind == "w":
        return str(e[1])
    if kind == "not":
        text = "NOT " + _render(e[1], PRECEDENCE["not"])
    elif kind == "and":
        op = " " if e[3] else " AND "
        text = _render(e[1], 2) + op + _render(e[2], 3)
    else:
        text = _render(e[1], 1) + " OR " + _render(e[2], 2)
    return f"({text})" if PRECEDENCE[kind] < parent else text


def _truth(e: Expr, present: frozenset[str]) -> bool:
    kind = e[0]
    if kind == "w":
        return e[1] in present
    if kind == "not":
        return not _truth(e[1], present)
    if kind == "and":
        return _truth(e[1], present) and _truth(e[2], present)
    return _truth(e[1], present) or _truth(e[2], present)


def _holds(node: Node, present: frozenset[str]) -> bool:
    if isinstance(node, Term):
        return node.text in present
    assert isinstance(node, Bool), node
    return (
        (node.any is None or any(_holds(c, present) for c in node.any))
        and (node.all is None or all(_holds(c, present) for c in node.all))
        and (node.none is None or not any(_holds(c, present) for c in node.none))
    )


def _assert_flat(node: Node) -> None:
    if not isinstance(node, Bool):
        return
    for group in (node.any, node.all, node.none):
        assert group is None or len(group) > 0
    for child in node.any or ():
        assert not (isinstance(child, Bool) and child.any and not child.all and not child.none)
    for child in node.all or ():
        assert not (isinstance(child, Bool) and not child.any), "AND inside AND not merged"
    for group in (node.any, node.all, node.none):
        for child in group or ():
            _assert_flat(child)


SUBSETS = [frozenset(c) for n in range(len(WORDS) + 1) for c in combinations(WORDS, n)]


@settings(max_examples=300, deadline=None)
@given(_exprs())
def test_generated_queries_mean_what_python_booleans_mean(e: Expr) -> None:
    text = _render(e)
    node = parse_query(text)
    _assert_flat(node)
    for present in SUBSETS:
        assert _holds(node, present) == _truth(e, present), (text, sorted(present))


@settings(max_examples=100, deadline=None)
@given(st.text(alphabet='ab ()"~$/:NOTANDR\\-&|0123456789', max_size=40))
def test_any_input_parses_or_raises_a_query_syntax_error(text: str) -> None:
    try:
        parse_query(text, {"a": ("a",)})
    except QuerySyntaxError as e:
        assert 1 <= e.column <= len(text) + 1
