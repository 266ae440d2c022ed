"""Review: JSON Schema values as they land in PostgreSQL, through the real broker, the test
registry over HTTP and the real worker."""

from __future__ import annotations

import datetime as dt
import json
import struct
from typing import Any

import pytest
from confluent_kafka.schema_registry import Schema

from tests.integration.conftest import TargetDb
from tests.integration.test_registry_sink import _client, _sink
from tests.support.db import fetch_rows, table_columns
from tests.support.kafka import create_topic

pytestmark = pytest.mark.integration

QTY_SCHEMA = {
    "$schema": "http://json-schema.org/draft-07/schema#",
    "title": "Line",
    "type": "object",
    "properties": {"id": {"type": "integer"}, "qty": {"type": ["integer", "null"]}},
    "required": ["id"],
}
# Confluent's JsonSchemaData writes an optional Connect struct as oneOf [null, object]
OPTIONAL_ROW_SCHEMA = {
    "oneOf": [
        {"type": "null"},
        {
            "type": "object",
            "title": "Row",
            "properties": {
                "id": {"type": "integer", "connect.index": 0, "connect.type": "int64"},
                "at": {"oneOf": [{"type": "null"}, {"type": "string", "format": "date-time"}], "connect.index": 1},
            },
            "required": ["id"],
        },
    ]
}


def _framed(schema_id: int, value: Any) -> bytes:
    """What a non-validating JSON Schema serializer writes (Java's KafkaJsonSchemaSerializer with
    its default json.fail.invalid.schema=false): magic byte 0, the id, the JSON text."""
    text = value if isinstance(value, bytes) else json.dumps(value).encode()
    return b"\x00" + struct.pack(">I", schema_id) + text


def _run(bootstrap: str, registry_url: str, db: TargetDb, topic: str, schema: Any, values: list[Any]) -> None:
    create_topic(bootstrap, topic)
    schema_id = _client(registry_url).register_schema(f"{topic}-value", Schema(json.dumps(schema), "JSON"))
    records = [{"key": str(n), "value": _framed(schema_id, v)} for n, v in enumerate(values, start=1)]
    _sink(
        bootstrap,
        db,
        topic,
        registry_url,
        records,
        key_format="string",
        value_format="json_schema",
        insert_mode="upsert",
        pk_mode="record_value",
        pk_fields="id",
        errors_tolerance="all",
    )


def test_json_schema_integer_column_never_rounds_a_fraction(
    bootstrap_servers: str, registry_url: str, pg_url: str, unique_name: str
) -> None:
    """`1.0` is an integer in JSON Schema (a number with a zero fractional part), so it lands as 1;
    `2.5` is not, and must not land as 2 or 3 (it is a record error: dead-lettered here)."""
    db = TargetDb("pg", pg_url)
    table = db.table(unique_name)
    values = [{"id": 1, "qty": 1.0}, {"id": 2, "qty": 2.5}, {"id": 3, "qty": 7}]
    _run(bootstrap_servers, registry_url, db, table, QTY_SCHEMA, values)
    rows = {r["id"]: r["qty"] for r in fetch_rows(db.url, table, "id")}
    assert rows.get(1) == 1 and rows.get(3) == 7, rows
    assert 2 not in rows, f"qty 2.5 of an integer column landed as {rows[2]!r}"


def test_json_schema_optional_top_level_struct_lands_as_columns(
    bootstrap_servers: str, registry_url: str, pg_url: str, unique_name: str
) -> None:
    db = TargetDb("pg", pg_url)
    table = db.table(unique_name)
    values = [{"id": 1, "at": "2024-01-01T10:00:00+01:00"}, {"id": 2, "at": None}]
    _run(bootstrap_servers, registry_url, db, table, OPTIONAL_ROW_SCHEMA, values)
    assert list(table_columns(db.url, table)) == ["id", "at"]
    rows = fetch_rows(db.url, table, "id")
    assert [(r["id"], r["at"]) for r in rows] == [(1, dt.datetime(2024, 1, 1, 9, 0, tzinfo=dt.UTC)), (2, None)]


DOC_SCHEMA = {
    "type": "object",
    "properties": {"id": {"type": "integer"}, "doc": {"type": ["array", "null"]}},
    "required": ["id"],
}


def test_json_schema_deeply_nested_value_is_one_record_error(
    bootstrap_servers: str, registry_url: str, pg_url: str, unique_name: str
) -> None:
    """A JSON value nested 1100 deep (past orjson's 1024, so `json` recurses and gives up) is one
    bad record: the records around it land and the worker goes on. (SINK_RECORD_MAX_DEPTH covers
    only the json and connect_json formats, as config/README.md says.)"""
    db = TargetDb("pg", pg_url)
    table = db.table(unique_name)
    deep = b'{"id": 2, "doc": ' + b"[" * 1100 + b"]" * 1100 + b"}"
    values = [{"id": 1, "doc": [1]}, deep, {"id": 3, "doc": None}]
    _run(bootstrap_servers, registry_url, db, table, DOC_SCHEMA, values)
    assert [r["id"] for r in fetch_rows(db.url, table, "id")] == [1, 3]


NAME_SCHEMA = {
    "type": "object",
    "properties": {"id": {"type": "integer"}, "name": {"type": ["string", "null"]}, "ok": {"type": "boolean"}},
    "required": ["id"],
}


def test_json_schema_values_that_do_not_fit_their_columns_are_record_errors(
    bootstrap_servers: str, registry_url: str, pg_url: str, unique_name: str
) -> None:
    """Payloads are not validated (sink/formats/json_schema.py): an object in a string column or a
    string in a boolean one is that record's error; the records around it land."""
    db = TargetDb("pg", pg_url)
    table = db.table(unique_name)
    values = [
        {"id": 1, "name": "a", "ok": True},
        {"id": 2, "name": {"first": "b"}},
        {"id": 3, "name": ["c"]},
        {"id": 4, "ok": "yes"},
        {"id": 5, "name": None, "ok": False},
    ]
    _run(bootstrap_servers, registry_url, db, table, NAME_SCHEMA, values)
    rows = fetch_rows(db.url, table, "id")
    assert [(r["id"], r["name"], r["ok"]) for r in rows if r["id"] in (1, 5)] == [(1, "a", True), (5, None, False)]
    assert not [r for r in rows if r["id"] in (2, 3, 4)], rows
