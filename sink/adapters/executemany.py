"""Row-by-row DML on the driver's own `executemany` (sqlite3, PyMySQL, psycopg).

SQLAlchemy still builds and compiles each statement (quoting, dialect syntax), once per table
shape; only the per-row work moves here: SQLAlchemy's executemany builds a parameter dict per row,
looks up escaped names and type processors per row, which costs more than the database's own work
for small rows. Here a row becomes the statement's parameters (a tuple in order for a positional
driver, a dict by rendered name for a named one), with the type processors SQLAlchemy would apply
(a TypeDecorator's `process_bind_param` included), so what lands is the same; `rows_binder` builds
them for all the rows of a statement at once, column by column.

PyMySQL turns an `INSERT … VALUES … ON DUPLICATE KEY UPDATE` executemany into multi-row statements
of at most `Cursor.max_stmt_length` bytes (1 MB, below MariaDB's default `max_allowed_packet` of
16 MB); sqlite3 runs the prepared statement once per row in C; psycopg pipelines the statements.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from itertools import repeat
from operator import itemgetter, methodcaller
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Dialect

from ..errors import RecordRejected

Process = Callable[[Any], Any]
Parameters = tuple[Any, ...] | dict[str, Any]
Binder = Callable[[Sequence[Mapping[str, Any]]], list[Parameters]]
DOCUMENTS = (dict, list)


@dataclass(frozen=True, slots=True)
class DriverStatement:
    sql: str
    columns: tuple[str, ...]  # the row value each parameter takes (in order, for a positional driver)
    processors: tuple[Process | None, ...]  # SQLAlchemy's bind processor of each parameter
    names: tuple[str, ...] | None  # the parameters' names as rendered, for a named paramstyle


def compile_for_driver(
    statement: Any, dialect: Dialect, column_keys: Sequence[str], bind_columns: Mapping[str, str]
) -> DriverStatement:
    """`statement` compiled once. `bind_columns` maps the statement's own bind names (`v0`, `k0`,
    …) to columns; any other bind is named after its column. A named paramstyle sends each value
    under the name SQLAlchemy rendered (it escapes spaces, `%`, quotes… and keeps names apart that
    would collide once escaped: `user id` and `user_id`)."""
    compiled = statement.compile(dialect=dialect, column_keys=list(column_keys))
    if compiled.positional:
        binds = list(compiled.positiontup or ())  # bind names, in the order of the placeholders
        rendered = None
    else:
        binds = list(compiled.binds)
        escaped = compiled.escaped_bind_names or {}
        rendered = tuple(escaped.get(name, name) for name in binds)
    processors = tuple(compiled.binds[name].type.dialect_impl(dialect).bind_processor(dialect) for name in binds)
    return DriverStatement(str(compiled), tuple(bind_columns.get(n, n) for n in binds), processors, rendered)


def row_binder(
    statement: DriverStatement,
    bind: Process,
    bind_classes: Collection[type],
    scalar_columns: Collection[str],
    array_columns: Collection[str] = (),
) -> Callable[[Mapping[str, Any]], Parameters]:
    """A function from a row's values to the statement's parameters: the dialect's `bind` for the
    classes it adapts, then SQLAlchemy's processor. A dict or list for a column that is not JSON is
    the row's error (drivers fail on it in ways that also mean "our bug"); so is a single value for
    a native array column (`array_columns`), which SQLAlchemy's ARRAY processor would iterate:
    'abc' was stored as {a,b,c}, '' as {}."""
    positions = [
        (column, processor, column in scalar_columns, column in array_columns)
        for column, processor in zip(statement.columns, statement.processors, strict=True)
    ]

    names = statement.names

    def parameters(values: Mapping[str, Any]) -> Parameters:
        out = []
        for column, processor, scalar, array in positions:
            value = values.get(column)
            kind = value.__class__
            if kind in bind_classes:
                value = bind(value)
            elif scalar and kind in DOCUMENTS:
                raise nested_value_refused(column)
            elif array and kind not in ARRAY_VALUES:
                raise single_value_refused(column)
            out.append(value if processor is None else processor(value))
        return tuple(out) if names is None else dict(zip(names, out, strict=True))

    return parameters


class _Refused(Exception):
    """A dict or list in a column that is not JSON, or a single value in an array column: the
    row-wise binder names its row's column."""


