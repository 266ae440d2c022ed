"""The JSON Schema registry format: types, values and nullability, primitives and its decode errors.
The `SchemaSource` port is a dict-backed fake.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from typing import Any

from sink.formats.json_schema import JsonSchemaDecoder
from sink.model import ColumnType, Kind
from tests.support.fakes import FakeRegistry
from tests.support.wire import decode_error, header

UTC = dt.UTC
INT64 = ColumnType(Kind.INT64)
STRING, JSON = ColumnType(Kind.STRING), ColumnType(Kind.JSON)
BOOLEAN, FLOAT64 = ColumnType(Kind.BOOLEAN), ColumnType(Kind.FLOAT64)


UID = uuid.UUID("12345678-1234-5678-1234-567812345678")

JSON_SCHEMA = {
    "$schema": "http://json-schema.org/draft-07/schema#",
    "title": "Order",
    "type": "object",
    "properties": {
        "id": {"type": "integer"},
        "price": {"type": "number"},
        "paid": {"type": "boolean"},
        "name": {"type": "string"},
        "at": {"type": "string", "format": "date-time"},
        "day": {"type": "string", "format": "date"},
        "time": {"type": "string", "format": "time"},
        "uid": {"type": "string", "format": "uuid"},
        "meta": {"type": "object"},
        "tags": {"type": "array", "items": {"type": "string"}},
        "note": {"type": ["null", "string"]},
        "alt": {"anyOf": [{"type": "null"}, {"$ref": "#/definitions/Day"}]},
        "small": {"type": "integer", "connect.type": "int16"},
        "ms": {"type": "integer", "title": "org.apache.kafka.connect.data.Timestamp", "connect.type": "int64"},
        "level": {"enum": ["LOW", "HIGH"]},
        "qty": {"type": "integer", "default": 1},
    },
    "required": ["id", "name", "note", "at"],
    "definitions": {"Day": {"type": "string", "format": "date"}},
}


def json_decoder(schema: Any = JSON_SCHEMA, schema_id: int = 1) -> JsonSchemaDecoder:
    return JsonSchemaDecoder(FakeRegistry({schema_id: ("JSON", json.dumps(schema), [])}))


def json_bytes(value: Any, schema_id: int = 1) -> bytes:
    return header(schema_id) + json.dumps(value).encode()


def test_json_schema_types_values_and_nullability() -> None:
    value = {
        "id": 1,
        "price": 2.5,
        "paid": True,
        "name": "x",
        "at": "2024-01-02T03:04:05.123456Z",
        "day": "2024-02-29",
        "time": "10:11:12+02:00",
        "uid": str(UID),
        "meta": {"a": [1]},
        "tags": ["a"],
        "note": None,
        "alt": "2020-01-01",
        "small": 3,
        "ms": 1000,
        "level": "LOW",
        "undeclared": "dropped",
    }
    payload = json_decoder().decode(json_bytes(value))
    assert payload.data == {
        "id": 1,
        "price": 2.5,
        "paid": True,
        "name": "x",
        "at": dt.datetime(2024, 1, 2, 3, 4, 5, 123456, tzinfo=UTC),
        "day": dt.date(2024, 2, 29),
        "time": dt.time(8, 11, 12),
        "uid": UID,
        "meta": {"a": [1]},
        "tags": ["a"],
        "note": None,
        "alt": dt.date(2020, 1, 1),
        "small": 3,
        "ms": dt.datetime(1970, 1, 1, 0, 0, 1, tzinfo=UTC),
        "level": "LOW",
        "qty": None,
    }
    columns = {c.name: c for c in payload.shape}
    assert {n: c.type for n, c in columns.items()} == {
        "id": INT64,
        "price": FLOAT64,
        "paid": BOOLEAN,
        "name": STRING,
        "at": ColumnType(Kind.TIMESTAMP, precision=6),
        "day": ColumnType(Kind.DATE),
        "time": ColumnType(Kind.TIME, precision=6),
        "uid": ColumnType(Kind.UUID),
        "meta": JSON,
        "tags": JSON,
        "note": STRING,
        "alt": ColumnType(Kind.DATE),
        "small": ColumnType(Kind.INT16),
        "ms": ColumnType(Kind.TIMESTAMP, precision=3),
        "level": STRING,
        "qty": INT64,
    }
    assert [n for n, c in columns.items() if not c.nullable] == ["id", "name", "at"]
    assert columns["qty"].has_default and columns["qty"].default == 1
    assert payload.schema_id == 1


def test_json_schema_primitive_and_errors() -> None:
    decoder = json_decoder({"type": "string", "format": "uuid"}, 2)
    payload = decoder.decode(json_bytes(str(UID), 2))
    assert (payload.data, payload.shape) == (UID, ColumnType(Kind.UUID))
    objects = json_decoder()
    assert "invalid JSON at byte 6" in decode_error(objects, header(1) + b"{nope")
    assert "describes an object but the payload is a list" in decode_error(objects, json_bytes([1]))
    bad_date = {"id": 1, "name": "x", "note": None, "at": "2024-01-01T00:00:00Z", "day": "29/02/2024"}
    assert "field 'day'" in decode_error(objects, json_bytes(bad_date))
    assert "unknown schema id 5" in decode_error(objects, json_bytes({}, 5))
    assert "magic byte 0x7b" in decode_error(objects, b'{"id": 1}')
