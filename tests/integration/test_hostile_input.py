"""Hostile input against the real PostgreSQL, MariaDB and SQLite (issue 12, sections 1, 4 and 5).

Records go through the sink's own stages as `sink run` wires them (cli.build_worker): a `Preparer`
(schemaless JSON) with a `RowMapper` that checks names against the dialect's `IdentifierRules`, the
`Batcher`, and a `Writer` whose `WriteRules` carry the dialect's identifiers and table width. Every
record must end as exactly one outcome; a name, a value or a shape the database cannot hold is that
record's error, never a silent NULL, a merged column, a stop of the sink or a half-applied change.

- names: too long (bytes on PostgreSQL, characters on MariaDB), case-folded twins (MariaDB, SQLite),
  a twin of an existing column, topics that share the first 63 bytes, empty names, NUL;
- values at write time: a lone surrogate, NaN, an object into a scalar column, 2**63 batch after
  batch (no SQLSTATE 26000), 2,000 fields, all-null first records;
- isolation: a 3,000-row batch with half its rows rejected settles exactly, in bounded savepoints
  per transaction, and stop_at_rejection writes nothing after the first rejected row.
"""

from __future__ import annotations

import itertools
import json
import math
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest
import sqlalchemy as sa

from sink.adapters.db import SqlStore, create_engine
from sink.batch import Batcher
from sink.errors import DatabaseUnavailable, MappingError, RecordError, RecordRejected, SchemaRefused
from sink.formats.json_plain import JsonDecoder
from sink.model import Batch, Column, ColumnType, Coord, Kind, Op, Outcome, RawRecord, Row, Status, TableSpec
from sink.pipeline import Preparer, Writer, WriteRules
from sink.transforms import MappingRules, RowMapper
from tests.support.db import create_poison_table, drop_table, fetch_rows, table_columns

pytestmark = pytest.mark.integration

URL_FIXTURES = {"postgresql": "pg_url", "mariadb": "mariadb_url", "sqlite": "sqlite_url"}
ALL = list(URL_FIXTURES)


# ------------------------------------------------------------------------------ fixtures and helpers


@dataclass
class Db:
    kind: str
    url: str
    store: SqlStore
    tables: list[str] = field(default_factory=list)

    def table(self, name: str) -> str:
        """Register `name` to be dropped before and after the test."""
        self.drop(name)
        self.tables.append(name)
        return name

    def drop(self, name: str) -> None:
        # Listed, not looked up: MariaDB refuses even to DESCRIBE a name past its limit.
        if name in self.table_names():
            drop_table(self.url, name)

    def table_names(self) -> list[str]:
        engine = sa.create_engine(self.url, poolclass=sa.pool.NullPool)
        try:
            return sa.inspect(engine).get_table_names()
        finally:
            engine.dispose()

    def has_table(self, name: str) -> bool:
        return name in self.table_names()


@pytest.fixture
def db(request: pytest.FixtureRequest, kind: str, unique_name: str) -> Iterator[Db]:
    url = str(request.getfixturevalue(URL_FIXTURES[kind]))
    engine = create_engine(url)
    target = Db(kind, url, SqlStore(engine))
    try:
        yield target
    finally:
        engine.dispose()
        for table in target.tables:
            target.drop(table)


