"""Source column types Debezium propagates (`column.propagate.source.type`): the schema parameters
`__debezium.source.column.type`, `.length` and `.scale` make the neutral column type exact, in
Connect JSON (`parameters`) and Avro (`connect.parameters`); anything unknown keeps today's type."""

from __future__ import annotations

import base64
import io
import json
from decimal import Decimal
from typing import Any

import fastavro
import pytest

from sink.formats.avro import AvroDecoder
from sink.formats.connect_json import ConnectJsonDecoder
from sink.formats.logical import with_source_type
from sink.model import Column, ColumnType, Kind, Payload
from tests.support.fakes import FakeRegistry

STRING = ColumnType(Kind.STRING)
VARIABLE = ColumnType(Kind.DECIMAL, precision=38, scale=None)
MICRO_LOCAL = ColumnType(Kind.LOCAL_TIMESTAMP, precision=6)


def source(type_: str, length: Any = None, scale: Any = None, **more: str) -> dict[str, str]:
    """The parameters Debezium adds to a field schema with column.propagate.source.type."""
    params = {"__debezium.source.column.type": type_, **more}
    if length is not None:
        params["__debezium.source.column.length"] = str(length)
    if scale is not None:
        params["__debezium.source.column.scale"] = str(scale)
    return params


@pytest.mark.parametrize(
    ("base", "params", "expected"),
    [
        (STRING, source("VARCHAR", 40), ColumnType(Kind.STRING, length=40)),
        (STRING, source("varchar", 40), ColumnType(Kind.STRING, length=40)),
        (STRING, source("BPCHAR", 2), ColumnType(Kind.STRING, length=2)),  # PostgreSQL's CHAR(2)
        (STRING, source("NVARCHAR2", 100), ColumnType(Kind.STRING, length=100)),
        (STRING, source("CHARACTER VARYING", 7), ColumnType(Kind.STRING, length=7)),
        (STRING, source("TEXT", 2147483647), STRING),  # a TEXT column's "length" is no bound
        (STRING, source("VARCHAR", 2147483647), STRING),  # PostgreSQL's varchar without a length
        (STRING, source("VARCHAR", 0), STRING),
        (STRING, source("VARCHAR", "forty"), STRING),  # not a number: the schema's type stands
        (STRING, source("CITEXT", 40), STRING),  # unknown source type
        (STRING, {"__debezium.source.column.length": "40"}, STRING),  # no source type
        (STRING, None, STRING),
        (ColumnType(Kind.BYTES), source("VARBINARY", 16), ColumnType(Kind.BYTES, length=16)),
        (ColumnType(Kind.BYTES), source("BYTEA", 2147483647), ColumnType(Kind.BYTES)),
        (ColumnType(Kind.BYTES), source("BIT", 3), ColumnType(Kind.BYTES)),  # bits, not bytes
        # a Connect Decimal: precision from the source, the scale stays the schema's (the values')
        (ColumnType(Kind.DECIMAL, precision=38, scale=2), source("NUMERIC", 10, 2), ColumnType(Kind.DECIMAL, 10, 2)),
        (ColumnType(Kind.DECIMAL, precision=64, scale=2), source("DECIMAL", 7, 2), ColumnType(Kind.DECIMAL, 7, 2)),
        (
            ColumnType(Kind.DECIMAL, precision=38, scale=2),
            source("DECIMAL UNSIGNED", 12, 2),  # MySQL
            ColumnType(Kind.DECIMAL, 12, 2),
        ),
        (ColumnType(Kind.DECIMAL, 38, 4), source("NUMERIC", 3, 4), ColumnType(Kind.DECIMAL, 38, 4)),  # scale > p
        # a VariableScaleDecimal of a NUMERIC(p,s) column: exact; of an unconstrained NUMERIC: unchanged
        (VARIABLE, source("NUMERIC", 12, 3), ColumnType(Kind.DECIMAL, 12, 3)),
        (VARIABLE, source("NUMBER", 20, 0), ColumnType(Kind.DECIMAL, 20, 0)),  # Oracle
        (VARIABLE, source("NUMERIC", 131089, 0), VARIABLE),
        (VARIABLE, source("NUMERIC", 0, 0), VARIABLE),
        (VARIABLE, source("NUMERIC", 12), VARIABLE),  # no scale: nothing to fix the column with
        (VARIABLE, source("MONEY", 12, 2), VARIABLE),
        # fractional-second digits: the scale, else a length up to 6 (MySQL's DATETIME(3))
        (MICRO_LOCAL, source("TIMESTAMP", 29, 3), ColumnType(Kind.LOCAL_TIMESTAMP, precision=3)),
        (MICRO_LOCAL, source("DATETIME", 3), ColumnType(Kind.LOCAL_TIMESTAMP, precision=3)),
        (MICRO_LOCAL, source("TIMESTAMP(0)", 19, 0), ColumnType(Kind.LOCAL_TIMESTAMP, precision=0)),
        (MICRO_LOCAL, source("DATETIME2", 27, 7), MICRO_LOCAL),  # SQL Server's 7 digits: kept to the microsecond
        (MICRO_LOCAL, source("DATE", 7), MICRO_LOCAL),  # Oracle's DATE: 7 is a size, not digits
        (ColumnType(Kind.TIME, precision=6), source("TIME", 15, 2), ColumnType(Kind.TIME, precision=2)),
        (ColumnType(Kind.TIMESTAMP, precision=6), source("TIMESTAMPTZ", 35, 4), ColumnType(Kind.TIMESTAMP, 4)),
        (ColumnType(Kind.TIMESTAMP, precision=6), source("INT8", 19, 0), ColumnType(Kind.TIMESTAMP, 6)),
        (ColumnType(Kind.INT32), source("INT4", 10, 0), ColumnType(Kind.INT32)),
        (ColumnType(Kind.JSON), source("JSONB", 2147483647, 0), ColumnType(Kind.JSON)),
    ],
)
def test_with_source_type(base: ColumnType, params: dict[str, str] | None, expected: ColumnType) -> None:
    assert with_source_type(base, params) == expected


