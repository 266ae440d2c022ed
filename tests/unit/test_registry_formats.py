"""Registry formats (avro, protobuf, json_schema) and the registry adapter.

Decoders get a dict-backed fake SchemaSource; the adapter tests use the in-process test registry
over real HTTP (no broker needed).
"""

from __future__ import annotations

import base64
import datetime as dt
import io
import json
import socket
import time
import uuid
from decimal import Decimal
from typing import Any

import fastavro
import pytest
from google.protobuf import descriptor_pb2, descriptor_pool, timestamp_pb2, wrappers_pb2
from google.protobuf.message_factory import GetMessageClass
from google.type import date_pb2

from sink.adapters.registry import RegistrySchemaSource, client_config, safe_url
from sink.errors import ConfigError, DecodeError, RegistryUnavailable, RetriableError
from sink.formats import make_decoder
from sink.formats.avro import AvroDecoder
from sink.formats.json_schema import JsonSchemaDecoder
from sink.formats.protobuf import ProtobufDecoder, read_indexes
from sink.model import Column, ColumnType, Coord, Decoded, Kind, Payload, RawRecord
from sink.transforms import MappingRules, RowMapper
from tests.support.registry import RegistryServer

UTC = dt.UTC
INT32, INT64 = ColumnType(Kind.INT32), ColumnType(Kind.INT64)
STRING, BYTES, JSON = ColumnType(Kind.STRING), ColumnType(Kind.BYTES), ColumnType(Kind.JSON)
BOOLEAN, FLOAT32, FLOAT64 = ColumnType(Kind.BOOLEAN), ColumnType(Kind.FLOAT32), ColumnType(Kind.FLOAT64)


class FakeRegistry:
    """The SchemaSource port over dicts; counts lookups. A missing id raises KeyError (a LookupError)."""

    def __init__(
        self,
        schemas: dict[int, tuple[str, str, list[dict]]] | None = None,
        files: dict[int, Any] | None = None,
        references: dict[tuple[str, int], tuple[str, str, list[dict]]] | None = None,
    ) -> None:
        self.schemas = schemas or {}
        self.files = files or {}
        self.references = references or {}
        self.calls: list[int] = []

    def schema(self, schema_id: int) -> tuple[str, str, list[dict]]:
        self.calls.append(schema_id)
        return self.schemas[schema_id]

    def reference(self, subject: str, version: int) -> tuple[str, str, list[dict]]:
        return self.references[subject, version]

    def protobuf_file(self, schema_id: int) -> Any:
        self.calls.append(schema_id)
        return self.files[schema_id]


def header(schema_id: int) -> bytes:
    return b"\x00" + schema_id.to_bytes(4, "big")


# ============================================================================== Avro


def avro_bytes(schema: Any, value: Any, schema_id: int = 1) -> bytes:
    out = io.BytesIO()
    fastavro.schemaless_writer(out, fastavro.parse_schema(schema), value)
    return header(schema_id) + out.getvalue()


def avro_decoder(schema: Any, schema_id: int = 1) -> tuple[AvroDecoder, FakeRegistry]:
    registry = FakeRegistry({schema_id: ("AVRO", json.dumps(schema), [])})
    return AvroDecoder(registry), registry


def decode_avro(schema: Any, value: Any) -> Payload:
    decoder, _ = avro_decoder(schema)
    return decoder.decode(avro_bytes(schema, value))


def record(*fields: dict, name: str = "Row") -> dict:
    return {"type": "record", "name": name, "namespace": "test", "fields": list(fields)}


def _logical(base: str, logical_type: str, **extra: Any) -> dict:
    return {"type": base, "logicalType": logical_type, **extra}


AVRO_ALL = record(
    {"name": "i", "type": "int"},
    {"name": "l", "type": "long"},
    {"name": "f", "type": "float"},
    {"name": "d", "type": "double"},
    {"name": "b", "type": "boolean"},
    {"name": "s", "type": "string"},
    {"name": "raw", "type": "bytes"},
    {"name": "fx", "type": {"type": "fixed", "name": "Four", "size": 4}},
    {"name": "e", "type": {"type": "enum", "name": "Color", "symbols": ["RED", "GREEN"]}},
    {"name": "dec", "type": _logical("bytes", "decimal", precision=10, scale=2)},
    {
        "name": "fdec",
        "type": {"type": "fixed", "name": "F8", "size": 8, "logicalType": "decimal", "precision": 18, "scale": 3},
    },
    {"name": "day", "type": _logical("int", "date")},
    {"name": "tmillis", "type": _logical("int", "time-millis")},
    {"name": "tmicros", "type": _logical("long", "time-micros")},
    {"name": "tsmillis", "type": _logical("long", "timestamp-millis")},
    {"name": "tsmicros", "type": _logical("long", "timestamp-micros")},
    {"name": "ltsmillis", "type": _logical("long", "local-timestamp-millis")},
    {"name": "ltsmicros", "type": _logical("long", "local-timestamp-micros")},
    {"name": "tsnanos", "type": _logical("long", "timestamp-nanos")},
    {"name": "id", "type": _logical("string", "uuid")},
    {"name": "addr", "type": record({"name": "street", "type": "string"}, name="Address")},
    {"name": "m", "type": {"type": "map", "values": "long"}},
    {"name": "tags", "type": {"type": "array", "items": "string"}},
    {"name": "days", "type": {"type": "array", "items": _logical("int", "date")}},
    {"name": "addrs", "type": {"type": "array", "items": "test.Address"}},
    {"name": "opt", "type": ["null", "long"], "default": None},
    {"name": "opt_last", "type": ["string", "null"], "default": "x"},
    {"name": "multi", "type": ["null", "string", "long"], "default": None},
    {"name": "strict_multi", "type": ["string", "long"]},
)
UID = uuid.UUID("12345678-1234-5678-1234-567812345678")
AVRO_VALUE = {
    "i": -7,
    "l": 2**40,
    "f": 1.5,
    "d": 2.25,
    "b": True,
    "s": "Grüße",
    "raw": b"\x00\xff",
    "fx": b"abcd",
    "e": "GREEN",
    "dec": Decimal("-12.34"),
    "fdec": Decimal("123456.789"),
    "day": dt.date(2024, 2, 29),
    "tmillis": dt.time(1, 2, 3, 4000),
    "tmicros": dt.time(1, 2, 3, 4),
    "tsmillis": dt.datetime(2024, 1, 2, 3, 4, 5, 6000, tzinfo=UTC),
    "tsmicros": dt.datetime(2024, 1, 2, 3, 4, 5, 6, tzinfo=UTC),
    "ltsmillis": dt.datetime(2024, 1, 2, 3, 4, 5, 6000),
    "ltsmicros": dt.datetime(2024, 1, 2, 3, 4, 5, 6),
    "tsnanos": 1_700_000_000_123_456_789,
    "id": UID,
    "addr": {"street": "Main"},
    "m": {"a": 1},
    "tags": ["x", "y"],
    "days": [dt.date(2000, 1, 1)],
    "addrs": [{"street": "A"}],
    "opt": None,
    "opt_last": "set",
    "multi": 5,
    "strict_multi": "s",
}


