"""Schema Registry formats through the real sink: confluent-kafka's serializers register schemas in
the test registry over HTTP and produce to the real broker, the worker built by `build_worker`
decodes them through the registry and writes PostgreSQL, MariaDB and SQLite; each table is read back
with SQLAlchemy and compared with what was produced.

- every Avro type and logical type lands with exact values on each database;
- v1 and v2 of a value schema interleaved in one topic evolve the table (SINK_AUTO_EVOLVE=true);
- a Protobuf topic and a JSON Schema topic land;
- Avro record keys (composite primary key) and primitive keys (a named column, `__connect_key`)
  with upserts overwriting;
- a record whose schema id the registry does not know stops the worker (tolerance none): exit
  code 1, the id in the reason, its offset not committed.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import struct
import uuid
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy as sa
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroSerializer
from confluent_kafka.schema_registry.json_schema import JSONSerializer
from confluent_kafka.schema_registry.protobuf import ProtobufSerializer, _init_pool
from confluent_kafka.serialization import MessageField, SerializationContext
from google.protobuf import descriptor_pb2, descriptor_pool
from google.protobuf.message_factory import GetMessageClass

from tests.integration.conftest import TargetDb
from tests.support.db import drop_table, fetch_rows, primary_key, table_columns
from tests.support.kafka import committed_offsets, create_topic, produce
from tests.support.runner import running_sink, sink_env

pytestmark = pytest.mark.integration

UTC = dt.UTC
FD = descriptor_pb2.FieldDescriptorProto
DATABASES = ["pg", "mariadb", "sqlite"]


@pytest.fixture(params=DATABASES)
def target(request: pytest.FixtureRequest, pg_url: str, mariadb_url: str, sqlite_url: str) -> Iterator[TargetDb]:
    """PostgreSQL, MariaDB or SQLite; drops the tables the test registered with `table()`."""
    url = {"pg": pg_url, "mariadb": mariadb_url, "sqlite": sqlite_url}[request.param]
    db = TargetDb(request.param, url)
    yield db
    for table in db.tables:
        drop_table(url, table)


def _client(url: str) -> SchemaRegistryClient:
    return SchemaRegistryClient({"url": url, "max.retries": 0})


def _avro(client: SchemaRegistryClient, schema: Any) -> AvroSerializer:
    return AvroSerializer(client, schema if isinstance(schema, str) else json.dumps(schema))


def _ctx(topic: str, field: str = MessageField.VALUE) -> SerializationContext:
    return SerializationContext(topic, field)


def _sink(
    bootstrap: str, db: TargetDb, topic: str, registry_url: str, records: list[dict[str, Any]], **settings: Any
) -> None:
    """Produce `records` to partition 0 of `topic`, run the real worker until the group committed
    all of them, then stop it."""
    produce(bootstrap, topic, records)
    env = sink_env(bootstrap, db.url, topic, topic, schema_registry_url=registry_url, **settings)
    with running_sink(env) as sink:
        sink.wait_committed(topic, {0: len(records)})


AVRO_UPSERT_BY_ID = {"value_format": "avro", "insert_mode": "upsert", "pk_mode": "record_value", "pk_fields": "id"}
AVRO_UPSERT_BY_KEY = {"key_format": "avro", "value_format": "avro", "insert_mode": "upsert", "pk_mode": "record_key"}


def _read_back(value: Any, expected: Any, kind: str, column: str, is_json: bool = False) -> Any:
    """The database's value in the terms of what was produced (docs/types.md says what to expect):
    instants naive UTC on MariaDB and SQLite, decimals as text on SQLite, JSON as text outside
    PostgreSQL, UUIDs as text outside PostgreSQL, TIME as a timedelta from PyMySQL."""
    if value is None or expected is None:
        return value
    where = f"{kind}: column {column!r}"
    if is_json and kind != "pg":  # a JSON document of any JSON value, as text
        assert isinstance(value, str), f"{where}: JSON reads back as text, got {value!r}"
        return json.loads(value)
    if isinstance(expected, bool):
        assert value in (0, 1), where
        return bool(value)
    if isinstance(expected, Decimal):
        if kind == "sqlite":
            assert isinstance(value, str), f"{where}: a decimal is kept as its exact text, got {value!r}"
        else:
            assert isinstance(value, Decimal), f"{where}: a decimal reads back as Decimal, got {value!r}"
        return Decimal(value)
    if isinstance(expected, float):
        return float(value)  # MariaDB's reflected DOUBLE reads as Decimal; the stored value is the double
    if isinstance(expected, dt.datetime):
        assert isinstance(value, dt.datetime), where
        if expected.tzinfo is None:
            assert value.tzinfo is None, f"{where}: a local timestamp reads back naive"
            return value
        if value.tzinfo is None:
            assert kind != "pg", f"{where}: PostgreSQL keeps instants as timestamptz"
            return value.replace(tzinfo=UTC)  # naive UTC
        return value
    if isinstance(expected, dt.time) and isinstance(value, dt.timedelta):
        return (dt.datetime.min + value).time()
    if isinstance(expected, uuid.UUID):
        return uuid.UUID(str(value))
    if isinstance(expected, bytes):
        return bytes(value)
    if isinstance(expected, (dict, list)):
        if kind == "pg":
            assert not isinstance(value, str), f"{where}: JSONB and arrays read back parsed"
            return value
        return json.loads(value) if isinstance(value, (str, bytes)) else value
    return value


def _compare(
    db: TargetDb, table: str, order_by: str | list[str], expected: list[dict[str, Any]], json_columns: tuple = ()
) -> None:
    """The whole table equals `expected` (rows in `order_by` order); `json_columns` hold JSON documents."""
    rows = fetch_rows(db.url, table, order_by=order_by)
    assert len(rows) == len(expected), rows
    for row, want in zip(rows, expected, strict=True):
        assert set(row) == set(want), set(row) ^ set(want)
        got = {name: _read_back(row[name], want[name], db.kind, name, name in json_columns) for name in want}
        for name in want:
            assert got[name] == want[name], f"{db.kind}: row {want.get('id')}, column {name!r}: {row[name]!r}"


# ------------------------------------------------------------------------------ every Avro type

MONEY = {"type": "fixed", "name": "Money", "size": 8, "logicalType": "decimal", "precision": 18, "scale": 2}
ALL_TYPES = {
    "type": "record",
    "name": "AllTypes",
    "namespace": "test.registry",
    "fields": [
        {"name": "id", "type": "long"},
        {"name": "i", "type": "int"},
        {"name": "l", "type": "long"},
        {"name": "f", "type": "float"},
        {"name": "d", "type": "double"},
        {"name": "b", "type": "boolean"},
        {"name": "s", "type": "string"},
        {"name": "color", "type": {"type": "enum", "name": "Color", "symbols": ["RED", "GREEN", "BLUE"]}},
        {"name": "raw", "type": "bytes"},
        {"name": "four", "type": {"type": "fixed", "name": "Four", "size": 4}},
        {"name": "dec_bytes", "type": {"type": "bytes", "logicalType": "decimal", "precision": 30, "scale": 10}},
        {"name": "dec_fixed", "type": MONEY},
        {"name": "day", "type": {"type": "int", "logicalType": "date"}},
        {"name": "t_ms", "type": {"type": "int", "logicalType": "time-millis"}},
        {"name": "t_us", "type": {"type": "long", "logicalType": "time-micros"}},
        {"name": "ts_ms", "type": {"type": "long", "logicalType": "timestamp-millis"}},
        {"name": "ts_us", "type": {"type": "long", "logicalType": "timestamp-micros"}},
        {"name": "lts_ms", "type": {"type": "long", "logicalType": "local-timestamp-millis"}},
        {"name": "lts_us", "type": {"type": "long", "logicalType": "local-timestamp-micros"}},
        {"name": "ref", "type": {"type": "string", "logicalType": "uuid"}},
        {
            "name": "address",
            "type": {
                "type": "record",
                "name": "Address",
                "fields": [
                    {"name": "street", "type": "string"},
                    {"name": "zip", "type": "int"},
                    {"name": "geo", "type": ["null", {"type": "array", "items": "double"}], "default": None},
                ],
            },
        },
        {"name": "attrs", "type": {"type": "map", "values": "long"}},
        {"name": "nums", "type": {"type": "array", "items": "long"}},
        {"name": "note", "type": ["null", "string"], "default": None},
        {"name": "either", "type": ["null", "string", "long"], "default": None},  # several types: JSON
        {"name": "qty", "type": "int", "default": 1},
        {"name": "label", "type": "string", "default": "it's"},
        {
            "name": "fee",
            "type": {"type": "bytes", "logicalType": "decimal", "precision": 6, "scale": 2},
            "default": "\u0000\u00c8",
        },
        {"name": "since", "type": {"type": "long", "logicalType": "timestamp-millis"}, "default": 1000},
        {"name": "shade", "type": "test.registry.Color", "default": "BLUE"},
        {"name": "flags", "type": {"type": "array", "items": "string"}, "default": ["x"]},
        {"name": "meta", "type": {"type": "map", "values": "string"}, "default": {"k": "v"}},
        {"name": "token", "type": "bytes", "default": "\u00ff"},
        {"name": "when", "type": {"type": "int", "logicalType": "date"}, "default": 1},
        {"name": "ratio", "type": ["double", "null"], "default": 0.5},
    ],
}
DEFAULTS = {
    "qty": 1,
    "label": "it's",
    "fee": Decimal("2.00"),
    "since": dt.datetime(1970, 1, 1, 0, 0, 1, tzinfo=UTC),
    "shade": "BLUE",
    "flags": ["x"],
    "meta": {"k": "v"},
    "token": b"\xff",
    "when": dt.date(1970, 1, 2),
    "ratio": 0.5,
}
IST = dt.timezone(dt.timedelta(hours=5, minutes=30))


def _all_types_records() -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """(value produced, row expected) pairs; the expected row is the value, defaults filled in."""
    first = {
        "id": 1,
        "i": 42,
        "l": 9_007_199_254_740_993,  # 2**53 + 1: not a double
        "f": 3.25,
        "d": 0.1,
        "b": True,
        "s": "Über ✓ 'quoted' \"double\"",
        "color": "GREEN",
        "raw": b"\x00\xff\x10\x80",
        "four": b"\xde\xad\xbe\xef",
        "dec_bytes": Decimal("12345678901234567890.1234567890"),
        "dec_fixed": Decimal("1234567890123456.78"),
        "day": dt.date(2024, 2, 29),
        "t_ms": dt.time(23, 59, 59, 999000),
        "t_us": dt.time(12, 34, 56, 789012),
        "ts_ms": dt.datetime(2024, 5, 1, 17, 30, 0, 123000, tzinfo=IST),  # 12:00:00.123 UTC
        "ts_us": dt.datetime(2024, 5, 1, 12, 0, 0, 123456, tzinfo=UTC),
        "lts_ms": dt.datetime(2024, 5, 1, 12, 0, 0, 999000),
        "lts_us": dt.datetime(2024, 5, 1, 12, 0, 0, 654321),
        "ref": uuid.UUID("0f0e0d0c-0b0a-0908-0706-050403020100"),
        "address": {"street": "Main St 1", "zip": 1234, "geo": [1.5, -2.25]},
        "attrs": {"a": 1, "b": -(2**40)},
        "nums": [1, -2, 2**62],
        "note": "gift",
        "either": "x",
        "qty": 7,
        "label": "set",
        "fee": Decimal("-0.01"),
        "since": dt.datetime(2000, 1, 1, tzinfo=UTC),
        "shade": "RED",
        "flags": [],
        "meta": {},
        "token": b"",
        "when": dt.date(2000, 1, 1),
        "ratio": None,
    }
    second = {
        "id": 2,
        "i": -(2**31),
        "l": 2**63 - 1,
        "f": -0.5,
        "d": -1.5e300,
        "b": False,
        "s": "",
        "color": "RED",
        "raw": b"",
        "four": b"\x00\x00\x00\x00",
        "dec_bytes": Decimal("-0.0000000001"),
        "dec_fixed": Decimal("-9999999999999999.99"),
        "day": dt.date(1969, 7, 20),
        "t_ms": dt.time(0, 0),
        "t_us": dt.time(0, 0, 0, 1),
        "ts_ms": dt.datetime(1969, 12, 31, 23, 59, 59, 999000, tzinfo=UTC),
        "ts_us": dt.datetime(1970, 1, 1, tzinfo=UTC),
        "lts_ms": dt.datetime(1969, 12, 31, 23, 59, 59, 1000),
        "lts_us": dt.datetime(2100, 1, 1, 0, 0, 0, 1),
        "ref": uuid.UUID("ffffffff-ffff-4fff-bfff-ffffffffffff"),
        "address": {"street": "", "zip": -1, "geo": None},
        "attrs": {},
        "nums": [],
        "note": None,
        "either": 2**40,
        "fee": Decimal("2.00"),  # fastavro cannot write the defaults of bytes fields itself
        "token": b"\xff",
    }  # no qty, label...: the serializer writes the fields' defaults
    return [(first, first), (second, {**second, **DEFAULTS})]


def test_every_avro_type_lands_exactly(
    bootstrap_servers: str, registry_url: str, target: TargetDb, unique_name: str
) -> None:
    topic = table = target.table(unique_name)
    create_topic(bootstrap_servers, topic)
    serialize = _avro(_client(registry_url), ALL_TYPES)
    records = _all_types_records()
    produced = [{"value": serialize(value, _ctx(topic))} for value, _ in records]
    _sink(bootstrap_servers, target, topic, registry_url, produced, **AVRO_UPSERT_BY_ID)

    json_columns = ("address", "attrs", "either", "meta")
    _compare(target, table, "id", [expected for _, expected in records], json_columns)
    columns = table_columns(target.url, table)
    assert list(columns) == [f["name"] for f in ALL_TYPES["fields"]], "schema order"
    assert primary_key(target.url, table) == ["id"]
    assert columns["note"]["nullable"]
    nullable = {"note", "either", "ratio"}
    assert not any(columns[f["name"]]["nullable"] for f in ALL_TYPES["fields"] if f["name"] not in nullable)
    assert str(columns["qty"]["default"]).strip("'()") == "1", columns["qty"]
    if target.kind == "pg":
        assert isinstance(columns["nums"]["type"], sa.ARRAY), "arrays of primitives are native on PostgreSQL"
        assert isinstance(fetch_rows(target.url, table, "id")[0]["nums"], list)

    # the fields' defaults are the columns' DEFAULTs: a row inserted without them gets them
    without_defaults = {name: value for name, value in records[0][1].items() if name not in DEFAULTS}
    _insert(target, table, {**without_defaults, "id": 3}, json_columns)
    row = next(r for r in fetch_rows(target.url, table, "id") if r["id"] == 3)
    assert {name: _read_back(row[name], want, target.kind, name) for name, want in DEFAULTS.items()} == DEFAULTS


def _insert(db: TargetDb, table: str, values: dict[str, Any], json_columns: tuple = ()) -> None:
    """Insert one row by hand through the reflected table, in each database's own terms."""
    if db.kind != "pg":
        values = {k: _stored(v, k in json_columns) for k, v in values.items()}
    engine = sa.create_engine(db.url, poolclass=sa.pool.NullPool)
    try:
        with engine.begin() as conn:
            conn.execute(sa.Table(table, sa.MetaData(), autoload_with=conn).insert().values(**values))
    finally:
        engine.dispose()


