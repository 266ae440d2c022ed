"""Debezium's spatial types (`io.debezium.data.geometry.Geometry`, `Geography`, `Point`) are one JSON
column holding the struct as Debezium's JsonConverter writes it, `{"wkb": base64, "srid": n}`, the
same from Connect JSON, Avro and schemaless JSON (docs/types.md)."""

from __future__ import annotations

import base64
import io
import json
from typing import Any

import fastavro
import pytest

from sink.errors import DecodeError
from sink.formats import Struct
from sink.formats.avro import AvroDecoder
from sink.formats.connect_json import ConnectJsonDecoder
from sink.formats.json_plain import JsonDecoder
from sink.model import Column, ColumnType, Kind, Payload
from tests.support.fakes import FakeRegistry

POINT_WKB = bytes.fromhex("0101000000000000000000f03f0000000000000040")  # POINT(1 2)
WKB_TEXT = base64.b64encode(POINT_WKB).decode()
JSON = ColumnType(Kind.JSON)


def _connect_spatial(field: str, name: str) -> dict[str, Any]:
    fields = [
        {"type": "bytes", "optional": False, "field": "wkb"},
        {"type": "int32", "optional": True, "field": "srid"},
    ]
    if name.endswith("Point"):
        fields = [
            {"type": "float64", "optional": False, "field": "x"},
            {"type": "float64", "optional": False, "field": "y"},
            {"type": "bytes", "optional": True, "field": "wkb"},
            {"type": "int32", "optional": True, "field": "srid"},
        ]
    return {"type": "struct", "name": name, "version": 1, "optional": True, "field": field, "fields": fields}


CONNECT_SCHEMA = {
    "type": "struct",
    "name": "dbserver1.inventory.places.Value",
    "fields": [
        _connect_spatial("shape", "io.debezium.data.geometry.Geometry"),
        _connect_spatial("area", "io.debezium.data.geometry.Geography"),
        _connect_spatial("spot", "io.debezium.data.geometry.Point"),
    ],
}
EXPECTED = {
    "shape": {"wkb": WKB_TEXT, "srid": 4326},
    "area": {"wkb": WKB_TEXT, "srid": None},
    "spot": {"x": 1.0, "y": 2.0, "wkb": WKB_TEXT, "srid": 3857},
}
EXPECTED_SHAPE = (Column("shape", JSON), Column("area", JSON), Column("spot", JSON))


def test_connect_json_spatial_columns_are_documents() -> None:
    payload = {
        "shape": {"wkb": WKB_TEXT, "srid": 4326},
        "area": {"wkb": WKB_TEXT, "srid": None},
        "spot": {"x": 1.0, "y": 2.0, "wkb": WKB_TEXT, "srid": 3857},
    }
    decoded = ConnectJsonDecoder().decode(json.dumps({"schema": CONNECT_SCHEMA, "payload": payload}).encode())
    assert decoded.shape == EXPECTED_SHAPE
    assert decoded.data == EXPECTED


def test_a_point_without_wkb_keeps_its_coordinates() -> None:
    payload = {"shape": None, "area": None, "spot": {"x": -0.5, "y": 51.25, "wkb": None, "srid": None}}
    decoded = ConnectJsonDecoder().decode(json.dumps({"schema": CONNECT_SCHEMA, "payload": payload}).encode())
    assert decoded.data == {"shape": None, "area": None, "spot": {"x": -0.5, "y": 51.25, "wkb": None, "srid": None}}


def test_a_spatial_struct_with_bad_base64_is_a_decode_error() -> None:
    payload = {"shape": {"wkb": "not base64!", "srid": 1}, "area": None, "spot": None}
    with pytest.raises(DecodeError, match="shape"):
        ConnectJsonDecoder().decode(json.dumps({"schema": CONNECT_SCHEMA, "payload": payload}).encode())


def _avro_spatial(name: str) -> dict[str, Any]:
    namespace, short = name.rsplit(".", 1)
    fields: list[dict[str, Any]] = [
        {"name": "wkb", "type": "bytes"},
        {"name": "srid", "type": ["null", "int"], "default": None},
    ]
    if short == "Point":
        fields = [
            {"name": "x", "type": "double"},
            {"name": "y", "type": "double"},
            {"name": "wkb", "type": ["null", "bytes"], "default": None},
            {"name": "srid", "type": ["null", "int"], "default": None},
        ]
    return {
        "type": "record",
        "name": short,
        "namespace": namespace,
        "fields": fields,
        "connect.doc": "Geometry",
        "connect.version": 1,
        "connect.name": name,
    }


AVRO_SCHEMA = {
    "type": "record",
    "name": "Value",
    "namespace": "dbserver1.inventory.places",
    "fields": [
        {"name": "shape", "type": ["null", _avro_spatial("io.debezium.data.geometry.Geometry")], "default": None},
        {"name": "area", "type": ["null", _avro_spatial("io.debezium.data.geometry.Geography")], "default": None},
        {"name": "spot", "type": ["null", _avro_spatial("io.debezium.data.geometry.Point")], "default": None},
    ],
}


def _decode_avro(value: dict[str, Any]) -> Payload:
    out = io.BytesIO()
    fastavro.schemaless_writer(out, fastavro.parse_schema(AVRO_SCHEMA), value)
    registry = FakeRegistry({1: ("AVRO", json.dumps(AVRO_SCHEMA), [])})
    return AvroDecoder(registry).decode(b"\x00" + (1).to_bytes(4, "big") + out.getvalue())


def test_avro_spatial_columns_are_the_same_documents() -> None:
    decoded = _decode_avro(
        {
            "shape": {"wkb": POINT_WKB, "srid": 4326},
            "area": {"wkb": POINT_WKB, "srid": None},
            "spot": {"x": 1.0, "y": 2.0, "wkb": POINT_WKB, "srid": 3857},
        }
    )
    assert decoded.shape == EXPECTED_SHAPE
    assert not isinstance(decoded.shape, Struct)  # one column each: no nested record for Flatten to split
    assert decoded.data == EXPECTED


def test_schemaless_json_carries_the_same_document() -> None:
    decoded = JsonDecoder().decode(json.dumps(EXPECTED).encode())
    assert decoded.data == EXPECTED
