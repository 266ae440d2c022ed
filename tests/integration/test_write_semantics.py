"""What a written batch does to a real table, whatever the batch boundaries (PostgreSQL, SQLite).

The Writer and SqlStore are the real ones; records are prepared as the worker prepares them. No
broker is needed: the batches are built here, so their boundaries are chosen on purpose.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from sink.adapters.db import SqlStore, create_engine
from sink.batch import Batcher
from sink.formats.json_plain import JsonDecoder
from sink.formats.string import StringDecoder
from sink.model import Coord, RawRecord, Row, Status
from sink.pipeline import Preparer, Writer, WriteRules
from sink.transforms import MappingRules, RowMapper
from tests.integration.conftest import TargetDb
from tests.support.db import fetch_rows, table_columns

pytestmark = pytest.mark.integration


class Sink:
    def __init__(self, url: str, table: str, mode: str = "upsert") -> None:
        self.store = SqlStore(create_engine(url))
        rules = MappingRules(table_name_format=table, pk_mode="record_value", pk_fields=("id",))
        self.preparer = Preparer(StringDecoder(), JsonDecoder(), RowMapper(rules))
        self.writer = Writer(self.store, WriteRules(mode, auto_create=True, auto_evolve=True))
        self.offset = 0

    def batch(self, *values: dict[str, Any]) -> list[Status]:
        """Write `values` as one batch; the statuses of their outcomes."""
        batcher = Batcher(10_000, 60_000, lambda: 0.0)
        for value in values:
            row = self.preparer.prepare(RawRecord(Coord("t", 0, self.offset), None, json.dumps(value).encode()))
            self.offset += 1
            assert isinstance(row, Row)
            assert batcher.add(row) == []
        (batch,) = batcher.drain()
        return [o.status for o in self.writer.write(batch)]


@pytest.fixture
def sink(db: TargetDb, unique_name: str) -> Iterator[Sink]:
    sink = Sink(db.url, db.table(unique_name))
    yield sink
    sink.store.close()


def rows(db: TargetDb, table: str) -> list[dict[str, Any]]:
    return fetch_rows(db.url, table, order_by="id")


def test_a_field_a_record_does_not_carry_keeps_its_value(sink: Sink, db: TargetDb, unique_name: str) -> None:
    assert sink.batch({"id": 1, "name": "a", "email": "a@x"}, {"id": 2, "name": "b", "email": "b@x"}) == [
        Status.WRITTEN,
        Status.WRITTEN,
    ]
    sink.batch({"id": 1, "name": "a2"})  # alone in its batch
    sink.batch({"id": 2, "name": "b2"}, {"id": 3, "name": "c", "email": "c@x"})  # beside a record with email
    assert rows(db, unique_name) == [
        {"id": 1, "name": "a2", "email": "a@x"},
        {"id": 2, "name": "b2", "email": "b@x"},
        {"id": 3, "name": "c", "email": "c@x"},
    ], "the table state must not depend on which records share a batch"


def test_an_explicit_null_clears_the_field(sink: Sink, db: TargetDb, unique_name: str) -> None:
    sink.batch({"id": 1, "name": "a", "email": "a@x"})
    sink.batch({"id": 1, "email": None}, {"id": 2, "name": "b"})
    assert rows(db, unique_name) == [{"id": 1, "name": "a", "email": None}, {"id": 2, "name": "b", "email": None}]


def test_a_batch_ends_as_its_records_written_one_by_one(sink: Sink, db: TargetDb, unique_name: str) -> None:
    sink.batch({"id": 1, "name": "a", "email": "a@x"}, {"id": 4, "name": "d", "email": "d@x"})
    statuses = sink.batch(
        {"id": 1, "name": "x", "email": "x@x"},
        {"id": 2, "email": "b@x"},
        {"id": 1, "name": "y"},  # keeps x@x, as it would written after the first
        {"id": 4, "email": None},
        {"id": 4, "name": "d2"},  # keeps the null email of the record before
    )
    assert statuses == [Status.WRITTEN] * 5
    assert rows(db, unique_name) == [
        {"id": 1, "name": "y", "email": "x@x"},
        {"id": 2, "name": None, "email": "b@x"},
        {"id": 4, "name": "d2", "email": None},
    ]


def test_update_mode_on_a_table_of_key_columns_only_changes_nothing_and_fails_nothing(
    db: TargetDb, unique_name: str
) -> None:
    table = db.table(unique_name)
    upsert, update = Sink(db.url, table), Sink(db.url, table, mode="update")
    try:
        assert upsert.batch({"id": 1}, {"id": 2}) == [Status.WRITTEN, Status.WRITTEN]
        update.offset = upsert.offset
        assert update.batch({"id": 2}, {"id": 3}) == [Status.WRITTEN, Status.WRITTEN]  # was a syntax error
        assert rows(db, table) == [{"id": 1}, {"id": 2}], "no row created by an update, none changed"
    finally:
        upsert.store.close()
        update.store.close()


def test_schemaless_keys_are_told_apart_by_column_whatever_their_order(db: TargetDb, unique_name: str) -> None:
    """Record keys without SINK_PK_FIELDS take their columns from each key, in the key's order:
    {"a": 1, "b": 2} and {"b": 1, "a": 2} are two rows, {"b": 2, "a": 1} the first one again, also
    in a batch whose tombstone makes the writer fold its rows key by key (a fold by position once
    merged the first two and left {"a": 1, "b": 2} unwritten, reported written)."""
    table = db.table(unique_name)
    store = SqlStore(create_engine(db.url))
    rules = MappingRules(table_name_format=table, pk_mode="record_key", delete_enabled=True)
    preparer = Preparer(JsonDecoder(), JsonDecoder(), RowMapper(rules))
    writer = Writer(store, WriteRules("upsert", auto_create=True, auto_evolve=True))

    def write(*records: tuple[dict[str, int], dict[str, str] | None]) -> dict[int, Status]:
        batcher = Batcher(10_000, 60_000, lambda: 0.0)
        for key, value in records:
            encoded = None if value is None else json.dumps(value).encode()
            row = preparer.prepare(RawRecord(Coord("t", 0, sink_offsets.pop()), json.dumps(key).encode(), encoded))
            assert isinstance(row, Row)
            assert batcher.add(row) == []
        (batch,) = batcher.drain()
        return {o.raw.coord.offset: o.status for o in writer.write(batch)}

    sink_offsets = list(range(100, 0, -1))
    try:
        statuses = write(
            ({"a": 1, "b": 2}, {"v": "first"}), ({"b": 1, "a": 2}, {"v": "second"}), ({"a": 9, "b": 9}, None)
        )
        assert statuses == {1: Status.WRITTEN, 2: Status.WRITTEN, 3: Status.DELETED}
        found = {(r["a"], r["b"]): r["v"] for r in fetch_rows(db.url, table, order_by="a")}
        assert found == {(1, 2): "first", (2, 1): "second"}, "two keys, both written"
        statuses = write(
            ({"b": 2, "a": 1}, {"v": "again"}), ({"a": 1, "b": 2}, {"v": "last"}), ({"a": 9, "b": 9}, None)
        )
        assert statuses == {4: Status.WRITTEN, 5: Status.WRITTEN, 6: Status.DELETED}
        found = {(r["a"], r["b"]): r["v"] for r in fetch_rows(db.url, table, order_by="a")}
        assert found == {(1, 2): "last", (2, 1): "second"}, "one key in two orders: its last write"
    finally:
        store.close()


def test_a_tombstone_whose_key_is_spelled_as_text_deletes_the_row_in_a_batch_of_its_own(
    url: str, name: str, store: SqlStore
) -> None:
    """A schemaless tombstone keyed "1" alone in its batch: the batch's spec, inferred from that key,
    has a text key column where the table has a bigint one. Deletes change no column, so they are
    written against the table as it is (the database finds row 1 by casting), never as a type change
    the table refuses: that dead-lettered the tombstone and left the row."""
    rules = MappingRules(table_name_format=name, pk_mode="record_key", delete_enabled=True)
    preparer = Preparer(JsonDecoder(), JsonDecoder(), RowMapper(rules))
    writer = Writer(store, WriteRules("upsert", auto_create=True, auto_evolve=True))
    offsets = iter(range(100))

    def write(*records: tuple[dict[str, Any] | str, dict[str, str] | None]) -> list[tuple[Status, str]]:
        batcher = Batcher(10_000, 60_000, lambda: 0.0)
        for key, value in records:
            encoded = None if value is None else json.dumps(value).encode()
            text = key if isinstance(key, str) else json.dumps(key)
            row = preparer.prepare(RawRecord(Coord("t", 0, next(offsets)), text.encode(), encoded))
            assert isinstance(row, Row)
            assert batcher.add(row) == []
        (batch,) = batcher.drain()
        return [(o.status, str(o.error or "")) for o in sorted(writer.write(batch), key=lambda o: o.raw.coord.offset)]

    assert write(({"id": 1}, {"note": "one"}), ({"id": 2}, {"note": "two"})) == [(Status.WRITTEN, "")] * 2
    assert write(({"id": "1"}, None)) == [(Status.DELETED, "")]
    assert write(({"id": " 2"}, None), ({"id": "3"}, None)) == [(Status.DELETED, "")] * 2
    assert write(({"id": 5}, {"note": "five"}), ({"id": 6}, {"note": "six"})) == [(Status.WRITTEN, "")] * 2
    assert write(({"id": 5.0}, None)) == [(Status.DELETED, "")]
    assert write(('{"id": 6.000}', None)) == [(Status.DELETED, "")]
    assert write(({"id": 7}, {"note": "seven"}), ({"id": 8}, {"note": "eight"})) == [(Status.WRITTEN, "")] * 2
    assert write(({"id": 7.0}, None), ({"id": 9}, {"note": "nine"}), ({"id": "8"}, None)) == [
        (Status.DELETED, ""),
        (Status.WRITTEN, ""),
        (Status.DELETED, ""),
    ], "a tombstone opening a batch of writes"
    assert [row["id"] for row in fetch_rows(url, name, order_by="id")] == [9]
    assert str(table_columns(url, name)["id"]["type"]).upper() in ("BIGINT", "INTEGER"), "the key keeps its type"
