"""The one exception tree. Each kind tells the caller what to do next.

This module is a leaf: `rules`, `storage` and `notifiers` may import it; it imports nothing of the
project.
"""

from __future__ import annotations

from dataclasses import dataclass


class MonitorError(Exception):
    """Root of every error source-monitor raises on purpose."""


@dataclass(frozen=True)
class Location:
    """Where in a user's file something is wrong (1-based line and column)."""

    file: str
    line: int | None = None
    column: int | None = None

    def __str__(self) -> str:
        parts = [self.file]
        if self.line is not None:
            parts.append(str(self.line))
            if self.column is not None:
                parts.append(str(self.column))
        return ":".join(parts)


@dataclass(frozen=True)
class Problem:
    """One located message, e.g.
    `config.yaml:3:5: unknown key 'intervall' (did you mean 'interval'?)`."""

    location: Location
    message: str
    rule_id: str | None = None

    def __str__(self) -> str:
        rule = f" [rule {self.rule_id}]" if self.rule_id else ""
        return f"{self.location}:{rule} {self.message}"


class _ProblemsError(MonitorError):
    """An error carrying every problem found, so users fix them all in one pass."""

    def __init__(self, problems: list[Problem] | Problem | str) -> None:
        if isinstance(problems, str):
            self.problems: list[Problem] = []
            super().__init__(problems)
            return
        if isinstance(problems, Problem):
            problems = [problems]
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


class ConfigError(_ProblemsError):
    """The configuration is invalid: fix the file, retrying will not help."""


class RuleError(_ProblemsError):
    """A rule file is invalid: each problem names file, line, column and rule id."""


class StorageError(MonitorError):
    """The database is unusable (wrong schema, locked by another instance, unreachable)."""


class FetchError(MonitorError):
    """A fetch failed. `kind` is a stable name stored on the source and shown to users
    (`timeout`, `dns`, `tls`, `connect`, `http_404`, `http_500`, `not_a_feed`, `too_large`, `empty`,
    `parse_error`, `redirect_loop`, `blocked`, `rate_limited`, `gone`, ...)."""

    def __init__(self, kind: str, detail: str = "", retry_after: float | None = None) -> None:
        self.kind = kind
        self.detail = detail
        self.retry_after = retry_after
        super().__init__(f"{kind}: {detail}" if detail else kind)

    def __reduce__(self) -> tuple[type[FetchError], tuple[str, str, float | None]]:
        # Parsing runs in worker processes: the error must cross back with its kind intact.
        return (FetchError, (self.kind, self.detail, self.retry_after))


class DeliveryError(MonitorError):
    """A notifier could not deliver. `retryable` False means the receiver refused for good
    (HTTP 4xx other than 429, SMTP 5xx); `retry_after` (seconds) is the receiver's own wish.
    Messages never contain secrets (webhook URLs, passwords)."""

    def __init__(self, message: str, *, retryable: bool, retry_after: float | None = None) -> None:
        self.retryable = retryable
        self.retry_after = retry_after
        super().__init__(message)


__all__ = [
    "ConfigError",
    "DeliveryError",
    "FetchError",
    "Location",
    "MonitorError",
    "Problem",
    "RuleError",
    "StorageError",
]
