"""Defects a review of issue 12's changes found (each test failed before its fix): writes past a
stop for a key seen before the stop, a refusal by the database blamed on a batch's good records,
the sink's own sqlite3 misuse taken for record errors, and the COPY path storing a boolean into a
text column differently from executemany.

Unit-level ones use the fakes and the Worker harness of tests/unit/test_worker.py; the `pg_*` ones
the real PostgreSQL.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy import exc

from sink.adapters.db import SqlStore, create_engine
from sink.adapters.dberrors import classify
from sink.errors import RecordRejected, SchemaEvolutionRefused
from sink.model import Batch, Column, ColumnType, Coord, Kind, Op, RawRecord, Row, Status, TableSpec
from sink.pipeline import Writer, WriteRules
from tests.support.db import drop_table
from tests.unit.test_worker import Harness, rec

# ------------------------------------------------------------------------------ 1. data written past a stop


def test_tolerance_none_writes_nothing_after_the_rejected_record_even_for_a_key_seen_before_it() -> None:
    """docs/architecture.md: "with SINK_ERRORS_TOLERANCE=none the sink stops right at the first bad row
    with nothing after it written". Units collapse every row of a key into the key's first position,
    so offset 2 (id 1 again, after the rejected offset 1) is written inside offset 0's unit."""
    h = Harness(tolerance="none")
    h.then([rec(0, {"id": 1, "v": "first"}), rec(1, {"id": 2, "v": "REJECT"}), rec(2, {"id": 1, "v": "after-stop"})])
    assert h.run() == 1
    assert h.source.committed.get(("orders", 0)) == 1, "stops at offset 1"
    assert h.store.rows["orders"][(1,)]["v"] == "first", "offset 2 came after the stop and must not be in the table"


# ---------------------------------------------------------------- a DDL refusal blamed on good records


def _refuse_system_column(store: Any, method: str) -> None:
    """PostgreSQL refuses a column named like a system column (xmin, ctid, ...: SQLSTATE 42701), which
    `ddl_classified` turns into SchemaEvolutionRefused; the identifier rules do not know these names."""
    original = getattr(store, method)

    def refusing(*args: Any) -> None:
        spec_or_evolution = args[-1]
        columns = spec_or_evolution.columns if isinstance(spec_or_evolution, TableSpec) else spec_or_evolution.add
        if any(c.name == "xmin" for c in columns):
            raise SchemaEvolutionRefused(
                "the database refused to change table 'orders': column name \"xmin\" conflicts with a "
                "system column name (SQLSTATE 42701 duplicate_column)"
            )
        original(*args)

    setattr(store, method, refusing)


def test_one_record_whose_field_the_database_refuses_does_not_refuse_the_good_records_of_its_batch() -> None:
    """Schemaless batch, existing table: 20 records carry a new, harmless field `note`, one carries
    `xmin`. `_refusals` judges each shape only by the sink's own rules (all pass), then falls back to
    refusing *every* record that needs a change: the 20 good records are dead-lettered with the xmin one."""
    h = Harness(tolerance="all", batch_size=100, max_wait_ms=1000)
    _refuse_system_column(h.store, "alter_table")
    first = [rec(0, {"id": 0, "v": "a"})]
    good = [rec(1 + i, {"id": 1 + i, "v": "b", "note": "n"}) for i in range(20)]
    bad = [rec(21, {"id": 21, "v": "c", "xmin": 5})]
    h.then(first, h.wait(2.0), [], good + bad, h.wait(2.0), [])
    assert h.run() == 0
    assert h.worker.counters.failed == 1, "only the record with the refused field is a record error"
    assert h.store.values("orders") == list(range(21))


