"""Run every `benchmarks/*_bench.py` module's `main()` in turn, or only those named.

    python -m benchmarks              # all of them (what `make bench` runs)
    python -m benchmarks match poll   # `match_bench` and `poll_bench` only

A benchmark module is any `benchmarks/<name>_bench.py` with a `main() -> None` that prints its
figures; adding one needs no change here. Each `main()` sees `sys.argv` as if it had been run alone.
"""

from __future__ import annotations

import importlib
import pkgutil
import sys
import time
from collections.abc import Callable
from pathlib import Path

SUFFIX = "_bench"


def available() -> list[str]:
    """Names of the benchmark modules, without the `_bench` suffix, sorted."""
    here = str(Path(__file__).resolve().parent)
    return sorted(
        m.name.removesuffix(SUFFIX) for m in pkgutil.iter_modules([here]) if m.name.endswith(SUFFIX)
    )


def run(names: list[str]) -> int:
    known = available()
    wanted = [n.removesuffix(SUFFIX) for n in names] or known
    unknown = [n for n in wanted if n not in known]
    if unknown:
        print(f"unknown benchmark(s): {', '.join(unknown)}; available: {', '.join(known)}")
        return 2
    argv = sys.argv
    for name in wanted:
        module = importlib.import_module(f"benchmarks.{name}{SUFFIX}")
        main: Callable[[], None] = module.main
        print(f"== {name} ==", flush=True)
        started = time.perf_counter()
        sys.argv = [f"benchmarks.{name}{SUFFIX}"]
        try:
            main()
        finally:
            sys.argv = argv
        print(f"== {name}: {time.perf_counter() - started:.1f}s ==\n", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(run(sys.argv[1:]))
