"""A private PostgreSQL database for a test run: created on entry, dropped (connections and all) on
exit, so runs never see each other's tables. Used when MONITOR_TEST_DATABASE_URL names a server."""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Iterator

import sqlalchemy as sa

PG_ENV = "MONITOR_TEST_DATABASE_URL"


@contextlib.contextmanager
def private_database(prefix: str) -> Iterator[str]:
    base = sa.make_url(os.environ[PG_ENV])
    name = f"{prefix}_{os.getpid()}_{secrets.token_hex(4)}"
    admin = sa.create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        yield base.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
