"""Debezium's unavailable-value placeholder (PostgreSQL's unchanged TOAST columns under REPLICA
IDENTITY DEFAULT): an update carrying it leaves those columns as they are, on every database,
instead of writing the placeholder over the real value."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from sink.adapters.db import SqlStore
from sink.batch import Batcher
from sink.cdc import UNAVAILABLE_VALUE
from sink.formats.connect_json import ConnectJsonDecoder
from sink.model import Coord, Outcome, RawRecord, Row
from sink.pipeline import Preparer, Writer, WriteRules
from sink.transforms import MappingRules, RowMapper
from tests.support.db import fetch_rows
from tests.support.debezium import connect_schemas

pytestmark = pytest.mark.integration


def _field(name: str, type_: str, optional: bool = True) -> dict[str, Any]:
    return {"field": name, "type": type_, "optional": optional}


ROW = [_field("id", "int32", False), _field("body", "string"), _field("blob", "bytes"), _field("n", "int64")]
ROW.append({"field": "tags", "type": "array", "optional": True, "items": {"type": "string", "optional": True}})
KEY_SCHEMA, ENVELOPE = connect_schemas("doc", ROW)
SOURCE = {"version": "2.7.0.Final", "connector": "postgresql", "name": "dbserver1", "ts_ms": 1, "snapshot": "false"}
SOURCE |= {
    "db": "inventory",
    "sequence": None,
    "schema": "inventory",
    "table": "doc",
    "txId": 1,
    "lsn": 1,
    "xmin": None,
}
PLACEHOLDER_BYTES = base64.b64encode(UNAVAILABLE_VALUE.encode()).decode()


class Sink:
    def __init__(self, store: SqlStore, table: str, placeholder: str = UNAVAILABLE_VALUE) -> None:
        rules = MappingRules(
            table_name_format=table, pk_mode="record_key", cdc_format="debezium", cdc_unavailable_value=placeholder
        )
        self.preparer = Preparer(ConnectJsonDecoder(), ConnectJsonDecoder(), RowMapper(rules))
        self.writer = Writer(store, WriteRules("upsert", auto_create=True, auto_evolve=True))
        self.offset = 0

    def events(self, *events: tuple[str, int, dict[str, Any]]) -> list[Outcome]:
        batcher = Batcher(100_000, 60_000, lambda: 0.0)
        for op, key, after in events:
            value = {"before": None, "after": {"id": key, **after}, "source": SOURCE, "op": op, "ts_ms": 1}
            value["transaction"] = None
            raw = RawRecord(
                Coord("t", 0, self.offset),
                json.dumps({"schema": KEY_SCHEMA, "payload": {"id": key}}).encode(),
                json.dumps({"schema": ENVELOPE, "payload": value}).encode(),
            )
            self.offset += 1
            row = self.preparer.prepare(raw)
            assert isinstance(row, Row), row
            batcher.add(row)
        return [o for batch in batcher.drain() for o in self.writer.write(batch)]


def test_an_update_leaves_its_unavailable_columns_as_they_are(store: SqlStore, name: str, url: str) -> None:
    """Row 1 created whole, then updated with `n` changed and its TOAST columns (text, bytea, text[])
    unavailable: they keep the created values. Alone or in one batch with the create, the same."""
    sink = Sink(store, name)
    created = {"body": "a long document", "blob": base64.b64encode(b"\x00\x01").decode(), "n": 1, "tags": ["x"]}
    unavailable = {"body": UNAVAILABLE_VALUE, "blob": PLACEHOLDER_BYTES, "n": 2, "tags": [UNAVAILABLE_VALUE]}
    sink.events(("c", 1, created))
    sink.events(("u", 1, unavailable))
    sink.events(("c", 2, created), ("u", 2, unavailable), ("u", 2, {**unavailable, "n": 3}))
    rows = fetch_rows(url, name, order_by="id")
    assert [(r["id"], r["body"], r["n"]) for r in rows] == [(1, "a long document", 2), (2, "a long document", 3)]
    assert all(bytes(r["blob"]) == b"\x00\x01" for r in rows), rows
    assert all(UNAVAILABLE_VALUE not in json.dumps(r["tags"]) for r in rows), rows


def test_a_changed_toast_column_is_written_and_an_empty_placeholder_setting_writes_it_as_data(
    store: SqlStore, name: str, url: str
) -> None:
    sink = Sink(store, name)
    sink.events(("c", 1, {"body": "old", "n": 1}), ("u", 1, {"body": "new", "n": 2}))
    assert [(r["body"], r["n"]) for r in fetch_rows(url, name)] == [("new", 2)]
    off = Sink(store, name, placeholder="")
    off.events(("u", 1, {"body": UNAVAILABLE_VALUE, "n": 3}))
    assert [(r["body"], r["n"]) for r in fetch_rows(url, name)] == [(UNAVAILABLE_VALUE, 3)]
