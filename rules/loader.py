"""Loading rule files (DESIGN §4): files and folders in, one validated `RuleSet` out, or one
`RuleError` listing every problem of every file (`file:line:col: [rule id] message`, with
did-you-mean for typos).

Order of work: find the files, read each safely, collect the `lists` of all files (they are shared),
then compile every rule against them. Cross-file checks (duplicate rule ids and list names) name the
first definition."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

from pydantic import ValidationError

from monitor.errors import Location, Problem, RuleError
from rules._compose import (
    LIST_NAME,
    list_node,
    only_excludes,
    operator_problem,
    shorten,
    term_problem,
)
from rules._conditions import Conditions, describe
from rules._files import RuleFile, discover, read_rule_file
from rules._schema import FileModel, RuleModel, TestCaseModel, rule_file_schema
from rules._yaml import did_you_mean, problems_from_validation
from rules.ast import Bool, Node, Rule, RuleTests, TestCase

MAX_PROBLEMS = 200  # a 10,000-term list of numbers should not print 10,000 lines


@dataclass(frozen=True)
class RuleSet:
    """Every rule of the files loaded, in file order; `lists` are the named term lists."""

    rules: tuple[Rule, ...]
    lists: Mapping[str, tuple[str, ...]]
    files: tuple[Path, ...]


def load_rules(
    paths: Sequence[Path],
    *,
    notifiers: Collection[str] | None = None,
    sources: Collection[str] | None = None,
) -> RuleSet:
    """Load rule files and folders (every *.yaml / *.yml inside, recursively, sorted). `notify:`
    names are checked against `notifiers` and source ids in `sources:` against `sources`, when
    given. Raises `RuleError` with all problems found."""
    found, problems = discover(paths)
    files: list[RuleFile] = []
    for path in found:
        loaded = read_rule_file(path)
        if isinstance(loaded, Problem):
            problems.append(loaded)
        else:
            files.append(loaded)
    parts = [(file, *_top_level(file, problems)) for file in files]
    lists, broken = _collect_lists([(file, data) for file, data, _ in parts], problems)
    nodes = {name: list_node(name, terms) for name, terms in lists.items()}
    # A list with a bad term is reported once; rules using it should not add "unknown list".
    nodes.update((name, list_node(name, (name,))) for name in broken)
    checker = _RuleChecker(nodes, notifiers, sources, problems)
    for file, _, rules in parts:
        for index, raw in enumerate(rules):
            checker.add(file, index, raw)
    if problems:
        raise RuleError(_ordered(problems, found))
    return RuleSet(tuple(checker.rules), MappingProxyType(lists), tuple(found))


def _top_level(file: RuleFile, problems: list[Problem]) -> tuple[dict[Any, Any], list[Any]]:
    """The `lists` mapping and `rules` list of a file, each empty when absent or unusable."""
    data = file.doc.data
    if data is None:
        return {}, []
    if not isinstance(data, dict):
        problems.append(
            Problem(
                file.doc.location(()),
                f"a rule file is a mapping with `lists:` and/or `rules:`, not {describe(data)}",
            )
        )
        return {}, []
    try:
        FileModel.model_validate(data)
    except ValidationError as e:
        problems.extend(problems_from_validation(e, file.doc, FileModel))
    lists, rules = data.get("lists"), data.get("rules")
    return (lists if isinstance(lists, dict) else {}), (rules if isinstance(rules, list) else [])


def _collect_lists(
    parts: list[tuple[RuleFile, dict[Any, Any]]], problems: list[Problem]
) -> tuple[dict[str, tuple[str, ...]], set[str]]:
    """The valid lists, and the names of those defined with mistakes."""
    lists: dict[str, tuple[str, ...]] = {}
    broken: set[str] = set()
    defined: dict[str, Location] = {}
    for file, data in parts:
        for name, terms in data.items():
            path = ("lists", str(name))
            where = file.doc.location(path, key=True)
            if not isinstance(name, str) or not LIST_NAME.fullmatch(name):
                problems.append(
                    Problem(
                        where,
                        f"list name {shorten(str(name), 40)} must be letters, digits, '-' and '_'",
                    )
                )
                continue
            if name in defined:
                problems.append(
                    Problem(where, f"list '${name}' is already defined at {defined[name]}")
                )
                continue
            defined[name] = where
            checked = _list_terms(file, path, terms, problems)
            if checked is not None:
                lists[name] = checked
            else:
                broken.add(name)
    return lists, broken


def _list_terms(
    file: RuleFile, path: tuple[str, ...], terms: Any, problems: list[Problem]
) -> tuple[str, ...] | None:
    if not isinstance(terms, list) or not terms:
        what = "is empty" if terms == [] else f"must be a list of terms, not {describe(terms)}"
        problems.append(Problem(file.doc.location(path), f"list '${path[-1]}' {what}"))
        return None
    out: dict[str, None] = {}  # ordered, and duplicates in long lists are harmless: kept once
    ok = True
    for i, term in enumerate(terms):
        if not isinstance(term, str):
            problem: str | None = f"a term must be text, not {describe(term)}: put it in quotes"
        elif term.strip().startswith("$"):
            problem = f"a list holds terms, not other lists ({shorten(term.strip(), 40)})"
        else:
            problem = term_problem(term) or operator_problem(term)
        if problem:
            problems.append(Problem(file.doc.location((*path, i)), problem))
            ok = False
        elif isinstance(term, str):
            out[term.strip()] = None
    return tuple(out) if ok else None


class _RuleChecker:
    """Compiles rules one by one, remembering ids across files."""

    def __init__(
        self,
        lists: Mapping[str, Bool],
        notifiers: Collection[str] | None,
        sources: Collection[str] | None,
        problems: list[Problem],
    ) -> None:
        self.lists = lists
        self.notifiers = notifiers
        self.sources = sources
        self.problems = problems
        self.rules: list[Rule] = []
        self.ids: dict[str, Location] = {}

    def add(self, file: RuleFile, index: int, raw: Any) -> None:
        path = ("rules", index)
        if not isinstance(raw, dict):
            message = (
                f"a rule is a mapping with id, title and match (or query), not {describe(raw)}"
            )
            self.problems.append(Problem(file.doc.location(path), message))
            return
        rule_id = raw.get("id") if isinstance(raw.get("id"), str) else None
        before = len(self.problems)
        model = self.model(file, path, raw, rule_id)
        self.check_unique(file, path, rule_id)
        conditions = Conditions(file, self.lists, rule_id)
        match = _match(conditions, raw, path)
        self.problems.extend(conditions.problems)
        tests = _Cases(file, path, rule_id, self.problems).tests(raw.get("tests"))
        self.check_names(file, path, raw, rule_id)
        if model is None or match is None or len(self.problems) > before:
            return
        self.rules.append(
            Rule(
                id=model.id,
                title=model.title,
                level=model.level,
                match=match,
                notify=tuple(model.notify) if model.notify is not None else None,
                sources=tuple(model.sources) if model.sources is not None else None,
                tests=tests,
                file=str(file.path),
                line=file.doc.location(path).line,
            )
        )

    def model(
        self, file: RuleFile, path: tuple[str, int], raw: dict[Any, Any], rule_id: str | None
    ) -> RuleModel | None:
        try:
            return RuleModel.model_validate(raw)
        except ValidationError as e:
            found = problems_from_validation(e, file.doc, RuleModel, prefix=path, rule_id=rule_id)
            self.problems.extend(found)
            return None

    def check_unique(self, file: RuleFile, path: tuple[str, int], rule_id: str | None) -> None:
        if rule_id is None:
            return
        where = file.doc.location((*path, "id"))
        if rule_id in self.ids:
            message = f"duplicate rule id '{rule_id}' (first defined at {self.ids[rule_id]})"
            self.problems.append(Problem(where, message, rule_id))
        else:
            self.ids[rule_id] = where

    def check_names(
        self, file: RuleFile, path: tuple[str, int], raw: dict[Any, Any], rule_id: str | None
    ) -> None:
        """`notify:` names configured notifiers, `sources:` configured source ids or `tag:NAME`."""
        for key, known in (("notify", self.notifiers), ("sources", self.sources)):
            names = raw.get(key)
            if not isinstance(names, list):
                continue
            if key == "sources" and not names:
                message = "sources: is empty; leave it out to apply the rule to every source"
                self.problems.append(Problem(file.doc.location((*path, key)), message, rule_id))
            seen: set[str] = set()
            for i, name in enumerate(names):
                if not isinstance(name, str):
                    continue  # reported by the model
                problem = _name_problem(key, name, known, seen)
                if problem:
                    where = file.doc.location((*path, key, i))
                    self.problems.append(Problem(where, problem, rule_id))
                seen.add(name)


def _name_problem(key: str, name: str, known: Collection[str] | None, seen: set[str]) -> str | None:
    what = "notifier" if key == "notify" else "source"
    if name in seen:
        return f"{what} '{shorten(name, 40)[1:-1]}' is listed twice"
    if key == "sources" and name.startswith("tag:"):
        return None if name[4:].strip() else "tag: needs a tag name, like tag:think-tank"
    if known is None or name in known:
        return None
    if not known:
        return f"unknown {what} '{shorten(name, 40)[1:-1]}' (no {what}s are configured)"
    hint = did_you_mean(name, known)
    if not hint and len(known) <= 12:
        hint = f" (configured: {', '.join(sorted(known))})"
    return f"unknown {what} '{shorten(name, 40)[1:-1]}'{hint}"


def _match(conditions: Conditions, raw: dict[Any, Any], path: tuple[str, int]) -> Node | None:
    """A rule's `match:` condition or `query:` string, exactly one of them."""
    if "match" in raw and "query" in raw:
        conditions.error((*path, "query"), "give either match: or query:, not both", key=True)
        return None
    if "query" in raw:
        key, text = "query", raw["query"]
        if not isinstance(text, str):
            conditions.error((*path, key), f"query: must be text, not {describe(text)}")
            return None
        node = conditions.query(text, (*path, key))
    elif "match" in raw:
        key = "match"
        node = conditions.condition(raw["match"], (*path, key))
    else:
        conditions.error(path, "rule needs match: (a condition) or query: (a query string)")
        return None
    if node is not None and only_excludes(node):
        conditions.error(
            (*path, key),
            "the rule only excludes (none: / NOT), so it would match almost every item; "
            "say what an item must contain",
        )
        return None
    return node


