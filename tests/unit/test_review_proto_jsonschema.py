"""Review: JSON Schema and Protobuf decoding against what Confluent's serializers write.
The `SchemaSource` port is the dict-backed fake; the decoders are the real ones."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from typing import Any

import pytest
from google.protobuf import descriptor_pb2, descriptor_pool, duration_pb2, struct_pb2, timestamp_pb2
from google.protobuf.message_factory import GetMessageClass

from sink.errors import DecodeError
from sink.formats.json_schema import JsonSchemaDecoder
from sink.formats.protobuf import ProtobufDecoder
from tests.support.fakes import FakeRegistry
from tests.support.wire import decode_error, header, proto_bytes

UTC = dt.UTC
FD = descriptor_pb2.FieldDescriptorProto


def json_decoder(schema: Any) -> JsonSchemaDecoder:
    return JsonSchemaDecoder(FakeRegistry({1: ("JSON", json.dumps(schema), [])}))


def json_bytes(value: Any) -> bytes:
    return header(1) + json.dumps(value).encode()


OBJ = {
    "type": "object",
    "properties": {
        "n": {"type": ["integer", "null"]},
        "small": {"type": "integer", "connect.type": "int16"},
        "alt": {"anyOf": [{"type": "null"}, {"type": "integer"}]},
        "at": {"type": "string", "format": "date-time"},
        "clock": {"type": "string", "format": "time"},
    },
}


def test_json_schema_integer_with_a_zero_fraction_is_an_int() -> None:
    """JSON Schema: 1.0 is an integer (a number with a zero fractional part)."""
    data = json_decoder(OBJ).decode(json_bytes({"n": 1.0, "small": 2.0, "alt": 3.0})).data
    assert data["n"] == 1 and type(data["n"]) is int
    assert data["small"] == 2 and type(data["small"]) is int
    assert data["alt"] == 3 and type(data["alt"]) is int


@pytest.mark.parametrize("field", ["n", "small", "alt"])
def test_json_schema_integer_with_a_fraction_is_a_decode_error(field: str) -> None:
    """2.5 is no integer: a database would round it into the INT64 column (PostgreSQL gives 2)."""
    message = decode_error(json_decoder(OBJ), json_bytes({field: 2.5}))
    assert "2.5 is not an integer" in message and repr(field) in message, message


def test_json_schema_big_integer_stays_exact() -> None:
    data = json_decoder(OBJ).decode(json_bytes({"n": 2**63 - 1})).data
    assert data["n"] == 2**63 - 1


def test_json_schema_date_time_in_lower_case_is_rfc_3339() -> None:
    """RFC 3339 5.6: "T" and "Z" may be lower case; JSON Schema's date-time is RFC 3339's."""
    data = json_decoder(OBJ).decode(json_bytes({"at": "2024-01-01t10:00:00.5z", "clock": "10:00:00.5z"})).data
    assert data["at"] == dt.datetime(2024, 1, 1, 10, 0, 0, 500000, tzinfo=UTC)
    assert data["clock"] == dt.time(10, 0, 0, 500000)


@pytest.mark.parametrize(
    "definition",
    [
        {"anyOf": [{"$ref": "#/definitions/X"}, {"type": "null"}]},  # was a RecursionError
        {"$ref": "#/definitions/X"},  # a $ref to itself
    ],
)
def test_json_schema_self_referencing_schema_is_a_decode_error(definition: Any) -> None:
    """X = anyOf[X, null] or X = X never reaches a type: a DecodeError naming the schema."""
    schema = {"type": "object", "properties": {"a": {"$ref": "#/definitions/X"}}, "definitions": {"X": definition}}
    with pytest.raises(DecodeError, match="schema id 1"):
        json_decoder(schema).decode(json_bytes({"a": 1}))


# ------------------------------------------------------------------------------ Protobuf


@pytest.fixture(scope="module")
def zfile() -> Any:
    pool = descriptor_pool.DescriptorPool()
    for module in (timestamp_pb2, duration_pb2, struct_pb2):
        pool.AddSerializedFile(module.DESCRIPTOR.serialized_pb)
    file = descriptor_pb2.FileDescriptorProto(
        name="z.proto",
        package="z",
        syntax="proto3",
        dependency=["google/protobuf/timestamp.proto", "google/protobuf/struct.proto"],
    )
    color = file.enum_type.add(name="Color")
    color.value.add(name="RED", number=0)
    color.value.add(name="BLUE", number=1)
    for name in ("Zeta", "Alpha", "Beta"):  # declaration order, not alphabetical
        message = file.message_type.add(name=name)
        message.field.add(name="which", number=1, type=FD.TYPE_STRING, label=FD.LABEL_OPTIONAL)
        for nested in ("Yy", "Bb"):
            inner = message.nested_type.add(name=nested)
            inner.field.add(name=f"in_{nested}", number=1, type=FD.TYPE_INT32, label=FD.LABEL_OPTIONAL)
    wkt = file.message_type.add(name="Wkt")
    fields = [
        ("ts", FD.TYPE_MESSAGE, ".google.protobuf.Timestamp", FD.LABEL_OPTIONAL),
        ("st", FD.TYPE_MESSAGE, ".google.protobuf.Struct", FD.LABEL_OPTIONAL),
        ("color", FD.TYPE_ENUM, ".z.Color", FD.LABEL_OPTIONAL),
        ("colors", FD.TYPE_ENUM, ".z.Color", FD.LABEL_REPEATED),
        ("u", FD.TYPE_UINT64, "", FD.LABEL_OPTIONAL),
        ("n", FD.TYPE_INT64, "", FD.LABEL_OPTIONAL),
    ]
    for number, (name, kind, type_name, label) in enumerate(fields, start=1):
        extra = {"type_name": type_name} if type_name else {}
        wkt.field.add(name=name, number=number, type=kind, label=label, **extra)
    pool.Add(file)
    return pool.FindFileByName("z.proto")


WKT = b"\x02\x06"  # message indexes [3]: Wkt


def cls(file: Any, name: str) -> Any:
    return GetMessageClass(file.pool.FindMessageTypeByName(name))


def test_protobuf_non_first_and_nested_message_indexes(zfile: Any) -> None:
    """Indexes count messages in declaration order: [2] is Beta, [2, 1] Beta.Bb (zigzag 4, 2)."""
    decoder = ProtobufDecoder(FakeRegistry(files={1: zfile}))
    assert decoder.decode(proto_bytes(cls(zfile, "z.Beta")(which="b"), 1, b"\x02\x04")).data == {"which": "b"}
    payload = decoder.decode(proto_bytes(cls(zfile, "z.Beta.Bb")(in_Bb=7), 1, b"\x04\x04\x02"))
    assert payload.data == {"in_Bb": 7} and [c.name for c in payload.shape] == ["in_Bb"]
    assert "out of range" in decode_error(decoder, proto_bytes(cls(zfile, "z.Beta")(), 1, b"\x02\x08"))


def test_protobuf_values_before_1970_unknown_enums_and_big_numbers(zfile: Any) -> None:
    decoder = ProtobufDecoder(FakeRegistry(files={1: zfile}))
    message = cls(zfile, "z.Wkt")(color=7, colors=[1, 9], u=2**64 - 1, n=-(2**63))
    message.ts.seconds, message.ts.nanos = -1, 999_999_999  # 1969-12-31T23:59:59.999999999Z
    message.st.update({"a": 1, "b": [None, "x"]})
    data = decoder.decode(proto_bytes(message, 1, WKT)).data
    assert data["ts"] == dt.datetime(1969, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)
    assert data["st"] == {"a": 1.0, "b": [None, "x"]}
    assert data["color"] == "7" and data["colors"] == ["BLUE", "9"]
    assert data["u"] == Decimal(2**64 - 1) and data["n"] == -(2**63)
    empty = decoder.decode(proto_bytes(cls(zfile, "z.Wkt")(), 1, WKT)).data
    assert empty == {"ts": None, "st": None, "color": "RED", "colors": [], "u": Decimal(0), "n": 0}


def test_json_schema_optional_struct_at_the_top_is_still_columns() -> None:
    """Confluent's JsonSchemaData writes an optional Connect struct as oneOf [null, object] (and
    reads such a 2-branch oneOf back as that struct, optional): its properties are the columns."""
    schema = {
        "oneOf": [
            {"type": "null"},
            {
                "type": "object",
                "title": "Row",
                "properties": {
                    "id": {"type": "integer", "connect.index": 0, "connect.type": "int64"},
                    "at": {"type": "string", "format": "date-time", "connect.index": 1},
                },
                "required": ["id"],
            },
        ]
    }
    payload = json_decoder(schema).decode(json_bytes({"id": 7, "at": "2024-01-01T00:00:00Z"}))
    assert isinstance(payload.shape, tuple), payload.shape
    assert [c.name for c in payload.shape] == ["id", "at"]
    assert payload.data == {"id": 7, "at": dt.datetime(2024, 1, 1, tzinfo=UTC)}


@pytest.fixture(scope="module")
def p2file() -> Any:
    """proto2: an aliased enum (ONE and UNO are 1) and optional fields with explicit defaults."""
    pool = descriptor_pool.DescriptorPool()
    file = descriptor_pb2.FileDescriptorProto(name="p2.proto", package="p2", syntax="proto2")
    enum = file.enum_type.add(name="E")
    enum.options.allow_alias = True
    for name, number in (("FIRST", 0), ("ONE", 1), ("UNO", 1)):
        enum.value.add(name=name, number=number)
    message = file.message_type.add(name="M")
    message.field.add(name="x", number=1, type=FD.TYPE_INT32, label=FD.LABEL_OPTIONAL, default_value="5")
    message.field.add(name="e", number=2, type=FD.TYPE_ENUM, type_name=".p2.E", label=FD.LABEL_OPTIONAL)
    message.field.add(name="s", number=3, type=FD.TYPE_STRING, label=FD.LABEL_OPTIONAL, default_value="dflt")
    message.field.add(name="n", number=4, type=FD.TYPE_INT64, label=FD.LABEL_OPTIONAL)
    pool.Add(file)
    return pool.FindFileByName("p2.proto")


def test_protobuf_aliased_enum_reads_as_its_first_name(p2file: Any) -> None:
    """protobuf (json_format, Java's findValueByNumber): an aliased number is its first name."""
    decoder = ProtobufDecoder(FakeRegistry(files={1: p2file}))
    assert decoder.decode(proto_bytes(cls(p2file, "p2.M")(e=1))).data["e"] == "ONE"


def test_protobuf_proto2_unset_field_with_a_default_reads_as_the_default(p2file: Any) -> None:
    """proto2 `optional int32 x = 1 [default = 5]` unset reads 5 (protobuf's accessor, and
    Confluent's ProtobufData, which takes message.getField); one without a default stays NULL."""
    decoder = ProtobufDecoder(FakeRegistry(files={1: p2file}))
    data = decoder.decode(proto_bytes(cls(p2file, "p2.M")())).data
    assert data == {"x": 5, "e": None, "s": "dflt", "n": None}
    assert decoder.decode(proto_bytes(cls(p2file, "p2.M")(x=0, n=0))).data == {"x": 0, "e": None, "s": "dflt", "n": 0}