class Sink:
    """The sink's stages as build_worker wires them, minus Kafka: JSON in, outcomes out."""

    def __init__(
        self,
        store: Any,
        *,
        mode: str = "upsert",
        pk_mode: str = "record_value",
        pk_fields: tuple[str, ...] = ("id",),
        auto_evolve: bool = True,
        stop_at_rejection: bool = False,
    ) -> None:
        dialect = store.dialect
        self.mapper = RowMapper(MappingRules(pk_mode=pk_mode, pk_fields=pk_fields), dialect.identifiers)
        self.preparer = Preparer(JsonDecoder(), JsonDecoder(), self.mapper)
        self.rules = WriteRules(
            mode,
            auto_create=True,
            auto_evolve=auto_evolve,
            stop_at_rejection=stop_at_rejection,
            identifiers=dialect.identifiers,
            max_columns=dialect.max_columns,
        )
        self.writer = Writer(store, self.rules)
        self._offsets: dict[str, Iterator[int]] = {}

    def send(self, topic: str, values: Sequence[Mapping[str, Any] | bytes]) -> list[Outcome]:
        """One poll's worth of records of `topic` as one batch per table: their outcomes, in offset order."""
        offsets = self._offsets.setdefault(topic, itertools.count())
        outcomes: list[Outcome] = []
        batcher = Batcher(max_rows=1_000_000, max_wait_ms=10**9, clock=time.monotonic)
        for value in values:
            data = value if isinstance(value, bytes) else json.dumps(value).encode()
            raw = RawRecord(Coord(topic, 0, next(offsets)), None, data)
            try:
                prepared = self.preparer.prepare(raw)
            except RecordError as error:
                outcomes.append(Outcome(raw, Status.FAILED, None, None, None, error.stage, error))
                continue
            if isinstance(prepared, Outcome):
                outcomes.append(prepared)
                continue
            for batch in batcher.add(prepared):
                outcomes += self.writer.write(batch)
        for batch in batcher.drain():
            outcomes += self.writer.write(batch)
        return sorted(outcomes, key=lambda o: o.raw.coord.offset)


def statuses(outcomes: Sequence[Outcome]) -> list[str]:
    return [o.status.value for o in outcomes]


def error_of(outcome: Outcome, kind: type[Exception]) -> Exception:
    assert outcome.status is Status.FAILED, outcome
    assert isinstance(outcome.error, kind), (type(outcome.error), outcome.error)
    return outcome.error


def ids(db: Db, table: str) -> list[Any]:
    return [row["id"] for row in fetch_rows(db.url, table, order_by="id")]


# ------------------------------------------------------------------------------ 1. identifier limits


@pytest.mark.parametrize("kind", ALL)
def test_field_name_longer_than_the_database_allows_is_a_record_error_never_a_null(db: Db, unique_name: str) -> None:
    table = db.table(unique_name)
    long_name = "f" * 70
    outcomes = Sink(db.store).send(table, [{"id": 1, long_name: 42, "v": "kept"}, {"id": 2, "v": "other"}])

    if db.kind == "sqlite":  # no length limit: the value lands in its own column
        assert statuses(outcomes) == ["written", "written"]
        rows = fetch_rows(db.url, table, order_by="id")
        assert [(r["id"], r[long_name], r["v"]) for r in rows] == [(1, 42, "kept"), (2, None, "other")]
        return
    error = error_of(outcomes[0], MappingError)
    limit = {"postgresql": "70 bytes is longer than PostgreSQL's limit of 63", "mariadb": "70 characters"}[db.kind]
    assert limit in str(error)
    assert "fffff" in str(error), "the message names the field"
    if db.kind == "mariadb":
        assert "64" in str(error)
    assert outcomes[1].status is Status.WRITTEN
    assert [(r["id"], r["v"]) for r in fetch_rows(db.url, table, order_by="id")] == [(2, "other")]
    assert not any(name.startswith("fff") for name in table_columns(db.url, table)), "no column cut to the limit"


@pytest.mark.parametrize("kind", ["mariadb"])
def test_mariadb_counts_characters_64_e_acute_fit_and_65_do_not(db: Db, unique_name: str) -> None:
    table = db.table(unique_name)
    fits, too_long = "é" * 64, "é" * 65  # 128 and 130 bytes: characters count on MariaDB
    sink = Sink(db.store)
    assert statuses(sink.send(table, [{"id": 1, fits: 7}])) == ["written"]
    outcomes = sink.send(table, [{"id": 2, too_long: 8}, {"id": 3, fits: 9}])

    error = error_of(outcomes[0], MappingError)
    assert "65 characters is longer than MariaDB/MySQL's limit of 64" in str(error)
    assert outcomes[1].status is Status.WRITTEN
    assert list(table_columns(db.url, table)) == ["id", fits]
    assert [(r["id"], r[fits]) for r in fetch_rows(db.url, table, order_by="id")] == [(1, 7), (3, 9)]


