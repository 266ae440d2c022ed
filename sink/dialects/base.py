"""What every dialect shares: neutral types <-> SQLAlchemy types, tables, DDL and the statements.

This package is the only place that produces SQL. Identifiers are never formatted into text by
hand: tables and columns are SQLAlchemy objects (quoted by the dialect's identifier preparer, also
in the ALTER statements of `ddl.py`) and every value is a bound parameter. The one exception is a
column DEFAULT, which DDL cannot bind: it is rendered by SQLAlchemy's literal renderer for its type.

Type mapping has two directions that must agree: `sa_type` (neutral -> column type) and
`neutral_type` (reflected column type -> neutral). `storage_type` is their composition, the neutral
type a column reads back as, so comparing a reflected table with a wanted spec never sees a change
that is only the database's way of storing a kind (SMALLINT for int8 on PostgreSQL, say).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.engine import Dialect as SADialect
from sqlalchemy.sql.ddl import ExecutableDDLElement
from sqlalchemy.sql.expression import Executable

from ..identifiers import IdentifierRules
from ..model import Column, ColumnType, Kind, TableSpec
from ..schema import Evolution
from . import ddl
from .types import UuidText

Statement = Executable


class SqlDefault(str):
    """A column default as the database reported it (SQL text), carried by a reflected column so a
    statement that restates the column (MySQL MODIFY, SQLite rebuild) keeps it."""


# Representative neutral types for the documentation tables: (label, type).
DOC_TYPES: tuple[tuple[str, ColumnType], ...] = (
    ("int8", ColumnType(Kind.INT8)),
    ("int16", ColumnType(Kind.INT16)),
    ("int32", ColumnType(Kind.INT32)),
    ("int64", ColumnType(Kind.INT64)),
    ("float32", ColumnType(Kind.FLOAT32)),
    ("float64", ColumnType(Kind.FLOAT64)),
    ("boolean", ColumnType(Kind.BOOLEAN)),
    ("string", ColumnType(Kind.STRING)),
    ("string(255)", ColumnType(Kind.STRING, length=255)),
    ("bytes", ColumnType(Kind.BYTES)),
    ("bytes(16) (fixed)", ColumnType(Kind.BYTES, length=16)),
    ("decimal(10,2)", ColumnType(Kind.DECIMAL, precision=10, scale=2)),
    ("decimal (variable scale)", ColumnType(Kind.DECIMAL, precision=38)),
    ("date", ColumnType(Kind.DATE)),
    ("time", ColumnType(Kind.TIME, precision=6)),
    ("timestamp", ColumnType(Kind.TIMESTAMP, precision=6)),
    ("local_timestamp", ColumnType(Kind.LOCAL_TIMESTAMP, precision=6)),
    ("uuid", ColumnType(Kind.UUID)),
    ("json", ColumnType(Kind.JSON)),
    ("array<int64>", ColumnType(Kind.ARRAY, item=ColumnType(Kind.INT64))),
    ("array<string>", ColumnType(Kind.ARRAY, item=ColumnType(Kind.STRING))),
)


class Dialect:
    """Base dialect. Subclasses override the type map (`_type`), its inverse (`neutral_type`),
    the upsert statement and whatever DDL their database spells differently."""

    name: ClassVar[str] = "generic"
    # What names the database holds and how many columns a table may have: checked before any DDL,
    # so a name is never cut or merged and a too-wide table is refused before half of it is built.
    identifiers: ClassVar[IdentifierRules] = IdentifierRules()
    max_columns: ClassVar[int] = 1000
    # Statements of at least this many rows take the bulk path (COPY into a stage, then one merge);
    # None: the database has none, every statement is an executemany.
    bulk_min_rows: ClassVar[int | None] = None

    def __init__(self, sa_dialect: SADialect) -> None:
        self.sa_dialect = sa_dialect

    # -------------------------------------------------------------- types

    def sa_type(self, ct: ColumnType) -> sa.types.TypeEngine[Any]:
        return self._type(ct)

    def _type(self, ct: ColumnType) -> sa.types.TypeEngine[Any]:
        """The column type of a neutral type; the portable default subclasses refine."""
        simple: dict[Kind, Callable[[], sa.types.TypeEngine[Any]]] = {
            Kind.INT8: sa.SmallInteger,
            Kind.INT16: sa.SmallInteger,
            Kind.INT32: sa.Integer,
            Kind.INT64: sa.BigInteger,
            Kind.FLOAT32: sa.REAL,
            Kind.FLOAT64: sa.Double,
            Kind.BOOLEAN: sa.Boolean,
            Kind.DATE: sa.Date,
            Kind.TIME: sa.Time,
            Kind.UUID: UuidText,
            Kind.JSON: lambda: sa.JSON(none_as_null=True),
            Kind.ARRAY: lambda: sa.JSON(none_as_null=True),
        }
        if ct.kind in simple:
            return simple[ct.kind]()
        if ct.kind is Kind.STRING:
            return sa.String(ct.length) if ct.length else sa.Text()
        if ct.kind is Kind.BYTES:
            return sa.LargeBinary()
        if ct.kind is Kind.DECIMAL:
            return sa.Numeric(ct.precision, ct.scale) if ct.scale is not None else sa.Numeric()
        if ct.kind in (Kind.TIMESTAMP, Kind.LOCAL_TIMESTAMP):
            return sa.DateTime(timezone=ct.kind is Kind.TIMESTAMP)
        raise ValueError(f"no column type for {ct}")

    def key_type(self, ct: ColumnType) -> sa.types.TypeEngine[Any]:
        """The column type of a primary-key column (MySQL bounds strings here)."""
        return self.sa_type(ct)

    def storage_type(self, ct: ColumnType) -> ColumnType:
        """The neutral type a column of `ct` reads back as after a round trip through the database."""
        return self.neutral_type(self.sa_type(ct))

    def neutral_type(self, sa_type: sa.types.TypeEngine[Any]) -> ColumnType:
        """The neutral type of a column type (reflected, or made by `sa_type`): `sa_type`'s inverse."""
        for python_type, convert in _NEUTRAL:
            if isinstance(sa_type, python_type):
                return convert(sa_type)
        return ColumnType(Kind.STRING)  # a type the sink never creates: written as text

    def type_sql(self, ct: ColumnType, key: bool = False) -> str:
        sa_type = self.key_type(ct) if key else self.sa_type(ct)
        return str(sa_type.compile(dialect=self.sa_dialect))

    # -------------------------------------------------------------- tables

    def table(self, spec: TableSpec) -> sa.Table:
        metadata = sa.MetaData()
        return sa.Table(spec.name, metadata, *(self._column(c, spec) for c in spec.columns), quote=True)

    def _column(self, column: Column, spec: TableSpec) -> sa.Column[Any]:
        in_key = column.name in spec.primary_key
        return sa.Column(
            column.name,
            self.key_type(column.type) if in_key else self.sa_type(column.type),
            primary_key=in_key,
            nullable=column.nullable and not in_key,
            autoincrement=False,
            server_default=None if in_key else self._server_default(column),
            quote=True,
        )

    def _server_default(self, column: Column) -> sa.ColumnElement[Any] | None:
        """The DEFAULT clause. A value, not text: the DDL compiler renders it as a literal of the
        column's type (escaped for this driver exactly once)."""
        if not column.has_default or column.default is None:
            return None
        value = column.default
        if isinstance(value, SqlDefault):  # reflected: the database's own text
            return sa.literal_column(str(value))
        if isinstance(value, bytes | bytearray):  # SQLAlchemy renders no binary literals
            return sa.literal_column(self.bytes_literal(bytes(value)))
        if self.storage_type(column.type).kind is Kind.JSON:  # nor JSON ones: the document as text
            return sa.literal(self._json_text(value), type_=sa.Text())
        return sa.literal(self.bind(value), type_=self.sa_type(column.type))

    def bytes_literal(self, value: bytes) -> str:
        return f"X'{value.hex()}'"

    def _json_text(self, value: Any) -> str:
        # The engine's serializer (adapters.db.json_dumps) knows decimals, dates and bytes.
        serializer = getattr(self.sa_dialect, "_json_serializer", None) or json.dumps
        return str(serializer(value))

    def create_table(self, spec: TableSpec) -> ExecutableDDLElement:
        return sa.schema.CreateTable(self.table(spec), if_not_exists=True)

    def evolve_statements(self, existing: TableSpec, evolution: Evolution) -> list[Executable]:
        """The DDL that turns `existing` into `evolution.apply(existing)`, in order. Every statement
        is built from the table as it will be, so two changes to one column cannot undo each other."""
        target = self.table(evolution.apply(existing))
        statements: list[Executable] = [ddl.AddColumn(target.c[c.name]) for c in evolution.add]
        statements += [ddl.AlterColumnType(target.c[c.name]) for c, _ in evolution.widen]
        statements += [ddl.DropNotNull(target.c[name]) for name in evolution.drop_not_null]
        return statements

    # One change at a time (for tools and tests); the store applies `evolve_statements`.

    def add_column(self, spec: TableSpec, column: Column) -> Executable:
        return self._single(spec, column, Evolution(add=(column,)))

    def alter_type(self, spec: TableSpec, column: Column, new_type: ColumnType) -> Executable:
        return self._single(spec, column, Evolution(widen=((column, new_type),)))

    def drop_not_null(self, spec: TableSpec, column: Column) -> Executable:
        return self._single(spec, column, Evolution(drop_not_null=(column.name,)))

    def _single(self, spec: TableSpec, column: Column, evolution: Evolution) -> Executable:
        if not evolution.add:  # the column as given, whatever the spec says of it
            columns = tuple(column if c.name == column.name else c for c in spec.columns)
            spec = dataclasses.replace(spec, columns=columns)
        (statement,) = self.evolve_statements(spec, evolution)
        return statement

    def quote(self, identifier: str) -> str:
        return str(self.sa_dialect.identifier_preparer.quote_identifier(identifier))

    # -------------------------------------------------------------- reflection

    def reflect(self, connection: Connection, name: str) -> TableSpec | None:
        """The table as it exists, with neutral types; None when there is none."""
        inspector = sa.inspect(connection)
        if not inspector.has_table(name):
            return None
        key = inspector.get_pk_constraint(name).get("constrained_columns") or []
        columns = tuple(self._reflected(info) for info in inspector.get_columns(name))
        return TableSpec(name, columns, tuple(key))

    def _reflected(self, info: Mapping[str, Any]) -> Column:
        default = info.get("default")
        return Column(
            info["name"],
            self.neutral_type(info["type"]),
            nullable=bool(info["nullable"]),
            default=None if default is None else SqlDefault(default),
            has_default=default is not None,
        )

    # -------------------------------------------------------------- statements

    def insert(self, table: sa.Table) -> Statement:
        return sa.insert(table)

    def upsert(
        self, table: sa.Table, key: Sequence[str], columns: Sequence[str] | None = None, version: str | None = None
    ) -> Statement:
        """Insert `columns` (default: all); on a key conflict overwrite the non-key ones among them
        — with a `version` column, only when the stored row has no version or an older one than
        the proposed row (`write_condition`)."""
        raise NotImplementedError

    def update(self, table: sa.Table, key: Sequence[str], columns: Sequence[str]) -> Statement:
        # Bind names are positions, not column names: SQLAlchemy reserves those for its SET
        # clause, and a position needs no escaping whatever the column is called.
        values: dict[str, Any] = {c: sa.bindparam(f"v{i}") for i, c in enumerate(columns) if c not in key}
        if not values:  # every column is in the key: the row exists or not, nothing to change
            values = {key[0]: table.c[key[0]]}
        return sa.update(table).where(_key_condition(table, key)).values(values)

    def truncate(self, table: sa.Table) -> Statement:
        """Every row of the table, inside the transaction: DELETE, not TRUNCATE (which MariaDB and
        MySQL commit at once, and which PostgreSQL locks the table for)."""
        return sa.delete(table)

    def delete(self, table: sa.Table, key: Sequence[str], version: str | None = None) -> Statement:
        """DELETE by key; with a `version` column, only a stored row without version or one no
        newer than the delete's (bound as `dv`)."""
        statement = sa.delete(table).where(_key_condition(table, key))
        if version is not None:
            stored = table.c[version]
            statement = statement.where(delete_condition(stored, sa.bindparam("dv", type_=stored.type)))
        return statement

    def probe(self, table: sa.Table, key: Sequence[str], version: str, delete: bool, carried: bool = True) -> Statement:
        """For one key (bound `k0`…) and one incoming version (bound `w`): no row when the key is
        not stored, else whether the conditional write (or delete) changes it — the very condition
        of `upsert`/`delete`, so the report says what the statement did."""
        stored = table.c[version]
        incoming = sa.bindparam("w", type_=stored.type)
        if delete:
            condition = delete_condition(stored, incoming)
        else:
            condition = write_condition(stored, incoming if carried else None)
        return sa.select(condition.label("fresh")).where(_key_condition(table, key))

    # -------------------------------------------------------------- values

    def reporting_inserts(self, upsert: Statement) -> Statement | None:
        """`upsert` made to return, per parameter set and in their order, True for an insert and
        False for an update; None where the database cannot tell cheaply."""
        return None

    # The classes of the values `bind` changes or checks; values of other classes skip it.
    bind_classes: frozenset[type] = frozenset()

    def bind(self, value: Any) -> Any:
        """Adapt a Python value for this database (e.g. aware datetimes where zones are not stored)."""
        return value

    # -------------------------------------------------------------- documentation

    def type_rows(self) -> list[tuple[str, str, str]]:
        """(neutral type, column type, reads back as) for the documentation table."""
        rows = [(label, self.type_sql(ct), _label(self.storage_type(ct))) for label, ct in DOC_TYPES]
        key = ColumnType(Kind.STRING)
        rows.append(("string, in the primary key", self.type_sql(key, key=True), _label(self.storage_type(key))))
        return rows


