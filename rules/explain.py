"""Why a rule did or did not match a document: a tree with, per node, whether it held and what it
matched.

`Matcher.explain` builds it (by evaluating every node, without the matcher's short cuts);
`format_explanation` writes it for people (`monitor match --explain`, `monitor test` failures) and
`to_json` for programs.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace

from monitor.model import Span
from rules.ast import Bool, Fuzzy, Near, Node, Regex, Term


@dataclass(frozen=True)
class Explanation:
    """One node of the explanation. `node` is the node written back in rule syntax (`KN-23`,
    `{fuzzy: Hwasong-11, score: 90}`, `any:`, `near (within 5):`, `rule kn23`); `spans` are the
    matches that made it hold (empty when it did not); `note` adds what the node alone does not say
    (the fields searched, a regex that ran out of time, a source the rule does not apply to)."""

    node: str
    held: bool
    spans: tuple[Span, ...] = ()
    children: tuple[Explanation, ...] = ()
    note: str = ""


def _scalar(text: str) -> str:
    """A YAML scalar: plain when that reads back the same, JSON-quoted otherwise."""
    plain = (
        text
        and text == text.strip()
        and not any(c in text for c in ":#{}[],&*!|>'\"%@`\n\t")
        and text[0] not in "-?$"
        and text.lower() not in ("yes", "no", "true", "false", "null", "on", "off", "~")
    )
    return text if plain else json.dumps(text, ensure_ascii=False)


def node_syntax(node: Node) -> str:
    """The head line of a node in rule syntax (children are written on their own lines)."""
    if isinstance(node, Term):
        return _scalar(node.text)
    if isinstance(node, Fuzzy):
        return f"{{fuzzy: {_scalar(node.text)}, score: {node.score}}}"
    if isinstance(node, Regex):
        return f"{{regex: {_scalar(node.pattern)}}}"
    if isinstance(node, Near):
        return f"near (within {node.within}):"
    return f"{node.label}:" if node.label else "bool:"


def fields_note(node: Bool | Near, fields: tuple[str, ...]) -> str:
    return f"fields: {', '.join(fields)}" if node.fields is not None else ""


def _span_text(span: Span) -> str:
    return f"{span.field}[{span.start}:{span.end}] {json.dumps(span.text, ensure_ascii=False)}"


_KEYS = ("any:", "all:", "none:")


def _collapse(e: Explanation) -> Explanation:
    """For people, a group with a single `any:`/`all:`/`none:` is that key: `bool:` over `any:`
    reads as `any:`, and `$dprk:` over `any:` as `$dprk (any):`."""
    children = tuple(_collapse(c) for c in e.children)
    if len(children) == 1 and not e.note and children[0].node in _KEYS:
        only = children[0]
        if e.node == "bool:":
            return replace(only, held=e.held)
        if e.node.startswith("$"):
            return replace(only, node=f"{e.node[:-1]} ({only.node[:-1]}):", held=e.held)
    return replace(e, children=children)


def format_explanation(expl: Explanation, indent: str = "  ") -> str:
    """Indented text, one node per line: ✓ held / ✗ not, the node, then what it matched."""
    lines: list[str] = []
    expl = _collapse(expl)

    def walk(e: Explanation, depth: int) -> None:
        mark = "✓" if e.held else "✗"
        line = f"{indent * depth}{mark} {e.node}"
        if e.note:
            line += f"  ({e.note})"
        if e.spans and not e.children:
            line += "  " + "; ".join(_span_text(s) for s in e.spans)
        lines.append(line)
        for child in e.children:
            walk(child, depth + 1)

    walk(expl, 0)
    return "\n".join(lines)


def to_json(expl: Explanation) -> dict[str, object]:
    """A JSON-ready value (nested dicts and lists) of the explanation."""
    out: dict[str, object] = {
        "node": expl.node,
        "held": expl.held,
        "spans": [
            {"field": s.field, "start": s.start, "end": s.end, "text": s.text} for s in expl.spans
        ],
    }
    if expl.note:
        out["note"] = expl.note
    if expl.children:
        out["children"] = [to_json(c) for c in expl.children]
    return out


__all__ = ["Explanation", "format_explanation", "node_syntax", "to_json"]