@pytest.mark.parametrize("kind", ["postgresql"])
def test_postgresql_counts_bytes_31_e_acute_fit_and_32_do_not(db: Db, unique_name: str) -> None:
    table = db.table(unique_name)
    fits, too_long = "é" * 31, "é" * 32  # 62 and 64 bytes
    outcomes = Sink(db.store).send(table, [{"id": 1, fits: 1}, {"id": 2, too_long: 2}])

    assert outcomes[0].status is Status.WRITTEN
    assert "64 bytes is longer than PostgreSQL's limit of 63" in str(error_of(outcomes[1], MappingError))
    assert list(table_columns(db.url, table)) == ["id", fits]


@pytest.mark.parametrize("kind", ALL)
def test_fields_differing_only_in_case_in_one_record(db: Db, unique_name: str) -> None:
    table = db.table(unique_name)
    outcomes = Sink(db.store).send(table, [{"id": 1, "Name": "upper", "name": "lower"}, {"id": 2, "name": "x"}])

    if db.kind == "postgresql":  # case-sensitive names: two columns
        assert statuses(outcomes) == ["written", "written"]
        rows = fetch_rows(db.url, table, order_by="id")
        assert [(r["id"], r["Name"], r["name"]) for r in rows] == [(1, "upper", "lower"), (2, None, "x")]
        return
    error = error_of(outcomes[0], MappingError)
    assert "'Name'" in str(error) and "'name'" in str(error) and "without regard to case" in str(error)
    assert outcomes[1].status is Status.WRITTEN
    assert list(table_columns(db.url, table)) == ["id", "name"]
    assert [(r["id"], r["name"]) for r in fetch_rows(db.url, table, order_by="id")] == [(2, "x")]


@pytest.mark.parametrize("kind", ALL)
def test_field_that_is_an_existing_column_under_case_folding(db: Db, unique_name: str) -> None:
    table = db.table(unique_name)
    sink = Sink(db.store)
    assert statuses(sink.send(table, [{"id": 1, "name": "first"}])) == ["written"]
    outcomes = sink.send(table, [{"id": 2, "Name": "shadow"}, {"id": 3, "name": "third"}])

    if db.kind == "postgresql":  # a new, distinct column
        assert statuses(outcomes) == ["written", "written"]
        assert list(table_columns(db.url, table)) == ["id", "name", "Name"]
        return
    error = error_of(outcomes[0], SchemaRefused)
    assert outcomes[0].status is Status.FAILED
    assert "'Name'" in str(error) and "'name'" in str(error)
    assert outcomes[1].status is Status.WRITTEN
    assert list(table_columns(db.url, table)) == ["id", "name"], "nothing altered"
    assert [(r["id"], r["name"]) for r in fetch_rows(db.url, table, order_by="id")] == [(1, "first"), (3, "third")]


@pytest.mark.parametrize("kind", ["postgresql", "mariadb"])
def test_two_topics_sharing_the_first_63_bytes_are_never_one_table(db: Db, unique_name: str) -> None:
    prefix = (unique_name + "_" + "x" * 70)[:63]
    first, second = prefix + "_a", prefix + "_b"  # 65 characters and bytes: over both limits
    for name in (prefix, prefix[:64], first, second):
        db.table(name)
    sink = Sink(db.store)
    one = sink.send(first, [{"id": 1, "v": "from a"}])
    two = sink.send(second, [{"id": 1, "v": "from b"}])

    for outcome, topic in ((one[0], first), (two[0], second)):
        error = error_of(outcome, MappingError)
        assert f"table name {topic!r}" in str(error)
        assert "65 " in str(error) and "longer than" in str(error)
    assert not any(name.startswith(unique_name) for name in db.table_names())


