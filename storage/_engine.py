"""Engine setup, migrations and error translation: the one place that knows about dialects.

SQLite: WAL, foreign keys, a 5 s busy timeout, synchronous=NORMAL, and every write transaction
opened with BEGIN IMMEDIATE, so two writers queue on the busy timeout instead of failing when a read
lock cannot be upgraded. PostgreSQL: migrations run under an advisory lock so several processes may
start at once.
"""

from __future__ import annotations

import contextlib
import re
import sqlite3
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy import event, exc
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.engine.url import URL

from monitor.errors import StorageError

_MIGRATIONS = Path(__file__).with_name("migrations")
# Any constant shared by every process of this application (the ASCII of "srcmon").
_MIGRATION_LOCK_KEY = 0x7372636D6F6E
_STORY_LOCK_KEY = _MIGRATION_LOCK_KEY + 1
T = TypeVar("T")


def chunks(values: Sequence[T], size: int = 500) -> Iterator[Sequence[T]]:
    """Slices small enough for any driver's bound-parameter limit."""
    for start in range(0, len(values), size):
        yield values[start : start + size]


def safe_url(url: URL) -> str:
    return url.render_as_string(hide_password=True)


def sqlite_path(url: URL) -> Path | None:
    """The database file of a SQLite URL; None for in-memory databases and other dialects."""
    if url.get_backend_name() != "sqlite" or url.database in (None, "", ":memory:"):
        return None
    return Path(url.database or "")


@contextlib.contextmanager
def translated(action: str) -> Iterator[None]:
    """Turn the library's errors into StorageError, in one place. URLs never reach messages."""
    try:
        yield
    except exc.SQLAlchemyError as error:
        orig = getattr(error, "orig", None)
        reason = str(orig) if orig is not None else str(error).splitlines()[0]
        raise StorageError(f"{action}: {reason}") from error


class Database:
    """An engine plus the dialect-specific bits the queries need."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.dialect = engine.dialect.name
        self.url = engine.url
        # SQLite admits one writer at a time. This process's writers (the daemon's worker threads)
        # take turns here, first come first served, instead of polling the file lock under
        # busy_timeout, which lets a long ingest starve the others past the timeout ("database is
        # locked", measured by benchmarks/soak.py). busy_timeout still covers other processes.
        self._writer: contextlib.AbstractContextManager[Any] = (
            threading.RLock() if self.dialect == "sqlite" else contextlib.nullcontext()
        )
        self._statements: dict[str, Any] = {}

    @classmethod
    def open(cls, url_text: str) -> Database:
        try:
            url = make_url(url_text)
        except exc.ArgumentError as error:
            raise StorageError(f"invalid database URL: {error}") from error
        backend = url.get_backend_name()
        if backend not in ("sqlite", "postgresql"):
            raise StorageError(
                f"unsupported database {backend!r}: use sqlite or postgresql+psycopg"
            )
        path = sqlite_path(url)
        if path is not None:
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as error:
                raise StorageError(f"cannot create the folder of {path}: {error}") from error
        with translated(f"cannot open database {safe_url(url)}"):
            engine = _create_engine(url)
            db = cls(engine)
            try:
                db.migrate()
            except BaseException:
                engine.dispose()
                raise
        return db

    def migrate(self) -> None:
        with self.engine.connect() as conn, conn.begin():
            if self.dialect == "postgresql":
                conn.execute(
                    sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK_KEY}
                )
            head = head_revision()
            if head is not None and current_revisions(conn) == [head]:
                return  # up to date: Alembic (8 MB resident once imported) is not needed
            self._upgrade(conn)

    def _upgrade(self, conn: Connection) -> None:
        from alembic import command
        from alembic.config import Config
        from alembic.util import CommandError

        config = Config()
        config.set_main_option("script_location", str(_MIGRATIONS))
        config.set_main_option("path_separator", "os")
        config.attributes["connection"] = conn
        try:
            command.upgrade(config, "head")
        except CommandError as error:
            raise StorageError(
                f"database {safe_url(self.url)} has a schema this version does not know "
                f"(written by a newer source-monitor?): {error}"
            ) from error

    @contextlib.contextmanager
    def write(self, action: str) -> Iterator[Connection]:
        """One read-write transaction; committed when the block ends without an exception."""
        with self._writer, translated(action), self.engine.connect() as conn, conn.begin():
            yield conn

    @contextlib.contextmanager
    def read(self, action: str) -> Iterator[Connection]:
        with translated(action), self.engine.connect() as conn:
            conn.execution_options(sqlite_begin="DEFERRED")
            with conn.begin():
                yield conn

    def insert_ignore(
        self, table: sa.Table, conflict: Sequence[str], returning: Sequence[sa.Column[Any]] = ()
    ) -> Any:
        """INSERT ... ON CONFLICT (conflict) DO NOTHING [RETURNING ...] for this dialect: the
        portable upsert. Built once per Database and executed with parameters, because building
        and compiling a statement per row cost more than the database's own work (profiled)."""
        name = f"{table.name}:{','.join(conflict)}:{','.join(c.name for c in returning)}"
        stmt = self._statements.get(name)
        if stmt is None:
            insert = postgresql.insert if self.dialect == "postgresql" else sqlite.insert
            stmt = insert(table).on_conflict_do_nothing(index_elements=list(conflict))
            if returning:
                stmt = stmt.returning(*returning)
            self._statements[name] = stmt
        return stmt

    def lock_rows(self, select: sa.Select[Any]) -> sa.Select[Any]:
        """FOR UPDATE SKIP LOCKED where the database has it; SQLite's BEGIN IMMEDIATE already
        serialises writers."""
        if self.dialect == "postgresql":
            return select.with_for_update(skip_locked=True)
        return select

    def lock_stories(self, conn: Connection) -> None:
        """Serialise story grouping until the transaction ends. Two instances storing two reports of
        one story at the same moment would otherwise each miss the other's uncommitted story and
        alert twice. SQLite needs nothing: BEGIN IMMEDIATE already admits one writer at a time."""
        if self.dialect == "postgresql":
            conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _STORY_LOCK_KEY})

    def close(self) -> None:
        self.engine.dispose()


