"""The writer contract every dialect passes, on real PostgreSQL, MariaDB and SQLite.

Batches are built directly (sink.model) and written through `Writer` over `SqlStore`; rows are read
back with SQLAlchemy through a fresh store's reflection, so the types a value comes back as are the
ones the sink itself would see after a restart.
"""

from __future__ import annotations

import collections
import datetime as dt
import decimal
import fcntl
import math
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from sink.adapters.db import SqlStore, create_engine
from sink.errors import RecordRejected
from sink.model import Batch, Column, ColumnType, Coord, Kind, Op, Outcome, RawRecord, Row, Status, TableSpec
from sink.pipeline import Writer, WriteRules
from sink.schema import evolve
from tests.support.db import drop_table

pytestmark = pytest.mark.integration

UTC_PLUS_2 = dt.timezone(dt.timedelta(hours=2))


def ct(kind: Kind, **kw: Any) -> ColumnType:
    return ColumnType(kind, **kw)


# One column per kind the formats produce (Avro/Connect/Debezium names in docs/types.md), with a value.
EVERY_TYPE: tuple[tuple[str, ColumnType, Any], ...] = (
    ("int8", ct(Kind.INT8), -128),
    ("int16", ct(Kind.INT16), 32767),
    ("int32", ct(Kind.INT32), -2_147_483_648),
    ("int64", ct(Kind.INT64), 9_223_372_036_854_775_807),
    ("float32", ct(Kind.FLOAT32), 1.5),
    ("float64", ct(Kind.FLOAT64), 3.141592653589793),
    ("boolean", ct(Kind.BOOLEAN), True),
    ("string", ct(Kind.STRING), "grüße 🎉 ' \" \\ %s :x"),
    ("string_50", ct(Kind.STRING, length=50), "bounded"),
    ("enum", ct(Kind.STRING), "RED"),
    ("bytes", ct(Kind.BYTES), b"\x00\xff\x80binary'"),
    ("fixed_4", ct(Kind.BYTES, length=4), b"\x01\x02\x03\x04"),
    ("decimal", ct(Kind.DECIMAL, precision=10, scale=2), decimal.Decimal("-12345678.90")),
    ("decimal_38", ct(Kind.DECIMAL, precision=38, scale=10), decimal.Decimal("1234567890123456789012345678.01234567")),
    ("variable_decimal", ct(Kind.DECIMAL, precision=38), decimal.Decimal("3.14159265358979323846")),
    ("date", ct(Kind.DATE), dt.date(2024, 2, 29)),
    ("time_millis", ct(Kind.TIME, precision=3), dt.time(23, 59, 58, 123000)),
    ("time_micros", ct(Kind.TIME, precision=6), dt.time(1, 2, 3, 456789)),
    ("timestamp_millis", ct(Kind.TIMESTAMP, precision=3), dt.datetime(2024, 3, 1, 12, 0, 0, 123000, tzinfo=dt.UTC)),
    ("timestamp_micros", ct(Kind.TIMESTAMP, precision=6), dt.datetime(1999, 12, 31, 23, 59, 59, 999999, UTC_PLUS_2)),
    ("local_millis", ct(Kind.LOCAL_TIMESTAMP, precision=3), dt.datetime(2024, 3, 1, 12, 0, 0, 123000)),
    ("local_micros", ct(Kind.LOCAL_TIMESTAMP, precision=6), dt.datetime(1970, 1, 1, 0, 0, 0, 1)),
    ("uuid", ct(Kind.UUID), uuid.UUID("12345678-1234-5678-1234-567812345678")),
    ("record", ct(Kind.JSON), {"name": "n", "nested": {"a": 1, "b": [1, 2.5, "x", None, True]}}),
    ("map", ct(Kind.JSON), {"k": "v", "empty": {}}),
    ("array_of_records", ct(Kind.JSON), [{"a": 1}, {"b": None}]),
    ("array_int64", ct(Kind.ARRAY, item=ct(Kind.INT64)), [1, -2, 9_007_199_254_740_993]),
    ("array_string", ct(Kind.ARRAY, item=ct(Kind.STRING)), ["a", "b c", ""]),
    ("array_double", ct(Kind.ARRAY, item=ct(Kind.FLOAT64)), [0.5, -1.25]),
)
ID = Column("id", ct(Kind.INT64), nullable=False)
EVERY_TYPE_COLUMNS = (ID, *(Column(name, type_) for name, type_, _ in EVERY_TYPE))
EVERY_TYPE_VALUES = {name: value for name, _, value in EVERY_TYPE}