def _stored(value: Any, is_json: bool) -> Any:
    """MariaDB and SQLite: JSON, UUIDs and (SQLite) decimals as text, instants as naive UTC."""
    if is_json or isinstance(value, (dict, list)):
        return json.dumps(value)
    if isinstance(value, (uuid.UUID, Decimal)):
        return str(value)
    if isinstance(value, dt.datetime) and value.tzinfo is not None:
        return value.astimezone(UTC).replace(tzinfo=None)
    return value


# ------------------------------------------------------------------------------ evolution

CUSTOMER_V1 = {
    "type": "record",
    "name": "Customer",
    "namespace": "test.evolve",
    "fields": [{"name": "id", "type": "long"}, {"name": "name", "type": "string"}],
}
CUSTOMER_V2 = {
    **CUSTOMER_V1,
    "fields": [*CUSTOMER_V1["fields"], {"name": "email", "type": ["null", "string"], "default": None}],
}


def test_v1_and_v2_interleaved_evolve_the_table(
    bootstrap_servers: str, registry_url: str, target: TargetDb, unique_name: str
) -> None:
    topic = table = target.table(unique_name)
    create_topic(bootstrap_servers, topic)
    client = _client(registry_url)
    v1, v2 = _avro(client, CUSTOMER_V1), _avro(client, CUSTOMER_V2)
    records, expected = [], []
    for n in range(10):
        if n % 2 == 0:
            value = {"id": n, "name": f"v1-{n}"}
            records.append({"value": v1(value, _ctx(topic))})
            expected.append({**value, "email": None})
        else:
            value = {"id": n, "name": f"v2-{n}", "email": f"c{n}@example.com"}
            records.append({"value": v2(value, _ctx(topic))})
            expected.append(value)
    assert records[0]["value"][1:5] != records[1]["value"][1:5], "two schema ids"
    _sink(bootstrap_servers, target, topic, registry_url, records, **AVRO_UPSERT_BY_ID, auto_evolve="true")
    _compare(target, table, "id", expected)
    columns = table_columns(target.url, table)
    assert list(columns) == ["id", "name", "email"]
    assert columns["email"]["nullable"]


