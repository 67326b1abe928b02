"""What a rule sees of a document: its fields as text, and whether the rule applies to the
document's source."""

from __future__ import annotations

from rules.ast import FIELD_NAMES, Document, FieldName, Rule

FIELD_INDEX: dict[str, int] = {name: i for i, name in enumerate(FIELD_NAMES)}


def field_text(doc: Document, name: FieldName) -> str:
    """The text of one field; `tags` are joined with ", " (span offsets count in that string)."""
    if name == "tags":
        return ", ".join(doc.tags)
    value: str = getattr(doc, name)
    return value


def applies(rule: Rule, doc: Document) -> bool:
    """`sources:` holds source ids and `tag:NAME`; a rule without it applies everywhere."""
    if rule.sources is None:
        return True
    for entry in rule.sources:
        if entry.startswith("tag:"):
            if entry[4:] in doc.source_tags:
                return True
        elif entry == doc.source:
            return True
    return False


def span_order(field: str, start: int, end: int) -> tuple[int, int, int]:
    return FIELD_INDEX.get(field, len(FIELD_INDEX)), start, end
