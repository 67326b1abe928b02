"""The rule file format (DESIGN §4): pydantic models for the mapping parts (file, rule, tests, test
case), whose unknown keys become located errors with did-you-mean, and the JSON Schema of the whole
format for editors and `monitor schema`.

Conditions are not modelled in pydantic: a union of eight shapes gives errors no analyst can read,
so `rules._conditions` checks them by hand. The JSON Schema describes them in `$defs/condition`."""

from __future__ import annotations

import copy
import re
from typing import Any

from pydantic import BaseModel, ConfigDict, field_validator

from monitor.model import LEVELS, Level
from rules._compose import LIST_NAME, MAX_QUERY_CHARS, MAX_REGEX_CHARS, MAX_TERM_CHARS
from rules._yaml import did_you_mean
from rules.ast import FIELD_NAMES

RULE_ID = re.compile(r"[a-z0-9][a-z0-9_-]*")
CONDITION_KEYS = (
    "any",
    "all",
    "none",
    "near",
    "within",
    "fuzzy",
    "score",
    "regex",
    "query",
    "fields",
)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class FileModel(_Strict):
    """The top level of a rule file; `lists` and `rules` are checked entry by entry, so one bad
    entry never hides the others."""

    lists: dict[Any, Any] | None = None
    rules: list[Any] | None = None


class TestsModel(_Strict):
    match: list[Any] = []
    no_match: list[Any] = []

    __test__ = False


class TestCaseModel(_Strict):
    title: str = ""
    summary: str = ""
    content: str = ""
    source: str = ""
    tags: list[str] = []

    __test__ = False


class RuleModel(_Strict):
    id: str
    title: str
    level: Level = "medium"
    match: Any = None
    query: Any = None
    notify: list[str] | None = None
    sources: list[str] | None = None
    tests: TestsModel | None = None

    @field_validator("id")
    @classmethod
    def _id(cls, value: str) -> str:
        if not RULE_ID.fullmatch(value):
            raise ValueError(
                f"rule id {value!r:.60} must be lower-case letters, digits, '-' and '_', "
                "starting with a letter or digit (like dprk-troops)"
            )
        return value

    @field_validator("tests", mode="before")
    @classmethod
    def _tests(cls, value: object) -> object:
        if value is not None and not isinstance(value, dict):
            raise ValueError("tests: is a mapping of `match:` and/or `no_match:` lists of examples")
        return value

    @field_validator("title")
    @classmethod
    def _title(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("title is empty")
        return value.strip()

    @field_validator("level", mode="before")
    @classmethod
    def _level(cls, value: object) -> object:
        if value not in LEVELS:
            raise ValueError(
                f"level must be one of {', '.join(LEVELS)}, got {str(value)!r:.40}"
                + did_you_mean(str(value).lower(), LEVELS)
            )
        return value


def _object(required: list[str], **props: Any) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": props,
        "required": required,
        "additionalProperties": False,
    }


_FIELDS = {"$ref": "#/$defs/fields"}
_FUZZY = {"type": "string", "minLength": 1, "maxLength": MAX_TERM_CHARS}
_SCORE = {"type": "integer", "minimum": 0, "maximum": 100, "default": 90}
_REGEX = {
    "type": "string",
    "minLength": 1,
    "maxLength": MAX_REGEX_CHARS,
    "description": "Python regex, case-insensitive unless it starts with (?-i).",
}
_QUERY = {"type": "string", "minLength": 1, "maxLength": MAX_QUERY_CHARS}


def _leaf_defs() -> dict[str, Any]:
    return {
        "term": {
            "type": "string",
            "description": "A word or phrase (case-insensitive; hyphen, space or nothing alike), "
            "or $name for a list.",
            "minLength": 1,
            "maxLength": MAX_TERM_CHARS,
            "pattern": r"\S",
        },
        "fields": {
            "type": "array",
            "description": "Fields every leaf below searches (default: title, summary, content).",
            "items": {"enum": list(FIELD_NAMES)},
            "minItems": 1,
            "uniqueItems": True,
        },
        "fuzzy": _object(["fuzzy"], fuzzy=_FUZZY, score=_SCORE, fields=_FIELDS),
        "regex": _object(["regex"], regex=_REGEX, fields=_FIELDS),
        "query": _object(["query"], query=_QUERY, fields=_FIELDS),
    }