@pytest.mark.parametrize("kind", ["sqlite"])
def test_sqlite_topics_differing_only_in_case_are_not_one_table(db: Db, unique_name: str) -> None:
    lower, upper = db.table(unique_name), unique_name.upper()
    sink = Sink(db.store)
    assert statuses(sink.send(lower, [{"id": 1, "v": "lower"}])) == ["written"]
    outcome = sink.send(upper, [{"id": 1, "v": "UPPER"}])[0]

    assert "without regard to case" in str(error_of(outcome, MappingError))
    assert [(r["id"], r["v"]) for r in fetch_rows(db.url, lower)] == [(1, "lower")], "not overwritten"


@pytest.mark.parametrize("kind", ALL)
def test_empty_field_name_and_nul_in_a_field_name_are_record_errors(db: Db, unique_name: str) -> None:
    table = db.table(unique_name)
    outcomes = Sink(db.store).send(
        table,
        [{"id": 1, "v": "a"}, {"id": 2, "": 5}, {"id": 3, "a\x00b": 6}, {"id": 4, "v": "d"}],
    )

    assert statuses(outcomes) == ["written", "failed", "failed", "written"]
    assert "an empty name is not allowed" in str(error_of(outcomes[1], MappingError))
    assert "NUL" in str(error_of(outcomes[2], MappingError))
    assert list(table_columns(db.url, table)) == ["id", "v"]
    assert ids(db, table) == [1, 4]


# ------------------------------------------------------------------------------ 4. values at write time


@pytest.mark.parametrize("kind", ALL)
def test_lone_surrogate_is_that_rows_error_and_the_good_rows_land(db: Db, unique_name: str) -> None:
    table = db.table(unique_name)
    sink = Sink(db.store)
    assert statuses(sink.send(table, [{"id": 0, "v": "exists"}])) == ["written"]
    values = [{"id": i, "v": f"good {i}"} for i in range(1, 6)]
    values.insert(2, {"id": 99, "v": "bad \ud800 here"})
    outcomes = sink.send(table, values)

    assert statuses(outcomes) == ["written", "written", "failed", "written", "written", "written"]
    error = error_of(outcomes[2], RecordRejected)
    assert outcomes[2].raw.coord.offset == 3
    assert "Unicode" in str(error) or "surrogate" in str(error) or "utf" in str(error).lower(), str(error)
    assert ids(db, table) == [0, 1, 2, 3, 4, 5]


@pytest.mark.parametrize("kind", ALL)
def test_nan_is_that_rows_error_where_the_database_cannot_hold_it(db: Db, unique_name: str) -> None:
    table = db.table(unique_name)
    sink = Sink(db.store)
    assert statuses(sink.send(table, [{"id": 0, "x": 0.5}])) == ["written"]
    outcomes = sink.send(table, [{"id": 1, "x": 1.5}, {"id": 2, "x": float("nan")}, {"id": 3, "x": 3.5}])

    rows = {r["id"]: r["x"] for r in fetch_rows(db.url, table, order_by="id")}
    if db.kind == "postgresql":
        assert statuses(outcomes) == ["written"] * 3
        assert math.isnan(rows[2])
        assert rows[3] == 3.5
        return
    assert statuses(outcomes) == ["written", "failed", "written"]
    assert "cannot store the float nan" in str(error_of(outcomes[1], RecordRejected))
    assert rows == {0: 0.5, 1: 1.5, 3: 3.5}, "never a NULL for the NaN"


@pytest.mark.parametrize("kind", ["postgresql", "mariadb"])
def test_object_into_an_existing_scalar_column_is_that_rows_error(db: Db, unique_name: str) -> None:
    table = db.table(unique_name)
    sink = Sink(db.store)
    assert statuses(sink.send(table, [{"id": 0, "n": 1, "t": "text"}])) == ["written"]
    outcomes = sink.send(
        table,
        [
            {"id": 1, "n": 10, "t": "a"},
            {"id": 2, "n": {"nested": 1}, "t": "b"},
            {"id": 3, "n": 30, "t": "c"},
            {"id": 4, "n": 40, "t": {"nested": [1, 2]}},
            {"id": 5, "n": 50, "t": "e"},
        ],
    )

    assert statuses(outcomes) == ["written", "failed", "written", "failed", "written"]
    error_of(outcomes[1], RecordRejected)
    error_of(outcomes[3], RecordRejected)
    rows = fetch_rows(db.url, table, order_by="id")
    assert [(r["id"], r["n"], r["t"]) for r in rows] == [(0, 1, "text"), (1, 10, "a"), (3, 30, "c"), (5, 50, "e")]


