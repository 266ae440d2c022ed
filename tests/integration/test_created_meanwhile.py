"""A table another worker created meanwhile (review finding): it was used as found, without checking it
against the batch's schema. Writer.ensure_table -> SqlStore.create_table: CREATE TABLE IF NOT
EXISTS is a no-op (or, since 29eda32/ea8445b, its failure is swallowed because the table exists
by then), and ensure_table returns the table as reflected. The plan then writes only the columns
that table has (plan.write_plan: fields & table_columns): the other fields' values are dropped and
the records settled WRITTEN.

Deterministic form of the race: worker B's store learnt "no such table" earlier (its first batch was
deletes of a table that did not exist yet, which caches None), then worker A created the table from
an older schema (no column `c`), then B writes records that carry `c`."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa

from sink.adapters.db import SqlStore, create_engine
from sink.model import Batch, Column, ColumnType, Coord, Kind, Op, RawRecord, Row, Status, TableSpec
from sink.pipeline import Writer, WriteRules
from tests.support.db import drop_table

pytestmark = pytest.mark.integration

ID = Column("id", ColumnType(Kind.INT64), nullable=False)
A = Column("a", ColumnType(Kind.STRING))
C = Column("c", ColumnType(Kind.STRING))


def _batch(spec: TableSpec, op: Op, values: list[dict[str, Any]], offset: int = 0) -> Batch:
    rows = tuple(
        Row(
            RawRecord(Coord("t", 0, offset + i), None, None),
            spec.name,
            op,
            {"id": v["id"]},
            v,
            spec,
            None,
            op is Op.DELETE,
        )
        for i, v in enumerate(values)
    )
    return Batch(spec.name, spec, rows, op is Op.DELETE)


def test_a_table_created_meanwhile_by_another_worker_is_checked_before_writing(pg_url: str, unique_name: str) -> None:
    rules = WriteRules("upsert", auto_create=True, auto_evolve=True)
    older = TableSpec(unique_name, (ID, A), ("id",))
    newer = TableSpec(unique_name, (ID, A, C), ("id",))
    engine_a, engine_b = create_engine(pg_url), create_engine(pg_url)
    try:
        worker_b = Writer(SqlStore(engine_b), rules)
        # B's first batch: deletes of a table that does not exist yet (settled, "nothing to delete")
        deleted = worker_b.write(_batch(newer, Op.DELETE, [{"id": 99}], offset=100))
        assert [o.status for o in deleted] == [Status.DELETED]
        # A (another replica) creates the table from the schema it reads: no column c
        written_a = Writer(SqlStore(engine_a), rules).write(_batch(older, Op.UPSERT, [{"id": 1, "a": "x"}]))
        assert [o.status for o in written_a] == [Status.WRITTEN]
        # B writes records that carry c
        written_b = worker_b.write(_batch(newer, Op.UPSERT, [{"id": 2, "a": "y", "c": "must not vanish"}], offset=1))
        assert [o.status for o in written_b] == [Status.WRITTEN]
        with engine_a.connect() as connection:
            columns = {c["name"] for c in sa.inspect(connection).get_columns(unique_name)}
            assert "c" in columns, f"B's field c was dropped: table has {sorted(columns)}, record settled WRITTEN"
            stored = connection.execute(sa.text(f'SELECT c FROM "{unique_name}" WHERE id = 2')).scalar_one()
        assert stored == "must not vanish"
    finally:
        engine_a.dispose()
        engine_b.dispose()
        drop_table(pg_url, unique_name)


def test_deletes_reach_a_table_another_worker_created_after_this_one_found_none(pg_url: str, unique_name: str) -> None:
    """A worker that once found no table (and settled its deletes as "nothing to delete") must see
    the table another worker creates afterwards: its later deletes are run, not skipped."""
    rules = WriteRules("upsert", auto_create=True, auto_evolve=True)
    spec = TableSpec(unique_name, (ID, A), ("id",))
    engine_a, engine_b = create_engine(pg_url), create_engine(pg_url)
    try:
        worker_b = Writer(SqlStore(engine_b), rules)
        assert [o.status for o in worker_b.write(_batch(spec, Op.DELETE, [{"id": 5}], offset=100))] == [Status.DELETED]
        Writer(SqlStore(engine_a), rules).write(_batch(spec, Op.UPSERT, [{"id": 5, "a": "x"}, {"id": 6, "a": "y"}]))
        assert [o.status for o in worker_b.write(_batch(spec, Op.DELETE, [{"id": 5}], offset=101))] == [Status.DELETED]
        with engine_a.connect() as connection:
            ids = connection.execute(sa.text(f'SELECT id FROM "{unique_name}" ORDER BY id')).scalars().all()
        assert ids == [6]
    finally:
        engine_a.dispose()
        engine_b.dispose()
        drop_table(pg_url, unique_name)
