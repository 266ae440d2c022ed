"""PostgreSQL (psycopg 3): JSONB, UUID, native arrays of primitives, timestamptz for instants,
INSERT ... ON CONFLICT DO UPDATE."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from ..identifiers import IdentifierRules
from ..model import ColumnType, Kind
from .base import Dialect, Statement, on_conflict_upsert


class PostgresDialect(Dialect):
    name = "postgresql"
    # NAMEDATALEN - 1: longer names are cut without an error, which would merge or misplace columns.
    identifiers = IdentifierRules("PostgreSQL", max_length=63, length_unit="bytes")
    max_columns = 1600

    def sa_type(self, ct: ColumnType) -> sa.types.TypeEngine[Any]:
        if ct.kind is Kind.JSON or (ct.kind is Kind.ARRAY and not _native_item(ct.item)):
            return postgresql.JSONB(none_as_null=True)
        if ct.kind is Kind.ARRAY:
            assert ct.item is not None
            return postgresql.ARRAY(self.sa_type(ct.item))
        if ct.kind in (Kind.TIMESTAMP, Kind.LOCAL_TIMESTAMP):
            return postgresql.TIMESTAMP(timezone=ct.kind is Kind.TIMESTAMP, precision=6)
        if ct.kind is Kind.TIME:
            return postgresql.TIME(precision=6)
        if ct.kind is Kind.UUID:
            return postgresql.UUID()
        if ct.kind is Kind.BYTES:
            return postgresql.BYTEA()
        return self._type(ct)

    def neutral_type(self, sa_type: sa.types.TypeEngine[Any]) -> ColumnType:
        if isinstance(sa_type, postgresql.ARRAY):
            return ColumnType(Kind.ARRAY, item=self.neutral_type(sa_type.item_type))
        if isinstance(sa_type, sa.REAL):
            return ColumnType(Kind.FLOAT32)
        return super().neutral_type(sa_type)

    def bytes_literal(self, value: bytes) -> str:
        return f"decode('{value.hex()}', 'hex')"  # independent of standard_conforming_strings

    def upsert(self, table: sa.Table, key: Sequence[str], columns: Sequence[str] | None = None) -> Statement:
        return on_conflict_upsert(postgresql.insert(table), key, columns or table.c.keys())

    def reporting_inserts(self, upsert: Statement) -> Statement | None:
        # xmax is 0 for a row version no transaction has locked or replaced yet: a fresh insert
        if not isinstance(getattr(upsert, "_post_values_clause", None), postgresql.dml.OnConflictDoUpdate):
            return None  # DO NOTHING returns no row for a conflict: the flags would not line up
        flag = sa.literal_column("(xmax = 0)", sa.Boolean)
        return upsert.returning(flag, sort_by_parameter_order=True)  # type: ignore[attr-defined]


def _native_item(item: ColumnType | None) -> bool:
    """Arrays of primitives are native arrays; arrays of arrays or documents stay JSONB."""
    return item is not None and item.kind not in (Kind.JSON, Kind.ARRAY)
