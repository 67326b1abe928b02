"""Storage at scale (DESIGN §7): 1,000,000 items over 2,000 sources through the real `Store.ingest`.

    python -m benchmarks store_bench          # 1M items; STORE_BENCH_ITEMS=100000 scales it down
    python -m benchmarks.store_bench --items 100000 [--sources N] [--pg URL] [--no-sqlite] [--dir D]

PostgreSQL runs too when `--pg` or `MONITOR_TEST_DATABASE_URL` names a server (in a private
database, dropped afterwards).

Items are written for this benchmark: headlines of a name, content words, filler and sometimes a
number, about 10% of them another source's report of a recent story (same canonical link, or the
headline reworded: publisher suffix, "Live:" prefix, one filler word more or less) so that
`TitleStoryMatcher` has grouping to do; a trivial rule matches the ~1% of stories about "KN-23".
Names come uniformly from 100,000 generated ones and words mostly from ~190,000 generated ones,
which keeps the blocking keys far sparser than in real news: filling 1M items at the key density
of real headlines would take hours (see note [4], which prices the real density). The fill runs in
polls of 50 new items, each source in turn, simulated time spread over 90 days (the default
retention), so the 72h dedup window holds about a thirtieth of the items.

Every figure is measured twice in the same run, on probe sources: on the empty store (the
baseline) and once the store is full, so the ratio shows what size costs. Story grouping per item
is the difference between the same kind of polls stored with `TitleStoryMatcher` and with a matcher
that gives no blocking keys (no lookup at all). Peak RSS comes from a fresh process that opens the
full store as the daemon would, claims every source, stores a few polls and prunes.
"""

from __future__ import annotations

import argparse
import bisect
import hashlib
import itertools
import json
import os
import random
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from monitor.model import Item, Span
from monitor.stories import TitleStoryMatcher
from rules.ast import RuleMatch
from storage import SourceSpec, Store, StoryMatcher

ENV_ITEMS = "STORE_BENCH_ITEMS"
CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus" / "news" / "dev.jsonl"
PG_ENV = "MONITOR_TEST_DATABASE_URL"
T0 = datetime(2026, 1, 1, tzinfo=UTC)
SPAN = timedelta(days=90)  # the fill's simulated time: DESIGN's default retention
WINDOW = timedelta(hours=72)
RETENTION = timedelta(days=90)
POLL = 50
STORED = 45  # of a steady-state poll's 50 items, how many are already stored
REPORTS = 0.10  # share of items that are another source's report of a recent story
MARKER = "KN-23"  # the trivial rule matches headlines holding it
MARKED = 0.01
RSS_TARGET_MB = 150
INSTANCE = "bench"
LEASE = timedelta(days=365)

# The head of the vocabulary: words news headlines are made of, most frequent first.
_HEAD = """
says police attack killed report court deal talks election vote minister strike drone
missile government plan new prices fire war troops army border protest arrest deaths storm
flood shooting trial charges sanctions oil gas energy bank markets shares inflation budget
tax ceasefire hostages aid refugees migrants hospital doctors school teachers students judge
verdict ruling parliament coalition opposition campaign earthquake wildfire heatwave vaccine
outbreak suspect prison escape asylum embassy diplomat resigns scandal leak probe fraud
bribery corruption pipeline refinery depot ammunition shells artillery rockets tanks jets
submarine frigate radar satellite launch rocket nuclear reactor uranium inspectors summit
treaty envoy referendum coup espionage sabotage hackers casualties wounded captured
prisoners evacuation deployment brigade offensive shelling bombing explosion blast airfield
bridge port railway power outage grid blackout airline flights airport crash derailment
collision tariffs embargo exports imports factory workers union wages pensions housing rents
mortgage lenders regulator merger takeover lawsuit settlement warning threat record victory
defeat champions league final
"""
WORDS = _HEAD.split()
_VERBS = "hits targets warns seizes blocks backs rejects signs claims denies halts vows"
VERBS = _VERBS.split()
_FILLER = "the a of in on to for with after as by at from over amid"
FILLER = _FILLER.split()
SUFFIXES = (" - Reuters", " | Reuters", " - BBC News", " - AP News", " | World News")
PREFIXES = ("Breaking: ", "Live: ", "Update: ")
NAMES = 100_000
_SYLLABLES = "ka ri mo va len tor bel ov in gra dan pol zer mi ku has ter vin lo ne sha rat bor"


