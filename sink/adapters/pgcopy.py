"""PostgreSQL's bulk path: rows streamed with psycopg's COPY into a temporary staging table, then
merged by one statement (the SQL comes from `dialects.postgres`; this module only executes it).

One COPY and one merge instead of one statement per row: the server parses and checks every value
as it would a bound parameter, and a constraint violation still fails the merge statement, with
the database's own SQLSTATE and reason, which the writer's bisection pins on a row as before.

COPY is binary, with the stage's column types given to psycopg (`set_types`), for every chunk of
rows that `pgbinary.binary_safe` finds lands exactly as by text; text otherwise. Binary saves most
of the client's CPU per value (text formatting is about ten times its cost).
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from itertools import islice
from typing import Any

import psycopg
import sqlalchemy as sa
from psycopg.types.json import Jsonb
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Connection

from ..dialects.postgres import PostgresDialect
from ..model import Kind, TableSpec
from .pgbinary import binary_safe

Adapt = Callable[[Any], Any]
Row = Sequence[Any]

# Rows per COPY: what one chunk holds in memory for the binary check; each chunk is judged alone.
COPY_CHUNK_ROWS = 5000


def json_adapter(dumps: Callable[[Any], str]) -> Adapt:
    """JSON/JSONB values: psycopg needs the wrapper to dump a dict or list as a document."""
    return lambda value: None if value is None else Jsonb(value, dumps=dumps)


def adapters(
    dialect: PostgresDialect, spec: TableSpec, names: Sequence[str], dumps: Callable[[Any], str]
) -> list[Adapt | None]:
    """Per column of `names`: how a Python value becomes something COPY can write (None: as it is).
    Booleans for text columns are spelled out per chunk, by `copy_rows`, not here per value."""
    document = json_adapter(dumps)
    result: list[Adapt | None] = []
    for name in names:
        column = spec.column(name)
        sa_type = dialect.sa_type(column.type) if column is not None else None
        result.append(document if isinstance(sa_type, postgresql.JSONB | sa.JSON) else None)
    return result


def text_columns(spec: TableSpec, names: Sequence[str]) -> list[int]:
    """The positions in `names` of the spec's string columns."""
    return [i for i, name in enumerate(names) if (c := spec.column(name)) is not None and c.type.kind is Kind.STRING]


def booleans_spelled_out(rows: Sequence[Row], columns: Sequence[int]) -> Sequence[Row]:
    """A boolean for a text column (schemaless type clashes) as PostgreSQL's own cast writes it,
    'true'/'false', as on the executemany path; COPY's text form would be 't'/'f'. Only text COPY
    needs this: a chunk goes binary only if its booleans are in boolean columns, which take them
    as they are."""
    spelled = [i for i in columns if any(v.__class__ is bool for v in map(operator.itemgetter(i), rows))]
    if not spelled:
        return rows

    def spell(row: Row) -> Row:
        out = list(row)
        for i in spelled:
            if out[i].__class__ is bool:
                out[i] = "true" if out[i] else "false"
        return out

    return [spell(row) for row in rows]


def row_values(names: Sequence[str], adapt: Sequence[Adapt | None]) -> Callable[[Mapping[str, Any]], Sequence[Any]]:
    """A function from a row's values (which carry every one of `names`) to the values COPY writes,
    in order: one C-level lookup for the lot, adaptation only where a column needs it."""
    get = operator.itemgetter(*names)
    adapted = [(i, a) for i, a in enumerate(adapt) if a is not None]
    if len(names) == 1:
        only = adapt[0]
        return (lambda row: (get(row),)) if only is None else (lambda row: (only(get(row)),))
    if not adapted:
        return get

    def values(row: Mapping[str, Any]) -> Sequence[Any]:
        out = list(get(row))
        for index, convert in adapted:
            out[index] = convert(out[index])
        return out

    return values


def stage_and_merge(
    connection: Connection,
    dialect: PostgresDialect,
    table: sa.Table,
    spec: TableSpec,
    names: Sequence[str],
    rows: Iterable[Row],
    merge: Callable[[sa.TableClause], Any],
) -> None:
    """COPY `rows` (values in the order of `names`) into a stage and run `merge(stage)`."""
    connection.execute(merge(staged(connection, dialect, table, spec, names, rows)))


