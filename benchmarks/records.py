"""Deterministic benchmark data: one 'orders' shape with 8 columns of mixed types, as sink rows
(for the write path), plain JSON records and Kafka Connect JSON records (for decode and end to end)."""

from __future__ import annotations

import base64
import datetime as dt
import decimal
import json
from typing import Any

from sink.model import Batch, Column, ColumnType, Coord, Kind, Op, RawRecord, Row, TableSpec

BASE_TIME = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
COLORS = ("red", "green", "blue", "black", "white")

COLUMNS = (
    Column("id", ColumnType(Kind.INT64), nullable=False),
    Column("customer", ColumnType(Kind.STRING)),
    Column("quantity", ColumnType(Kind.INT32)),
    Column("price", ColumnType(Kind.DECIMAL, precision=12, scale=2)),
    Column("score", ColumnType(Kind.FLOAT64)),
    Column("active", ColumnType(Kind.BOOLEAN)),
    Column("updated_at", ColumnType(Kind.TIMESTAMP, precision=6)),
    Column("attrs", ColumnType(Kind.JSON)),
)
NAMES = tuple(c.name for c in COLUMNS)


def values(i: int, key: int | None = None) -> dict[str, Any]:
    """Python values of row `i` (primary key `key`, default `i`)."""
    return {
        "id": i if key is None else key,
        "customer": f"customer-{i % 9973:05d} of the benchmark shop",
        "quantity": i % 1000,
        "price": decimal.Decimal(i % 100_000) + decimal.Decimal(i % 100) / 100,
        "score": i * 0.37 + 0.25,
        "active": i % 3 != 0,
        "updated_at": BASE_TIME + dt.timedelta(seconds=i, microseconds=i % 1000),
        "attrs": {"color": COLORS[i % len(COLORS)], "tags": ["a", f"t{i % 17}"], "rank": i % 11},
    }


def spec(table: str) -> TableSpec:
    return TableSpec(table, COLUMNS, ("id",))


def batches(table: str, rows: int, batch_size: int) -> list[Batch]:
    """Pre-built upsert batches with the record key {"id": i} as primary key."""
    table_spec = spec(table)
    built: list[Batch] = []
    for start in range(0, rows, batch_size):
        chunk = tuple(
            Row(
                RawRecord(Coord("bench", 0, i), None, None),
                table,
                Op.UPSERT,
                {"id": i},
                values(i),
                table_spec,
                schema_id="bench",
            )
            for i in range(start, min(rows, start + batch_size))
        )
        built.append(Batch(table, table_spec, chunk))
    return built


# ------------------------------------------------------------------------------ wire formats


def json_record(i: int, key: int | None = None) -> tuple[bytes, bytes]:
    """Plain JSON key {"id": k} and value (decimal as number, timestamp as ISO text)."""
    row = values(i, key)
    row["price"] = float(row["price"])
    row["updated_at"] = row["updated_at"].isoformat().replace("+00:00", "Z")
    return json.dumps({"id": row["id"]}).encode(), json.dumps(row, separators=(",", ":")).encode()


_CONNECT_KEY_SCHEMA = {"type": "struct", "optional": False, "fields": [{"field": "id", "type": "int64"}]}
_CONNECT_VALUE_SCHEMA = {
    "type": "struct",
    "name": "bench.Order",
    "optional": False,
    "fields": [
        {"field": "id", "type": "int64", "optional": False},
        {"field": "customer", "type": "string", "optional": True},
        {"field": "quantity", "type": "int32", "optional": True},
        {
            "field": "price",
            "type": "bytes",
            "optional": True,
            "name": "org.apache.kafka.connect.data.Decimal",
            "version": 1,
            "parameters": {"scale": "2", "connect.decimal.precision": "12"},
        },
        {"field": "score", "type": "double", "optional": True},
        {"field": "active", "type": "boolean", "optional": True},
        {
            "field": "updated_at",
            "type": "int64",
            "optional": True,
            "name": "org.apache.kafka.connect.data.Timestamp",
            "version": 1,
        },
        {"field": "attrs", "type": "string", "optional": True, "name": "io.debezium.data.Json", "version": 1},
    ],
}


def _decimal_bytes(value: decimal.Decimal, scale: int) -> str:
    unscaled = int(value.scaleb(scale))
    raw = unscaled.to_bytes((unscaled.bit_length() + 8) // 8 or 1, "big", signed=True)
    return base64.b64encode(raw).decode()


def connect_json_record(i: int, key: int | None = None) -> tuple[bytes, bytes]:
    """Kafka Connect JsonConverter (schemas.enable=true) key and value envelopes."""
    row = values(i, key)
    payload = {
        **row,
        "price": _decimal_bytes(row["price"], 2),
        "updated_at": int(row["updated_at"].timestamp() * 1000),
        "attrs": json.dumps(row["attrs"]),
    }
    key_doc = {"schema": _CONNECT_KEY_SCHEMA, "payload": {"id": row["id"]}}
    value_doc = {"schema": _CONNECT_VALUE_SCHEMA, "payload": payload}
    return json.dumps(key_doc).encode(), json.dumps(value_doc, separators=(",", ":")).encode()