# ------------------------------------------------------------------------------ Protobuf and JSON Schema


def _protobuf_classes() -> tuple[Any, Any]:
    """Order and Key message classes of a proto3 file built at run time (no protoc here)."""
    file = descriptor_pb2.FileDescriptorProto(
        name="sinktest/order.proto",
        package="sinktest",
        syntax="proto3",
        dependency=["google/protobuf/timestamp.proto", "google/protobuf/wrappers.proto"],
    )
    status = file.enum_type.add(name="Status")
    status.value.add(name="NEW", number=0)
    status.value.add(name="PAID", number=1)
    order = file.message_type.add(name="Order")
    order.oneof_decl.add(name="_coupon")
    line = order.nested_type.add(name="Line")
    line.field.add(name="sku", number=1, type=FD.TYPE_STRING, label=FD.LABEL_OPTIONAL)
    line.field.add(name="n", number=2, type=FD.TYPE_INT32, label=FD.LABEL_OPTIONAL)
    entry = order.nested_type.add(name="AttrsEntry")
    entry.options.map_entry = True
    entry.field.add(name="key", number=1, type=FD.TYPE_STRING, label=FD.LABEL_OPTIONAL)
    entry.field.add(name="value", number=2, type=FD.TYPE_INT64, label=FD.LABEL_OPTIONAL)
    add = order.field.add
    add(name="id", number=1, type=FD.TYPE_INT64, label=FD.LABEL_OPTIONAL)
    add(name="status", number=2, type=FD.TYPE_ENUM, type_name=".sinktest.Status", label=FD.LABEL_OPTIONAL)
    add(name="tags", number=3, type=FD.TYPE_STRING, label=FD.LABEL_REPEATED)
    add(name="placed", number=4, type=FD.TYPE_MESSAGE, type_name=".google.protobuf.Timestamp", label=FD.LABEL_OPTIONAL)
    add(
        name="discount",
        number=5,
        type=FD.TYPE_MESSAGE,
        type_name=".google.protobuf.Int32Value",
        label=FD.LABEL_OPTIONAL,
    )
    add(name="coupon", number=6, type=FD.TYPE_STRING, label=FD.LABEL_OPTIONAL, proto3_optional=True, oneof_index=0)
    add(name="total", number=7, type=FD.TYPE_UINT64, label=FD.LABEL_OPTIONAL)
    add(name="price", number=8, type=FD.TYPE_DOUBLE, label=FD.LABEL_OPTIONAL)
    add(name="paid", number=9, type=FD.TYPE_BOOL, label=FD.LABEL_OPTIONAL)
    add(name="blob", number=10, type=FD.TYPE_BYTES, label=FD.LABEL_OPTIONAL)
    add(name="line", number=11, type=FD.TYPE_MESSAGE, type_name=".sinktest.Order.Line", label=FD.LABEL_OPTIONAL)
    add(name="attrs", number=12, type=FD.TYPE_MESSAGE, type_name=".sinktest.Order.AttrsEntry", label=FD.LABEL_REPEATED)
    key = file.message_type.add(name="Key")
    key.field.add(name="id", number=1, type=FD.TYPE_INT64, label=FD.LABEL_OPTIONAL)
    pool = descriptor_pool.DescriptorPool()
    _init_pool(pool)
    pool.Add(file)
    return (
        GetMessageClass(pool.FindMessageTypeByName("sinktest.Order")),
        GetMessageClass(pool.FindMessageTypeByName("sinktest.Key")),
    )