def test_avro_every_type_decodes_to_exact_python_values() -> None:
    payload = decode_avro(AVRO_ALL, AVRO_VALUE)
    expected = {
        **AVRO_VALUE,
        "fdec": Decimal("123456.789"),
        "tsnanos": dt.datetime(2023, 11, 14, 22, 13, 20, 123456, tzinfo=UTC),
    }
    assert payload.data == expected
    for name in ("dec", "fdec"):
        assert isinstance(payload.data[name], Decimal)
    assert payload.data["dec"].as_tuple().exponent == -2
    assert payload.data["tsmillis"].tzinfo is UTC or payload.data["tsmillis"].utcoffset() == dt.timedelta(0)
    assert payload.data["ltsmicros"].tzinfo is None
    assert isinstance(payload.data["id"], uuid.UUID)
    assert payload.schema_id == 1


def test_avro_every_type_maps_to_its_column_type() -> None:
    payload = decode_avro(AVRO_ALL, AVRO_VALUE)
    assert isinstance(payload.shape, tuple)
    columns = {c.name: c for c in payload.shape}
    assert [c.name for c in payload.shape] == [f["name"] for f in AVRO_ALL["fields"]]
    expected = {
        "i": INT32,
        "l": INT64,
        "f": FLOAT32,
        "d": FLOAT64,
        "b": BOOLEAN,
        "s": STRING,
        "raw": BYTES,
        "fx": ColumnType(Kind.BYTES, length=4),
        "e": STRING,
        "dec": ColumnType(Kind.DECIMAL, precision=10, scale=2),
        "fdec": ColumnType(Kind.DECIMAL, precision=18, scale=3),
        "day": ColumnType(Kind.DATE),
        "tmillis": ColumnType(Kind.TIME, precision=3),
        "tmicros": ColumnType(Kind.TIME, precision=6),
        "tsmillis": ColumnType(Kind.TIMESTAMP, precision=3),
        "tsmicros": ColumnType(Kind.TIMESTAMP, precision=6),
        "ltsmillis": ColumnType(Kind.LOCAL_TIMESTAMP, precision=3),
        "ltsmicros": ColumnType(Kind.LOCAL_TIMESTAMP, precision=6),
        "tsnanos": ColumnType(Kind.TIMESTAMP, precision=6),
        "id": ColumnType(Kind.UUID),
        "addr": JSON,
        "m": JSON,
        "tags": ColumnType(Kind.ARRAY, item=STRING),
        "days": ColumnType(Kind.ARRAY, item=ColumnType(Kind.DATE)),
        "addrs": JSON,
        "opt": INT64,
        "opt_last": STRING,
        "multi": JSON,
        "strict_multi": JSON,
    }
    assert {name: c.type for name, c in columns.items()} == expected
    nullable = {name for name, c in columns.items() if c.nullable}
    assert nullable == {"opt", "opt_last", "multi"}
    assert columns["opt_last"].has_default and columns["opt_last"].default == "x"
    assert not columns["opt"].has_default, "a null default is no default"


def test_avro_field_defaults_become_python_values() -> None:
    schema = record(
        {"name": "n", "type": "int", "default": 3},
        {"name": "s", "type": "string", "default": "hi"},
        {"name": "raw", "type": "bytes", "default": "\u0001\u00ff"},
        {"name": "dec", "type": _logical("bytes", "decimal", precision=5, scale=2), "default": "\u0004\u00d2"},
        {"name": "day", "type": _logical("int", "date"), "default": 1},
        {"name": "ts", "type": _logical("long", "timestamp-millis"), "default": 1000},
        {"name": "id", "type": _logical("string", "uuid"), "default": str(UID)},
        {"name": "e", "type": {"type": "enum", "name": "E", "symbols": ["A", "B"]}, "default": "B"},
        {"name": "d", "type": "double", "default": 1},
        {"name": "micro", "type": {"type": "long", "connect.name": "io.debezium.time.MicroTimestamp"}, "default": 5},
        {"name": "plain", "type": "long"},
    )
    payload = decode_avro(
        schema,
        {
            "n": 1,
            "s": "",
            "raw": b"",
            "dec": Decimal("0"),
            "day": 0,
            "ts": 0,
            "id": str(UID),
            "e": "A",
            "d": 0.0,
            "micro": 0,
            "plain": 0,
        },
    )
    defaults = {c.name: c.default for c in payload.shape if c.has_default}
    assert defaults == {
        "n": 3,
        "s": "hi",
        "raw": b"\x01\xff",
        "dec": Decimal("12.34"),
        "day": dt.date(1970, 1, 2),
        "ts": dt.datetime(1970, 1, 1, 0, 0, 1, tzinfo=UTC),
        "id": UID,
        "e": "B",
        "d": 1.0,
        "micro": dt.datetime(1970, 1, 1, 0, 0, 0, 5),
    }
    assert isinstance(defaults["d"], float)


