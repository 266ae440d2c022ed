"""`jsonvalues.json_text`: what a JSON column is given. A JsonDocument (Debezium's Json, kept as the
text it arrived as) is given as that text; one inside a document being encoded is its parsed value,
never a JSON string; a malformed Debezium Json is the record's error."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from sink.errors import DecodeError
from sink.formats.connect_json import ConnectJsonDecoder
from sink.jsonvalues import JsonDocument, json_document, json_text


def test_a_document_is_given_as_its_own_text() -> None:
    text = '{"price": 12345678901234567.89, "ok": true}'
    assert json_text(JsonDocument(text)) == text
    assert json_text(JsonDocument("null")) == "null"
    assert json_text(None) == "null"  # (SQL NULL is the writers' own: they never encode a None)


def test_a_document_inside_another_is_its_parsed_value_not_a_string() -> None:
    nested = {"outer": [json_document('{"a": 1}'), json_document("null")], "n": 2.5}
    assert json.loads(json_text(nested)) == {"outer": [{"a": 1}, None], "n": 2.5}


def test_other_values_encode_as_before() -> None:
    assert json_text({"d": Decimal("1.10"), "b": b"\x00", "s": "x"}) == '{"d":"1.10","b":"AA==","s":"x"}'


def _debezium_json(text: str) -> object:
    schema = {
        "type": "struct",
        "fields": [{"type": "string", "optional": True, "field": "doc", "name": "io.debezium.data.Json"}],
        "optional": False,
    }
    payload = json.dumps({"schema": schema, "payload": {"doc": text}}).encode()
    return ConnectJsonDecoder().decode(payload).data["doc"]


def test_debezium_json_decodes_to_the_document_as_it_arrived() -> None:
    text = '{"price": 12345678901234567.89}'
    value = _debezium_json(text)
    assert value.__class__ is JsonDocument and value == text
    assert _debezium_json("null") == "null"


def test_a_malformed_debezium_json_is_the_records_error() -> None:
    with pytest.raises(DecodeError):
        _debezium_json('{"unterminated": ')