def test_protobuf_topic_lands(bootstrap_servers: str, registry_url: str, target: TargetDb, unique_name: str) -> None:
    topic = table = target.table(unique_name)
    create_topic(bootstrap_servers, topic)
    Order, Key = _protobuf_classes()
    client = _client(registry_url)
    values, keys = ProtobufSerializer(Order, client), ProtobufSerializer(Key, client)
    placed = dt.datetime(1969, 12, 31, 23, 59, 59, 250000, tzinfo=UTC)
    full = Order(id=3, status=1, tags=["a", "b"], coupon="SAVE", total=2**64 - 1, price=9.75, paid=True)
    full.placed.FromDatetime(placed)
    full.discount.value = 0  # a wrapper set to zero is not null
    full.blob = b"\x00\x01"
    full.line.sku = "sku-1"
    full.line.n = 3
    full.attrs["x"] = 2**40
    first = Order()
    first.CopyFrom(full)
    first.id = 1
    upsert = Order(id=1, status=1, tags=["c"], coupon="AGAIN", total=5, price=-1.0)
    upsert.placed.FromDatetime(placed)
    records = [(Key(id=1), first), (Key(id=2), Order(id=2)), (Key(id=3), full), (Key(id=1), upsert)]
    _sink(
        bootstrap_servers,
        target,
        topic,
        registry_url,
        [{"key": keys(k, _ctx(topic, MessageField.KEY)), "value": values(v, _ctx(topic))} for k, v in records],
        key_format="protobuf",
        value_format="protobuf",
        insert_mode="upsert",
        pk_mode="record_key",
    )
    unset = {"discount": None, "coupon": None, "paid": False, "blob": b"", "line": None, "attrs": {}}
    expected = [
        {
            "id": 1,
            "status": "PAID",
            "tags": ["c"],
            "placed": placed,
            "total": Decimal(5),
            "price": -1.0,
            **unset,
            "coupon": "AGAIN",
        },
        {"id": 2, "status": "NEW", "tags": [], "placed": None, "total": Decimal(0), "price": 0.0, **unset},
        {
            "id": 3,
            "status": "PAID",
            "tags": ["a", "b"],
            "placed": placed,
            "discount": 0,
            "coupon": "SAVE",
            "total": Decimal(2**64 - 1),
            "price": 9.75,
            "paid": True,
            "blob": b"\x00\x01",
            "line": {"sku": "sku-1", "n": 3},
            "attrs": {"x": 2**40},
        },
    ]
    _compare(target, table, "id", expected)
    assert primary_key(target.url, table) == ["id"]
    columns = table_columns(target.url, table)
    assert columns["discount"]["nullable"] and not columns["status"]["nullable"]
    if target.kind == "pg":
        assert isinstance(columns["tags"]["type"], sa.ARRAY), "repeated primitives are native arrays"