def test_avro_connect_and_debezium_logical_names() -> None:
    def named(base: Any, name: str, **extra: Any) -> dict:
        return {"type": base, "connect.name": name, "connect.version": 1, **extra}

    schema = record(
        {"name": "date", "type": named("int", "io.debezium.time.Date")},
        {"name": "time", "type": named("int", "io.debezium.time.Time")},
        {"name": "micro_time", "type": named("long", "io.debezium.time.MicroTime")},
        {"name": "ts", "type": named("long", "io.debezium.time.Timestamp")},
        {"name": "micro_ts", "type": named("long", "io.debezium.time.MicroTimestamp")},
        {"name": "nano_ts", "type": named("long", "io.debezium.time.NanoTimestamp")},
        {"name": "zoned", "type": named("string", "io.debezium.time.ZonedTimestamp")},
        {"name": "doc", "type": ["null", named("string", "io.debezium.data.Json")], "default": None},
        {"name": "uid", "type": named("string", "io.debezium.data.Uuid")},
        {
            "name": "vdec",
            "type": {
                "type": "record",
                "name": "VariableScaleDecimal",
                "namespace": "io.debezium.data",
                "fields": [{"name": "scale", "type": "int"}, {"name": "value", "type": "bytes"}],
                "connect.name": "io.debezium.data.VariableScaleDecimal",
            },
        },
        {
            # what Connect's AvroConverter writes for a Decimal: logicalType *and* connect.name
            "name": "cdec",
            "type": named(
                "bytes",
                "org.apache.kafka.connect.data.Decimal",
                logicalType="decimal",
                precision=12,
                scale=3,
                **{"connect.parameters": {"scale": "3", "connect.decimal.precision": "12"}},
            ),
        },
        {
            "name": "cts",
            "type": named("long", "org.apache.kafka.connect.data.Timestamp", logicalType="timestamp-millis"),
        },
        {"name": "cdate", "type": named("int", "org.apache.kafka.connect.data.Date", logicalType="date")},
    )
    value = {
        "date": 19782,
        "time": 3_723_004,
        "micro_time": 3_723_000_004,
        "ts": 1_700_000_000_123,
        "micro_ts": 1_700_000_000_123_456,
        "nano_ts": 1_700_000_000_123_456_789,
        "zoned": "2024-03-01T10:00:00.5+02:00",
        "doc": '{"a": [1, 2]}',
        "uid": str(UID),
        "vdec": {"scale": 3, "value": (12345).to_bytes(2, "big")},
        "cdec": Decimal("-1.500"),
        "cts": dt.datetime(2024, 1, 1, tzinfo=UTC),
        "cdate": dt.date(2024, 1, 1),
    }
    payload = decode_avro(schema, value)
    assert payload.data == {
        "date": dt.date(2024, 2, 29),
        "time": dt.time(1, 2, 3, 4000),
        "micro_time": dt.time(1, 2, 3, 4),
        "ts": dt.datetime(2023, 11, 14, 22, 13, 20, 123000),
        "micro_ts": dt.datetime(2023, 11, 14, 22, 13, 20, 123456),
        "nano_ts": dt.datetime(2023, 11, 14, 22, 13, 20, 123456),
        "zoned": dt.datetime(2024, 3, 1, 10, 0, 0, 500000, tzinfo=dt.timezone(dt.timedelta(hours=2))),
        "doc": {"a": [1, 2]},
        "uid": UID,
        "vdec": Decimal("12.345"),
        "cdec": Decimal("-1.500"),
        "cts": dt.datetime(2024, 1, 1, tzinfo=UTC),
        "cdate": dt.date(2024, 1, 1),
    }
    types = {c.name: c.type for c in payload.shape}
    assert types == {
        "date": ColumnType(Kind.DATE),
        "time": ColumnType(Kind.TIME, precision=3),
        "micro_time": ColumnType(Kind.TIME, precision=6),
        "ts": ColumnType(Kind.LOCAL_TIMESTAMP, precision=3),
        "micro_ts": ColumnType(Kind.LOCAL_TIMESTAMP, precision=6),
        "nano_ts": ColumnType(Kind.LOCAL_TIMESTAMP, precision=6),
        "zoned": ColumnType(Kind.TIMESTAMP, precision=6),
        "doc": JSON,
        "uid": ColumnType(Kind.UUID),
        "vdec": ColumnType(Kind.DECIMAL, precision=38, scale=None),
        "cdec": ColumnType(Kind.DECIMAL, precision=12, scale=3),
        "cts": ColumnType(Kind.TIMESTAMP, precision=3),
        "cdate": ColumnType(Kind.DATE),
    }
    assert [c.name for c in payload.shape if c.nullable] == ["doc"]
    doc_null = decode_avro(schema, {**value, "doc": None})
    assert doc_null.data["doc"] is None


def test_avro_nested_records_keep_python_values_and_convert_connect_names_inside() -> None:
    inner = record(
        {"name": "at", "type": {"type": "long", "connect.name": "io.debezium.time.MicroTimestamp"}},
        {"name": "amount", "type": _logical("bytes", "decimal", precision=6, scale=2)},
        name="Event",
    )
    schema = record(
        {"name": "event", "type": inner},
        {"name": "events", "type": {"type": "array", "items": "test.Event"}},
        {"name": "by_key", "type": {"type": "map", "values": "test.Event"}},
        {"name": "maybe", "type": ["null", "test.Event"], "default": None},
    )
    event = {"at": 1_000_001, "amount": Decimal("1.50")}
    converted = {"at": dt.datetime(1970, 1, 1, 0, 0, 1, 1), "amount": Decimal("1.50")}
    payload = decode_avro(schema, {"event": event, "events": [event], "by_key": {"k": event}, "maybe": None})
    assert payload.data == {"event": converted, "events": [converted], "by_key": {"k": converted}, "maybe": None}
    assert [c.type for c in payload.shape] == [JSON, JSON, JSON, JSON]


def test_avro_recursive_record() -> None:
    schema = record(
        {"name": "value", "type": {"type": "long", "connect.name": "io.debezium.time.MicroTimestamp"}},
        {"name": "next", "type": ["null", "test.Node"], "default": None},
        name="Node",
    )
    payload = decode_avro(schema, {"value": 1, "next": {"value": 2, "next": None}})
    assert payload.data == {
        "value": dt.datetime(1970, 1, 1, 0, 0, 0, 1),
        "next": {"value": dt.datetime(1970, 1, 1, 0, 0, 0, 2), "next": None},
    }
    assert payload.shape[1] == Column("next", JSON, nullable=True)


@pytest.mark.parametrize(
    ("schema", "value", "shape"),
    [
        ("string", "k-1", STRING),
        ("long", 42, INT64),
        ("int", 7, INT32),
        (["null", "string"], "k", STRING),
        (_logical("string", "uuid"), UID, ColumnType(Kind.UUID)),
        ({"type": "enum", "name": "E", "symbols": ["A"]}, "A", STRING),
    ],
)
def test_avro_primitive_schemas_give_a_primitive_shape(schema: Any, value: Any, shape: ColumnType) -> None:
    payload = decode_avro(schema, value)
    assert (payload.data, payload.shape) == (value, shape)


def test_avro_optional_top_level_record_keeps_its_columns() -> None:
    schema = ["null", record({"name": "id", "type": "long"})]
    decoder, _ = avro_decoder(schema)
    payload = decoder.decode(avro_bytes(schema, {"id": 3}))
    assert (payload.data, payload.shape) == ({"id": 3}, (Column("id", INT64, nullable=False),))
    assert decoder.decode(avro_bytes(schema, None)).data is None


