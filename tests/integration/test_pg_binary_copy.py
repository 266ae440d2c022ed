"""PostgreSQL's bulk path with binary COPY: whatever goes binary lands and is rejected exactly as by
text COPY, and whatever binary cannot carry exactly goes by text.

Every test writes the same batches through the real `Writer` and `SqlStore` (bulk path forced) twice:
once as the sink chooses, once with binary COPY switched off, into two tables of the same shape, and
compares outcomes and the tables' rows as PostgreSQL prints them (`t::text`: every digit, scale,
offset and escape). `formats` records which format each COPY chunk took.
"""

from __future__ import annotations

import datetime as dt
import decimal
import uuid
import zoneinfo
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import psycopg
import pytest
import sqlalchemy as sa

from sink.adapters import pgbinary, pgcopy
from sink.adapters.db import SqlStore, create_engine
from sink.errors import RecordRejected
from sink.model import Column, Kind, Op, Outcome, Status, TableSpec
from tests.integration.test_writer_contract import EVERY_TYPE, ID, ct, row, write
from tests.support.db import drop_table

pytestmark = pytest.mark.integration

D = decimal.Decimal
# Naive datetimes for a timestamptz column are read in the session's zone: not UTC, so it shows.
SESSION_ZONE = "America/New_York"


class CopyFormats:
    """Stands in for `pgcopy.binary_safe`: the real decision, recorded per COPY chunk (True: binary),
    or always text while `text_only` is set."""

    def __init__(self) -> None:
        self.chosen: list[bool] = []
        self.text_only = False

    def __call__(self, types: Sequence[int], rows: Sequence[Sequence[Any]]) -> bool:
        binary = not self.text_only and pgbinary.binary_safe(types, rows)
        self.chosen.append(binary)
        return binary


@pytest.fixture
def formats(monkeypatch: pytest.MonkeyPatch) -> CopyFormats:
    recorder = CopyFormats()
    monkeypatch.setattr(pgcopy, "binary_safe", recorder)
    return recorder


