"""`${VAR}` and `${VAR:-default}` in config string values.

Interpolation runs on the parsed YAML tree, not on the text: a value that expands to several lines
or to `: ` cannot change the document's structure, and every position `rules._yaml` recorded stays
right.

- `${VAR}`: VAR must be set and not empty (write `${VAR:-}` to accept an empty value).
- `${VAR:-default}`: the default when VAR is unset or empty, as in POSIX shells.
- `$${`: a literal `${`. A `$` not followed by `{` is kept as written.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

KeyPath = tuple[str | int, ...]
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
# `$${` first, so an escaped reference is never read as a reference.
_TOKEN = re.compile(r"\$\$\{|\$\{([^}]*)\}|\$\{[^}]*\Z")


@dataclass(frozen=True)
class Reference:
    """One reference that could not be expanded, where it stands and what was written."""

    path: KeyPath
    text: str  # as written, e.g. `${SLACK_WEBHOOK_URL}`
    name: str | None  # the variable, or None when the reference itself is malformed


@dataclass(frozen=True)
class Interpolated:
    data: Any
    unset: tuple[Reference, ...]  # variables without default that are unset or empty
    malformed: tuple[Reference, ...]  # `${}`, `${1X}`, `${VAR` ...

    def unset_under(self, prefix: KeyPath) -> tuple[Reference, ...]:
        return tuple(r for r in self.unset if r.path[: len(prefix)] == prefix)


def interpolate(data: Any, env: Mapping[str, str]) -> Interpolated:
    """Expand every string value of a loaded YAML tree (keys are left alone). Unexpandable
    references become empty strings and are reported, so validation can still run on the rest."""
    unset: list[Reference] = []
    malformed: list[Reference] = []

    def walk(node: Any, path: KeyPath) -> Any:
        if isinstance(node, dict):
            return {k: walk(v, (*path, k)) for k, v in node.items()}
        if isinstance(node, list):
            return [walk(v, (*path, i)) for i, v in enumerate(node)]
        if isinstance(node, str) and "$" in node:
            return _expand(node, path, env, unset, malformed)
        return node

    out = walk(data, ())
    return Interpolated(out, tuple(unset), tuple(malformed))


def _expand(
    value: str,
    path: KeyPath,
    env: Mapping[str, str],
    unset: list[Reference],
    malformed: list[Reference],
) -> str:
    def replace(m: re.Match[str]) -> str:
        token = m.group(0)
        if token == "$${":
            return "${"
        body = m.group(1)
        if body is None:
            malformed.append(Reference(path, token, None))
            return ""
        name, sep, default = body.partition(":-")
        if not _NAME.match(name):
            malformed.append(Reference(path, token, None))
            return ""
        found = env.get(name, "")
        if found:
            return found
        if sep:
            return default
        unset.append(Reference(path, token, name))
        return ""

    return _TOKEN.sub(replace, value)


def describe(ref: Reference) -> str:
    """The user-facing message for a reference that could not be expanded."""
    if ref.name is None:
        return f"invalid reference '{ref.text}': write ${{NAME}} or ${{NAME:-default}}"
    return (
        f"environment variable {ref.name} is not set "
        f"(set it, or write ${{{ref.name}:-default}} to give a default)"
    )


__all__ = ["Interpolated", "KeyPath", "Reference", "describe", "interpolate"]
