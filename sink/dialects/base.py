"""What every dialect shares: neutral types -> SQLAlchemy types, tables, and the statements.

This package is the only place that produces SQL. Identifiers are never formatted into text by
hand: tables and columns are SQLAlchemy objects (quoted by the dialect's identifier preparer) and
every value is a bound parameter.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar

import sqlalchemy as sa
from sqlalchemy.engine import Dialect as SADialect
from sqlalchemy.sql.ddl import DDLElement
from sqlalchemy.sql.expression import ClauseElement, Executable

from ..model import Column, ColumnType, Kind, TableSpec

Statement = Executable


class Dialect:
    """Base dialect; subclasses override the type map and the upsert statement."""

    name: ClassVar[str] = "generic"
    # Kinds a database stores as another kind (what reflection reads back), e.g. BOOLEAN as INT8.
    stored_as: ClassVar[Mapping[Kind, ColumnType]] = {}

    def __init__(self, sa_dialect: SADialect) -> None:
        self.sa_dialect = sa_dialect

    # -------------------------------------------------------------- types

    def sa_type(self, ct: ColumnType) -> sa.types.TypeEngine[Any]:
        simple: dict[Kind, Callable[[], sa.types.TypeEngine[Any]]] = {
            Kind.INT8: sa.SmallInteger,
            Kind.INT16: sa.SmallInteger,
            Kind.INT32: sa.Integer,
            Kind.INT64: sa.BigInteger,
            Kind.FLOAT32: sa.REAL,
            Kind.FLOAT64: sa.Double,
            Kind.BOOLEAN: sa.Boolean,
            Kind.DATE: sa.Date,
            Kind.UUID: sa.Uuid,
            Kind.JSON: sa.JSON,
        }
        if ct.kind in simple:
            return simple[ct.kind]()
        if ct.kind is Kind.STRING:
            return sa.String(ct.length) if ct.length else sa.Text()
        if ct.kind is Kind.BYTES:
            return sa.LargeBinary(ct.length)
        if ct.kind is Kind.DECIMAL:
            return sa.Numeric(ct.precision, ct.scale, asdecimal=True) if ct.scale is not None else sa.Numeric()
        if ct.kind is Kind.TIME:
            return sa.Time()
        if ct.kind is Kind.TIMESTAMP:
            return sa.DateTime(timezone=True)
        if ct.kind is Kind.LOCAL_TIMESTAMP:
            return sa.DateTime(timezone=False)
        if ct.kind is Kind.ARRAY:
            return self.sa_type(ColumnType(Kind.JSON))
        raise ValueError(f"no column type for {ct}")

    def storage_type(self, ct: ColumnType) -> ColumnType:
        """The neutral type a column of `ct` reads back as after a round trip through the database."""
        stored = self.stored_as.get(ct.kind)
        if stored is not None:
            return stored
        if ct.kind is Kind.ARRAY:
            return ColumnType(Kind.JSON)
        return ct

    def neutral_type(self, sa_type: sa.types.TypeEngine[Any]) -> ColumnType:
        """The neutral type of a reflected column (the inverse of `sa_type`, up to `storage_type`)."""
        checks: list[tuple[type, Callable[[Any], ColumnType]]] = [
            (sa.Boolean, lambda t: ColumnType(Kind.BOOLEAN)),
            (sa.SmallInteger, lambda t: ColumnType(Kind.INT16)),
            (sa.BigInteger, lambda t: ColumnType(Kind.INT64)),
            (sa.Integer, lambda t: ColumnType(Kind.INT32)),
            (sa.Double, lambda t: ColumnType(Kind.FLOAT64)),
            (sa.Float, _float_kind),
            (sa.Numeric, lambda t: _decimal_kind(t)),
            (sa.DateTime, lambda t: ColumnType(Kind.TIMESTAMP if t.timezone else Kind.LOCAL_TIMESTAMP)),
            (sa.Date, lambda t: ColumnType(Kind.DATE)),
            (sa.Time, lambda t: ColumnType(Kind.TIME)),
            (sa.Uuid, lambda t: ColumnType(Kind.UUID)),
            (sa.JSON, lambda t: ColumnType(Kind.JSON)),
            (sa.LargeBinary, lambda t: ColumnType(Kind.BYTES)),
            (sa.types._Binary, lambda t: ColumnType(Kind.BYTES)),
            (sa.Text, lambda t: ColumnType(Kind.STRING)),
            (sa.String, lambda t: ColumnType(Kind.STRING, length=t.length)),
        ]
        for python_type, convert in checks:
            if isinstance(sa_type, python_type):
                return convert(sa_type)
        return ColumnType(Kind.STRING)

    # -------------------------------------------------------------- tables

    def table(self, spec: TableSpec) -> sa.Table:
        metadata = sa.MetaData()
        return sa.Table(spec.name, metadata, *(self._column(c, spec) for c in spec.columns), quote=True)

    def _column(self, column: Column, spec: TableSpec) -> sa.Column[Any]:
        in_key = column.name in spec.primary_key
        default = None
        if column.has_default and column.default is not None and not in_key:
            default = sa.literal(column.default, type_=self.sa_type(column.type)).compile(
                dialect=self.sa_dialect, compile_kwargs={"literal_binds": True}
            )
            default = sa.text(str(default))
        return sa.Column(
            column.name,
            self.sa_type(column.type),
            primary_key=in_key,
            nullable=column.nullable and not in_key,
            autoincrement=False,
            server_default=default,
            quote=True,
        )

    def create_table(self, spec: TableSpec) -> DDLElement:
        return sa.schema.CreateTable(self.table(spec), if_not_exists=True)

    def add_column(self, spec: TableSpec, column: Column) -> ClauseElement:
        table = self.quote(spec.name)
        col = self._column(column, spec)
        ddl = sa.schema.CreateColumn(col).compile(dialect=self.sa_dialect)
        return sa.text(f"ALTER TABLE {table} ADD COLUMN {ddl}")

    def alter_type(self, spec: TableSpec, column: Column, new_type: ColumnType) -> ClauseElement:
        raise NotImplementedError(f"{self.name} cannot change column types in place")

    def drop_not_null(self, spec: TableSpec, column: Column) -> ClauseElement:
        raise NotImplementedError(f"{self.name} cannot drop NOT NULL in place")

    def quote(self, identifier: str) -> str:
        return self.sa_dialect.identifier_preparer.quote_identifier(identifier)

    def type_sql(self, ct: ColumnType) -> str:
        return self.sa_type(ct).compile(dialect=self.sa_dialect)

    # -------------------------------------------------------------- statements

    def insert(self, table: sa.Table) -> Statement:
        return sa.insert(table)

    def upsert(self, table: sa.Table, key: Sequence[str]) -> Statement:
        raise NotImplementedError

    def update(self, table: sa.Table, key: Sequence[str], columns: Sequence[str]) -> Statement:
        # Bind names differ from column names: SQLAlchemy reserves those for its own SET clause.
        where = sa.and_(*(table.c[k] == sa.bindparam(_key_param(k)) for k in key))
        values = {c: sa.bindparam(_value_param(c)) for c in columns if c not in key}
        return sa.update(table).where(where).values(values)

    def update_params(self, key: Sequence[str], columns: Sequence[str], row: Mapping[str, Any]) -> dict[str, Any]:
        params = {_value_param(c): self.bind(row.get(c)) for c in columns if c not in key}
        params.update({_key_param(k): self.bind(row.get(k)) for k in key})
        return params

    def delete(self, table: sa.Table, key: Sequence[str]) -> Statement:
        where = sa.and_(*(table.c[k] == sa.bindparam(_key_param(k)) for k in key))
        return sa.delete(table).where(where)

    def key_params(self, key: Mapping[str, Any]) -> dict[str, Any]:
        return {_key_param(k): self.bind(v) for k, v in key.items()}

    # -------------------------------------------------------------- values

    def bind(self, value: Any) -> Any:
        """Adapt a Python value for this database (e.g. aware datetimes where zones are not stored)."""
        return value


def _key_param(name: str) -> str:
    return f"k_{name}"


def _value_param(name: str) -> str:
    return f"v_{name}"


def _float_kind(t: sa.Float) -> ColumnType:
    return ColumnType(Kind.FLOAT64 if (t.precision or 53) > 24 else Kind.FLOAT32)


def _decimal_kind(t: sa.Numeric) -> ColumnType:
    if t.scale is None and t.precision is None:
        return ColumnType(Kind.DECIMAL, precision=None, scale=None)
    return ColumnType(Kind.DECIMAL, precision=t.precision, scale=t.scale or 0)


def utc_naive(value: Any) -> Any:
    """Aware datetimes as naive UTC, for databases without a zone-aware timestamp type."""
    if isinstance(value, dt.datetime) and value.tzinfo is not None:
        return value.astimezone(dt.UTC).replace(tzinfo=None)
    return value