# ------------------------------------------------------------------------------ Connect JSON


def _connect_field(name: str, type_: str, params: dict[str, str], logical: str | None = None) -> dict[str, Any]:
    field: dict[str, Any] = {"type": type_, "optional": True, "field": name, "parameters": params}
    if logical:
        field["name"] = logical
    return field


def _unscaled(value: Decimal) -> bytes:
    sign, digits, _ = value.as_tuple()
    unscaled = int("".join(map(str, digits))) * (-1 if sign else 1)
    return unscaled.to_bytes((unscaled.bit_length() + 8) // 8, "big", signed=True)


CONNECT_SCHEMA = {
    "type": "struct",
    "name": "dbserver1.inventory.orders.Value",
    "optional": True,
    "fields": [
        _connect_field("code", "string", source("BPCHAR", 3)),
        _connect_field("name", "string", source("VARCHAR", 40)),
        _connect_field("notes", "string", source("TEXT", 2147483647)),
        _connect_field(
            "price",
            "bytes",
            {"scale": "2", **source("NUMERIC", 9, 2)},  # no connect.decimal.precision: 38 without the source's
            "org.apache.kafka.connect.data.Decimal",
        ),
        {
            "type": "struct",
            "name": "io.debezium.data.VariableScaleDecimal",
            "optional": True,
            "field": "rate",
            "parameters": source("NUMERIC", 12, 5),
            "fields": [
                {"type": "int32", "optional": False, "field": "scale"},
                {"type": "bytes", "optional": False, "field": "value"},
            ],
        },
        _connect_field("placed_at", "int64", source("TIMESTAMP", 29, 3), "io.debezium.time.MicroTimestamp"),
        _connect_field("tag", "string", source("CITEXT", 2147483647)),
    ],
}
EXPECTED_TYPES = {
    "code": ColumnType(Kind.STRING, length=3),
    "name": ColumnType(Kind.STRING, length=40),
    "notes": STRING,
    "price": ColumnType(Kind.DECIMAL, precision=9, scale=2),
    "rate": ColumnType(Kind.DECIMAL, precision=12, scale=5),
    "placed_at": ColumnType(Kind.LOCAL_TIMESTAMP, precision=3),
    "tag": STRING,
}


def test_connect_json_columns_take_the_source_column_types() -> None:
    payload = {
        "code": "AB ",
        "name": "widget",
        "notes": None,
        "price": base64.b64encode(_unscaled(Decimal("12.34"))).decode(),
        "rate": {"scale": 5, "value": base64.b64encode(_unscaled(Decimal("1.00005"))).decode()},
        "placed_at": 1_700_000_000_123_000,
        "tag": "x",
    }
    decoded = ConnectJsonDecoder().decode(json.dumps({"schema": CONNECT_SCHEMA, "payload": payload}).encode())
    assert isinstance(decoded.shape, tuple)
    assert {c.name: c.type for c in decoded.shape} == EXPECTED_TYPES
    assert decoded.data["code"] == "AB " and decoded.data["price"] == Decimal("12.34")
    assert decoded.data["rate"] == Decimal("1.00005")


def test_connect_json_key_columns_take_them_too() -> None:
    key_schema = {
        "type": "struct",
        "name": "dbserver1.inventory.orders.Key",
        "optional": False,
        "fields": [
            {"type": "string", "optional": False, "field": "sku", "parameters": source("VARCHAR", 32)},
        ],
    }
    decoded = ConnectJsonDecoder().decode(json.dumps({"schema": key_schema, "payload": {"sku": "a-1"}}).encode())
    assert decoded.shape == (Column("sku", ColumnType(Kind.STRING, length=32), nullable=False),)


# ------------------------------------------------------------------------------ Avro


def decode_avro(schema: dict[str, Any], value: dict[str, Any]) -> Payload:
    out = io.BytesIO()
    fastavro.schemaless_writer(out, fastavro.parse_schema(schema), value)
    registry = FakeRegistry({1: ("AVRO", json.dumps(schema), [])})
    return AvroDecoder(registry).decode(b"\x00" + (1).to_bytes(4, "big") + out.getvalue())


def _optional(type_: Any) -> dict[str, Any]:
    return {"type": ["null", type_], "default": None}


AVRO_SCHEMA = {
    "type": "record",
    "name": "Value",
    "namespace": "dbserver1.inventory.orders",
    "fields": [
        {"name": "code", **_optional({"type": "string", "connect.parameters": source("BPCHAR", 3)})},
        {"name": "name", **_optional({"type": "string", "connect.parameters": source("VARCHAR", 40)})},
        {"name": "notes", **_optional({"type": "string", "connect.parameters": source("TEXT", 2147483647)})},
        {
            "name": "price",
            **_optional(
                {
                    "type": "bytes",
                    "scale": 2,
                    "precision": 64,  # AvroConverter's default without connect.decimal.precision
                    "connect.version": 1,
                    "connect.parameters": {"scale": "2", **source("NUMERIC", 9, 2)},
                    "connect.name": "org.apache.kafka.connect.data.Decimal",
                    "logicalType": "decimal",
                }
            ),
        },
        {
            "name": "rate",
            **_optional(
                {
                    "type": "record",
                    "name": "VariableScaleDecimal",
                    "namespace": "io.debezium.data",
                    "fields": [{"name": "scale", "type": "int"}, {"name": "value", "type": "bytes"}],
                    "connect.version": 1,
                    "connect.parameters": source("NUMERIC", 12, 5),
                    "connect.name": "io.debezium.data.VariableScaleDecimal",
                }
            ),
        },
        {
            "name": "placed_at",
            **_optional(
                {
                    "type": "long",
                    "connect.version": 1,
                    "connect.parameters": source("TIMESTAMP", 29, 3),
                    "connect.name": "io.debezium.time.MicroTimestamp",
                }
            ),
        },
        {"name": "tag", **_optional({"type": "string", "connect.parameters": source("CITEXT", 2147483647)})},
    ],
    "connect.name": "dbserver1.inventory.orders.Value",
}


def test_avro_columns_take_the_source_column_types() -> None:
    value = {
        "code": "AB ",
        "name": "widget",
        "notes": None,
        "price": Decimal("12.34"),
        "rate": {"scale": 5, "value": _unscaled(Decimal("1.00005"))},
        "placed_at": 1_700_000_000_123_000,
        "tag": "x",
    }
    decoded = decode_avro(AVRO_SCHEMA, value)
    assert isinstance(decoded.shape, tuple)
    assert {c.name: c.type for c in decoded.shape} == EXPECTED_TYPES
    assert all(c.nullable for c in decoded.shape)
    assert decoded.data["price"] == Decimal("12.34") and decoded.data["rate"] == Decimal("1.00005")


def test_avro_without_source_parameters_keeps_its_types() -> None:
    schema = {
        "type": "record",
        "name": "Row",
        "fields": [
            {"name": "name", "type": "string"},
            {"name": "other", "type": {"type": "string", "connect.parameters": {"allowed": "a,b"}}},
        ],
    }
    decoded = decode_avro(schema, {"name": "x", "other": "a"})
    assert decoded.shape == (Column("name", STRING, nullable=False), Column("other", STRING, nullable=False))