def _pseudo_words(seed: int) -> list[str]:
    """Every word of two to four syllables, shuffled: names and rare words for the long tail."""
    syllables = _SYLLABLES.split()
    words = ["".join(parts) for n in (2, 3, 4) for parts in itertools.product(syllables, repeat=n)]
    random.Random(seed).shuffle(words)
    return list(dict.fromkeys(words))


class Zipf:
    """Draws from `pool` with probability proportional to 1 / rank**s."""

    def __init__(self, pool: Sequence[str], s: float, rng: random.Random) -> None:
        self.pool = pool
        self.cum = list(itertools.accumulate(1 / r**s for r in range(1, len(pool) + 1)))
        self.rng = rng

    def __call__(self) -> str:
        return self.pool[bisect.bisect(self.cum, self.rng.random() * self.cum[-1])]


class Headlines:
    """Headlines and rewordings of them: a name or two, content words, filler."""

    def __init__(self, rng: random.Random, name_s: float = 0.0, word_s: float = 0.3) -> None:
        self.rng = rng
        tail = _pseudo_words(seed=2)
        self.names = Zipf([w.capitalize() for w in tail[:NAMES]], name_s, rng)
        self.words = Zipf(WORDS + VERBS + tail[NAMES:], word_s, rng)
        # Drawn once: summaries only add realistic bytes to each row.
        self.summaries = [" ".join(self.words() for _ in range(25)) for _ in range(2000)]

    def story(self) -> str:
        rng = self.rng
        parts = [self.names(), self.words()]
        parts += [self.words() for _ in range(rng.randint(2, 4))]
        parts += [rng.choice(FILLER), self.names() if rng.random() < 0.6 else self.words()]
        if rng.random() < 0.10:
            parts.append(str(rng.randint(2, 400)))
        if rng.random() < MARKED:
            parts.insert(2, MARKER)
        return " ".join(parts)

    def reworded(self, title: str) -> str:
        """How another outlet words the same headline: a publisher suffix, a live prefix, or a
        dropped or added filler word."""
        choice = self.rng.randrange(4)
        if choice == 0:
            return title + self.rng.choice(SUFFIXES)
        if choice == 1:
            return self.rng.choice(PREFIXES) + title
        words = title.split()
        if choice == 2 and any(w in FILLER for w in words):
            words.remove(next(w for w in words if w in FILLER))
        else:
            words.insert(len(words) - 1, self.rng.choice(FILLER))
        return " ".join(words)


@dataclass
class Story:
    number: int
    title: str
    link: str
    source: str


@dataclass
class World:
    """Generates the polls of every source; remembers recent stories for other sources to report,
    and which stories the trivial rule should alert once each."""

    headlines: Headlines
    rng: random.Random
    recent: deque[Story] = field(default_factory=lambda: deque(maxlen=3000))
    marked_stories: set[int] = field(default_factory=set)
    counter: Iterator[int] = field(default_factory=itertools.count)

    def poll(self, source: str, now: datetime, size: int) -> list[Item]:
        return [self._item(source, now) for _ in range(size)]

    def _item(self, source: str, now: datetime) -> Item:
        n = next(self.counter)
        link = f"https://{source}.example/news/{n}"
        others = [s for s in itertools.islice(reversed(self.recent), 50) if s.source != source]
        if others and self.rng.random() < REPORTS:
            story = self.rng.choice(others)
            title = self.headlines.reworded(story.title)
            canonical = story.link if self.rng.random() < 0.4 else link
        else:
            story = Story(n, self.headlines.story(), link, source)
            self.recent.append(story)
            title, canonical = story.title, link
        if MARKER in title:
            self.marked_stories.add(story.number)
        return make_item(source, n, title, link, canonical, now, self.headlines)


