"""PostgreSQL (psycopg 3): native JSONB, UUID, arrays, timestamptz, ON CONFLICT DO UPDATE."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from ..model import Column, ColumnType, Kind, TableSpec
from .base import Dialect, Statement


class PostgresDialect(Dialect):
    name = "postgresql"
    stored_as: ClassVar[Mapping[Kind, ColumnType]] = {Kind.INT8: ColumnType(Kind.INT16)}

    def sa_type(self, ct: ColumnType) -> sa.types.TypeEngine[Any]:
        if ct.kind is Kind.JSON:
            return postgresql.JSONB()
        if ct.kind is Kind.ARRAY and ct.item is not None:
            return postgresql.ARRAY(self.sa_type(ct.item))
        if ct.kind is Kind.TIMESTAMP:
            return postgresql.TIMESTAMP(timezone=True, precision=6)
        if ct.kind is Kind.LOCAL_TIMESTAMP:
            return postgresql.TIMESTAMP(timezone=False, precision=6)
        if ct.kind is Kind.TIME:
            return postgresql.TIME(precision=6)
        if ct.kind is Kind.BYTES:
            return postgresql.BYTEA()
        return super().sa_type(ct)

    def storage_type(self, ct: ColumnType) -> ColumnType:
        if ct.kind is Kind.ARRAY:
            return ct
        return super().storage_type(ct)

    def neutral_type(self, sa_type: sa.types.TypeEngine[Any]) -> ColumnType:
        if isinstance(sa_type, postgresql.ARRAY):
            return ColumnType(Kind.ARRAY, item=self.neutral_type(sa_type.item_type))
        if isinstance(sa_type, postgresql.JSONB | postgresql.JSON):
            return ColumnType(Kind.JSON)
        if isinstance(sa_type, postgresql.DOUBLE_PRECISION):
            return ColumnType(Kind.FLOAT64)
        if isinstance(sa_type, postgresql.REAL):
            return ColumnType(Kind.FLOAT32)
        return super().neutral_type(sa_type)

    def alter_type(self, spec: TableSpec, column: Column, new_type: ColumnType) -> sa.TextClause:
        table, name = self.quote(spec.name), self.quote(column.name)
        return sa.text(f"ALTER TABLE {table} ALTER COLUMN {name} TYPE {self.type_sql(new_type)}")

    def drop_not_null(self, spec: TableSpec, column: Column) -> sa.TextClause:
        return sa.text(f"ALTER TABLE {self.quote(spec.name)} ALTER COLUMN {self.quote(column.name)} DROP NOT NULL")

    def upsert(self, table: sa.Table, key: Sequence[str]) -> Statement:
        stmt = postgresql.insert(table)
        updates = {c.name: stmt.excluded[c.name] for c in table.columns if c.name not in key}
        if not updates:
            return stmt.on_conflict_do_nothing(index_elements=list(key))
        return stmt.on_conflict_do_update(index_elements=list(key), set_=updates)
