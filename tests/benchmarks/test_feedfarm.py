"""The feed farm that `fetch_bench` and `soak` poll: unique items per feed, generations that publish
exactly NEW_ITEMS new items, well-formed documents, and HTTP validators that behave like a server's.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path

import feedparser
import httpx
import pytest

from benchmarks._feedfarm import (
    NEW_ITEMS,
    FeedFarm,
    FeedSet,
    Template,
    corpus_documents,
    generated_documents,
    host_addresses,
)
from benchmarks.fetch_bench import Setting, ideal_seconds, parse_args, settings
from benchmarks.fetch_cpu import inner
from benchmarks.fetch_cpu import parse_args as fetch_cpu_args
from benchmarks.soak import _shape, third_means

CORPUS = Path(__file__).resolve().parents[3] / "shared" / "corpus"

_DOC = b"""<?xml version="1.0"?><rss version="2.0"><channel><title>Site &amp; co</title>
<link>https://example.org/</link>
<item><title><![CDATA[Strike on depot]]></title><link>https://example.org/a?x=1</link>
<guid>a-1</guid></item>
<item><title>Troops &amp; drones</title><link>https://example.org/b</link><guid>b-2</guid></item>
<item><title>Third</title><link>https://example.org/c</link><guid>c-3</guid></item>
<item><title>Fourth</title><link>https://example.org/d</link><guid>d-4</guid></item>
</channel></rss>"""


def entries(body: bytes) -> list[feedparser.FeedParserDict]:
    # The fast options (as the daemon's): these tests check structure, not rendering.
    parsed = feedparser.parse(io.BytesIO(body), sanitize_html=False, resolve_relative_uris=False)
    assert not parsed.bozo, parsed.get("bozo_exception")
    return list(parsed.entries)


def identities(body: bytes) -> set[tuple[str, str, str]]:
    return {(e.id, e.link, e.title) for e in entries(body)}


def test_every_feed_has_its_own_items_and_titles() -> None:
    template = Template.cut("doc", _DOC)
    one, two = identities(template.render(1, 0)), identities(template.render(2, 0))
    assert len(one) == 4
    for a, b in zip(sorted(one), sorted(two), strict=True):
        assert a[0] != b[0] and a[1] != b[1] and a[2] != b[2]
    # The link with a query keeps it, escaped as XML needs.
    links = [e.link for e in entries(template.render(1, 0))]
    assert links[0] == "https://example.org/a?x=1&sm=1g0"
    # Markup inside titles (CDATA, entities) survives the substitution.
    titles = [e.title for e in entries(template.render(1, 0))]
    assert titles[1].count("&") == 1 and len(titles[0]) == len("Strike on depot")


def test_a_new_generation_publishes_exactly_new_items() -> None:
    template = Template.cut("doc", _DOC)
    before, after = identities(template.render(7, 0)), identities(template.render(7, 1))
    assert len(after - before) == NEW_ITEMS
    assert len(before & after) == 4 - NEW_ITEMS


def test_change_touches_one_feed_in_ten_each_cycle_a_different_one() -> None:
    feeds = FeedSet(generated_documents(3), 40)
    first, second = feeds.change(0.1, 0), feeds.change(0.1, 1)
    assert first == [0, 10, 20, 30] and second == [1, 11, 21, 31]
    assert feeds.change(0, 2) == []


def test_generated_documents_are_well_formed_feeds() -> None:
    feeds = FeedSet(generated_documents(4), 8)
    for f in range(8):
        assert len(entries(feeds.body(f))) >= 10


@pytest.mark.skipif(not CORPUS.is_dir(), reason="the shared corpus is absent")
def test_corpus_feeds_stay_well_formed_with_every_item() -> None:
    for name, doc in corpus_documents():
        body = Template.cut(name, doc).render(3, 1)
        assert len(entries(body)) == len(entries(doc)), name


def test_host_addresses_walk_loopback_skipping_broadcast_like_octets() -> None:
    assert host_addresses(2) == ["127.0.0.2", "127.0.0.3"]
    many = host_addresses(300)
    assert "127.0.0.255" not in many and "127.0.1.0" not in many and "127.0.1.1" in many
    with pytest.raises(ValueError):
        host_addresses(0)


@pytest.fixture(scope="module")
def farm() -> Iterator[FeedFarm]:
    with FeedFarm(feeds=4, hosts=1, latency=0.0, generated=True, first=1) as running:
        yield running


def test_farm_answers_304_to_either_validator_until_the_feed_changes(farm: FeedFarm) -> None:
    with httpx.Client(trust_env=False) as client:
        first = client.get(farm.url(0))
        assert first.status_code == 200 and len(first.content) > 1000
        etag, modified = first.headers["etag"], first.headers["last-modified"]
        assert client.get(farm.url(0), headers={"If-None-Match": etag}).status_code == 304
        assert client.get(farm.url(0), headers={"If-Modified-Since": modified}).status_code == 304
        assert client.get(farm.url(0), headers={"If-None-Match": '"nope"'}).status_code == 200
        assert farm.change(0.5) == 2  # feeds 0 and 2
        changed = client.get(farm.url(0), headers={"If-None-Match": etag})
        assert changed.status_code == 200 and changed.headers["etag"] != etag
        assert len(identities(changed.content) - identities(first.content)) == NEW_ITEMS


def test_farm_without_validators_sends_every_body_again(farm: FeedFarm) -> None:
    with httpx.Client(trust_env=False) as client:
        etag = client.get(farm.url(1)).headers["etag"]
        farm.validators(False)
        try:
            again = client.get(farm.url(1), headers={"If-None-Match": etag})
        finally:
            farm.validators(True)
        assert again.status_code == 200 and "etag" not in again.headers


def test_farm_refuses_unknown_paths_and_counts_what_it_served(farm: FeedFarm) -> None:
    farm.reset_stats()
    with httpx.Client(trust_env=False) as client:
        assert client.get(farm.url(1).replace("/1.xml", "/99.xml")).status_code == 404
        assert client.get(farm.url(1).replace("/feeds/1.xml", "/etc/passwd")).status_code == 404
        client.get(farm.url(3))
    stats = farm.stats()
    assert stats["404"] == 2 and stats["200"] == 1 and stats["bytes"] > 1000
    assert farm.cpu_seconds() >= 0


def test_ideal_wall_is_bounded_by_slots_and_by_politeness_spacing() -> None:
    args = parse_args(["--feeds", "2000", "--hosts", "40"])
    assert ideal_seconds(args, 0.0) == pytest.approx(2.5)  # 50 feeds a host, 2 at a time
    assert ideal_seconds(args, 1.0) == pytest.approx(49.1)  # 49 gaps of 1 s, then one answer
    wide = parse_args(["--hosts", "2000", "--concurrency", "200"])
    assert ideal_seconds(wide, 1.0) == pytest.approx(1.0)


def test_settings_cross_transports_with_spacings() -> None:
    args = parse_args(["--transport", "httpx,aiohttp", "--min-spacing", "default,0"])
    assert settings(args) == [
        Setting("httpx", None),
        Setting("httpx", 0.0),
        Setting("aiohttp", None),
        Setting("aiohttp", 0.0),
    ]
    assert str(Setting("aiohttp", 0.0)) == "aiohttp, spacing 0"


def test_soak_helpers_compare_thirds_and_fold_alike_log_lines() -> None:
    assert third_means([1.0, 1.0, 2.0, 2.0, 3.0, 3.0]) == (1.0, 3.0)
    line = "16:19:41 WARNING monitor.pipeline: source f0123: timeout after 20 s"
    assert _shape(line) == "WARNING monitor.pipeline: source fNNNN: timeout after N s"
    assert json.dumps(_shape("")) == '""'


@pytest.mark.parametrize("answers", ["304", "200"])
def test_fetch_cpu_program_polls_every_feed_with_the_answer_asked(answers: str) -> None:
    # What valgrind runs; `inner` exits with a message if the farm answered otherwise.
    inner(fetch_cpu_args(["--inner", "--feeds", "4", "--answers", answers, "--cycles", "2"]))
