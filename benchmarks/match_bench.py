"""Matching speed (DESIGN §7): the compiled matcher against the per-rule, per-term reference
matcher.

    python -m benchmarks match

Rules: the shipped pack (`rules/packs/`, when the loader is there) plus 500 generated rules of the
same shape: each 3-10 terms in two `any` groups that must both hold (who and what), a fifth with a
fuzzy term, a tenth with `near` instead of co-occurrence, a twentieth with a regex refining the
match. Items: the real news of `/work/shared/corpus/news/dev.jsonl` repeated to 20,000 (skipped when
the corpus is absent) and 20,000 synthetic items made of the rules' own vocabulary. The rate is
also given for the first 700 items seen by a fresh matcher (`first sight`): its word memo
(`rules._fuzzy`) starts empty, so the repeats of the corpus do not flatter the figure. The reference
runs on a slice of the same items in the same run; its answers are compared with the matcher's on
that slice (any difference is printed and fails the run).

The acceptance figure is the command's: `monitor match` run as analysts run it, on the pack and the
generated rules written as YAML, over the 20,000 items as JSON Lines. Its rate is net of start-up:
the same command on one item is timed in the same run and subtracted (CPU of the child process).
"""

from __future__ import annotations

import functools
import gc
import json
import random
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from rules.ast import Bool, Document, Fuzzy, Near, Node, Regex, Rule, RuleMatch, Term
from rules.matcher import compile_rules
from rules.reference import reference_match

CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus" / "news" / "dev.jsonl"
PACKS = Path(__file__).resolve().parents[1] / "rules" / "packs"
ITEMS = 20_000
REFERENCE_ITEMS = 300
COLD_ITEMS = 700
TARGET_RATE, TARGET_RATIO = 20_000, 20.0


def _words(text: str, sep: str | None = None) -> tuple[str, ...]:
    return tuple(text.split(sep))


# Written for this benchmark: the kind of words rules about conflicts and politics are made of.
WHO = _words(
    "Russia Ukraine China Iran Israel Syria Turkey Poland Belarus Georgia Moldova Serbia Kosovo "
    "Armenia Azerbaijan Kazakhstan Japan Taiwan India Pakistan Afghanistan Iraq Lebanon Yemen "
    "Sudan Libya Egypt Niger Mali Somalia Ethiopia Venezuela Cuba NATO Pentagon Kremlin Hamas "
    "Hezbollah Houthis Wagner IAEA UN EU Moscow Kyiv Beijing Tehran Ankara Warsaw Minsk Tbilisi "
    "Baku Yerevan Kharkiv Odesa Kherson Donetsk Luhansk Crimea Sevastopol Belgorod Bryansk Kursk "
    "Rostov Krasnodar Novorossiysk Engels Tikhoretsk Toropets Zaporizhzhia Mariupol Bakhmut "
    "Avdiivka Pokrovsk Sumy"
)
WHAT = _words(
    "missile missiles drone drones artillery shells ammunition rockets warhead warheads tank tanks "
    "howitzer howitzers jets fighter bomber submarine frigate warship radar sanctions embargo "
    "tariffs troops soldiers mercenaries officers engineers volunteers conscripts brigade "
    "battalion regiment strike strikes attack attacks offensive counteroffensive shelling bombing "
    "explosion explosions blast fire depot depots arsenal warehouse refinery pipeline airfield "
    "airbase bridge port railway ceasefire truce talks summit treaty deal agreement negotiations "
    "delegation envoy election referendum protest protests coup arrest arrested detained espionage "
    "spy sabotage cyberattack hackers casualties killed wounded captured prisoners evacuation "
    "refugees mobilisation deployment"
)
PHRASES = _words(
    "air defence|ballistic missile|cruise missile|ammunition depot|oil depot|fuel depot|"
    "arms deal|peace talks|prisoner swap|nuclear plant|power plant|grain deal|special forces|"
    "air strike|drone attack|missile strike|military aid|security council|foreign minister|"
    "defence minister|Black Sea|Red Sea|Baltic Sea|North Korea|South Korea|White House|"
    "Storm Shadow|Iskander-M|KN-23|Shahed-136|Kh-101|S-300|S-400|F-16|HIMARS|ATACMS|Patriot|"
    "Hwasong-11|Lancet|Geran-2",
    sep="|",
)
FUZZY = _words(
    "Tikhoretsk Zaporizhzhia Novorossiysk Sevastopol Hwasong-11 Shahed-136 Iskander-M Mykolaiv "
    "Kramatorsk Kupiansk Dnipropetrovsk Khmelnytskyi Starokostiantyniv Yeysk Millerovo Morozovsk"
)
FILLER = _words(
    "the a of in on and to for with after as by said officials reported according new near said "
    "over during week says video report latest from at was were has have been will could amid "
    "people government president minister country city year years day time first last two three it "
    "its he she they their his her who which what when where this that these those more most than "
    "about into up out not no but or also only still just would should may might can must told "
    "news state national local public police court law company market price prices economy "
    "business workers school health water weather storm fans team game season match win lost "
    "million billion percent plan plans support help call calls meeting visit trip leader leaders "
    "party vote bill home family children women men life world region area border north south east "
    "west capital late early morning night weekend monday friday officials spokesman"
)