@pytest.mark.parametrize("kind", ["postgresql"])
def test_out_of_range_batches_followed_by_more_batches_never_lose_a_prepared_statement(
    db: Db, unique_name: str
) -> None:
    """SQLSTATE 26000 ("prepared statement _pg3_N does not exist") came after a rejected batch once
    psycopg had prepared the statement (5th run): rounds of rejected and good batches on one store."""
    table = db.table(unique_name)
    sink = Sink(db.store)
    assert statuses(sink.send(table, [{"id": 0, "n": 1}])) == ["written"]
    next_id = itertools.count(1)
    for round_ in range(8):
        mixed = [{"id": next(next_id), "n": 2**63 if i % 2 else i} for i in range(6)]
        outcomes = sink.send(table, mixed)
        assert statuses(outcomes) == ["written", "failed"] * 3, round_
        for outcome in outcomes[1::2]:
            assert error_of(outcome, RecordRejected).sqlstate == "22003", round_  # numeric_value_out_of_range
        rejected = sink.send(table, [{"id": next(next_id), "n": 2**63 + i} for i in range(3)])
        assert statuses(rejected) == ["failed"] * 3, round_
        good = sink.send(table, [{"id": next(next_id), "n": i} for i in range(5)])
        assert statuses(good) == ["written"] * 5, round_
    rows = fetch_rows(db.url, table, order_by="id")
    assert len(rows) == 1 + 8 * (3 + 5)
    with db.store.engine.connect() as connection:  # the fix: no server-side prepared statements
        assert connection.connection.dbapi_connection.prepare_threshold is None
    assert all(r["n"] < 2**63 for r in rows)


TOO_WIDE = 2000


@pytest.mark.parametrize("kind", ALL)
def test_record_with_2000_fields_is_refused_and_the_table_gains_no_column(db: Db, unique_name: str) -> None:
    table = db.table(unique_name)
    sink = Sink(db.store)
    assert statuses(sink.send(table, [{"id": 0, "a": 0}])) == ["written"]
    wide = {"id": 2, **{f"f{i}": i for i in range(TOO_WIDE)}}
    outcomes = sink.send(table, [{"id": 1, "a": 1}, wide, {"id": 3, "a": 3}])

    assert statuses(outcomes) == ["written", "failed", "written"]
    error = error_of(outcomes[1], SchemaRefused)
    assert "columns, more than the" in str(error), str(error)[:300]
    assert list(table_columns(db.url, table)) == ["id", "a"], "no column added"
    assert ids(db, table) == [0, 1, 3]


@pytest.mark.parametrize("kind", ALL)
def test_first_record_with_2000_fields_on_a_missing_table_is_refused(db: Db, unique_name: str) -> None:
    table = db.table(unique_name)
    outcomes = Sink(db.store).send(table, [{"id": 1, **{f"f{i}": i for i in range(TOO_WIDE)}}])

    assert "columns, more than the" in str(error_of(outcomes[0], SchemaRefused))[:500]
    assert not db.has_table(table)


