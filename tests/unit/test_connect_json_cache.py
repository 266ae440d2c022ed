"""The Connect JSON fast path: a schema seen before is recognised by its bytes, not re-parsed."""

from __future__ import annotations

import decimal
import json

import pytest

from sink.errors import DecodeError
from sink.formats.connect_json import ConnectJsonDecoder

SCHEMA = {
    "type": "struct",
    "fields": [
        {"field": "id", "type": "int64", "optional": False},
        {"field": "price", "type": "double", "optional": True},
        {
            "field": "total",
            "type": "bytes",
            "optional": True,
            "name": "org.apache.kafka.connect.data.Decimal",
            "parameters": {"scale": "2"},
        },
    ],
    "optional": False,
}


def envelope(payload: object, schema: object = SCHEMA) -> bytes:
    # Connect's JsonConverter layout: no spaces, schema first.
    return json.dumps({"schema": schema, "payload": payload}, separators=(",", ":")).encode()


def test_second_record_with_the_same_schema_takes_the_cached_path_with_equal_results() -> None:
    decoder = ConnectJsonDecoder()
    first = decoder.decode(envelope({"id": 1, "price": 2.5, "total": "MDk="}))
    assert len(decoder._by_bytes) == 1, "the schema bytes were remembered"
    second = decoder.decode(envelope({"id": 2, "price": 3.25, "total": "MDk="}))
    assert first.schema_id == second.schema_id
    assert first.shape == second.shape
    assert second.data == {"id": 2, "price": 3.25, "total": decimal.Decimal("123.45")}
    assert isinstance(second.data["price"], float)


def test_bad_payload_after_a_known_schema_is_still_a_precise_decode_error() -> None:
    decoder = ConnectJsonDecoder()
    decoder.decode(envelope({"id": 1, "price": None, "total": None}))
    broken = envelope({"id": 1, "price": None, "total": None})[:-3] + b"}"
    with pytest.raises(DecodeError, match="invalid JSON"):
        decoder.decode(broken)


def test_spaced_layout_takes_the_full_path_and_decodes_the_same() -> None:
    decoder = ConnectJsonDecoder()
    spaced = json.dumps({"schema": SCHEMA, "payload": {"id": 7, "price": 1.0, "total": None}}).encode()
    assert decoder.decode(spaced).data == {"id": 7, "price": 1.0, "total": None}
    assert decoder._by_bytes == {}, "only Connect's compact layout is cached by bytes"


def test_a_different_schema_with_the_same_prefix_is_not_confused() -> None:
    decoder = ConnectJsonDecoder()
    decoder.decode(envelope({"id": 1, "price": 1.0, "total": None}))
    other = {**SCHEMA, "fields": [{"field": "id", "type": "string", "optional": False}]}
    decoded = decoder.decode(envelope({"id": "x"}, other))
    assert decoded.data == {"id": "x"}
    assert len(decoder._by_bytes) == 2


# ------------------------------------------------------------------------------ corrupted envelopes (issue 12 §2)

INT64 = {"type": "int64", "optional": False}


@pytest.mark.parametrize(
    "corrupted",
    [
        b'{"schema":{"type":"int64","optional":false},"payload":12345',  # truncated: was stored as 1234
        b'{"schema":{"type":"int64","optional":false},"payload":98765]',  # wrong closer: was stored as 98765
        b'{"schema":{"type":"int64","optional":false},"payload":98765}}',
        b'{"schema":{"type":"int64","optional":false},"payload":',
        b'{"schema":{"type":"int64","optional":false},"payload":1}garbage',
    ],
)
def test_a_known_schema_never_lets_a_corrupted_envelope_through(corrupted: bytes) -> None:
    decoder = ConnectJsonDecoder()
    assert decoder.decode(envelope(1, INT64)).data == 1  # the schema is now known by its bytes
    with pytest.raises(DecodeError, match="invalid JSON"):
        decoder.decode(corrupted)


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        ({"id": "12", "price": None, "total": None}, "id must be an integer for its int64 schema, not a string"),
        ({"id": 1.5, "price": None, "total": None}, "id must be an integer for its int64 schema, not a number"),
        ({"id": True, "price": None, "total": None}, "id must be an integer for its int64 schema, not a boolean"),
        ({"id": 2**63, "price": None, "total": None}, "id is out of range for int64"),
        ({"id": None, "price": None, "total": None}, "id is null but its int64 schema is not optional"),
        ({"price": 1.0}, "id is null but its int64 schema is not optional"),
        ({"id": 1, "price": "cheap", "total": None}, "price must be a number, not a string"),
        ({"id": 1, "price": None, "total": "not base64!"}, "total is not valid base64"),
        ([1, 2], "the value must be an object, not an array"),
    ],
)
def test_a_payload_that_does_not_match_its_schema_is_a_decode_error(payload: object, reason: str) -> None:
    decoder = ConnectJsonDecoder()
    for _ in range(2):  # the full path, then the path of a schema known by its bytes
        with pytest.raises(DecodeError) as caught:
            decoder.decode(envelope(payload))
        assert str(caught.value) == f"payload does not match its schema: {reason}"
        decoder.decode(envelope({"id": 1, "price": None, "total": None}))


@pytest.mark.parametrize(
    ("schema", "reason"),
    [
        ({"type": "struct", "fields": [{"type": "int32"}]}, 'Connect struct field 0 has no "field" name'),
        ({"type": "struct", "fields": 5}, 'Connect struct "fields" must be a list'),
        ({"type": ["struct"]}, "unsupported Connect schema type ['struct']"),
        ({"type": "struct", "name": 5, "fields": []}, 'Connect schema "name" must be a string'),
        (
            {"type": "bytes", "name": "org.apache.kafka.connect.data.Decimal", "parameters": {"scale": "x"}},
            "Connect logical type 'org.apache.kafka.connect.data.Decimal' has bad parameters",
        ),
        ({"type": "array"}, 'Connect schema must be an object with a "type" (at schema.items)'),
        ({"type": "struct", "fields": [{"field": "a", "type": "int8"}, {"field": "a", "type": "int8"}]}, "twice"),
    ],
)
def test_a_malformed_schema_is_a_decode_error_naming_the_problem(schema: object, reason: str) -> None:
    with pytest.raises(DecodeError) as caught:
        ConnectJsonDecoder().decode(envelope(None, schema))
    assert reason in caught.value.safe_reason


def test_json_nested_past_the_depth_limit_is_refused_before_parsing() -> None:
    deep = b'{"schema":null,"payload":' + b"[" * 6000 + b"]" * 6000 + b"}"
    with pytest.raises(DecodeError, match="nested deeper than 100 levels"):
        ConnectJsonDecoder().decode(deep)
    name = "[" * 200  # brackets inside strings are text, not depth
    brackets_in_strings = envelope({"id": 1, "price": None, "total": None}).replace(b'"id"', f'"{name}"'.encode())
    assert ConnectJsonDecoder().decode(brackets_in_strings).data[name] == 1


def test_optional_null_means_required_as_in_connects_json_converter() -> None:
    schema = {"type": "struct", "optional": None, "fields": [{"field": "id", "type": "int64", "optional": None}]}
    assert ConnectJsonDecoder().decode(envelope({"id": 5}, schema)).data == {"id": 5}
    with pytest.raises(DecodeError, match="id is null but its int64 schema is not optional"):
        ConnectJsonDecoder().decode(envelope({"id": None}, schema))
