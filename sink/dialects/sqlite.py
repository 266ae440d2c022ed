"""SQLite: a true upsert (INSERT ... ON CONFLICT DO UPDATE), never INSERT OR REPLACE, which deletes
the old row (firing delete triggers and dropping columns the record does not carry)."""

from __future__ import annotations

import decimal
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import sqlalchemy as sa
from sqlalchemy.dialects import sqlite

from ..model import ColumnType, Kind
from .base import Dialect, Statement, utc_naive


class DecimalText(sa.types.TypeDecorator[decimal.Decimal]):
    """Decimals kept exact as text: SQLite's NUMERIC affinity would round them through a double."""

    impl = sa.Text
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Any) -> str | None:
        return None if value is None else str(value)

    def process_result_value(self, value: Any, dialect: Any) -> decimal.Decimal | None:
        return None if value is None else decimal.Decimal(value)


class SqliteDialect(Dialect):
    name = "sqlite"
    stored_as: ClassVar[Mapping[Kind, ColumnType]] = {
        Kind.INT8: ColumnType(Kind.INT16),
        Kind.TIMESTAMP: ColumnType(Kind.LOCAL_TIMESTAMP),
        Kind.DECIMAL: ColumnType(Kind.STRING),
        Kind.UUID: ColumnType(Kind.STRING, length=32),
    }

    def sa_type(self, ct: ColumnType) -> sa.types.TypeEngine[Any]:
        if ct.kind is Kind.DECIMAL:
            return DecimalText()
        if ct.kind is Kind.TIMESTAMP:
            return sa.DateTime(timezone=False)  # stored as UTC: SQLite has no zone-aware type
        return super().sa_type(ct)

    def upsert(self, table: sa.Table, key: Sequence[str]) -> Statement:
        stmt = sqlite.insert(table)
        updates = {c.name: stmt.excluded[c.name] for c in table.columns if c.name not in key}
        if not updates:
            return stmt.on_conflict_do_nothing(index_elements=list(key))
        return stmt.on_conflict_do_update(index_elements=list(key), set_=updates)

    def bind(self, value: Any) -> Any:
        return utc_naive(value)