@pytest.mark.parametrize("kind", ["mariadb"])
def test_mariadb_evolution_the_database_refuses_leaves_no_column_behind(db: Db, unique_name: str) -> None:
    """Within every limit the sink checks, but past MariaDB's 65,535-byte row: a VARCHAR(16378)
    utf8mb4 leaves room for one more BIGINT, not two. The evolution adding `b` and `c` fails in the
    database as one statement, so `b` is not left behind (MariaDB cannot roll DDL back)."""
    table = db.table(unique_name)
    metadata = sa.MetaData()
    sa.Table(
        table,
        metadata,
        sa.Column("id", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("a", sa.dialects.mysql.VARCHAR(16378, charset="utf8mb4")),
    )
    metadata.create_all(db.store.engine)
    sink = Sink(db.store)
    assert statuses(sink.send(table, [{"id": 0, "a": "x"}])) == ["written"]
    outcomes = sink.send(table, [{"id": 1, "a": "y", "b": 1, "c": 2}, {"id": 2, "a": "z"}])

    assert statuses(outcomes) == ["failed", "written"]
    error = error_of(outcomes[0], SchemaRefused)
    assert "refused to change table" in str(error) and "1118" in str(error), str(error)[:300]
    assert list(table_columns(db.url, table)) == ["id", "a"], "all or nothing"
    assert ids(db, table) == [0, 2]
    # One of them alone fits: the record that needs only `b` goes in.
    assert statuses(sink.send(table, [{"id": 3, "b": 3}])) == ["written"]
    assert list(table_columns(db.url, table)) == ["id", "a", "b"]


@pytest.mark.parametrize("kind", ["mariadb"])
def test_mariadb_evolution_adding_three_columns_is_one_statement(db: Db, unique_name: str) -> None:
    table = db.table(unique_name)
    sink = Sink(db.store)
    assert statuses(sink.send(table, [{"id": 0, "a": "x"}])) == ["written"]
    alters: list[str] = []

    def seen(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if statement.lstrip().upper().startswith("ALTER"):
            alters.append(statement)

    sa.event.listen(db.store.engine, "before_cursor_execute", seen)
    try:
        outcomes = sink.send(table, [{"id": 1, "a": "y", "b": 1, "c": "two", "d": 2.5}])
    finally:
        sa.event.remove(db.store.engine, "before_cursor_execute", seen)

    assert statuses(outcomes) == ["written"]
    assert len(alters) == 1, alters
    assert list(table_columns(db.url, table)) == ["id", "a", "b", "c", "d"]
    row = fetch_rows(db.url, table, order_by="id")[1]
    assert (row["b"], row["c"], row["d"]) == (1, "two", 2.5)


@pytest.mark.parametrize("kind", ALL)
def test_first_records_with_only_null_fields_are_refused_not_a_crash(db: Db, unique_name: str) -> None:
    table = db.table(unique_name)
    sink = Sink(db.store, mode="insert", pk_mode="none", pk_fields=())
    outcomes = sink.send(table, [{"a": None, "b": None}, {}, {"a": None}])

    assert "fields are all null" in str(error_of(outcomes[0], SchemaRefused))
    assert "no fields" in str(error_of(outcomes[1], MappingError))
    error_of(outcomes[2], SchemaRefused)
    assert not db.has_table(table)
    # Once a record gives the columns a type, the null ones go in.
    outcomes = sink.send(table, [{"a": 1, "b": "x"}, {"a": None, "b": None}])
    assert statuses(outcomes) == ["written", "written"]
    assert len(fetch_rows(db.url, table)) == 2


# ------------------------------------------------------------------------------ 5. bounded isolation


POISON_SPEC_COLUMNS = (
    Column("id", ColumnType(Kind.INT64), nullable=False),
    Column("qty", ColumnType(Kind.INT64)),
    Column("note", ColumnType(Kind.STRING)),
)


def poison_batch(table: str, values: Sequence[Mapping[str, Any]]) -> Batch:
    spec = TableSpec(table, POISON_SPEC_COLUMNS, ("id",))
    rows = tuple(
        Row(RawRecord(Coord(table, 0, i), None, b""), table, Op.UPSERT, {"id": v["id"]}, dict(v), spec, None, True)
        for i, v in enumerate(values)
    )
    return Batch(table, spec, rows, inferred=True)


class CountingStore:
    """The real SqlStore, counting the savepoints each transaction takes (and that none overlap)."""

    def __init__(self, inner: SqlStore) -> None:
        self.inner = inner
        self.savepoints: list[int] = []  # per transaction, in order
        self.open = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    @contextmanager
    def transaction(self) -> Iterator[Any]:
        assert self.open == 0, "two transactions of one batch open at once"
        self.open += 1
        index = len(self.savepoints)
        self.savepoints.append(0)
        try:
            with self.inner.transaction() as tx:
                yield _CountingTx(tx, self.savepoints, index)
        finally:
            self.open -= 1


class _CountingTx:
    def __init__(self, tx: Any, counts: list[int], index: int) -> None:
        self.tx, self.counts, self.index = tx, counts, index

    def savepoint(self) -> Any:
        self.counts[self.index] += 1
        return self.tx.savepoint()

    def apply(self, *args: Any, **kwargs: Any) -> Any:
        return self.tx.apply(*args, **kwargs)


@pytest.mark.parametrize("kind", ["postgresql"])
def test_half_of_3000_rows_rejected_settles_exactly_in_bounded_savepoints(db: Db, unique_name: str) -> None:
    table = db.table(unique_name)
    create_poison_table(db.url, table)
    store = CountingStore(db.store)
    rules = WriteRules("upsert", auto_create=False, identifiers=db.store.dialect.identifiers)
    values = [{"id": i, "qty": -1 if i % 2 else i, "note": f"n{i}"} for i in range(3000)]
    committed: list[list[Outcome]] = []

    started = time.monotonic()
    try:
        outcomes = Writer(store, rules).write(poison_batch(table, values), on_commit=committed.append)
    except DatabaseUnavailable as exc:  # SQLSTATE 53200 out of shared memory would land here
        pytest.fail(f"isolation treated as an outage: {exc}")
    elapsed = time.monotonic() - started
    print(
        f"\n3,000-row upsert, 1,500 rejected, on PostgreSQL: settled in {elapsed:.2f} s, "
        f"{len(store.savepoints)} transactions, {sum(store.savepoints)} savepoints"
    )

    by_offset = {o.raw.coord.offset: o for o in outcomes}
    assert len(outcomes) == 3000 and sorted(by_offset) == list(range(3000)), "one outcome per record"
    failed = sorted(i for i, o in by_offset.items() if o.status is Status.FAILED)
    written = sorted(i for i, o in by_offset.items() if o.status is Status.WRITTEN)
    assert failed == list(range(1, 3000, 2))
    assert written == list(range(0, 3000, 2))
    for i in failed[:5] + failed[-5:]:
        error = error_of(by_offset[i], RecordRejected)
        assert error.sqlstate == "23514" and error.constraint == f"{table}_qty_nonneg"
    assert ids(db, table) == written
    assert max(store.savepoints) <= rules.max_savepoints, store.savepoints
    assert len(store.savepoints) > 1, "isolation went on in new transactions"
    assert sum(len(part) for part in committed) == 3000, "every outcome announced as its transaction committed"


@pytest.mark.parametrize("kind", ["postgresql"])
def test_savepoint_bound_holds_for_a_small_limit(db: Db, unique_name: str) -> None:
    table = db.table(unique_name)
    create_poison_table(db.url, table)
    store = CountingStore(db.store)
    rules = WriteRules("upsert", identifiers=db.store.dialect.identifiers, max_savepoints=4)
    values = [{"id": i, "qty": -1 if i % 7 == 3 else i, "note": "n"} for i in range(300)]
    outcomes = Writer(store, rules).write(poison_batch(table, values))

    bad = [i for i in range(300) if i % 7 == 3]
    assert sorted(o.raw.coord.offset for o in outcomes if o.status is Status.FAILED) == bad
    assert ids(db, table) == [i for i in range(300) if i % 7 != 3]
    assert max(store.savepoints) <= 4, store.savepoints


@pytest.mark.parametrize("kind", ALL)
def test_stop_at_rejection_writes_nothing_after_the_first_rejected_row(db: Db, unique_name: str) -> None:
    table = db.table(unique_name)
    create_poison_table(db.url, table)
    bad = {i for i in range(300) if (i * 37) % 10 < 3} - set(range(40))  # 30 % of the rest; first bad past 40
    first_bad = min(bad)
    values = [{"id": i, "qty": -1 if i in bad else i, "note": "n"} for i in range(300)]
    rules = WriteRules("upsert", stop_at_rejection=True, identifiers=db.store.dialect.identifiers)
    outcomes = Writer(db.store, rules).write(poison_batch(table, values))

    assert [o.raw.coord.offset for o in outcomes if o.status is Status.WRITTEN] == list(range(first_bad))
    assert [o.raw.coord.offset for o in outcomes if o.status is Status.FAILED] == [first_bad]
    error_of(next(o for o in outcomes if o.status is Status.FAILED), RecordRejected)
    assert len(outcomes) == first_bad + 1, "the rest stays unsettled"
    assert ids(db, table) == list(range(first_bad)), "nothing after the first rejected row"


@pytest.mark.parametrize("kind", ["postgresql"])
def test_shutdown_during_isolation_keeps_exactly_what_was_announced(db: Db, unique_name: str) -> None:
    """A checkpoint that raises (the shutdown deadline) mid-isolation: the open transaction is rolled
    back, and the table holds exactly the rows whose outcomes were announced as committed."""
    table = db.table(unique_name)
    create_poison_table(db.url, table)
    values = [{"id": i, "qty": -1 if i % 4 == 1 else i, "note": "n"} for i in range(1000)]
    committed: list[Outcome] = []
    calls = itertools.count()

    class Deadline(Exception):
        pass

    def checkpoint() -> None:
        if next(calls) == 150:
            raise Deadline

    rules = WriteRules("upsert", identifiers=db.store.dialect.identifiers)
    with pytest.raises(Deadline):
        Writer(db.store, rules).write(poison_batch(table, values), on_commit=committed.extend, checkpoint=checkpoint)

    written = sorted(o.raw.coord.offset for o in committed if o.status is Status.WRITTEN)
    assert written, "some isolation work committed before the deadline"
    assert len(committed) < 1000
    assert ids(db, table) == written
    assert all(values[o.raw.coord.offset]["qty"] < 0 for o in committed if o.status is Status.FAILED)


# ------------------------------------------------------------------------------ driver-side and row-size refusals


@pytest.mark.parametrize("kind", ["sqlite"])
def test_sqlite_object_into_an_existing_scalar_column_is_that_rows_error(db: Db, unique_name: str) -> None:
    """sqlite3 refuses to bind a dict (ProgrammingError "type 'dict' is not supported"): one row's
    value the driver cannot send, so that row's error, not a FatalError that stops the sink."""
    table = db.table(unique_name)
    sink = Sink(db.store)
    assert statuses(sink.send(table, [{"id": 0, "n": 1, "t": "text"}])) == ["written"]
    outcomes = sink.send(
        table,
        [
            {"id": 1, "n": 10, "t": "a"},
            {"id": 2, "n": {"nested": 1}, "t": "b"},
            {"id": 3, "n": 30, "t": "c"},
            {"id": 4, "n": 40, "t": {"nested": [1, 2]}},
            {"id": 5, "n": 50, "t": "e"},
        ],
    )

    assert statuses(outcomes) == ["written", "failed", "written", "failed", "written"]
    error_of(outcomes[1], RecordRejected)
    error_of(outcomes[3], RecordRejected)
    assert ids(db, table) == [0, 1, 3, 5]


@pytest.mark.parametrize("kind", ["mariadb"])
def test_mariadb_row_too_large_for_innodb_is_that_rows_error(db: Db, unique_name: str) -> None:
    """1,010 BIGINT fields: within the 1,017-column limit, and MariaDB 10.11 takes the ALTER, but the
    INSERT of that row fails with 1118 "Row size too large (> 8126)". A failure the row reproduces
    alone is that row's error; today it is a FatalError (a stop, and the same stop on every restart)."""
    table = db.table(unique_name)
    sink = Sink(db.store)
    assert statuses(sink.send(table, [{"id": 0, "a": "x"}])) == ["written"]
    outcomes = sink.send(table, [{"id": 1, **{f"c{i}": i for i in range(1010)}}, {"id": 2, "a": "y"}])

    assert statuses(outcomes) == ["failed", "written"]
    assert isinstance(outcomes[0].error, RecordRejected | SchemaRefused)
    assert ids(db, table) == [0, 2]
