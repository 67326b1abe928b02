"""Opening a database: migrations, pragmas, time zones, and clear errors."""

from __future__ import annotations

import sqlite3
import threading
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

import storage
from monitor.errors import StorageError
from storage import Store
from storage._schema import metadata
from tests.storage.storefakes import T0, spec

TABLES = {
    "sources",
    "items",
    "stories",
    "story_keys",
    "alerts",
    "deliveries",
    "instances",
    "health_episodes",
}


def test_public_names_are_exactly_the_api() -> None:
    public = {name for name in dir(storage) if not name.startswith("_")}
    assert public == set(storage.__all__)
    assert set(storage.__all__) == {
        "AlertView",
        "DeliveryJob",
        "DeliveryView",
        "HealthChange",
        "HealthEvent",
        "HealthText",
        "IngestResult",
        "InstanceView",
        "Redirect",
        "SourceSpec",
        "SourceState",
        "SourceView",
        "Store",
        "StoryMatcher",
        "UnchangedPoll",
    }


def test_migrations_create_the_schema_the_models_describe(store: Store, db_url: str) -> None:
    engine = sa.create_engine(db_url)
    try:
        with engine.connect() as conn:
            assert set(sa.inspect(conn).get_table_names()) >= TABLES
            context = MigrationContext.configure(conn)
            assert context.get_current_revision() == "0005"
            assert compare_metadata(context, metadata) == []
    finally:
        engine.dispose()


def test_reopening_is_idempotent_and_keeps_data(db_url: str) -> None:
    first = Store.open(db_url)
    first.sync_sources([spec("a")], T0)
    first.close()
    for _ in range(2):
        again = Store.open(db_url)
        assert [s.id for s in again.list_sources()] == ["a"]
        again.close()


def test_concurrent_opens_of_a_fresh_database_all_succeed(db_url: str) -> None:
    errors: list[BaseException] = []
    barrier = threading.Barrier(3)

    def open_one() -> None:
        try:
            barrier.wait()
            Store.open(db_url).close()
        except BaseException as error:  # reported below, in the test's thread
            errors.append(error)

    threads = [threading.Thread(target=open_one) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []


def test_sqlite_pragmas_and_parent_folder(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "er" / "monitor.db"
    opened = Store.open(f"sqlite:///{path}")
    try:
        assert path.exists()
        with opened._db.engine.connect() as conn:
            pragma = {
                name: conn.exec_driver_sql(f"PRAGMA {name}").scalar()
                for name in ("journal_mode", "foreign_keys", "busy_timeout", "synchronous")
            }
        assert pragma == {
            "journal_mode": "wal",
            "foreign_keys": 1,
            "busy_timeout": 5000,
            "synchronous": 1,
        }
    finally:
        opened.close()


def test_datetimes_come_back_aware_utc(store: Store) -> None:
    plus_two = timezone(timedelta(hours=2))
    store.sync_sources([spec("a")], datetime(2026, 3, 1, 14, 0, tzinfo=plus_two))
    (view,) = store.list_sources()
    assert view.next_poll == T0
    assert view.next_poll is not None and view.next_poll.tzinfo == UTC


def test_naive_datetime_is_refused(store: Store) -> None:
    with pytest.raises(StorageError, match="naive datetime"):
        store.sync_sources([spec("a")], datetime(2026, 3, 1, 12, 0))


def test_unknown_schema_revision_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "monitor.db"
    Store.open(f"sqlite:///{path}").close()
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE alembic_version SET version_num = '9999'")
    conn.close()
    with pytest.raises(StorageError, match="newer source-monitor"):
        Store.open(f"sqlite:///{path}")


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("not a url", "invalid database URL"),
        ("mysql://u@127.0.0.1/db", "unsupported database 'mysql'"),
        ("postgresql+nosuchdriver://u@127.0.0.1/db", "cannot open database"),
    ],
)
def test_bad_urls_raise_storage_error(url: str, message: str) -> None:
    with pytest.raises(StorageError, match=message):
        Store.open(url)


def test_unreachable_postgresql_names_the_url_without_password() -> None:
    # Port 9 (discard) on loopback: nothing listens there, the connection is refused at once.
    url = "postgresql+psycopg://monitor:s3cret-pass@127.0.0.1:9/monitor?connect_timeout=2"
    with pytest.raises(StorageError) as caught:
        Store.open(url)
    assert "127.0.0.1:9" in str(caught.value)
    assert "s3cret-pass" not in str(caught.value)


def test_unwritable_folder_is_a_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(StorageError, match="cannot create the folder"):
        Store.open(f"sqlite:///{blocker / 'sub' / 'monitor.db'}")


def test_a_file_that_is_not_a_database_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "monitor.db"
    path.write_bytes(b"this is not SQLite " * 100)
    with pytest.raises(StorageError, match="file is not a database"):
        Store.open(f"sqlite:///{path}")
