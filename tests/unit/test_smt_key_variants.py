"""Connect's `$Key` variants added to the chain (InsertField$Key, TimestampConverter$Key,
HeaderFrom$Key) and Cast's rule for binary data (to string only, as base64), with a schema and
schemaless; their configuration errors name the variable."""

from __future__ import annotations

import base64
import datetime as dt
import json
from typing import Any

import pytest

from sink.errors import ConfigError, MappingError
from sink.formats.connect_json import ConnectJsonDecoder
from sink.formats.json_plain import JsonDecoder
from sink.model import ColumnType, Coord, Kind, Outcome, RawRecord, Row, Stage
from sink.pipeline import Preparer
from sink.transforms import RowMapper
from tests.unit.test_smt import TS, mapper, settings

KEY_SCHEMA = {
    "type": "struct",
    "name": "shop.OrderKey",
    "optional": False,
    "fields": [
        {"field": "id", "type": "int64", "optional": False},
        {"field": "day", "type": "int64", "optional": True},
        {"field": "region", "type": "string", "optional": True},
    ],
}


def prepare(m: RowMapper, key: Any, value: Any, *, connect_key: bool = False, topic: str = "shop.orders") -> Any:
    """A record with a JSON key (Connect JSON with KEY_SCHEMA when `connect_key`) and a JSON value."""
    key_bytes = json.dumps({"schema": KEY_SCHEMA, "payload": key} if connect_key else key).encode()
    key_decoder = ConnectJsonDecoder() if connect_key else JsonDecoder()
    raw = RawRecord(Coord(topic, 3, 42), key_bytes, json.dumps(value).encode(), (), TS)
    return Preparer(key_decoder, JsonDecoder(), m).prepare(raw)


def row(*args: Any, **kwargs: Any) -> Row:
    result = prepare(*args, **kwargs)
    assert isinstance(result, Row), result
    return result


# ------------------------------------------------------------------------------ InsertField$Key


def test_insert_field_key_adds_kafka_coordinates_to_the_primary_key() -> None:
    m = mapper(
        {"coords": {"type": "insert_field_key", "partition_field": "part!", "topic_field": "src"}},
        pk_mode="record_key",
    )
    r = row(m, {"id": 5, "day": 7, "region": "eu"}, {"id": 5, "note": "x"}, connect_key=True)
    assert dict(r.key) == {"id": 5, "day": 7, "region": "eu", "part": 3, "src": "shop.orders"}
    assert r.spec.primary_key == ("id", "day", "region", "src", "part")  # in InsertField's order
    assert r.spec.column("part").type == ColumnType(Kind.INT32) and not r.spec.column("part").nullable
    assert r.values["note"] == "x" and "part" in r.values  # the key's columns are the row's too


def test_insert_field_key_schemaless() -> None:
    m = mapper({"c": {"type": "insert_field_key", "offset_field": "pos"}}, pk_mode="record_key")
    assert dict(row(m, {"id": 1}, {"v": 2}).key) == {"id": 1, "pos": 42}


# ------------------------------------------------------------------------------ TimestampConverter$Key


def test_timestamp_converter_key_types_a_key_column() -> None:
    m = mapper(
        {"t": {"type": "timestamp_converter_key", "field": "day", "target_type": "Date"}},
        pk_mode="record_key",
        pk_fields=("id", "day"),
    )
    r = row(m, {"id": 5, "day": TS, "region": None}, {"v": 1}, connect_key=True)
    assert dict(r.key) == {"id": 5, "day": dt.date(2023, 11, 14)}
    assert r.spec.column("day").type == ColumnType(Kind.DATE)
    assert r.values["v"] == 1  # the value is untouched


def test_timestamp_converter_key_on_the_whole_key() -> None:
    m = mapper(
        {
            "t": {"type": "timestamp_converter_key", "target_type": "string", "format": "yyyy-MM-dd"},
            "h": {"type": "hoist_field_key", "field": "day"},
        },
        pk_mode="record_key",
    )
    assert dict(row(m, TS, {"v": 1}).key) == {"day": "2023-11-14"}


