"""Building blocks shared by the YAML condition compiler and the query parser, so that a condition
written either way compiles to the same tree and is checked by the same rules."""

from __future__ import annotations

import importlib
import re
from collections.abc import Iterable, Sequence
from typing import Any

from rules._regex import RegexSyntaxError, compile_regex
from rules._yaml import did_you_mean
from rules.ast import Bool, Fuzzy, Node, Regex, Term

DEFAULT_FUZZY_SCORE = 90
# Limits against hostile or mistaken input: a phrase longer than this is not a news phrase, and a
# huge pattern or fuzzy term would make every item expensive to match.
MAX_TERM_CHARS = 500
MAX_REGEX_CHARS = 2000
MAX_QUERY_CHARS = 100_000
MAX_DEPTH = 64  # nested conditions / parentheses; the matchers recurse over the tree
LIST_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_-]*")
# Upper-case operator words inside a term: query syntax written where one phrase was expected.
_OPERATOR_IN_TERM = re.compile(r"(?:\S\s+(?:AND|OR|NOT|NEAR/\d+)|^NOT)\s+\S")

# re's own parser is the cheapest exact way to see a pattern's structure; it is private, so it is
# loaded defensively and the nested-quantifier check is skipped if it ever moves.
try:
    _sre_parse: Any = importlib.import_module("re._parser")
    _sre: Any = importlib.import_module("re._constants")
except ImportError:  # pragma: no cover - other Python versions
    _sre_parse = _sre = None


def shorten(text: str, limit: int = 60) -> str:
    """`text` quoted for a message, cut so a 1 MB value never lands in an error line."""
    if len(text) > limit:
        text = text[:limit] + "…"
    return repr(text)


def term_problem(text: str) -> str | None:
    """Why `text` cannot be a term, or None."""
    stripped = text.strip()
    if not stripped:
        return "empty term"
    if len(stripped) > MAX_TERM_CHARS:
        return f"term is too long ({len(stripped)} characters, at most {MAX_TERM_CHARS})"
    if not any(c.isalnum() for c in stripped):
        return f"term {shorten(stripped)} has no letters or digits"
    return None


def operator_problem(text: str) -> str | None:
    """A YAML term like `KN-23 OR Hwasong` is query syntax written where one phrase was expected."""
    if _OPERATOR_IN_TERM.search(text):
        return (
            f"term {shorten(text.strip())} contains a query operator; write it as a `query:` to "
            "combine terms, or write the word in lower case to match it as text"
        )
    return None


def score_problem(score: object) -> str | None:
    if isinstance(score, bool) or not isinstance(score, int):
        return f"score must be a whole number from 0 to 100, got {shorten(str(score))}"
    if not 0 <= score <= 100:
        return f"score must be from 0 to 100, got {score}"
    return None


def within_problem(within: object) -> str | None:
    if isinstance(within, bool) or not isinstance(within, int):
        return f"within must be a whole number of words (1 or more), got {shorten(str(within))}"
    if within < 1:
        return f"within must be at least 1 word, got {within}"
    return None


def regex_problem(pattern: str) -> str | None:
    """Why `pattern` cannot be a rule regex, or None. Compiled by the matcher's own engine, so the
    loader accepts exactly what the matcher runs."""
    if not pattern:
        return "empty regex"
    if len(pattern) > MAX_REGEX_CHARS:
        return f"regex is too long ({len(pattern)} characters, at most {MAX_REGEX_CHARS})"
    try:
        compiled = compile_regex(pattern)
    except RegexSyntaxError as e:
        return f"invalid regex: {e}"
    if compiled.run("").held:
        return "regex matches empty text, so it would match every item"
    if _nested_unbounded(pattern):
        return (
            "regex repeats a group that itself repeats without bound (like `(a+)+`), which can "
            "take exponential time on some text; bound the outer repeat (`{1,5}`), or make it "
            "possessive (`)++`) or atomic (`(?>...)`)"
        )
    return None


def _nested_unbounded(pattern: str) -> bool:
    """Star height above one: an unbounded repeat inside another. A cheap, well-known signal of
    catastrophic backtracking; possessive and atomic groups never backtrack, so they are exempt."""
    if _sre_parse is None:  # pragma: no cover
        return False
    # Rule regexes may start with a global `(?-i)` (DESIGN §4), which only the scoped form
    # `(?-i:...)` spells in `re`; the flag does not change the structure.
    if pattern.startswith("(?-i)"):
        pattern = pattern[5:]
    try:
        parsed = _sre_parse.parse(pattern)
    except Exception:  # syntax only the `regex` module knows (\p{L}, ...): no opinion
        return False
    return _walk_repeats(list(parsed), inside=False)