HOSTILE_KEY = "user id"
HOSTILE = ('x"y', "Über", "a%b", ":name", "x`y")


# ------------------------------------------------------------------------------ fixtures and helpers


def write(store: SqlStore, spec: TableSpec, rows: list[Row], mode: str = "upsert") -> list[Outcome]:
    writer = Writer(store, WriteRules(insert_mode=mode, auto_create=True, auto_evolve=True))
    return writer.write(Batch(spec.name, spec, tuple(rows)))


def row(spec: TableSpec, offset: int, values: Mapping[str, Any], op: Op = Op.UPSERT) -> Row:
    key = {k: values[k] for k in spec.primary_key}
    raw = RawRecord(Coord("contract", 0, offset), None, None)
    return Row(raw, spec.name, op, key, dict(values) if op is Op.UPSERT else key, spec)


def read(url: str, table: str) -> list[dict[str, Any]]:
    """Rows as the sink's own types read them (a fresh store, so reflection included), by key."""
    engine = create_engine(url)
    try:
        fresh = SqlStore(engine)
        spec = fresh.table(table)
        assert spec is not None, f"table {table} was not created"
        sa_table = fresh.sa_table(spec)
        with engine.connect() as connection:
            query = sa.select(sa_table).order_by(*(sa_table.c[k] for k in spec.primary_key))
            return [dict(r) for r in connection.execute(query).mappings()]
    finally:
        engine.dispose()


def same_value(got: Any, want: Any) -> bool:
    """Equal, with datetimes compared as instants: MariaDB keeps aware ones as naive UTC."""
    if isinstance(want, dt.datetime) and want.tzinfo is not None:
        return isinstance(got, dt.datetime) and (got if got.tzinfo else got.replace(tzinfo=dt.UTC)) == want
    return type(got) is type(want) and got == want if not isinstance(want, int | float) else got == want


# ------------------------------------------------------------------------------ types


def test_every_type_round_trips_to_the_same_value(store: SqlStore, url: str, name: str) -> None:
    spec = TableSpec(name, EVERY_TYPE_COLUMNS, ("id",))
    nulls = dict.fromkeys(EVERY_TYPE_VALUES)
    outcomes = write(store, spec, [row(spec, 0, {"id": 1, **EVERY_TYPE_VALUES}), row(spec, 1, {"id": 2, **nulls})])

    assert [o.status for o in outcomes] == [Status.WRITTEN, Status.WRITTEN]
    full, empty = read(url, name)
    wrong = {k: (full[k], v) for k, v in EVERY_TYPE_VALUES.items() if not same_value(full[k], v)}
    assert not wrong, f"values that did not round-trip (got, sent): {wrong}"
    assert empty == {"id": 2, **nulls}, "nulls stay SQL NULL (JSON too, not the text 'null')"


def test_a_table_the_sink_created_needs_no_evolution(store: SqlStore, url: str, name: str) -> None:
    key = Column("key", ct(Kind.STRING), nullable=False)  # unbounded: MariaDB bounds key strings itself
    spec = TableSpec(name, (key, *EVERY_TYPE_COLUMNS[1:]), ("key",))
    store.create_table(spec)
    reflected = SqlStore(store.engine).table(name)

    assert reflected is not None
    assert not evolve(reflected, spec, store.storage_type), "reflect + evolve against the same spec: no change"
    stored = {c.name: store.storage_type(c.type) for c in spec.columns if c.name != "key"}
    assert {c.name: c.type for c in reflected.columns if c.name != "key"} == stored, "storage_type is what reflects"


def test_defaults_are_rendered_as_literals_of_their_type(store: SqlStore, url: str, name: str) -> None:
    defaults = [Column(f"d_{n}", t, nullable=False, default=v, has_default=True) for n, t, v in EVERY_TYPE]
    spec = TableSpec(name, (ID, *defaults), ("id",))
    store.create_table(spec)
    with store.engine.begin() as connection:  # only the key: every other column takes its DEFAULT
        connection.execute(sa.insert(store.sa_table(spec)), [{"id": 1}])

    (got,) = read(url, name)
    wrong = {k: (got[f"d_{k}"], v) for k, v in EVERY_TYPE_VALUES.items() if not same_value(got[f"d_{k}"], v)}
    assert not wrong, f"defaults that did not come back (got, declared): {wrong}"


# ------------------------------------------------------------------------------ write semantics

SIMPLE = (ID, Column("name", ct(Kind.STRING)), Column("qty", ct(Kind.INT32)))


