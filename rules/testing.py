"""Run rules' inline `tests` (`monitor test`): every `match` example must match, every `no_match`
must not."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

from rules.ast import Document, Rule, TestCase
from rules.matcher import compile_rules


@dataclass(frozen=True)
class TestFailure:
    rule_id: str
    file: str
    line: int | None
    expected: bool  # True: should have matched
    case: TestCase

    __test__ = False

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        want = "should match but did not" if self.expected else "should not match but did"
        text = self.case.title or self.case.summary or self.case.content
        return f"{where}: [rule {self.rule_id}] {want}: {text!r}"


@dataclass(frozen=True)
class TestReport:
    rules: int
    cases: int
    failures: tuple[TestFailure, ...]

    __test__ = False


def case_document(case: TestCase, index: int) -> Document:
    return Document(
        id=f"test-{index}",
        title=case.title,
        summary=case.summary,
        content=case.content,
        source=case.source,
        source_tags=(),
        tags=case.tags,
    )


def run_rule_tests(rules: Sequence[Rule]) -> TestReport:
    failures: list[TestFailure] = []
    cases = 0
    for rule in rules:
        # An example with no source tests the words, not the rule's `sources` filter.
        unfiltered = compile_rules([dataclasses.replace(rule, sources=None)])
        filtered = compile_rules([rule])
        for expected, examples in ((True, rule.tests.match), (False, rule.tests.no_match)):
            for i, case in enumerate(examples):
                cases += 1
                matcher = filtered if case.source else unfiltered
                matched = bool(matcher.match(case_document(case, i)))
                if matched != expected:
                    line = case.line or rule.line
                    failures.append(TestFailure(rule.id, rule.file, line, expected, case))
    return TestReport(rules=len(rules), cases=cases, failures=tuple(failures))
