"""The Avro registry format: every type to exact Python values and column types, defaults, Connect
and Debezium logical names, references through the port, and the errors that name the byte, the id
or the field. The `SchemaSource` port is a dict-backed fake.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import uuid
from decimal import Decimal
from typing import Any

import fastavro
import pytest

from sink.errors import RegistryUnavailable
from sink.formats.avro import AvroDecoder
from sink.jsonvalues import JsonDocument
from sink.model import Column, ColumnType, Coord, Decoded, Kind, Payload, RawRecord
from sink.transforms import MappingRules, RowMapper
from tests.support.fakes import FakeRegistry
from tests.support.wire import avro_bytes, decode_error, header, record

UTC = dt.UTC
INT32, INT64 = ColumnType(Kind.INT32), ColumnType(Kind.INT64)
STRING, BYTES, JSON = ColumnType(Kind.STRING), ColumnType(Kind.BYTES), ColumnType(Kind.JSON)
BOOLEAN, FLOAT32, FLOAT64 = ColumnType(Kind.BOOLEAN), ColumnType(Kind.FLOAT32), ColumnType(Kind.FLOAT64)


def avro_decoder(schema: Any, schema_id: int = 1) -> tuple[AvroDecoder, FakeRegistry]:
    registry = FakeRegistry({schema_id: ("AVRO", json.dumps(schema), [])})
    return AvroDecoder(registry), registry


def decode_avro(schema: Any, value: Any) -> Payload:
    decoder, _ = avro_decoder(schema)
    return decoder.decode(avro_bytes(schema, value))


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
        "doc": JsonDocument('{"a": [1, 2]}'),  # the document as it arrived
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
    assert "referenced schema 'test.Address' is missing" in decode_error(AvroDecoder(missing), header(7) + b"\x00")


# ------------------------------------------------------------------------------ Avro errors


def test_wrong_magic_byte_names_the_byte() -> None:
    decoder, _ = avro_decoder("string")
    message = decode_error(decoder, b"\x01\x00\x00\x00\x01\x02a")
    assert "magic byte 0x01 at byte 0" in message
    assert "magic byte 0x7b" in decode_error(decoder, b'{"plain": "json"}')


def test_short_header() -> None:
    decoder, _ = avro_decoder("string")
    assert "3 byte(s) is shorter than the Confluent wire-format header" in decode_error(decoder, b"\x00\x00\x01")
    assert "0 byte(s)" in decode_error(decoder, b"")


def test_unknown_schema_id_names_the_id() -> None:
    decoder, registry = avro_decoder("string", schema_id=1)
    message = decode_error(decoder, header(99) + b"\x02a")
    assert message.startswith("Avro: unknown schema id 99")
    assert registry.calls == [99]


def test_truncated_avro_body() -> None:
    schema = record({"name": "id", "type": "long"}, {"name": "name", "type": "string"})
    decoder, _ = avro_decoder(schema)
    data = avro_bytes(schema, {"id": 1, "name": "hello"})
    message = decode_error(decoder, data[:-2])
    assert "truncated body" in message and "schema id 1" in message
    assert "2 byte(s) left over at byte" in decode_error(decoder, data + b"\x00\x00")


def test_a_schema_of_another_type_is_a_decode_error() -> None:
    decoder = AvroDecoder(FakeRegistry({4: ("PROTOBUF", "x", [])}))
    assert "schema id 4 is a PROTOBUF schema, not AVRO" in decode_error(decoder, header(4) + b"\x00")


def test_unmappable_avro_schema_names_the_field() -> None:
    schema = record({"name": "id", "type": "long"}, {"name": "nothing", "type": "null"})
    decoder, _ = avro_decoder(schema)
    message = decode_error(decoder, avro_bytes(schema, {"id": 1, "nothing": None}))
    assert "field 'nothing': type null cannot be a column" in message
    broken = AvroDecoder(
        FakeRegistry({1: ("AVRO", '{"type": "record", "name": "X", "fields": [{"name": "a", "type": "Nope"}]}', [])})
    )
    assert "Avro schema id 1 cannot be parsed" in decode_error(broken, header(1) + b"\x00")


def test_bad_logical_value_names_the_field() -> None:
    schema = record({"name": "at", "type": {"type": "string", "connect.name": "io.debezium.time.ZonedTimestamp"}})
    decoder, _ = avro_decoder(schema)
    message = decode_error(decoder, avro_bytes(schema, {"at": "yesterday"}))
    assert "field 'at'" in message and "yesterday" in message
