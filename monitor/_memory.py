"""Keeping the daemon's resident memory near what it uses (DESIGN §7: < 150 MB with 2,000 sources).

glibc gives each thread that allocates its own malloc arena (up to 8 per core), and memory freed
in one arena is not reused by the others: the daemon's database and DNS threads, each holding a
feed's items for a moment, leave several half-empty arenas behind. Two arenas serve a daemon
whose Python code holds the GIL anyway (measured in `benchmarks.soak`: 18 MB less at peak). And
after a burst (a first poll of many feeds) `malloc_trim` hands the freed pages back to the system
instead of keeping them for a burst that may not come.

Both are glibc-only and best effort: elsewhere (musl, macOS) they do nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import sys

log = logging.getLogger(__name__)

_M_ARENA_MAX = -8  # mallopt parameter, from glibc's malloc.h
ARENAS = 2


def _libc() -> ctypes.CDLL | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    except OSError:
        return None
    if not hasattr(libc, "mallopt") or not hasattr(libc, "malloc_trim"):
        return None  # not glibc
    return libc


_LIBC = _libc()


def limit_arenas(arenas: int = ARENAS) -> bool:
    """Cap glibc's malloc arenas; call before starting threads. True when it took effect."""
    if _LIBC is None:
        return False
    return bool(_LIBC.mallopt(_M_ARENA_MAX, arenas))


def trim() -> bool:
    """Return freed heap pages to the system. True when some memory was released."""
    if _LIBC is None:
        return False
    return bool(_LIBC.malloc_trim(0))


__all__ = ["ARENAS", "limit_arenas", "trim"]
