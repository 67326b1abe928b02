"""monitor._memory: glibc's arenas capped and freed pages handed back (Linux with glibc only)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from monitor import _memory

pytestmark = pytest.mark.skipif(_memory._LIBC is None, reason="needs Linux with glibc")


def _rss_kb() -> int:
    with open(f"/proc/{os.getpid()}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


def test_trim_hands_freed_heap_pages_back() -> None:
    # 60 MB of 1 KB blocks (above pymalloc's small-object limit: they come from malloc), freed
    # except the last, which pins the top of the heap so that free() alone cannot shrink it.
    blocks = [bytes(1024) + bytes([i % 256]) for i in range(60_000)]
    pin = blocks[-1]
    del blocks
    before = _rss_kb()
    assert _memory.trim() is True
    after = _rss_kb()
    assert before - after > 20_000, (before, after)
    assert pin  # alive until here


def test_limit_arenas_takes_effect_in_a_fresh_process() -> None:
    # Run where no thread has allocated yet, as `monitor run` does; mallopt answers 1 on success.
    code = "from monitor import _memory; print(_memory.limit_arenas())"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.strip() == "True"
