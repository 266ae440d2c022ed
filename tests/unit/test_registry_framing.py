"""Framings and references in the registry formats, with the `SchemaSource` port over dicts.

- magic byte 1 + 16-byte GUID, and the framing in a `__key_schema_id`/`__value_schema_id` header
  (which wins over the body's first bytes, as in confluent-kafka's dual deserializer);
- an ordinary magic-byte-0 record never reaches the framing code (one byte check on the hot path);
- JSON Schema `$ref`s into referenced subjects, nested, compiled once per schema id.
"""

from __future__ import annotations

import io
import json
import uuid
from typing import Any

import fastavro
import pytest

from sink import formats
from sink.errors import DecodeError, RegistryUnavailable
from sink.formats import avro as avro_format
from sink.formats import schema_id_headers
from sink.formats.avro import AvroDecoder
from sink.formats.json_schema import JsonSchemaDecoder
from sink.model import ColumnType, Kind

GUID = "3f2c9a4e-8b1d-4c7e-9f00-a1b2c3d4e5f6"
ROW = {"type": "record", "name": "Row", "fields": [{"name": "id", "type": "long"}]}


class Registry:
    """The port over dicts: schemas by id or GUID, references by (subject, version); counts calls."""

    def __init__(
        self,
        schemas: dict[Any, tuple[str, str, list[dict]]],
        references: dict[tuple[str, int], tuple[str, str, list[dict]]] | None = None,
    ) -> None:
        self.schemas, self.references = schemas, references or {}
        self.calls: list[Any] = []

    def schema(self, ref: Any) -> tuple[str, str, list[dict]]:
        self.calls.append(ref)
        return self.schemas[ref]

    def reference(self, subject: str, version: int) -> tuple[str, str, list[dict]]:
        self.calls.append((subject, version))
        return self.references[subject, version]

    def protobuf_file(self, ref: Any) -> Any:
        raise KeyError(ref)


def avro_body(value: Any, schema: Any = ROW) -> bytes:
    out = io.BytesIO()
    fastavro.schemaless_writer(out, fastavro.parse_schema(schema), value)
    return out.getvalue()


def by_id(schema_id: int) -> bytes:
    return b"\x00" + schema_id.to_bytes(4, "big")


def by_guid(guid: str) -> bytes:
    return b"\x01" + uuid.UUID(guid).bytes


def error(decoder: Any, data: bytes, header: bytes | None = None) -> str:
    with pytest.raises(DecodeError) as caught:
        decoder.decode(data, header)
    return str(caught.value)


# ------------------------------------------------------------------------------ framing


def test_magic_byte_1_reads_the_schema_by_guid_once() -> None:
    registry = Registry({GUID: ("AVRO", json.dumps(ROW), [])})
    decoder = AvroDecoder(registry)
    first = decoder.decode(by_guid(GUID) + avro_body({"id": 7}))
    second = decoder.decode(by_guid(GUID) + avro_body({"id": 8}))
    assert (first.data, second.data) == ({"id": 7}, {"id": 8})
    assert first.schema_id == GUID, "the GUID (text) identifies the schema version"
    assert registry.calls == [GUID], "compiled once per GUID"


def test_guid_framing_errors_name_the_framing() -> None:
    decoder = AvroDecoder(Registry({}))
    assert "magic byte 0x01 at byte 0 of the record (a 16-byte schema GUID follows) but it ends at byte 7" in error(
        decoder, b"\x01" + bytes(6)
    )
    message = error(decoder, by_guid(GUID) + b"\x02")
    assert message.startswith(f"Avro: unknown schema GUID {GUID}"), message
    message = error(decoder, b"\x05abcdef")
    assert "unknown magic byte 0x05 at byte 0" in message
    assert "0x01 + 16-byte schema GUID" in message and "__value_schema_id" in message


def test_the_header_wins_over_the_bodys_first_bytes() -> None:
    """A header-framed Avro body often starts with 0x00 (a union's null branch, a zero): read as
    magic byte 0 it would name a schema id that is not there. The header decides."""
    schema = {"type": "record", "name": "R", "fields": [{"name": "n", "type": ["null", "long"]}]}
    registry = Registry({5: ("AVRO", json.dumps(schema), []), GUID: ("AVRO", json.dumps(schema), [])})
    decoder = AvroDecoder(registry)
    body = avro_body({"n": None}, schema)
    assert body[0] == 0
    assert decoder.decode(body, by_id(5)).data == {"n": None}
    assert decoder.decode(avro_body({"n": 3}, schema), by_guid(GUID)).data == {"n": 3}
    assert registry.calls == [5, GUID]
    assert "unknown magic byte 0x07 at byte 0 of the schema id header" in error(decoder, body, b"\x07")
    assert "shorter than the Confluent wire-format header" in error(decoder, body, b"\x00\x00")


def test_json_schema_reads_guid_and_header_framings() -> None:
    schema = {"type": "object", "properties": {"id": {"type": "integer"}}}
    decoder = JsonSchemaDecoder(Registry({GUID: ("JSON", json.dumps(schema), [])}))
    assert decoder.decode(by_guid(GUID) + b'{"id": 1}').data == {"id": 1}
    assert decoder.decode(b'{"id": 2}', by_guid(GUID)).data == {"id": 2}
    assert "invalid JSON at byte 18" in error(decoder, by_guid(GUID) + b"{")


def test_schema_id_headers_picks_key_and_value() -> None:
    headers = [
        ("trace", b"x"),
        ("__value_schema_id", b"\x00old"),
        ("__key_schema_id", b"k"),
        ("__value_schema_id", b"v"),
    ]
    assert schema_id_headers(headers) == (b"k", b"v")
    assert schema_id_headers([("trace", b"x")]) == (None, None)
    assert schema_id_headers(()) == (None, None)


