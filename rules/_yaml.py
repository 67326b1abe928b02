"""YAML with positions: load a document, remember where every key and value stands, and turn
pydantic validation errors into `file:line:col: message` problems with did-you-mean suggestions.

Shared by the config loader (`monitor.config`) and the rule loader: both are user-edited YAML whose
errors must point at the line to fix.
"""

from __future__ import annotations

import difflib
import types
import typing
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Union, get_args, get_origin

import yaml
from pydantic import BaseModel, ValidationError

from monitor.errors import Location, Problem

Path = tuple[str | int, ...]

# libyaml's parser when present: about ten times faster on large rule files.
_LOADER: type[yaml.SafeLoader] | type[yaml.CSafeLoader] = getattr(
    yaml, "CSafeLoader", yaml.SafeLoader
)


@dataclass(frozen=True)
class Positioned:
    """A loaded YAML document with the 1-based position of every key and value, by path."""

    data: Any
    file: str
    keys: dict[Path, tuple[int, int]]
    values: dict[Path, tuple[int, int]]

    def location(self, path: Sequence[str | int], *, key: bool = False) -> Location:
        """The location of the value (or key) at `path`, else of its nearest ancestor."""
        p = tuple(path)
        while True:
            table = self.keys if key and p in self.keys else self.values
            if p in table:
                line, col = table[p]
                return Location(self.file, line, col)
            if not p:
                return Location(self.file, 1, 1)
            p = p[:-1]
            key = False


class _DuplicateKeyError(Exception):
    def __init__(self, key: str, mark: yaml.Mark) -> None:
        self.key = key
        self.mark = mark


MAX_NODES = 200_000  # a "billion laughs" alias bomb expands past this long before it can hurt


class _TooLargeError(Exception):
    pass


def _walk(node: yaml.Node, path: Path, pos: Positioned, budget: list[int]) -> None:
    # Aliases make the document a graph; walking it as a tree counts every expansion, so an alias
    # bomb is refused here, before anything builds or validates the expanded data.
    budget[0] -= 1
    if budget[0] < 0:
        raise _TooLargeError
    pos.values[path] = (node.start_mark.line + 1, node.start_mark.column + 1)
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for knode, vnode in node.value:
            key = str(knode.value)
            if key == "<<":
                continue
            if key in seen:
                raise _DuplicateKeyError(key, knode.start_mark)
            seen.add(key)
            pos.keys[(*path, key)] = (knode.start_mark.line + 1, knode.start_mark.column + 1)
            _walk(vnode, (*path, key), pos, budget)
    elif isinstance(node, yaml.SequenceNode):
        for i, child in enumerate(node.value):
            _walk(child, (*path, i), pos, budget)