def stage_probe_and_merge(
    connection: Connection,
    dialect: PostgresDialect,
    table: sa.Table,
    spec: TableSpec,
    names: Sequence[str],
    rows: Iterable[Row],
    probe: Callable[[sa.TableClause], Any],
    merge: Callable[[sa.TableClause], Any],
) -> dict[int, bool]:
    """`stage_and_merge` for a versioned plan: each row carries its position as a last value (the
    stage's ordinal column); before the merge, `probe(stage)` answers (position, changes it?) for
    the staged rows whose key is stored. Returns those answers by position."""
    stage = staged(connection, dialect, table, spec, names, rows, ordinal=True)
    found = _by_position(connection.execute(probe(stage)))
    connection.execute(merge(stage))
    return found


def stage_and_merge_reporting(
    connection: Connection,
    dialect: PostgresDialect,
    table: sa.Table,
    spec: TableSpec,
    names: Sequence[str],
    rows: Iterable[Row],
    merge: Callable[[sa.TableClause], Any],
) -> dict[int, bool]:
    """`stage_and_merge` for a merge that answers (position, inserted?) per staged row: each row
    carries its position as a last value (the stage's ordinal column). Returns the answers by
    position."""
    stage = staged(connection, dialect, table, spec, names, rows, ordinal=True)
    return _by_position(connection.execute(merge(stage)))


def _by_position(answers: sa.CursorResult[Any, Any]) -> dict[int, bool]:
    """A statement's (position, yes/no) rows by position."""
    return {int(n): bool(answer) for n, answer in answers.tuples()}


def staged(
    connection: Connection,
    dialect: PostgresDialect,
    table: sa.Table,
    spec: TableSpec,
    names: Sequence[str],
    rows: Iterable[Row],
    ordinal: bool = False,
) -> sa.TableClause:
    """The stage for rows of `names` (plus a position column with `ordinal`), ready and holding
    `rows`, streamed by COPY in chunks."""
    stage = dialect.stage(spec, names, ordinal=ordinal)
    types = ready_stage(connection, dialect, stage, table)
    texts = text_columns(spec, names)
    for chunk in chunks(rows, COPY_CHUNK_ROWS):
        copy_rows(connection, dialect, stage, types, chunk, texts)
    return stage


def ready_stage(
    connection: Connection, dialect: PostgresDialect, stage: sa.TableClause, table: sa.Table
) -> list[int] | None:
    """Create the stage if this session has none, else empty it of an earlier statement's rows (of
    this transaction); return its column types (oids, in the order of its columns).

    The types are read from the catalogue on every use, in the round trip that would otherwise be
    an idle CREATE IF NOT EXISTS. A cache could outlive its stage: a rollback drops a stage created
    in that transaction, the next one is made from the target as it is then (altered, maybe), and
    binary values of the old types would be refused with SQLSTATE 08P01, which reads as a lost
    connection and would be retried for ever."""
    types = stage_types(connection, dialect, stage)
    if types is None:
        connection.execute(dialect.create_stage(stage, table))
        return stage_types(connection, dialect, stage)
    connection.execute(dialect.clear_stage(stage))
    return types


def stage_types(connection: Connection, dialect: PostgresDialect, stage: sa.TableClause) -> list[int] | None:
    """The type oids of the stage's columns, or None when this session has no such stage."""
    found: dict[str, int] = dict(connection.execute(dialect.stage_types(stage)).tuples().all())
    if not found:
        return None
    return [found[column.name] for column in stage.columns]


def chunks(rows: Iterable[Row], size: int) -> Iterator[list[Row]]:
    """`rows` in lists of `size` (the last one shorter), one COPY each."""
    iterator = iter(rows)
    while chunk := list(islice(iterator, size)):
        yield chunk


def copy_rows(
    connection: Connection,
    dialect: PostgresDialect,
    stage: sa.TableClause,
    types: Sequence[int] | None,
    rows: Sequence[Row],
    texts: Sequence[int] = (),
) -> None:
    """Stream rows through one COPY on the transaction's own driver connection: binary where that
    lands the same as text, else text (with booleans for the `texts` columns spelled out). A
    driver error is raised as SQLAlchemy's DBAPIError, so `dberrors` classifies it like any
    statement's."""
    binary = types is not None and binary_safe(types, rows)
    if not binary:
        rows = booleans_spelled_out(rows, texts)
    statement = dialect.copy_into(stage, binary=binary)
    raw = connection.connection.driver_connection
    assert raw is not None, "a connection in a transaction has its driver connection"
    try:
        with raw.cursor() as cursor, cursor.copy(statement) as copy:
            if binary:
                copy.set_types(types)
            for row in rows:
                copy.write_row(row)
    except psycopg.Error as error:
        raise sa.exc.DBAPIError.instance(statement, None, error, psycopg.Error) from error