def test_an_ordinary_record_never_reaches_the_framing_code(monkeypatch: pytest.MonkeyPatch) -> None:
    decoder = AvroDecoder(Registry({1: ("AVRO", json.dumps(ROW), [])}))

    def framing(*args: Any) -> Any:
        raise AssertionError("the magic-byte-0 path must stay one byte check")

    monkeypatch.setattr(avro_format, "framing", framing)
    assert decoder.decode(by_id(1) + avro_body({"id": 3})).data == {"id": 3}
    with pytest.raises(AssertionError, match="one byte check"):
        decoder.decode(by_guid(GUID) + avro_body({"id": 3}))


def test_describe_ref() -> None:
    assert formats.describe_ref(7) == "schema id 7"
    assert formats.describe_ref(GUID) == f"schema GUID {GUID}"
    assert formats.describe_ref((7, (1, 0))) == "schema id 7, message indexes [1, 0]"


# ------------------------------------------------------------------------------ JSON Schema references

COMMON = {
    "definitions": {
        "Instant": {"type": "string", "format": "date-time"},
        "Id": {"$ref": "#/definitions/N"},
        "N": {"type": "integer"},
    }
}
SHIPPING = {"definitions": {"When": {"$ref": "common.json#/definitions/Instant"}}}
ORDER = {
    "type": "object",
    "properties": {
        "id": {"$ref": "common.json#/definitions/Id"},  # a local $ref inside the referenced document
        "shipped": {"$ref": "shipping.json#/definitions/When"},  # two references down
        "address": {"$ref": "address.json"},
    },
    "required": ["id"],
}
ADDRESS = {"type": "object", "properties": {"street": {"type": "string"}}}
REFERENCES = {
    ("common", 1): ("JSON", json.dumps(COMMON), []),
    ("shipping", 3): ("JSON", json.dumps(SHIPPING), [{"name": "common.json", "subject": "common", "version": 1}]),
    ("address", 1): ("JSON", json.dumps(ADDRESS), []),
}
ORDER_REFS = [
    {"name": "shipping.json", "subject": "shipping", "version": 3},
    {"name": "address.json", "subject": "address", "version": 1},
]


def test_json_schema_refs_resolve_through_nested_references_once() -> None:
    registry = Registry({9: ("JSON", json.dumps(ORDER), ORDER_REFS)}, REFERENCES)
    decoder = JsonSchemaDecoder(registry)
    value = {"id": 4, "shipped": "2024-01-01T00:00:00Z", "address": {"street": "Main"}}
    payload = decoder.decode(by_id(9) + json.dumps(value).encode())
    columns = {c.name: c for c in payload.shape}
    assert columns["id"].type == ColumnType(Kind.INT64) and not columns["id"].nullable
    assert columns["shipped"].type.kind is Kind.TIMESTAMP
    assert columns["address"].type.kind is Kind.JSON
    assert payload.data["shipped"].isoformat() == "2024-01-01T00:00:00+00:00"
    decoder.decode(by_id(9) + b'{"id": 5}')
    assert registry.calls == [9, ("shipping", 3), ("common", 1), ("address", 1)], "once per schema id"


def test_json_schema_reference_errors_name_the_reference() -> None:
    missing = Registry(
        {9: ("JSON", json.dumps(ORDER), ORDER_REFS)}, {k: v for k, v in REFERENCES.items() if k[0] != "common"}
    )
    message = error(JsonSchemaDecoder(missing), by_id(9) + b"{}")
    assert "referenced schema 'common.json' (subject 'common' version 1) is missing" in message
    unlisted = Registry({9: ("JSON", json.dumps(ORDER), ORDER_REFS[1:])}, REFERENCES)
    message = error(JsonSchemaDecoder(unlisted), by_id(9) + b"{}")
    assert "field 'id': $ref 'common.json#/definitions/Id' does not resolve (not a local pointer" in message
    avro = Registry({9: ("JSON", json.dumps(ORDER), ORDER_REFS)}, {**REFERENCES, ("address", 1): ("AVRO", "{}", [])})
    assert "referenced schema 'address.json' (subject 'address' version 1) is a AVRO schema" in error(
        JsonSchemaDecoder(avro), by_id(9) + b"{}"
    )
    nowhere = {"type": "object", "properties": {"x": {"$ref": "address.json#/definitions/Nope"}}}
    bad_pointer = Registry({9: ("JSON", json.dumps(nowhere), ORDER_REFS[1:])}, REFERENCES)
    assert "field 'x': $ref 'address.json#/definitions/Nope' does not resolve" in error(
        JsonSchemaDecoder(bad_pointer), by_id(9) + b"{}"
    )
    loop = {
        "type": "object",
        "properties": {"x": {"$ref": "#/definitions/A"}},
        "definitions": {"A": {"$ref": "#/definitions/A"}},
    }
    assert "loops" in error(JsonSchemaDecoder(Registry({9: ("JSON", json.dumps(loop), [])})), by_id(9) + b"{}")


def test_an_outage_while_fetching_a_json_reference_stays_an_outage() -> None:
    class Down(Registry):
        def reference(self, subject: str, version: int) -> tuple[str, str, list[dict]]:
            raise RegistryUnavailable("registry down")

    decoder = JsonSchemaDecoder(Down({9: ("JSON", json.dumps(ORDER), ORDER_REFS)}, REFERENCES))
    with pytest.raises(RegistryUnavailable):
        decoder.decode(by_id(9) + b"{}")