_REVISION_LINE = re.compile(r"^(down_revision|revision)\b[^=\n]*=\s*(.+?)\s*$", re.MULTILINE)


def head_revision() -> str | None:
    """The newest migration's id, read from the files without importing Alembic; None when the
    files are not the plain single chain this reading understands (Alembic then decides)."""
    revisions: set[str] = set()
    parents: set[str] = set()
    for path in (_MIGRATIONS / "versions").glob("*.py"):
        if path.name == "__init__.py":
            continue
        fields = {m[1]: m[2] for m in _REVISION_LINE.finditer(path.read_text("utf-8"))}
        revision, parent = fields.get("revision", ""), fields.get("down_revision", "")
        if not re.fullmatch(r"\"\w+\"", revision) or not re.fullmatch(r"None|\"\w+\"", parent):
            return None
        revisions.add(revision.strip('"'))
        if parent != "None":
            parents.add(parent.strip('"'))
    heads = revisions - parents
    return heads.pop() if len(heads) == 1 else None


def current_revisions(conn: Connection) -> list[str]:
    """What `alembic_version` says the database is at ([] for a new database)."""
    if not sa.inspect(conn).has_table("alembic_version"):
        return []
    return list(conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalars())


def _create_engine(url: URL) -> Engine:
    if url.get_backend_name() != "sqlite":
        return sa.create_engine(url, pool_pre_ping=True)
    connect_args: Mapping[str, Any] = {"check_same_thread": False, "timeout": 5.0}
    if sqlite_path(url) is None:
        engine = sa.create_engine(url, connect_args=connect_args, poolclass=sa.pool.StaticPool)
    else:
        engine = sa.create_engine(url, connect_args=connect_args)
    event.listen(engine, "connect", _sqlite_connect)
    event.listen(engine, "begin", _sqlite_begin)
    return engine


def _sqlite_connect(dbapi_connection: Any, _record: Any) -> None:
    # Hand transaction control to us (see _sqlite_begin): pysqlite's own BEGIN is deferred and it
    # would not run DDL inside a transaction.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA busy_timeout=5000")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        _enable_wal(cursor)
    finally:
        cursor.close()


def _enable_wal(cursor: Any) -> None:
    # WAL is a property of the file, so this only ever changes a new database. Switching needs an
    # exclusive lock that SQLite does not wait for on its busy timeout: when several processes open
    # one new file at once, the losers retry for as long as the busy timeout would have waited.
    deadline = time.monotonic() + 5.0
    while True:
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as error:
            if "locked" not in str(error) or time.monotonic() > deadline:
                raise
            time.sleep(0.01)


def _sqlite_begin(conn: Connection) -> None:
    mode = conn.get_execution_options().get("sqlite_begin", "IMMEDIATE")
    conn.exec_driver_sql(f"BEGIN {mode}")