def test_avro_keys_become_primary_key_columns() -> None:
    key_schema = record({"name": "tenant", "type": "string"}, {"name": "id", "type": "long"}, name="Key")
    value_schema = record({"name": "id", "type": "long"}, {"name": "name", "type": "string"})
    registry = FakeRegistry(
        {1: ("AVRO", json.dumps(key_schema), []), 2: ("AVRO", json.dumps(value_schema), []), 3: ("AVRO", '"long"', [])}
    )
    decoder = AvroDecoder(registry)
    raw = RawRecord(Coord("t", 0, 0), b"", b"")
    value = decoder.decode(avro_bytes(value_schema, {"id": 5, "name": "n"}, 2))
    struct_key = decoder.decode(avro_bytes(key_schema, {"tenant": "a", "id": 5}, 1))
    row = RowMapper(MappingRules(pk_mode="record_key")).to_row(Decoded(raw, struct_key, value))
    assert row.key == {"tenant": "a", "id": 5}
    assert row.spec.primary_key == ("tenant", "id")
    assert row.spec.column("id").type == INT64
    primitive_key = decoder.decode(avro_bytes("long", 5, 3))
    row = RowMapper(MappingRules(pk_mode="record_key")).to_row(Decoded(raw, primitive_key, value))
    assert row.key == {"__connect_key": 5}
    assert row.spec.column("__connect_key") == Column("__connect_key", INT64, nullable=False)


def test_avro_compiles_each_schema_id_once_and_splits_by_id() -> None:
    v1 = record({"name": "id", "type": "long"})
    v2 = record({"name": "id", "type": "long"}, {"name": "note", "type": ["null", "string"], "default": None})
    registry = FakeRegistry({1: ("AVRO", json.dumps(v1), []), 2: ("AVRO", json.dumps(v2), [])})
    decoder = AvroDecoder(registry)
    ids = [decoder.decode(avro_bytes(v1, {"id": i}, 1)).schema_id for i in range(50)]
    ids.append(decoder.decode(avro_bytes(v2, {"id": 1, "note": "x"}, 2)).schema_id)
    assert ids == [1] * 50 + [2]
    assert registry.calls == [1, 2]


def test_avro_references_are_resolved_through_the_port() -> None:
    address = record({"name": "street", "type": "string"}, name="Address")
    main = record({"name": "home", "type": "test.Address"})
    registry = FakeRegistry(
        {7: ("AVRO", json.dumps(main), [{"name": "test.Address", "subject": "address", "version": 1}])},
        references={("address", 1): ("AVRO", json.dumps(address), [])},
    )
    out = io.BytesIO()
    fastavro.schemaless_writer(
        out, fastavro.parse_schema(record({"name": "home", "type": address})), {"home": {"street": "Main"}}
    )
    payload = AvroDecoder(registry).decode(header(7) + out.getvalue())
    assert payload.data == {"home": {"street": "Main"}}
    assert payload.shape == (Column("home", JSON, nullable=False),)


def test_avro_outage_while_resolving_references_stays_an_outage() -> None:
    class Down(FakeRegistry):
        def reference(self, subject: str, version: int) -> tuple[str, str, list[dict]]:
            raise RegistryUnavailable("registry down")

    main = record({"name": "home", "type": "test.Address"})
    registry = Down({7: ("AVRO", json.dumps(main), [{"name": "test.Address", "subject": "address", "version": 1}])})
    with pytest.raises(RegistryUnavailable):
        AvroDecoder(registry).decode(header(7) + b"\x00")
    missing = FakeRegistry({7: ("AVRO", json.dumps(main), [{"name": "test.Address", "subject": "a", "version": 1}])})
    assert "referenced schema 'test.Address' is missing" in _decode_error(AvroDecoder(missing), header(7) + b"\x00")


# ------------------------------------------------------------------------------ Avro errors


def _decode_error(decoder: Any, data: bytes) -> str:
    with pytest.raises(DecodeError) as caught:
        decoder.decode(data)
    return str(caught.value)


def test_wrong_magic_byte_names_the_byte() -> None:
    decoder, _ = avro_decoder("string")
    message = _decode_error(decoder, b"\x01\x00\x00\x00\x01\x02a")
    assert "magic byte 0x01 at byte 0" in message
    assert "magic byte 0x7b" in _decode_error(decoder, b'{"plain": "json"}')


def test_short_header() -> None:
    decoder, _ = avro_decoder("string")
    assert "3 byte(s) is shorter than the Confluent wire-format header" in _decode_error(decoder, b"\x00\x00\x01")
    assert "0 byte(s)" in _decode_error(decoder, b"")


def test_unknown_schema_id_names_the_id() -> None:
    decoder, registry = avro_decoder("string", schema_id=1)
    message = _decode_error(decoder, header(99) + b"\x02a")
    assert message.startswith("Avro: unknown schema id 99")
    assert registry.calls == [99]


def test_truncated_avro_body() -> None:
    schema = record({"name": "id", "type": "long"}, {"name": "name", "type": "string"})
    decoder, _ = avro_decoder(schema)
    data = avro_bytes(schema, {"id": 1, "name": "hello"})
    message = _decode_error(decoder, data[:-2])
    assert "truncated body" in message and "schema id 1" in message
    assert "2 byte(s) left over at byte" in _decode_error(decoder, data + b"\x00\x00")


def test_a_schema_of_another_type_is_a_decode_error() -> None:
    decoder = AvroDecoder(FakeRegistry({4: ("PROTOBUF", "x", [])}))
    assert "schema id 4 is a PROTOBUF schema, not AVRO" in _decode_error(decoder, header(4) + b"\x00")


def test_unmappable_avro_schema_names_the_field() -> None:
    schema = record({"name": "id", "type": "long"}, {"name": "nothing", "type": "null"})
    decoder, _ = avro_decoder(schema)
    message = _decode_error(decoder, avro_bytes(schema, {"id": 1, "nothing": None}))
    assert "field 'nothing': type null cannot be a column" in message
    broken = AvroDecoder(
        FakeRegistry({1: ("AVRO", '{"type": "record", "name": "X", "fields": [{"name": "a", "type": "Nope"}]}', [])})
    )
    assert "Avro schema id 1 cannot be parsed" in _decode_error(broken, header(1) + b"\x00")


def test_bad_logical_value_names_the_field() -> None:
    schema = record({"name": "at", "type": {"type": "string", "connect.name": "io.debezium.time.ZonedTimestamp"}})
    decoder, _ = avro_decoder(schema)
    message = _decode_error(decoder, avro_bytes(schema, {"at": "yesterday"}))
    assert "field 'at'" in message and "yesterday" in message


# ============================================================================== Protobuf

FD = descriptor_pb2.FieldDescriptorProto


def proto_pool() -> descriptor_pool.DescriptorPool:
    pool = descriptor_pool.DescriptorPool()
    for module in (timestamp_pb2, wrappers_pb2, date_pb2):
        pool.AddSerializedFile(module.DESCRIPTOR.serialized_pb)
    return pool