def make_item(
    source: str, n: int, title: str, link: str, canonical: str, now: datetime, hl: Headlines
) -> Item:
    summary = hl.rng.choice(hl.summaries)
    return Item(
        source_id=source,
        key=f"guid:{source}/{n}",
        title=title,
        link=link,
        canonical_link=canonical,
        summary=summary,
        author="Staff",
        published=now - timedelta(minutes=n % 90),
        content_hash=hashlib.blake2b(f"{title}|{summary}".encode(), digest_size=16).hexdigest(),
        guid=f"{source}/{n}",
    )


def trivial_matcher(item: Item) -> Sequence[RuleMatch]:
    at = item.title.find(MARKER)
    if at < 0:
        return ()
    return (RuleMatch("kn23", "high", (Span("title", at, at + len(MARKER), MARKER),)),)


class NoKeys:
    """A story matcher that gives no blocking keys: items group by canonical link only, so the
    title lookup costs nothing. The baseline that isolates what title grouping costs."""

    def keys(self, title: str) -> Sequence[str]:
        return ()

    def same(self, a: str, b: str) -> bool:
        return False


@dataclass
class Counting:
    """TitleStoryMatcher, counting the candidate headlines it is asked to compare."""

    inner: TitleStoryMatcher = field(default_factory=TitleStoryMatcher)
    compared: int = 0

    def keys(self, title: str) -> Sequence[str]:
        return self.inner.keys(title)

    def same(self, a: str, b: str) -> bool:
        self.compared += 1
        return self.inner.same(a, b)


# --- driving the Store --------------------------------------------------------------------------

PROBES = 40  # extra sources the measurements poll, so they never disturb the fill's sources


def source_specs(count: int) -> list[SourceSpec]:
    ids = [f"src{i:04d}" for i in range(count)] + [f"probe{i:02d}" for i in range(PROBES)]
    return [
        SourceSpec(i, f"https://{i}.example/feed.xml", i, (), timedelta(minutes=15)) for i in ids
    ]


def store_poll(
    store: Store, source: str, items: Sequence[Item], now: datetime, stories: StoryMatcher
) -> int:
    """Store one poll as the daemon does; returns the number of alerts."""
    result = store.ingest(
        source,
        INSTANCE,
        now=now,
        items=items,
        etag=None,
        last_modified=None,
        body_hash=None,
        next_poll_at=now + timedelta(minutes=15),
        backfill=timedelta(hours=24),
        matcher=trivial_matcher,
        route=lambda match: ["console"],
        stories=stories,
        dedup_window=WINDOW,
    )
    if result is None:
        raise RuntimeError(f"lost the lease of {source}")
    return result.alerts


def claim_all(store: Store, now: datetime) -> None:
    """Lease every source not leased yet; each poll stored hands its source's lease back."""
    store.claim_due_sources(INSTANCE, now, limit=100_000, lease=LEASE, include_not_due=True)


def timed(fn: Callable[..., object], *args: object) -> float:
    started = time.perf_counter()
    fn(*args)
    return time.perf_counter() - started


@dataclass
class Fill:
    items: int = 0
    alerts: int = 0
    seconds: float = 0.0  # wall time inside Store.ingest
    cpu: float = 0.0  # CPU time of this process inside Store.ingest
    wall: float = 0.0  # the whole fill, generating items included
    first_rate: float = 0.0  # items/s over the first twentieth of the fill
    last_rate: float = 0.0  # ... and over the last one


