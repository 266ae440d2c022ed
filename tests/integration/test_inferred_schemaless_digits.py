"""Schemaless values (no schema at all) whose Python class is datetime or time, as a
TimestampConverter SMT makes them, into a hand-made table whose column names fewer fractional-second
digits: written as the database takes them, the column left alone. A type inferred from a value
names no digits, so it neither widens the column nor is refused (a review finding against a first
version of the digits rule for inferred specs)."""

from __future__ import annotations

import datetime as dt

import pytest
import sqlalchemy as sa

from sink.adapters.db import SqlStore, create_engine
from sink.model import Batch, Column, ColumnType, Coord, Kind, Op, RawRecord, Row, Status, TableSpec
from sink.pipeline import Writer, WriteRules
from sink.schema import infer_columns
from tests.support.db import drop_table, fetch_rows, table_columns

pytestmark = pytest.mark.integration

UTC = dt.UTC


def _schemaless_batch(name: str, values: list[dict]) -> Batch:
    key = (Column("id", ColumnType(Kind.INT64), nullable=False),)
    spec = TableSpec(name, key + tuple(c for c in infer_columns(values[0]) if c.name != "id"), ("id",))
    rows = tuple(
        Row(RawRecord(Coord("t", 0, n), None, None), name, Op.UPSERT, {"id": v["id"]}, v, spec, None, True)
        for n, v in enumerate(values)
    )
    return Batch(name, spec, rows, inferred=True)


@pytest.mark.parametrize(
    ("url_fixture", "ddl", "value"),
    [
        ("pg_url", "ts timestamptz(3)", dt.datetime(2024, 5, 1, 12, 0, 0, 123000, tzinfo=UTC)),
        ("pg_url", "ts time(0)", dt.time(12, 30, 5)),
        ("mariadb_url", "ts DATETIME", dt.datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)),
        ("mariadb_url", "ts DATETIME(3)", dt.datetime(2024, 5, 1, 12, 0, 0, 123000, tzinfo=UTC)),
    ],
)
def test_schemaless_datetimes_into_a_coarser_column_are_written_as_before(
    request: pytest.FixtureRequest, unique_name: str, url_fixture: str, ddl: str, value: object
) -> None:
    url = request.getfixturevalue(url_fixture)
    with sa.create_engine(url).begin() as c:
        c.exec_driver_sql(f"CREATE TABLE {unique_name} (id BIGINT PRIMARY KEY, {ddl})")
    before = str(table_columns(url, unique_name)["ts"]["type"])
    engine = create_engine(url)
    writer = Writer(SqlStore(engine), WriteRules("upsert", auto_create=True, auto_evolve=False))
    try:
        outcomes = writer.write(_schemaless_batch(unique_name, [{"id": 1, "ts": value}]))
        assert [o.status for o in outcomes] == [Status.WRITTEN], [o.error for o in outcomes]
        assert len(fetch_rows(url, unique_name)) == 1
        assert str(table_columns(url, unique_name)["ts"]["type"]) == before
    finally:
        engine.dispose()
        drop_table(url, unique_name)