def test_a_new_table_is_not_refused_for_every_record_because_one_record_has_a_name_the_database_refuses() -> None:
    """Same, first batch of a new schemaless topic: CREATE TABLE fails for the merged spec, `existing`
    is None, so `_needs_change` is True for every record and the whole batch is dead-lettered. If every
    batch holds one such record, every record of the topic is dead-lettered."""
    h = Harness(tolerance="all", batch_size=100, max_wait_ms=1000)
    _refuse_system_column(h.store, "create_table")
    _refuse_system_column(h.store, "alter_table")  # as PostgreSQL does, whether creating or adding
    good = [rec(i, {"id": i, "v": "b"}) for i in range(20)]
    bad = [rec(20, {"id": 20, "v": "c", "xmin": 5})]
    h.then(good + bad, h.wait(2.0), [])
    assert h.run() == 0
    assert h.worker.counters.failed == 1, "only the record with the refused field is a record error"
    assert h.store.values("orders") == list(range(20))


def test_tolerance_none_stops_at_the_record_the_database_refuses_not_at_an_earlier_good_one() -> None:
    """With tolerance none the stop is at the first record "needing a change", a good one (offset 1),
    and the message blames it for the xmin record's refusal: the operator is sent to the wrong record."""
    h = Harness(tolerance="none", batch_size=100, max_wait_ms=1000)
    _refuse_system_column(h.store, "alter_table")
    first = [rec(0, {"id": 0, "v": "a"})]
    batch = [rec(1 + i, {"id": 1 + i, "v": "b", "note": "n"}) for i in range(5)] + [rec(6, {"id": 6, "xmin": 5})]
    h.then(first, h.wait(2.0), [], batch, h.wait(2.0), [])
    assert h.run() == 1
    assert h.source.committed.get(("orders", 0)) == 6, "the first bad record is offset 6"


# ------------------------------------------------------------------------------ 3. error classification


def test_a_closed_sqlite_connection_is_not_a_record_error() -> None:
    """sqlite3 raises ProgrammingError without an error name for its own state too ("Cannot operate on a
    closed database", "Incorrect number of bindings", wrong thread): the new branch makes every one of
    them a RecordRejected, so the bisection dead-letters every record of the batch."""
    connection = sqlite3.connect(":memory:")
    connection.close()
    with pytest.raises(sqlite3.ProgrammingError) as caught:
        connection.execute("SELECT 1")
    error = classify(exc.ProgrammingError("INSERT ...", None, caught.value))
    assert not isinstance(error, RecordRejected), f"an operator/bug problem classified as a record error: {error}"


def test_wrong_number_of_sqlite_bindings_is_not_a_record_error() -> None:
    connection = sqlite3.connect(":memory:")
    with pytest.raises(sqlite3.ProgrammingError) as caught:
        connection.execute("SELECT ?, ?", (1,))
    error = classify(exc.ProgrammingError("SELECT ?, ?", None, caught.value))
    assert not isinstance(error, RecordRejected), f"a statement bug classified as a record error: {error}"


# ------------------------------------------------------------------------------ on PostgreSQL


def _row(table: str, offset: int, values: dict[str, Any], spec: TableSpec) -> Row:
    raw = RawRecord(Coord("review", 0, offset), None, None)
    return Row(raw, table, Op.UPSERT, {"id": values["id"]}, dict(values), spec, None, True)


def _inferred(table: str, *names: tuple[str, Kind]) -> TableSpec:
    columns = [Column("id", ColumnType(Kind.INT64), nullable=False)]
    columns += [Column(n, ColumnType(k), nullable=True) for n, k in names]
    return TableSpec(table, tuple(columns), ("id",))


def test_pg_a_system_column_name_in_one_record_does_not_dead_letter_its_batch(pg_url: str, unique_name: str) -> None:
    """The real trigger of the fallback above: PostgreSQL refuses ADD COLUMN "xmin" (42701), the
    identifier rules let it through, and every record of the batch that needed `note` is refused too."""
    from tests.support.db import drop_table

    drop_table(pg_url, unique_name)
    engine = create_engine(pg_url)
    try:
        store = SqlStore(engine)
        writer = Writer(store, WriteRules("upsert", auto_create=True, auto_evolve=True))
        base = _inferred(unique_name, ("v", Kind.STRING))
        writer.write(Batch(unique_name, base, (_row(unique_name, 0, {"id": 0, "v": "a"}, base),), True))
        with_note = _inferred(unique_name, ("v", Kind.STRING), ("note", Kind.STRING))
        with_xmin = _inferred(unique_name, ("xmin", Kind.INT64))
        merged = _inferred(unique_name, ("v", Kind.STRING), ("note", Kind.STRING), ("xmin", Kind.INT64))
        rows = [_row(unique_name, 1 + i, {"id": 1 + i, "v": "b", "note": "n"}, with_note) for i in range(20)]
        rows.append(_row(unique_name, 21, {"id": 21, "xmin": 5}, with_xmin))
        outcomes = writer.write(Batch(unique_name, merged, tuple(rows), True))
        failed = [o.coord.offset for o in outcomes if o.status is Status.FAILED]
        assert failed == [21], f"good records refused with the bad one: {failed}"
    finally:
        engine.dispose()
        drop_table(pg_url, unique_name)


