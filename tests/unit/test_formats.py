"""Formats without a registry: json, string, connect_json (with Connect and Debezium logical types)."""

from __future__ import annotations

import base64
import datetime as dt
import json
import time
import uuid
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sink.errors import ConfigError, DecodeError
from sink.formats import make_decoder
from sink.formats.connect_json import ConnectJsonDecoder
from sink.formats.json_plain import JsonDecoder
from sink.formats.string import StringDecoder
from sink.jsonvalues import JsonDocument
from sink.model import Column, ColumnType, Kind, Stage

UTC = dt.UTC


def _unscaled(value: int) -> str:
    """Connect's BASE64 decimal: minimal big-endian two's complement of the unscaled value."""
    length = max(1, (value.bit_length() + 8) // 8)
    return base64.b64encode(value.to_bytes(length, "big", signed=True)).decode()


def _envelope(schema: Any, payload: Any) -> bytes:
    return json.dumps({"schema": schema, "payload": payload}).encode()


def _field(name: str, type_: str, logical: str | None = None, optional: bool = True, **extra: Any) -> dict:
    field = {"field": name, "type": type_, "optional": optional, **extra}
    if logical:
        field["name"] = logical
    return field


def _struct(*fields: dict) -> dict:
    return {"type": "struct", "name": "test.Value", "optional": False, "fields": list(fields)}


def _decode_one(field: dict, value: Any) -> tuple[Any, Column]:
    payload = ConnectJsonDecoder().decode(_envelope(_struct(field), {field["field"]: value}))
    assert isinstance(payload.shape, tuple)
    return payload.data[field["field"]], payload.shape[0]


# ------------------------------------------------------------------------------ json


def test_json_object() -> None:
    payload = JsonDecoder().decode(b'{"id": 1, "name": "\\u00dcber", "tags": [1, 2], "n": null, "f": 1.5}')
    assert payload.data == {"id": 1, "name": "Über", "tags": [1, 2], "n": None, "f": 1.5}
    assert payload.shape is None, "schemaless: columns are inferred later"
    assert payload.schema_id is None


def test_json_scalar_and_null() -> None:
    assert JsonDecoder().decode(b"42").data == 42
    assert JsonDecoder().decode(b"null").data is None


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b'{"id": 1,', "invalid JSON at line 1 column 10: Expecting property name enclosed in double quotes"),
        (b'{"id": 1}\n{"id": 2}', "invalid JSON at line 2 column 1: Extra data"),
        (b"", "invalid JSON at line 1 column 1: Expecting value"),
        (b'{"name": "\xff"}', "not valid UTF-8 at byte 10: invalid start byte"),
    ],
)
def test_json_bad_input_names_the_reason(data: bytes, reason: str) -> None:
    with pytest.raises(DecodeError) as caught:
        JsonDecoder().decode(data)
    assert str(caught.value) == reason


# ------------------------------------------------------------------------------ string


def test_string() -> None:
    payload = StringDecoder().decode("Über ✓".encode())
    assert payload.data == "Über ✓"
    assert payload.shape == ColumnType(Kind.STRING)


def test_string_bad_utf8() -> None:
    with pytest.raises(DecodeError, match=r"^not valid UTF-8 at byte 2: invalid start byte$"):
        StringDecoder().decode(b"ok\xfe")


def test_decode_error_stage_defaults_to_value_converter() -> None:
    with pytest.raises(DecodeError) as caught:
        JsonDecoder().decode(b"{")
    assert caught.value.stage is Stage.VALUE_CONVERTER


def test_make_decoder() -> None:
    assert isinstance(make_decoder("json"), JsonDecoder)
    assert isinstance(make_decoder("string"), StringDecoder)
    assert isinstance(make_decoder("connect_json"), ConnectJsonDecoder)
    with pytest.raises(ConfigError, match="SINK_SCHEMA_REGISTRY_URL"):
        make_decoder("avro")


# ------------------------------------------------------------------------------ connect_json


