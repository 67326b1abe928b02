"""The reference matcher: the rule semantics written as plainly as possible, with no short cuts.

It is the oracle the fast matcher (`rules.matcher`) is tested against on generated rules and texts,
the baseline of `benchmarks/match_bench.py`, and the evaluator behind explanations. Every rule is
evaluated on its own, every node fully, every term by its own regex over the folded field text,
every fuzzy term by rapidfuzz over every window of words.

The semantics, exactly (the fast matcher must give the same answers and the same spans):

- Field texts are folded by `rules.text.normalize`; spans are offsets into the original field text.
- **Term**: its folded form (separator runs as one space, ends trimmed) occurs in the folded text
  with no word character (`\\w`) just before or after it; where the term has a space, the text may
  have any run of spaces (folded dashes and whitespace) or none; elsewhere it may have none. Every
  occurrence (by start position, overlapping ones included) is a span.
- **Fuzzy** `{fuzzy: T, score: N}`: let `a` be the words of T joined by one space, n their number.
  Every window of n consecutive words of the field, joined by one space as `b`, with
  `rapidfuzz.fuzz.ratio(a, b) >= N` is a span (from its first word's start to its last word's end).
- **Regex**: held when the pattern finds a match in the original field text (see `rules._regex`);
  every non-empty match is a span.
- **Bool**: held when some `any` child holds (if `any` is given), every `all` child holds and no
  `none` child holds; its spans are those of the `any` children that hold and of all `all` children.
  `fields` applies to every leaf below until a deeper node sets its own.
- **Near**: in one field, each operand has an occurrence (a span of a leaf, see `near_leaves`) such
  that, with words numbered and each occurrence covering words s..e (`NormalizedText.word_range`),
  the largest s minus the smallest e, minus one, is at most `within`: pairwise, no two occurrences
  are more than `within` words apart. Its spans are the occurrences that take part in some such
  choice.
- **Rule**: applies to the document's source (`sources:`), and its `match` holds with the default
  fields `title, summary, content`; the match carries the node's spans, sorted by field, start and
  end.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import lru_cache
from itertools import product

from rapidfuzz import fuzz

from monitor.model import Span
from rules._fields import applies, field_text, span_order
from rules._regex import compile_regex
from rules._shape import Leaf, near_leaves
from rules.ast import (
    DEFAULT_FIELDS,
    Bool,
    Document,
    FieldName,
    Fuzzy,
    Near,
    Node,
    Rule,
    RuleMatch,
    Term,
)
from rules.explain import Explanation, fields_note, node_syntax
from rules.text import NormalizedText, fold, normalize

Fields = tuple[FieldName, ...]


@lru_cache(maxsize=4096)
def _term_regex(text: str) -> re.Pattern[str]:
    body = "".join(" *" if ch == " " else re.escape(ch) for ch in fold(text))
    return re.compile(rf"(?<!\w){body}(?!\w)")


class _Doc:
    """A document with its field texts folded on first use."""

    def __init__(self, doc: Document) -> None:
        self.doc = doc
        self._norms: dict[str, NormalizedText] = {}

    def norm(self, name: FieldName) -> NormalizedText:
        if name not in self._norms:
            self._norms[name] = normalize(field_text(self.doc, name))
        return self._norms[name]


def _span(nt: NormalizedText, name: str, start: int, end: int) -> Span:
    return Span(name, start, end, nt.original[start:end])


def _term_spans(term: Term, d: _Doc, name: FieldName) -> list[Span]:
    nt = d.norm(name)
    pattern = _term_regex(term.text)
    out: list[Span] = []
    pos = 0
    while (m := pattern.search(nt.text, pos)) is not None:
        out.append(_span(nt, name, *nt.to_original(m.start(), m.end())))
        pos = m.start() + 1
    return out


def _fuzzy_windows(fuzzy: Fuzzy, nt: NormalizedText) -> list[tuple[int, int]]:
    words = normalize(fuzzy.text).word_texts
    a, n = " ".join(words), len(words)
    texts = nt.word_texts
    return [
        (i, i + n - 1)
        for i in range(len(texts) - n + 1)
        if fuzz.ratio(a, " ".join(texts[i : i + n])) >= fuzzy.score
    ]


def _leaf_spans(leaf: Leaf, d: _Doc, name: FieldName) -> tuple[list[Span], bool, bool]:
    """Spans of a leaf in one field, whether it held there, and whether a regex ran out of time."""
    nt = d.norm(name)
    if isinstance(leaf, Term):
        spans = _term_spans(leaf, d, name)
        return spans, bool(spans), False
    if isinstance(leaf, Fuzzy):
        spans = [_span(nt, name, *nt.word_span(i, j)) for i, j in _fuzzy_windows(leaf, nt)]
        return spans, bool(spans), False
    result = compile_regex(leaf.pattern).run(nt.original)
    return [_span(nt, name, s, e) for s, e in result.spans], result.held, result.timed_out


def _leaf(leaf: Leaf, d: _Doc, fields: Fields) -> Explanation:
    spans: list[Span] = []
    held = timed_out = False
    for name in fields:
        s, h, t = _leaf_spans(leaf, d, name)
        spans += s
        held, timed_out = held or h, timed_out or t
    note = "regex ran out of time" if timed_out else ""
    return Explanation(node_syntax(leaf), held, tuple(spans) if held else (), (), note)


def _group(name: str, children: tuple[Explanation, ...], held: bool) -> Explanation:
    spans = (
        () if name == "none:" or not held else tuple(s for c in children if c.held for s in c.spans)
    )
    return Explanation(name, held, spans, children)


def _bool(node: Bool, d: _Doc, fields: Fields) -> Explanation:
    inner = node.fields if node.fields is not None else fields
    groups: list[Explanation] = []
    if node.any is not None:
        kids = tuple(evaluate(c, d, inner) for c in node.any)
        groups.append(_group("any:", kids, any(k.held for k in kids)))
    if node.all is not None:
        kids = tuple(evaluate(c, d, inner) for c in node.all)
        groups.append(_group("all:", kids, all(k.held for k in kids)))
    if node.none is not None:
        kids = tuple(evaluate(c, d, inner) for c in node.none)
        groups.append(_group("none:", kids, not any(k.held for k in kids)))
    held = all(g.held for g in groups)
    spans = tuple(s for g in groups for s in g.spans) if held else ()
    return Explanation(node_syntax(node), held, spans, tuple(groups), fields_note(node, inner))


Occurrence = tuple[Span, int, int]  # the span, its first and last word


def _occurrences(operand: Node, d: _Doc, name: FieldName) -> list[Occurrence]:
    nt = d.norm(name)
    seen: dict[tuple[int, int], Occurrence] = {}
    for leaf, allowed in near_leaves(operand):
        if allowed is not None and name not in allowed:
            continue
        for span in _leaf_spans(leaf, d, name)[0]:
            seen[span.start, span.end] = (span, *nt.word_range(span.start, span.end))
    return list(seen.values())


def _near(node: Near, d: _Doc, fields: Fields) -> Explanation:
    inner = node.fields if node.fields is not None else fields
    taking_part: set[Span] = set()
    for name in inner:
        per_operand = [_occurrences(op, d, name) for op in node.operands]
        for choice in product(*per_operand):
            if max(s for _, s, _ in choice) - min(e for _, _, e in choice) - 1 <= node.within:
                taking_part.update(span for span, _, _ in choice)
    kids = tuple(evaluate(op, d, inner) for op in node.operands)
    spans = tuple(sorted(taking_part, key=lambda s: span_order(s.field, s.start, s.end)))
    return Explanation(node_syntax(node), bool(spans), spans, kids, fields_note(node, inner))


def evaluate(node: Node, d: _Doc, fields: Fields) -> Explanation:
    """Evaluate every node of the tree (no short cuts)."""
    if isinstance(node, Bool):
        return _bool(node, d, fields)
    if isinstance(node, Near):
        return _near(node, d, fields)
    return _leaf(node, d, fields)


def _sorted_spans(spans: Sequence[Span]) -> tuple[Span, ...]:
    return tuple(sorted(set(spans), key=lambda s: span_order(s.field, s.start, s.end)))


def explain_rule(rule: Rule, doc: Document) -> Explanation:
    """The full evaluation of one rule against one document."""
    tree = evaluate(rule.match, _Doc(doc), DEFAULT_FIELDS)
    source_ok = applies(rule, doc)
    note = f"level {rule.level}"
    if not source_ok:
        note += f"; does not apply to source {doc.source!r}"
    held = tree.held and source_ok
    spans = _sorted_spans(tree.spans) if held else ()
    return Explanation(f"rule {rule.id}", held, spans, (tree,), note)


def reference_match(rules: Sequence[Rule], doc: Document) -> list[RuleMatch]:
    """Every rule that matches `doc`, in the given order, with its spans. The rules must be valid
    (`compile_rules` checks them; this oracle does not, to stay a fair baseline)."""
    out: list[RuleMatch] = []
    d = _Doc(doc)
    for rule in rules:
        if not applies(rule, doc):
            continue
        tree = evaluate(rule.match, d, DEFAULT_FIELDS)
        if tree.held:
            out.append(RuleMatch(rule.id, rule.level, _sorted_spans(tree.spans)))
    return out


__all__ = ["explain_rule", "reference_match"]
