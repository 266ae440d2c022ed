"""SINK_UPSERT_VERSION_FIELD on real databases: PostgreSQL (executemany and COPY paths), MariaDB
and SQLite. Shuffled versions of the same keys, in one batch and across batches, end with the
newest version in every row; stale records are reported `skip`."""

from __future__ import annotations

import json
import random
from typing import Any

import pytest

from sink.adapters.db import SqlStore
from sink.batch import Batcher
from sink.formats.json_plain import JsonDecoder
from sink.formats.string import StringDecoder
from sink.model import Coord, Outcome, RawRecord, Row, Status
from sink.pipeline import Preparer, Writer, WriteRules
from sink.transforms import MappingRules, RowMapper
from tests.support.db import fetch_rows

pytestmark = pytest.mark.integration


class Versioned:
    def __init__(self, store: SqlStore, table: str) -> None:
        rules = MappingRules(
            table_name_format=table, pk_mode="record_value", pk_fields=("id",), version_field="v", delete_enabled=False
        )
        self.preparer = Preparer(StringDecoder(), JsonDecoder(), RowMapper(rules))
        self.writer = Writer(store, WriteRules("upsert", auto_create=True, auto_evolve=True, version_field="v"))
        self.offset = 0

    def batch(self, *values: dict[str, Any]) -> list[Outcome]:
        batcher = Batcher(100_000, 60_000, lambda: 0.0)
        for value in values:
            row = self.preparer.prepare(RawRecord(Coord("t", 0, self.offset), None, json.dumps(value).encode()))
            self.offset += 1
            assert isinstance(row, Row)
            assert batcher.add(row) == []
        (batch,) = batcher.drain()
        return list(self.writer.write(batch))


def test_shuffled_versions_in_one_batch_and_across_batches_end_newest(store: SqlStore, name: str, url: str) -> None:
    sink = Versioned(store, name)
    keys, versions = range(1, 21), range(1, 9)
    records = [{"id": k, "v": v, "note": f"{k}@{v}"} for k in keys for v in versions]
    random.Random(7).shuffle(records)
    # A first batch with a third of them, then the rest in two batches, each shuffled.
    outcomes = sink.batch(*records[:50]) + sink.batch(*records[50:110]) + sink.batch(*records[110:])
    assert len(outcomes) == len(records)
    assert all(o.status is Status.WRITTEN for o in outcomes)
    got = fetch_rows(url, name, order_by="id")
    assert got == [{"id": k, "v": 8, "note": f"{k}@8"} for k in keys]
    # Every record that did not end in the table is reported skip, and the writer counted the stale ones.
    written = [o for o in outcomes if o.operation != "skip"]
    assert len({o.key["id"] for o in written}) == len(keys)
    assert sink.writer.stale_records > 0


def test_a_stale_batch_changes_nothing_and_is_reported_skip(store: SqlStore, name: str, url: str) -> None:
    sink = Versioned(store, name)
    first = sink.batch(*({"id": k, "v": 10, "note": "new"} for k in range(1, 31)))
    assert {o.operation for o in first} == {"insert"}
    stale = sink.batch(*({"id": k, "v": 3, "note": "old"} for k in range(1, 31)))
    assert [o.operation for o in stale] == ["skip"] * 30
    assert sink.writer.stale_records == 30
    newer = sink.batch({"id": 1, "v": 11, "note": "newer"}, {"id": 2, "v": 10, "note": "same version"})
    assert [o.operation for o in newer] == ["update", "skip"]
    got = fetch_rows(url, name, order_by="id")
    assert got[0] == {"id": 1, "v": 11, "note": "newer"}
    assert got[1:] == [{"id": k, "v": 10, "note": "new"} for k in range(2, 31)]


def test_a_row_without_version_is_replaced_and_a_record_without_one_writes_only_there(
    store: SqlStore, name: str, url: str
) -> None:
    sink = Versioned(store, name)
    sink.batch({"id": 1, "v": None, "note": "unversioned"}, {"id": 2, "v": 5, "note": "v5"})
    out = sink.batch({"id": 1, "v": 2, "note": "now versioned"}, {"id": 2, "v": None, "note": "no version"})
    assert [o.operation for o in out] == ["update", "skip"]
    assert fetch_rows(url, name, order_by="id") == [
        {"id": 1, "v": 2, "note": "now versioned"},
        {"id": 2, "v": 5, "note": "v5"},
    ]


def _change(op: str, before: dict[str, Any] | None, after: dict[str, Any] | None) -> dict[str, Any]:
    """A schemaless Debezium change event (the source block as a connector writes it)."""
    source = {"connector": "postgresql", "db": "shop", "schema": "public", "table": "items", "ts_ms": 1}
    return {"before": before, "after": after, "source": source, "op": op, "ts_ms": 1}


def test_a_delete_older_than_the_row_keeps_it_and_one_not_older_removes_it(
    store: SqlStore, name: str, url: str
) -> None:
    rules = MappingRules(
        table_name_format=name,
        pk_mode="record_value",
        pk_fields=("id",),
        version_field="v",
        cdc_format="debezium",
    )
    sink = Versioned(store, name)
    sink.preparer = Preparer(StringDecoder(), JsonDecoder(), RowMapper(rules))
    sink.batch(*(_change("c", None, {"id": k, "v": 10, "note": "new"}) for k in range(1, 5)))
    # Deletes carry the version of the row they saw (`before`): one older than the table's, one equal.
    stale, current = {"id": 1, "v": 5, "note": "old"}, {"id": 2, "v": 10, "note": "new"}
    outcomes = sink.batch(_change("d", stale, None), _change("d", current, None))
    assert [(o.status, o.operation) for o in outcomes] == [(Status.WRITTEN, "skip"), (Status.DELETED, "delete")]
    got = fetch_rows(url, name, order_by="id")
    assert [row["id"] for row in got] == [1, 3, 4], "the stale delete left row 1, the current one removed row 2"
    assert got[0] == {"id": 1, "v": 10, "note": "new"}