def test_connect_json_struct_shape_and_values() -> None:
    schema = _struct(
        _field("id", "int64", optional=False),
        _field("small", "int8"),
        _field("mid", "int16"),
        _field("n", "int32"),
        _field("ratio", "float"),
        _field("price", "double"),
        _field("ok", "boolean"),
        _field("name", "string", default="anon"),
        _field("blob", "bytes"),
        _field("tags", "array", items={"type": "string"}),
        _field("attrs", "map", keys={"type": "string"}, values={"type": "int32"}),
        _field("nested", "struct", fields=[_field("x", "int32")]),
    )
    payload = {
        "id": 7,
        "small": -3,
        "mid": 300,
        "n": 70000,
        "ratio": 0.5,
        "price": 9.99,
        "ok": True,
        "name": "x",
        "blob": base64.b64encode(b"\x00\x01\xff").decode(),
        "tags": ["a", "b"],
        "attrs": {"k": 1},
        "nested": {"x": 5},
    }
    decoded = ConnectJsonDecoder().decode(_envelope(schema, payload))
    assert decoded.data == {**payload, "blob": b"\x00\x01\xff"}
    assert isinstance(decoded.data["price"], float) and isinstance(decoded.data["ratio"], float)
    assert decoded.shape == (
        Column("id", ColumnType(Kind.INT64), nullable=False),
        Column("small", ColumnType(Kind.INT8)),
        Column("mid", ColumnType(Kind.INT16)),
        Column("n", ColumnType(Kind.INT32)),
        Column("ratio", ColumnType(Kind.FLOAT32)),
        Column("price", ColumnType(Kind.FLOAT64)),
        Column("ok", ColumnType(Kind.BOOLEAN)),
        Column("name", ColumnType(Kind.STRING), default="anon", has_default=True),
        Column("blob", ColumnType(Kind.BYTES)),
        Column("tags", ColumnType(Kind.ARRAY, item=ColumnType(Kind.STRING))),
        Column("attrs", ColumnType(Kind.JSON)),
        Column("nested", ColumnType(Kind.JSON)),
    )
    assert decoded.schema_id is not None


def test_connect_json_same_schema_same_id_and_nulls() -> None:
    decoder = ConnectJsonDecoder()
    schema = _struct(_field("id", "int64", optional=False), _field("note", "string"))
    first = decoder.decode(_envelope(schema, {"id": 1, "note": "a"}))
    second = decoder.decode(_envelope(schema, {"id": 2, "note": None}))
    other = decoder.decode(_envelope(_struct(_field("id", "int32")), {"id": 3}))
    assert first.schema_id == second.schema_id != other.schema_id
    assert second.data == {"id": 2, "note": None}


def test_connect_json_primitive_and_null_schema() -> None:
    decoded = ConnectJsonDecoder().decode(_envelope({"type": "string", "optional": False}, "hello"))
    assert (decoded.data, decoded.shape) == ("hello", ColumnType(Kind.STRING))
    schemaless = ConnectJsonDecoder().decode(_envelope(None, {"a": 1.5}))
    assert schemaless.data == {"a": 1.5} and isinstance(schemaless.data["a"], float)
    assert schemaless.shape is None
    tombstone = ConnectJsonDecoder().decode(_envelope({"type": "struct", "fields": [], "optional": True}, None))
    assert tombstone.data is None


# -- logical types


DECIMAL = "org.apache.kafka.connect.data.Decimal"


@pytest.mark.parametrize(
    ("wire", "scale", "expected"),
    [
        (_unscaled(12345), 2, Decimal("123.45")),
        (_unscaled(-12345), 2, Decimal("-123.45")),
        (_unscaled(0), 3, Decimal("0.000")),
        (_unscaled(10**30 + 1), 4, Decimal("100000000000000000000000000.0001")),
        ("1234", 2, Decimal("-26588.24")),  # base64 text that happens to be all digits is still base64
        (123.45, 2, Decimal("123.45")),  # decimal.format=NUMERIC
        (7, 0, Decimal("7")),
    ],
)
def test_connect_decimal(wire: Any, scale: int, expected: Decimal) -> None:
    field = _field("amount", "bytes", DECIMAL, parameters={"scale": str(scale), "connect.decimal.precision": "38"})
    value, column = _decode_one(field, wire)
    assert value == expected and str(value) == str(expected)
    assert column.type == ColumnType(Kind.DECIMAL, precision=38, scale=scale)


