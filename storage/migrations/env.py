"""Alembic environment. Migrations run only through `storage.Store.open`, which hands over a
connection that already holds the migration lock (BEGIN IMMEDIATE on SQLite, an advisory lock on
PostgreSQL)."""

from __future__ import annotations

from alembic import context
from sqlalchemy.engine import Connection

connection = context.config.attributes.get("connection")
if not isinstance(connection, Connection):
    raise RuntimeError("storage migrations run online only, through storage.Store.open()")

context.configure(connection=connection, target_metadata=None, transactional_ddl=True)
with context.begin_transaction():
    context.run_migrations()
