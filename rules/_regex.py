"""User regexes: Python regex syntax, run with a time budget so a pathological pattern cannot hang
the daemon.

Patterns are compiled by the `regex` module in its `re`-compatible mode (VERSION0): the same syntax
and semantics as Python `re`, plus a `timeout` on every search. Standard `re` cannot be interrupted,
and a pattern such as `(a|aa)+$` backtracks for hours on a few hundred characters. A search that
runs out of budget counts as "no match" (and `timed_out` says so to explanations); the item is still
matched against every other rule.

Patterns are case-insensitive unless they start with `(?-i)`, which the `regex` module accepts as a
global flag (Python `re` only accepts the scoped `(?-i:...)`).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import regex as _regex  # type: ignore[import-untyped]

# Per search of one field. Real patterns over real items take microseconds: this only bounds the
# worst case.
TIMEOUT_SECONDS = 0.05


class RegexSyntaxError(ValueError):
    """The pattern does not compile."""


@dataclass(frozen=True)
class RegexResult:
    """`held`: the pattern matched (an empty match counts); `spans`: its non-empty matches."""

    held: bool
    spans: tuple[tuple[int, int], ...]
    timed_out: bool = False


@dataclass(frozen=True, eq=False)
class UserRegex:
    pattern: str
    compiled: Any

    def run(self, text: str, timeout: float = TIMEOUT_SECONDS) -> RegexResult:
        held = False
        spans: list[tuple[int, int]] = []
        try:
            for m in self.compiled.finditer(text, timeout=timeout):
                held = True
                if m.end() > m.start():
                    spans.append((m.start(), m.end()))
        except TimeoutError:
            return RegexResult(False, (), timed_out=True)
        return RegexResult(held, tuple(spans))


@lru_cache(maxsize=1024)
def compile_regex(pattern: str) -> UserRegex:
    """Compile a user pattern; raises `RegexSyntaxError` with the engine's message."""
    try:
        compiled = _regex.compile(pattern, _regex.IGNORECASE | _regex.VERSION0)
    except _regex.error as exc:
        raise RegexSyntaxError(str(exc)) from None
    except (ValueError, OverflowError, RecursionError) as exc:
        raise RegexSyntaxError(str(exc)) from None
    return UserRegex(pattern, compiled)
