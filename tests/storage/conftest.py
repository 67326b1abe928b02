"""Storage fixtures: every test runs on a fresh SQLite file, and on PostgreSQL too when
MONITOR_TEST_DATABASE_URL names one (a private database per test run, a clean schema per test)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from storage import Store
from tests.pg import PG_ENV, private_database

BACKENDS = ["sqlite", *(["postgresql"] if os.environ.get(PG_ENV) else [])]


@pytest.fixture(scope="session")
def pg_database() -> Iterator[str]:
    """A database of our own, so runs never see each other's tables; dropped at the end."""
    with private_database("monitor_test") as url:
        yield url


@pytest.fixture(params=BACKENDS)
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'data' / 'monitor.db'}"
    url: str = request.getfixturevalue("pg_database")
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text("DROP SCHEMA public CASCADE"))
        conn.execute(sa.text("CREATE SCHEMA public"))
    engine.dispose()
    return url


@pytest.fixture
def store(db_url: str) -> Iterator[Store]:
    opened = Store.open(db_url)
    try:
        yield opened
    finally:
        opened.close()