CUSTOMER_JSON_SCHEMA = {
    "$schema": "http://json-schema.org/draft-07/schema#",
    "title": "Customer",
    "type": "object",
    "properties": {
        "id": {"type": "integer"},
        "email": {"type": "string"},
        "born": {"type": "string", "format": "date"},
        "seen": {"type": "string", "format": "date-time"},
        "ref": {"type": "string", "format": "uuid"},
        "score": {"type": ["null", "number"]},
        "vip": {"type": "boolean"},
        "prefs": {"type": "object"},
        "tags": {"type": "array", "items": {"type": "string"}},
    },
    "required": ["id", "email"],
}


def test_json_schema_topic_lands(bootstrap_servers: str, registry_url: str, target: TargetDb, unique_name: str) -> None:
    topic = table = target.table(unique_name)
    create_topic(bootstrap_servers, topic)
    serialize = JSONSerializer(json.dumps(CUSTOMER_JSON_SCHEMA), _client(registry_url))
    ref = uuid.UUID("8c6b0c1e-1d7e-4f45-9a2e-3a0d1f2b3c4d")
    full = {
        "id": 1,
        "email": "a@example.com",
        "born": "1990-12-31",
        "seen": "2024-01-01T10:00:00.250+01:00",
        "ref": str(ref),
        "score": 1.5,
        "vip": True,
        "prefs": {"tz": "CET", "n": [1, 2]},
        "tags": ["x", "y"],
    }
    values = [full, {"id": 2, "email": "b@example.com"}, {**full, "id": 3, "email": "c@example.com", "vip": False}]
    _sink(
        bootstrap_servers,
        target,
        topic,
        registry_url,
        [{"key": str(v["id"]), "value": serialize(v, _ctx(topic))} for v in values],
        key_format="string",
        value_format="json_schema",
        insert_mode="upsert",
        pk_mode="record_value",
        pk_fields="id",
    )
    landed = {
        "born": dt.date(1990, 12, 31),
        "seen": dt.datetime(2024, 1, 1, 9, 0, 0, 250000, tzinfo=UTC),
        "ref": ref,
        "score": 1.5,
        "prefs": {"tz": "CET", "n": [1, 2]},
        "tags": ["x", "y"],
    }
    nothing = dict.fromkeys(["born", "seen", "ref", "score", "vip", "prefs", "tags"])
    expected = [
        {"id": 1, "email": "a@example.com", "vip": True, **landed},
        {"id": 2, "email": "b@example.com", **nothing},
        {"id": 3, "email": "c@example.com", "vip": False, **landed},
    ]
    _compare(target, table, "id", expected)
    columns = table_columns(target.url, table)
    assert list(columns) == list(CUSTOMER_JSON_SCHEMA["properties"])
    assert not columns["email"]["nullable"] and columns["score"]["nullable"]


