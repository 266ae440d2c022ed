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
from collections.abc import Callable, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import sqlite
from sqlalchemy.engine import Dialect as SADialect
from sqlalchemy.sql.expression import Executable

from ..identifiers import IdentifierRules
from ..model import Column, ColumnType, Kind, TableSpec
from ..schema import Evolution
from . import ddl
from .base import Dialect, Statement, on_conflict_upsert
from .types import DecimalText, JsonText, UtcDateTime, refuse_nan, utc_naive

REBUILD_PREFIX = "_sink_rebuild_"


class SqliteDialect(Dialect):
    name = "sqlite"
    # Names compare case-insensitively for ASCII letters only; no length limit to speak of.
    identifiers = IdentifierRules(
        "SQLite", column_folding="ascii", table_folding="ascii", reserved_table_prefix="sqlite_"
    )
    max_columns = 2000  # SQLITE_MAX_COLUMN's default

    def __init__(self, sa_dialect: SADialect) -> None:
        super().__init__(sa_dialect)
        # Teach this engine's reflection the sink's own type names (per instance, not globally).
        names = getattr(sa_dialect, "ischema_names", None)
        if names is not None:
            sa_dialect.ischema_names = {**names, "DECIMAL_TEXT": DecimalText, "JSON_TEXT": JsonText}  # type: ignore[attr-defined]

    def sa_type(self, ct: ColumnType) -> sa.types.TypeEngine[Any]:
        # Integer and float kinds keep the portable names (SMALLINT .. BIGINT, REAL, DOUBLE):
        # SQLite stores every one of them as a 64-bit integer or an 8-byte float.
        simple: dict[Kind, Callable[[], sa.types.TypeEngine[Any]]] = {
            Kind.STRING: sa.Text,
            Kind.BYTES: sa.BLOB,
            Kind.DECIMAL: DecimalText,
            Kind.TIMESTAMP: UtcDateTime,
            Kind.LOCAL_TIMESTAMP: sa.DateTime,
            Kind.JSON: lambda: JsonText(none_as_null=True),
            Kind.ARRAY: lambda: JsonText(none_as_null=True),
        }
        factory = simple.get(ct.kind)
        return factory() if factory else self._type(ct)

    def neutral_type(self, sa_type: sa.types.TypeEngine[Any]) -> ColumnType:
        simple = (
            (DecimalText, Kind.DECIMAL),
            (JsonText, Kind.JSON),
            (UtcDateTime, Kind.TIMESTAMP),
            (sa.TIMESTAMP, Kind.TIMESTAMP),
            (sa.Boolean, Kind.BOOLEAN),
            (sa.Integer, Kind.INT64),
            (sa.Float, Kind.FLOAT64),
            (sa.Text, Kind.STRING),
        )
        for python_type, kind in simple:
            if isinstance(sa_type, python_type):
                return ColumnType(kind)
        if isinstance(sa_type, sa.CHAR) and sa_type.length == 36:  # what UuidText creates
            return ColumnType(Kind.UUID)
        if isinstance(sa_type, sa.String):
            return ColumnType(Kind.STRING)  # SQLite does not enforce VARCHAR(n)
        return super().neutral_type(sa_type)

    def evolve_statements(self, existing: TableSpec, evolution: Evolution) -> list[Executable]:
        if not evolution.widen and not evolution.drop_not_null:
            target = self.table(evolution.apply(existing))
            return [ddl.AddColumn(target.c[c.name]) for c in evolution.add]
        return self._rebuild(existing, evolution.apply(existing))

    def alter_type(self, spec: TableSpec, column: Column, new_type: ColumnType) -> Executable:
        raise NotImplementedError("SQLite changes a column by rebuilding the table: use evolve_statements")

    def drop_not_null(self, spec: TableSpec, column: Column) -> Executable:
        raise NotImplementedError("SQLite changes a column by rebuilding the table: use evolve_statements")

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

    bind_classes = frozenset({float, dt.datetime})

    def bind(self, value: Any) -> Any:
        return utc_naive(refuse_nan(value, "SQLite", infinity=False))  # SQLite would store NULL
