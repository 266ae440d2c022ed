"""Database helpers for tests: read a table back, drop it, list its columns.

Identifiers are always quoted by SQLAlchemy (reflected ``Table`` objects), never formatted into SQL.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import sqlalchemy as sa


@contextmanager
def _engine(url: str) -> Iterator[sa.Engine]:
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        yield engine
    finally:
        engine.dispose()


def _reflect(conn: sa.Connection, table: str) -> sa.Table:
    return sa.Table(table, sa.MetaData(), autoload_with=conn)


def fetch_rows(url: str, table: str, order_by: str | Sequence[str] | None = None) -> list[dict[str, Any]]:
    """All rows of ``table`` as dicts, ordered by the given column name(s) when given."""
    columns = [order_by] if isinstance(order_by, str) else list(order_by or [])
    with _engine(url) as engine, engine.connect() as conn:
        tbl = _reflect(conn, table)
        query = sa.select(tbl).order_by(*(tbl.c[name] for name in columns))
        return [dict(row) for row in conn.execute(query).mappings()]


def table_exists(url: str, table: str) -> bool:
    with _engine(url) as engine:
        return sa.inspect(engine).has_table(table)


def drop_table(url: str, table: str) -> None:
    """Drop ``table`` if it exists."""
    with _engine(url) as engine, engine.begin() as conn:
        if sa.inspect(conn).has_table(table):
            _reflect(conn, table).drop(conn)


def table_columns(url: str, table: str) -> dict[str, dict[str, Any]]:
    """Column name -> reflected column info (``type``, ``nullable``, ``default``, ...), in table order."""
    with _engine(url) as engine:
        return {col["name"]: dict(col) for col in sa.inspect(engine).get_columns(table)}


def primary_key(url: str, table: str) -> list[str]:
    """The primary key column names of ``table`` (empty when it has none)."""
    with _engine(url) as engine:
        return list(sa.inspect(engine).get_pk_constraint(table).get("constrained_columns") or [])


def create_poison_table(url: str, name: str) -> None:
    """A table that rejects bad rows: id BIGINT key, qty INTEGER CHECK (qty >= 0) (constraint
    `<name>_qty_nonneg`), note VARCHAR(10) NOT NULL."""
    metadata = sa.MetaData()
    sa.Table(
        name,
        metadata,
        sa.Column("id", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("qty", sa.Integer),
        sa.Column("note", sa.String(10), nullable=False),
        sa.CheckConstraint("qty >= 0", name=f"{name}_qty_nonneg"),
    )
    with _engine(url) as engine:
        metadata.create_all(engine)
