"""Timestamps bound the cheap way (`utc_naive`'s fast path, `UtcDateTime`'s SQLite processor,
MariaDB's `DateTimeText`) give what the old chain gave: the same SQLite text, the same statement
bytes for PyMySQL, the same values read back and the same errors. The old chain is kept here as the
reference; the databases are the real ones."""

from __future__ import annotations

import datetime as dt
import sqlite3
import zoneinfo
from collections.abc import Iterator, Sequence
from typing import Any

import pymysql.converters  # type: ignore[import-untyped]
import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy.dialects import sqlite as sa_sqlite

from sink.adapters.db import SqlStore, create_engine
from sink.adapters.executemany import compile_for_driver
from sink.dialects.types import UtcDateTime, utc_naive
from sink.errors import RecordRejected
from sink.model import Batch, Column, ColumnType, Coord, Kind, Op, RawRecord, Row, Status, TableSpec
from sink.pipeline import Writer, WriteRules
from tests.support.db import drop_table

pytestmark = pytest.mark.integration

LISBON, NEW_YORK = zoneinfo.ZoneInfo("Europe/Lisbon"), zoneinfo.ZoneInfo("America/New_York")
PLUS_14 = dt.timezone(dt.timedelta(hours=14))


# ------------------------------------------------------------------------------ the old chain


def old_utc_naive(value: Any) -> Any:
    """`utc_naive` as it was."""
    if isinstance(value, dt.datetime) and value.tzinfo is not None:
        if value.tzinfo is dt.UTC:
            return value.replace(tzinfo=None)
        return value.astimezone(dt.UTC).replace(tzinfo=None)
    return value


SQLITE_DATETIME = sa.DateTime().dialect_impl(sa_sqlite.dialect()).bind_processor(sa_sqlite.dialect())


def old_sqlite_text(value: Any) -> Any:
    """`UtcDateTime`'s processor as it was: process_bind_param, then SQLAlchemy's SQLite DATETIME."""
    assert SQLITE_DATETIME is not None
    return SQLITE_DATETIME(old_utc_naive(value))


def outcome(call: Any, value: Any) -> tuple[str, Any]:
    """What `call(value)` gives (its result, with its class) or raises (its class and message)."""
    try:
        result = call(value)
    except Exception as error:  # the error itself is compared
        return ("error", (type(error), str(error)))
    return ("value", (type(result), result, getattr(result, "tzinfo", None)))


# ------------------------------------------------------------------------------ values

EDGES = (
    dt.datetime(1, 1, 1),
    dt.datetime(1, 1, 1, tzinfo=dt.UTC),
    dt.datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=dt.UTC),
    dt.datetime(999, 12, 31, 23, 59, 59, 999999, tzinfo=dt.UTC),
    dt.datetime(1000, 1, 1, tzinfo=dt.UTC),
    dt.datetime(1969, 12, 31, 23, 59, 59, 999999, tzinfo=dt.UTC),
    dt.datetime(2024, 1, 1, tzinfo=dt.UTC),  # microsecond 0
    dt.datetime(2024, 2, 29, 12, 0, 0, 1, tzinfo=dt.UTC),
    dt.datetime(2024, 2, 29, 12, 0, 0, 1),  # naive: a local time, as it is
    dt.datetime(2024, 3, 31, 1, 30, tzinfo=LISBON),  # in the spring gap
    dt.datetime(2024, 10, 27, 1, 30, tzinfo=LISBON),  # ambiguous, first
    dt.datetime(2024, 10, 27, 1, 30, fold=1, tzinfo=LISBON),  # ambiguous, second
    dt.datetime(2024, 11, 3, 1, 30, fold=1, tzinfo=NEW_YORK),
    dt.datetime(2024, 1, 1, 5, tzinfo=PLUS_14),
    dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc),  # noqa: UP017 - the same object as dt.UTC
    dt.datetime(2024, 1, 1, tzinfo=zoneinfo.ZoneInfo("UTC")),  # a UTC that is not dt.UTC
)

utc_aware = st.datetimes(timezones=st.just(dt.UTC))
any_datetime = st.one_of(
    utc_aware,
    st.datetimes(),  # naive
    st.datetimes(timezones=st.sampled_from([LISBON, NEW_YORK, PLUS_14, zoneinfo.ZoneInfo("Australia/Lord_Howe")])),
    st.datetimes(timezones=st.timezones()),
    st.sampled_from(EDGES),
)
# What reaches a bind processor that is no datetime: the same result or the same error as before.
not_datetimes = st.one_of(
    st.none(),
    st.text(max_size=30),
    st.integers(),
    st.floats(allow_nan=False),
    st.dates(),
    st.times(),
    st.just(b"2024-01-01"),
)


class SubDateTime(dt.datetime):
    """A datetime subclass: not the exact class, so never the fast path."""


subclass_datetimes = st.builds(
    SubDateTime,
    st.integers(1, 9999),
    st.just(6),
    st.just(15),
    microsecond=st.integers(0, 999999),
    tzinfo=st.sampled_from([dt.UTC, LISBON, None]),
)