@pytest.fixture
def store(pg_url: str) -> Iterator[SqlStore]:
    engine = create_engine(pg_url)

    @sa.event.listens_for(engine, "connect")
    def _zone(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.execute(f"SET TimeZone = '{SESSION_ZONE}'")
        dbapi_connection.commit()

    store = SqlStore(engine)
    store.dialect.bulk_min_rows = 1  # type: ignore[misc]  # every statement on the bulk path
    yield store
    engine.dispose()


@pytest.fixture
def tables(pg_url: str, unique_name: str) -> Iterator[tuple[str, str]]:
    """Two table names: written as the sink chooses, and by text COPY only."""
    names = (f"{unique_name}_as_chosen", f"{unique_name}_text_only")
    yield names
    for name in names:
        drop_table(pg_url, name)


# ------------------------------------------------------------------------------ helpers


def printed(store: SqlStore, table: str) -> list[str]:
    """The table's rows as PostgreSQL prints them, by key."""
    quoted = store.engine.dialect.identifier_preparer.quote(table)
    with store.engine.connect() as connection:
        return list(connection.exec_driver_sql(f"SELECT t::text FROM {quoted} AS t ORDER BY 1").scalars())


def described(outcomes: Sequence[Outcome], table: str) -> list[tuple[Any, ...]]:
    """Outcomes as comparable tuples: status, offset and the error's class, code and reason (which
    may name the table)."""
    return [
        (
            o.status,
            o.coord.offset,
            type(o.error).__name__,
            getattr(o.error, "code", None),
            str(o.error or "").replace(table, "<table>"),
        )
        for o in outcomes
    ]


def write_both_ways(
    store: SqlStore,
    formats: CopyFormats,
    tables: tuple[str, str],
    columns: Sequence[Column],
    batches: Sequence[Sequence[Mapping[str, Any]]],
    mode: str = "insert",
) -> tuple[list[bool], list[Outcome]]:
    """Write `batches` into both tables (chosen formats, then text only), assert that outcomes and
    rows are the same, and return the formats chosen and the outcomes of the first table."""
    results = []
    chosen: list[bool] = []
    for name, text_only in zip(tables, (False, True), strict=True):
        formats.chosen, formats.text_only = [], text_only
        spec = store.table(name) or TableSpec(name, tuple(columns), ("id",))
        outcomes = [o for batch in batches for o in write(store, spec, rows_of(spec, batch), mode=mode)]
        results.append((described(outcomes, name), printed(store, name), outcomes))
        chosen = chosen or formats.chosen
    (as_chosen, rows_chosen, outcomes), (text, rows_text, _) = results
    assert as_chosen == text, "outcomes differ from text COPY's"
    assert rows_chosen == rows_text, "rows differ from text COPY's"
    return chosen, outcomes


def rows_of(spec: TableSpec, batch: Sequence[Mapping[str, Any]]) -> list[Any]:
    return [row(spec, values["id"], values, Op.UPSERT) for values in batch]


def create(store: SqlStore, tables: Sequence[str], ddl: str) -> None:
    """Create each table from `ddl` ({t}: its quoted name), as a user would have."""
    with store.engine.begin() as connection:
        for name in tables:
            connection.exec_driver_sql(ddl.format(t=store.engine.dialect.identifier_preparer.quote(name)))


# ------------------------------------------------------------------------------ every type


BINARY_KINDS = [(n, t, v) for n, t, v in EVERY_TYPE if t.kind not in (Kind.ARRAY, Kind.FLOAT32)]
BINARY_COLUMNS = (ID, *(Column(n, t) for n, t, _ in BINARY_KINDS))
PLUS_0530 = dt.timezone(dt.timedelta(hours=5, minutes=30))
MINUS_5 = dt.timezone(dt.timedelta(hours=-5))
LISBON = zoneinfo.ZoneInfo("Europe/Lisbon")
# Edge values of every column binary can carry, beside the contract's own values and NULLs.
EDGES: tuple[dict[str, Any], ...] = (
    {
        "int8": -32768,
        "int16": 32767,
        "int32": 2_147_483_647,
        "int64": -(2**63),
        "float64": -0.0,
        "boolean": False,
        "string": "tab\there\nnew line \\ back\rslash ' \" \u2028 \U0001f600",
        "string_50": "",
        "enum": "x" * 50,
        "bytes": b"",
        "fixed_4": b"\x00\x00\x00\x00",
        "decimal": D("1.005"),  # rounded to the column's scale by the server either way
        "decimal_38": D("-0.0000000001"),
        "variable_decimal": D("1.50"),  # the trailing zero is kept
        "date": dt.date(1, 1, 1),
        "time_millis": dt.time(23, 59, 59, 999999),
        "time_micros": dt.time(0, 0),
        "timestamp_millis": dt.datetime(1, 1, 1, 0, 0, tzinfo=PLUS_0530),  # 1 BC in UTC
        "timestamp_micros": dt.datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=MINUS_5),  # year 10000 in UTC
        "local_millis": dt.datetime(1, 1, 1),
        "local_micros": dt.datetime(9999, 12, 31, 23, 59, 59, 999999),
        "uuid": uuid.UUID(int=0),
        "record": {"ü": "\u2028", "n": -0.0, "big": 2**70, "nested": [[]]},
        "map": {},
        "array_of_records": [],
    },
    {"float64": float("nan"), "variable_decimal": 10**30, "decimal": 5, "uuid": uuid.UUID(int=2**128 - 1)},
    {"float64": float("inf"), "variable_decimal": D("1E+5"), "decimal_38": D("0E-10")},
    {"float64": -float("inf"), "variable_decimal": D("-0.000001")},
    {"float64": 7, "variable_decimal": D("12345678901234567890.123456789012345678")},  # an int for float8
    {"float64": 2**53, "timestamp_millis": dt.datetime(2024, 3, 31, 1, 30, tzinfo=LISBON)},  # not a wall time there
    {"float64": 1e-320, "timestamp_micros": dt.datetime(2024, 10, 27, 1, 30, fold=1, tzinfo=LISBON)},  # twice one
)


def every_type_rows(kinds: Sequence[tuple[str, Any, Any]]) -> list[dict[str, Any]]:
    names = [n for n, _, _ in kinds]
    full = {n: v for n, _, v in kinds}
    rows = [{"id": 1, **full}, {"id": 2, **dict.fromkeys(names)}]  # and NULL in every column
    nulls = dict.fromkeys(names)  # every row carries every column: one statement, one COPY
    rows += [{"id": 3 + i, **nulls, **{n: v for n, v in edge.items() if n in full}} for i, edge in enumerate(EDGES)]
    return rows