class _Cases:
    """A rule's inline `tests:` examples."""

    def __init__(
        self, file: RuleFile, path: tuple[str, int], rule_id: str | None, problems: list[Problem]
    ) -> None:
        self.file = file
        self.path = path
        self.rule_id = rule_id
        self.problems = problems

    def tests(self, raw: Any) -> RuleTests:
        if not isinstance(raw, dict):
            return RuleTests()  # absent, or reported by the model
        groups = {
            key: self.cases(raw.get(key), (*self.path, "tests", key))
            for key in ("match", "no_match")
        }
        return RuleTests(match=groups["match"], no_match=groups["no_match"])

    def cases(self, raw: Any, path: tuple[str | int, ...]) -> tuple[TestCase, ...]:
        if not isinstance(raw, list):
            return ()
        out = []
        for i, value in enumerate(raw):
            case = self.case(value, (*path, i))
            if case is not None:
                out.append(case)
        return tuple(out)

    def case(self, value: Any, path: tuple[str | int, ...]) -> TestCase | None:
        line = self.file.doc.location(path).line
        if isinstance(value, str) and value.strip():
            return TestCase(title=value, line=line)
        if isinstance(value, dict):
            try:
                model = TestCaseModel.model_validate(value)
            except ValidationError as e:
                self.problems.extend(
                    problems_from_validation(
                        e, self.file.doc, TestCaseModel, prefix=path, rule_id=self.rule_id
                    )
                )
                return None
            if model.title.strip() or model.summary.strip() or model.content.strip():
                return TestCase(
                    model.title, model.summary, model.content, model.source, tuple(model.tags), line
                )
        message = (
            "a test case is a text (used as the title) or a mapping of title, summary, content, "
            "source, tags with some text"
        )
        self.problems.append(Problem(self.file.doc.location(path), message, self.rule_id))
        return None


def _ordered(problems: list[Problem], files: Sequence[Path]) -> list[Problem]:
    """By file (in load order), line and column; capped so hostile input cannot flood the output."""
    rank = {str(path): i for i, path in enumerate(files)}
    unique = list(dict.fromkeys(problems))
    unique.sort(
        key=lambda p: (rank.get(p.location.file, -1), p.location.line or 0, p.location.column or 0)
    )
    if len(unique) <= MAX_PROBLEMS:
        return unique
    rest = len(unique) - MAX_PROBLEMS
    more = Problem(unique[MAX_PROBLEMS].location, f"... and {rest} more problems not shown")
    return [*unique[:MAX_PROBLEMS], more]


__all__ = ["RuleSet", "load_rules", "rule_file_schema"]
