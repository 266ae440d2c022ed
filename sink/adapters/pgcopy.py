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
from .executemany import ARRAY_VALUES, DOCUMENTS, nested_value_refused, single_value_refused
from .pgbinary import binary_safe

Adapt = Callable[[Any], Any]
Row = Sequence[Any]

# Rows per COPY: what one chunk holds in memory for the binary check; each chunk is judged alone.
COPY_CHUNK_ROWS = 5000

# Binary COPY's fixed parts (PostgreSQL, COPY, "Binary Format"): the signature, flags 0 and no header
# extension; the trailer, a field count of -1.
BINARY_HEADER = b"PGCOPY\n\xff\r\n\x00" + bytes(8)
BINARY_TRAILER = b"\xff\xff"
COPY_BLOCK_BYTES = 128 * 1024  # binary rows sent per block (psycopg's largest block sent unsplit)


def _binary_row_formatter() -> Callable[[Row, Any, bytearray], None] | None:
    """psycopg's own binary row formatter (C in psycopg[binary]), the one `Copy.write_row` calls;
    None where this psycopg keeps it elsewhere (rows then go through `write_row`)."""
    try:
        from psycopg import _copy_base
    except ImportError:  # pragma: no cover - a psycopg laid out otherwise
        return None
    return getattr(_copy_base, "format_row_binary", None)


FORMAT_BINARY_ROW = _binary_row_formatter()


def json_adapter(dumps: Callable[[Any], str]) -> Adapt:
    """JSON/JSONB values: psycopg needs the wrapper to dump a dict or list as a document."""
    return lambda value: None if value is None else Jsonb(value, dumps=dumps)


def adapters(
    dialect: PostgresDialect, spec: TableSpec, names: Sequence[str], dumps: Callable[[Any], str]
) -> list[Adapt | None]:
    """Per column of `names`: how a Python value becomes something COPY can write (None: as it is).
    Values of other classes for text columns are spelled out per chunk, by `copy_rows`, not here
    per value."""
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


def scalar_columns(spec: TableSpec, names: Sequence[str]) -> list[tuple[int, str]]:
    """The positions and names in `names` of the spec's columns that hold neither documents nor
    native arrays (a dict or list there is the row's error)."""
    return [
        (i, name)
        for i, name in enumerate(names)
        if (c := spec.column(name)) is not None and c.type.kind not in (Kind.JSON, Kind.ARRAY)
    ]


def array_columns(spec: TableSpec, names: Sequence[str]) -> list[tuple[int, str]]:
    """The positions and names in `names` of the spec's native array columns."""
    return [
        (i, name) for i, name in enumerate(names) if (c := spec.column(name)) is not None and c.type.kind is Kind.ARRAY
    ]


def refuse_single_values(rows: Sequence[Row], columns: Sequence[tuple[int, str]]) -> None:
    """A value that is no array for an array column is that row's error, as on the executemany path
    (where SQLAlchemy's ARRAY processor iterated a str: 'abc' was {a,b,c}). Text COPY would pass a
    str on for the server to parse as an array literal ('{p,q}' an array, 'abc' refused)."""
    for i, name in columns:
        if not set(map(type, map(operator.itemgetter(i), rows))) <= ARRAY_VALUES:
            raise single_value_refused(name)


def refuse_documents(rows: Sequence[Row], columns: Sequence[tuple[int, str]]) -> None:
    """A dict or list for a scalar column is that row's error, as on the executemany path. Text COPY
    would otherwise write a list as an array literal ('{1,2}') into a text, char or bytea column,
    and a dict as psycopg's own adaptation error. (Binary never meets one: no rule takes them.)"""
    documents = frozenset(DOCUMENTS)
    for i, name in columns:
        if not documents.isdisjoint(set(map(type, map(operator.itemgetter(i), rows)))):
            raise nested_value_refused(name)


# Values for a text column that text COPY would write as psycopg's text dumper spells them, while
# the executemany path (small plans, and the isolation's prefixes after a rejected batch) binds them
# with their own type and the server casts them to text on assignment: '5.0' vs '5', 'nan' vs 'NaN',
# '1E+5' vs '100000', a UUID without its dashes, an aware datetime in UTC vs in the session's zone,
# numpy's False as 'f'. So one value would land otherwise depending on the rest of its batch. Such
# values are spelled by that very cast, one query per class and column (only chunks holding type
# clashes pay for it: `PostgresDialect.text_cast`), with the session's settings (TimeZone,
# DateStyle, extra_float_digits), as the bound parameter would be. A str, an int (int8out's and
# numeric_out's text is str's) and None are written alike; a bool is spelled here.
AsText = Callable[[list[Any]], list[str]]
NOT_SPELLED = frozenset({str, type(None), int})