def test_every_type_binary_can_carry_lands_as_by_text(
    store: SqlStore, formats: CopyFormats, tables: tuple[str, str]
) -> None:
    chosen, outcomes = write_both_ways(store, formats, tables, BINARY_COLUMNS, [every_type_rows(BINARY_KINDS)])

    assert chosen == [True], "every column of these is binary-safe"
    assert {o.status for o in outcomes} == {Status.WRITTEN}


def test_every_type_with_arrays_and_real_goes_by_text_and_lands_as_before(
    store: SqlStore, formats: CopyFormats, tables: tuple[str, str]
) -> None:
    columns = (ID, *(Column(n, t) for n, t, _ in EVERY_TYPE))
    batch = every_type_rows(EVERY_TYPE)
    # the text of this double and the double rounded to real in Python are different reals
    batch.append({"id": 99, **dict.fromkeys(n for n, _, _ in EVERY_TYPE), "float32": 1 + 2**-24})
    chosen, outcomes = write_both_ways(store, formats, tables, columns, [batch])

    assert chosen == [False], "native arrays and real go by text"
    assert {o.status for o in outcomes} == {Status.WRITTEN}


# ------------------------------------------------------------------------------ fallback


SCHEMALESS = (
    ID,
    Column("label", ct(Kind.STRING)),
    Column("amount", ct(Kind.FLOAT64)),
    Column("count", ct(Kind.INT64)),
    Column("flag", ct(Kind.BOOLEAN)),
)


def test_values_binary_cannot_carry_exactly_go_by_text(
    store: SqlStore, formats: CopyFormats, tables: tuple[str, str]
) -> None:
    plain = [{"id": i, "label": f"l{i}", "amount": i / 4, "count": i, "flag": i % 2 == 0} for i in range(1, 4)]
    clashes = [  # each batch alone: one value whose binary form would not be the text's
        [{"id": 10, "label": 5, "amount": 1.0, "count": 1, "flag": True}],  # an int for text: '5'
        [{"id": 11, "label": D("1.10"), "amount": 1.0, "count": 1, "flag": True}],  # a Decimal for text: '1.10'
        [{"id": 12, "label": "x", "amount": 2**60 + 1, "count": 1, "flag": True}],  # rounded by the server
        [{"id": 13, "label": "x", "amount": D("1.5"), "count": 1, "flag": True}],  # a Decimal for float8
        [{"id": 14, "label": "x", "amount": 1.0, "count": 1.5, "flag": True}],  # a float for bigint: rejected
        [{"id": 15, "label": "x", "amount": 1.0, "count": True, "flag": True}],  # a bool for bigint: rejected
        [{"id": 16, "label": "x", "amount": 1.0, "count": 2**63, "flag": True}],  # past bigint: rejected
        [{"id": 17, "label": "x", "amount": 1.0, "count": 1, "flag": 1}],  # an int for boolean: true
        [{"id": 18, "label": "x", "amount": 1.0, "count": 1, "flag": "yes"}],  # a string for boolean: true
        [{"id": 19, "label": True, "amount": 1.0, "count": 1, "flag": True}],  # a bool for text: 'true', not 't'
    ]
    chosen, outcomes = write_both_ways(store, formats, tables, SCHEMALESS, [plain, *clashes], mode="upsert")

    # per clash batch: the whole batch goes by text, then each bisection step decides again
    assert chosen[0] is True and chosen[1:] == [False] * len(chosen[1:])
    assert {o.coord.offset for o in outcomes if o.status is Status.FAILED} == {14, 15, 16}
    assert {o.error.sqlstate for o in outcomes if isinstance(o.error, RecordRejected)} == {"22P02", "22003"}
    assert [r for r in printed(store, tables[0]) if r.startswith("(19,")] == ["(19,true,1,1,t)"]


