"""The rule file schema: the pydantic models behind the loader, and the JSON Schema for editors,
kept in step with them and with what the loader accepts and refuses."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from monitor.errors import RuleError
from monitor.model import LEVELS
from rules import load_rules, rule_file_schema
from rules._schema import CONDITION_KEYS, FileModel, RuleModel, TestCaseModel, TestsModel
from rules.ast import FIELD_NAMES

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "rules"
VALID_FILES = sorted(p for p in (FIXTURES / "valid").rglob("*.y*ml") if not p.name.startswith("."))


def _validator() -> Any:
    """A Draft 2020-12 validator of the rule file schema (jsonschema is a test-only helper)."""
    jsonschema = pytest.importorskip("jsonschema")
    schema = rule_file_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def _doc(text: str) -> Any:
    return yaml.safe_load(textwrap.dedent(text))


# --- structure, always checked --------------------------------------------------------------------


def test_schema_is_plain_json_and_a_fresh_copy_each_time() -> None:
    schema = rule_file_schema()
    assert json.loads(json.dumps(schema)) == schema
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    schema["$defs"].clear()
    assert rule_file_schema()["$defs"]


def test_every_ref_points_at_a_definition() -> None:
    schema = rule_file_schema()
    refs: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if "$ref" in node:
                refs.append(node["$ref"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(schema)
    assert refs
    for ref in refs:
        assert ref.startswith("#/$defs/")
        assert ref.removeprefix("#/$defs/") in schema["$defs"], ref


def test_schema_keys_match_the_models() -> None:
    schema = rule_file_schema()
    defs = schema["$defs"]
    assert set(schema["properties"]) == set(FileModel.model_fields)
    assert set(defs["rule"]["properties"]) == set(RuleModel.model_fields)
    assert set(defs["rule"]["required"]) == {
        name for name, f in RuleModel.model_fields.items() if f.is_required()
    }
    assert set(defs["rule"]["properties"]["tests"]["properties"]) == set(TestsModel.model_fields)
    case_object = defs["testCase"]["oneOf"][1]
    assert set(case_object["properties"]) == set(TestCaseModel.model_fields)
    assert defs["rule"]["properties"]["level"]["enum"] == list(LEVELS)
    assert defs["fields"]["items"]["enum"] == list(FIELD_NAMES)


def test_condition_keys_match_the_loader() -> None:
    defs = rule_file_schema()["$defs"]
    kinds = ("fuzzy", "regex", "query", "near", "boolean")
    keys = set().union(*(defs[kind]["properties"] for kind in kinds))
    assert keys == set(CONDITION_KEYS)


# --- the pydantic models --------------------------------------------------------------------------


def test_rule_model_validators() -> None:
    model = RuleModel.model_validate({"id": "dprk-troops_2", "title": " T ", "match": "x"})
    assert (model.id, model.title, model.level) == ("dprk-troops_2", "T", "medium")
    for bad_id in ("KN23", "-x", "_x", "a b", "", "ké"):
        with pytest.raises(ValidationError, match="rule id"):
            RuleModel.model_validate({"id": bad_id, "title": "t"})
    with pytest.raises(ValidationError, match=r"got 'Critical' \(did you mean 'critical'\?\)"):
        RuleModel.model_validate({"id": "a", "title": "t", "level": "Critical"})
    with pytest.raises(ValidationError, match="valid string"):
        RuleModel.model_validate({"id": "a", "title": 5})
    with pytest.raises(ValidationError, match="valid string"):
        RuleModel.model_validate({"id": "a", "title": "t", "notify": [1]})
    with pytest.raises(ValidationError, match="Extra inputs"):
        TestCaseModel.model_validate({"body": "x"})


# --- agreement with the loader, through jsonschema ----------------------------------------------


def test_the_schema_itself_is_valid_draft_2020_12() -> None:
    _validator()


@pytest.mark.parametrize("path", VALID_FILES, ids=lambda p: p.name)
def test_valid_fixture_files_validate(path: Path) -> None:
    assert VALID_FILES
    _validator().validate(yaml.safe_load(path.read_text(encoding="utf-8")))


ACCEPTED = [
    "rules:\n  - {id: a, title: t, match: x}\n",
    "rules:\n  - {id: a, title: t, query: 'x AND y'}\n",
    "rules:\n  - {id: a, title: t, level: info, match: {any: [x, {fuzzy: y, score: 0}]}}\n",
    "rules:\n  - {id: a, title: t, match: {all: [x], none: [y], fields: [title, link]}}\n",
    "rules:\n  - {id: a, title: t, match: {near: [x, {any: [y, {regex: z}]}], within: 1}}\n",
    "rules:\n  - {id: a, title: t, match: {regex: 'x', fields: [link]}}\n",
    "rules:\n  - {id: a, title: t, match: {query: 'x OR y', fields: [title]}}\n",
    "rules:\n  - {id: a, title: t, match: x, notify: [], sources: [isw, 'tag:news']}\n",
    "rules:\n  - {id: a, title: t, match: x, tests: {match: [y, {summary: s, tags: [t]}]}}\n",
    "lists:\n  l-1_x: [a, b]\nrules:\n  - {id: a, title: t, match: $l-1_x}\n",
    "rules:\n",
    "",
]

REFUSED = [
    "rulez: []\n",
    "rules:\n  - {id: a, title: t, match: x, levl: high}\n",
    "rules:\n  - {id: a, match: x}\n",
    "rules:\n  - {id: A, title: t, match: x}\n",
    "rules:\n  - {id: a, title: t}\n",
    "rules:\n  - {id: a, title: t, match: x, query: y}\n",
    "rules:\n  - {id: a, title: t, level: severe, match: x}\n",
    "rules:\n  - {id: a, title: t, match: {anny: [x]}}\n",
    "rules:\n  - {id: a, title: t, match: {any: []}}\n",
    "rules:\n  - {id: a, title: t, match: {near: [x, y]}}\n",
    "rules:\n  - {id: a, title: t, match: {near: [x, y], within: 0}}\n",
    "rules:\n  - {id: a, title: t, match: {near: [x], within: 2}}\n",
    "rules:\n  - {id: a, title: t, match: {near: [x, {all: [y]}], within: 2}}\n",
    "rules:\n  - {id: a, title: t, match: {fuzzy: x, score: 101}}\n",
    "rules:\n  - {id: a, title: t, match: {fuzzy: x, within: 3}}\n",
    "rules:\n  - {id: a, title: t, match: {fuzzy: x, any: [y]}}\n",
    "rules:\n  - {id: a, title: t, match: {any: [x], fields: [body]}}\n",
    "rules:\n  - {id: a, title: t, match: {any: [x, 23]}}\n",
    "rules:\n  - {id: a, title: t, match: {any: [x, '']}}\n",
    "rules:\n  - {id: a, title: t, match: [x, y]}\n",
    "rules:\n  - {id: a, title: t, match: x, sources: []}\n",
    "rules:\n  - {id: a, title: t, match: x, tests: {match: [{body: y}]}}\n",
    "rules:\n  - {id: a, title: t, match: x, tests: {no-match: [y]}}\n",
    "lists:\n  l: []\n",
    "lists:\n  bad name: [x]\n",
    "lists:\n  l: [x, 5]\n",
    "- a list\n",
]


@pytest.mark.parametrize("text", ACCEPTED)
def test_what_the_loader_accepts_the_schema_accepts(tmp_path: Path, text: str) -> None:
    path = tmp_path / "r.yaml"
    path.write_text(text, encoding="utf-8")
    load_rules([path])
    _validator().validate(_doc(text))


@pytest.mark.parametrize("text", REFUSED)
def test_what_the_schema_refuses_the_loader_refuses(tmp_path: Path, text: str) -> None:
    validator = _validator()
    assert list(validator.iter_errors(_doc(text))), "the schema should refuse this"
    path = tmp_path / "r.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(RuleError):
        load_rules([path])