def test_connect_decimal_numeric_format_is_exact() -> None:
    field = _field("amount", "bytes", DECIMAL, parameters={"scale": "2", "connect.decimal.precision": "20"})
    raw = b'{"schema": %s, "payload": {"amount": 123456789012345678.91}}' % json.dumps(_struct(field)).encode()
    payload = ConnectJsonDecoder().decode(raw)
    assert payload.data["amount"] == Decimal("123456789012345678.91")
    assert payload.shape[0].type == ColumnType(Kind.DECIMAL, precision=20, scale=2)


def test_connect_decimal_default_precision() -> None:
    _value, column = _decode_one(_field("a", "bytes", DECIMAL, parameters={"scale": "1"}), _unscaled(5))
    assert column.type == ColumnType(Kind.DECIMAL, precision=38, scale=1)


@pytest.mark.parametrize(
    ("logical", "type_", "wire", "expected", "column_type"),
    [
        ("org.apache.kafka.connect.data.Date", "int32", 19000, dt.date(2022, 1, 8), ColumnType(Kind.DATE)),
        ("org.apache.kafka.connect.data.Date", "int32", -1, dt.date(1969, 12, 31), ColumnType(Kind.DATE)),
        (
            "org.apache.kafka.connect.data.Time",
            "int32",
            3_723_004,
            dt.time(1, 2, 3, 4000),
            ColumnType(Kind.TIME, precision=3),
        ),
        (
            "org.apache.kafka.connect.data.Timestamp",
            "int64",
            1_700_000_000_123,
            dt.datetime(2023, 11, 14, 22, 13, 20, 123000, tzinfo=UTC),
            ColumnType(Kind.TIMESTAMP, precision=3),
        ),
        (
            "org.apache.kafka.connect.data.Timestamp",
            "int64",
            -1,
            dt.datetime(1969, 12, 31, 23, 59, 59, 999000, tzinfo=UTC),
            ColumnType(Kind.TIMESTAMP, precision=3),
        ),
        ("io.debezium.time.Date", "int32", 0, dt.date(1970, 1, 1), ColumnType(Kind.DATE)),
        ("io.debezium.time.Time", "int32", 86_399_999, dt.time(23, 59, 59, 999000), ColumnType(Kind.TIME, precision=3)),
        (
            "io.debezium.time.MicroTime",
            "int64",
            3_723_000_001,
            dt.time(1, 2, 3, 1),
            ColumnType(Kind.TIME, precision=6),
        ),
        (
            "io.debezium.time.NanoTime",
            "int64",
            3_723_000_001_999,
            dt.time(1, 2, 3, 1),
            ColumnType(Kind.TIME, precision=6),
        ),
        (
            "io.debezium.time.Timestamp",
            "int64",
            1_700_000_000_123,
            dt.datetime(2023, 11, 14, 22, 13, 20, 123000),
            ColumnType(Kind.LOCAL_TIMESTAMP, precision=3),
        ),
        (
            "io.debezium.time.MicroTimestamp",
            "int64",
            1_700_000_000_123_456,
            dt.datetime(2023, 11, 14, 22, 13, 20, 123456),
            ColumnType(Kind.LOCAL_TIMESTAMP, precision=6),
        ),
        (
            "io.debezium.time.NanoTimestamp",
            "int64",
            1_700_000_000_123_456_000,
            dt.datetime(2023, 11, 14, 22, 13, 20, 123456),
            ColumnType(Kind.LOCAL_TIMESTAMP, precision=6),
        ),
        (
            "io.debezium.time.ZonedTimestamp",
            "string",
            "2023-11-14T22:13:20.123456Z",
            dt.datetime(2023, 11, 14, 22, 13, 20, 123456, tzinfo=UTC),
            ColumnType(Kind.TIMESTAMP, precision=6),
        ),
        (
            "io.debezium.time.ZonedTimestamp",
            "string",
            "2023-11-14T23:13:20+01:00",
            dt.datetime(2023, 11, 14, 23, 13, 20, tzinfo=dt.timezone(dt.timedelta(hours=1))),
            ColumnType(Kind.TIMESTAMP, precision=6),
        ),
        (
            "io.debezium.time.ZonedTime",
            "string",
            "10:15:30.5Z",
            dt.time(10, 15, 30, 500000, tzinfo=UTC),
            ColumnType(Kind.TIME, precision=6),
        ),
        ("io.debezium.time.Year", "int32", 2024, 2024, ColumnType(Kind.INT32)),
        (
            "io.debezium.data.Uuid",
            "string",
            "8c6b0c1e-1d7e-4f45-9a2e-3a0d1f2b3c4d",
            uuid.UUID("8c6b0c1e-1d7e-4f45-9a2e-3a0d1f2b3c4d"),
            ColumnType(Kind.UUID),
        ),
        ("io.debezium.data.Json", "string", '{"a": [1, 2]}', JsonDocument('{"a": [1, 2]}'), ColumnType(Kind.JSON)),
        ("io.debezium.data.Enum", "string", "RED", "RED", ColumnType(Kind.STRING)),
    ],
)
def test_logical_types(logical: str, type_: str, wire: Any, expected: Any, column_type: ColumnType) -> None:
    value, column = _decode_one(_field("v", type_, logical), wire)
    assert value == expected
    assert type(value) is type(expected)
    if isinstance(expected, dt.datetime | dt.time):
        assert value.tzinfo == expected.tzinfo
    assert column.type == column_type