def _group_defs() -> dict[str, Any]:
    conditions = {"type": "array", "items": {"$ref": "#/$defs/condition"}, "minItems": 1}
    operands = {"type": "array", "items": {"$ref": "#/$defs/operand"}}
    kinds = ("term", "fuzzy", "regex", "query", "near", "boolean")
    return {
        # Proximity operands carry no `fields` of their own: the near's fields apply.
        "operand": {
            "oneOf": [
                {"$ref": "#/$defs/term"},
                _object(["fuzzy"], fuzzy=_FUZZY, score=_SCORE),
                _object(["regex"], regex=_REGEX),
                _object(["any"], any={**operands, "minItems": 1}),
            ]
        },
        "near": _object(
            ["near", "within"],
            near={**operands, "minItems": 2},
            within={"type": "integer", "minimum": 1, "description": "Words apart, either order."},
            fields=_FIELDS,
        ),
        "boolean": {
            **_object([], any=conditions, all=conditions, none=conditions, fields=_FIELDS),
            "anyOf": [{"required": [k]} for k in ("any", "all", "none")],
        },
        "condition": {"oneOf": [{"$ref": f"#/$defs/{kind}"} for kind in kinds]},
    }


_TEST_CASE = {
    "type": "object",
    "description": "An example item; a plain string is used as its title.",
    "properties": {
        **{k: {"type": "string"} for k in ("title", "summary", "content", "source")},
        "tags": {"type": "array", "items": {"type": "string"}},
    },
    "additionalProperties": False,
    "minProperties": 1,
}


def _rule_defs() -> dict[str, Any]:
    case = {"oneOf": [{"type": "string", "minLength": 1}, _TEST_CASE]}
    cases = {"type": "array", "items": {"$ref": "#/$defs/testCase"}}
    rule = {
        "type": "object",
        "properties": {
            "id": {"type": "string", "pattern": f"^{RULE_ID.pattern}$"},
            "title": {"type": "string", "minLength": 1},
            "level": {"enum": list(LEVELS), "default": "medium"},
            "match": {"$ref": "#/$defs/condition"},
            "query": {"type": "string", "minLength": 1, "maxLength": MAX_QUERY_CHARS},
            "notify": {"type": "array", "items": {"type": "string"}, "uniqueItems": True},
            "sources": {
                "type": "array",
                "items": {"type": "string", "minLength": 1},
                "minItems": 1,
                "uniqueItems": True,
                "description": "Source ids, or tag:NAME for every source with that tag.",
            },
            "tests": {
                "type": "object",
                "properties": {"match": cases, "no_match": cases},
                "additionalProperties": False,
            },
        },
        "required": ["id", "title"],
        "oneOf": [{"required": ["match"]}, {"required": ["query"]}],
        "additionalProperties": False,
    }
    return {"rule": rule, "testCase": case}


_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "source-monitor rule file",
    "description": "Named term lists and rules (DESIGN §4). Lists are shared by every file loaded.",
    "type": ["object", "null"],
    "properties": {
        "lists": {
            "type": ["object", "null"],
            "propertyNames": {"pattern": f"^{LIST_NAME.pattern}$"},
            "additionalProperties": {
                "type": "array",
                "items": {"$ref": "#/$defs/term"},
                "minItems": 1,
            },
        },
        "rules": {"type": ["array", "null"], "items": {"$ref": "#/$defs/rule"}},
    },
    "additionalProperties": False,
    "$defs": {**_leaf_defs(), **_group_defs(), **_rule_defs()},
}


def rule_file_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of a rule file. Semantic checks (list names that exist,
    unique ids, regexes that compile, notifier names) are the loader's; this is for editors."""
    return copy.deepcopy(_SCHEMA)


__all__ = [
    "CONDITION_KEYS",
    "RULE_ID",
    "FileModel",
    "RuleModel",
    "TestCaseModel",
    "TestsModel",
    "rule_file_schema",
]
