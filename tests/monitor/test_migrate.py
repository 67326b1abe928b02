"""What the daemon leaves unimported (DESIGN §7): Alembic migrates in a child process, and an
up-to-date database is opened without it; prometheus_client waits for a `metrics:` setting."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory

from monitor._migrate import in_memory, migrate_in_child
from monitor.errors import StorageError
from storage import Store
from storage._engine import _MIGRATIONS, head_revision


def _run(code: str) -> str:
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    return done.stdout.strip()


def _revision(path: Path) -> list[str]:
    with sqlite3.connect(path) as conn:
        rows = conn.execute("SELECT version_num FROM alembic_version").fetchall()
    conn.close()
    return [r[0] for r in rows]


def test_head_revision_read_from_the_files_is_alembics() -> None:
    config = Config()
    config.set_main_option("script_location", str(_MIGRATIONS))
    config.set_main_option("path_separator", "os")
    assert head_revision() == ScriptDirectory.from_config(config).get_current_head()


def test_the_child_migrates_and_the_daemon_then_opens_without_alembic(tmp_path: Path) -> None:
    path = tmp_path / "monitor.db"
    url = f"sqlite:///{path}"
    loaded = _run(
        "import sys\n"
        "from monitor._migrate import migrate_in_child\n"
        "from storage import Store\n"
        f"migrate_in_child({url!r})\n"
        f"Store.open({url!r}).close()\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('alembic', 'mako')))\n"
    )
    assert loaded == "[]"
    assert _revision(path) == [head_revision()]


def test_an_outdated_database_is_still_migrated_in_process(tmp_path: Path) -> None:
    path = tmp_path / "monitor.db"
    Store.open(f"sqlite:///{path}").close()
    # The newest migration undone by its own downgrade: the database is one revision behind.
    config = Config()
    config.set_main_option("script_location", str(_MIGRATIONS))
    config.set_main_option("path_separator", "os")
    engine = sa.create_engine(f"sqlite:///{path}")
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.downgrade(config, "-1")
    engine.dispose()
    behind = _revision(path)
    assert behind and behind != [head_revision()]
    Store.open(f"sqlite:///{path}").close()
    assert _revision(path) == [head_revision()]


@pytest.mark.parametrize("revision", ["9999", "0004x"])
def test_the_childs_error_is_the_one_store_open_gives(tmp_path: Path, revision: str) -> None:
    path = tmp_path / "monitor.db"
    url = f"sqlite:///{path}"
    Store.open(url).close()
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE alembic_version SET version_num = ?", (revision,))
    conn.close()
    with pytest.raises(StorageError, match="newer source-monitor") as here:
        Store.open(url)
    with pytest.raises(StorageError) as child:
        migrate_in_child(url)
    assert str(child.value) == str(here.value)


@pytest.mark.parametrize("url", ["not a url", "mysql://u@127.0.0.1/db"])
def test_bad_urls_fail_the_same_way_in_the_child(url: str) -> None:
    with pytest.raises(StorageError) as here:
        Store.open(url)
    with pytest.raises(StorageError) as child:
        migrate_in_child(url)
    assert str(child.value) == str(here.value)


def test_a_child_that_cannot_finish_in_time_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(StorageError, match="took more than 0 s"):
        migrate_in_child(f"sqlite:///{tmp_path / 'monitor.db'}", timeout=0.001)


@pytest.mark.parametrize(
    ("url", "memory"),
    [
        ("sqlite://", True),
        ("sqlite:///:memory:", True),
        ("sqlite:///file:db?mode=memory&uri=true", True),
        ("sqlite:///monitor.db", False),
        ("sqlite:////var/lib/monitor/monitor.db", False),
        ("postgresql+psycopg://monitor@db/monitor", False),
    ],
)
def test_in_memory_databases_are_recognised(url: str, memory: bool) -> None:
    assert in_memory(url) is memory


def test_the_daemon_imports_neither_alembic_nor_prometheus_client() -> None:
    loaded = _run(
        "import sys\n"
        "import monitor.cli, monitor.daemon, storage\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & "
        "{'alembic', 'mako', 'prometheus_client'}))\n"
    )
    assert loaded == "[]"
