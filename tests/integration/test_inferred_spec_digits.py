"""A record whose value has a schema but whose key is schemaless (pk.mode=record_key, a plain
JSON key) is `inferred`: evolution only adds columns. A timestamp-millis field makes a
TIMESTAMP(3) column; when the value schema later moves to timestamp-micros, the column must be
widened (or the records refused), never the microseconds rounded by the database while the record
is settled WRITTEN (a review finding; the test failed before the fix in schema.evolve)."""

from __future__ import annotations

import datetime as dt

import pytest
import sqlalchemy as sa

from sink.adapters.db import SqlStore, create_engine
from sink.model import Batch, Column, ColumnType, Coord, Decoded, Kind, Payload, RawRecord, Row, Status
from sink.pipeline import Writer, WriteRules
from sink.transforms import MappingRules, RowMapper

pytestmark = pytest.mark.integration

ID = Column("id", ColumnType(Kind.INT64), nullable=False)


def value_shape(digits: int) -> tuple[Column, ...]:
    return (ID, Column("at", ColumnType(Kind.LOCAL_TIMESTAMP, precision=digits)))


def mapped(mapper: RowMapper, offset: int, digits: int, at: dt.datetime) -> Row:
    raw = RawRecord(Coord("orders_digits", 0, offset), b'{"id": 1}', b"...")
    key = Payload({"id": offset}, None, None)  # a schemaless JSON key
    value = Payload({"id": offset, "at": at}, value_shape(digits), digits)  # registry schema id = digits
    row = mapper.to_row(Decoded(raw, key, value))
    assert isinstance(row, Row)
    return row


@pytest.mark.parametrize("copy", [False, True], ids=["executemany", "copy"])
def test_microseconds_of_a_wider_schema_are_not_rounded_into_a_millisecond_column(
    pg_url: str, unique_name: str, copy: bool
) -> None:
    table = f"digits_{unique_name}"
    mapper = RowMapper(MappingRules(table_name_format=table, pk_mode="record_key"))
    engine = create_engine(pg_url)
    store = SqlStore(engine)
    store.dialect.bulk_min_rows = 1 if copy else None  # type: ignore[misc]
    writer = Writer(store, WriteRules("upsert", auto_create=True, auto_evolve=True))
    try:
        first = mapped(mapper, 1, 3, dt.datetime(2024, 5, 1, 12, 0, 0, 123000))
        assert [o.status for o in writer.write(Batch(first.table, first.spec, (first,), first.inferred))] == [
            Status.WRITTEN
        ]
        micros = dt.datetime(2024, 5, 1, 12, 0, 0, 123456)
        second = mapped(mapper, 2, 6, micros)
        assert second.inferred  # the schemaless key makes the whole row inferred
        outcomes = writer.write(Batch(second.table, second.spec, (second,), second.inferred))
        with engine.connect() as connection:
            stored = connection.execute(sa.text(f'SELECT at FROM "{table}" WHERE id = 2')).scalar()
        statuses = [o.status for o in outcomes]
        # Either the column is widened and the value lands exactly, or the record fails: never
        # WRITTEN with a rounded value.
        assert statuses != [Status.WRITTEN] or stored == micros, (statuses, stored)
    finally:
        with engine.begin() as connection:
            connection.execute(sa.text(f'DROP TABLE IF EXISTS "{table}"'))
        engine.dispose()
