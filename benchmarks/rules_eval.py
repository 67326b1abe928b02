"""How well the shipped rule pack finds the mission topics in real news.

Loads `rules/packs` with the real loader, runs the real matcher over the labelled development set
(`<repo>/../shared/corpus/news/dev.jsonl`, title and summary of each item) and prints, for each
mission rule, true positives, false positives, false negatives, precision and recall. `-v` lists the
misses and false alarms (item id and title). Without the corpus it says so and exits 0: the corpus
belongs to its publishers and is kept beside the repository, not in it.

    python -m benchmarks.rules_eval [-v] [--corpus FILE] [--rules PATH ...]
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from monitor.errors import RuleError
from rules.ast import Document
from rules.loader import load_rules
from rules.matcher import compile_rules

REPO = Path(__file__).resolve().parents[1]
DEFAULT_CORPUS = REPO.parent / "shared" / "corpus" / "news" / "dev.jsonl"
DEFAULT_RULES = REPO / "rules" / "packs"
# Rule ids use hyphens, the corpus labels underscores.
MISSION_RULES = ("kn23", "dprk-arms", "dprk-troops", "depot-strikes")


@dataclass(frozen=True)
class LabelledItem:
    doc: Document
    labels: frozenset[str]  # rule ids (hyphenated)


@dataclass(frozen=True)
class Score:
    rule_id: str
    misses: tuple[LabelledItem, ...]  # labelled with the rule, not matched
    false_alarms: tuple[LabelledItem, ...]  # matched, not labelled
    true_positives: int

    @property
    def precision(self) -> float:
        found = self.true_positives + len(self.false_alarms)
        return self.true_positives / found if found else 1.0

    @property
    def recall(self) -> float:
        relevant = self.true_positives + len(self.misses)
        return self.true_positives / relevant if relevant else 1.0


def read_corpus(path: Path) -> list[LabelledItem]:
    """The labelled items of a JSON Lines file; blank lines are skipped."""
    items: list[LabelledItem] = []
    with path.open(encoding="utf-8") as f:
        for line in f:
            if not line.strip():
                continue
            row = json.loads(line)
            doc = Document(
                id=str(row["id"]),
                title=row.get("title") or "",
                summary=row.get("summary") or "",
                link=row.get("link") or "",
                source=row.get("source") or "",
            )
            labels = frozenset(str(label).replace("_", "-") for label in row.get("labels", ()))
            items.append(LabelledItem(doc, labels))
    return items


def evaluate(
    rule_paths: Sequence[Path], items: Sequence[LabelledItem], rule_ids: Iterable[str]
) -> list[Score]:
    """Match every item with the real loader and matcher, and score each rule of `rule_ids`.
    Raises `RuleError` for invalid rule files and `LookupError` for a rule id they lack."""
    rules = load_rules(rule_paths).rules
    absent = sorted(set(rule_ids) - {r.id for r in rules})
    if absent:
        raise LookupError(f"no rule {', '.join(absent)} in {', '.join(map(str, rule_paths))}")
    matcher = compile_rules(rules)
    matched = [{m.rule_id for m in matcher.match(item.doc)} for item in items]
    scores: list[Score] = []
    for rule_id in rule_ids:
        hits = [(item, rule_id in found) for item, found in zip(items, matched, strict=True)]
        scores.append(
            Score(
                rule_id=rule_id,
                misses=tuple(i for i, hit in hits if not hit and rule_id in i.labels),
                false_alarms=tuple(i for i, hit in hits if hit and rule_id not in i.labels),
                true_positives=sum(1 for i, hit in hits if hit and rule_id in i.labels),
            )
        )
    return scores


def report(scores: Sequence[Score], *, verbose: bool) -> str:
    lines = [f"{'rule':<16}{'TP':>5}{'FP':>5}{'FN':>5}{'precision':>11}{'recall':>8}"]
    for s in scores:
        lines.append(
            f"{s.rule_id:<16}{s.true_positives:>5}{len(s.false_alarms):>5}{len(s.misses):>5}"
            f"{s.precision:>11.2f}{s.recall:>8.2f}"
        )
        if verbose:
            lines += [f"    miss         {i.doc.id}  {i.doc.title}" for i in s.misses]
            lines += [f"    false alarm  {i.doc.id}  {i.doc.title}" for i in s.false_alarms]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.rules_eval", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true", help="list misses and false alarms")
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS, help="labelled JSON Lines")
    parser.add_argument(
        "--rules", type=Path, nargs="+", default=[DEFAULT_RULES], help="rule files or folders"
    )
    args = parser.parse_args(argv)
    if not args.corpus.is_file():
        print(f"skipped: no labelled corpus at {args.corpus}")
        return 0
    items = read_corpus(args.corpus)
    try:
        scores = evaluate(args.rules, items, MISSION_RULES)
    except (RuleError, LookupError) as e:
        print(e, file=sys.stderr)
        return 1
    print(f"{len(items)} items from {args.corpus}")
    print(report(scores, verbose=args.verbose))
    return 0


if __name__ == "__main__":
    sys.exit(main())
