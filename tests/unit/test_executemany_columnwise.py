"""The executemany binder builds a chunk's parameters column by column (`rows_binder`): each row
must get exactly what a straightforward row-by-row construction (the binder it replaced) gives it,
for every kind of docs/types.md, NULLs, mixed classes in a column and missing keys, on each
dialect's statements; a refused value raises what the row-by-row construction raises for the first
failing row (a nested value names the same column), so the writer's bisection rejects the same row.
The statements are compiled with SQLAlchemy's own dialects: no database is needed."""

from __future__ import annotations

import datetime as dt
import decimal
import functools
import itertools
import math
import random
import types
import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import pytest
from sqlalchemy.dialects import mysql, postgresql, sqlite

from sink.adapters.executemany import (
    DOCUMENTS,
    DriverStatement,
    Parameters,
    compile_for_driver,
    holds_documents,
    nested_value_refused,
    rows_binder,
)
from sink.dialects import Dialect, MysqlDialect, PostgresDialect, SqliteDialect
from sink.errors import RecordRejected
from sink.model import Column, ColumnType, Kind, TableSpec

DIALECTS = [
    PostgresDialect(postgresql.psycopg.dialect()),  # type: ignore[no-untyped-call]
    SqliteDialect(sqlite.dialect()),
    MysqlDialect(mysql.pymysql.dialect()),
]
PLUS_2 = dt.timezone(dt.timedelta(hours=2))


class Moment(dt.datetime):
    """A datetime subclass: not of a class the dialects bind by exact class."""


def ct(kind: Kind, **kw: Any) -> ColumnType:
    return ColumnType(kind, **kw)


# Each kind of docs/types.md with values of the classes the decoders give, and of other classes a
# column may meet (a bool in an int column, an int in a float column, text in a JSON column...).
KINDS: dict[str, tuple[ColumnType, tuple[Any, ...]]] = {
    "int8": (ct(Kind.INT8), (-128, 0, True)),
    "int16": (ct(Kind.INT16), (32767, False)),
    "int32": (ct(Kind.INT32), (-2_147_483_648, 7)),
    "int64": (ct(Kind.INT64), (9_223_372_036_854_775_807, -1, True)),
    "float32": (ct(Kind.FLOAT32), (1.5, 2, -0.0)),
    "float64": (ct(Kind.FLOAT64), (3.141592653589793, 1e308, 5, decimal.Decimal("2.5"))),
    "boolean": (ct(Kind.BOOLEAN), (True, False)),
    "string": (ct(Kind.STRING), ("grüße 🎉 ' \" \\ %s :x", "")),
    "string_50": (ct(Kind.STRING, length=50), ("bounded",)),
    "bytes": (ct(Kind.BYTES), (b"\x00\xff\x80binary'", b"")),
    "decimal": (ct(Kind.DECIMAL, precision=10, scale=2), (decimal.Decimal("-12345678.90"), decimal.Decimal("0.10"))),
    "variable_decimal": (ct(Kind.DECIMAL), (decimal.Decimal("3.14159265358979323846"), decimal.Decimal("1E+3"))),
    "date": (ct(Kind.DATE), (dt.date(2024, 2, 29), dt.date(1, 1, 1))),
    "time": (ct(Kind.TIME, precision=6), (dt.time(1, 2, 3, 456789), dt.time(23, 59, 58, 123000))),
    "timestamp": (
        ct(Kind.TIMESTAMP, precision=6),
        (
            dt.datetime(2024, 3, 1, 12, 0, 0, 123000, tzinfo=dt.UTC),
            dt.datetime(1999, 12, 31, 23, 59, 59, 999999, PLUS_2),
            Moment(2024, 1, 1, tzinfo=dt.UTC),
        ),
    ),
    "local_timestamp": (
        ct(Kind.LOCAL_TIMESTAMP, precision=6),
        (dt.datetime(2024, 3, 1, 12, 0, 0, 123000), Moment(1970, 1, 1, 0, 0, 0, 1)),
    ),
    "uuid": (ct(Kind.UUID), (uuid.UUID("12345678-1234-5678-1234-567812345678"),)),
    "json": (ct(Kind.JSON), ({"a": 1, "b": [1, 2.5, "x", None, True]}, [{"a": 1}], "text", 3)),
    "array": (ct(Kind.ARRAY, item=ct(Kind.INT64)), ([1, -2, 9_007_199_254_740_993], [])),
}
KEY = Column("id", ct(Kind.INT64), nullable=False)
SPEC = TableSpec("t", (KEY, *(Column(name, type_) for name, (type_, _) in KINDS.items())), ("id",))
NAMES = SPEC.column_names


@functools.cache
def statements(dialect: Dialect) -> dict[str, DriverStatement]:
    """The statements the store binds rows for (db.py: `_write_rows`, `_delete`)."""
    table, key, sa_dialect = dialect.table(SPEC), SPEC.primary_key, dialect.sa_dialect
    keys = {f"k{i}": name for i, name in enumerate(key)}
    values = {f"v{i}": name for i, name in enumerate(NAMES)}
    return {
        "insert": compile_for_driver(dialect.insert(table), sa_dialect, NAMES, {}),
        "upsert": compile_for_driver(dialect.upsert(table, key, NAMES), sa_dialect, NAMES, {}),
        "update": compile_for_driver(dialect.update(table, key, NAMES), sa_dialect, (), values | keys),
        "delete": compile_for_driver(dialect.delete(table, key), sa_dialect, (), keys),
    }


@functools.cache
def scalar_columns(dialect: Dialect) -> frozenset[str]:
    return frozenset(c.name for c in dialect.table(SPEC).columns if not holds_documents(c.type))