def _walk_repeats(items: list[Any], *, inside: bool) -> bool:
    for op, av in items:
        if op in (_sre.MAX_REPEAT, _sre.MIN_REPEAT):
            unbounded = av[1] == _sre.MAXREPEAT
            if (unbounded and inside) or _walk_repeats(list(av[2]), inside=inside or unbounded):
                return True
        elif op is _sre.SUBPATTERN:
            if _walk_repeats(list(av[3]), inside=inside):
                return True
        elif op is _sre.BRANCH:
            if any(_walk_repeats(list(branch), inside=inside) for branch in av[1]):
                return True
        elif op in (_sre.ASSERT, _sre.ASSERT_NOT):
            if _walk_repeats(list(av[1]), inside=inside):
                return True
        elif op is _sre.GROUPREF_EXISTS:
            branches = [b for b in av[1:] if b is not None]
            if any(_walk_repeats(list(b), inside=inside) for b in branches):
                return True
    return False


def unknown_list(ref: str, names: Iterable[str]) -> str:
    """The message for a `$name` that names no list, with the likeliest one meant."""
    known = {f"${n}": n for n in names}
    if not known:
        return f"unknown list {shorten(ref, 40)} (no lists are defined)"
    folded = {k.lower(): k for k in known}
    if ref.lower() in folded:  # difflib scores `$KN23` against `$kn23` too low to suggest it
        hint = f" (did you mean '{folded[ref.lower()]}'?)"
    else:
        hint = did_you_mean(ref, known)
    return f"unknown list {shorten(ref, 40)}{hint}"


def list_node(name: str, terms: Sequence[str]) -> Bool:
    """What `$name` expands to: any of the list's terms, labelled for explanations."""
    return Bool(any=tuple(Term(t) for t in terms), label=f"${name}")


def _plain(node: Node) -> bool:
    """A Bool that only groups (no fields, no label): its children can merge into its parent's."""
    return isinstance(node, Bool) and node.fields is None and node.label is None


def any_of(nodes: Iterable[Node]) -> Node:
    """OR, flattened: `A OR (B OR C)` is one `any` of three."""
    out: list[Node] = []
    for node in nodes:
        if _plain(node) and isinstance(node, Bool) and node.any and not node.all and not node.none:
            out.extend(node.any)
        else:
            out.append(node)
    return out[0] if len(out) == 1 else Bool(any=tuple(out))


def all_of(nodes: Iterable[Node]) -> Node:
    """AND, flattened: `A AND (B AND NOT C)` is `all: [A, B], none: [C]`."""
    alls: list[Node] = []
    nones: list[Node] = []
    for node in nodes:
        if _plain(node) and isinstance(node, Bool) and not node.any:
            alls.extend(node.all or ())
            nones.extend(node.none or ())
        else:
            alls.append(node)
    if len(alls) == 1 and not nones:
        return alls[0]
    return Bool(all=tuple(alls) or None, none=tuple(nones) or None)


def not_(node: Node) -> Bool:
    """NOT; `NOT (A OR B)` becomes `none: [A, B]`."""
    if _plain(node) and isinstance(node, Bool) and node.any and not node.all and not node.none:
        return Bool(none=node.any)
    return Bool(none=(node,))


def near_operand(node: Node) -> Node | None:
    """`node` as a proximity operand (a term, a fuzzy term, a regex, or an `any` group of them such
    as a `$list`), or None if it cannot be one. Nested groups are flattened to one level."""
    if isinstance(node, Term | Fuzzy | Regex):
        return node
    if not isinstance(node, Bool) or node.fields is not None or node.all or node.none:
        return None
    if not node.any:
        return None
    if all(isinstance(child, Term | Fuzzy | Regex) for child in node.any):
        return node
    leaves: list[Node] = []
    for child in node.any:
        flat = near_operand(child)
        if flat is None:
            return None
        if isinstance(flat, Bool):
            leaves.extend(flat.any or ())
        else:
            leaves.append(flat)
    return Bool(any=tuple(leaves))


def only_excludes(node: Node) -> bool:
    """True when a condition can hold only by the absence of something (`NOT x` alone), which would
    match nearly every item."""
    return isinstance(node, Bool) and not node.any and not node.all and bool(node.none)


__all__ = [
    "DEFAULT_FUZZY_SCORE",
    "LIST_NAME",
    "MAX_DEPTH",
    "MAX_QUERY_CHARS",
    "MAX_REGEX_CHARS",
    "MAX_TERM_CHARS",
    "all_of",
    "any_of",
    "list_node",
    "near_operand",
    "not_",
    "only_excludes",
    "operator_problem",
    "regex_problem",
    "score_problem",
    "shorten",
    "term_problem",
    "unknown_list",
    "within_problem",
]
