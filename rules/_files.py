"""Finding rule files and reading them safely: size limits, UTF-8, and YAML that would hang the
loader (alias bombs, absurd nesting) refused with a located message before anything walks it."""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import yaml

from monitor.errors import Location, Problem
from rules._yaml import Positioned, YamlSyntaxError, load_yaml

MAX_FILE_BYTES = 5 * 1024 * 1024  # a 10,000-term list is ~300 KB; 5 MiB leaves room for 150,000
MAX_NODES = 250_000  # YAML nodes after expanding aliases ("billion laughs" expands to 10^9)
MAX_YAML_DEPTH = 200  # conditions stop at 64 levels (about 130 YAML levels)
SUFFIXES = (".yaml", ".yml")

# libyaml's event parser scans a 10,000-term file in milliseconds; the pure-Python one is ~30x
# slower, so without libyaml the scan runs only when the text could hold aliases.
_FAST_SCAN = bool(getattr(yaml, "__with_libyaml__", False))
_SCAN_LOADER = yaml.CSafeLoader if _FAST_SCAN else yaml.SafeLoader


@dataclass(frozen=True)
class RuleFile:
    """One loaded rule file: its path as given, its text (for query column offsets) and its YAML."""

    path: Path
    lines: tuple[str, ...]
    doc: Positioned


def discover(paths: Sequence[Path]) -> tuple[list[Path], list[Problem]]:
    """Every rule file named by `paths` (files as given, folders searched recursively for *.yaml and
    *.yml, sorted, skipping hidden files and folders such as editor backups), each once."""
    found: list[Path] = []
    problems: list[Problem] = []
    seen: set[Path] = set()
    for path in paths:
        if path.is_dir():
            inside = sorted(_yaml_files(path))
            if not inside:
                problems.append(
                    Problem(Location(str(path)), "folder holds no rule files (*.yaml, *.yml)")
                )
        elif path.is_file():
            inside = [path]
        else:
            what = "is not a file or folder" if path.exists() else "no such file or folder"
            problems.append(Problem(Location(str(path)), what))
            continue
        for file in inside:
            key = file.resolve()
            if key not in seen:
                seen.add(key)
                found.append(file)
    return found, problems


def _yaml_files(folder: Path) -> Iterator[Path]:
    # os.walk does not follow symlinked folders, so a link loop cannot make this run forever.
    for root, dirs, files in os.walk(folder):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        for name in files:
            if not name.startswith(".") and name.lower().endswith(SUFFIXES):
                yield Path(root) / name


def read_rule_file(path: Path) -> RuleFile | Problem:
    """Load one file, or say in one located problem why it cannot be loaded."""
    where = Location(str(path))
    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            return Problem(where, f"file is too large ({size:,} bytes, at most {MAX_FILE_BYTES:,})")
        data = path.read_bytes()
    except OSError as e:
        return Problem(where, f"cannot read: {e.strerror or e}")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        column = e.start - (data.rfind(b"\n", 0, e.start) + 1) + 1
        return Problem(Location(str(path), line, column), "not UTF-8 text: save the file as UTF-8")
    problem = scan(text, str(path))
    if problem:
        return problem
    try:
        doc = load_yaml(text, str(path))
    except YamlSyntaxError as e:
        return e.problem
    except RecursionError:
        return Problem(where, f"YAML is nested too deeply (more than {MAX_YAML_DEPTH} levels)")
    return RuleFile(path, tuple(text.splitlines()), doc)


def scan(text: str, file: str) -> Problem | None:
    """Refuse documents whose aliases expand past MAX_NODES or that nest past MAX_YAML_DEPTH,
    streaming YAML events so the check itself never expands anything. Broken YAML passes here: the
    positional loader reports it with its own message."""
    if not _FAST_SCAN and ("&" not in text or "*" not in text):
        return None
    expansion = _Expansion()
    try:
        for event in yaml.parse(text, Loader=_SCAN_LOADER):
            message = expansion.add(event)
            if message:
                return _at(event, file, message)
    except yaml.MarkedYAMLError as e:
        # libyaml refuses nesting past 1,000 levels before the events above get that deep.
        if e.problem and "depth" in e.problem and e.problem_mark:
            mark = e.problem_mark
            where = Location(file, mark.line + 1, mark.column + 1)
            return Problem(where, f"YAML nested more than {MAX_YAML_DEPTH} levels deep")
        return None
    except yaml.YAMLError:
        return None
    return None


class _Expansion:
    """Counts the values a document expands to, alias by alias, without expanding anything."""

    def __init__(self) -> None:
        self.counts: list[int] = []  # values so far in each open collection, itself included
        self.anchors: list[str | None] = []  # the anchor of each open collection
        self.sizes: dict[str, int] = {}  # anchor -> values it expands to

    def add(self, event: yaml.Event) -> str | None:
        """Take one event; a message when the document goes past a limit."""
        if isinstance(event, yaml.CollectionStartEvent):
            self.counts.append(1)
            self.anchors.append(event.anchor)
            if len(self.counts) > MAX_YAML_DEPTH:
                return f"YAML nested more than {MAX_YAML_DEPTH} levels deep"
            return None
        if isinstance(event, yaml.AliasEvent) and event.anchor in self.anchors:
            return f"alias *{event.anchor} refers to its own container"
        size = self.size(event)
        if size and self.counts:
            self.counts[-1] += size
            if self.counts[-1] > MAX_NODES:
                return (
                    f"YAML aliases expand to more than {MAX_NODES:,} values; "
                    "use $lists instead of repeating YAML anchors"
                )
        return None

    def size(self, event: yaml.Event) -> int:
        if isinstance(event, yaml.CollectionEndEvent):
            size = self.counts.pop()
            anchor = self.anchors.pop()
            if anchor is not None:
                self.sizes[anchor] = size
            return size
        if isinstance(event, yaml.ScalarEvent):
            return 1
        if isinstance(event, yaml.AliasEvent):
            return self.sizes.get(event.anchor or "", 1)
        return 0


def _at(event: yaml.Event, file: str, message: str) -> Problem:
    mark = event.start_mark
    where = Location(file, mark.line + 1, mark.column + 1) if mark else Location(file)
    return Problem(where, message)


__all__ = [
    "MAX_FILE_BYTES",
    "MAX_NODES",
    "MAX_YAML_DEPTH",
    "RuleFile",
    "discover",
    "read_rule_file",
]
