"""PostgreSQL's bulk path: rows streamed with psycopg's COPY into a temporary staging table, then
merged by one statement (the SQL comes from `dialects.postgres`; this module only executes it).

One COPY and one merge instead of one statement per row: the server parses and checks every value
as it would a bound parameter, and a constraint violation still fails the merge statement, with
the database's own SQLSTATE and reason, which the writer's bisection pins on a row as before.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import psycopg
import sqlalchemy as sa
from psycopg.types.json import Jsonb
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Connection

from ..dialects.postgres import PostgresDialect
from ..model import Kind, TableSpec

Adapt = Callable[[Any], Any]


def json_adapter(dumps: Callable[[Any], str]) -> Adapt:
    """JSON/JSONB values: psycopg needs the wrapper to dump a dict or list as a document."""
    return lambda value: None if value is None else Jsonb(value, dumps=dumps)


def adapters(
    dialect: PostgresDialect, spec: TableSpec, names: Sequence[str], dumps: Callable[[Any], str]
) -> list[Adapt | None]:
    """Per column of `names`: how a Python value becomes something COPY can write (None: as it is)."""
    document = json_adapter(dumps)
    result: list[Adapt | None] = []
    for name in names:
        column = spec.column(name)
        sa_type = dialect.sa_type(column.type) if column is not None else None
        if isinstance(sa_type, postgresql.JSONB | sa.JSON):
            result.append(document)
        elif column is not None and column.type.kind is Kind.STRING:
            result.append(_as_text)
        else:
            result.append(None)
    return result


def _as_text(value: Any) -> Any:
    """A boolean for a text column (schemaless type clashes) as PostgreSQL's own cast writes it,
    as on the executemany path; COPY's text form would be 't'/'f'."""
    if value.__class__ is bool:
        return "true" if value else "false"
    return value


def row_values(names: Sequence[str], adapt: Sequence[Adapt | None]) -> Callable[[Mapping[str, Any]], Sequence[Any]]:
    """A function from a row's values (which carry every one of `names`) to the values COPY writes,
    in order: one C-level lookup for the lot, adaptation only where a column needs it."""
    get = operator.itemgetter(*names)
    adapted = [(i, a) for i, a in enumerate(adapt) if a is not None]
    if len(names) == 1:
        only = adapt[0]
        return (lambda row: (get(row),)) if only is None else (lambda row: (only(get(row)),))
    if not adapted:
        return get  # type: ignore[return-value]

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
    rows: Iterable[Sequence[Any]],
    merge: Callable[[sa.TableClause], Any],
) -> None:
    """COPY `rows` (values in the order of `names`) into a stage and run `merge(stage)`."""
    stage = dialect.stage(spec, names)
    connection.execute(dialect.create_stage(stage, table))
    connection.execute(dialect.clear_stage(stage))  # left from an earlier chunk of this transaction
    copy_rows(connection, dialect.copy_into(stage), rows)
    connection.execute(merge(stage))


def copy_rows(connection: Connection, statement: str, rows: Iterable[Sequence[Any]]) -> None:
    """Stream rows through COPY on the transaction's own driver connection. A driver error is raised
    as SQLAlchemy's DBAPIError, so `dberrors` classifies it like any statement's."""
    raw = connection.connection.driver_connection
    try:
        with raw.cursor() as cursor, cursor.copy(statement) as copy:
            for row in rows:
                copy.write_row(row)
    except psycopg.Error as error:
        raise sa.exc.DBAPIError.instance(statement, None, error, psycopg.Error) from error
