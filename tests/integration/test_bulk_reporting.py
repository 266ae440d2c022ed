"""Per-record reports (a result topic) tell an insert from an update without giving up the bulk
path on PostgreSQL: the COPY + merge step answers, row by row, RETURNING (xmax = 0) joined back to
the stage by key. Real PostgreSQL; the writer as the sink builds it with a result topic."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from sink.adapters import pgcopy
from sink.adapters.db import SqlStore, create_engine
from sink.model import Batch, Column, ColumnType, Coord, Kind, Op, RawRecord, Row, Status, TableSpec
from sink.pipeline import Writer, WriteRules
from tests.support.db import drop_table, fetch_rows

pytestmark = pytest.mark.integration

ID = Column("id", ColumnType(Kind.INT64), nullable=False)
NAME = Column("name", ColumnType(Kind.STRING))


def _batch(spec: TableSpec, ids: range, name: str, offset: int = 0) -> Batch:
    rows = tuple(
        Row(
            RawRecord(Coord("t", 0, offset + n), None, None),
            spec.name,
            Op.UPSERT,
            {"id": i},
            {"id": i, "name": name},
            spec,
        )
        for n, i in enumerate(ids)
    )
    return Batch(spec.name, spec, rows)


@pytest.fixture
def staged_merges(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[int]]:
    """How many reporting merges ran (rows staged by each): the bulk path, not row-by-row."""
    calls: list[int] = []
    reporting = pgcopy.stage_and_merge_reporting

    def counted(*args: Any) -> dict[int, bool]:
        answers = reporting(*args)
        calls.append(len(answers))
        return answers

    monkeypatch.setattr(pgcopy, "stage_and_merge_reporting", counted)
    yield calls


def test_a_bulk_upsert_reports_inserts_and_updates_row_by_row(
    pg_url: str, unique_name: str, staged_merges: list[int]
) -> None:
    spec = TableSpec(unique_name, (ID, NAME), ("id",))
    engine = create_engine(pg_url)
    writer = Writer(SqlStore(engine, report_operations=True), WriteRules("upsert", auto_create=True))
    try:
        first = writer.write(_batch(spec, range(0, 40), "first"))
        assert {o.operation for o in first} == {"insert"} and len(first) == 40
        second = writer.write(_batch(spec, range(20, 60), "second", offset=40))
        operations = {o.key["id"]: o.operation for o in second}
        assert all(operations[i] == "update" for i in range(20, 40))
        assert all(operations[i] == "insert" for i in range(40, 60))
        assert all(o.status is Status.WRITTEN for o in second)
        assert staged_merges == [40, 40], "one staged merge per batch, every row answered"
        rows = fetch_rows(pg_url, unique_name, order_by="id")
        assert [r["name"] for r in rows] == ["first"] * 20 + ["second"] * 40
    finally:
        engine.dispose()
        drop_table(pg_url, unique_name)


def test_a_key_only_table_reports_without_the_reporting_merge(
    pg_url: str, unique_name: str, staged_merges: list[int]
) -> None:
    """Every column in the key: the merge is DO NOTHING, which returns no row for a conflict, so
    the write goes by the plain bulk merge and is reported as an upsert."""
    spec = TableSpec(unique_name, (ID,), ("id",))
    engine = create_engine(pg_url)
    writer = Writer(SqlStore(engine, report_operations=True), WriteRules("upsert", auto_create=True))
    try:
        rows = tuple(
            Row(RawRecord(Coord("t", 0, i), None, None), spec.name, Op.UPSERT, {"id": i}, {"id": i}, spec)
            for i in range(30)
        )
        outcomes = writer.write(Batch(spec.name, spec, rows))
        assert {o.operation for o in outcomes} == {"upsert"} and staged_merges == []
        assert len(fetch_rows(pg_url, unique_name, order_by="id")) == 30
    finally:
        engine.dispose()
        drop_table(pg_url, unique_name)