def test_logical_null_stays_null() -> None:
    value, _column = _decode_one(_field("d", "int32", "org.apache.kafka.connect.data.Date"), None)
    assert value is None


def test_debezium_variable_scale_decimal() -> None:
    field = _field(
        "v",
        "struct",
        "io.debezium.data.VariableScaleDecimal",
        fields=[_field("scale", "int32", optional=False), _field("value", "bytes", optional=False)],
    )
    value, column = _decode_one(field, {"scale": 3, "value": _unscaled(1234567)})
    assert value == Decimal("1234.567") and str(value) == "1234.567"
    assert column.type.kind is Kind.DECIMAL and column.type.scale is None


@pytest.mark.parametrize("variable", [False, True], ids=["Connect Decimal", "Debezium VariableScaleDecimal"])
def test_a_decimal_of_more_than_20000_digits_is_a_decode_error_in_little_time(variable: bool) -> None:
    """A Decimal of a long integer costs time quadratic in its length: a few hundred kilobytes of
    base64 in one record stalled the sink for seconds to minutes (200 KB of bytes: 6 s)."""
    huge = base64.b64encode(b"\x7f" * 1_000_000).decode()
    if variable:
        fields = [_field("scale", "int32", optional=False), _field("value", "bytes", optional=False)]
        field, wire = _field("v", "struct", "io.debezium.data.VariableScaleDecimal", fields=fields), {"scale": 0}
        wire["value"] = huge
    else:
        field, wire = _field("v", "bytes", DECIMAL, parameters={"scale": "2"}), huge  # type: ignore[assignment]
    start = time.perf_counter()
    with pytest.raises(DecodeError, match=r"is not a valid .*Decimal: ValueError"):
        _decode_one(field, wire)
    assert time.perf_counter() - start < 5
    largest = 10**20000 - 1  # as many digits as are read
    raw = base64.b64encode(largest.to_bytes(largest.bit_length() // 8 + 1, "big", signed=True)).decode()
    value, _ = _decode_one(_field("v", "bytes", DECIMAL, parameters={"scale": "0"}), raw)
    assert value == Decimal(largest)


def test_debezium_named_struct_is_one_column_not_flattened() -> None:
    schema = {
        "type": "struct",
        "name": "io.debezium.data.VariableScaleDecimal",
        "fields": [_field("scale", "int32"), _field("value", "bytes")],
    }
    payload = ConnectJsonDecoder().decode(_envelope(schema, {"scale": 0, "value": _unscaled(5)}))
    assert payload.data == Decimal(5)
    assert payload.shape == ColumnType(Kind.DECIMAL, precision=38, scale=None)


# -- bad input


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"{", "invalid JSON: Expecting property name enclosed in double quotes: line 1 column 2 (char 1)"),
        (b"\xff", "invalid JSON: 'utf-8' codec can't decode byte 0xff in position 0: invalid start byte"),
        (b"[1]", 'not a Connect JSON envelope: expected an object with "schema" and "payload"'),
        (b'{"payload": {"a": 1}}', 'not a Connect JSON envelope: expected an object with "schema" and "payload"'),
        (b'{"schema": "int32", "payload": 1}', 'Connect schema must be an object with a "type"'),
        (b'{"schema": {"type": "decimal"}, "payload": 1}', "unsupported Connect schema type 'decimal'"),
        (
            _envelope(_struct(_field("a", "int32")), 5),
            "payload does not match its schema: the value must be an object, not a number",
        ),
        (
            _envelope(_struct(_field("d", "int32", "org.apache.kafka.connect.data.Date")), {"d": "monday"}),
            "payload does not match its schema: d must be an integer for its int32 schema, not a string",
        ),
    ],
)
def test_connect_json_bad_input_names_the_reason(data: bytes, reason: str) -> None:
    with pytest.raises(DecodeError) as caught:
        ConnectJsonDecoder().decode(data)
    assert str(caught.value) == reason