def shop_proto() -> descriptor_pb2.FileDescriptorProto:
    """shop.proto: Order (every kind of field), Line, Key; Order nests Note (index [0, 0])."""
    file = descriptor_pb2.FileDescriptorProto(
        name="shop.proto",
        package="shop",
        syntax="proto3",
        dependency=["google/protobuf/timestamp.proto", "google/protobuf/wrappers.proto", "google/type/date.proto"],
    )
    status = file.enum_type.add(name="Status")
    status.value.add(name="NEW", number=0)
    status.value.add(name="PAID", number=1)

    order = file.message_type.add(name="Order")
    order.nested_type.add(name="Note").field.add(name="text", number=1, type=FD.TYPE_STRING, label=FD.LABEL_OPTIONAL)
    entry = order.nested_type.add(name="AttrsEntry")
    entry.options.map_entry = True
    entry.field.add(name="key", number=1, type=FD.TYPE_STRING, label=FD.LABEL_OPTIONAL)
    entry.field.add(name="value", number=2, type=FD.TYPE_INT64, label=FD.LABEL_OPTIONAL)
    order.oneof_decl.add(name="payment")
    order.oneof_decl.add(name="_opt")
    scalars = [
        ("i32", FD.TYPE_INT32),
        ("s32", FD.TYPE_SINT32),
        ("sf32", FD.TYPE_SFIXED32),
        ("i64", FD.TYPE_INT64),
        ("s64", FD.TYPE_SINT64),
        ("sf64", FD.TYPE_SFIXED64),
        ("u32", FD.TYPE_UINT32),
        ("fx32", FD.TYPE_FIXED32),
        ("u64", FD.TYPE_UINT64),
        ("fx64", FD.TYPE_FIXED64),
        ("fl", FD.TYPE_FLOAT),
        ("db", FD.TYPE_DOUBLE),
        ("ok", FD.TYPE_BOOL),
        ("name", FD.TYPE_STRING),
        ("raw", FD.TYPE_BYTES),
    ]
    number = 0
    for number, (name, kind) in enumerate(scalars, start=1):
        order.field.add(name=name, number=number, type=kind, label=FD.LABEL_OPTIONAL)

    def add(name: str, kind: int, type_name: str = "", label: int = FD.LABEL_OPTIONAL, **extra: Any) -> None:
        nonlocal number
        number += 1
        if type_name:
            extra["type_name"] = type_name
        order.field.add(name=name, number=number, type=kind, label=label, **extra)

    add("status", FD.TYPE_ENUM, ".shop.Status")
    add("opt", FD.TYPE_STRING, proto3_optional=True, oneof_index=1)
    add("card", FD.TYPE_STRING, oneof_index=0)
    add("cash", FD.TYPE_INT64, oneof_index=0)
    add("tags", FD.TYPE_STRING, label=FD.LABEL_REPEATED)
    add("scores", FD.TYPE_UINT64, label=FD.LABEL_REPEATED)
    add("lines", FD.TYPE_MESSAGE, ".shop.Line", label=FD.LABEL_REPEATED)
    add("attrs", FD.TYPE_MESSAGE, ".shop.Order.AttrsEntry", label=FD.LABEL_REPEATED)
    add("line", FD.TYPE_MESSAGE, ".shop.Line")
    add("created", FD.TYPE_MESSAGE, ".google.protobuf.Timestamp")
    add("day", FD.TYPE_MESSAGE, ".google.type.Date")
    add("count", FD.TYPE_MESSAGE, ".google.protobuf.Int64Value")
    add("label", FD.TYPE_MESSAGE, ".google.protobuf.StringValue")
    add("big", FD.TYPE_MESSAGE, ".google.protobuf.UInt64Value")
    add("stamps", FD.TYPE_MESSAGE, ".google.protobuf.Timestamp", label=FD.LABEL_REPEATED)

    line = file.message_type.add(name="Line")
    line.field.add(name="sku", number=1, type=FD.TYPE_STRING, label=FD.LABEL_OPTIONAL)
    line.field.add(
        name="at", number=2, type=FD.TYPE_MESSAGE, type_name=".google.protobuf.Timestamp", label=FD.LABEL_OPTIONAL
    )
    key = file.message_type.add(name="Key")
    key.field.add(name="id", number=1, type=FD.TYPE_INT64, label=FD.LABEL_OPTIONAL)
    return file


@pytest.fixture(scope="module")
def shop() -> Any:
    pool = proto_pool()
    pool.Add(shop_proto())
    return pool.FindFileByName("shop.proto")


def message_class(file: Any, name: str) -> Any:
    """A message class of the file's pool (`Timestamp`, `Date`... name well-known types in it)."""
    full = name if "." in name else f"shop.{name}"
    return GetMessageClass(file.pool.FindMessageTypeByName(full))


def proto_bytes(message: Any, schema_id: int = 1, indexes: bytes = b"\x00") -> bytes:
    return header(schema_id) + indexes + message.SerializeToString()


def test_protobuf_every_field_kind(shop: Any) -> None:
    Order, Line = message_class(shop, "Order"), message_class(shop, "Line")
    Timestamp, Date = message_class(shop, "google.protobuf.Timestamp"), message_class(shop, "google.type.Date")
    Int64Value, UInt64Value = (message_class(shop, f"google.protobuf.{n}") for n in ("Int64Value", "UInt64Value"))
    order = Order(
        i32=-5,
        s32=-6,
        sf32=-7,
        i64=-(2**40),
        s64=-(2**41),
        sf64=-(2**42),
        u32=2**32 - 1,
        fx32=7,
        u64=2**64 - 1,
        fx64=5,
        fl=1.5,
        db=2.25,
        ok=True,
        name="Grüße",
        raw=b"\x00\x01",
        status=1,
        opt="o",
        card="visa",
        tags=["a", "b"],
        scores=[1, 2**63],
        lines=[Line(sku="A")],
        attrs={"k": 1},
        line=Line(sku="B", at=Timestamp(seconds=60)),
        created=Timestamp(seconds=1_700_000_000, nanos=123_456_789),
        day=Date(year=2024, month=2, day=29),
        count=Int64Value(value=0),
        big=UInt64Value(value=2**64 - 1),
        stamps=[Timestamp(seconds=0)],
    )
    decoder = ProtobufDecoder(FakeRegistry(files={1: shop}))
    payload = decoder.decode(proto_bytes(order))
    created = dt.datetime(2023, 11, 14, 22, 13, 20, 123456, tzinfo=UTC)
    assert payload.data == {
        "i32": -5,
        "s32": -6,
        "sf32": -7,
        "i64": -(2**40),
        "s64": -(2**41),
        "sf64": -(2**42),
        "u32": 2**32 - 1,
        "fx32": 7,
        "u64": Decimal(2**64 - 1),
        "fx64": Decimal(5),
        "fl": 1.5,
        "db": 2.25,
        "ok": True,
        "name": "Grüße",
        "raw": b"\x00\x01",
        "status": "PAID",
        "opt": "o",
        "card": "visa",
        "cash": None,
        "tags": ["a", "b"],
        "scores": [Decimal(1), Decimal(2**63)],
        "lines": [{"sku": "A", "at": None}],
        "attrs": {"k": 1},
        "line": {"sku": "B", "at": dt.datetime(1970, 1, 1, 0, 1, tzinfo=UTC)},
        "created": created,
        "day": dt.date(2024, 2, 29),
        "count": 0,
        "label": None,
        "big": Decimal(2**64 - 1),
        "stamps": [dt.datetime(1970, 1, 1, tzinfo=UTC)],
    }
    assert payload.schema_id == 1


