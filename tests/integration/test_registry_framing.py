"""The framings of newer Confluent serializers, with records they really produced.

- Magic byte 1 + 16-byte schema GUID in front of the body (a serializer configured with a
  `schema.id.serializer` writing `SchemaId.guid_to_bytes()`): the sink asks the registry
  `GET /schemas/guids/{guid}`, once per GUID, and lands the records (Avro, Protobuf, JSON Schema).
- The framing in the `__key_schema_id` / `__value_schema_id` headers (confluent-kafka's
  `header_schema_id_serializer`: the body carries no prefix at all): the decoders read it when
  handed the header (`formats.schema_id_headers`), key and value alike.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from typing import Any

import pytest
from confluent_kafka.schema_registry import SchemaRegistryClient, header_schema_id_serializer
from confluent_kafka.schema_registry.avro import AvroSerializer
from confluent_kafka.schema_registry.json_schema import JSONSerializer
from confluent_kafka.schema_registry.protobuf import ProtobufSerializer
from confluent_kafka.serialization import MessageField, SerializationContext
from google.protobuf import descriptor_pb2, descriptor_pool
from google.protobuf.message_factory import GetMessageClass

from sink.adapters.registry import RegistrySchemaSource
from sink.errors import DecodeError
from sink.formats import KEY_SCHEMA_ID_HEADER, VALUE_SCHEMA_ID_HEADER, make_decoder, schema_id_headers
from tests.integration.conftest import TargetDb
from tests.support.db import fetch_rows
from tests.support.kafka import consume_all, create_topic, produce
from tests.support.registry import RegistryServer
from tests.support.runner import running_sink, sink_env

pytestmark = pytest.mark.integration

FD = descriptor_pb2.FieldDescriptorProto
UTC = dt.UTC

AVRO_ITEM = {
    "type": "record",
    "name": "Item",
    "namespace": "framing",
    "fields": [
        {"name": "id", "type": "long"},
        {"name": "name", "type": ["null", "string"], "default": None},
        {"name": "at", "type": {"type": "long", "logicalType": "timestamp-micros"}},
    ],
}
JSON_ITEM = {
    "$schema": "http://json-schema.org/draft-07/schema#",
    "type": "object",
    "properties": {
        "id": {"type": "integer"},
        "name": {"type": ["null", "string"]},
        "at": {"type": "string", "format": "date-time"},
    },
    "required": ["id"],
}
AT = dt.datetime(2024, 6, 1, 8, 0, 0, 500000, tzinfo=UTC)
ITEMS = [{"id": 1, "name": "one", "at": AT}, {"id": 2, "name": None, "at": AT}]


def guid_prefix(payload: bytes, ctx: Any, schema_id: Any) -> bytes:
    """A `schema.id.serializer` framing with magic byte 1 + the schema GUID (+ Protobuf indexes)."""
    return schema_id.guid_to_bytes() + payload


def _client(url: str) -> SchemaRegistryClient:
    return SchemaRegistryClient({"url": url, "max.retries": 0})


def _protobuf_item() -> Any:
    file = descriptor_pb2.FileDescriptorProto(name="framing/item.proto", package="framing", syntax="proto3")
    other = file.message_type.add(name="Unused")  # Item is message index 1: the indexes follow the GUID
    other.field.add(name="x", number=1, type=FD.TYPE_INT32, label=FD.LABEL_OPTIONAL)
    item = file.message_type.add(name="Item")
    item.field.add(name="id", number=1, type=FD.TYPE_INT64, label=FD.LABEL_OPTIONAL)
    item.field.add(name="name", number=2, type=FD.TYPE_STRING, label=FD.LABEL_OPTIONAL)
    pool = descriptor_pool.DescriptorPool()
    pool.Add(file)
    return GetMessageClass(pool.FindMessageTypeByName("framing.Item"))


def _serializer(fmt: str, client: SchemaRegistryClient, conf: dict[str, Any]) -> tuple[Any, Any]:
    """(serializer, value -> what it serializes) for `fmt`."""
    if fmt == "avro":
        return AvroSerializer(client, json.dumps(AVRO_ITEM), conf=conf), lambda v: v
    if fmt == "json_schema":
        return JSONSerializer(json.dumps(JSON_ITEM), client, conf=conf), lambda v: {**v, "at": v["at"].isoformat()}
    Item = _protobuf_item()
    return ProtobufSerializer(Item, client, conf=conf), lambda v: Item(id=v["id"], name=v["name"] or "")


def _expected(fmt: str) -> list[tuple[Any, ...]]:
    if fmt == "protobuf":  # proto3 has no null string and no `at`
        return [(1, "one"), (2, "")]
    return [(item["id"], item["name"], AT) for item in ITEMS]


@pytest.fixture
def target(pg: TargetDb, unique_name: str) -> Iterator[TargetDb]:
    pg.table(unique_name)
    yield pg


@pytest.mark.parametrize("fmt", ["avro", "protobuf", "json_schema"])
def test_magic_byte_1_and_a_schema_guid_land(
    bootstrap_servers: str, private_registry: RegistryServer, target: TargetDb, unique_name: str, fmt: str
) -> None:
    topic = table = unique_name
    create_topic(bootstrap_servers, topic)
    serializer, prepare = _serializer(fmt, _client(private_registry.url), {"schema.id.serializer": guid_prefix})
    ctx = SerializationContext(topic, MessageField.VALUE)
    values = [serializer(prepare(item), ctx) for item in ITEMS]
    schema_id = private_registry.handle("GET", ["subjects", f"{topic}-value", "versions", "1"], {}, None)[1]["id"]
    guid = private_registry.guid(schema_id)
    assert all(v[0] == 1 and v[1:17].hex() == guid.replace("-", "") for v in values), "framed by GUID"
    produce(bootstrap_servers, topic, [{"key": str(i["id"]), "value": v} for i, v in zip(ITEMS, values, strict=True)])
    private_registry.schema_id_fetches = private_registry.schema_guid_fetches = 0
    env = sink_env(
        bootstrap_servers,
        target.url,
        topic,
        topic,
        schema_registry_url=private_registry.url,
        value_format=fmt,
        insert_mode="upsert",
        pk_mode="record_value",
        pk_fields="id",
    )
    with running_sink(env) as sink:
        sink.wait_committed(topic, {0: len(values)})
    rows = fetch_rows(target.url, table, order_by="id")
    got = [tuple(row[c] for c in ("id", "name", "at") if c in row) for row in rows]
    assert got == _expected(fmt)
    assert private_registry.schema_guid_fetches == 1, "the schema is asked for by GUID, once"
    assert private_registry.schema_id_fetches == 0


@pytest.mark.parametrize("fmt", ["avro", "protobuf", "json_schema"])
def test_the_schema_id_in_the_headers_decodes_key_and_value(
    bootstrap_servers: str, private_registry: RegistryServer, unique_name: str, fmt: str
) -> None:
    topic = unique_name
    create_topic(bootstrap_servers, topic)
    client = _client(private_registry.url)
    conf = {"schema.id.serializer": header_schema_id_serializer}
    values, prepare = _serializer(fmt, client, conf)
    keys = AvroSerializer(client, '"string"', conf=conf)
    records = []
    for item in ITEMS:
        headers: list[tuple[str, bytes]] = [("trace", b"abc")]
        key = keys(f"k{item['id']}", SerializationContext(topic, MessageField.KEY, headers))
        value = values(prepare(item), SerializationContext(topic, MessageField.VALUE, headers))
        records.append({"key": key, "value": value, "headers": headers})
    assert [name for name, _ in records[0]["headers"]] == ["trace", KEY_SCHEMA_ID_HEADER, VALUE_SCHEMA_ID_HEADER]
    produce(bootstrap_servers, topic, records)

    source = RegistrySchemaSource(private_registry.url)
    key_decoder, value_decoder = make_decoder("avro", source), make_decoder(fmt, source)
    decoded = []
    for message in consume_all(bootstrap_servers, topic, expected=len(records)):
        key_header, value_header = schema_id_headers(message.headers)
        assert key_header is not None and value_header is not None and value_header[0] == 1
        key, value = key_decoder.decode(message.key, key_header), value_decoder.decode(message.value, value_header)
        assert isinstance(key.schema_id, str) and isinstance(value.schema_id, (str, tuple)), "GUIDs"
        decoded.append((key.data, *(value.data[c] for c in ("id", "name", "at") if c in value.data)))
    assert decoded == [(f"k{row[0]}", *row) for row in _expected(fmt)]
    assert private_registry.schema_guid_fetches == 2, "key and value schema, each once"
    with pytest.raises(DecodeError, match="magic byte"):  # without its header the body is not framed
        value_decoder.decode(records[0]["value"])


def test_header_framed_records_land_through_the_sink(
    bootstrap_servers: str, private_registry: RegistryServer, target: TargetDb, unique_name: str
) -> None:
    topic = table = unique_name
    create_topic(bootstrap_servers, topic)
    values = AvroSerializer(
        _client(private_registry.url),
        json.dumps(AVRO_ITEM),
        conf={"schema.id.serializer": header_schema_id_serializer},
    )
    records = []
    for item in ITEMS:
        headers: list[tuple[str, bytes]] = []
        value = values(item, SerializationContext(topic, MessageField.VALUE, headers))
        records.append({"key": str(item["id"]), "value": value, "headers": headers})
    produce(bootstrap_servers, topic, records)
    env = sink_env(
        bootstrap_servers,
        target.url,
        topic,
        topic,
        schema_registry_url=private_registry.url,
        value_format="avro",
        insert_mode="upsert",
        pk_mode="record_value",
        pk_fields="id",
    )
    with running_sink(env, expect_exit=None) as sink:
        sink.wait_committed(topic, {0: len(records)}, timeout=20)
    rows = fetch_rows(target.url, table, order_by="id")
    assert [(r["id"], r["name"], r["at"]) for r in rows] == _expected("avro")
