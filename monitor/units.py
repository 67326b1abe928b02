"""Durations (`90s`, `15m`, `2h`, `7d`) and sizes (`10MiB`) as written in config files.
A leaf module: usable by every package."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated, Any

from pydantic import BeforeValidator, PlainSerializer

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)?\s*$")
_DURATION_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kKmMgG]i?[bB]|[bB]|[kKmMgG])?\s*$")
_SIZE_UNITS = {
    "b": 1, "k": 1000, "kb": 1000, "kib": 1024, "m": 1000**2, "mb": 1000**2, "mib": 1024**2,
    "g": 1000**3, "gb": 1000**3, "gib": 1024**3,
}  # fmt: skip


def parse_duration(value: Any) -> timedelta:
    """`90s`, `15m`, `2h`, `7d`, `1w`, `500ms`; a bare number is seconds; `0` is zero."""
    if isinstance(value, timedelta):
        return value
    if isinstance(value, bool):
        raise ValueError(f"expected a duration like 90s, 15m, 2h or 7d, got {value!r}")
    if isinstance(value, int | float):
        if value < 0:
            raise ValueError("a duration cannot be negative")
        return timedelta(seconds=value)
    m = _DURATION.match(str(value))
    if not m:
        raise ValueError(f"expected a duration like 90s, 15m, 2h or 7d, got {value!r}")
    return timedelta(seconds=float(m.group(1)) * _DURATION_UNITS[m.group(2) or "s"])


def parse_size(value: Any) -> int:
    """`10MiB`, `512KiB`, `1GB`, `2048` (bytes)."""
    if isinstance(value, bool):
        raise ValueError(f"expected a size like 10MiB, got {value!r}")
    if isinstance(value, int):
        if value < 0:
            raise ValueError("a size cannot be negative")
        return value
    m = _SIZE.match(str(value))
    if not m:
        raise ValueError(f"expected a size like 512KiB or 10MiB, got {value!r}")
    return int(float(m.group(1)) * _SIZE_UNITS[(m.group(2) or "b").lower()])


def format_duration(td: timedelta) -> str:
    seconds = int(td.total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


Duration = Annotated[
    timedelta, BeforeValidator(parse_duration), PlainSerializer(format_duration, return_type=str)
]
Size = Annotated[int, BeforeValidator(parse_size)]

__all__ = ["Duration", "Size", "format_duration", "parse_duration", "parse_size"]