def _terms(rng: random.Random, pool: Sequence[str], count: int) -> list[Node]:
    return [Term(t) for t in rng.sample(pool, count)]


def generated_rules(count: int = 500, seed: int = 7) -> list[Rule]:
    rng = random.Random(seed)
    who_pool = WHO + PHRASES[30:]
    what_pool = WHAT + PHRASES[:30]
    rules: list[Rule] = []
    for i in range(count):
        n = rng.randint(3, 10)
        first = rng.randint(1, n - 1)
        who: list[Node] = _terms(rng, who_pool, first)
        what: list[Node] = _terms(rng, what_pool, n - first)
        if i % 5 == 0:
            who.append(Fuzzy(rng.choice(FUZZY), rng.choice((90, 90, 90, 85, 95))))
        groups: tuple[Node, ...] = (Bool(any=tuple(who)), Bool(any=tuple(what)))
        match: Node = Bool(all=groups)
        if i % 10 == 3:
            match = Near(groups, within=rng.choice((3, 5, 8)))
        if i % 20 == 7:
            pattern = rng.choice(
                (r"\b\d+ (?:killed|dead|injured)", r"(?-i)[A-Z]{2,}-\d+", r"drones?")
            )
            match = Bool(all=(*groups, Regex(pattern)))
        rules.append(Rule(f"gen-{i}", f"generated {i}", "medium", match))
    return rules


def pack_rules() -> list[Rule]:
    try:
        from rules.loader import load_rules
    except ImportError:
        return []
    return list(load_rules([PACKS]).rules) if PACKS.is_dir() else []


def real_items() -> list[Document]:
    if not CORPUS.is_file():
        return []
    rows = [json.loads(line) for line in CORPUS.read_text(encoding="utf-8").splitlines() if line]
    docs = [
        Document(
            id=str(r["id"]),
            title=r.get("title") or "",
            summary=r.get("summary") or "",
            link=r.get("link") or "",
            source=r.get("source") or "",
        )
        for r in rows
    ]
    return [docs[i % len(docs)] for i in range(ITEMS)]


def synthetic_items(seed: int = 11) -> list[Document]:
    """News-like text: everyday words with a topical name or noun about one word in twelve, and
    the punctuation and case of headlines."""
    rng = random.Random(seed)
    topical = WHO + WHAT + PHRASES

    def word() -> str:
        w = rng.choice(topical) if rng.random() < 1 / 12 else rng.choice(FILLER)
        return w + rng.choice(("", "", "", "", ",", ".", "'s")) if rng.random() < 0.2 else w

    def sentence(n: int) -> str:
        return " ".join(word() for _ in range(n)).capitalize()

    return [
        Document(f"s{i}", title=sentence(rng.randint(6, 14)), summary=sentence(rng.randint(15, 40)))
        for i in range(ITEMS)
    ]


Match = Callable[[Document], list[RuleMatch]]


def _rate(match: Match, docs: Sequence[Document]) -> tuple[float, float, list[list[RuleMatch]]]:
    """Items per second of CPU time (the one-core figure, steady whatever else the machine runs)
    and of wall time, and the answers."""
    gc.collect()
    cpu, wall = time.process_time(), time.perf_counter()
    answers = [match(d) for d in docs]
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    return len(docs) / cpu, len(docs) / wall, answers


def measure(label: str, rules: Sequence[Rule], docs: Sequence[Document]) -> bool:
    started = time.perf_counter()
    matcher = compile_rules(rules)
    compile_s = time.perf_counter() - started
    # A fresh matcher meets every word for the first time (fuzzy verdicts are remembered per
    # distinct word): the rate of a daemon just started, before its word memo has filled.
    cold_cpu, _, _ = _rate(matcher.match, docs[:COLD_ITEMS])
    fast_cpu, fast_wall, fast = _rate(matcher.match, docs)
    sample = docs[:REFERENCE_ITEMS]
    ref_cpu, ref_wall, ref = _rate(lambda d: reference_match(rules, d), sample)
    differ = [d.id for d, a, b in zip(sample, fast, ref, strict=False) if a != b]
    matched = sum(1 for a in fast if a)
    print(
        f"{label}: {len(rules)} rules compiled in {compile_s * 1000:.0f} ms; "
        f"{len(docs)} items, {matched} with a match"
    )
    target = f"target >= {TARGET_RATE:,}/s"
    print(f"  matcher   {fast_cpu:9,.0f}/s CPU {fast_wall:9,.0f}/s wall   ({target})")
    print(f"  first sight {cold_cpu:7,.0f}/s CPU   (a fresh matcher, first {COLD_ITEMS} items)")
    print(f"  reference {ref_cpu:9,.0f}/s CPU {ref_wall:9,.0f}/s wall   (on {len(sample)} of them)")
    print(f"  ratio     {fast_cpu / ref_cpu:9.1f}x CPU   (target >= {TARGET_RATIO:.0f}x)")
    if differ:
        print(f"  DIFFERENT ANSWERS from the reference on {len(differ)} items: {differ[:10]}")
    print(
        f"  answers identical to the reference on {len(sample) - len(differ)}/{len(sample)} items"
    )
    return not differ