def rows_binder(
    statement: DriverStatement,
    bind: Process,
    bind_classes: Collection[type],
    scalar_columns: Collection[str],
    array_columns: Collection[str] = (),
) -> Binder:
    """`row_binder` for a whole list of rows, built column by column: the classes present in a
    column decide once whether any value needs `bind` or is a refused document, and `bind` and the
    processors run by `map`. The row-wise loop's work per value cost about 5 us of a 10-column row
    (MariaDB, SQLite). A refused document or a failing value makes the row-wise binder run over the
    rows instead, so the error is the first failing row's, as before (the writer then isolates it)."""
    one_row = row_binder(statement, bind, bind_classes, scalar_columns, array_columns)
    columns, names = statement.columns, statement.names
    bound = frozenset(bind_classes)
    refused = frozenset(DOCUMENTS) - bound
    plan = [
        (processor, refused if column in scalar_columns else frozenset(), column in array_columns)
        for column, processor in zip(columns, statement.processors, strict=True)
    ]
    picks = [itemgetter(column) for column in columns]
    gets = [methodcaller("get", column) for column in columns]

    def column_parameters(
        values: Sequence[Any], processor: Process | None, refuses: frozenset[type], array: bool
    ) -> Sequence[Any]:
        classes = set(map(type, values))
        if not refuses.isdisjoint(classes) or (array and not classes <= ARRAY_VALUES):
            raise _Refused
        if classes <= bound:
            values = list(map(bind, values))
        elif not bound.isdisjoint(classes):
            values = [bind(v) if v.__class__ in bound else v for v in values]
        return values if processor is None else list(map(processor, values))

    def parameters_of(rows: Sequence[Mapping[str, Any]]) -> list[Parameters]:
        if not rows or not columns:
            return [one_row(row) for row in rows]
        try:  # every row carries every column: the usual case (no tuple per row, less for the collector)
            picked = [list(map(pick, rows)) for pick in picks]
        except KeyError:
            picked = [list(map(get, rows)) for get in gets]
        try:
            by_column = [column_parameters(v, *how) for v, how in zip(picked, plan, strict=True)]
        except Exception:  # the row-wise binder raises the first failing row's error, as it always did
            return [one_row(row) for row in rows]
        if names is None:
            return list(zip(*by_column, strict=True))
        return list(map(dict, map(zip, repeat(names), zip(*by_column, strict=True))))

    return parameters_of


def execute_many(connection: Connection, statement: DriverStatement, parameters: list[Parameters]) -> None:
    """One executemany on the transaction's connection; errors are SQLAlchemy's DBAPIError, which
    `dberrors` classifies like any statement's."""
    if parameters:
        connection.exec_driver_sql(statement.sql, parameters)


ARRAY_VALUES = frozenset({list, tuple, type(None)})  # what a native array column takes


def single_value_refused(column: str) -> RecordRejected:
    """The row's error for a value that is no array (a str, a number…) bound for a native array column."""
    return RecordRejected(
        f"a single value (not an array) for array column {column!r}",
        code="single value for an array column",
        column=column,
    )


def nested_value_refused(column: str) -> RecordRejected:
    """The row's error for a dict or list bound for a column that is not JSON."""
    return RecordRejected(
        f"a nested value (object or array) for column {column!r}, which is not JSON",
        code="nested value for a scalar column",
        column=column,
    )


def _base_type(column_type: sa.types.TypeEngine[Any]) -> sa.types.TypeEngine[Any]:
    return getattr(column_type, "impl_instance", column_type)  # a TypeDecorator's own type (JsonText)


def holds_documents(column_type: sa.types.TypeEngine[Any]) -> bool:
    return isinstance(_base_type(column_type), sa.JSON | sa.ARRAY)


def array_columns(table: sa.Table, names: Sequence[str]) -> set[str]:
    """Those of `names` that are native array columns (PostgreSQL's ARRAY)."""
    return {n for n in names if isinstance(_base_type(table.c[n].type), sa.ARRAY)}
