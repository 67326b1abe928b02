"""The rule tree: what the YAML rule format and the boolean query strings both compile to.

The loader (`rules.loader`, `rules.query`) produces it; the matcher (`rules.matcher`) and the
reference matcher (`rules.reference`) consume it. Every node is immutable and hashable, so compiled
matchers can deduplicate shared sub-trees (lists used by many rules).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, TypeAlias

from monitor.model import Level, Span

FieldName = Literal["title", "summary", "content", "author", "tags", "link", "source"]
FIELD_NAMES: tuple[FieldName, ...] = (
    "title",
    "summary",
    "content",
    "author",
    "tags",
    "link",
    "source",
)
DEFAULT_FIELDS: tuple[FieldName, ...] = ("title", "summary", "content")


@dataclass(frozen=True)
class Term:
    """A word or phrase as written (`KN-23`, `North Korean`): matched case-insensitively on word
    boundaries after NFKC, case folding and accent folding; hyphen, space and nothing are
    interchangeable inside it."""

    text: str


@dataclass(frozen=True)
class Fuzzy:
    """Approximate match of `text` against the words of the field (rapidfuzz score 0-100)."""

    text: str
    score: int = 90


@dataclass(frozen=True)
class Regex:
    """A Python regex, case-insensitive unless the pattern says `(?-i)`."""

    pattern: str


@dataclass(frozen=True)
class Bool:
    """`any` / `all` / `none` in one node: holds when some `any` child holds (if given), every
    `all` child holds (if given) and no `none` child holds (if given). `fields` (when set) limits
    the fields searched by every leaf below, until a deeper node sets its own. `label` names a
    `$list` expansion (`$dprk`) for explanations."""

    any: tuple[Node, ...] | None = None
    all: tuple[Node, ...] | None = None
    none: tuple[Node, ...] | None = None
    fields: tuple[FieldName, ...] | None = None
    label: str | None = None


@dataclass(frozen=True)
class Near:
    """Every operand occurs within `within` words of the others, in any order, in the same field.
    Operands are leaves (Term/Fuzzy) or `any`-only Bool nodes of leaves (a `$list`)."""

    operands: tuple[Node, ...]
    within: int
    fields: tuple[FieldName, ...] | None = None


Node: TypeAlias = Term | Fuzzy | Regex | Bool | Near


@dataclass(frozen=True)
class TestCase:
    """An inline example: a document given as plain text (used as the title) or as fields."""

    title: str = ""
    summary: str = ""
    content: str = ""
    source: str = ""
    tags: tuple[str, ...] = ()
    line: int | None = None

    __test__ = False  # not a pytest class


@dataclass(frozen=True)
class RuleTests:
    match: tuple[TestCase, ...] = ()
    no_match: tuple[TestCase, ...] = ()

    __test__ = False


@dataclass(frozen=True)
class Rule:
    id: str
    title: str
    level: Level
    match: Node
    notify: tuple[str, ...] | None = None  # None: the config's default_notify
    sources: tuple[str, ...] | None = None  # source ids and `tag:NAME`; None: every source
    tests: RuleTests = RuleTests()
    file: str = "<memory>"
    line: int | None = None


@dataclass(frozen=True)
class Document:
    """What a rule is matched against. Text is plain (no HTML). `tags` are the item's own
    categories; `source_tags` the config tags of its source (for `sources: [tag:NAME]`)."""

    id: str
    title: str = ""
    summary: str = ""
    content: str = ""
    author: str = ""
    tags: tuple[str, ...] = ()
    link: str = ""
    source: str = ""
    source_tags: tuple[str, ...] = ()


@dataclass(frozen=True)
class RuleMatch:
    """One rule that matched one document, with the spans that made it hold (offsets into the
    document's field text as given; for `tags`, into the tags joined with ", ")."""

    rule_id: str
    level: Level
    spans: tuple[Span, ...]


__all__ = [
    "DEFAULT_FIELDS",
    "FIELD_NAMES",
    "Bool",
    "Document",
    "FieldName",
    "Fuzzy",
    "Near",
    "Node",
    "Regex",
    "Rule",
    "RuleMatch",
    "RuleTests",
    "Term",
    "TestCase",
]
