"""Registry formats end to end below the worker: confluent-kafka serializers produce to the real
broker, the sink's decoders read the records back through `RegistrySchemaSource` over real HTTP to
the test registry, and the Preparer turns them into rows."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from decimal import Decimal
from typing import Any

import pytest
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroSerializer
from confluent_kafka.schema_registry.json_schema import JSONSerializer
from confluent_kafka.schema_registry.protobuf import ProtobufSerializer, _init_pool
from confluent_kafka.serialization import MessageField, SerializationContext
from google.protobuf import descriptor_pb2, descriptor_pool
from google.protobuf.message_factory import GetMessageClass

from sink.adapters.registry import RegistrySchemaSource
from sink.errors import DecodeError, RegistryUnavailable
from sink.formats import make_decoder
from sink.model import ColumnType, Coord, Kind, Op, RawRecord, Row
from sink.pipeline import Preparer
from sink.transforms import MappingRules, RowMapper
from tests.support.kafka import Message, consume_all, create_topic, produce
from tests.support.registry import RegistryServer

pytestmark = pytest.mark.integration

UTC = dt.UTC
FD = descriptor_pb2.FieldDescriptorProto


def _client(url: str) -> SchemaRegistryClient:
    return SchemaRegistryClient({"url": url, "max.retries": 0})


def _raw(message: Message) -> RawRecord:
    return RawRecord(
        Coord(message.topic, message.partition, message.offset),
        message.key,
        message.value,
        tuple(message.headers),
        message.timestamp,
    )


def _produce_and_read(bootstrap: str, topic: str, records: list[dict[str, Any]]) -> list[RawRecord]:
    create_topic(bootstrap, topic)
    produce(bootstrap, topic, records)
    return [_raw(m) for m in consume_all(bootstrap, topic, expected=len(records))]


def _preparer(key_format: str, value_format: str, url: str, **rules: Any) -> Preparer:
    source = RegistrySchemaSource(url)
    return Preparer(
        make_decoder(key_format, source), make_decoder(value_format, source), RowMapper(MappingRules(**rules))
    )


ORDER_V1 = {
    "type": "record",
    "name": "Order",
    "namespace": "shop",
    "fields": [
        {"name": "id", "type": "long"},
        {"name": "amount", "type": {"type": "bytes", "logicalType": "decimal", "precision": 10, "scale": 2}},
        {"name": "placed", "type": {"type": "long", "logicalType": "timestamp-micros"}},
        {"name": "updated", "type": {"type": "long", "connect.name": "io.debezium.time.MicroTimestamp"}},
        {"name": "ref", "type": {"type": "string", "logicalType": "uuid"}},
        {"name": "note", "type": ["null", "string"], "default": None},
    ],
}
ORDER_V2 = {**ORDER_V1, "fields": [*ORDER_V1["fields"], {"name": "qty", "type": "int", "default": 1}]}
REF = uuid.UUID("0f0e0d0c-0b0a-0908-0706-050403020100")


def test_avro_records_through_the_broker_and_registry(
    bootstrap_servers: str, private_registry: RegistryServer, unique_name: str
) -> None:
    client = _client(private_registry.url)
    key_ctx = SerializationContext(unique_name, MessageField.KEY)
    value_ctx = SerializationContext(unique_name, MessageField.VALUE)
    keys = AvroSerializer(client, '"string"')
    v1 = AvroSerializer(client, json.dumps(ORDER_V1))
    v2 = AvroSerializer(client, json.dumps(ORDER_V2))
    placed = dt.datetime(2024, 5, 1, 12, 0, 0, 123456, tzinfo=UTC)
    order = {"id": 1, "amount": Decimal("19.99"), "placed": placed, "updated": 1_000_000, "ref": REF, "note": None}
    records = [
        {"key": keys("o-1", key_ctx), "value": v1(order, value_ctx)},
        {"key": keys("o-2", key_ctx), "value": v1({**order, "id": 2, "note": "gift"}, value_ctx)},
        {"key": keys("o-3", key_ctx), "value": v2({**order, "id": 3, "qty": 4}, value_ctx)},
        {"key": keys("o-1", key_ctx), "value": None},
    ]
    raws = _produce_and_read(bootstrap_servers, unique_name, records)
    fetches_before = private_registry.schema_id_fetches
    preparer = _preparer("avro", "avro", private_registry.url, pk_mode="record_key", delete_enabled=True)
    rows = [preparer.prepare(raw) for raw in raws]
    assert all(isinstance(row, Row) for row in rows)
    assert [row.op for row in rows] == [Op.UPSERT, Op.UPSERT, Op.UPSERT, Op.DELETE]
    assert [row.key for row in rows] == [{"__connect_key": k} for k in ("o-1", "o-2", "o-3", "o-1")]
    assert rows[0].values == {
        "__connect_key": "o-1",
        "id": 1,
        "amount": Decimal("19.99"),
        "placed": placed,
        "updated": dt.datetime(1970, 1, 1, 0, 0, 1),
        "ref": REF,
        "note": None,
    }
    assert rows[1].values["note"] == "gift"
    assert rows[2].values["qty"] == 4
    spec = rows[0].spec
    assert spec.primary_key == ("__connect_key",)
    assert spec.column("amount").type == ColumnType(Kind.DECIMAL, precision=10, scale=2)
    assert spec.column("placed").type == ColumnType(Kind.TIMESTAMP, precision=6)
    assert spec.column("note").nullable and not spec.column("id").nullable
    assert rows[0].schema_id == rows[1].schema_id != rows[2].schema_id, "a new schema version splits batches"
    assert rows[2].spec.column("qty").default == 1
    assert private_registry.schema_id_fetches - fetches_before == 3, "key, v1 and v2: each fetched once"

    private_registry.available = False  # an outage is retriable, never a bad record
    with pytest.raises(RegistryUnavailable):
        _preparer("avro", "avro", private_registry.url, pk_mode="record_key").prepare(raws[0])
    private_registry.available = True


def test_avro_record_key_fields_become_the_primary_key(
    bootstrap_servers: str, registry_url: str, unique_name: str
) -> None:
    client = _client(registry_url)
    key_schema = {
        "type": "record",
        "name": "OrderKey",
        "namespace": "shop",
        "fields": [{"name": "tenant", "type": "string"}, {"name": "id", "type": "long"}],
    }
    key = AvroSerializer(client, json.dumps(key_schema))(
        {"tenant": "eu", "id": 7}, SerializationContext(unique_name, MessageField.KEY)
    )
    value = AvroSerializer(client, json.dumps(ORDER_V1))(
        {"id": 7, "amount": Decimal("1.00"), "placed": 0, "updated": 0, "ref": str(REF), "note": None},
        SerializationContext(unique_name, MessageField.VALUE),
    )
    (raw,) = _produce_and_read(bootstrap_servers, unique_name, [{"key": key, "value": value}])
    row = _preparer("avro", "avro", registry_url, pk_mode="record_key").prepare(raw)
    assert isinstance(row, Row)
    assert row.key == {"tenant": "eu", "id": 7}
    assert row.spec.primary_key == ("tenant", "id")
    assert row.spec.column("tenant").type == ColumnType(Kind.STRING, length=255)


def _shop_classes() -> tuple[Any, Any]:
    """Order and Key message classes of a proto3 file built at run time (no protoc here)."""
    file = descriptor_pb2.FileDescriptorProto(
        name="shop/order.proto",
        package="shop",
        syntax="proto3",
        dependency=["google/protobuf/timestamp.proto", "google/protobuf/wrappers.proto"],
    )
    status = file.enum_type.add(name="Status")
    status.value.add(name="NEW", number=0)
    status.value.add(name="PAID", number=1)
    order = file.message_type.add(name="Order")
    order.oneof_decl.add(name="_coupon")
    order.field.add(name="id", number=1, type=FD.TYPE_INT64, label=FD.LABEL_OPTIONAL)
    order.field.add(name="status", number=2, type=FD.TYPE_ENUM, type_name=".shop.Status", label=FD.LABEL_OPTIONAL)
    order.field.add(name="tags", number=3, type=FD.TYPE_STRING, label=FD.LABEL_REPEATED)
    order.field.add(
        name="placed", number=4, type=FD.TYPE_MESSAGE, type_name=".google.protobuf.Timestamp", label=FD.LABEL_OPTIONAL
    )
    order.field.add(
        name="discount",
        number=5,
        type=FD.TYPE_MESSAGE,
        type_name=".google.protobuf.Int32Value",
        label=FD.LABEL_OPTIONAL,
    )
    order.field.add(
        name="coupon", number=6, type=FD.TYPE_STRING, label=FD.LABEL_OPTIONAL, proto3_optional=True, oneof_index=0
    )
    order.field.add(name="total", number=7, type=FD.TYPE_UINT64, label=FD.LABEL_OPTIONAL)
    file.message_type.add(name="Unused")
    key = file.message_type.add(name="Key")
    key.field.add(name="id", number=1, type=FD.TYPE_INT64, label=FD.LABEL_OPTIONAL)
    pool = descriptor_pool.DescriptorPool()
    _init_pool(pool)
    pool.Add(file)
    return (
        GetMessageClass(pool.FindMessageTypeByName("shop.Order")),
        GetMessageClass(pool.FindMessageTypeByName("shop.Key")),
    )


def test_protobuf_records_through_the_broker_and_registry(
    bootstrap_servers: str, private_registry: RegistryServer, unique_name: str
) -> None:
    Order, Key = _shop_classes()
    client = _client(private_registry.url)
    values = ProtobufSerializer(Order, client)
    keys = ProtobufSerializer(Key, client)
    value_ctx = SerializationContext(unique_name, MessageField.VALUE)
    key_ctx = SerializationContext(unique_name, MessageField.KEY)
    first = Order(id=1, status=1, tags=["a", "b"], coupon="SAVE", total=2**64 - 1)
    first.placed.FromDatetime(dt.datetime(2024, 5, 1, 12, 0, 0, 500000, tzinfo=UTC))
    first.discount.value = 0
    records = [
        {"key": keys(Key(id=1), key_ctx), "value": values(first, value_ctx)},
        {"key": keys(Key(id=2), key_ctx), "value": values(Order(id=2), value_ctx)},
    ]
    raws = _produce_and_read(bootstrap_servers, unique_name, records)
    assert raws[0].key[5:6] == b"\x02" and raws[0].value[5:6] == b"\x00", "Key is [2] (no shortcut), Order [0]"
    rows = [_preparer("protobuf", "protobuf", private_registry.url, pk_mode="record_key").prepare(r) for r in raws]
    assert [row.key for row in rows] == [{"id": 1}, {"id": 2}]
    assert rows[0].values == {
        "id": 1,
        "status": "PAID",
        "tags": ["a", "b"],
        "placed": dt.datetime(2024, 5, 1, 12, 0, 0, 500000, tzinfo=UTC),
        "discount": 0,
        "coupon": "SAVE",
        "total": Decimal(2**64 - 1),
    }
    assert rows[1].values == {
        "id": 2,
        "status": "NEW",
        "tags": [],
        "placed": None,
        "discount": None,
        "coupon": None,
        "total": Decimal(0),
    }
    spec = rows[0].spec
    assert spec.column("total").type == ColumnType(Kind.DECIMAL, precision=20, scale=0)
    assert spec.column("tags").type == ColumnType(Kind.ARRAY, item=ColumnType(Kind.STRING))
    assert spec.column("discount").nullable and spec.column("coupon").nullable
    assert not spec.column("status").nullable
    assert private_registry.schema_id_fetches == 2, "the value and the key schema, once each"


def test_json_schema_records_through_the_broker_and_registry(
    bootstrap_servers: str, registry_url: str, unique_name: str
) -> None:
    schema = {
        "$schema": "http://json-schema.org/draft-07/schema#",
        "title": "Customer",
        "type": "object",
        "properties": {
            "id": {"type": "integer"},
            "email": {"type": "string"},
            "born": {"type": "string", "format": "date"},
            "seen": {"type": "string", "format": "date-time"},
            "score": {"type": ["null", "number"]},
            "prefs": {"type": "object"},
        },
        "required": ["id", "email"],
    }
    serializer = JSONSerializer(json.dumps(schema), _client(registry_url))
    ctx = SerializationContext(unique_name, MessageField.VALUE)
    customer = {"id": 1, "email": "a@example.com", "born": "1990-12-31", "seen": "2024-01-01T10:00:00+01:00"}
    records = [
        {"key": "c-1", "value": serializer({**customer, "score": 1.5, "prefs": {"tz": "CET"}}, ctx)},
        {"key": "c-2", "value": serializer({"id": 2, "email": "b@example.com"}, ctx)},
    ]
    raws = _produce_and_read(bootstrap_servers, unique_name, records)
    rows = [
        _preparer("string", "json_schema", registry_url, pk_mode="record_value", pk_fields=("id",)).prepare(r)
        for r in raws
    ]
    assert rows[0].values == {
        "id": 1,
        "email": "a@example.com",
        "born": dt.date(1990, 12, 31),
        "seen": dt.datetime(2024, 1, 1, 9, 0, tzinfo=UTC),
        "score": 1.5,
        "prefs": {"tz": "CET"},
    }
    assert rows[1].values == {
        "id": 2,
        "email": "b@example.com",
        "born": None,
        "seen": None,
        "score": None,
        "prefs": None,
    }
    spec = rows[0].spec
    assert spec.primary_key == ("id",)
    assert spec.column("seen").type == ColumnType(Kind.TIMESTAMP, precision=6)
    assert not spec.column("email").nullable and spec.column("score").nullable


def test_bad_records_on_the_topic_are_decode_errors(
    bootstrap_servers: str, registry_url: str, unique_name: str
) -> None:
    value = AvroSerializer(_client(registry_url), json.dumps(ORDER_V1))(
        {"id": 1, "amount": Decimal("1.00"), "placed": 0, "updated": 0, "ref": str(REF), "note": None},
        SerializationContext(unique_name, MessageField.VALUE),
    )
    records = [
        {"value": b'{"id": 1}'},
        {"value": b"\x00\x7f\xff\xff\xff\x02"},
        {"value": value[:-3]},
    ]
    raws = _produce_and_read(bootstrap_servers, unique_name, records)
    preparer = _preparer("string", "avro", registry_url)
    reasons = []
    for raw in raws:
        with pytest.raises(DecodeError) as caught:
            preparer.prepare(raw)
        reasons.append(str(caught.value))
    assert "unknown magic byte 0x7b at byte 0" in reasons[0]
    assert f"unknown schema id {0x7FFFFFFF}" in reasons[1]
    assert "truncated body" in reasons[2]
