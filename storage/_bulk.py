"""INSERTs of many rows straight through the driver's executemany, for the rows every poll writes
by the dozen (items, stories, story keys).

SQLAlchemy prepares each parameter set in Python (a dict per row, every value through its type's
bind processor): for a new item's rows that cost more than SQLite's own work (profiled). Here a
statement is compiled once per dialect; per row only the columns whose type has a processor (JSON,
a date that varies) pay for it, and values common to every row are prepared once.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Dialect


@dataclass(frozen=True)
class _Prepared:
    sql: str  # in the driver's parameter style
    positional: bool
    order: tuple[int, ...] | None  # positional: where each parameter is in `columns`; None: as is
    processors: tuple[Callable[[Any], Any] | None, ...]  # per column


_PREPARED: dict[tuple[str, str, str, sa.Insert, tuple[str, ...]], _Prepared] = {}


def _prepare(dialect: Dialect, stmt: sa.Insert, columns: tuple[str, ...]) -> _Prepared:
    # Per kind of dialect, not per engine: a process that opens many stores (tests) keeps one each.
    key = (dialect.name, dialect.driver, dialect.paramstyle, stmt, columns)
    prepared = _PREPARED.get(key)
    if prepared is None:
        prepared = _PREPARED[key] = _compile(dialect, stmt, columns)
    return prepared


def _compile(dialect: Dialect, stmt: sa.Insert, columns: tuple[str, ...]) -> _Prepared:
    compiled = stmt.compile(dialect=dialect)
    order = None
    if compiled.positional:
        order = tuple(columns.index(name) for name in compiled.positiontup or ())
        order = None if order == tuple(range(len(columns))) else order
    table = stmt.table
    assert isinstance(table, sa.Table)
    # The dialect's own types: SQLite's DATETIME writes the text SQLAlchemy compares with, where
    # the driver's default adapter would drop zero microseconds (and so break text comparison).
    processors = tuple(
        table.c[name].type.dialect_impl(dialect).bind_processor(dialect) for name in columns
    )
    return _Prepared(compiled.string, compiled.positional, order, processors)


def insert_statement(table: sa.Table, columns: Sequence[str]) -> sa.Insert:
    """INSERT INTO table (columns...) VALUES (one parameter per column, in that order)."""
    return table.insert().values({name: sa.bindparam(name) for name in columns})


def insert_many(
    conn: Connection,
    stmt: sa.Insert,
    columns: tuple[str, ...],
    rows: Sequence[Sequence[Any]],
    constants: Mapping[str, Any] | None = None,
) -> int:
    """Execute `stmt` (made by `insert_statement`, or a variant of it such as an upsert) once per
    row. Each row holds the values of the first len(row) `columns`; the rest come from `constants`,
    the same for every row. Returns how many rows the database reports written."""
    if not rows:
        return 0
    prepared = _prepare(conn.dialect, stmt, columns)
    width = len(rows[0])
    given = constants or {}
    fixed: list[Any] = []
    for name, process in zip(columns[width:], prepared.processors[width:], strict=True):
        fixed.append(given[name] if process is None else process(given[name]))
    processors = [(i, p) for i, p in enumerate(prepared.processors[:width]) if p is not None]
    params: list[Any]
    if not processors:
        params = [(*row, *fixed) for row in rows]
    else:
        params = []
        for row in rows:
            values = list(row)
            for i, process in processors:
                values[i] = process(values[i])
            params.append((*values, *fixed))
    if not prepared.positional:
        params = [dict(zip(columns, values, strict=True)) for values in params]
    elif prepared.order is not None:
        params = [tuple(values[i] for i in prepared.order) for values in params]
    return int(conn.exec_driver_sql(prepared.sql, params).rowcount)
