"""Recording many unchanged polls in one transaction: the same rows as one call per poll, the
lease still checked per source, all or nothing."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from monitor.errors import StorageError
from storage import SourceView, Store, UnchangedPoll
from tests.storage.storefakes import LEASE, T0, spec

MIN = timedelta(minutes=1)
KINDS = ("new", "failing", "validators", "fresh")


def claim_all(store: Store, now: datetime, instance: str = "i1") -> list[str]:
    claimed = store.claim_due_sources(instance, now, limit=5000, lease=LEASE, include_not_due=True)
    return sorted(s.id for s in claimed)


def raw_rows(db_url: str) -> dict[str, dict[str, Any]]:
    engine = sa.create_engine(db_url)
    try:
        with engine.connect() as conn:
            return {
                row.id: dict(row._mapping) for row in conn.execute(sa.text("SELECT * FROM sources"))
            }
    finally:
        engine.dispose()


def views(store: Store) -> dict[str, SourceView]:
    return {v.id: v for v in store.list_sources()}


def test_a_batch_writes_the_rows_one_call_per_poll_writes(store: Store, db_url: str) -> None:
    """Two groups with the same history; the last poll goes through record_not_modified for one
    and record_not_modified_many for the other: every column but the names ends up the same."""
    ids = {group: [f"{group}-{kind}" for kind in KINDS] for group in ("one", "many")}
    store.sync_sources([spec(sid) for group in ids.values() for sid in group], T0)
    claim_all(store, T0)
    for group in ids.values():
        _, failing, validators, fresh = group
        for sid in (failing, validators, fresh):
            assert store.record_not_modified(
                sid, "i1", T0, next_poll_at=T0 + MIN, etag='"v1"', last_modified="Sun, 01 Mar"
            )
    for failures in (1, 2):
        claim_all(store, T0 + failures * MIN)
        for group in ids.values():
            assert store.record_failure(
                group[1], "i1", T0 + failures * MIN, kind="http_500", detail="boom",
                next_poll_at=T0 + 10 * MIN,
            )  # fmt: skip
    now = T0 + 3 * MIN
    claim_all(store, now)  # the sources not polled since T0 are still held
    answers: dict[str, tuple[str | None, str | None]] = {
        "new": ('"n1"', None),
        "failing": (None, None),
        "validators": (None, None),  # a 304 that repeats no validator keeps the stored ones
        "fresh": ('"v2"', "Mon, 02 Mar"),
    }
    for kind, (etag, modified) in answers.items():
        assert store.record_not_modified(
            f"one-{kind}", "i1", now, next_poll_at=now + 15 * MIN, etag=etag, last_modified=modified
        )
    polls = [
        UnchangedPoll(f"many-{kind}", now, now + 15 * MIN, etag, modified)
        for kind, (etag, modified) in answers.items()
    ]
    assert store.record_not_modified_many("i1", polls) == set(ids["many"])

    rows = raw_rows(db_url)
    for kind in KINDS:
        one, many = rows[f"one-{kind}"], rows[f"many-{kind}"]
        for column in ("id", "url", "name"):
            del one[column], many[column]
        assert one == many, kind
    after = views(store)
    assert after["many-failing"].consecutive_failures == 0 and after["many-failing"].error is None
    state = {s.id: s for s in store.claim_due_sources("i1", now + LEASE, limit=10, lease=LEASE,
                                                       include_not_due=True)}  # fmt: skip
    assert (state["many-validators"].etag, state["many-validators"].last_modified) == (
        '"v1"',
        "Sun, 01 Mar",
    )
    assert (state["many-fresh"].etag, state["many-fresh"].last_modified) == ('"v2"', "Mon, 02 Mar")
    assert (state["many-new"].etag, state["many-new"].last_modified) == ('"n1"', None)


def test_sources_whose_lease_was_lost_are_left_alone(store: Store) -> None:
    store.sync_sources([spec(sid) for sid in ("a", "b", "c", "gone")], T0)
    assert claim_all(store, T0, instance="slow") == ["a", "b", "c", "gone"]
    store.sync_sources([spec(sid) for sid in ("a", "b", "c")], T0)  # "gone" is disabled
    late = T0 + LEASE  # "slow" is still fetching; its leases ran out and "fast" takes "a" over
    taken = store.claim_due_sources("fast", late, limit=1, lease=LEASE, include_not_due=True)
    assert [s.id for s in taken] == ["a"]
    store.claim_due_sources("slow", late, limit=2, lease=LEASE, include_not_due=True)
    before = views(store)

    polls = [UnchangedPoll(sid, late, late + 15 * MIN) for sid in ("a", "b", "c", "gone", "nope")]
    assert store.record_not_modified_many("slow", polls) == {"b", "c"}

    after = views(store)
    assert after["a"] == before["a"] and after["gone"] == before["gone"]
    for sid in ("b", "c"):
        assert (after[sid].status, after[sid].last_poll, after[sid].next_poll) == (
            "ok",
            late,
            late + 15 * MIN,
        )
        assert after[sid].last_instance == "slow"
    # the written sources' leases were released; "a" is still fast's
    assert claim_all(store, late, instance="other") == ["b", "c"]


def test_an_empty_batch_writes_nothing(store: Store) -> None:
    store.sync_sources([spec("a")], T0)
    before = store.list_sources()
    assert store.record_not_modified_many("i1", []) == set()
    assert store.list_sources() == before


def test_a_batch_larger_than_a_bound_parameter_chunk(store: Store) -> None:
    ids = [f"s{n:04d}" for n in range(1100)]
    store.sync_sources([spec(sid) for sid in ids], T0)
    assert claim_all(store, T0) == ids
    polls = [UnchangedPoll(sid, T0 + MIN, T0 + 16 * MIN, f'"{sid}"') for sid in ids]
    assert store.record_not_modified_many("i1", polls) == set(ids)
    assert {(v.status, v.last_success, v.next_poll) for v in store.list_sources()} == {
        ("ok", T0 + MIN, T0 + 16 * MIN)
    }
    state = store.claim_due_sources("i1", T0 + 16 * MIN, limit=5000, lease=LEASE)
    assert all(s.etag == f'"{s.id}"' for s in state) and len(state) == 1100


def test_a_batch_is_written_whole_or_not_at_all(store: Store) -> None:
    store.sync_sources([spec("a"), spec("b")], T0)
    claim_all(store, T0)
    before = store.list_sources()
    naive = datetime(2026, 3, 1, 12, 5)
    polls = [UnchangedPoll("a", T0 + MIN, T0 + 2 * MIN), UnchangedPoll("b", naive, naive)]
    with pytest.raises(StorageError, match="cannot record the polls"):
        store.record_not_modified_many("i1", polls)
    assert store.list_sources() == before
    assert store.record_not_modified_many("i1", polls[:1]) == {"a"}