def _cast_group(value: Any) -> tuple[type, bool]:
    """The values one cast query takes together: of one class (psycopg types a list by its first
    item), the naive datetimes or times apart from the aware ones (another type)."""
    return value.__class__, getattr(value, "tzinfo", None) is None


def spelled_out(rows: Sequence[Row], columns: Sequence[int], as_text: AsText | None = None) -> Sequence[Row]:
    """Values other than str in the text `columns` spelled as PostgreSQL's cast to text writes them:
    booleans 'true'/'false' here, others by `as_text` (the server's cast; without it they stay as
    they are). The chunk as it is when there is nothing to spell. Only text COPY needs
    this: a chunk goes binary only if its text columns hold nothing but str."""
    changes: dict[int, dict[int, Any]] = {}  # row -> column -> text
    for i in columns:
        column = list(map(operator.itemgetter(i), rows))
        if set(map(type, column)) <= NOT_SPELLED:
            continue
        groups: dict[Any, list[int]] = {}
        for n, value in enumerate(column):
            if value.__class__ is bool:
                changes.setdefault(n, {})[i] = "true" if value else "false"
            elif as_text is not None and value.__class__ not in NOT_SPELLED and not isinstance(value, str):
                groups.setdefault(_cast_group(value), []).append(n)
        for positions in groups.values():
            assert as_text is not None  # groups are made only with it
            for n, text in zip(positions, as_text([column[n] for n in positions]), strict=True):
                changes.setdefault(n, {})[i] = text
    if not changes:
        return rows
    out = [list(row) for row in rows]
    for n, spelled in changes.items():
        for i, text in spelled.items():
            out[n][i] = text
    return out


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
    texts, scalars, arrays = text_columns(spec, names), scalar_columns(spec, names), array_columns(spec, names)
    for chunk in chunks(rows, COPY_CHUNK_ROWS):
        copy_rows(connection, dialect, stage, types, chunk, texts, scalars, arrays)
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
    scalars: Sequence[tuple[int, str]] = (),
    arrays: Sequence[tuple[int, str]] = (),
) -> None:
    """Stream rows through one COPY on the transaction's own driver connection: binary where that
    lands the same as text, else text (a dict or list for one of the `scalars` columns refused,
    other values for the `texts` columns spelled out). A driver error is raised as SQLAlchemy's
    DBAPIError, so `dberrors` classifies it like any statement's."""
    binary = types is not None and binary_safe(types, rows)
    statement = dialect.copy_into(stage, binary=binary)
    raw = connection.connection.driver_connection
    assert raw is not None, "a connection in a transaction has its driver connection"
    try:
        with raw.cursor() as cursor:
            if not binary:
                refuse_documents(rows, scalars)
                refuse_single_values(rows, arrays)
                cast = dialect.text_cast()
                rows = spelled_out(rows, texts, lambda values: [t for (t,) in cursor.execute(cast, [values])])
            with cursor.copy(statement) as copy:
                if binary:
                    copy.set_types(types)
                    write_binary(copy, rows)
                else:
                    for row in rows:
                        copy.write_row(row)
    except psycopg.Error as error:
        raise sa.exc.DBAPIError.instance(statement, None, error, psycopg.Error) from error


def write_binary(copy: psycopg.Copy, rows: Iterable[Row]) -> None:
    """`rows` through a binary COPY whose types are set, as data blocks: psycopg's row formatter
    over the rows into one buffer, without the two Python calls `Copy.write_row` makes around it per
    row (a third of the client's CPU for a COPY of the usual rows, measured). The same bytes."""
    formatter = getattr(copy, "formatter", None)
    transformer = getattr(formatter, "transformer", None)
    if FORMAT_BINARY_ROW is None or transformer is None:
        for row in rows:
            copy.write_row(row)
        return
    block = bytearray(BINARY_HEADER)
    for row in rows:
        FORMAT_BINARY_ROW(row, transformer, block)
        if len(block) >= COPY_BLOCK_BYTES:
            copy.write(block)
            block = bytearray()
    block += BINARY_TRAILER
    copy.write(block)
