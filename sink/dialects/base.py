"""What every dialect shares: tables, DDL and the statements, over the dialect's type registry.

This package is the only place that produces SQL. Identifiers are never formatted into text by
hand: tables and columns are SQLAlchemy objects (quoted by the dialect's identifier preparer, also
in the ALTER statements of `ddl.py`) and every value is a bound parameter. The one exception is a
column DEFAULT, which DDL cannot bind: it is rendered by SQLAlchemy's literal renderer for its type.

Types are not here: each dialect module holds its `TYPES` table (`type_registry.TypeRegistry`),
one entry per neutral kind, which is the whole of what the dialect knows about types. A dialect
reads it through `sa_type`, `storage_type` and `bind`; reflection (`adapters/reflection.py`) reads
it backwards.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar

import sqlalchemy as sa
from sqlalchemy.engine import Dialect as SADialect
from sqlalchemy.sql.ddl import ExecutableDDLElement
from sqlalchemy.sql.expression import Executable

from ..identifiers import IdentifierRules
from ..model import Column, ColumnType, Kind, TableSpec
from ..schema import Evolution
from . import ddl
from .type_registry import TypeRegistry

Statement = Executable


class SqlDefault(str):
    """A column default as the database reported it (SQL text), carried by a reflected column so a
    statement that restates the column (MySQL MODIFY, SQLite rebuild) keeps it."""


class Dialect:
    """Base dialect. Subclasses give their type registry (`types`), the upsert statement and
    whatever DDL their database spells differently."""

    name: ClassVar[str] = "generic"
    # What names the database holds and how many columns a table may have: checked before any DDL,
    # so a name is never cut or merged and a too-wide table is refused before half of it is built.
    identifiers: ClassVar[IdentifierRules] = IdentifierRules()
    max_columns: ClassVar[int] = 1000
    # Whether the database may find two different strings one key (padding, collations): the
    # writer then keeps such keys of a batch apart, in record order (`sink.keys`).
    loose_string_keys: ClassVar[bool] = False
    # Statements of at least this many rows take the bulk path (COPY into a stage, then one merge);
    # None: the database has none, every statement is an executemany.
    bulk_min_rows: ClassVar[int | None] = None
    # Every type of the database: kind -> column type, the inverse, the value binding.
    types: ClassVar[TypeRegistry]

    def __init__(self, sa_dialect: SADialect) -> None:
        self.sa_dialect = sa_dialect
        # The registry's own functions, not methods over it: `bind` runs per value on the write path.
        self.bind: Callable[[Any], Any] = self.types.bind
        self.bind_classes: frozenset[type] = self.types.bind_classes  # the classes `bind` adapts
        if self.types.type_names:
            # This engine's reflection learns the sink's own type names (per instance, not globally).
            names = getattr(sa_dialect, "ischema_names", None)
            if names is not None:
                sa_dialect.ischema_names = {**names, **self.types.type_names}  # type: ignore[attr-defined]

    # -------------------------------------------------------------- types (lookups in `types`)

    def sa_type(self, ct: ColumnType) -> sa.types.TypeEngine[Any]:
        return self.types.column_type(ct)

    def storage_type(self, ct: ColumnType) -> ColumnType:
        """The neutral type a column of `ct` reads back as after a round trip through the database,
        so comparing a reflected table with a wanted spec never sees a change that is only the
        database's way of storing a kind (SMALLINT for int8 on PostgreSQL, say)."""
        return self.types.storage_type(ct)

    # -------------------------------------------------------------- tables

    def table(self, spec: TableSpec) -> sa.Table:
        """The table as SQLAlchemy's, schema and name each quoted (a dot inside either stays a
        character of that name)."""
        metadata = sa.MetaData()
        columns = (self._column(c, spec) for c in spec.columns)
        return sa.Table(spec.name, metadata, *columns, schema=spec.schema, quote=True, quote_schema=True)

    def _column(self, column: Column, spec: TableSpec) -> sa.Column[Any]:
        in_key = column.name in spec.primary_key
        return sa.Column(
            column.name,
            self.types.key_type(column.type) if in_key else self.types.column_type(column.type),
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

    def create_schema(self, schema: str) -> ExecutableDDLElement:
        """CREATE SCHEMA IF NOT EXISTS, the name quoted (MariaDB/MySQL: a database)."""
        return sa.schema.CreateSchema(sa.sql.quoted_name(schema, quote=True), if_not_exists=True)

    def evolve_statements(self, existing: TableSpec, evolution: Evolution) -> list[Executable]:
        """The DDL that turns `existing` into `evolution.apply(existing)`, in order. Every statement
        is built from the table as it will be, so two changes to one column cannot undo each other."""
        target = self.table(evolution.apply(existing))
        statements: list[Executable] = [ddl.AddColumn(target.c[c.name]) for c in evolution.add]
        statements += [ddl.AlterColumnType(target.c[c.name]) for c, _ in evolution.widen]
        statements += [ddl.DropNotNull(target.c[name]) for name in evolution.drop_not_null]
        return statements

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

    def exact_keys(self, spec: TableSpec, rows: Sequence[Mapping[str, Any]]) -> Sequence[Mapping[str, Any]]:
        """`rows` (deletes' keys, writes' rows) with their key values as the database compares them
        with `spec`'s key columns exactly; `rows` itself when nothing changes (here: always)."""
        return rows

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

    def reporting_inserts(self, upsert: Statement) -> Statement | None:
        """`upsert` made to return, per parameter set and in their order, True for an insert and
        False for an update; None where the database cannot tell cheaply."""
        return None


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