def test_upsert_overwrites_and_keeps_columns_the_record_does_not_carry(store: SqlStore, url: str, name: str) -> None:
    spec = TableSpec(name, SIMPLE, ("id",))
    write(store, spec, [row(spec, 0, {"id": 1, "name": "a", "qty": 1}), row(spec, 1, {"id": 2, "name": "b", "qty": 2})])
    narrow = TableSpec(name, SIMPLE[:2], ("id",))
    outcomes = write(store, narrow, [row(narrow, 2, {"id": 1, "name": "A"}), row(narrow, 3, {"id": 3, "name": "c"})])

    assert [o.status for o in outcomes] == [Status.WRITTEN, Status.WRITTEN]
    assert read(url, name) == [
        {"id": 1, "name": "A", "qty": 1},
        {"id": 2, "name": "b", "qty": 2},
        {"id": 3, "name": "c", "qty": None},
    ]


def test_update_mode_only_updates_existing_rows(store: SqlStore, url: str, name: str) -> None:
    spec = TableSpec(name, SIMPLE, ("id",))
    write(store, spec, [row(spec, 0, {"id": 1, "name": "a", "qty": 1})])
    updates = [row(spec, 1, {"id": 1, "name": "A", "qty": 10}), row(spec, 2, {"id": 2, "name": "b", "qty": 2})]
    write(store, spec, updates, mode="update")

    assert read(url, name) == [{"id": 1, "name": "A", "qty": 10}]


def test_delete_removes_the_row(store: SqlStore, url: str, name: str) -> None:
    spec = TableSpec(name, SIMPLE, ("id",))
    write(store, spec, [row(spec, i, {"id": i, "name": str(i), "qty": i}) for i in range(1, 4)])
    outcomes = write(store, spec, [row(spec, 10, {"id": 2}, Op.DELETE), row(spec, 11, {"id": 9}, Op.DELETE)])

    assert [o.status for o in outcomes] == [Status.DELETED, Status.DELETED]
    assert [r["id"] for r in read(url, name)] == [1, 3]


def test_insert_duplicate_key_in_one_batch_fails_only_that_record(store: SqlStore, url: str, name: str) -> None:
    spec = TableSpec(name, SIMPLE, ("id",))
    rows = [row(spec, i, {"id": k, "name": f"r{i}", "qty": i}) for i, k in enumerate([1, 2, 1, 3])]
    outcomes = write(store, spec, rows, mode="insert")

    assert [o.status for o in outcomes] == [Status.WRITTEN, Status.WRITTEN, Status.FAILED, Status.WRITTEN]
    failed = outcomes[2]
    assert isinstance(failed.error, RecordRejected) and failed.coord == rows[2].coord
    assert [(r["id"], r["name"]) for r in read(url, name)] == [(1, "r0"), (2, "r1"), (3, "r3")]


def test_bad_rows_are_isolated_and_the_rest_land(store: SqlStore, url: str, name: str) -> None:
    spec = TableSpec(name, (ID, Column("name", ct(Kind.STRING), nullable=False)), ("id",))
    bad = {17, 101, 102}
    rows = [row(spec, i, {"id": i, "name": None if i in bad else f"n{i}"}) for i in range(200)]
    outcomes = write(store, spec, rows, mode="insert")

    failed = {o.coord.offset for o in outcomes if o.status is Status.FAILED}
    assert failed == bad
    assert all(isinstance(o.error, RecordRejected) for o in outcomes if o.status is Status.FAILED)
    assert len(read(url, name)) == 200 - len(bad)


# ------------------------------------------------------------------------------ hostile identifiers


