"""The PostgreSQL bulk upsert used by the limit line (b) and the plain consumer (c): binary COPY
into a temporary staging table (ON COMMIT DELETE ROWS, created once per connection), then one
`INSERT … SELECT DISTINCT ON (id) … ORDER BY id, _n DESC ON CONFLICT (id) DO UPDATE`, in one
transaction per batch. `_n` is the row's position in the batch, so the last version of an id wins.

Imports only psycopg (no `sink`): the plain consumer runs it as a hand-written program would.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import psycopg
from psycopg import sql

# the dataset's columns (benchmarks/avro_data.py COLUMNS) and their PostgreSQL types
COLUMNS = ("id", "name", "city", "seq", "price", "score", "active", "created_at", "updated_at", "note")
TYPES = ("int8", "text", "text", "int4", "float8", "float8", "bool", "timestamptz", "timestamptz", "text")
DDL_TYPES = (
    "bigint",
    "text",
    "text",
    "integer",
    "double precision",
    "double precision",
    "boolean",
    "timestamptz",
    "timestamptz",
    "text",
)


def create_table(conninfo: str, table: str) -> None:
    """DROP and CREATE the target table (id is the primary key)."""
    columns = sql.SQL(", ").join(
        sql.SQL("{} {}").format(sql.Identifier(c), sql.SQL(t)) for c, t in zip(COLUMNS, DDL_TYPES, strict=True)
    )
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(table)))
        conn.execute(sql.SQL("CREATE TABLE {} ({}, PRIMARY KEY (id))").format(sql.Identifier(table), columns))


class Merger:
    """Upserts batches of COLUMNS-ordered tuples into `table` over one connection."""

    def __init__(self, conn: psycopg.Connection[Any], table: str) -> None:
        self.conn = conn
        stage = sql.Identifier(f"stage_{table}")
        cols = sql.SQL(", ").join(map(sql.Identifier, COLUMNS))
        with conn.transaction():
            conn.execute(
                sql.SQL("CREATE TEMP TABLE IF NOT EXISTS {} (_n int4, LIKE {}) ON COMMIT DELETE ROWS").format(
                    stage, sql.Identifier(table)
                )
            )
        self.copy = sql.SQL("COPY {} (_n, {}) FROM STDIN (FORMAT BINARY)").format(stage, cols)
        updates = sql.SQL(", ").join(
            sql.SQL("{0} = EXCLUDED.{0}").format(sql.Identifier(c)) for c in COLUMNS if c != "id"
        )
        self.merge = sql.SQL(
            "INSERT INTO {table} ({cols}) SELECT DISTINCT ON (id) {cols} FROM {stage} ORDER BY id, _n DESC "
            "ON CONFLICT (id) DO UPDATE SET {updates}"
        ).format(table=sql.Identifier(table), cols=cols, stage=stage, updates=updates)

    def write(self, rows: Sequence[tuple[Any, ...]]) -> None:
        """One transaction: COPY the rows into the stage, merge them into the table, commit."""
        with self.conn.transaction(), self.conn.cursor() as cursor:
            with cursor.copy(self.copy) as copy:
                copy.set_types(("int4", *TYPES))
                write_row = copy.write_row
                for n, values in enumerate(rows):
                    write_row((n, *values))
            cursor.execute(self.merge)
