"""Hostile input that only shows across records or at the edges: fields that are one column only
for the database's name comparison in two records of one batch, reasons that are not valid
Unicode in dead-letter headers, and which exceptions at write time are a record's and which ours."""

from __future__ import annotations

import json

import pytest
from sqlalchemy.dialects import sqlite

from sink.adapters.dberrors import driver_refusals
from sink.batch import Batcher
from sink.deadletter import context_headers
from sink.dialects import SqliteDialect
from sink.errors import DecodeError, RecordRejected
from sink.formats.json_plain import JsonDecoder
from sink.formats.string import StringDecoder
from sink.model import Coord, RawRecord, Status
from sink.pipeline import Preparer, Writer, WriteRules
from sink.transforms import MappingRules, RowMapper
from tests.support.fakes import FakeStore
from tests.unit.test_worker import FakeTx

SQLITE_NAMES = SqliteDialect(sqlite.pysqlite.dialect()).identifiers


def test_fields_that_are_one_column_across_two_records_refuse_only_the_later_record() -> None:
    # `b` in one record and `B` in the next, one schemaless batch on SQLite (case-insensitive
    # names): the merged table would hold both. The later record is the one refused.
    preparer = Preparer(StringDecoder(), JsonDecoder(), RowMapper(MappingRules(), SQLITE_NAMES))
    values = [{"id": 1, "b": 1}, {"id": 2, "B": 2}, {"id": 3, "b": 3}]
    rows = [preparer.prepare(RawRecord(Coord("t", 0, i), None, json.dumps(v).encode())) for i, v in enumerate(values)]
    store = FakeStore(FakeTx)
    writer = Writer(store, WriteRules("insert", auto_create=True, auto_evolve=True, identifiers=SQLITE_NAMES))
    batcher = Batcher(max_rows=100, max_wait_ms=60_000, clock=lambda: 0.0)
    for row in rows:
        assert not batcher.add(row)  # type: ignore[arg-type]
    (batch,) = batcher.drain()
    assert {c.name for c in batch.spec.columns} == {"id", "b", "B"}, "the batch merged both shapes"
    outcomes = writer.write(batch)
    status = {o.coord.offset: o.status for o in outcomes}
    assert status == {0: Status.WRITTEN, 1: Status.FAILED, 2: Status.WRITTEN}
    failed = next(o for o in outcomes if o.status is Status.FAILED)
    assert "'B' would be the same column as 'b'" in str(failed.error)
    assert [c.name for c in store.specs["t"].columns] == ["id", "b"]


def test_a_reason_that_is_not_valid_unicode_still_makes_a_dead_letter_header() -> None:
    raw = RawRecord(Coord("t", 0, 5), None, b"{}")
    error = DecodeError("payload does not match its schema: a\udfffb must be an integer")
    headers = dict(context_headers(raw, error, "sink"))
    message = headers["__connect.errors.exception.message"]
    assert message == b"payload does not match its schema: a\\udfffb must be an integer"


def _raising_from(module: str, exc: Exception):  # type: ignore[no-untyped-def]
    namespace: dict[str, object] = {"__name__": module, "exc": exc}
    exec("def boom():\n    raise exc\n", namespace)  # a function whose frame belongs to `module`
    return namespace["boom"]


def test_a_value_a_driver_cannot_send_is_that_records_error() -> None:
    boom = _raising_from("psycopg._copy_base", TypeError("bytes or buffer expected, got <class 'str'>"))
    with pytest.raises(RecordRejected, match="the driver cannot send a value"), driver_refusals():
        boom()


def test_the_same_exception_from_the_sinks_own_code_is_a_bug_not_a_record_error() -> None:
    boom = _raising_from("sink.adapters.db", TypeError("zip() argument 2 is shorter than argument 1"))
    with pytest.raises(TypeError), driver_refusals():
        boom()
