"""Instructions the Fetcher spends per request, counted by callgrind: repeatable on a busy machine.

    python -m benchmarks.fetch_cpu                  # all-304 and same-body
    python -m benchmarks.fetch_cpu --feeds 400 --answers 304

Wall-clock figures (`benchmarks.fetch_bench`) move with whatever else the machine runs; the number
of instructions a process executes does not. This runs a small program twice under
`valgrind --tool=callgrind`, polling every feed once (to learn its validators) and then one or
three more cycles, and divides the difference by the extra requests: what one more request costs,
start-up and the first poll subtracted. The program is the daemon's `Fetcher` (no spacing, the
default pool, a new one each cycle, so every request opens its connection, as the first request to
a host does in the daemon's cycles) against `benchmarks._feedfarm`, one feed per loopback address,
with no latency; the farm is its own process and is not counted. Needs valgrind; uses the
corpus feeds when present.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence

from benchmarks._feedfarm import FeedFarm
from monitor.fetch import Fetcher, FetchRequest, FetchResult

_COLLECTED = re.compile(r"Collected : (\d+)")


async def _poll(farm: FeedFarm, cycles: int, concurrency: int) -> None:
    known: dict[str, FetchResult] = {}
    for _ in range(1 + cycles):
        # A Fetcher per cycle, as if cycles were minutes apart: every request opens a connection,
        # whatever valgrind does to the clock (keep-alive would otherwise decide).
        async with Fetcher(
            timeout=600, max_bytes=64 << 20, user_agent="fetch-cpu", concurrency=concurrency,
            per_host=2, min_spacing=0,
        ) as fetcher:  # fmt: skip
            await asyncio.gather(*(_one(fetcher, url, known) for url in farm.urls))


async def _one(fetcher: Fetcher, url: str, known: dict[str, FetchResult]) -> None:
    last = known.get(url)
    request = FetchRequest(url, url)
    if last is not None:
        request = FetchRequest(url, url, last.etag, last.last_modified, last.body_hash)
    result = await fetcher.fetch(request)
    if result.status == "ok":
        known[url] = result


def inner(args: argparse.Namespace) -> None:
    with FeedFarm(feeds=args.feeds, hosts=args.feeds, latency=0.0) as farm:
        farm.validators(args.answers == "304")
        asyncio.run(_poll(farm, args.cycles, args.concurrency))
        served = farm.stats()
    if served.get(args.answers, 0) < args.feeds * args.cycles:
        sys.exit(f"the farm served {served}, not {args.answers} to every later request")


def counted(args: argparse.Namespace, answers: str, cycles: int) -> int:
    """Instructions of one run of `inner` (this process only: the farm is not traced)."""
    with tempfile.TemporaryDirectory() as tmp:
        command = [
            "valgrind", "--tool=callgrind", f"--callgrind-out-file={tmp}/out",
            sys.executable, "-m", "benchmarks.fetch_cpu", "--inner",
            "--feeds", str(args.feeds),
            "--concurrency", str(args.concurrency), "--answers", answers, "--cycles", str(cycles),
        ]  # fmt: skip
        run = subprocess.run(command, capture_output=True, text=True, check=False)
    found = _COLLECTED.search(run.stderr)
    if run.returncode or not found:
        sys.exit(f"valgrind failed ({run.returncode}):\n{run.stderr[-2000:]}")
    return int(found.group(1))


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmarks.fetch_cpu", description=__doc__)
    p.add_argument("--feeds", type=int, default=1000)
    p.add_argument("--concurrency", type=int, default=200)
    p.add_argument("--answers", default="304,200", help="304, 200 (the same body) or both")
    p.add_argument("--cycles", type=int, default=1, help=argparse.SUPPRESS)
    p.add_argument("--inner", action="store_true", help=argparse.SUPPRESS)
    return p.parse_args(argv)


def main() -> None:
    args = parse_args(sys.argv[1:])
    if args.inner:
        inner(args)
        return
    if shutil.which("valgrind") is None:
        sys.exit("valgrind is not installed")
    extra = 2
    print(f"{args.feeds} feeds, one per host, {args.concurrency} in flight")
    for answers in args.answers.split(","):
        one, more = counted(args, answers, 1), counted(args, answers, 1 + extra)
        per_request = (more - one) / (extra * args.feeds)
        label = "all 304" if answers == "304" else "all 200, same bodies"
        print(f"  {label:<22} {per_request / 1e6:6.2f} M instructions per request (Fetcher)")


if __name__ == "__main__":
    main()
