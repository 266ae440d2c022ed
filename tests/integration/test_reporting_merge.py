"""Per-record reports on PostgreSQL's bulk path (the reporting merge), against what a hand-made
table can hold: odd key values and collations, key columns named like the merge's own names,
triggers that rewrite the key, rejected rows (review probes, kept as tests)."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa

from sink.adapters import pgcopy
from sink.adapters.db import SqlStore, create_engine
from sink.model import Batch, Column, ColumnType, Coord, Kind, Op, RawRecord, Row, Status, TableSpec
from sink.pipeline import Writer, WriteRules
from tests.support.db import drop_table, fetch_rows

pytestmark = pytest.mark.integration


def _batch(spec: TableSpec, values: list[dict[str, Any]], key: tuple[str, ...], offset: int = 0) -> Batch:
    rows = tuple(
        Row(RawRecord(Coord("t", 0, offset + n), None, None), spec.name, Op.UPSERT, {k: v[k] for k in key}, v, spec)
        for n, v in enumerate(values)
    )
    return Batch(spec.name, spec, rows)


def _writer(url: str) -> tuple[sa.Engine, Writer]:
    engine = create_engine(url)
    return engine, Writer(SqlStore(engine, report_operations=True), WriteRules("upsert", auto_create=True))


ID = Column("id", ColumnType(Kind.INT64), nullable=False)
TEXT = ColumnType(Kind.STRING)


@pytest.mark.parametrize("column", ["_sink_n", "_sink_inserted", "_sink_written"])
def test_a_user_column_named_like_the_merges_own_names_is_written(pg_url: str, unique_name: str, column: str) -> None:
    spec = TableSpec(unique_name, (ID, Column(column, ColumnType(Kind.STRING))), ("id",))
    engine, writer = _writer(pg_url)
    try:
        outcomes = writer.write(_batch(spec, [{"id": i, column: f"v{i}"} for i in range(20)], ("id",)))
        assert {o.status for o in outcomes} == {Status.WRITTEN}, [o.error for o in outcomes][:1]
        assert {o.operation for o in outcomes} == {"insert"}
        rows = fetch_rows(pg_url, unique_name, order_by="id")
        assert [r[column] for r in rows] == [f"v{i}" for i in range(20)]
    finally:
        engine.dispose()
        drop_table(pg_url, unique_name)


@pytest.mark.parametrize("column", ["_sink_n", "_sink_inserted"])
def test_a_key_column_named_like_the_merges_own_names(pg_url: str, unique_name: str, column: str) -> None:
    spec = TableSpec(
        unique_name,
        (Column(column, ColumnType(Kind.INT64), nullable=False), Column("v", ColumnType(Kind.STRING))),
        (column,),
    )
    engine, writer = _writer(pg_url)
    try:
        outcomes = writer.write(_batch(spec, [{column: i, "v": "a"} for i in range(20)], (column,)))
        assert {o.status for o in outcomes} == {Status.WRITTEN}, [o.error for o in outcomes][:1]
        assert {o.operation for o in outcomes} == {"insert"}
        outcomes = writer.write(_batch(spec, [{column: i, "v": "b"} for i in range(20)], (column,), offset=20))
        assert {o.operation for o in outcomes} == {"update"}
        assert [r["v"] for r in fetch_rows(pg_url, unique_name, order_by=column)] == ["b"] * 20
    finally:
        engine.dispose()
        drop_table(pg_url, unique_name)


def test_a_table_named_like_the_cte(pg_url: str) -> None:
    name = "_sink_written"
    drop_table(pg_url, name)
    spec = TableSpec(name, (ID, Column("v", ColumnType(Kind.STRING))), ("id",))
    engine, writer = _writer(pg_url)
    try:
        outcomes = writer.write(_batch(spec, [{"id": i, "v": "a"} for i in range(20)], ("id",)))
        assert {o.status for o in outcomes} == {Status.WRITTEN}, [o.error for o in outcomes][:1]
        assert {o.operation for o in outcomes} == {"insert"}
        outcomes = writer.write(_batch(spec, [{"id": i, "v": "b"} for i in range(10, 30)], ("id",), offset=20))
        ops = {o.key["id"]: o.operation for o in outcomes}
        assert [ops[i] for i in range(10, 30)] == ["update"] * 10 + ["insert"] * 10
    finally:
        engine.dispose()
        drop_table(pg_url, name)


@pytest.mark.parametrize(
    ("kind", "keys"),
    [
        (ColumnType(Kind.FLOAT64), [0.0, -0.0, float("nan"), 1.5]),
        (ColumnType(Kind.BYTES), [b"\x00", b"a", b"a\x00"]),
    ],
)
def test_odd_key_values_report_insert_then_update(
    pg_url: str, unique_name: str, kind: ColumnType, keys: list[Any]
) -> None:
    spec = TableSpec(unique_name, (Column("k", kind, nullable=False), Column("v", TEXT)), ("k",))
    engine, writer = _writer(pg_url)
    # 20 rows: the odd keys plus fillers, so the bulk path runs; -0.0 and 0.0 are one key in Python too
    fillers = [float(i + 10) if kind.kind is Kind.FLOAT64 else bytes([i + 100]) for i in range(20)]
    unique = []
    for k in keys:
        if not any(k == u or (k != k and u != u) for u in unique):
            unique.append(k)
    values = [{"k": k, "v": "a"} for k in unique + fillers]
    try:
        first = writer.write(_batch(spec, values, ("k",)))
        assert {o.status for o in first} == {Status.WRITTEN}, [o.error for o in first][:1]
        assert [o.operation for o in first] == ["insert"] * len(values)
        second = writer.write(_batch(spec, [{**v, "v": "b"} for v in values], ("k",), offset=100))
        assert [o.operation for o in second] == ["update"] * len(values)
    finally:
        engine.dispose()
        drop_table(pg_url, unique_name)


def test_a_case_insensitive_text_key(pg_url: str, unique_name: str) -> None:
    """A table made by hand with a nondeterministic collation on its text key."""
    with sa.create_engine(pg_url).begin() as c:
        ci = "provider = icu, locale = 'und-u-ks-level2', deterministic = false"
        c.exec_driver_sql(f"CREATE COLLATION IF NOT EXISTS ci_review ({ci})")
        c.exec_driver_sql(f'CREATE TABLE "{unique_name}" (k text COLLATE ci_review PRIMARY KEY, v text)')
        c.exec_driver_sql(f"INSERT INTO \"{unique_name}\" SELECT 'KEY' || g, 'old' FROM generate_series(0, 9) g")
    spec = TableSpec(unique_name, (Column("k", TEXT, nullable=False), Column("v", TEXT)), ("k",))
    engine, writer = _writer(pg_url)
    try:
        values = [{"k": f"key{i}", "v": "new"} for i in range(20)]
        outcomes = writer.write(_batch(spec, values, ("k",)))
        assert {o.status for o in outcomes} == {Status.WRITTEN}, [o.error for o in outcomes][:1]
        assert [o.operation for o in outcomes] == ["update"] * 10 + ["insert"] * 10
    finally:
        engine.dispose()
        drop_table(pg_url, unique_name)


def test_a_key_a_trigger_rewrites_is_never_reported_as_updated(pg_url: str, unique_name: str) -> None:
    """A BEFORE INSERT trigger normalising the key (lower(email)): the written key no longer
    equals the staged one and the merge's answer cannot be joined back to the row: the row is
    reported as an upsert (unknown), never as the update it was not."""
    with sa.create_engine(pg_url).begin() as c:
        c.exec_driver_sql(f'CREATE TABLE "{unique_name}" (k text PRIMARY KEY, v text)')
        lower = "BEGIN NEW.k := lower(NEW.k); RETURN NEW; END"
        c.exec_driver_sql(f'CREATE FUNCTION "{unique_name}_f"() RETURNS trigger LANGUAGE plpgsql AS $$ {lower} $$')
        trigger = f'EXECUTE FUNCTION "{unique_name}_f"()'
        c.exec_driver_sql(f'CREATE TRIGGER tr BEFORE INSERT ON "{unique_name}" FOR EACH ROW {trigger}')
    spec = TableSpec(unique_name, (Column("k", TEXT, nullable=False), Column("v", TEXT)), ("k",))
    engine, writer = _writer(pg_url)
    try:
        outcomes = writer.write(_batch(spec, [{"k": f"KEY{i}", "v": "x"} for i in range(20)], ("k",)))
        assert {o.status for o in outcomes} == {Status.WRITTEN}
        assert [o.operation for o in outcomes] == ["upsert"] * 20
    finally:
        engine.dispose()
        drop_table(pg_url, unique_name)
        with sa.create_engine(pg_url).begin() as c:
            c.exec_driver_sql(f'DROP FUNCTION IF EXISTS "{unique_name}_f"()')


def test_a_rejected_row_is_isolated_with_reporting(pg_url: str, unique_name: str) -> None:
    with sa.create_engine(pg_url).begin() as c:
        c.exec_driver_sql(f"CREATE TABLE \"{unique_name}\" (id bigint PRIMARY KEY, v text CHECK (v <> 'bad'))")
        c.exec_driver_sql(f"INSERT INTO \"{unique_name}\" SELECT g, 'old' FROM generate_series(0, 9) g")
    spec = TableSpec(unique_name, (ID, Column("v", ColumnType(Kind.STRING))), ("id",))
    engine, writer = _writer(pg_url)
    try:
        for size, bad in ((16, 7), (17, 16), (40, 33), (33, 0)):
            values = [{"id": i, "v": "bad" if i == bad else f"n{size}"} for i in range(size)]
            outcomes = writer.write(_batch(spec, values, ("id",)))
            rejected = [o.key["id"] for o in outcomes if o.status is not Status.WRITTEN]
            assert rejected == [bad], (size, rejected)
            ops = {o.key["id"]: o.operation for o in outcomes if o.status is Status.WRITTEN}
            assert all(ops[i] == "update" for i in range(10) if i != bad), (size, ops)
            with sa.create_engine(pg_url).begin() as c:
                c.exec_driver_sql(f'DELETE FROM "{unique_name}" WHERE id >= 10')
    finally:
        engine.dispose()
        drop_table(pg_url, unique_name)


def test_a_table_with_a_column_named_like_the_stagings_own_goes_without_failed_copies(
    pg_url: str, unique_name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A column `_sink_n` (the stage's ordinal), which a table made by hand can have: the stage
    would drop it for its ordinal and every COPY fail (22P02), each batch bisected down below the
    bulk threshold. Such a table goes by the driver's executemany instead."""
    failed: list[str] = []
    staged = pgcopy.staged

    def watched(*args: Any, **kwargs: Any) -> Any:
        try:
            return staged(*args, **kwargs)
        except Exception as exc:
            failed.append(type(exc).__name__)
            raise

    monkeypatch.setattr(pgcopy, "staged", watched)
    spec = TableSpec(unique_name, (ID, Column("_sink_n", TEXT)), ("id",))
    engine, writer = _writer(pg_url)
    try:
        outcomes = writer.write(_batch(spec, [{"id": i, "_sink_n": f"v{i}"} for i in range(2000)], ("id",)))
        assert {o.status for o in outcomes} == {Status.WRITTEN}
        assert failed == []
        assert len(fetch_rows(pg_url, unique_name)) == 2000
    finally:
        engine.dispose()
        drop_table(pg_url, unique_name)