# ------------------------------------------------------------------------------ plain JSON through orjson

JSON_EDGES = [
    b'{"id": 1, "name": "x", "price": 1.25, "ok": true, "none": null, "list": [1, 2], "doc": {"a": "b"}}',
    b'{"big": 123456789012345678901234567890}',  # beyond 64 bits: orjson would give a float
    b'{"low": -9223372036854775809, "high": 18446744073709551616}',
    b'{"id": "1234567890123456789012"}',  # a long digit run in a string: slower path, same value
    b'{"nan": NaN, "inf": Infinity, "big": 1e400}',  # json's extensions: json's values
    b'{"lone": "\\ud800"}',  # a lone surrogate: json keeps it, orjson refuses
    b'\xef\xbb\xbf{"bom": 1}',
    b'{"neg_zero": -0.0, "tiny": 1e-400, "exp": 2.5e-3, "dup": 1, "dup": 2}',
    b'{"esc": "tab\\tnewline\\n\\u00e9\\ud83d\\ude00"}',
    b'{"nines": 99999999999999999999, "short": 999999999999999999}',  # 20 nines: beyond 64 bits
    b'{"split": [123456789, 1234567890], "f": 123456789012345678.5}',  # 18 digits in a row at most
]


@given(st.binary(max_size=80) | st.text(alphabet="0123456789 .-e9", max_size=60).map(str.encode))
def test_the_long_number_check_finds_19_digits_in_a_row_exactly(data: bytes) -> None:
    import re

    from sink.formats.json_plain import DIGITS_AS_NINES, LONG_NUMBER

    assert (LONG_NUMBER in data.translate(DIGITS_AS_NINES)) == (re.search(rb"[0-9]{19}", data) is not None)


@pytest.mark.parametrize("data", JSON_EDGES)
def test_plain_json_parses_exactly_as_the_json_module(data: bytes) -> None:
    import json
    import math

    from sink.formats.json_plain import loads

    def same(a: object, b: object) -> bool:
        if isinstance(a, float) and isinstance(b, float):
            return (math.isnan(a) and math.isnan(b)) or (a == b and math.copysign(1, a) == math.copysign(1, b))
        if isinstance(a, dict) and isinstance(b, dict):
            return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
        if isinstance(a, list) and isinstance(b, list):
            return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
        return type(a) is type(b) and a == b

    assert same(loads(data), json.loads(data))


@pytest.mark.parametrize("data", [b'{"a": 1', b'{"a": nope}', b"\xff\xfe", b"", b'{"a": "\\x"}'])
def test_plain_json_errors_are_the_json_module_s(data: bytes) -> None:
    import json

    from sink.formats.json_plain import loads

    with pytest.raises((json.JSONDecodeError, UnicodeDecodeError)) as ours:
        loads(data)
    with pytest.raises((json.JSONDecodeError, UnicodeDecodeError)) as theirs:
        json.loads(data)
    assert type(ours.value) is type(theirs.value) and str(ours.value) == str(theirs.value)