# ------------------------------------------------------------------------------ HeaderFrom$Key


def test_header_from_key_copies_key_fields_into_headers() -> None:
    m = mapper(
        {"h": {"type": "header_from_key", "fields": "region", "headers": "zone", "operation": "copy"}},
        pk_mode="record_header",
        pk_fields=("zone",),
    )
    r = row(m, {"id": 5, "day": None, "region": "eu"}, {"id": 5, "v": 1}, connect_key=True)
    assert dict(r.key) == {"zone": "eu"}
    assert r.raw.headers == ()  # the row keeps the record as it was read (DLQ, reports)


def test_header_from_key_move_removes_the_fields_from_the_key() -> None:
    m = mapper(
        {"h": {"type": "header_from_key", "fields": "region,day", "headers": "zone,d", "operation": "move"}},
        pk_mode="record_key",
    )
    r = row(m, {"id": 5, "day": 7, "region": "eu"}, {"v": 1}, connect_key=True)
    assert dict(r.key) == {"id": 5} and r.spec.primary_key == ("id",)
    schemaless = row(m, {"id": 6, "day": 8, "region": "us"}, {"v": 1})
    assert dict(schemaless.key) == {"id": 6}


def test_header_from_key_then_a_predicate_sees_the_header() -> None:
    m = mapper(
        {
            "h": {"type": "header_from_key", "fields": "region", "headers": "zone", "operation": "copy"},
            "drop": {"type": "filter", "predicate": "from_us"},
        },
        {"from_us": {"type": "has_header_key", "name": "zone"}},
        pk_mode="record_key",
    )
    outcome = prepare(m, {"id": 5, "region": "us"}, {"v": 1})
    assert isinstance(outcome, Outcome) and outcome.operation == "skip"
    missing = prepare(m, {"id": 5}, {"v": 1})  # a missing field is copied as a null header, as in Connect
    assert isinstance(missing, Outcome) and missing.operation == "skip"
    other = mapper(
        {
            "h": {"type": "header_from_key", "fields": "region", "headers": "area", "operation": "copy"},
            "drop": {"type": "filter", "predicate": "from_us"},
        },
        {"from_us": {"type": "has_header_key", "name": "zone"}},
        pk_mode="record_key",
    )
    assert isinstance(prepare(other, {"id": 5, "region": "us"}, {"v": 1}), Row), "no `zone` header: kept"


def test_header_from_key_names_the_key_when_a_field_is_missing() -> None:
    m = mapper(
        {"h": {"type": "header_from_key", "fields": "nope", "headers": "n", "operation": "copy"}},
        pk_mode="record_key",
    )
    with pytest.raises(MappingError, match="the key's schema has no field") as error:
        prepare(m, {"id": 5, "day": None, "region": None}, {"v": 1}, connect_key=True)
    assert error.value.stage is Stage.TRANSFORMATION


# ------------------------------------------------------------------------------ Cast and bytes


VALUE_SCHEMA = {
    "type": "struct",
    "name": "shop.Blob",
    "optional": False,
    "fields": [
        {"field": "id", "type": "int64", "optional": False},
        {"field": "data", "type": "bytes", "optional": True},
    ],
}


def prepare_value(m: RowMapper, payload: dict[str, Any]) -> Any:
    raw = RawRecord(Coord("shop.blobs", 0, 1), b"1", json.dumps({"schema": VALUE_SCHEMA, "payload": payload}).encode())
    return Preparer(JsonDecoder(), ConnectJsonDecoder(), m).prepare(raw._replace(headers=(), timestamp=TS))


