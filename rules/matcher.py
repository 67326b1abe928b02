"""The fast matcher: compile rules once, then match each document with one scan per field.

Per document: each field searched by some term is folded once; its words are looked up in the word
memo (one-word terms, and the fuzzy verdicts remembered per distinct word, see `rules._fuzzy`) by
one set intersection, and its text is scanned by the automaton of every term of several words when
it holds one of the words such a term needs; the rules that what was found could make true are
then evaluated in order, cheap conditions first (not at all when what was found decides them);
fuzzy windows are scored, regexes run and `near` computed only when the rule's answer depends on
them, and spans are made only for rules that hold. Answers and spans are exactly those of
`rules.reference`, whose docstring states the semantics; `tests/rules/test_equivalence.py` checks
it on generated rules and texts.
"""

from __future__ import annotations

from collections.abc import Sequence

from monitor.errors import RuleError
from rules._compile import Program, compile_program
from rules._fields import applies
from rules._shape import check_rules
from rules._state import DocState
from rules.ast import Document, Rule, RuleMatch
from rules.explain import Explanation
from rules.reference import explain_rule


class Matcher:
    """Compiled rules. Immutable and without I/O: one instance may serve every thread."""

    def __init__(self, program: Program) -> None:
        self._program = program
        self.rules: tuple[Rule, ...] = program.rules
        self._by_id = {rule.id: rule for rule in reversed(program.rules)}

    def match(self, doc: Document) -> list[RuleMatch]:
        """The rules that match `doc`, in the order they were given, with their spans."""
        program = self._program
        state = DocState(program.tables, doc)
        # Rule sets are ints (`Program`). A plain loop: a document has a handful of tokens, fewer
        # than it takes for `map` and `reduce` to repay making them.
        first = second = 0
        get = program.index.get
        for token in state.scan():
            masks = get(token)
            if masks is not None:
                first |= masks[0]
                second |= masks[1]
        # Rules whose most selective need is met, and their second one if they have one.
        candidates = first & (program.single | second & program.pair) | program.always
        out: list[RuleMatch] = []
        rules, nodes, exact = program.rules, program.nodes, program.exact
        while candidates:  # lowest bit first: the rules in order
            bit = candidates & -candidates
            candidates ^= bit
            i = bit.bit_length() - 1
            rule = rules[i]
            if rule.sources is not None and not applies(rule, doc):
                continue
            tokens = exact[i]
            if tokens is not None:  # it holds: the index said so
                places = state.term_places(tokens)
            else:
                node = nodes[i]
                if not node.held(state):
                    continue
                places = []
                node.spans(state, places)
            out.append(RuleMatch(rule.id, rule.level, state.spans(places)))
        return out

    def explain(self, doc: Document, rule_id: str) -> Explanation:
        """Why rule `rule_id` does or does not match `doc`: every node evaluated, with its spans."""
        rule = self._by_id.get(rule_id)
        if rule is None:
            raise RuleError(f"no rule with id {rule_id!r}")
        return explain_rule(rule, doc)


def compile_rules(rules: Sequence[Rule]) -> Matcher:
    """Check and compile `rules`; raises `RuleError` listing every problem (located by rule)."""
    check_rules(rules)
    return Matcher(compile_program(rules))


__all__ = ["Matcher", "compile_rules"]