def reference(dialect: Dialect, statement: DriverStatement, row: Mapping[str, Any]) -> Parameters:
    """One row's parameters as the row-by-row binder built them, value by value."""
    scalar = scalar_columns(dialect)
    out = []
    for column, processor in zip(statement.columns, statement.processors, strict=True):
        value = row.get(column)
        if value.__class__ in dialect.bind_classes:
            value = dialect.bind(value)
        elif column in scalar and value.__class__ in DOCUMENTS:
            raise nested_value_refused(column)
        out.append(value if processor is None else processor(value))
    return tuple(out) if statement.names is None else dict(zip(statement.names, out, strict=True))


def row_by_row(dialect: Dialect, statement: DriverStatement, rows: Sequence[Mapping[str, Any]]) -> list[Parameters]:
    return [reference(dialect, statement, row) for row in rows]


def outcome(build: Callable[[], list[Parameters]]) -> tuple[Any, ...]:
    """What a binding gives, comparable: the parameters' repr (which tells 1 from 1.0 and True,
    and NaN from NaN), or the error's class, message and column."""
    try:
        return ("parameters", repr(build()))
    except Exception as exc:  # any error: it must be the same error
        return ("error", type(exc), str(exc), getattr(exc, "column", None))


def assert_same(dialect: Dialect, rows: Sequence[Mapping[str, Any]]) -> None:
    for name, statement in statements(dialect).items():
        binder = rows_binder(statement, dialect.bind, dialect.bind_classes, scalar_columns(dialect))
        expected = outcome(functools.partial(row_by_row, dialect, statement, rows))
        assert outcome(functools.partial(binder, rows)) == expected, name


def row_of(n: int, pick: Callable[[tuple[Any, ...]], Any]) -> dict[str, Any]:
    return {"id": n} | {name: pick(values) for name, (_, values) in KINDS.items()}


def nth(n: int, values: tuple[Any, ...]) -> Any:
    return values[n % len(values)]


@pytest.mark.parametrize("dialect", DIALECTS, ids=lambda d: d.name)
def test_every_kind_its_own_values_and_nulls(dialect: Dialect) -> None:
    rows = [row_of(n, functools.partial(nth, n)) for n in range(6)]
    rows += [row_of(6, lambda _: None), {"id": 7}, {}]  # NULLs, keys missing
    assert_same(dialect, rows)
    assert_same(dialect, rows[:1])
    assert_same(dialect, [])


@pytest.mark.parametrize("dialect", DIALECTS, ids=lambda d: d.name)
def test_mixed_classes_in_a_column_and_rows_missing_keys(dialect: Dialect) -> None:
    generator = random.Random(7)
    rows: list[Mapping[str, Any]] = []
    for n in range(300):
        row = row_of(n, lambda values: generator.choice((*values, None)))
        if n % 7 == 3:
            del row[generator.choice(NAMES)]
        rows.append(types.MappingProxyType(row) if n % 11 == 5 else row)
    for size in (1, 2, 5, 300):
        for start in range(0, len(rows), size):
            assert_same(dialect, rows[start : start + size])


@pytest.mark.parametrize("dialect", DIALECTS, ids=lambda d: d.name)
def test_a_document_for_a_scalar_column_is_refused_for_the_first_row_that_has_one(dialect: Dialect) -> None:
    """Row 1 has a document in a later column, row 2 in an earlier one: the chunk's error names
    row 1's column, as the row-by-row binder did; each row alone is refused or written as before."""
    good = row_of(0, functools.partial(nth, 0))
    late, early = good | {"uuid": {"a": 1}}, good | {"int8": [1, 2]}
    upsert = statements(dialect)["upsert"]
    binder = rows_binder(upsert, dialect.bind, dialect.bind_classes, scalar_columns(dialect))

    with pytest.raises(RecordRejected) as refused:
        binder([good, late, early, good])
    assert refused.value.column == "uuid" and refused.value.code == "nested value for a scalar column"
    with pytest.raises(RecordRejected, match="'int8'"):
        binder([early])
    assert repr(binder([good, good])) == repr([reference(dialect, upsert, good)] * 2)
    assert_same(dialect, [good, late, early, good])
    for row in (good, late, early):
        assert_same(dialect, [row])


@pytest.mark.parametrize("dialect", DIALECTS, ids=lambda d: d.name)
def test_values_the_database_cannot_take_are_the_first_failing_rows_error(dialect: Dialect) -> None:
    """A NaN (refused by `bind` on MariaDB and SQLite) in an early column, text for a date (refused
    by SQLite's processor) and a document in later ones, in every order in one chunk: the error is
    the first failing row's, whichever column the chunk meets first."""
    good = row_of(0, functools.partial(nth, 0))
    bad = [good | {"float32": math.nan}, good | {"date": "2024-01-01"}, good | {"uuid": {"n": 1}}]
    for rows in itertools.permutations(bad):
        assert_same(dialect, [good, *rows, good])


@pytest.mark.parametrize("dialect", [d for d in DIALECTS if d.bind_classes], ids=lambda d: d.name)
def test_values_are_bound_column_by_column(dialect: Dialect) -> None:
    """The point of the change: `bind` runs over a column's values before the next column's
    (the row-by-row binder, still the fallback for an error, goes row by row)."""
    calls: list[Any] = []

    def recording(value: Any) -> Any:
        calls.append(value)
        return dialect.bind(value)

    upsert = statements(dialect)["upsert"]
    binder = rows_binder(upsert, recording, dialect.bind_classes, scalar_columns(dialect))
    rows = [{"id": 1, "float64": 1.5, "timestamp": KINDS["timestamp"][1][0]}, {"id": 2, "float64": 2.5}]
    binder(rows)
    assert calls == [1.5, 2.5, KINDS["timestamp"][1][0]]