def test_naive_and_aware_datetimes_keep_their_meaning(
    store: SqlStore, formats: CopyFormats, tables: tuple[str, str]
) -> None:
    columns = (ID, Column("instant", ct(Kind.TIMESTAMP, precision=6)), Column("wall", ct(Kind.LOCAL_TIMESTAMP)))
    berlin = zoneinfo.ZoneInfo("Europe/Berlin")
    moment = dt.datetime(2024, 7, 1, 12, 30, 15, 250000)
    safe = [
        {"id": 1, "instant": moment.replace(tzinfo=dt.UTC), "wall": moment},
        {"id": 2, "instant": moment.replace(tzinfo=berlin), "wall": None},
    ]
    naive_instant = [{"id": 3, "instant": moment, "wall": moment}]  # read in the session's zone
    aware_wall = [{"id": 4, "instant": None, "wall": moment.replace(tzinfo=PLUS_0530)}]  # the offset is dropped
    chosen, _ = write_both_ways(store, formats, tables, columns, [safe, naive_instant, aware_wall])

    assert chosen == [True, False, False]
    (instant,) = [r for r in printed(store, tables[0]) if r.startswith("(3,")]
    assert "12:30:15.25-04" in instant, f"read as New York's wall clock, the session's zone: {instant}"


# ------------------------------------------------------------------------------ rejections


CONSTRAINED = (
    "CREATE TABLE {t} (id bigint PRIMARY KEY, qty integer CHECK (qty >= 0), name varchar(5) NOT NULL, note text)"
)


def test_bad_rows_are_isolated_with_the_database_reason(
    store: SqlStore, formats: CopyFormats, tables: tuple[str, str]
) -> None:
    create(store, tables, CONSTRAINED)
    bad = {
        5: ({"qty": 2**31}, "22003"),  # out of range for integer
        11: ({"name": "toolong"}, "22001"),  # too long for varchar(5)
        17: ({"name": None}, "23502"),  # NOT NULL, checked by the merge
        23: ({"qty": -1}, "23514"),  # CHECK, checked by the merge
        29: ({"note": "a\x00b"}, None),  # psycopg's own DataError on the text path
        31: ({"qty": -(2**31) - 1}, "22003"),
    }
    batch = [{"id": i, "qty": i, "name": f"n{i}", "note": f"note {i}"} for i in range(40)]
    for offset, (values, _) in bad.items():
        batch[offset].update(values)
    chosen, outcomes = write_both_ways(store, formats, tables, (), [batch])

    assert True in chosen and False in chosen, "the batch went by text, its clean parts by binary"
    failed = {o.coord.offset: o.error for o in outcomes if o.status is Status.FAILED}
    assert set(failed) == set(bad)
    for offset, (_, sqlstate) in bad.items():
        error = failed[offset]
        assert isinstance(error, RecordRejected)
        assert error.sqlstate == sqlstate, (offset, error.code, str(error))
    assert len(printed(store, tables[0])) == 40 - len(bad)


def test_a_users_table_with_enum_and_domain_columns_goes_by_text(
    store: SqlStore, formats: CopyFormats, tables: tuple[str, str], unique_name: str, pg_url: str
) -> None:
    mood, positive = f"{unique_name}_mood", f"{unique_name}_positive"
    try:
        with store.engine.begin() as connection:
            connection.exec_driver_sql(f"CREATE TYPE {mood} AS ENUM ('happy', 'sad')")
            connection.exec_driver_sql(f"CREATE DOMAIN {positive} AS integer CHECK (VALUE > 0)")
        create(store, tables, f"CREATE TABLE {{t}} (id bigint PRIMARY KEY, mood {mood}, level {positive})")
        batch = [{"id": i, "mood": "happy" if i % 2 else "sad", "level": i + 1} for i in range(20)]
        batch[7]["mood"] = "angry"  # not a label of the enum
        batch[13]["level"] = 0  # fails the domain's CHECK
        chosen, outcomes = write_both_ways(store, formats, tables, (), [batch])

        assert chosen and not any(chosen), "enum and domain columns go by text"
        failed = {o.coord.offset: o.error.sqlstate for o in outcomes if isinstance(o.error, RecordRejected)}
        assert failed == {7: "22P02", 13: "23514"}
    finally:
        store.engine.dispose()  # the sink's sessions end, and their stages, which use the types too
        for name in tables:
            drop_table(pg_url, name)
        with store.engine.begin() as connection:
            connection.exec_driver_sql(f"DROP TYPE IF EXISTS {mood}")
            connection.exec_driver_sql(f"DROP DOMAIN IF EXISTS {positive}")