# ------------------------------------------------------------------------------ keys

ORDER_KEY = {
    "type": "record",
    "name": "OrderKey",
    "namespace": "test.keys",
    "fields": [{"name": "tenant", "type": "string"}, {"name": "id", "type": "long"}],
}
ORDER_VALUE = {
    "type": "record",
    "name": "OrderValue",
    "namespace": "test.keys",
    "fields": [
        {"name": "item", "type": "string"},
        {"name": "amount", "type": {"type": "bytes", "logicalType": "decimal", "precision": 10, "scale": 2}},
    ],
}


def test_avro_record_key_fields_are_a_composite_primary_key(
    bootstrap_servers: str, registry_url: str, target: TargetDb, unique_name: str
) -> None:
    topic = table = target.table(unique_name)
    create_topic(bootstrap_servers, topic)
    client = _client(registry_url)
    keys, values = _avro(client, ORDER_KEY), _avro(client, ORDER_VALUE)
    produced = [
        (("eu", 1), ("book", "10.00")),
        (("us", 1), ("pen", "1.50")),
        (("eu", 2), ("ink", "3.25")),
        (("eu", 1), ("book", "12.99")),  # overwrites (eu, 1)
        (("us", 1), ("pencil", "0.99")),  # overwrites (us, 1)
    ]
    records = [
        {
            "key": keys({"tenant": tenant, "id": id_}, _ctx(topic, MessageField.KEY)),
            "value": values({"item": item, "amount": Decimal(amount)}, _ctx(topic)),
        }
        for (tenant, id_), (item, amount) in produced
    ]
    _sink(bootstrap_servers, target, topic, registry_url, records, **AVRO_UPSERT_BY_KEY)
    state: dict[tuple[str, int], dict[str, Any]] = {}
    for (tenant, id_), (item, amount) in produced:
        state[tenant, id_] = {"tenant": tenant, "id": id_, "item": item, "amount": Decimal(amount)}
    _compare(target, table, ["tenant", "id"], [state[k] for k in sorted(state)])
    assert primary_key(target.url, table) == ["tenant", "id"]
    assert list(table_columns(target.url, table)) == ["tenant", "id", "item", "amount"]


