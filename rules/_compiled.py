"""Compiled rule nodes of the fast matcher.

Each node answers two questions about a document: `held` (as cheaply as possible: children are
ordered by `cost` and evaluation stops as soon as the answer is known) and `spans` (asked only of
nodes that hold, so the expensive leaves run in full only for rules that match). Spans are
collected as places, `(field, start, end)` tuples, and made `Span`s once per matching rule.

`needs` lists sets of term tokens that must ALL be met (each by at least one token found in the
document) for the node to be able to hold; an empty list says nothing is known (a regex, a fuzzy
term of several words without an anchor filter, a `none`-only node). The matcher evaluates a rule
only when its two most selective needs are met, which the rule index decides for every rule at once
(`rules._compile.Program`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from rules._fuzzy import positions
from rules._near import taking_part
from rules._state import DocState, Place, fuzzy_token, word_spans

TERM_COST, FUZZY_COST, NEAR_COST, REGEX_COST = 1, 20, 30, 100

Needs = list[frozenset[int]]


class CNode:
    cost: int

    def held(self, st: DocState) -> bool:
        raise NotImplementedError

    @property
    def exact(self) -> bool:
        """Whether the node holds exactly when every one of its `needs` is met: then the rule index,
        which tests the two most selective needs, decides a rule with at most two needs alone."""
        return False

    def spans(self, st: DocState, out: list[Place]) -> None:
        raise NotImplementedError

    def needs(self) -> Needs:
        return []


class CTerms(CNode):
    """Any of several terms, each in any of the same fields: one set operation."""

    def __init__(self, tokens: frozenset[int]) -> None:
        self.tokens = tokens
        self.cost = TERM_COST

    def held(self, st: DocState) -> bool:
        return not self.tokens.isdisjoint(st.hitset)

    @property
    def exact(self) -> bool:
        return True

    def spans(self, st: DocState, out: list[Place]) -> None:
        out.extend(st.term_places(self.tokens))

    def needs(self) -> Needs:
        return [self.tokens]


class CFuzzy(CNode):
    """A fuzzy term of several words (one-word terms are tokens, see `rules._compile`)."""

    def __init__(self, fid: int, fields: tuple[int, ...], anchored: bool) -> None:
        self.fid, self.fields = fid, fields
        self.cost = FUZZY_COST
        # With an anchor filter, an anchor word found is a need (`rules._fuzzy`).
        self.tokens = frozenset(fuzzy_token(fid, f) for f in fields) if anchored else None

    def needs(self) -> Needs:
        return [self.tokens] if self.tokens is not None else []

    def held(self, st: DocState) -> bool:
        for f in self.fields:
            if self.tokens is not None and fuzzy_token(self.fid, f) not in st.hitset:
                continue
            if st.fuzzy_spans(self.fid, f):
                return True
        return False

    def spans(self, st: DocState, out: list[Place]) -> None:
        for f in self.fields:
            out.extend((f, s, e) for s, e in st.fuzzy_spans(self.fid, f))


class CRegex(CNode):
    def __init__(self, rid: int, fields: tuple[int, ...]) -> None:
        self.rid, self.fields = rid, fields
        self.cost = REGEX_COST

    def held(self, st: DocState) -> bool:
        return any(st.regex(self.rid, f).held for f in self.fields)

    def spans(self, st: DocState, out: list[Place]) -> None:
        for f in self.fields:
            out.extend((f, s, e) for s, e in st.regex(self.rid, f).spans)


def _either(options: Sequence[Needs]) -> Needs:
    """Needs of "one of these holds": the union of one need of each, if each has one."""
    if not options or any(not o for o in options):
        return []
    out: set[int] = set()
    for needs in options:
        out |= min(needs, key=len)
    return [frozenset(out)]


class CBool(CNode):
    def __init__(
        self,
        any_: Sequence[CNode] | None,
        all_: Sequence[CNode] | None,
        none: Sequence[CNode] | None,
    ) -> None:
        def order(nodes: Sequence[CNode] | None) -> tuple[CNode, ...]:
            return tuple(sorted(nodes or (), key=lambda n: n.cost))

        self.has_any = any_ is not None
        self.any, self.all, self.none = order(any_), order(all_), order(none)
        self.cost = sum(k.cost for k in (*self.any, *self.all, *self.none))
        # The common shape, `all` of term lists, checked without a call per child.
        self.all_terms = tuple(c.tokens for c in self.all if isinstance(c, CTerms))
        self.all_other = tuple(c for c in self.all if not isinstance(c, CTerms))

    def held(self, st: DocState) -> bool:
        hitset = st.hitset
        for tokens in self.all_terms:
            if tokens.isdisjoint(hitset):
                return False
        if self.has_any and not self._any_held(st):
            return False
        for child in self.all_other:
            if not child.held(st):
                return False
        # Loops rather than any()/all() over generators: this runs for every candidate rule of
        # every item, and the generators cost more than the work.
        for child in self.none:  # noqa: SIM110
            if child.held(st):
                return False
        return True

    @property
    def exact(self) -> bool:
        """`all` of term lists, and at most one term list as `any`: the needs say it all."""
        return (
            not self.none
            and not self.all_other
            and (not self.has_any or (len(self.any) == 1 and isinstance(self.any[0], CTerms)))
        )

    def _any_held(self, st: DocState) -> bool:
        for child in self.any:  # noqa: SIM110
            if child.held(st):
                return True
        return False

    def spans(self, st: DocState, out: list[Place]) -> None:
        for child in self.any:
            if child.held(st):
                child.spans(st, out)
        for child in self.all:
            child.spans(st, out)

    def needs(self) -> Needs:
        out: Needs = []
        if self.has_any:
            out += _either([c.needs() for c in self.any]) if self.any else [frozenset()]
        for child in self.all:
            out += child.needs()
        return out


@dataclass(frozen=True)
class OperandLeaf:
    """One leaf of a near operand: kind `token` (a term or a one-word fuzzy term, by its field-0
    token), `fuzzy` (of several words, by id) or `regex` (by id), and the fields it may be found in
    (None: any field of the near)."""

    kind: str
    id: int
    allowed: frozenset[int] | None


class NearOperand:
    """One `near` operand: its terms as one token set per field (one set intersection finds which
    occur), and its other leaves."""

    def __init__(self, leaves: Sequence[OperandLeaf], fields: tuple[int, ...]) -> None:
        self.terms = {
            f: frozenset(
                leaf.id + f
                for leaf in leaves
                if leaf.kind == "token" and (leaf.allowed is None or f in leaf.allowed)
            )
            for f in fields
        }
        self.others = tuple(leaf for leaf in leaves if leaf.kind != "token")
        self.cost = sum(REGEX_COST for leaf in self.others if leaf.kind == "regex")

    def needs(self) -> Needs:
        return [] if self.others else [frozenset().union(*self.terms.values())]

    def occurrences(self, st: DocState, f: int) -> dict[tuple[int, int], tuple[int, int]]:
        """Distinct original spans of the operand in field `f`, each with its first and last
        word. The words of a field are numbered without listing their offsets: a word found by
        the word memo by its positions among the field's words, a term found by the automaton by
        counting the words before it (`NormalizedText.hit_range`); only a text whose folding moved
        offsets, and fuzzy terms and regexes, map original spans to words."""
        key = (id(self), f)
        found = st.occurrences.get(key)
        if found is None:
            found = st.occurrences[key] = self._occurrences(st, f)
        return found

    def _occurrences(self, st: DocState, f: int) -> dict[tuple[int, int], tuple[int, int]]:
        nt = st.norm(f)
        if nt.starts is not None:
            spans = [(s, e) for _, s, e in st.term_places(self.terms[f])]
            spans += self._other_spans(st, f)
            return {span: nt.word_range(*span) for span in spans}
        out: dict[tuple[int, int], tuple[int, int]] = {}
        for token in self.terms[f].intersection(st.hitset):
            hits = st.hits.get(token)
            if hits is None:  # the k-th place of a word is its k-th position
                keys = st.keys[f]
                for word in st.word_hits[token]:
                    at = positions(keys, [word])
                    out.update(zip(word_spans(nt.text, [word]), [(i, i) for i in at], strict=True))
            else:
                out.update([((s, e), nt.hit_range(s, e)) for s, e in hits])
        for span in self._other_spans(st, f):
            out[span] = nt.word_range(*span)
        return out

    def _other_spans(self, st: DocState, f: int) -> list[tuple[int, int]]:
        """Original spans of the operand's fuzzy terms of several words and regexes in `f`."""
        spans: list[tuple[int, int]] = []
        for leaf in self.others:
            if leaf.allowed is None or f in leaf.allowed:
                if leaf.kind == "fuzzy":
                    spans.extend(st.fuzzy_spans(leaf.id, f))
                else:
                    spans.extend(st.regex(leaf.id, f).spans)
        return spans


