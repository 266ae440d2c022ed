"""Kafka Connect JSON (schema + payload) with logical types lands with exact values."""

from __future__ import annotations

import base64
import datetime as dt
import json
import uuid
from decimal import Decimal
from typing import Any

import pytest

from tests.integration.conftest import TargetDb
from tests.support.db import fetch_rows, primary_key, table_columns
from tests.support.kafka import create_topic, produce
from tests.support.runner import running_sink, sink_env

pytestmark = pytest.mark.integration

UTC = dt.UTC


def _unscaled(value: int) -> str:
    length = max(1, (value.bit_length() + 8) // 8)
    return base64.b64encode(value.to_bytes(length, "big", signed=True)).decode()


def _field(name: str, type_: str, logical: str | None = None, optional: bool = True, **extra: Any) -> dict:
    field = {"field": name, "type": type_, "optional": optional, **extra}
    if logical:
        field["name"] = logical
    return field


SCHEMA = {
    "type": "struct",
    "name": "shop.Order",
    "optional": False,
    "fields": [
        _field("id", "int64", optional=False),
        _field("price", "bytes", "org.apache.kafka.connect.data.Decimal", parameters={"scale": "2"}),
        _field(
            "big",
            "bytes",
            "org.apache.kafka.connect.data.Decimal",
            parameters={"scale": "10", "connect.decimal.precision": "38"},
        ),
        _field("day", "int32", "org.apache.kafka.connect.data.Date"),
        _field("at", "int32", "org.apache.kafka.connect.data.Time"),
        _field("ts", "int64", "org.apache.kafka.connect.data.Timestamp"),
        _field("micro", "int64", "io.debezium.time.MicroTimestamp"),
        _field("zoned", "string", "io.debezium.time.ZonedTimestamp"),
        _field("ref", "string", "io.debezium.data.Uuid"),
        _field("blob", "bytes"),
        _field("ratio", "double"),
        _field("note", "string"),
    ],
}

BIG = 1234567890123456789012345678_1234567890  # 38 digits, scale 10
REF = uuid.UUID("8c6b0c1e-1d7e-4f45-9a2e-3a0d1f2b3c4d")


def _records() -> list[tuple[dict, dict]]:
    """(payload, expected row) pairs."""
    return [
        (
            {
                "id": 1,
                "price": _unscaled(-12345),
                "big": _unscaled(BIG),
                "day": 19000,
                "at": 3_723_004,
                "ts": 1_700_000_000_123,
                "micro": 1_700_000_000_123_456,
                "zoned": "2023-11-14T23:13:20.654321+01:00",
                "ref": str(REF),
                "blob": base64.b64encode(b"\x00\xff\x10").decode(),
                "ratio": 0.1,
                "note": "Über",
            },
            {
                "id": 1,
                "price": Decimal("-123.45"),
                "big": Decimal("1234567890123456789012345678.1234567890"),
                "day": dt.date(2022, 1, 8),
                "at": dt.time(1, 2, 3, 4000),
                "ts": dt.datetime(2023, 11, 14, 22, 13, 20, 123000, tzinfo=UTC),
                "micro": dt.datetime(2023, 11, 14, 22, 13, 20, 123456),
                "zoned": dt.datetime(2023, 11, 14, 22, 13, 20, 654321, tzinfo=UTC),
                "ref": REF,
                "blob": b"\x00\xff\x10",
                "ratio": 0.1,
                "note": "Über",
            },
        ),
        (
            {
                "id": 2,
                "price": "1234",  # base64 that looks like a number: unscaled 0xd76df8
                "big": 7,  # decimal.format=NUMERIC
                "day": -1,
                "at": 0,
                "ts": 0,
                "micro": -1,
                "zoned": None,
                "ref": None,
                "blob": None,
                "ratio": None,
                "note": None,
            },
            {
                "id": 2,
                "price": Decimal("-26588.24"),
                "big": Decimal("7"),
                "day": dt.date(1969, 12, 31),
                "at": dt.time(0, 0),
                "ts": dt.datetime(1970, 1, 1, tzinfo=UTC),
                "micro": dt.datetime(1969, 12, 31, 23, 59, 59, 999999),
                "zoned": None,
                "ref": None,
                "blob": None,
                "ratio": None,
                "note": None,
            },
        ),
    ]


def _normalise(row: dict, kind: str) -> dict:
    """What each database gives back for the same value (SQLite keeps decimals as text, instants as
    naive UTC, UUIDs as text)."""
    out = dict(row)
    if kind == "sqlite":
        for name in ("price", "big"):
            out[name] = None if out[name] is None else Decimal(str(out[name]))
        for name in ("ts", "zoned"):
            value = out[name]
            if isinstance(value, dt.datetime) and value.tzinfo is not None:
                out[name] = value.astimezone(UTC).replace(tzinfo=None)
        if isinstance(out["ref"], str):  # TEXT, with or without dashes: the same UUID
            out["ref"] = uuid.UUID(out["ref"])
    if isinstance(out.get("blob"), memoryview):
        out["blob"] = bytes(out["blob"])
    return out


def test_connect_json_logical_types_land_exactly(bootstrap_servers: str, db: TargetDb, unique_name: str) -> None:
    topic = table = db.table(unique_name)
    create_topic(bootstrap_servers, topic)
    records = _records()
    produce(
        bootstrap_servers,
        topic,
        [{"key": str(p["id"]), "value": json.dumps({"schema": SCHEMA, "payload": p})} for p, _ in records],
    )
    env = sink_env(
        bootstrap_servers,
        db.url,
        topic,
        unique_name,
        value_format="connect_json",
        insert_mode="upsert",
        pk_mode="record_value",
        pk_fields="id",
    )
    with running_sink(env) as sink:
        sink.wait_committed(topic, {0: len(records)})

    rows = [_normalise(r, db.kind) for r in fetch_rows(db.url, table, order_by="id")]
    expected = [_normalise(e, db.kind) for _, e in records]
    assert rows == expected
    for row in rows:
        for name in ("price", "big"):
            assert row[name] is None or isinstance(row[name], Decimal)
        assert str(rows[0]["big"]) == "1234567890123456789012345678.1234567890"
        assert str(rows[0]["price"]) == "-123.45"
    assert primary_key(db.url, table) == ["id"]
    columns = table_columns(db.url, table)
    assert list(columns) == [f["field"] for f in SCHEMA["fields"]]
    assert not columns["id"]["nullable"]
    assert all(columns[f["field"]]["nullable"] for f in SCHEMA["fields"][1:])


def test_connect_json_primitive_key_and_value(bootstrap_servers: str, db: TargetDb, unique_name: str) -> None:
    topic = table = db.table(unique_name)
    create_topic(bootstrap_servers, topic)
    key_schema = {"type": "int32", "optional": False}
    value_schema = {"type": "string", "optional": True}
    produce(
        bootstrap_servers,
        topic,
        [
            {
                "key": json.dumps({"schema": key_schema, "payload": k}),
                "value": json.dumps({"schema": value_schema, "payload": v}),
            }
            for k, v in ((1, "one"), (2, "two"), (1, "uno"))
        ],
    )
    env = sink_env(
        bootstrap_servers,
        db.url,
        topic,
        unique_name,
        key_format="connect_json",
        value_format="connect_json",
        insert_mode="upsert",
        pk_mode="record_key",
        pk_fields="id",
    )
    with running_sink(env) as sink:
        sink.wait_committed(topic, {0: 3})
    assert fetch_rows(db.url, table, order_by="id") == [
        {"id": 1, "__connect_value": "uno"},
        {"id": 2, "__connect_value": "two"},
    ]