def _key_condition(table: sa.Table, key: Sequence[str]) -> sa.ColumnElement[bool]:
    """`k0 = :k0 AND k1 = :k1 ...`: bind names are positions in the key, as for `update`'s values."""
    return sa.and_(*(table.c[k] == sa.bindparam(f"k{i}") for i, k in enumerate(key)))


def write_condition(stored: Any, incoming: Any | None) -> sa.ColumnElement[bool]:
    """When a write of version `incoming` may replace a stored row of version `stored`: the stored
    row has none, or the incoming one is newer. `incoming` None: the rows do not carry the version
    column, and replace only a row without version."""
    if incoming is None:
        return sa.and_(stored.is_(None))
    return sa.or_(stored.is_(None), incoming > stored)


def delete_condition(stored: Any, incoming: Any) -> sa.ColumnElement[bool]:
    """When a delete of version `incoming` removes a stored row of version `stored`: the row has
    no version, or one no newer than the delete's (a delete carries the version of the row it
    deleted, e.g. `before.updated_at`, so an equal version deletes)."""
    return sa.or_(stored.is_(None), stored <= incoming)


def on_conflict_upsert(
    insert: Any, key: Sequence[str], columns: Sequence[str], table: sa.Table | None = None, version: str | None = None
) -> Statement:
    """INSERT ... ON CONFLICT (key) DO UPDATE SET the non-key `columns` to the proposed row's values
    (PostgreSQL and SQLite spell it alike); DO NOTHING when every column is in the key. With a
    `version` column of `table`: DO UPDATE ... WHERE `write_condition`."""
    updates = {c: insert.excluded[c] for c in columns if c not in key}
    statement: Statement
    if not updates:
        statement = insert.on_conflict_do_nothing(index_elements=list(key))
    elif version is not None and table is not None:
        incoming = insert.excluded[version] if version in columns else None
        where = write_condition(table.c[version], incoming)
        statement = insert.on_conflict_do_update(index_elements=list(key), set_=updates, where=where)
    else:
        statement = insert.on_conflict_do_update(index_elements=list(key), set_=updates)
    return statement