def test_cast_bytes_to_string_is_base64() -> None:
    m = mapper({"c": {"type": "cast", "spec": "data:string"}})
    r = prepare_value(m, {"id": 1, "data": base64.b64encode(b"\x00\xffab").decode()})
    assert isinstance(r, Row)
    assert r.values["data"] == base64.b64encode(b"\x00\xffab").decode()
    assert r.spec.column("data").type == ColumnType(Kind.STRING)


@pytest.mark.parametrize("target", ["int32", "float64", "boolean"])
def test_cast_bytes_to_anything_else_is_refused_for_the_schema(target: str) -> None:
    m = mapper({"c": {"type": "cast", "spec": f"data:{target}"}})
    with pytest.raises(MappingError, match=f"field 'data' is bytes, which casts to string only.*not {target}") as err:
        prepare_value(m, {"id": 1, "data": None})  # refused for the schema, whatever the value
    assert err.value.stage is Stage.TRANSFORMATION


def test_cast_key_of_a_bytes_key_is_refused_unless_to_string() -> None:
    key = json.dumps({"schema": {"type": "bytes", "optional": False}, "payload": "AAE="}).encode()
    raw = RawRecord(Coord("t", 0, 1), key, b'{"v": 1}', (), TS)
    refused = mapper({"c": {"type": "cast_key", "spec": "int64"}}, pk_mode="record_key", pk_fields=("k",))
    with pytest.raises(MappingError, match="the value is bytes, which casts to string only"):
        Preparer(ConnectJsonDecoder(), JsonDecoder(), refused).prepare(raw)
    cast = mapper({"c": {"type": "cast_key", "spec": "string"}}, pk_mode="record_key", pk_fields=("k",))
    r = Preparer(ConnectJsonDecoder(), JsonDecoder(), cast).prepare(raw)
    assert isinstance(r, Row) and dict(r.key) == {"k": "AAE="}


# ------------------------------------------------------------------------------ configuration


@pytest.mark.parametrize(
    ("env", "message"),
    [
        (
            {"transforms": "h", "transforms__h__type": "header_from_key", "transforms__h__fields": "a"},
            "SINK_TRANSFORMS__H__HEADERS: required",
        ),
        (
            {
                "transforms": "h",
                "transforms__h__type": "header_from_key",
                "transforms__h__fields": "a",
                "transforms__h__headers": "x",
                "transforms__h__operation": "swap",
            },
            "SINK_TRANSFORMS__H__OPERATION: copy or move",
        ),
        ({"transforms": "i", "transforms__i__type": "insert_field_key"}, "SINK_TRANSFORMS__I__TOPIC_FIELD: give"),
        (
            {"transforms": "t", "transforms__t__type": "timestamp_converter_key", "transforms__t__target_type": "x"},
            "SINK_TRANSFORMS__T__TARGET_TYPE: one of string",
        ),
        (
            {"transforms": "c", "transforms__c__type": "cast_key", "transforms__c__spec": "bytes"},
            "SINK_TRANSFORMS__C__SPEC: unknown type 'bytes'",
        ),
        (
            {
                "transforms": "i",
                "transforms__i__type": "insert_field_key",
                "transforms__i__offset_field": "o",
                "transforms__i__predicate": "p",
                "predicates__p__type": "record_is_tombstone",
            },
            "SINK_TRANSFORMS__I__PREDICATE: only filter, ",
        ),
    ],
)
def test_bad_configuration_names_the_variable(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError) as error:
        settings(**env)
    assert str(error.value).startswith(message), str(error.value)
    assert "\n" not in str(error.value)


def test_key_variants_from_env_reach_the_chain() -> None:
    s = settings(
        transforms="h,i,t",
        transforms__h__type="header_from_key",
        transforms__h__fields="a",
        transforms__h__headers="x",
        transforms__h__operation="copy",
        transforms__i__type="insert_field_key",
        transforms__i__offset_field="o",
        transforms__t__type="timestamp_converter_key",
        transforms__t__target_type="unix",
    )
    assert repr(s.transforms) == "Chain(h=header_from_key, i=insert_field_key, t=timestamp_converter_key)"
