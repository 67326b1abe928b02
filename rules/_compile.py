"""Compile rule trees once into what the fast matcher runs per document.

- Every distinct term of every rule gets an id. Terms of one word are looked up among the field's
  words (one set intersection with the word memo); the squeezed keys (`rules.text.squeeze`) of all
  other terms go into ONE Aho-Corasick automaton, so a field is scanned once for all terms whatever
  the number of rules, and only if it holds one of the words the terms need (`_key_gates`).
- Fuzzy terms get ids; their verdicts come from the same word memo (`rules._fuzzy`). A one-word
  fuzzy term is then exactly a token, like a term; one of several words has a token for its anchor
  words (a need), and its windows are scored only when a rule's answer depends on it.
- Each rule becomes a tree of `rules._compiled` nodes; `any` lists of terms and one-word fuzzy terms
  (and the `$lists` inside them) collapse into one set of tokens, and equal sub-trees into one node.
- An inverted index maps each token to the rules whose most selective and second most selective
  needs it meets (`rules._compiled`), so a document only evaluates rules that what was found in it
  could make true; rules with no known need (regex alternatives, `none`-only conditions) are
  evaluated for every document, and rules whose needs are their whole condition (`CNode.exact`)
  are not evaluated at all.
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
    NearOperand,
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
    """Rules by position, their compiled trees, the scanning tables, and the rule index: `index`
    maps a token to the rules whose most selective need it meets and to those whose second most
    selective need it meets; `single` rules have one need, `pair` two or more, `always` none.

    Sets of rules are ints, bit i for rule i: OR-ing a few 500-bit ints is far cheaper than the
    union of a few frozensets of hundreds of rules, which it replaced, and the bits come out in
    rule order."""

    rules: tuple[Rule, ...]
    nodes: tuple[CNode, ...]
    tables: Tables
    index: dict[int, tuple[int, int]]
    single: int
    pair: int
    always: int
    # Per rule, for those the index decides alone (`CNode.exact`), its terms' tokens: the rule's
    # spans are the places of those found, and its tree is never evaluated. None for the others.
    exact: tuple[frozenset[int] | None, ...]


@dataclass
class _Builder:
    term_ids: dict[str, int] = field(default_factory=dict)
    fuzzy_ids: dict[tuple[str, int], int] = field(default_factory=dict)
    fuzzy_specs: list[FuzzySpec] = field(default_factory=list)
    regex_ids: dict[str, int] = field(default_factory=dict)
    regexes: list[UserRegex] = field(default_factory=list)
    scan_fields: set[int] = field(default_factory=set)
    # Equal sub-trees (a `$list` or a `near` used by many rules) compile to one node, so that what a
    # document caches for a node (a `near`'s answer, an operand's occurrences) serves every rule.
    compiled: dict[tuple[Node, Fields], CNode] = field(default_factory=dict)
    operands: dict[tuple[tuple[OperandLeaf, ...], Fields], NearOperand] = field(
        default_factory=dict
    )

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
        key = (node, fields)
        found = self.compiled.get(key)
        if found is None:
            found = self.compiled[key] = self._node(node, fields)
        return found

    def _node(self, node: Node, fields: Fields) -> CNode:
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
        operands = []
        for operand in node.operands:
            leaves = tuple(
                self._operand_leaf(leaf, allowed, inner) for leaf, allowed in near_leaves(operand)
            )
            found = self.operands.get((leaves, inner))
            if found is None:
                found = self.operands[leaves, inner] = NearOperand(leaves, inner)
            operands.append(found)
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


def _is_word_char(c: str) -> bool:
    return c.isalnum() or c == "_"


def _gate_options(key: str, gaps: frozenset[int]) -> list[frozenset[str]]:
    """Sets of words, each holding a word that every hit of the squeezed `key` has in the text.

    A hit is the key with spaces at some of its gaps, between word boundaries. Take a run of word
    characters of the key: the text word holding its first character starts where the run starts
    (after a non-word character of the key, or at the hit's start) and ends at a gap of the run
    where the text has a space, or where the run ends; so it is the run up to one of its gaps, or
    all of it. Likewise the text word holding the run's last character is the run from one of its
    gaps, or all of it. Each run gives these two sets."""
    options: list[frozenset[str]] = []
    i, n = 0, len(key)
    while i < n:
        if not _is_word_char(key[i]):
            i += 1
            continue
        j = i
        while j < n and _is_word_char(key[j]):
            j += 1
        cuts = sorted(g for g in gaps if i < g < j)
        options.append(frozenset(key[i:c] for c in (*cuts, j)))
        options.append(frozenset(key[c:j] for c in (i, *cuts)))
        i = j
    return options


def _key_gates(b: _Builder) -> frozenset[bytes] | None:
    """Words of which a field must hold one to hold a hit of the term automaton; None: any field
    may (not seen: every term has a word character).

    Per term, one of its `_gate_options`: the one whose shortest word is longest. Short words are
    the common ones of news text, and the first word of a term is often one ("of North Korean
    origin", "from Pyongyang", "S-300"): gating on it sent most fields through the automaton."""
    gates: set[bytes] = set()
    for folded in b.term_ids:
        if _is_one_word(folded):
            continue
        options = _gate_options(*squeeze(folded))
        if not options:
            return None
        best = max(options, key=lambda words: min(map(len, words)))
        gates.update(w.encode("utf-8", "surrogatepass") for w in best)
    return frozenset(gates)


def _tables(b: _Builder) -> Tables:
    words: dict[bytes, tuple[int, ...]] = {
        f.encode("utf-8", "surrogatepass"): (tid * FIELD_BITS,)
        for f, tid in b.term_ids.items()
        if _is_one_word(f)
    }
    terms = _term_automaton(b)
    gates = _key_gates(b) if terms is not None else frozenset()
    # The gate words carry a token of no term (the next term id): the word memo's lookup finds them
    # with the terms, and no rule's need holds it.
    gate = len(b.term_ids) * FIELD_BITS if gates is not None else None
    for word in gates or ():
        words[word] = (*words.get(word, ()), len(b.term_ids) * FIELD_BITS)
    fuzzy = [(spec, fuzzy_token(fid, 0)) for fid, spec in enumerate(b.fuzzy_specs)]
    return Tables(
        terms=terms,
        gate=gate,
        memo=WordMemo(words, fuzzy),
        scan_fields=tuple(sorted(b.scan_fields)),
        fuzzy_specs=tuple(b.fuzzy_specs),
        regexes=tuple(b.regexes),
    )


def _index(need: frozenset[int], rule: int, table: dict[int, int]) -> None:
    for token in need:
        table[token] = table.get(token, 0) | 1 << rule


def compile_program(rules: Sequence[Rule]) -> Program:
    """Compile valid rules (see `rules._shape.check_rules`)."""
    b = _Builder()
    defaults = _field_ids(DEFAULT_FIELDS)
    nodes = tuple(b.node(rule.match, defaults) for rule in rules)
    first: dict[int, int] = {}
    second: dict[int, int] = {}
    single = pair = always = 0
    exact: list[frozenset[int] | None] = [None] * len(nodes)
    for i, node in enumerate(nodes):
        needs = sorted(node.needs(), key=len)
        if not needs:
            always |= 1 << i
            continue
        if node.exact and len(needs) <= 2:
            exact[i] = frozenset().union(*needs)
        _index(needs[0], i, first)
        if len(needs) > 1:
            _index(needs[1], i, second)
            pair |= 1 << i
        else:
            single |= 1 << i
    return Program(
        rules=tuple(rules),
        nodes=nodes,
        tables=_tables(b),
        index={t: (first.get(t, 0), second.get(t, 0)) for t in first.keys() | second.keys()},
        single=single,
        pair=pair,
        always=always,
        exact=tuple(exact),
    )
