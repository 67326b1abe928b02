"""Compile rule trees once into what the fast matcher runs per document.

- Every distinct term of every rule gets an id. Terms of one word are looked up among the field's
  words (one set intersection); the squeezed keys (`rules.text.squeeze`) of all other terms go
  into ONE Aho-Corasick automaton, so a field is scanned once for all terms whatever the number of
  rules.
- Fuzzy terms get ids and their pigeonhole pieces (`rules._fuzzy`): those of one-word terms ride in
  the term automaton, those of longer terms go into a second one, run only when such a term needs
  scoring.
- Each rule becomes a tree of `rules._compiled` nodes; `any` lists of terms (and the `$lists` inside
  them) collapse into one set of tokens.
- Two inverted indexes map each token to the rules whose most selective and second most selective
  needs it meets (`rules._compiled`), so a document only evaluates rules that what was found in it
  could make true; rules with no known need (regex alternatives, `none`-only conditions) are
  evaluated for every document.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import ahocorasick

from rules._compiled import (
    CBool,
    CFuzzy,
    CNear,
    CNode,
    CRegex,
    CTerms,
    OperandLeaf,
)
from rules._fields import FIELD_INDEX
from rules._fuzzy import FuzzySpec, fuzzy_spec, one_word_pieces
from rules._regex import UserRegex, compile_regex
from rules._shape import near_leaves
from rules._state import FIELD_BITS, Tables, TermEntry, fuzzy_token
from rules.ast import DEFAULT_FIELDS, Bool, FieldName, Fuzzy, Near, Node, Regex, Rule, Term
from rules.text import fold, squeeze

Fields = tuple[int, ...]


@dataclass(frozen=True, eq=False)
class Program:
    """Rules by position, their compiled trees, the scanning tables, and the rule index: `first`
    maps a token to the rules (by position) whose most selective need it meets, `second` to those
    whose second most selective need it meets; `single` rules have one need, `always` none."""

    rules: tuple[Rule, ...]
    nodes: tuple[CNode, ...]
    tables: Tables
    first: dict[int, frozenset[int]]
    second: dict[int, frozenset[int]]
    single: frozenset[int]
    always: frozenset[int]


@dataclass
class _Builder:
    term_ids: dict[str, int] = field(default_factory=dict)
    fuzzy_ids: dict[tuple[str, int], int] = field(default_factory=dict)
    fuzzy_specs: list[FuzzySpec] = field(default_factory=list)
    regex_ids: dict[str, int] = field(default_factory=dict)
    regexes: list[UserRegex] = field(default_factory=list)
    term_fields: set[int] = field(default_factory=set)

    def term(self, text: str) -> int:
        return self.term_ids.setdefault(fold(text), len(self.term_ids))

    def fuzzy(self, node: Fuzzy, fields: Fields) -> int:
        spec = fuzzy_spec(node.text, node.score)
        fid = self.fuzzy_ids.get((spec.a, spec.score))
        if fid is None:
            fid = self.fuzzy_ids[spec.a, spec.score] = len(self.fuzzy_specs)
            self.fuzzy_specs.append(spec)
        if one_word_pieces(spec):
            self.term_fields.update(fields)  # its pieces are found by the term scan
        return fid

    def regex(self, pattern: str) -> int:
        rid = self.regex_ids.get(pattern)
        if rid is None:
            rid = self.regex_ids[pattern] = len(self.regexes)
            self.regexes.append(compile_regex(pattern))
        return rid

    def terms(self, texts: Sequence[str], fields: Fields) -> CTerms:
        self.term_fields.update(fields)
        ids = {self.term(t) for t in texts}
        return CTerms(frozenset(i * FIELD_BITS + f for i in ids for f in fields))

    def node(self, node: Node, fields: Fields) -> CNode:
        if isinstance(node, Term):
            return self.terms([node.text], fields)
        if isinstance(node, Fuzzy):
            fid = self.fuzzy(node, fields)
            return CFuzzy(fid, fields, one_word_pieces(self.fuzzy_specs[fid]))
        if isinstance(node, Regex):
            return CRegex(self.regex(node.pattern), fields)
        if isinstance(node, Near):
            return self.near(node, fields)
        return self.bool(node, fields)

    def bool(self, node: Bool, fields: Fields) -> CNode:
        inner = _field_ids(node.fields) if node.fields is not None else fields
        any_ = None if node.any is None else self.any(node.any, inner)
        all_ = None if node.all is None else [self.node(c, inner) for c in node.all]
        none = None if node.none is None else [self.node(c, inner) for c in node.none]
        if any_ is not None and len(any_) == 1 and all_ is None and none is None:
            return any_[0]
        return CBool(any_, all_, none)

    def any(self, children: Sequence[Node], fields: Fields) -> list[CNode]:
        texts: list[str] = []
        others: list[CNode] = []
        self._flatten(children, fields, texts, others)
        return ([self.terms(texts, fields)] if texts else []) + others

    def _flatten(
        self, children: Sequence[Node], fields: Fields, texts: list[str], others: list[CNode]
    ) -> None:
        """Terms of an `any` and of the plain `any` lists inside it all go into one term set."""
        for child in children:
            if isinstance(child, Term):
                texts.append(child.text)
            elif (
                isinstance(child, Bool)
                and child.any is not None
                and child.all is None
                and child.none is None
                and (child.fields is None or _field_ids(child.fields) == fields)
            ):
                self._flatten(child.any, fields, texts, others)
            else:
                others.append(self.node(child, fields))

    def near(self, node: Near, fields: Fields) -> CNear:
        inner = _field_ids(node.fields) if node.fields is not None else fields
        operands = [
            [self._operand_leaf(leaf, allowed, inner) for leaf, allowed in near_leaves(operand)]
            for operand in node.operands
        ]
        return CNear(operands, node.within, inner)

    def _operand_leaf(
        self, leaf: Term | Fuzzy | Regex, allowed: tuple[FieldName, ...] | None, fields: Fields
    ) -> OperandLeaf:
        ids = frozenset(_field_ids(allowed)) if allowed is not None else None
        where = tuple(f for f in fields if ids is None or f in ids)
        if isinstance(leaf, Term):
            self.term_fields.update(where)
            return OperandLeaf("term", self.term(leaf.text), ids)
        if isinstance(leaf, Fuzzy):
            return OperandLeaf("fuzzy", self.fuzzy(leaf, where), ids)
        return OperandLeaf("regex", self.regex(leaf.pattern), ids)


def _field_ids(names: Sequence[FieldName]) -> Fields:
    return tuple(FIELD_INDEX[n] for n in names)


def _automaton(entries: dict[str, list[Any]]) -> Any:
    if not entries:
        return None
    automaton = ahocorasick.Automaton(ahocorasick.STORE_ANY)
    for key, values in entries.items():
        automaton.add_word(key, (len(key), tuple(values)))
    automaton.make_automaton()
    return automaton


def _is_one_word(folded: str) -> bool:
    """A term that is one word matches exactly the words equal to it (no separator can occur
    inside it, and its ends are word boundaries)."""
    return all(c.isalnum() or c == "_" for c in folded)


def _term_automaton(b: _Builder) -> Any:
    """Keys of the terms of several words, and the pieces of one-word fuzzy terms: a one-word
    window is one word, whose letters stand together in the squeezed text, so the term scan finds
    those pieces too."""
    keys: dict[str, tuple[list[TermEntry], list[int]]] = {}
    for folded, tid in b.term_ids.items():
        if _is_one_word(folded):
            continue
        key, gaps = squeeze(folded)
        keys.setdefault(key, ([], []))[0].append((tid * FIELD_BITS, gaps))
    for fid, spec in enumerate(b.fuzzy_specs):
        if one_word_pieces(spec):
            for piece in spec.pieces:
                keys.setdefault(piece, ([], []))[1].append(fuzzy_token(fid, 0))
    if not keys:
        return None
    automaton = ahocorasick.Automaton(ahocorasick.STORE_ANY)
    for key, (entries, fuzzies) in keys.items():
        automaton.add_word(key, (len(key), tuple(entries), tuple(sorted(set(fuzzies)))))
    automaton.make_automaton()
    return automaton


def _tables(b: _Builder) -> Tables:
    words = {f: tid * FIELD_BITS for f, tid in b.term_ids.items() if _is_one_word(f)}
    pieces: dict[str, list[int]] = {}
    for fid, spec in enumerate(b.fuzzy_specs):
        if not one_word_pieces(spec):
            for piece in spec.pieces:
                if fid not in pieces.setdefault(piece, []):
                    pieces[piece].append(fid)
    return Tables(
        terms=_term_automaton(b),
        words=words,
        word_keys=frozenset(words),
        term_fields=tuple(sorted(b.term_fields)),
        fuzzy_specs=tuple(b.fuzzy_specs),
        pieces=_automaton(pieces),
        regexes=tuple(b.regexes),
    )


def _index(need: frozenset[int], rule: int, table: dict[int, set[int]]) -> None:
    for token in need:
        table.setdefault(token, set()).add(rule)


def compile_program(rules: Sequence[Rule]) -> Program:
    """Compile valid rules (see `rules._shape.check_rules`)."""
    b = _Builder()
    defaults = _field_ids(DEFAULT_FIELDS)
    nodes = tuple(b.node(rule.match, defaults) for rule in rules)
    first: dict[int, set[int]] = {}
    second: dict[int, set[int]] = {}
    single: set[int] = set()
    always: set[int] = set()
    for i, node in enumerate(nodes):
        needs = sorted(node.needs(), key=len)
        if not needs:
            always.add(i)
            continue
        _index(needs[0], i, first)
        if len(needs) > 1:
            _index(needs[1], i, second)
        else:
            single.add(i)
    return Program(
        rules=tuple(rules),
        nodes=nodes,
        tables=_tables(b),
        first={k: frozenset(v) for k, v in first.items()},
        second={k: frozenset(v) for k, v in second.items()},
        single=frozenset(single),
        always=frozenset(always),
    )