@pytest.mark.parametrize(
    ("key_schema", "keys", "pk_fields", "column"),
    [
        ("string", ["A", "B", "A", "long key " + "x" * 200, "B"], "code", "code"),
        ("long", [1, -(2**63), 1, 2**63 - 1, 1], None, "__connect_key"),
    ],
    ids=["string_key_named", "long_key_default_name"],
)
def test_avro_primitive_key_is_one_key_column(
    bootstrap_servers: str,
    registry_url: str,
    target: TargetDb,
    unique_name: str,
    key_schema: str,
    keys: list[Any],
    pk_fields: str | None,
    column: str,
) -> None:
    topic = table = target.table(unique_name)
    create_topic(bootstrap_servers, topic)
    client = _client(registry_url)
    key_serializer, values = _avro(client, json.dumps(key_schema)), _avro(client, ORDER_VALUE)
    records, state = [], {}
    for n, key in enumerate(keys):
        value = {"item": f"item-{n}", "amount": Decimal(n) / 4}
        records.append({"key": key_serializer(key, _ctx(topic, MessageField.KEY)), "value": values(value, _ctx(topic))})
        state[key] = {column: key, **value}
    extra = {"pk_fields": pk_fields} if pk_fields else {}
    _sink(bootstrap_servers, target, topic, registry_url, records, **AVRO_UPSERT_BY_KEY, **extra)
    _compare(target, table, column, [state[k] for k in sorted(state)])
    assert primary_key(target.url, table) == [column]
    assert list(table_columns(target.url, table)) == [column, "item", "amount"]