def test_protobuf_column_types_and_nullability(shop: Any) -> None:
    decoder = ProtobufDecoder(FakeRegistry(files={1: shop}))
    payload = decoder.decode(proto_bytes(message_class(shop, "Order")()))
    columns = {c.name: c for c in payload.shape}
    u64 = ColumnType(Kind.DECIMAL, precision=20, scale=0)
    assert {n: c.type for n, c in columns.items()} == {
        "i32": INT32,
        "s32": INT32,
        "sf32": INT32,
        "i64": INT64,
        "s64": INT64,
        "sf64": INT64,
        "u32": INT64,
        "fx32": INT64,
        "u64": u64,
        "fx64": u64,
        "fl": FLOAT32,
        "db": FLOAT64,
        "ok": BOOLEAN,
        "name": STRING,
        "raw": BYTES,
        "status": STRING,
        "opt": STRING,
        "card": STRING,
        "cash": INT64,
        "tags": ColumnType(Kind.ARRAY, item=STRING),
        "scores": ColumnType(Kind.ARRAY, item=u64),
        "lines": JSON,
        "attrs": JSON,
        "line": JSON,
        "created": ColumnType(Kind.TIMESTAMP, precision=6),
        "day": ColumnType(Kind.DATE),
        "count": INT64,
        "label": STRING,
        "big": u64,
        "stamps": ColumnType(Kind.ARRAY, item=ColumnType(Kind.TIMESTAMP, precision=6)),
    }
    nullable = {n for n, c in columns.items() if c.nullable}
    assert nullable == {
        "opt",
        "card",
        "cash",
        "tags",
        "scores",
        "lines",
        "attrs",
        "line",
        "created",
        "day",
        "count",
        "label",
        "big",
        "stamps",
    }
    assert columns["i32"] == Column("i32", INT32, nullable=False, default=0, has_default=True)
    assert columns["status"].default == "NEW" and columns["u64"].default == Decimal(0)
    # an empty message: implicit-presence scalars read as zero values, the rest as null / empty
    data = payload.data
    assert (data["i32"], data["name"], data["status"], data["u64"]) == (0, "", "NEW", Decimal(0))
    assert (data["opt"], data["line"], data["created"], data["count"], data["tags"], data["attrs"]) == (
        None,
        None,
        None,
        None,
        [],
        {},
    )


def test_protobuf_message_indexes(shop: Any) -> None:
    decoder = ProtobufDecoder(FakeRegistry(files={1: shop}))
    key = decoder.decode(proto_bytes(message_class(shop, "Key")(id=9), indexes=b"\x02\x04"))  # [2]
    assert (key.data, key.schema_id) == ({"id": 9}, (1, (2,)))
    assert key.shape == (Column("id", INT64, nullable=False, default=0, has_default=True),)
    Note = GetMessageClass(shop.pool.FindMessageTypeByName("shop.Order.Note"))
    note = decoder.decode(proto_bytes(Note(text="hi"), indexes=b"\x04\x00\x00"))  # [0, 0]
    assert note.data == {"text": "hi"}
    assert read_indexes(header(1) + b"\x00") == ((0,), 6)
    assert read_indexes(header(1) + b"\x06\x02\x04\x06") == ((1, 2, 3), 9)


def test_protobuf_index_out_of_range(shop: Any) -> None:
    decoder = ProtobufDecoder(FakeRegistry(files={1: shop}))
    message = _decode_error(decoder, header(1) + b"\x02\x0a")  # [5]
    assert "message index 5 (position 0 of [5]) is out of range: schema id 1 has 3 message(s) top-level" in message
    message = _decode_error(decoder, header(1) + b"\x04\x00\x0a")  # [0, 5]
    assert "nested in shop.Order" in message


def test_protobuf_truncated(shop: Any) -> None:
    decoder = ProtobufDecoder(FakeRegistry(files={1: shop}))
    data = proto_bytes(message_class(shop, "Order")(name="hello", i32=3))
    message = _decode_error(decoder, data[:-2])
    assert "body at byte 6 is not a valid shop.Order (schema id 1)" in message
    assert "truncated varint (message-index count) at byte 5" in _decode_error(decoder, header(1))
    assert "truncated varint (message index 1) at byte 7" in _decode_error(decoder, header(1) + b"\x04\x00")


def test_protobuf_unknown_id_and_partial_date(shop: Any) -> None:
    decoder = ProtobufDecoder(FakeRegistry(files={1: shop}))
    assert "Protobuf: unknown schema id 2" in _decode_error(decoder, header(2) + b"\x00")
    Date = message_class(shop, "google.type.Date")
    order = message_class(shop, "Order")(day=Date(year=2024, month=0, day=0))
    assert "field 'day': google.type.Date 2024-00-00 is a partial date" in _decode_error(decoder, proto_bytes(order))


def test_protobuf_wrapper_message_is_a_primitive_key() -> None:
    decoder = ProtobufDecoder(FakeRegistry(files={3: wrappers_pb2.DESCRIPTOR}))
    index = list(wrappers_pb2.DESCRIPTOR.message_types_by_name).index("StringValue")
    data = header(3) + b"\x02" + bytes([index * 2]) + wrappers_pb2.StringValue(value="k1").SerializeToString()
    payload = decoder.decode(data)
    assert (payload.data, payload.shape) == ("k1", STRING)


# ============================================================================== JSON Schema

JSON_SCHEMA = {
    "$schema": "http://json-schema.org/draft-07/schema#",
    "title": "Order",
    "type": "object",
    "properties": {
        "id": {"type": "integer"},
        "price": {"type": "number"},
        "paid": {"type": "boolean"},
        "name": {"type": "string"},
        "at": {"type": "string", "format": "date-time"},
        "day": {"type": "string", "format": "date"},
        "time": {"type": "string", "format": "time"},
        "uid": {"type": "string", "format": "uuid"},
        "meta": {"type": "object"},
        "tags": {"type": "array", "items": {"type": "string"}},
        "note": {"type": ["null", "string"]},
        "alt": {"anyOf": [{"type": "null"}, {"$ref": "#/definitions/Day"}]},
        "small": {"type": "integer", "connect.type": "int16"},
        "ms": {"type": "integer", "title": "org.apache.kafka.connect.data.Timestamp", "connect.type": "int64"},
        "level": {"enum": ["LOW", "HIGH"]},
        "qty": {"type": "integer", "default": 1},
    },
    "required": ["id", "name", "note", "at"],
    "definitions": {"Day": {"type": "string", "format": "date"}},
}