# ------------------------------------------------------------------------------ per value


@given(any_datetime)
@settings(max_examples=2000)
def test_utc_naive_gives_what_it_gave(value: dt.datetime) -> None:
    assert outcome(utc_naive, value) == outcome(old_utc_naive, value)


@given(st.one_of(not_datetimes, subclass_datetimes))
def test_utc_naive_leaves_other_values_as_they_were(value: Any) -> None:
    assert outcome(utc_naive, value) == outcome(old_utc_naive, value)


SQLITE_PROCESSOR = UtcDateTime().dialect_impl(sa_sqlite.dialect()).bind_processor(sa_sqlite.dialect())


@given(st.one_of(any_datetime, subclass_datetimes))
@settings(max_examples=2000)
def test_sqlite_processor_gives_sqlalchemys_text(value: dt.datetime) -> None:
    assert SQLITE_PROCESSOR is not None
    assert outcome(SQLITE_PROCESSOR, value) == outcome(old_sqlite_text, value)
    naive = old_utc_naive(value)  # what the row binder hands it, after the dialect's bind
    assert outcome(SQLITE_PROCESSOR, naive) == outcome(old_sqlite_text, naive)


def test_the_cheap_sqlite_processor_is_on() -> None:
    """Its check against SQLAlchemy's text passed (else the old chain runs, correct but slower)."""
    assert SQLITE_PROCESSOR is not None
    assert getattr(SQLITE_PROCESSOR, "__qualname__", "").startswith("sqlite_text_processor.")


@given(not_datetimes)
def test_sqlite_processor_refuses_what_sqlalchemy_refused(value: Any) -> None:
    assert SQLITE_PROCESSOR is not None
    assert outcome(SQLITE_PROCESSOR, value) == outcome(old_sqlite_text, value)


def pymysql_literal(value: Any) -> Any:
    return pymysql.converters.escape_item(value, "utf8mb4")


@given(st.one_of(any_datetime, not_datetimes, subclass_datetimes))
@settings(max_examples=2000)
def test_mariadb_processor_makes_pymysql_write_the_same_literal(value: Any) -> None:
    """The literal PyMySQL puts in the statement for the new parameter (dialect bind, then the
    column's processor) and the old one (the dialect bind alone: DATETIME had no processor)."""
    processor = _mariadb_processor()
    assert outcome(lambda v: pymysql_literal(processor(utc_naive(v))), value) == outcome(
        lambda v: pymysql_literal(old_utc_naive(v)), value
    )


def _mariadb_processor() -> Any:
    from sqlalchemy.dialects.mysql import pymysql as mysql_pymysql

    from sink.dialects.mysql import TYPES

    dialect = mysql_pymysql.dialect()
    processor = TYPES.column_type(ColumnType(Kind.TIMESTAMP, precision=6)).dialect_impl(dialect).bind_processor(dialect)
    assert processor is not None  # the cheap path is on
    return processor


# ------------------------------------------------------------------------------ in the databases


@pytest.fixture(params=["sqlite", "mariadb"])
def target(request: pytest.FixtureRequest, unique_name: str) -> Iterator[tuple[SqlStore, str]]:
    url = str(request.getfixturevalue(f"{request.param}_url"))
    name = f"dtbind_{unique_name}"
    store = SqlStore(create_engine(url))
    yield store, name
    store.close()
    drop_table(url, name)


SPEC_COLUMNS = (
    Column("id", ColumnType(Kind.INT64), nullable=False),
    Column("ts", ColumnType(Kind.TIMESTAMP, precision=6)),
    Column("local", ColumnType(Kind.LOCAL_TIMESTAMP, precision=6)),
)


def batch(table: str, values: Sequence[Any], local: Sequence[Any] | None = None) -> Batch:
    spec = TableSpec(table, SPEC_COLUMNS, ("id",))
    rows = tuple(
        Row(
            RawRecord(Coord("t", 0, i), None, None),
            table,
            Op.UPSERT,
            {"id": i},
            {"id": i, "ts": value, "local": None if local is None else local[i]},
            spec,
            schema_id="t",
        )
        for i, value in enumerate(values)
    )
    return Batch(table, spec, rows)


def stored_text(store: SqlStore, table: str) -> list[tuple[int, str | None, str | None]]:
    """The stored values as the database's own text: SQLite's TEXT as it is, MariaDB's DATETIME(6) cast."""
    url = store.engine.url
    if url.get_backend_name() == "sqlite":
        with sqlite3.connect(str(url.database)) as raw:
            return list(raw.execute(f'SELECT id, ts, "local" FROM "{table}" ORDER BY id'))
    t = sa.Table(table, sa.MetaData(), autoload_with=store.engine)
    query = sa.select(t.c.id, sa.cast(t.c.ts, sa.CHAR), sa.cast(t.c["local"], sa.CHAR)).order_by(t.c.id)
    with store.engine.connect() as connection:
        return [tuple(row) for row in connection.execute(query)]


