"""Compile rule trees once into what the fast matcher runs per document.

- Every distinct term of every rule gets an id. Terms of one word are looked up among the field's
  words (one set intersection with the word memo); the squeezed keys (`rules.text.squeeze`) of all
  other terms go into ONE Aho-Corasick automaton, so a field is scanned once for all terms whatever
  the number of rules.
- Fuzzy terms get ids; their verdicts come from the same word memo (`rules._fuzzy`). A one-word
  fuzzy term is then exactly a token, like a term; one of several words has a token for its anchor
  words (a need), and its windows are scored only when a rule's answer depends on it.
- Each rule becomes a tree of `rules._compiled` nodes; `any` lists of terms and one-word fuzzy terms
  (and the `$lists` inside them) collapse into one set of tokens.
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
from rules._fuzzy import FuzzySpec, WordMemo, fuzzy_spec
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
    scan_fields: set[int] = field(default_factory=set)

    def term(self, text: str, fields: Fields) -> int:
        """The field-0 token of a term."""
        self.scan_fields.update(fields)
        return self.term_ids.setdefault(fold(text), len(self.term_ids)) * FIELD_BITS

    def fuzzy(self, node: Fuzzy, fields: Fields) -> int:
        spec = fuzzy_spec(node.text, node.score)
        fid = self.fuzzy_ids.get((spec.a, spec.score))
        if fid is None:
            fid = self.fuzzy_ids[spec.a, spec.score] = len(self.fuzzy_specs)
            self.fuzzy_specs.append(spec)
        self.scan_fields.update(fields)  # its verdicts come from the word scan
        return fid

    def leaf_token(self, node: Term | Fuzzy, fields: Fields) -> int | None:
        """The field-0 token of a term or a one-word fuzzy term (None for other fuzzy terms)."""
        if isinstance(node, Term):
            return self.term(node.text, fields)
        fid = self.fuzzy(node, fields)
        return fuzzy_token(fid, 0) if self.fuzzy_specs[fid].n == 1 else None

    def regex(self, pattern: str) -> int:
        rid = self.regex_ids.get(pattern)
        if rid is None:
            rid = self.regex_ids[pattern] = len(self.regexes)
            self.regexes.append(compile_regex(pattern))
        return rid

    def tokens(self, tokens: Sequence[int], fields: Fields) -> CTerms:
        return CTerms(frozenset(t + f for t in tokens for f in fields))

    def node(self, node: Node, fields: Fields) -> CNode:
        if isinstance(node, Term):
            return self.tokens([self.term(node.text, fields)], fields)
        if isinstance(node, Fuzzy):
            fid = self.fuzzy(node, fields)
            if self.fuzzy_specs[fid].n == 1:
                return self.tokens([fuzzy_token(fid, 0)], fields)
            return CFuzzy(fid, fields, self.fuzzy_specs[fid].filtered)
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
        tokens: list[int] = []
        others: list[CNode] = []
        self._flatten(children, fields, tokens, others)
        return ([self.tokens(tokens, fields)] if tokens else []) + others

    def _flatten(
        self, children: Sequence[Node], fields: Fields, tokens: list[int], others: list[CNode]
    ) -> None:
        """Terms and one-word fuzzy terms of an `any`, and of the plain `any` lists inside it, all
        go into one token set."""
        for child in children:
            token = self.leaf_token(child, fields) if isinstance(child, Term | Fuzzy) else None
            if token is not None:
                tokens.append(token)
            elif (
                isinstance(child, Bool)
                and child.any is not None
                and child.all is None
                and child.none is None
                and (child.fields is None or _field_ids(child.fields) == fields)
            ):
                self._flatten(child.any, fields, tokens, others)
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
        if isinstance(leaf, Regex):
            return OperandLeaf("regex", self.regex(leaf.pattern), ids)
        if isinstance(leaf, Term):
            return OperandLeaf("token", self.term(leaf.text, where), ids)
        fid = self.fuzzy(leaf, where)
        if self.fuzzy_specs[fid].n == 1:
            return OperandLeaf("token", fuzzy_token(fid, 0), ids)
        return OperandLeaf("fuzzy", fid, ids)


def _field_ids(names: Sequence[FieldName]) -> Fields:
    return tuple(FIELD_INDEX[n] for n in names)


def _is_one_word(folded: str) -> bool:
    """A term that is one word matches exactly the words equal to it (no separator can occur
    inside it, and its ends are word boundaries)."""
    return all(c.isalnum() or c == "_" for c in folded)


def _term_automaton(b: _Builder) -> Any:
    """Keys of the terms of several words (or with other characters than word characters)."""
    keys: dict[str, list[TermEntry]] = {}
    for folded, tid in b.term_ids.items():
        if not _is_one_word(folded):
            key, gaps = squeeze(folded)
            keys.setdefault(key, []).append((tid * FIELD_BITS, gaps))
    if not keys:
        return None
    automaton = ahocorasick.Automaton(ahocorasick.STORE_ANY)
    for key, entries in keys.items():
        automaton.add_word(key, (len(key), tuple(entries)))
    automaton.make_automaton()
    return automaton


def _key_prefixes(b: _Builder) -> frozenset[str] | None:
    """The words that can begin a hit of the term automaton; None: any text can hold one.

    A hit starts at a word start (its boundary check) and, as its key is not one word, runs past
    that first word. What follows the word in the text is a space, allowed only where the term had
    one (a gap), or the key's next character, then not a word character. So the first word is the
    key up to a gap or to its first non-word character: a field with none of these words holds no
    hit and is not scanned."""
    prefixes: set[str] = set()
    for folded in b.term_ids:
        if _is_one_word(folded):
            continue
        key, gaps = squeeze(folded)
        stop = next((i for i, c in enumerate(key) if not (c.isalnum() or c == "_")), len(key))
        if stop == 0:
            return None
        prefixes.update(key[:i] for i in (*gaps, stop) if 0 < i <= stop)
    return frozenset(prefixes)


def _tables(b: _Builder) -> Tables:
    words = {f: (tid * FIELD_BITS,) for f, tid in b.term_ids.items() if _is_one_word(f)}
    fuzzy = [(spec, fuzzy_token(fid, 0)) for fid, spec in enumerate(b.fuzzy_specs)]
    return Tables(
        terms=_term_automaton(b),
        term_prefixes=_key_prefixes(b),
        memo=WordMemo(words, fuzzy),
        scan_fields=tuple(sorted(b.scan_fields)),
        fuzzy_specs=tuple(b.fuzzy_specs),
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
