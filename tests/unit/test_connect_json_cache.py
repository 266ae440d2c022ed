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