def in_range(store: SqlStore, value: dt.datetime) -> bool:
    """MariaDB's DATETIME holds years 1000 to 9999 (what the sink would reject anyway)."""
    naive = old_utc_naive(value)
    return store.engine.url.get_backend_name() == "sqlite" or naive.year >= 1000


@given(values=st.lists(st.one_of(utc_aware, any_datetime), min_size=1, max_size=40))
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_the_database_stores_and_reads_back_what_the_old_chain_wrote(
    target: tuple[SqlStore, str], values: list[dt.datetime]
) -> None:
    store, table = target
    values = [v for v in values if _convertible(v) and in_range(store, v)] or [dt.datetime(2024, 1, 1, tzinfo=dt.UTC)]
    naive = [v.replace(tzinfo=None) for v in values]  # a local timestamp column takes naive values
    writer = Writer(store, WriteRules("upsert", auto_create=True, auto_evolve=False))
    with store.engine.begin() as connection:
        if sa.inspect(connection).has_table(table):
            connection.execute(sa.text(f"DELETE FROM {table}"))
    outcomes = writer.write(batch(table, values, naive))
    assert [o.status for o in outcomes] == [Status.WRITTEN] * len(values)

    expected = [
        (i, _old_text(store, v), _old_text(store, n)) for i, (v, n) in enumerate(zip(values, naive, strict=True))
    ]
    assert stored_text(store, table) == expected
    t = store.sa_table(batch(table, values).spec)  # read back through the sink's own types
    with store.engine.connect() as connection:
        read = [tuple(row) for row in connection.execute(sa.select(t.c.ts).order_by(t.c.id))]
    sqlite = store.engine.url.get_backend_name() == "sqlite"
    assert read == [((old_utc_naive(v).replace(tzinfo=dt.UTC) if sqlite else old_utc_naive(v)),) for v in values]


def _convertible(value: dt.datetime) -> bool:
    """A zoned value the old chain can take to UTC (one near year 1 or 9999 may overflow)."""
    return outcome(old_utc_naive, value)[0] == "value"


def _old_text(store: SqlStore, value: dt.datetime) -> str:
    """The old chain's stored text: SQLAlchemy's on SQLite, MariaDB's DATETIME(6) of the naive UTC."""
    if store.engine.url.get_backend_name() == "sqlite":
        text = old_sqlite_text(value)
        assert isinstance(text, str)
        return text
    naive = old_utc_naive(value)
    assert isinstance(naive, dt.datetime)
    return naive.isoformat(" ", "microseconds")


def test_pymysql_sends_the_same_statement_bytes(mariadb_url: str, unique_name: str) -> None:
    """The statement PyMySQL builds for a table's upsert, with the new parameters and the old."""
    store = SqlStore(create_engine(mariadb_url))
    table = f"dtbind_{unique_name}"
    try:
        spec = TableSpec(table, SPEC_COLUMNS, ("id",))
        store.create_table(spec)
        names = ["id", "ts", "local"]
        statement = compile_for_driver(
            store.dialect.upsert(store.sa_table(spec), ["id"], names), store.engine.dialect, names, {}
        )
        processors = dict(zip(statement.columns, statement.processors, strict=True))
        assert processors["ts"] is not None and processors["local"] is not None
        values = [*EDGES[2:], dt.datetime(2024, 5, 6, 7, 8, 9, 10, tzinfo=dt.UTC), "2024-01-01 00:00:00", None]
        raw = store.engine.raw_connection()
        try:
            cursor = raw.cursor()
            for value in values:
                local = old_utc_naive(value)
                new = {"id": 1, "ts": processors["ts"](store.dialect.bind(value)), "local": processors["local"](local)}
                old = {"id": 1, "ts": old_utc_naive(value), "local": local}
                assert cursor.mogrify(statement.sql, new) == cursor.mogrify(statement.sql, old), value
        finally:
            raw.close()
    finally:
        store.close()
        drop_table(mariadb_url, table)


def test_a_string_for_a_timestamp_is_still_the_rows_error(target: tuple[SqlStore, str]) -> None:
    """SQLite: SQLAlchemy's TypeError, as the driver's refusal of that row. MariaDB: the string
    reaches the server as before, which refuses it. The other rows are written."""
    store, table = target
    good = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
    outcomes = Writer(store, WriteRules("upsert", auto_create=True, auto_evolve=False)).write(
        batch(table, [good, "not a timestamp", good])
    )
    assert [o.status for o in outcomes] == [Status.WRITTEN, Status.FAILED, Status.WRITTEN]
    error = outcomes[1].error
    assert isinstance(error, RecordRejected)
    if store.engine.url.get_backend_name() == "sqlite":
        try:
            old_sqlite_text("not a timestamp")
        except TypeError as old:
            assert str(error) == f"the driver cannot send a value: TypeError: {old}"
            assert error.code == "driver TypeError"
        else:
            pytest.fail("the old chain accepted a str")
    else:
        assert "1292" in str(error.code) or "Incorrect datetime" in str(error), (error.code, str(error))
