"""SQLite: dynamic typing, so the sink declares types that keep values exact and read back as the
same kind. Integers are 64-bit and floats 8-byte whatever the declared name; strings are TEXT;
decimals are DECIMAL_TEXT and JSON is JSON_TEXT (TEXT affinity: no rounding through a double);
instants are TIMESTAMP, stored as UTC and read back aware. Lengths, precisions and integer widths
are not enforced by SQLite, so widening them needs no DDL.

A true upsert (INSERT ... ON CONFLICT DO UPDATE), never INSERT OR REPLACE, which deletes the old row
(firing delete triggers and dropping columns the record does not carry). SQLite cannot drop NOT
NULL or change a type in place: such an evolution rebuilds the table (create, copy, drop, rename).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import sqlite
from sqlalchemy.sql.expression import Executable

from ..identifiers import IdentifierRules
from ..model import Kind, TableSpec
from ..schema import Evolution
from . import ddl
from .base import Dialect, Statement, on_conflict_upsert
from .type_registry import Binding, Reads, TypeEntry, TypeRegistry, decimal_digits, plain, uuid_text
from .types import DecimalText, JsonText, UtcDateTime, UuidText, refuse_nan, utc_naive

REBUILD_PREFIX = "_sink_rebuild_"


def _finite(value: Any) -> Any:
    return refuse_nan(value, "SQLite", infinity=False)  # SQLite would store NULL


def _document() -> JsonText:
    return JsonText(none_as_null=True)


# Every type of SQLite: the column each kind becomes, and the columns that read back as it. The
# integer and float kinds keep the portable names (SMALLINT .. BIGINT, REAL, DOUBLE), but SQLite
# stores every one of them as a 64-bit integer or an 8-byte float: they read back as int64, float64.
TYPES = TypeRegistry(
    "SQLite",
    TypeEntry(Kind.INT8, plain(sa.SmallInteger)),
    TypeEntry(Kind.INT16, plain(sa.SmallInteger)),
    TypeEntry(Kind.INT32, plain(sa.Integer)),
    TypeEntry(Kind.INT64, plain(sa.BigInteger), reads=(Reads(sa.Integer),)),
    TypeEntry(Kind.FLOAT32, plain(sa.REAL), bind=Binding(float, _finite)),
    TypeEntry(Kind.FLOAT64, plain(sa.Double), reads=(Reads(sa.Float),), bind=Binding(float, _finite)),
    TypeEntry(Kind.BOOLEAN, plain(sa.Boolean), reads=(Reads(sa.Boolean),)),
    TypeEntry(Kind.STRING, plain(sa.Text), reads=(Reads(sa.String),)),  # VARCHAR(n) is not enforced: no length
    TypeEntry(Kind.BYTES, plain(sa.BLOB), reads=(Reads(sa.LargeBinary),)),
    # Exact text (TEXT affinity), never NUMERIC, which rounds through a double.
    TypeEntry(Kind.DECIMAL, plain(DecimalText), reads=(Reads(DecimalText), Reads(sa.Numeric, keeps=decimal_digits))),
    TypeEntry(Kind.DATE, plain(sa.Date), reads=(Reads(sa.Date),)),
    TypeEntry(Kind.TIME, plain(sa.Time), reads=(Reads(sa.Time),)),
    # UTC text in a TIMESTAMP column, read back aware; DATETIME is a local date-time.
    TypeEntry(
        Kind.TIMESTAMP,
        plain(UtcDateTime),
        reads=(Reads(UtcDateTime), Reads(sa.TIMESTAMP)),
        bind=Binding(dt.datetime, utc_naive),
    ),
    TypeEntry(Kind.LOCAL_TIMESTAMP, plain(sa.DateTime), reads=(Reads(sa.DateTime),)),
    TypeEntry(Kind.UUID, plain(UuidText), reads=(Reads(UuidText), Reads(sa.Uuid), Reads(sa.CHAR, when=uuid_text))),
    TypeEntry(Kind.JSON, plain(_document), reads=(Reads(JsonText), Reads(sa.JSON))),  # the document byte for byte
    TypeEntry(Kind.ARRAY, plain(_document)),  # a JSON array: reads back as json
    type_names={"DECIMAL_TEXT": DecimalText, "JSON_TEXT": JsonText},
)


class SqliteDialect(Dialect):
    name = "sqlite"
    # Names compare case-insensitively for ASCII letters only; no length limit to speak of.
    identifiers = IdentifierRules(
        "SQLite", column_folding="ascii", table_folding="ascii", reserved_table_prefix="sqlite_"
    )
    max_columns = 2000  # SQLITE_MAX_COLUMN's default
    types = TYPES

    def evolve_statements(self, existing: TableSpec, evolution: Evolution) -> list[Executable]:
        if not evolution.widen and not evolution.drop_not_null:
            target = self.table(evolution.apply(existing))
            return [ddl.AddColumn(target.c[c.name]) for c in evolution.add]
        return self._rebuild(existing, evolution.apply(existing))

    def _rebuild(self, existing: TableSpec, target: TableSpec) -> list[Executable]:
        """SQLite's documented way to change a column: a new table, the rows copied, a rename.
        Indexes and triggers other than the primary key are not carried over."""
        old = self.table(existing)
        new = self.table(dataclasses.replace(target, name=REBUILD_PREFIX + target.name))
        names = [c.name for c in existing.columns]
        copy = sa.insert(new).from_select(names, sa.select(*(old.c[n] for n in names)))
        return [sa.schema.CreateTable(new), copy, sa.schema.DropTable(old), ddl.RenameTable(new, target.name)]

    def upsert(
        self, table: sa.Table, key: Sequence[str], columns: Sequence[str] | None = None, version: str | None = None
    ) -> Statement:
        return on_conflict_upsert(sqlite.insert(table), key, columns or table.c.keys(), table, version)
