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
from .type_registry import (
    Reads,
    SaType,
    TypeEntry,
    TypeRegistry,
    decimal_bounds,
    decimal_digits,
    double_precision,
    length,
    plain,
    second_digits,
    second_digits_of,
    single_precision,
    unzoned,
    zoned,
)

STAGE_PREFIX = "_sink_stage_"
# With a version field, a stage has one more column: each staged row's position in its step, so a
# probe of the stage against the table (`probe_staged`) can say row by row what the merge will do.
STAGE_ORDINAL = "_sink_n"
# The names a reporting merge gives its written rows and their flag (`merge_reporting`).
WRITTEN_CTE, INSERTED_FLAG = "_sink_written", "_sink_inserted"


def _string(ct: ColumnType) -> SaType:
    return sa.String(ct.length) if ct.length else sa.Text()


NUMERIC_MAX_PRECISION = 1000  # NUMERIC(p, s): 1 <= p <= 1000, and (portably) 0 <= s <= p


def _decimal(ct: ColumnType) -> SaType:
    """NUMERIC(p, s); past 1000 digits the precision is cut to 1000, as Debezium's JDBC sink cuts
    it to the dialect's maximum: a value that needs more digits fails alone (SQLSTATE 22003),
    never rounded. Without a scale (or one past 1000), NUMERIC: every decimal, exactly."""
    bounds = decimal_bounds(ct)
    if bounds is None or bounds[1] > NUMERIC_MAX_PRECISION:
        return sa.Numeric()
    precision, scale = bounds
    return sa.Numeric(min(precision or NUMERIC_MAX_PRECISION, NUMERIC_MAX_PRECISION), scale)


def _time(ct: ColumnType) -> SaType:
    return postgresql.TIME(precision=second_digits(ct))


def _timestamp(ct: ColumnType) -> SaType:
    return postgresql.TIMESTAMP(timezone=ct.kind is Kind.TIMESTAMP, precision=second_digits(ct))


def _document(_ct: ColumnType) -> SaType:
    return postgresql.JSONB(none_as_null=True)


def _array(ct: ColumnType) -> SaType:
    """Arrays of primitives are native arrays; arrays of arrays or documents stay JSONB."""
    if ct.item is None or ct.item.kind in (Kind.JSON, Kind.ARRAY):
        return _document(ct)
    return postgresql.ARRAY(TYPES.column_type(ct.item))


def _item(t: Any) -> dict[str, Any]:
    return {"item": TYPES.neutral_type(t.item_type)}


_digits = second_digits_of("precision", undeclared=6)

# Every type of PostgreSQL: the column each kind becomes, and the columns that read back as it.
TYPES = TypeRegistry(
    "PostgreSQL",
    TypeEntry(Kind.INT8, plain(sa.SmallInteger)),  # no one-byte integer: reads back as int16
    TypeEntry(Kind.INT16, plain(sa.SmallInteger), reads=(Reads(sa.SmallInteger),)),
    TypeEntry(Kind.INT32, plain(sa.Integer), reads=(Reads(sa.Integer),)),
    TypeEntry(Kind.INT64, plain(sa.BigInteger), reads=(Reads(sa.BigInteger),)),
    TypeEntry(Kind.FLOAT32, plain(sa.REAL), reads=(Reads(sa.REAL), Reads(sa.Float, when=single_precision))),
    TypeEntry(Kind.FLOAT64, plain(sa.Double), reads=(Reads(sa.Double), Reads(sa.Float, when=double_precision))),
    TypeEntry(Kind.BOOLEAN, plain(sa.Boolean), reads=(Reads(sa.Boolean),)),
    TypeEntry(Kind.STRING, _string, reads=(Reads(sa.Text), Reads(sa.String, keeps=length))),
    TypeEntry(Kind.BYTES, plain(postgresql.BYTEA), reads=(Reads(sa.LargeBinary),)),  # bytes(n) unbounded
    TypeEntry(Kind.DECIMAL, _decimal, reads=(Reads(sa.Numeric, keeps=decimal_digits),)),
    TypeEntry(Kind.DATE, plain(sa.Date), reads=(Reads(sa.Date),)),
    # TIME(p), TIMESTAMP(p): the type's fractional-second digits (6 when it names none, as a column
    # declared without any has).
    TypeEntry(Kind.TIME, _time, reads=(Reads(sa.Time, keeps=_digits),)),
    TypeEntry(Kind.TIMESTAMP, _timestamp, reads=(Reads(sa.DateTime, when=zoned, keeps=_digits),)),  # timestamptz
    TypeEntry(Kind.LOCAL_TIMESTAMP, _timestamp, reads=(Reads(sa.DateTime, when=unzoned, keeps=_digits),)),
    TypeEntry(Kind.UUID, plain(postgresql.UUID), reads=(Reads(sa.Uuid),)),
    TypeEntry(Kind.JSON, _document, reads=(Reads(sa.JSON),)),  # JSONB, and JSON made by hand
    TypeEntry(Kind.ARRAY, _array, reads=(Reads(postgresql.ARRAY, keeps=_item),)),
)


