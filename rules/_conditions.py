"""YAML conditions (DESIGN §4) compiled to the rule tree, every mistake reported where it stands.

A condition is a string (a term, or `$list`), or a mapping of one kind: `fuzzy` (+`score`), `regex`,
`query`, `near` (+`within`), or any mix of `any`/`all`/`none`. Every mapping may add `fields`. The
compiler keeps going after a mistake, so one pass reports them all; a failed part compiles to None.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from monitor.errors import Location, Problem
from rules._compose import (
    DEFAULT_FUZZY_SCORE,
    MAX_DEPTH,
    near_operand,
    operator_problem,
    regex_problem,
    score_problem,
    shorten,
    term_problem,
    unknown_list,
    within_problem,
)
from rules._files import RuleFile
from rules._schema import CONDITION_KEYS
from rules._yaml import did_you_mean
from rules.ast import FIELD_NAMES, Bool, FieldName, Fuzzy, Near, Node, Regex, Term
from rules.query import QuerySyntaxError, parse_query

Path = tuple[str | int, ...]

# The keys each kind of condition mapping accepts; `fields` goes with every kind.
_KINDS: dict[str, frozenset[str]] = {
    "fuzzy": frozenset({"fuzzy", "score"}),
    "regex": frozenset({"regex"}),
    "query": frozenset({"query"}),
    "near": frozenset({"near", "within"}),
    "boolean": frozenset({"any", "all", "none"}),
}
_OWNER = {"score": "fuzzy", "within": "near"}


def describe(value: object) -> str:
    """A YAML value's kind in the user's words."""
    if isinstance(value, bool):
        return "true/false (YAML reads yes, no, on, off, true, false as such)"
    if isinstance(value, int | float):
        return f"the number {value}"
    if value is None:
        return "nothing"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, str):
        return f"the text {shorten(value)}"
    return f"a {type(value).__name__} ({shorten(str(value))})"


@dataclass
class Conditions:
    """Compiles the conditions of one rule of one file."""

    file: RuleFile
    lists: Mapping[str, Bool]
    rule_id: str | None
    problems: list[Problem] = field(default_factory=list)

    def error(self, path: Path, message: str, *, key: bool = False) -> None:
        self.problems.append(Problem(self.file.doc.location(path, key=key), message, self.rule_id))

    def condition(self, value: Any, path: Path, depth: int = 0) -> Node | None:
        if depth > MAX_DEPTH:
            self.error(path, f"conditions are nested too deeply (more than {MAX_DEPTH} levels)")
            return None
        if isinstance(value, str):
            return self.string(value, path)
        if isinstance(value, dict):
            return self.mapping(value, path, depth)
        if isinstance(value, list):
            self.error(
                path,
                "a list is not one condition: write `any: [...]` (one of them) "
                "or `all: [...]` (every one)",
            )
        elif value is None:
            self.error(path, "empty condition")
        else:
            self.error(path, f"a term must be text, not {describe(value)}: put it in quotes")
        return None

    def string(self, text: str, path: Path) -> Node | None:
        stripped = text.strip()
        if stripped.startswith("$"):
            return self.list_ref(stripped, path)
        problem = term_problem(text) or operator_problem(text)
        if problem:
            self.error(path, problem)
            return None
        return Term(stripped)

    def list_ref(self, ref: str, path: Path) -> Node | None:
        node = self.lists.get(ref[1:])
        if node is None:
            self.error(path, unknown_list(ref, self.lists))
        return node

    def mapping(self, value: dict[Any, Any], path: Path, depth: int) -> Node | None:
        if not value:
            self.error(path, "empty condition {}")
            return None
        kind = self.kind_of(value, path)
        if kind is None:
            return None
        if kind == "boolean":
            node = self.boolean(value, path, depth)
        elif kind == "near":
            node = self.near(value, path, depth)
        else:
            node = self.leaf(kind, value, path)
        fields = self.fields(value["fields"], (*path, "fields")) if "fields" in value else None
        if node is None or fields is None:
            return node
        if isinstance(node, Bool | Near) and node.fields is None:
            return dataclasses.replace(node, fields=fields)
        return Bool(all=(node,), fields=fields)

    def kind_of(self, value: dict[Any, Any], path: Path) -> str | None:
        """Which kind of condition the mapping is, after reporting keys that do not belong."""
        ok = True
        for key in value:
            if key not in CONDITION_KEYS:
                hint = did_you_mean(str(key), CONDITION_KEYS)
                name = shorten(str(key), 40)
                self.error((*path, str(key)), f"unknown key {name} in a condition{hint}", key=True)
                ok = False
        kinds = [k for k, keys in _KINDS.items() if keys & value.keys() - _OWNER.keys()]
        if len(kinds) > 1:
            a, b = (sorted(_KINDS[k] & value.keys())[0] for k in kinds[:2])
            self.error(
                path,
                f"one condition cannot be both '{a}' and '{b}': list them under `all:` (both) "
                "or `any:` (either)",
            )
            return None
        if not kinds:
            if ok:
                self.error(
                    path, "condition needs one of: any, all, none, near, fuzzy, regex, query"
                )
            return None
        kind = kinds[0]
        for key in value.keys() & _OWNER.keys():
            if _OWNER[key] != kind:
                self.error((*path, key), f"'{key}' goes with '{_OWNER[key]}'", key=True)
                ok = False
        return kind if ok else None

    def leaf(self, kind: str, value: dict[Any, Any], path: Path) -> Node | None:
        text = value[kind]
        if not isinstance(text, str):
            self.error((*path, kind), f"{kind}: must be text, not {describe(text)}")
            return None
        if kind == "regex":
            problem = regex_problem(text)
            if problem:
                self.error((*path, kind), problem)
            return None if problem else Regex(text)
        if kind == "query":
            return self.query(text, (*path, kind))
        problem = term_problem(text)
        score = value.get("score", DEFAULT_FUZZY_SCORE)
        if problem:
            self.error((*path, kind), problem)
        score_error = score_problem(score)
        if score_error:
            self.error((*path, "score"), score_error)
        return None if problem or score_error else Fuzzy(text.strip(), score)

    def query(self, text: str, path: Path) -> Node | None:
        try:
            return parse_query(text, self.lists)
        except QuerySyntaxError as e:
            where, exact = self.query_location(path, text, e.column)
            suffix = "" if exact else f" (column {e.column} of the query)"
            self.problems.append(Problem(where, f"query: {e.message}{suffix}", self.rule_id))
            return None

    def query_location(self, path: Path, text: str, column: int) -> tuple[Location, bool]:
        """Where column `column` of a query stands in the file: exact when the query is written on
        one line as a plain or quoted scalar without escapes, else the start of the value."""
        start = self.file.doc.location(path)
        if start.line is None or start.column is None or start.line > len(self.file.lines):
            return start, False
        line = self.file.lines[start.line - 1]
        offset = start.column - 1
        if line[offset : offset + 1] in ("'", '"'):
            offset += 1
        if line[offset : offset + len(text)] != text:
            return start, False
        return Location(start.file, start.line, offset + column), True

    def boolean(self, value: dict[Any, Any], path: Path, depth: int) -> Node | None:
        groups: dict[str, tuple[Node, ...] | None] = {"any": None, "all": None, "none": None}
        ok = True
        for key in groups:
            if key not in value:
                continue
            items = value[key]
            if not isinstance(items, list) or not items:
                what = "is empty" if items == [] else f"must be a list, not {describe(items)}"
                self.error((*path, key), f"{key}: {what}")
                ok = False
                continue
            children = [
                self.condition(item, (*path, key, i), depth + 1) for i, item in enumerate(items)
            ]
            nodes = tuple(c for c in children if c is not None)
            ok = ok and len(nodes) == len(children)
            groups[key] = nodes
        if not ok:
            return None
        return Bool(any=groups["any"], all=groups["all"], none=groups["none"])

    def near(self, value: dict[Any, Any], path: Path, depth: int) -> Node | None:
        items = value["near"]
        within = value.get("within")
        ok = True
        if "within" not in value:
            self.error(path, "near: needs `within: N` (how many words apart, at most)")
            ok = False
        elif problem := within_problem(within):
            self.error((*path, "within"), problem)
            ok = False
        if not isinstance(items, list) or len(items) < 2:
            self.error((*path, "near"), "near: needs a list of at least two terms")
            return None
        operands: list[Node] = []
        for i, item in enumerate(items):
            node = self.condition(item, (*path, "near", i), depth + 1)
            operand = near_operand(node) if node is not None else None
            if node is not None and operand is None:
                self.error(
                    (*path, "near", i),
                    "near: operands are terms, $lists, {fuzzy: ...}, {regex: ...} "
                    "or {any: [...]} of these",
                )
            ok = ok and operand is not None
            if operand is not None:
                operands.append(operand)
        if not ok or not isinstance(within, int):
            return None
        return Near(tuple(operands), within)

    def fields(self, value: Any, path: Path) -> tuple[FieldName, ...] | None:
        if not isinstance(value, list) or not value:
            self.error(
                path, f"fields: must be a list such as [title, summary], not {describe(value)}"
            )
            return None
        out: list[FieldName] = []
        for i, name in enumerate(value):
            match = next((f for f in FIELD_NAMES if f == name), None)
            if match is None:
                hint = (
                    did_you_mean(str(name), FIELD_NAMES) or f" (fields: {', '.join(FIELD_NAMES)})"
                )
                self.error((*path, i), f"unknown field {shorten(str(name), 40)}{hint}")
            elif match in out:
                self.error((*path, i), f"field '{match}' is listed twice")
            else:
                out.append(match)
        return tuple(out) if len(out) == len(value) else None


__all__ = ["Conditions", "describe"]