def json_decoder(schema: Any = JSON_SCHEMA, schema_id: int = 1) -> JsonSchemaDecoder:
    return JsonSchemaDecoder(FakeRegistry({schema_id: ("JSON", json.dumps(schema), [])}))


def json_bytes(value: Any, schema_id: int = 1) -> bytes:
    return header(schema_id) + json.dumps(value).encode()


def test_json_schema_types_values_and_nullability() -> None:
    value = {
        "id": 1,
        "price": 2.5,
        "paid": True,
        "name": "x",
        "at": "2024-01-02T03:04:05.123456Z",
        "day": "2024-02-29",
        "time": "10:11:12+02:00",
        "uid": str(UID),
        "meta": {"a": [1]},
        "tags": ["a"],
        "note": None,
        "alt": "2020-01-01",
        "small": 3,
        "ms": 1000,
        "level": "LOW",
        "undeclared": "dropped",
    }
    payload = json_decoder().decode(json_bytes(value))
    assert payload.data == {
        "id": 1,
        "price": 2.5,
        "paid": True,
        "name": "x",
        "at": dt.datetime(2024, 1, 2, 3, 4, 5, 123456, tzinfo=UTC),
        "day": dt.date(2024, 2, 29),
        "time": dt.time(8, 11, 12),
        "uid": UID,
        "meta": {"a": [1]},
        "tags": ["a"],
        "note": None,
        "alt": dt.date(2020, 1, 1),
        "small": 3,
        "ms": dt.datetime(1970, 1, 1, 0, 0, 1, tzinfo=UTC),
        "level": "LOW",
        "qty": None,
    }
    columns = {c.name: c for c in payload.shape}
    assert {n: c.type for n, c in columns.items()} == {
        "id": INT64,
        "price": FLOAT64,
        "paid": BOOLEAN,
        "name": STRING,
        "at": ColumnType(Kind.TIMESTAMP, precision=6),
        "day": ColumnType(Kind.DATE),
        "time": ColumnType(Kind.TIME, precision=6),
        "uid": ColumnType(Kind.UUID),
        "meta": JSON,
        "tags": JSON,
        "note": STRING,
        "alt": ColumnType(Kind.DATE),
        "small": ColumnType(Kind.INT16),
        "ms": ColumnType(Kind.TIMESTAMP, precision=3),
        "level": STRING,
        "qty": INT64,
    }
    assert [n for n, c in columns.items() if not c.nullable] == ["id", "name", "at"]
    assert columns["qty"].has_default and columns["qty"].default == 1
    assert payload.schema_id == 1


def test_json_schema_primitive_and_errors() -> None:
    decoder = json_decoder({"type": "string", "format": "uuid"}, 2)
    payload = decoder.decode(json_bytes(str(UID), 2))
    assert (payload.data, payload.shape) == (UID, ColumnType(Kind.UUID))
    objects = json_decoder()
    assert "invalid JSON at byte 6" in _decode_error(objects, header(1) + b"{nope")
    assert "describes an object but the payload is a list" in _decode_error(objects, json_bytes([1]))
    bad_date = {"id": 1, "name": "x", "note": None, "at": "2024-01-01T00:00:00Z", "day": "29/02/2024"}
    assert "field 'day'" in _decode_error(objects, json_bytes(bad_date))
    assert "unknown schema id 5" in _decode_error(objects, json_bytes({}, 5))
    assert "magic byte 0x7b" in _decode_error(objects, b'{"id": 1}')


# ============================================================================== the registry adapter

AVRO_ROW = record({"name": "id", "type": "long"}, {"name": "note", "type": ["null", "string"], "default": None})


def test_schema_fetched_once_per_id_over_http(private_registry: RegistryServer) -> None:
    first = private_registry.register("a-value", json.dumps(AVRO_ROW))
    second = private_registry.register("b-value", '"string"')
    decoder = make_decoder("avro", RegistrySchemaSource(private_registry.url))
    for i in range(20):
        assert decoder.decode(avro_bytes(AVRO_ROW, {"id": i, "note": None}, first)).data == {"id": i, "note": None}
    assert decoder.decode(avro_bytes("string", "k", second)).data == "k"
    assert private_registry.schema_id_fetches == 2


def test_unknown_id_over_http_is_a_decode_error_and_outages_are_retriable(private_registry: RegistryServer) -> None:
    decoder = make_decoder("avro", RegistrySchemaSource(private_registry.url))
    message = _decode_error(decoder, header(404) + b"\x00")
    assert "unknown schema id 404" in message
    schema_id = private_registry.register("a-value", json.dumps(AVRO_ROW))
    private_registry.available = False
    started = time.monotonic()
    with pytest.raises(RegistryUnavailable) as outage:
        decoder.decode(avro_bytes(AVRO_ROW, {"id": 1, "note": None}, schema_id))
    assert time.monotonic() - started < 2, "no client-side retry loop"
    assert "HTTP 503" in str(outage.value) and isinstance(outage.value, RetriableError)
    assert not isinstance(outage.value, DecodeError)
    private_registry.available = True
    assert decoder.decode(avro_bytes(AVRO_ROW, {"id": 1, "note": "x"}, schema_id)).data == {"id": 1, "note": "x"}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_connection_refused_is_registry_unavailable() -> None:
    decoder = make_decoder("avro", RegistrySchemaSource(f"http://127.0.0.1:{_free_port()}"))
    with pytest.raises(RegistryUnavailable, match="did not answer for schema id 1: ConnectError"):
        decoder.decode(header(1) + b"\x00")
    source = RegistrySchemaSource(f"http://127.0.0.1:{_free_port()}")
    with pytest.raises(RegistryUnavailable):
        source.protobuf_file(1)


def test_timeout_is_registry_unavailable() -> None:
    with socket.socket() as server:  # accepts connections (backlog) but never answers
        server.bind(("127.0.0.1", 0))
        server.listen(8)
        url = f"http://127.0.0.1:{server.getsockname()[1]}"
        source = RegistrySchemaSource(url, {"timeout": "0.3"})
        started = time.monotonic()
        with pytest.raises(RegistryUnavailable, match="Timeout"):
            source.schema(1)
        assert time.monotonic() - started < 3