def load_yaml(text: str, file: str) -> Positioned:
    """Parse one YAML document. Raises `YamlSyntaxError` (with a located problem) on broken YAML or
    duplicate keys. An empty document loads as None."""
    loader = _LOADER(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return Positioned(None, file, {}, {})
        # Positions first: constructing the data inlines `<<` merge keys into the node tree.
        keys: dict[Path, tuple[int, int]] = {}
        values: dict[Path, tuple[int, int]] = {}
        _walk(node, (), Positioned(None, file, keys, values), [MAX_NODES])
        return Positioned(loader.construct_document(node), file, keys, values)
    except _TooLargeError:
        msg = f"document too large or too many alias expansions (over {MAX_NODES} nodes)"
        raise YamlSyntaxError(Problem(Location(file, 1, 1), msg)) from None
    except _DuplicateKeyError as e:
        where = Location(file, e.mark.line + 1, e.mark.column + 1)
        raise YamlSyntaxError(Problem(where, f"duplicate key '{e.key}'")) from None
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        where = Location(file, mark.line + 1, mark.column + 1) if mark else Location(file)
        msg = " ".join(str(x) for x in (e.context, e.problem) if x) or "invalid YAML"
        raise YamlSyntaxError(Problem(where, f"invalid YAML: {msg}")) from None
    except yaml.YAMLError as e:
        raise YamlSyntaxError(Problem(Location(file), f"invalid YAML: {e}")) from None
    finally:
        loader.dispose()


class YamlSyntaxError(Exception):
    """Broken YAML; `problem` says where."""

    def __init__(self, problem: Problem) -> None:
        self.problem = problem
        super().__init__(str(problem))


def suggest(word: str, candidates: Iterable[str]) -> str | None:
    """The closest candidate to a misspelt word, if any is close enough."""
    found = difflib.get_close_matches(word, list(candidates), n=1, cutoff=0.6)
    return found[0] if found else None


def did_you_mean(word: str, candidates: Iterable[str]) -> str:
    """` (did you mean 'x'?)`, or an empty string when nothing is close."""
    best = suggest(word, candidates)
    return f" (did you mean '{best}'?)" if best else ""


def _fields_of(tp: Any) -> list[type[BaseModel]]:
    """The pydantic models a type annotation can hold at this level (unwrapping Optional/Union)."""
    origin = get_origin(tp)
    if origin is typing.Annotated:
        return _fields_of(get_args(tp)[0])
    if origin in (Union, types.UnionType):
        out: list[type[BaseModel]] = []
        for arg in get_args(tp):
            out.extend(_fields_of(arg))
        return out
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        return [tp]
    return []


def _tag_values(model: type[BaseModel]) -> set[str]:
    values: set[str] = {model.__name__}
    for f in model.model_fields.values():
        if get_origin(f.annotation) is Literal:
            values.update(str(a) for a in get_args(f.annotation))
    return values


def _step(tp: Any, element: str | int) -> tuple[Any, bool]:
    """Descend one loc element from type `tp`; returns (new type, consumed-as-data-path)."""
    origin = get_origin(tp)
    if origin is typing.Annotated:
        return _step(get_args(tp)[0], element)
    models = _fields_of(tp)
    if models:
        if len(models) > 1:
            for m in models:
                if element in _tag_values(m):
                    return m, False
        for m in models:
            if isinstance(element, str) and element in m.model_fields:
                return m.model_fields[element].annotation, True
        return None, True
    if origin in (list, tuple, Sequence) and get_args(tp):
        return get_args(tp)[0], True
    if origin is dict and get_args(tp):
        return get_args(tp)[1], True
    if origin in (Union, types.UnionType):
        for arg in get_args(tp):
            nxt, consumed = _step(arg, element)
            if nxt is not None:
                return nxt, consumed
    return None, True


def allowed_keys(root: type[BaseModel], loc: Sequence[str | int]) -> list[str]:
    """The valid keys of the mapping at `loc` (for did-you-mean on unknown keys)."""
    tp: Any = root
    for element in loc:
        tp, _ = _step(tp, element)
        if tp is None:
            return []
    keys: list[str] = []
    for m in _fields_of(tp):
        for name, f in m.model_fields.items():
            keys.append(f.alias or name)
    return keys


def _data_path(data: Any, loc: Sequence[str | int]) -> Path:
    """Keep only the loc elements that exist in the loaded data (pydantic adds union tags)."""
    path: list[str | int] = []
    cur = data
    for element in loc:
        in_dict = isinstance(cur, dict) and element in cur
        in_list = isinstance(cur, list) and isinstance(element, int) and 0 <= element < len(cur)
        if in_dict or in_list:
            cur = cur[element]
            path.append(element)
    return tuple(path)


def problems_from_validation(
    err: ValidationError,
    doc: Positioned,
    root: type[BaseModel],
    *,
    prefix: Path = (),
    rule_id: str | None = None,
) -> list[Problem]:
    """Translate a pydantic error into located problems. `prefix` is the path of the validated
    object inside the document (e.g. `("rules", 3)`)."""
    problems: list[Problem] = []
    sub = doc.data
    for p in prefix:
        sub = sub[p]
    for e in err.errors():
        loc = tuple(e["loc"])
        path = (*prefix, *_data_path(sub, loc))
        kind = e["type"]
        if kind == "extra_forbidden":
            key = str(loc[-1])
            hint = did_you_mean(key, allowed_keys(root, loc[:-1]))
            problems.append(
                Problem(doc.location(path, key=True), f"unknown key '{key}'{hint}", rule_id)
            )
            continue
        where = ".".join(str(x) for x in path) or "document"
        msg = str(e["msg"])
        if kind == "missing":
            msg = f"missing required key '{loc[-1]}'"
            where = ".".join(str(x) for x in path) or "document"
        if msg.startswith("Value error, "):
            msg = msg[len("Value error, ") :]
        problems.append(Problem(doc.location(path), f"{where}: {msg}", rule_id))
    return problems


__all__ = [
    "Positioned",
    "YamlSyntaxError",
    "allowed_keys",
    "did_you_mean",
    "load_yaml",
    "problems_from_validation",
    "suggest",
]