class CNear(CNode):
    """Held when some field holds a close-enough choice of one occurrence per operand (found by
    the first such choice); its spans are the occurrences taking part in one."""

    def __init__(
        self, operands: Sequence[NearOperand], within: int, fields: tuple[int, ...]
    ) -> None:
        self.operands = tuple(operands)
        self.within, self.fields = within, fields
        self.cost = NEAR_COST + sum(op.cost for op in self.operands)
        # Per field, the term sets of the operands made of terms only: each must meet a term found
        # in that field before the occurrences are worth listing.
        self.gates = tuple(
            (f, tuple(op.terms[f] for op in self.operands if not op.others)) for f in fields
        )
        # The same gates over all fields at once: one set test per operand turns most documents
        # away before any field is looked at.
        self.anywhere = tuple(
            frozenset().union(*op.terms.values()) for op in self.operands if not op.others
        )

    def held(self, st: DocState) -> bool:
        found = st.near_held.get(id(self))
        if found is None:
            hitset = st.hitset
            for tokens in self.anywhere:
                if tokens.isdisjoint(hitset):
                    return False
            # Remembered: a `near` in a list is asked again when the rule's spans are collected.
            found = st.near_held[id(self)] = self._held(st)
        return found

    def spans(self, st: DocState, out: list[Place]) -> None:
        found = st.near.get(id(self))
        if found is None:
            found = st.near[id(self)] = [
                (f, *span) for f in self._open_fields(st) for span in self._field(st, f)
            ]
        out.extend(found)

    def needs(self) -> Needs:
        return [need for op in self.operands for need in op.needs()]

    def _held(self, st: DocState) -> bool:
        for f in self._open_fields(st):
            per_operand: list[list[tuple[int, int]]] = []
            for operand in self.operands:
                occurrences = operand.occurrences(st, f)
                if not occurrences:
                    break
                per_operand.append(list(occurrences.values()))
            else:
                if taking_part(per_operand, self.within, first=True):
                    return True
        return False

    def _open_fields(self, st: DocState) -> list[int]:
        """The fields where every operand made of terms has one found."""
        hitset = st.hitset
        out: list[int] = []
        # Loops rather than all() over a generator: per candidate rule of every item.
        for f, gate in self.gates:
            for tokens in gate:
                if tokens.isdisjoint(hitset):
                    break
            else:
                out.append(f)
        return out

    def _field(self, st: DocState, f: int) -> list[tuple[int, int]]:
        """Original spans of the occurrences taking part in a close-enough choice in field `f`."""
        per_operand: list[dict[tuple[int, int], tuple[int, int]]] = []
        for operand in self.operands:
            occurrences = operand.occurrences(st, f)
            if not occurrences:
                return []
            per_operand.append(occurrences)
        spans = [list(occ) for occ in per_operand]
        ranges = [list(occ.values()) for occ in per_operand]
        return [spans[i][j] for i, j in taking_part(ranges, self.within)]