# ------------------------------------------------------------------------------ an undecodable record

UNKNOWN_ID = 0x7FFF_FF00


@pytest.mark.parametrize("field", ["value", "key"])
def test_unknown_schema_id_stops_the_worker_without_committing_it(
    bootstrap_servers: str,
    registry_url: str,
    pg_url: str,
    unique_name: str,
    caplog: pytest.LogCaptureFixture,
    field: str,
) -> None:
    db = TargetDb("pg", pg_url)
    topic = table = db.table(unique_name)
    try:
        create_topic(bootstrap_servers, topic)
        client = _client(registry_url)
        keys, values = _avro(client, '"long"'), _avro(client, CUSTOMER_V1)
        records = [
            {
                "key": keys(n, _ctx(topic, MessageField.KEY)),
                "value": values({"id": n, "name": f"n{n}"}, _ctx(topic)),
            }
            for n in range(3)
        ]
        good = records[1][field]
        records[1][field] = b"\x00" + struct.pack(">I", UNKNOWN_ID) + good[5:]  # a well-formed body
        produce(bootstrap_servers, topic, records)
        env = sink_env(
            bootstrap_servers,
            db.url,
            topic,
            unique_name,
            key_format="avro",
            value_format="avro",
            schema_registry_url=registry_url,
            insert_mode="upsert",
            pk_mode="record_key",
            pk_fields="key_id",
        )
        with caplog.at_level(logging.ERROR, logger="sink"), running_sink(env, expect_exit=1) as sink:
            sink.thread.join(60)
            assert not sink.thread.is_alive(), "the worker did not stop at the undecodable record"
            assert sink.exit_code == 1
        stop = [r.getMessage() for r in caplog.records if "SINK_ERRORS_TOLERANCE=none" in r.getMessage()]
        assert stop, caplog.text
        assert f"record {topic}/0@1 failed at {field.upper()}_CONVERTER" in stop[0], stop[0]
        assert f"schema id {UNKNOWN_ID}" in stop[0], stop[0]
        assert committed_offsets(bootstrap_servers, unique_name, topic) == {0: 1}, "offset 1 is not committed"
        rows = fetch_rows(db.url, table, "key_id")
        assert [(r["key_id"], r["name"]) for r in rows] == [(0, "n0")], "the record before it landed, none after"
    finally:
        drop_table(db.url, table)
