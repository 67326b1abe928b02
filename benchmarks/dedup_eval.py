"""How well story grouping saves alerts without hiding stories, on the development corpus.

    python -m benchmarks.dedup_eval [--corpus PATH] [--show]

Replays `/work/shared/corpus/news/dev.jsonl` in publication order the way `Store.ingest` groups
items: same canonical link -> that story; else candidate stories sharing a blocking key, created
within the 72h window, confirmed by the matcher against the story's first title (tried key by key,
oldest story first); else a new story. The corpus has no story labels, so `dedup_truth.json`
records a one-time hand judgement of every candidate pair (pairs within 72h whose titles are at all
alike, see its `about`): `same`, `update` (one event whose headline facts changed, e.g. a rising
toll), `related` (same wider event, a different piece) or `different`. Merging a
`related`/`different` pair is a wrong merge (an alert the analyst never gets); leaving a `same` pair
apart is a missed merge (one extra alert). `update` pairs are counted on their own: either outcome
is defensible.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from rapidfuzz import fuzz

from monitor.stories import TitleStoryMatcher, normalize_title

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CORPUS = ROOT.parent / "shared" / "corpus" / "news" / "dev.jsonl"
TRUTH = Path(__file__).resolve().parent / "dedup_truth.json"
WINDOW = timedelta(hours=72)
WRONG = ("related", "different")

# (a_title, a_summary, b_title, b_summary) -> same story?
SameFn = Callable[[str, str, str, str], bool]
KeysFn = Callable[[str], Sequence[str]]


@dataclass(frozen=True)
class DevItem:
    id: str
    feed: str
    title: str
    summary: str
    link: str
    published: datetime
    labels: tuple[str, ...]


@dataclass
class _Story:
    first: DevItem
    created: datetime
    members: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Report:
    name: str
    items: int
    stories: int
    labelled_items: int
    labelled_alerts: int  # one alert per (label, story), as rules alert once per story
    merged_pairs: frozenset[tuple[str, str]]
    wrong: tuple[tuple[str, str, str], ...]  # (a, b, verdict)
    missed: tuple[tuple[str, str], ...]
    unjudged: tuple[tuple[str, str], ...]
    updates_merged: int
    updates_total: int


def load_items(path: Path) -> list[DevItem]:
    items = []
    for line in path.read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        items.append(
            DevItem(
                id=row["id"],
                feed=row.get("feed_url", ""),
                title=row.get("title") or "",
                summary=row.get("summary") or "",
                link=row.get("link") or "",
                published=datetime.fromisoformat(row["published"]),
                labels=tuple(row.get("labels") or ()),
            )
        )
    items.sort(key=lambda i: (i.published, i.id))
    return items


def load_truth(path: Path = TRUTH) -> dict[tuple[str, str], str]:
    data = json.loads(path.read_text(encoding="utf-8"))
    return {_pair(a, b): verdict for a, b, verdict in data["pairs"]}


def _pair(a: str, b: str) -> tuple[str, str]:
    return (a, b) if a < b else (b, a)


def group(items: Sequence[DevItem], same: SameFn, keys: KeysFn | None) -> list[_Story]:
    """Replay ingest: link match, else keyed candidates (all stories when `keys` is None)."""
    stories: list[_Story] = []
    by_link: dict[str, _Story] = {}
    by_key: dict[str, list[_Story]] = {}
    for item in items:
        story = by_link.get(item.link) if item.link else None
        if story is not None and item.published - story.created > WINDOW:
            story = None
        if story is None:
            story = _find(item, stories, by_key, same, keys)
        if story is None:
            story = _Story(first=item, created=item.published)
            stories.append(story)
            for key in keys(item.title) if keys else ():
                by_key.setdefault(key, []).append(story)
        story.members.append(item.id)
        if item.link:
            by_link.setdefault(item.link, story)
    return stories


def _find(
    item: DevItem,
    stories: list[_Story],
    by_key: dict[str, list[_Story]],
    same: SameFn,
    keys: KeysFn | None,
) -> _Story | None:
    """Candidates in the order `storage._stories` tries them: key by key, oldest story first."""
    if keys is None:
        pool: Iterable[_Story] = stories
    else:
        pool = (s for k in keys(item.title) for s in by_key.get(k, ()))
    tried: set[int] = set()
    for story in pool:
        if id(story) in tried or item.published - story.created > WINDOW:
            continue
        tried.add(id(story))
        if same(item.title, item.summary, story.first.title, story.first.summary):
            return story
    return None


def evaluate(
    name: str,
    items: Sequence[DevItem],
    truth: dict[tuple[str, str], str],
    same: SameFn,
    keys: KeysFn | None,
) -> Report:
    stories = group(items, same, keys)
    merged = frozenset(
        _pair(a, b) for s in stories for a, b in itertools.combinations(s.members, 2)
    )
    labels_of = {i.id: i.labels for i in items}
    labelled = sum(1 for i in items if i.labels)
    alerts = sum(len({lab for m in s.members for lab in labels_of[m]}) for s in stories)
    updates = [p for p, v in truth.items() if v == "update"]
    return Report(
        name=name,
        items=len(items),
        stories=len(stories),
        labelled_items=labelled,
        labelled_alerts=alerts,
        merged_pairs=merged,
        wrong=tuple(sorted((a, b, truth[(a, b)]) for a, b in merged if truth.get((a, b)) in WRONG)),
        missed=tuple(sorted(p for p, v in truth.items() if v == "same" and p not in merged)),
        unjudged=tuple(sorted(p for p in merged if p not in truth)),
        updates_merged=sum(1 for p in updates if p in merged),
        updates_total=len(updates),
    )


def _label_items(items: Sequence[DevItem]) -> int:
    return sum(len(i.labels) for i in items)


def _print_report(r: Report, items: Sequence[DevItem]) -> None:
    print(
        f"{r.name:<34} stories {r.stories:>4}  saved {r.items - r.stories:>3}"
        f"  mission saved {_label_items(items) - r.labelled_alerts:>2}"
        f"  wrong {len(r.wrong):>3}  missed {len(r.missed):>3}"
        f"  updates merged {r.updates_merged:>2}/{r.updates_total}"
        f"  unjudged merges {len(r.unjudged)}"
    )


def _print_pairs(title: str, pairs: Iterable[Sequence[str]], by_id: dict[str, DevItem]) -> None:
    pairs = list(pairs)
    if not pairs:
        return
    print(f"  {title}:")
    for pair in pairs:
        a, b = by_id[pair[0]], by_id[pair[1]]
        verdict = f" [{pair[2]}]" if len(pair) > 2 else ""
        print(f"    {a.id[:10]} {a.title!r}\n    {b.id[:10]} {b.title!r}{verdict}")


def baseline_exact(a: str, _as: str, b: str, _bs: str) -> bool:
    """Reference point: only titles equal after normalisation."""
    na = normalize_title(a)
    return bool(na) and na == normalize_title(b)


def baseline_fuzzy(a: str, _as: str, b: str, _bs: str) -> bool:
    """Reference point: a plain rapidfuzz score, no number or name checks."""
    return fuzz.token_set_ratio(normalize_title(a), normalize_title(b)) >= 85


def configurations() -> list[tuple[str, SameFn, KeysFn | None]]:
    m = TitleStoryMatcher()
    return [
        ("baseline: exact normalised title", baseline_exact, None),
        ("baseline: token_set_ratio>=85", baseline_fuzzy, None),
        ("TitleStoryMatcher.same", lambda a, _x, b, _y: m.same(a, b), m.keys),
        ("TitleStoryMatcher.same, no keys", lambda a, _x, b, _y: m.same(a, b), None),
        ("TitleStoryMatcher.same_item", m.same_item, m.keys),
    ]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    parser.add_argument("--show", action="store_true", help="list wrong, missed and unjudged pairs")
    args = parser.parse_args(argv)
    if not args.corpus.is_file():
        print(f"dedup_eval: corpus not found at {args.corpus}; skipped")
        return 0
    items = load_items(args.corpus)
    truth = load_truth()
    by_id = {i.id: i for i in items}
    judged = {v: sum(1 for x in truth.values() if x == v) for v in ("same", "update", *WRONG)}
    labelled = sum(1 for i in items if i.labels)
    print(
        f"items {len(items)} (with mission labels {labelled}, label alerts without grouping"
        f" {_label_items(items)}); judged pairs {len(truth)}: {judged}"
    )
    for name, same, keys in configurations():
        report = evaluate(name, items, truth, same, keys)
        _print_report(report, items)
        if args.show:
            _print_pairs("wrong merges", report.wrong, by_id)
            _print_pairs("missed merges", report.missed, by_id)
            _print_pairs("unjudged merges", report.unjudged, by_id)
    return 0


if __name__ == "__main__":
    sys.exit(main())