def counted_workload(count: int = 300, kind: str = "real", warm: bool = True) -> int:
    """A fixed workload for instruction counts, steady whatever the machine's load: compile every
    rule, then match `count` real (or synthetic) items inside `functools.reduce`, so that callgrind
    counts the matching alone (`warm`: each item matched once before, as the repeated corpus is;
    otherwise the word memo meets every word first). Returns the number of matches.

        valgrind --tool=callgrind --collect-atstart=no --toggle-collect=functools_reduce \\
            .venv/bin/python -c 'from benchmarks.match_bench import counted_workload as w; w()'

    Instructions per item: the `Collected` figure divided by `count`."""
    matcher = compile_rules(pack_rules() + generated_rules())
    docs = (real_items() if kind == "real" else synthetic_items())[:count]
    if warm:
        for d in docs:
            matcher.match(d)
    return functools.reduce(lambda total, d: total + len(matcher.match(d)), docs, 0)


def _yaml_node(node: Node) -> object:
    """A generated rule's condition in the rule file format (JSON is YAML)."""
    if isinstance(node, Term):
        return node.text
    if isinstance(node, Fuzzy):
        return {"fuzzy": node.text, "score": node.score}
    if isinstance(node, Regex):
        return {"regex": node.pattern}
    if isinstance(node, Near):
        return {"near": [_yaml_node(op) for op in node.operands], "within": node.within}
    groups = {"any": node.any, "all": node.all, "none": node.none}
    return {key: [_yaml_node(n) for n in nodes] for key, nodes in groups.items() if nodes}


def _child_cpu(argv: Sequence[str]) -> float:
    """CPU seconds (user + system) of one run of `argv`, which must succeed."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def measure_command(generated: Sequence[Rule], docs: Sequence[Document]) -> bool:
    """`monitor match --rules PACK --rules GENERATED --input ITEMS`, net of start-up."""
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        rules_file = folder / "generated.yaml"
        body = [
            {"id": r.id, "title": r.title, "level": r.level, "match": _yaml_node(r.match)}
            for r in generated
        ]
        rules_file.write_text(json.dumps({"rules": body}), encoding="utf-8")
        from rules.loader import load_rules

        loaded = [(r.id, r.level, r.match) for r in load_rules([rules_file]).rules]
        if loaded != [(r.id, r.level, r.match) for r in generated]:
            print("monitor match: the generated rules did not survive YAML; not measured")
            return False
        items = folder / "items.jsonl"
        one = folder / "one.jsonl"
        lines = [
            json.dumps({"id": d.id, "title": d.title, "summary": d.summary, "content": d.content})
            for d in docs
        ]
        items.write_text("\n".join(lines) + "\n", encoding="utf-8")
        one.write_text(lines[0] + "\n", encoding="utf-8")
        argv = [sys.executable, "-c", "from monitor.cli import main; main()", "match"]
        argv += ["--rules", str(PACKS)]
        argv += ["--rules", str(rules_file), "--input"]
        start_up = min(_child_cpu([*argv, str(one)]) for _ in range(3))
        total = _child_cpu([*argv, str(items)])
    rate = (len(docs) - 1) / max(total - start_up, 1e-9)
    print(
        f"monitor match (the command, {len(docs)} items as JSON Lines): {total:.2f} s CPU, "
        f"start-up {start_up:.2f} s (one item, best of 3)"
    )
    print(f"  net of start-up {rate:9,.0f}/s CPU   (target >= {TARGET_RATE:,}/s)")
    return True


def main() -> None:
    generated = generated_rules()
    rules = pack_rules() + generated
    print(f"pack rules: {len(rules) - 500}, generated rules: 500")
    ok = True
    real = real_items()
    if real:
        ok &= measure("real news (corpus dev.jsonl, repeated)", rules, real)
        if PACKS.is_dir():
            ok &= measure_command(generated, real)
    else:
        print(f"real news: skipped, {CORPUS} is absent")
    ok &= measure("synthetic news-like text", rules, synthetic_items())
    if not ok:
        sys.exit(1)


if __name__ == "__main__":
    main()
