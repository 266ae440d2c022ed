"""PostgreSQL (psycopg 3): JSONB, UUID, native arrays of primitives, timestamptz for instants,
INSERT ... ON CONFLICT DO UPDATE."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.ddl import ExecutableDDLElement

from ..identifiers import IdentifierRules
from ..model import ColumnType, Kind, TableSpec
from .base import Dialect, Statement, delete_condition, on_conflict_upsert, write_condition

STAGE_PREFIX = "_sink_stage_"
# With a version field, a stage has one more column: each staged row's position in its step, so a
# probe of the stage against the table (`probe_staged`) can say row by row what the merge will do.
STAGE_ORDINAL = "_sink_n"


class PostgresDialect(Dialect):
    name = "postgresql"
    # NAMEDATALEN - 1: longer names are cut without an error, which would merge or misplace columns.
    identifiers = IdentifierRules(
        "PostgreSQL",
        max_length=63,
        length_unit="bytes",
        reserved_columns=frozenset({"tableoid", "xmin", "cmin", "xmax", "cmax", "ctid"}),
    )
    max_columns = 1600
    bulk_min_rows = 16  # below this, one executemany is as fast as COPY + merge (benchmarks/README.md)

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

    def upsert(
        self, table: sa.Table, key: Sequence[str], columns: Sequence[str] | None = None, version: str | None = None
    ) -> Statement:
        return on_conflict_upsert(postgresql.insert(table), key, columns or table.c.keys(), table, version)

    def reporting_inserts(self, upsert: Statement) -> Statement | None:
        # xmax is 0 for a row version no transaction has locked or replaced yet: a fresh insert
        if not isinstance(getattr(upsert, "_post_values_clause", None), postgresql.dml.OnConflictDoUpdate):
            return None  # DO NOTHING returns no row for a conflict: the flags would not line up
        flag = sa.literal_column("(xmax = 0)", sa.Boolean)
        returning: Statement = upsert.returning(flag, sort_by_parameter_order=True)  # type: ignore[attr-defined]
        return returning


    # -------------------------------------------------------------- bulk path: COPY into a stage, then merge

    def stage(self, spec: TableSpec, names: Sequence[str], ordinal: bool = False) -> sa.TableClause:
        """The temporary staging table for rows of `spec` that carry `names` (and, `ordinal`, their
        positions as a last column). Its name is derived from the table, the columns and their
        types, so a table that evolved gets a fresh stage."""
        shape = repr((spec.name, [(n, str(c.type) if (c := spec.column(n)) else "None") for n in names]))
        shape += " ordinal" if ordinal else ""
        name = STAGE_PREFIX + hashlib.sha1(shape.encode()).hexdigest()[:24]
        return sa.table(name, *(sa.column(n) for n in (*names, *((STAGE_ORDINAL,) if ordinal else ()))))

    def create_stage(self, stage: sa.TableClause, table: sa.Table) -> ExecutableDDLElement:
        """`CREATE TEMP TABLE IF NOT EXISTS stage ON COMMIT DELETE ROWS AS SELECT cols FROM t WITH
        NO DATA`: the target's own column types (also of tables the sink did not create), none of
        its constraints (they are checked when the rows are merged, with the database's own reasons)."""
        return CreateStage(stage, table)

    def stage_types(self, stage: sa.TableClause) -> Statement:
        """(column name, type oid) of this session's stage; no rows while the session has none (a
        rolled-back transaction takes the stage it created with it)."""
        return sa.text(
            "SELECT a.attname, a.atttypid FROM pg_catalog.pg_attribute a"
            " JOIN pg_catalog.pg_class c ON c.oid = a.attrelid"
            " WHERE c.relname = :name AND c.relnamespace = pg_catalog.pg_my_temp_schema()"
            " AND a.attnum > 0 AND NOT a.attisdropped"
        ).bindparams(name=stage.name)

    def copy_into(self, stage: sa.TableClause, binary: bool = False) -> str:
        """COPY in text format: every value is parsed by the column's own input function, as a
        bound parameter would be; psycopg escapes tabs, newlines and backslashes. In binary format,
        each value is the type's binary form, read by its receive function (which checks a typmod,
        varchar(n) or numeric(p,s), as the input function does)."""
        columns = ", ".join(_quoted(c.name) for c in stage.columns)
        return f"COPY {_quoted(stage.name)} ({columns}) FROM STDIN" + (" (FORMAT BINARY)" if binary else "")

    def clear_stage(self, stage: sa.TableClause) -> Statement:
        return sa.delete(stage)

    def merge(
        self, table: sa.Table, stage: sa.TableClause, key: Sequence[str], mode: str, version: str | None = None
    ) -> Statement:
        """The staged rows into the table: INSERT ... SELECT (insert), with ON CONFLICT DO UPDATE
        (upsert; with a `version` column, DO UPDATE ... WHERE the staged row is newer), or UPDATE
        ... FROM (update); only the staged columns are written."""
        names = [c.name for c in stage.columns if c.name != STAGE_ORDINAL]
        if mode == "update":
            values = {c: stage.c[c] for c in names if c not in key}
            if not values:  # every column is in the key: nothing to change
                values = {key[0]: stage.c[key[0]]}
            return sa.update(table).values(values).where(_joined(table, stage, key))
        insert = postgresql.insert(table).from_select(names, sa.select(*(stage.c[n] for n in names)))
        return on_conflict_upsert(insert, key, names, table, version) if mode == "upsert" else insert

    def delete_staged(
        self, table: sa.Table, stage: sa.TableClause, key: Sequence[str], version: str | None = None
    ) -> Statement:
        """DELETE ... USING the stage; with a `version` column, only the rows the staged delete's
        version covers (a staged delete without version deletes whatever is stored)."""
        statement = sa.delete(table).where(_joined(table, stage, key))
        if version is not None:
            incoming = stage.c[version]
            statement = statement.where(sa.or_(incoming.is_(None), delete_condition(table.c[version], incoming)))
        return statement

    def probe_staged(
        self, table: sa.Table, stage: sa.TableClause, key: Sequence[str], version: str, delete: bool
    ) -> Statement:
        """(position, changes it?) for each staged row whose key is stored, by the condition the
        merge (or delete) applies; a staged row not returned is a key not stored."""
        stored, names = table.c[version], {c.name for c in stage.columns}
        incoming = stage.c[version] if version in names else None
        if delete:
            assert incoming is not None
            condition = sa.or_(incoming.is_(None), delete_condition(stored, incoming))
        else:
            condition = write_condition(stored, incoming)
        joined = stage.join(table, _joined(table, stage, key))
        return sa.select(stage.c[STAGE_ORDINAL], condition).select_from(joined)


class CreateStage(ExecutableDDLElement):
    def __init__(self, stage: sa.TableClause, table: sa.Table) -> None:
        self.stage = stage
        self.table = table


@compiles(CreateStage)
def _create_stage(element: CreateStage, compiler: Any, **kw: Any) -> str:
    preparer = compiler.preparer
    columns = ", ".join(preparer.quote_identifier(c.name) for c in element.stage.columns if c.name != STAGE_ORDINAL)
    if STAGE_ORDINAL in element.stage.c:
        columns += f", CAST(0 AS bigint) AS {preparer.quote_identifier(STAGE_ORDINAL)}"
    return (
        f"CREATE TEMPORARY TABLE IF NOT EXISTS {preparer.quote_identifier(element.stage.name)} "
        f"ON COMMIT DELETE ROWS AS SELECT {columns} FROM {preparer.format_table(element.table)} WITH NO DATA"
    )


def _quoted(name: str) -> str:
    """PostgreSQL's quoting for a statement run without parameters (COPY on the driver): the
    preparer's own doubles `%` for psycopg's placeholders, which only a parametrised execute undoes."""
    return '"' + name.replace('"', '""') + '"'


def _joined(table: sa.Table, stage: sa.TableClause, key: Sequence[str]) -> sa.ColumnElement[bool]:
    return sa.and_(*(table.c[k] == stage.c[k] for k in key))


def _native_item(item: ColumnType | None) -> bool:
    """Arrays of primitives are native arrays; arrays of arrays or documents stay JSONB."""
    return item is not None and item.kind not in (Kind.JSON, Kind.ARRAY)
