"""MySQL / MariaDB (PyMySQL): INSERT ... ON DUPLICATE KEY UPDATE, DATETIME(6), bounded key strings."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import sqlalchemy as sa
from sqlalchemy.dialects import mysql

from ..model import Column, ColumnType, Kind, TableSpec
from .base import Dialect, Statement, utc_naive


class MysqlDialect(Dialect):
    name = "mysql"
    stored_as: ClassVar[Mapping[Kind, ColumnType]] = {
        Kind.BOOLEAN: ColumnType(Kind.INT8),
        Kind.TIMESTAMP: ColumnType(Kind.LOCAL_TIMESTAMP),
        Kind.UUID: ColumnType(Kind.STRING, length=32),
    }

    def sa_type(self, ct: ColumnType) -> sa.types.TypeEngine[Any]:
        if ct.kind is Kind.INT8:
            return mysql.TINYINT()
        if ct.kind in (Kind.TIMESTAMP, Kind.LOCAL_TIMESTAMP):
            return mysql.DATETIME(fsp=6)
        if ct.kind is Kind.TIME:
            return mysql.TIME(fsp=6)
        if ct.kind is Kind.STRING and ct.length:
            return mysql.VARCHAR(ct.length)
        if ct.kind is Kind.STRING:
            return mysql.LONGTEXT()
        if ct.kind is Kind.BYTES:
            return mysql.VARBINARY(ct.length) if ct.length else mysql.LONGBLOB()
        if ct.kind is Kind.DECIMAL and ct.scale is None:
            return mysql.DECIMAL(65, 30)
        return super().sa_type(ct)

    def neutral_type(self, sa_type: sa.types.TypeEngine[Any]) -> ColumnType:
        if isinstance(sa_type, mysql.TINYINT):
            return ColumnType(Kind.INT8)
        if isinstance(sa_type, mysql.DOUBLE):
            return ColumnType(Kind.FLOAT64)
        if isinstance(sa_type, mysql.FLOAT):
            return ColumnType(Kind.FLOAT32)
        return super().neutral_type(sa_type)

    def alter_type(self, spec: TableSpec, column: Column, new_type: ColumnType) -> sa.TextClause:
        null = "NULL" if column.nullable else "NOT NULL"
        table, name = self.quote(spec.name), self.quote(column.name)
        return sa.text(f"ALTER TABLE {table} MODIFY COLUMN {name} {self.type_sql(new_type)} {null}")

    def drop_not_null(self, spec: TableSpec, column: Column) -> sa.TextClause:
        table, name = self.quote(spec.name), self.quote(column.name)
        return sa.text(f"ALTER TABLE {table} MODIFY COLUMN {name} {self.type_sql(column.type)} NULL")

    def upsert(self, table: sa.Table, key: Sequence[str]) -> Statement:
        stmt = mysql.insert(table)
        columns = [c.name for c in table.columns if c.name not in key] or list(key)
        return stmt.on_duplicate_key_update({c: stmt.inserted[c] for c in columns})

    def bind(self, value: Any) -> Any:
        return utc_naive(value)