def _label(ct: ColumnType) -> str:
    return "decimal" if ct.kind is Kind.DECIMAL and ct.scale is None else str(ct)


def _float_kind(t: sa.Float[Any]) -> ColumnType:
    return ColumnType(Kind.FLOAT64 if (t.precision or 53) > 24 else Kind.FLOAT32)


def _decimal_kind(t: sa.Numeric[Any]) -> ColumnType:
    if t.scale is None:  # unconstrained NUMERIC holds every decimal
        return ColumnType(Kind.DECIMAL)
    return ColumnType(Kind.DECIMAL, precision=t.precision, scale=t.scale)


def _string_kind(t: sa.String) -> ColumnType:
    return ColumnType(Kind.STRING, length=t.length)


def _kind(kind: Kind) -> Callable[[Any], ColumnType]:
    column_type = ColumnType(kind)
    return lambda _t: column_type


# Order matters: subclasses before their bases (Boolean and Double before Integer and Float).
_NEUTRAL: tuple[tuple[type, Callable[[Any], ColumnType]], ...] = (
    (UuidText, _kind(Kind.UUID)),
    (sa.Uuid, _kind(Kind.UUID)),
    (sa.Boolean, _kind(Kind.BOOLEAN)),
    (sa.SmallInteger, _kind(Kind.INT16)),
    (sa.BigInteger, _kind(Kind.INT64)),
    (sa.Integer, _kind(Kind.INT32)),
    (sa.Double, _kind(Kind.FLOAT64)),
    (sa.Float, _float_kind),
    (sa.Numeric, _decimal_kind),
    (sa.DateTime, lambda t: ColumnType(Kind.TIMESTAMP if t.timezone else Kind.LOCAL_TIMESTAMP)),
    (sa.Date, _kind(Kind.DATE)),
    (sa.Time, _kind(Kind.TIME)),
    (sa.JSON, _kind(Kind.JSON)),
    (sa.VARBINARY, lambda t: ColumnType(Kind.BYTES, length=t.length)),
    (sa.BINARY, lambda t: ColumnType(Kind.BYTES, length=t.length)),
    (sa.types._Binary, _kind(Kind.BYTES)),  # MySQL's TINYBLOB .. LONGBLOB
    (sa.Text, _kind(Kind.STRING)),
    (sa.String, _string_kind),
)