# ------------------------------------------------------------------------------ 2. bulk path vs executemany


@pytest.mark.parametrize("bulk_min_rows", [None, 1], ids=["executemany", "copy"])
def test_pg_a_boolean_into_an_existing_text_column_is_stored_alike_on_both_paths(
    pg_url: str, unique_name: str, bulk_min_rows: int | None
) -> None:
    """Schemaless: `flag` was a string, a later record sends true. Inferred batches leave the type clash
    to the database (schema.evolve, inferred). executemany binds a boolean cast to the column type:
    'true'; COPY text writes psycopg's text dump of True: 't'. The stored value depends on batch size."""
    from tests.support.db import drop_table

    drop_table(pg_url, unique_name)
    engine = create_engine(pg_url)
    try:
        store = SqlStore(engine)
        store.dialect.bulk_min_rows = bulk_min_rows  # type: ignore[misc]
        writer = Writer(store, WriteRules("upsert", auto_create=True, auto_evolve=True))
        text = _inferred(unique_name, ("flag", Kind.STRING))
        writer.write(Batch(unique_name, text, (_row(unique_name, 0, {"id": 0, "flag": "yes"}, text),), True))
        boolean = _inferred(unique_name, ("flag", Kind.BOOLEAN))
        row = _row(unique_name, 1, {"id": 1, "flag": True}, boolean)
        outcomes = writer.write(Batch(unique_name, boolean, (row,), True))
        assert [o.status for o in outcomes] == [Status.WRITTEN]
        with engine.connect() as connection:
            stored = connection.execute(sa.text(f'SELECT flag FROM "{unique_name}" WHERE id = 1')).scalar_one()
        assert stored == "true", f"stored {stored!r}"
    finally:
        engine.dispose()
        drop_table(pg_url, unique_name)


# ---------------------------------------------------------------- silent coercions on MariaDB


def test_mariadb_refuses_a_value_it_would_store_as_a_zero_date(mariadb_url: str, unique_name: str) -> None:
    # The sink's sessions are strict with NO_ZERO_DATE: 0 for a DATE column is that row's error
    # (MySQL 1292), never '0000-00-00'.
    spec = TableSpec(
        unique_name,
        (Column("id", ColumnType(Kind.INT64), nullable=False), Column("d", ColumnType(Kind.DATE))),
        ("id",),
    )
    rows = tuple(
        Row(RawRecord(Coord("t", 0, i), None, b""), unique_name, Op.UPSERT, {"id": i}, {"id": i, "d": d}, spec)
        for i, d in enumerate([dt.date(2024, 1, 2), 0, dt.date(2024, 1, 3)])
    )
    store = SqlStore(create_engine(mariadb_url))
    try:
        outcomes = Writer(store, WriteRules("upsert", auto_create=True)).write(Batch(unique_name, spec, rows))
        assert [o.status for o in outcomes] == [Status.WRITTEN, Status.FAILED, Status.WRITTEN]
        assert isinstance(outcomes[1].error, RecordRejected) and "1292" in (outcomes[1].error.code or "")
        with store.engine.connect() as connection:
            stored = connection.execute(sa.text(f"SELECT id, d FROM `{unique_name}` ORDER BY id")).all()
        assert [tuple(r) for r in stored] == [(0, dt.date(2024, 1, 2)), (2, dt.date(2024, 1, 3))]
    finally:
        store.close()
        drop_table(mariadb_url, unique_name)