@pytest.fixture
def select_table(url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The table `Select`, exactly that name: one test at a time per server (a file lock across
    xdist workers), dropped before and after."""
    lock_path = Path(tmp_path_factory.getbasetemp()).parent.parent / "kafka-sql-sink-select-table.lock"
    with lock_path.open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        drop_table(url, "Select")
        yield "Select"
        drop_table(url, "Select")


@pytest.mark.parametrize("mode", ["insert", "upsert", "update"])
def test_hostile_identifiers(store: SqlStore, url: str, select_table: str, mode: str) -> None:
    key = Column(HOSTILE_KEY, ct(Kind.STRING, length=40), nullable=False)
    columns = (key, *(Column(h, ct(Kind.STRING)) for h in HOSTILE))
    spec = TableSpec(select_table, columns, (HOSTILE_KEY,))
    first = {HOSTILE_KEY: "k 1", **{h: f"{h}-1" for h in HOSTILE}}
    second = {HOSTILE_KEY: "k'2", **{h: f"{h}-2" for h in HOSTILE}}
    write(store, spec, [row(spec, 0, first), row(spec, 1, second)], mode="upsert")

    changed = {HOSTILE_KEY: "k 1", **{h: f"{h}-changed" for h in HOSTILE}}
    new = {HOSTILE_KEY: "k 3", **{h: f"{h}-3" for h in HOSTILE}}
    outcomes = write(store, spec, [row(spec, 2, changed), row(spec, 3, new)], mode=mode)
    write(store, spec, [row(spec, 4, second, Op.DELETE)])

    expected = {
        "insert": [first, new],  # the duplicate key fails alone
        "upsert": [changed, new],
        "update": [changed],  # update mode writes only rows that exist
    }[mode]
    statuses = [Status.FAILED, Status.WRITTEN] if mode == "insert" else [Status.WRITTEN, Status.WRITTEN]
    assert [o.status for o in outcomes] == statuses
    assert read(url, select_table) == expected


@pytest.mark.parametrize("mode", ["insert", "upsert", "update"])
def test_columns_whose_bind_names_collide_once_escaped_keep_their_values(
    store: SqlStore, url: str, name: str, mode: str
) -> None:
    """SQLAlchemy escapes `user id` to the bind name `user_id`, which another column has: each
    value must still reach its own column, through every statement the writer sends."""
    columns = (Column("user id", ct(Kind.INT64), nullable=False), Column("user_id", ct(Kind.STRING)))
    columns += (Column("user%id", ct(Kind.STRING)),)
    spec = TableSpec(name, columns, ("user id",))
    write(store, spec, [row(spec, 0, {"user id": 1, "user_id": "a", "user%id": "b"})], mode="upsert")
    write(store, spec, [row(spec, 1, {"user id": 1, "user_id": "c", "user%id": "d"})], mode=mode)
    write(store, spec, [row(spec, 2, {"user id": 2, "user_id": "e", "user%id": "f"})], mode="upsert")
    write(store, spec, [row(spec, 3, {"user id": 2}, Op.DELETE)])
    expected = (
        {"user id": 1, "user_id": "a", "user%id": "b"}
        if mode == "insert"
        else {"user id": 1, "user_id": "c", "user%id": "d"}
    )
    assert read(url, name) == [expected]


# ------------------------------------------------------------------------------ statements on the bisection path


def test_bisection_isolates_three_bad_rows_in_ten_thousand_with_few_statements(pg_url: str, unique_name: str) -> None:
    """k bad rows in n cost at most 2k statements per level of a log2(n)-deep bisection. Asserted:
    INSERT executions (SQLAlchemy's `before_execute`, one per Connection.execute of an executemany).
    Printed too: every cursor execution, savepoints (SAVEPOINT, RELEASE, ROLLBACK TO) included."""
    n, bad = 10_000, {1234, 5000, 9999}
    engine = create_engine(pg_url)
    inserts: list[int] = []
    cursor: list[str] = []

    @sa.event.listens_for(engine, "before_execute")
    def _count(conn: Any, clause: Any, multiparams: Any, params: Any, options: Any) -> None:
        if isinstance(clause, sa.Insert):
            inserts.append(1)

    @sa.event.listens_for(engine, "before_cursor_execute")
    def _count_cursor(conn: Any, cur: Any, statement: str, params: Any, context: Any, many: bool) -> None:
        cursor.append(statement.split(None, 1)[0].upper())

    try:
        store = SqlStore(engine)
        spec = TableSpec(unique_name, (ID, Column("name", ct(Kind.STRING), nullable=False)), ("id",))
        rows = [row(spec, i, {"id": i, "name": None if i in bad else "x"}) for i in range(n)]
        outcomes = write(store, spec, rows, mode="insert")
    finally:
        engine.dispose()
        drop_table(pg_url, unique_name)

    bound = 1 + 2 * len(bad) * math.ceil(math.log2(n))
    print(
        f"\nbisection: {len(inserts)} INSERT executions for {len(bad)} bad rows in {n} (bound {bound}); "
        f"{len(cursor)} cursor executions in all: {dict(collections.Counter(cursor))}"
    )
    assert {o.coord.offset for o in outcomes if o.status is Status.FAILED} == bad
    assert sum(o.status is Status.WRITTEN for o in outcomes) == n - len(bad)
    assert len(inserts) <= bound
