"""Checks on a rule tree that both matchers rely on, reported as located `RuleError`s.

The loader already rejects most of these with better positions; trees built in code (tests, the
query parser) meet them here.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from monitor.errors import Location, Problem, RuleError
from rules._regex import RegexSyntaxError, compile_regex
from rules.ast import Bool, FieldName, Fuzzy, Near, Node, Regex, Rule, Term
from rules.text import fold, normalize

Leaf = Term | Fuzzy | Regex


def near_leaves(
    operand: Node, allowed: tuple[FieldName, ...] | None = None
) -> Iterator[tuple[Leaf, tuple[FieldName, ...] | None]]:
    """The leaves of one `near` operand with the fields each may be found in (None: any field of the
    `near`). An operand is a leaf or an `any`-only node of operands (a `$list`)."""
    if isinstance(operand, Term | Fuzzy | Regex):
        yield operand, allowed
    elif (
        isinstance(operand, Bool) and operand.any is not None and not (operand.all or operand.none)
    ):
        inner = operand.fields if operand.fields is not None else allowed
        for child in operand.any:
            yield from near_leaves(child, inner)
    else:
        raise ValueError("a near operand must be a term, a fuzzy term, a regex or a list of them")


def _problems(node: Node) -> Iterator[str]:
    if isinstance(node, Term):
        if not fold(node.text):
            yield f"term {node.text!r} is empty once punctuation-insensitive parts are folded"
    elif isinstance(node, Fuzzy):
        if not normalize(node.text).word_texts:
            yield f"fuzzy term {node.text!r} has no words"
        if not 0 <= node.score <= 100:
            yield f"fuzzy score {node.score} is not between 0 and 100"
    elif isinstance(node, Regex):
        try:
            compile_regex(node.pattern)
        except RegexSyntaxError as exc:
            yield f"invalid regex {node.pattern!r}: {exc}"
    elif isinstance(node, Near):
        yield from _near_problems(node)
    else:
        for group in (node.any, node.all, node.none):
            for child in group or ():
                yield from _problems(child)


def _near_problems(node: Near) -> Iterator[str]:
    if not node.operands:
        yield "near needs at least one operand"
    for operand in node.operands:
        try:
            for leaf, _ in near_leaves(operand):
                yield from _problems(leaf)
        except ValueError as exc:
            yield str(exc)


def check_rules(rules: Sequence[Rule]) -> None:
    """Raise one `RuleError` listing every problem of every rule."""
    problems = [
        Problem(Location(rule.file, rule.line), message, rule.id)
        for rule in rules
        for message in _problems(rule.match)
    ]
    if problems:
        raise RuleError(problems)