class PostgresDialect(Dialect):
    name = "postgresql"
    # NAMEDATALEN - 1: longer names are cut without an error, which would merge or misplace columns.
    identifiers = IdentifierRules(
        "PostgreSQL",
        max_length=63,
        length_unit="bytes",
        reserved_columns=frozenset({"tableoid", "xmin", "cmin", "xmax", "cmax", "ctid"}),
        reserved_schema_prefix="pg_",
        reserved_schemas=frozenset({"information_schema"}),
        staging_columns=frozenset({STAGE_ORDINAL, WRITTEN_CTE, INSERTED_FLAG}),
    )
    max_columns = 1600
    bulk_min_rows = 16  # below this, one executemany is as fast as COPY + merge (benchmarks/README.md)
    types = TYPES

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
        positions as a last column), in the session's temporary schema. Its name is derived from the
        table (schema and name: tables of one name in two schemas get two stages), the columns and
        their types, so a table that evolved gets a fresh stage."""
        shape = repr((spec.schema, spec.name, [(n, str(c.type) if (c := spec.column(n)) else "None") for n in names]))
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

    def text_cast(self) -> str:
        """For the driver, one array parameter: its values as the server's cast to text writes
        them, in order (with the session's TimeZone, DateStyle and extra_float_digits)."""
        return "SELECT v::text FROM unnest(%s) WITH ORDINALITY AS u(v, n) ORDER BY n"

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

    def reports_merges(self, key: Sequence[str], names: Sequence[str]) -> bool:
        """Whether an upsert merge of `names` can tell inserts from updates (`merge_reporting`): not
        without a key to join by, nor when every column is in the key (DO NOTHING returns no row
        for a conflict)."""
        return bool(key) and any(name not in key for name in names)

    def merge_reporting(self, table: sa.Table, stage: sa.TableClause, key: Sequence[str]) -> Statement:
        """The upsert merge of a stage with positions (`STAGE_ORDINAL`), answering (position,
        inserted?) for each staged row it wrote: its RETURNING (xmax = 0) (0 for a row version
        nothing replaced yet: a fresh insert), joined back to the stage by key (`reports_merges`
        says when it can)."""
        merge = self.merge(table, stage, key, "upsert")
        inserted = sa.literal_column("(xmax = 0)", sa.Boolean).label(INSERTED_FLAG)
        written = merge.returning(*(table.c[k] for k in key), inserted).cte(WRITTEN_CTE)  # type: ignore[attr-defined]
        joined = stage.join(written, sa.and_(*(stage.c[k] == written.c[k] for k in key)))
        return sa.select(stage.c[STAGE_ORDINAL], written.c[INSERTED_FLAG]).select_from(joined)

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