# ------------------------------------------------------------------------------ the stage's types


def test_a_stage_made_again_after_a_rollback_is_read_again(pg_url: str, unique_name: str) -> None:
    """A rollback drops the stage its transaction created; made again from the target, altered
    meanwhile, it has the new types, and binary values of the old ones would be refused."""
    engine = create_engine(pg_url)
    try:
        store = SqlStore(engine)
        spec = TableSpec(unique_name, (ID, Column("qty", ct(Kind.INT32))), ("id",))
        store.create_table(spec)
        table, dialect, names = store.sa_table(spec), store.dialect, ["id", "qty"]

        def stage_and_merge(connection: sa.Connection, rows: list[tuple[int, int]]) -> None:
            merge = lambda stage: dialect.merge(table, stage, ["id"], "insert")  # noqa: E731
            pgcopy.stage_and_merge(connection, dialect, table, spec, names, rows, merge)

        with engine.connect() as connection:
            with connection.begin() as transaction:
                stage_and_merge(connection, [(1, 1)])  # creates the stage with qty integer
                transaction.rollback()
            with connection.begin():
                quoted = engine.dialect.identifier_preparer.quote(unique_name)
                connection.exec_driver_sql(f"ALTER TABLE {quoted} ALTER COLUMN qty TYPE bigint")
            with connection.begin():
                stage_and_merge(connection, [(2, 5)])  # int8 now: an int4's four bytes would not do
            rows = connection.exec_driver_sql(f"SELECT id, qty FROM {quoted}").all()
    finally:
        engine.dispose()
        drop_table(pg_url, unique_name)

    assert [tuple(r) for r in rows] == [(2, 5)]


# ------------------------------------------------------------------------------ data blocks

BLOCK_COLUMNS = (ID, Column("text", ct(Kind.STRING)), Column("n", ct(Kind.INT64)), Column("at", ct(Kind.TIMESTAMP)))


def block_rows(count: int) -> list[dict[str, Any]]:
    """Rows of about 1 KB each: `count` of them span several COPY data blocks."""
    at = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
    return [
        {"id": i, "text": f"{i:05d} ü\t" + "x" * 1000, "n": -(2**62) + i, "at": at + dt.timedelta(microseconds=i)}
        for i in range(count)
    ]


class CopyCalls:
    """Counts psycopg's `Copy.write_row` (a row at a time) and `Copy.write` (a data block) calls."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.rows = self.blocks = 0
        write_row, write = psycopg.Copy.write_row, psycopg.Copy.write

        def counted_row(copy: psycopg.Copy, row: Sequence[Any]) -> None:
            self.rows += 1
            write_row(copy, row)

        def counted_block(copy: psycopg.Copy, data: Any) -> None:
            self.blocks += 1
            write(copy, data)

        monkeypatch.setattr(psycopg.Copy, "write_row", counted_row)
        monkeypatch.setattr(psycopg.Copy, "write", counted_block)


def test_a_binary_copy_of_many_blocks_lands_whole_as_by_text(
    store: SqlStore, formats: CopyFormats, tables: tuple[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = CopyCalls(monkeypatch)
    count = 3 * pgcopy.COPY_BLOCK_BYTES // 1000
    chosen, outcomes = write_both_ways(store, formats, tables, BLOCK_COLUMNS, [block_rows(count)])
    assert chosen == [True], "one binary COPY"
    assert [o.status for o in outcomes] == [Status.WRITTEN] * count
    assert len(printed(store, tables[0])) == count
    assert calls.rows == count, "only the text COPY (of the other table) went row by row"
    assert calls.blocks >= 3, "the binary rows went in several blocks"


def test_without_psycopgs_row_formatter_rows_go_one_by_one_and_land_alike(
    store: SqlStore, formats: CopyFormats, tables: tuple[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = CopyCalls(monkeypatch)
    monkeypatch.setattr(pgcopy, "FORMAT_BINARY_ROW", None)
    chosen, outcomes = write_both_ways(store, formats, tables, BLOCK_COLUMNS, [block_rows(300)])
    assert chosen == [True]
    assert [o.status for o in outcomes] == [Status.WRITTEN] * 300
    assert (calls.rows, calls.blocks) == (600, 0), "both tables' rows went one by one"