def fill(store: Store, world: World, sources: int, total: int, stories: StoryMatcher) -> Fill:
    """Poll every source in turn, round after round, `POLL` new items a poll, until `total`
    items are stored; simulated time runs over `SPAN`."""
    rounds = -(-total // (sources * POLL))
    step = SPAN / rounds
    done = Fill()
    marks: list[tuple[int, float]] = [(0, 0.0)]
    started = time.perf_counter()
    for r in range(rounds):
        start = T0 + r * step
        claim_all(store, start)
        for s in range(min(sources, -(-(total - done.items) // POLL))):
            now = start + step * s / sources
            batch = world.poll(f"src{s:04d}", now, min(POLL, total - done.items))
            cpu, wall = time.process_time(), time.perf_counter()
            done.alerts += store_poll(store, f"src{s:04d}", batch, now, stories)
            done.cpu += time.process_time() - cpu
            done.seconds += time.perf_counter() - wall
            done.items += len(batch)
            marks.append((done.items, done.seconds))
        elapsed = time.perf_counter() - started
        print(f"  round {r + 1}/{rounds}: {done.items:,} items, {elapsed:,.0f} s", flush=True)
    done.wall = time.perf_counter() - started
    done.first_rate, done.last_rate = _edge_rates(marks)
    return done


def _edge_rates(marks: Sequence[tuple[int, float]]) -> tuple[float, float]:
    cut = max(1, len(marks) // 20)

    def rate(a: tuple[int, float], b: tuple[int, float]) -> float:
        return (b[0] - a[0]) / max(b[1] - a[1], 1e-9)

    return rate(marks[0], marks[cut]), rate(marks[-cut - 1], marks[-1])


@dataclass(frozen=True)
class Probe:
    detect_ms: float  # median poll of 50 items, 45 of them stored
    unchanged_ms: float  # median poll of 50 items, all stored
    group_us: float  # story grouping per new item: TitleStoryMatcher minus no lookup at all
    compared: float  # candidate headlines compared per new item


def probe(store: Store, world: World, now: datetime, first: int) -> Probe:
    """Measure on probe sources `first`.. at `now`, with what the store holds."""
    claim_all(store, now)
    ids = [f"probe{i:02d}" for i in range(first, first + PROBES // 2)]
    detect, unchanged = _detection(store, world, ids[0], now)
    counting = Counting()
    keyed: list[float] = []
    unkeyed: list[float] = []
    for i in range(4):
        at = now + timedelta(seconds=10 + i)
        for source, stories, times in (
            (ids[1 + 2 * i], counting, keyed),
            (ids[2 + 2 * i], NoKeys(), unkeyed),
        ):
            batch = world.poll(source, at, POLL)
            times.append(timed(store_poll, store, source, batch, at, stories))
    group = (statistics.median(keyed) - statistics.median(unkeyed)) / POLL
    return Probe(
        detect_ms=detect * 1000,
        unchanged_ms=unchanged * 1000,
        group_us=max(group, 0.0) * 1e6,
        compared=counting.compared / (4 * POLL),
    )


def _detection(store: Store, world: World, source: str, now: datetime) -> tuple[float, float]:
    """A feed's sliding window: each poll keeps the newest 45 of the last one and adds 5."""
    stories = TitleStoryMatcher()
    feed = world.poll(source, now, STORED)
    store_poll(store, source, feed, now, stories)
    detect: list[float] = []
    unchanged: list[float] = []
    for i in range(7):
        at = now + timedelta(seconds=1 + i)
        feed = world.poll(source, at, POLL - STORED) + feed[:STORED]
        claim_all(store, at)
        detect.append(timed(store_poll, store, source, feed, at, stories))
    for i in range(5):
        at = now + timedelta(seconds=9 + i)
        claim_all(store, at)
        unchanged.append(timed(store_poll, store, source, feed, at, stories))
    return statistics.median(detect), statistics.median(unchanged)


# --- size and memory ----------------------------------------------------------------------------


def disk_mb(url: str) -> float:
    """SQLite: the database file with its WAL and shared-memory index. PostgreSQL: the database."""
    import sqlalchemy as sa  # only here: the product keeps SQLAlchemy inside storage/

    parsed = sa.make_url(url)
    if parsed.get_backend_name() == "sqlite":
        path = Path(parsed.database or "")
        files = [path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")]
        return sum(f.stat().st_size for f in files if f.exists()) / 2**20
    engine = sa.create_engine(parsed)
    try:
        with engine.connect() as conn:
            size = conn.execute(sa.text("SELECT pg_database_size(current_database())")).scalar()
    finally:
        engine.dispose()
    return float(size or 0) / 2**20


def rss_mb() -> tuple[float, float]:
    """(current, peak) resident set size of this process: /proc/self/status where there is one,
    else psutil (current) and getrusage (peak)."""
    status = Path("/proc/self/status")
    if status.exists():
        fields = dict(line.split(":", 1) for line in status.read_text().splitlines() if ":" in line)
        return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024
    import resource

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / (
        1024 if sys.platform != "darwin" else 2**20
    )
    try:
        import psutil  # type: ignore[import-untyped]

        return psutil.Process().memory_info().rss / 2**20, peak
    except ImportError:
        return peak, peak


def rss_child(url: str, sources: int, at: datetime) -> dict[str, float]:
    """What a daemon does with the full store, in this (fresh) process: register, sync the
    sources, claim them all, store a few polls (new ones, then the same again), prune."""
    with_daemon = True
    try:  # the daemon's own imports, where they load
        import monitor.daemon  # noqa: F401
    except Exception:
        with_daemon = False
    imported, _ = rss_mb()
    store = Store.open(url)
    store.acquire_instance("rss-child", at)
    store.sync_sources(source_specs(sources), at)
    store.claim_due_sources("rss-child", at, limit=100_000, lease=LEASE, include_not_due=True)
    stories = TitleStoryMatcher()
    started = time.perf_counter()
    for i in range(min(10, sources)):
        source = f"src{i:04d}"
        batch = _light_poll(source, at)
        for again in (False, True):
            if again:
                store.claim_due_sources(
                    "rss-child", at, limit=100_000, lease=LEASE, include_not_due=True
                )
            stored = store.ingest(
                source,
                "rss-child",
                now=at,
                items=batch,
                etag=None,
                last_modified=None,
                body_hash=None,
                next_poll_at=at,
                backfill=timedelta(hours=24),
                matcher=trivial_matcher,
                route=lambda m: ["console"],
                stories=stories,
                dedup_window=WINDOW,
            )
            if stored is None:
                raise RuntimeError(f"the RSS process could not lease {source}")
    polls = time.perf_counter() - started
    started = time.perf_counter()
    pruned = store.prune(at, RETENTION - timedelta(days=3))
    prune_s = time.perf_counter() - started
    store.release_instance("rss-child")
    store.close()
    _, peak = rss_mb()
    return {
        "imported_mb": imported,
        "peak_mb": peak,
        "daemon_imports": float(with_daemon),
        "polls": 2.0 * min(10, sources),
        "polls_s": polls,
        "pruned": float(pruned),
        "prune_s": prune_s,
    }


def _light_poll(source: str, at: datetime) -> list[Item]:
    """Items for the RSS process, made without the fill's vocabulary: its tables would count
    against the daemon's memory."""
    rng = random.Random(source)
    items = []
    for n in range(POLL):
        title = " ".join(rng.choice(WORDS) for _ in range(8)) + f" {n}"
        link = f"https://{source}.example/rss/{n}"
        items.append(
            Item(source, f"guid:{link}", title, link, link, summary=title * 3, published=at)
        )
    return items


def measure_rss(url: str, sources: int, at: datetime) -> dict[str, float]:
    args = [sys.executable, "-m", "benchmarks.store_bench", "--rss-child", url]
    args += ["--sources", str(sources), "--at", at.isoformat()]
    root = Path(__file__).resolve().parents[1]
    done = subprocess.run(args, cwd=root, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"the RSS process failed:\n{done.stderr[-3000:]}")
    result: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


# --- the run ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Options:
    items: int
    sources: int
    pg: str | None
    folder: Path | None


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks store_bench")
    default = int(os.environ.get(ENV_ITEMS, "1000000"))
    parser.add_argument("--items", type=int, default=default, help=f"default ${ENV_ITEMS} or 1M")
    parser.add_argument("--sources", type=int, help="default 2,000, fewer for small --items")
    parser.add_argument("--pg", default=os.environ.get(PG_ENV), help=f"default ${PG_ENV}")
    parser.add_argument("--no-sqlite", action="store_true", help="PostgreSQL only")
    parser.add_argument("--dir", type=Path, help="where the SQLite file goes (default: a temp dir)")
    parser.add_argument("--rss-child", metavar="URL", help=argparse.SUPPRESS)
    parser.add_argument("--at", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


@dataclass
class Result:
    backend: str
    options: Options
    fill: Fill
    empty: Probe
    full: Probe
    empty_mb: float
    full_mb: float
    rss: dict[str, float]
    expected_alerts: int


def run(backend: str, url: str, options: Options) -> Result:
    sources = options.sources
    world = World(Headlines(random.Random(1)), random.Random(2))
    store = Store.open(url)
    try:
        store.sync_sources(source_specs(sources), T0 - timedelta(days=1))
        empty_mb = disk_mb(url)
        print(f"{backend}: baseline on the empty store", flush=True)
        empty = probe(store, world, T0 - timedelta(hours=1), 0)
        world.recent.clear()
        world.marked_stories.clear()  # the fill's alerts are checked against the fill's stories
        print(f"{backend}: filling {options.items:,} items over {sources:,} sources", flush=True)
        filled = fill(store, world, sources, options.items, TitleStoryMatcher())
        expected = len(world.marked_stories)
        end = T0 + SPAN
        print(f"{backend}: measuring the full store", flush=True)
        full = probe(store, world, end, PROBES // 2)
        store.release_instance(INSTANCE)  # hand the leases back for the RSS process
    finally:
        store.close()
    full_mb = disk_mb(url)
    print(f"{backend}: peak RSS of a fresh daemon-like process", flush=True)
    try:
        rss = measure_rss(url, sources, end + timedelta(minutes=5))
    except RuntimeError as error:  # the fill's figures are worth printing all the same
        print(error, file=sys.stderr)
        rss = {}
    return Result(backend, options, filled, empty, full, empty_mb, full_mb, rss, expected)


def _row(label: str, empty: float, full: float, fmt: str, target: str = "") -> str:
    ratio = f"{full / empty:7.2f}x" if empty > 0 else "      - "
    return f"  {label:<46} {empty:>12{fmt}} {full:>14{fmt}} {ratio}  {target}"


def report(r: Result) -> None:
    o, f = r.options, r.fill
    print(f"\n{r.backend}: {f.items:,} items over {o.sources:,} sources in polls of {POLL}")
    print(
        f"  fill: {f.wall:,.0f} s wall, of which Store.ingest {f.seconds:,.0f} s "
        f"({f.items / f.seconds:,.0f} items/s; {f.cpu:,.0f} s CPU in this process)"
    )
    print(f"  load average while running: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    head = f"  {'':<46} {'empty store':>12} {f'{f.items:,} items':>14}   ratio"
    print(head + "\n  " + "-" * (len(head) + 8))
    rss = r.rss or dict.fromkeys(("imported_mb", "peak_mb", "polls", "polls_s", "pruned"), 0.0)
    rows = [
        _row("insert rate, polls of 50 new (items/s) [1]", f.first_rate, f.last_rate, ",.0f"),
        _row(
            "new-item detection, 45 of 50 stored (ms/poll)",
            r.empty.detect_ms,
            r.full.detect_ms,
            ".1f",
        ),
        _row(
            "poll with nothing new, 50 stored (ms/poll)",
            r.empty.unchanged_ms,
            r.full.unchanged_ms,
            ".1f",
        ),
        _row("story grouping per new item (µs) [2]", r.empty.group_us, r.full.group_us, ",.0f"),
        _row("  headlines compared per new item", r.empty.compared, r.full.compared, ",.1f"),
        _row("database size on disk, incl. WAL (MB)", r.empty_mb, r.full_mb, ",.1f"),
        _row(
            "peak RSS, daemon-like process (MB) [3]",
            rss["imported_mb"],
            rss["peak_mb"],
            ",.0f",
            f"target < {RSS_TARGET_MB}",
        ),
    ]
    print("\n".join(rows))
    print("  [1] first twentieth of the fill against the last one")
    print("  [2] TitleStoryMatcher minus a matcher without blocking keys, same polls; the full")
    print(f"      store's 72h window holds ~{f.items * WINDOW / SPAN:,.0f} items")
    imports = "the daemon's imports" if rss.get("daemon_imports") else "storage + stories imports"
    print(f"  [3] left: after {imports}; right: peak after opening the store, claiming every")
    print(
        f"      source, {rss['polls']:.0f} polls ({rss['polls_s']:.2f} s) and a prune of "
        f"{rss['pruned']:,.0f} items ({rss.get('prune_s', 0.0):.2f} s)"
    )
    missed = f.alerts - r.expected_alerts
    print(
        f"  grouping check: {r.expected_alerts:,} distinct stories matched the trivial rule, "
        f"{f.alerts:,} alerts ({missed:+,} = reports not grouped with their story)"
    )
    _extrapolate(r)


def _extrapolate(r: Result) -> None:
    """The story lookup at the key density of real headlines, from the cost per comparison."""
    density = corpus_density()
    if density is None:
        return
    per_compare = compare_us()
    compared = density * r.fill.items * WINDOW / SPAN
    print(
        f"  [4] at the key density of real news ({CORPUS.name}: a headline shares a blocking key "
        f"with {density:.1%} of the others)\n      a full window would take ~{compared:,.0f} "
        f"comparisons = ~{compared * per_compare / 1000:,.0f} ms per new item, at "
        f"{per_compare:,.0f} µs per comparison with an uncached stored headline"
    )


def compare_us() -> float:
    """`TitleStoryMatcher.same` of one headline against stored ones it has not analysed yet, as
    happens once the window holds more stories than its analysis cache."""
    matcher = TitleStoryMatcher()
    fresh = Headlines(random.Random(4242))
    probe, stored = fresh.story(), [fresh.story() for _ in range(3000)]
    started = time.perf_counter()
    for title in stored:
        matcher.same(probe, title)
    return (time.perf_counter() - started) / len(stored) * 1e6


def corpus_density() -> float | None:
    """Mean share of the other headlines of the real news corpus that share a blocking key with
    one of them; None when the corpus is absent."""
    if not CORPUS.is_file():
        return None
    matcher = TitleStoryMatcher()
    lines = CORPUS.read_text(encoding="utf-8").splitlines()
    keys = [set(matcher.keys(json.loads(line).get("title") or "")) for line in lines if line]
    shared = [sum(1 for other in keys if other is not k and k & other) for k in keys]
    return statistics.mean(shared) / max(len(keys) - 1, 1)


def _pg_database(base: str) -> tuple[str, Callable[[], None]]:
    """A private database on the server `base` names, and how to drop it."""
    import sqlalchemy as sa

    url = sa.make_url(base)
    name = f"store_bench_{os.getpid()}_{secrets.token_hex(3)}"
    admin = sa.create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))

    def drop() -> None:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()

    return url.set(database=name).render_as_string(hide_password=False), drop


def main() -> None:
    args = parse_args(sys.argv[1:])
    if args.rss_child:
        at = datetime.fromisoformat(args.at)
        print(json.dumps(rss_child(args.rss_child, args.sources, at)))
        return
    sources = args.sources or max(1, min(2000, args.items // 500))
    options = Options(args.items, sources, args.pg, args.dir)
    started = time.perf_counter()
    if not args.no_sqlite:
        with tempfile.TemporaryDirectory(prefix="store_bench_", dir=args.dir) as folder:
            report(run("sqlite", f"sqlite:///{Path(folder) / 'monitor.db'}", options))
    if args.pg:
        url, drop = _pg_database(args.pg)
        try:
            report(run("postgresql", url, options))
        finally:
            drop()
    print(f"\nstore_bench: {time.perf_counter() - started:,.0f} s in all")


if __name__ == "__main__":
    main()