def test_basic_auth_pass_through() -> None:
    with RegistryServer(basic_auth=("alice", "s3cret")) as server:
        schema_id = server.register("a-value", json.dumps(AVRO_ROW))
        data = avro_bytes(AVRO_ROW, {"id": 1, "note": None}, schema_id)
        good = RegistrySchemaSource(
            server.url, {"basic.auth.credentials.source": "USER_INFO", "basic.auth.user.info": "alice:s3cret"}
        )
        assert make_decoder("avro", good).decode(data).data == {"id": 1, "note": None}
        host = server.url.removeprefix("http://")
        in_url = RegistrySchemaSource(f"http://alice:s3cret@{host}", {"basic.auth.credentials.source": "URL"})
        assert in_url.schema(schema_id)[0] == "AVRO"
        assert in_url.url == server.url, "credentials never appear in the adapter's URL"
        wrong = RegistrySchemaSource(server.url, {"basic.auth.user.info": "alice:nope"})
        with pytest.raises(ConfigError, match="refused the credentials") as refused:
            make_decoder("avro", wrong).decode(data)
        assert "nope" not in str(refused.value)


def test_client_config_from_pass_through_properties() -> None:
    conf = client_config(
        "https://sr:8081",
        {
            "basic.auth.user.info": "u:p",
            "basic.auth.credentials.source": "USER_INFO",
            "max.retries": "2",
            "timeout": "2.5",
            "ssl.ca.location": "/ca.pem",
        },
    )
    assert conf == {
        "url": "https://sr:8081",
        "max.retries": 2,
        "timeout": 2.5,
        "basic.auth.user.info": "u:p",
        "ssl.ca.location": "/ca.pem",
    }
    assert client_config("http://sr")["max.retries"] == 0 and client_config("http://sr")["timeout"] > 0
    with pytest.raises(ConfigError, match="SINK_SCHEMA_REGISTRY__BASIC_AUTH_CREDENTIALS_SOURCE"):
        client_config("http://sr", {"basic.auth.credentials.source": "SASL_INHERIT"})
    with pytest.raises(ConfigError, match="SINK_SCHEMA_REGISTRY__BASIC_AUTH_USER_INFO: required"):
        client_config("http://sr", {"basic.auth.credentials.source": "USER_INFO"})
    with pytest.raises(ConfigError, match="SINK_SCHEMA_REGISTRY__MAX_RETRIES: must be a number"):
        client_config("http://sr", {"max.retries": "many"})
    with pytest.raises(ConfigError, match="SINK_SCHEMA_REGISTRY__NO_SUCH: not a property"):
        RegistrySchemaSource("http://sr", {"no.such": "x"})
    assert safe_url("https://u:pw@sr:8081/path,http://b") == "https://sr:8081/path,http://b"


def test_describe_and_a_url_that_is_not_a_registry(private_registry: RegistryServer) -> None:
    private_registry.register("a-value", '"string"')
    assert RegistrySchemaSource(private_registry.url).describe() == f"{private_registry.url} answers, 1 subject(s)"
    wrong = RegistrySchemaSource(private_registry.url + "/not-here")
    with pytest.raises(ConfigError, match="is it a Schema Registry URL"):
        wrong.schema(1)


def test_protobuf_file_from_the_serialized_schema_with_references(private_registry: RegistryServer) -> None:
    common = descriptor_pb2.FileDescriptorProto(name="common.proto", package="common", syntax="proto3")
    money = common.message_type.add(name="Money")
    money.field.add(name="cents", number=1, type=FD.TYPE_INT64, label=FD.LABEL_OPTIONAL)
    main = descriptor_pb2.FileDescriptorProto(
        name="main.proto",
        package="main",
        syntax="proto3",
        dependency=["common.proto", "google/protobuf/timestamp.proto"],
    )
    order = main.message_type.add(name="Order")
    order.field.add(name="total", number=1, type=FD.TYPE_MESSAGE, type_name=".common.Money", label=FD.LABEL_OPTIONAL)
    order.field.add(
        name="at", number=2, type=FD.TYPE_MESSAGE, type_name=".google.protobuf.Timestamp", label=FD.LABEL_OPTIONAL
    )

    def b64(file: descriptor_pb2.FileDescriptorProto) -> str:
        return base64.b64encode(file.SerializeToString()).decode()

    private_registry.register("common.proto", b64(common), "PROTOBUF")
    schema_id = private_registry.register(
        "orders-value", b64(main), "PROTOBUF", [{"name": "common.proto", "subject": "common.proto", "version": 1}]
    )
    source = RegistrySchemaSource(private_registry.url)
    file = source.protobuf_file(schema_id)
    assert source.protobuf_file(schema_id) is file
    Order = GetMessageClass(file.message_types_by_name["Order"])
    Money = GetMessageClass(file.pool.FindMessageTypeByName("common.Money"))
    Timestamp = GetMessageClass(file.pool.FindMessageTypeByName("google.protobuf.Timestamp"))
    data = proto_bytes(Order(total=Money(cents=150), at=Timestamp(seconds=1)), schema_id)
    payload = make_decoder("protobuf", source).decode(data)
    assert payload.data == {"total": {"cents": 150}, "at": dt.datetime(1970, 1, 1, 0, 0, 1, tzinfo=UTC)}
    assert private_registry.schema_id_fetches == 1

    text_id = private_registry.register("text-value", 'syntax = "proto3";\nmessage M { int32 a = 1; }\n', "PROTOBUF")
    message = _decode_error(make_decoder("protobuf", source), header(text_id) + b"\x00")
    assert "not a serialized FileDescriptorProto" in message
    avro_id = private_registry.register("avro-value", '"string"')
    assert "is a AVRO schema, not PROTOBUF" in _decode_error(
        make_decoder("protobuf", source), header(avro_id) + b"\x00"
    )


def test_settings_pass_through_reaches_the_client() -> None:
    from sink.config import load_settings

    settings = load_settings(
        environ={
            "SINK_BOOTSTRAP_SERVERS": "kafka:9092",
            "SINK_TOPICS": "orders",
            "SINK_DATABASE_URL": "sqlite:///x.db",
            "SINK_VALUE_FORMAT": "avro",
            "SINK_SCHEMA_REGISTRY_URL": "https://sr:8081",
            "SINK_SCHEMA_REGISTRY__BASIC_AUTH_CREDENTIALS_SOURCE": "USER_INFO",
            "SINK_SCHEMA_REGISTRY__BASIC_AUTH_USER_INFO": "alice:s3cret",
            "SINK_SCHEMA_REGISTRY__MAX_RETRIES": "1",
        }
    )
    source = RegistrySchemaSource(settings.schema_registry_url, settings.registry_config())
    rest = source.client._rest_client
    assert (rest.auth, rest.max_retries, rest.timeout) == (("alice", "s3cret"), 1, 10.0)
