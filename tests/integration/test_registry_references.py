"""Schema references (Confluent's `references: [{name, subject, version}]`) through the real sink.

confluent-kafka's serializers register schemas that reference other subjects in the test registry
(over HTTP) and produce to the real broker; the worker built by `build_worker` fetches the writer
schema and every schema it references, theirs first, and writes the real database. For each of
Avro (named types of other subjects), Protobuf (imports of other subjects) and JSON Schema (`$ref`
to another subject's schema, and to a definition inside one) a *nested* reference — a referenced
schema that has a reference of its own — decides a column's type, so a reference that was not
resolved shows in the table, not only in a value.

A reference the registry does not have is the record's error, naming the reference (here the stop
of errors.tolerance=none); a registry that does not answer for a referenced subject is an outage:
the worker retries, dead-letters nothing, and lands the record once the registry answers.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import logging
import struct
import time
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from confluent_kafka.schema_registry import Schema, SchemaReference, SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroSerializer
from confluent_kafka.schema_registry.json_schema import JSONSerializer
from confluent_kafka.schema_registry.protobuf import ProtobufSerializer
from confluent_kafka.serialization import MessageField, SerializationContext
from google.protobuf import descriptor_pb2, descriptor_pool, timestamp_pb2
from google.protobuf.message_factory import GetMessageClass

from tests.integration.conftest import TargetDb
from tests.support.db import fetch_rows, table_columns
from tests.support.kafka import committed_offsets, consume_all, create_topic, produce
from tests.support.registry import RegistryServer
from tests.support.runner import running_sink, sink_env

pytestmark = pytest.mark.integration

UTC = dt.UTC
FD = descriptor_pb2.FieldDescriptorProto
PLACED = dt.datetime(2024, 5, 1, 12, 30, 0, 250000, tzinfo=UTC)


@pytest.fixture
def target(db: TargetDb, unique_name: str) -> Iterator[TargetDb]:
    db.table(unique_name)
    yield db


def _client(url: str) -> SchemaRegistryClient:
    return SchemaRegistryClient({"url": url, "max.retries": 0})


def _ctx(topic: str) -> SerializationContext:
    return SerializationContext(topic, MessageField.VALUE)


def _run(bootstrap: str, db: TargetDb, topic: str, url: str, records: list[dict[str, Any]], **settings: Any) -> None:
    produce(bootstrap, topic, records)
    env = sink_env(bootstrap, db.url, topic, topic, schema_registry_url=url, **settings)
    with running_sink(env) as sink:
        sink.wait_committed(topic, {0: len(records)})


def _json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, (str, bytes)) else value


def _instant(value: Any) -> dt.datetime:
    assert isinstance(value, dt.datetime), value
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _register(client: SchemaRegistryClient, subject: str, text: str, kind: str, refs: list[SchemaReference]) -> None:
    client.register_schema(subject, Schema(text, kind, refs))


# ------------------------------------------------------------------------------ Avro

AVRO_ADDRESS = {
    "type": "record",
    "name": "Address",
    "namespace": "shop",
    "fields": [{"name": "street", "type": "string"}, {"name": "zip", "type": "string"}],
}
AVRO_STATUS = {"type": "enum", "name": "Status", "namespace": "shop", "symbols": ["NEW", "PAID"]}
AVRO_CUSTOMER = {  # references Address and Status: its own references
    "type": "record",
    "name": "Customer",
    "namespace": "shop",
    "fields": [
        {"name": "name", "type": "string"},
        {"name": "home", "type": "shop.Address"},
        {"name": "tier", "type": "shop.Status"},
    ],
}
AVRO_ORDER = {
    "type": "record",
    "name": "Order",
    "namespace": "shop",
    "fields": [
        {"name": "id", "type": "long"},
        {"name": "customer", "type": "shop.Customer"},
        {"name": "status", "type": "shop.Status"},  # defined two references down: a STRING column
        {"name": "ship_to", "type": ["null", "shop.Address"], "default": None},
    ],
}


def test_avro_named_types_from_referenced_subjects_land(
    bootstrap_servers: str, registry_url: str, target: TargetDb, unique_name: str
) -> None:
    topic = table = unique_name
    create_topic(bootstrap_servers, topic)
    client = _client(registry_url)
    address, status, customer = (f"{unique_name}-{n}" for n in ("address", "status", "customer"))
    _register(client, address, json.dumps(AVRO_ADDRESS), "AVRO", [])
    _register(client, status, json.dumps(AVRO_STATUS), "AVRO", [])
    _register(
        client,
        customer,
        json.dumps(AVRO_CUSTOMER),
        "AVRO",
        [SchemaReference("shop.Address", address, 1), SchemaReference("shop.Status", status, 1)],
    )
    serialize = AvroSerializer(
        client,
        Schema(json.dumps(AVRO_ORDER), "AVRO", [SchemaReference("shop.Customer", customer, 1)]),
    )
    home = {"street": "Main St 1", "zip": "1000"}
    orders = [
        {"id": 1, "customer": {"name": "Ann", "home": home, "tier": "PAID"}, "status": "NEW", "ship_to": None},
        {"id": 2, "customer": {"name": "Bob", "home": home, "tier": "NEW"}, "status": "PAID", "ship_to": home},
    ]
    records = [{"key": str(o["id"]), "value": serialize(o, _ctx(topic))} for o in orders]
    _run(
        bootstrap_servers,
        target,
        topic,
        registry_url,
        records,
        value_format="avro",
        insert_mode="upsert",
        pk_mode="record_value",
        pk_fields="id",
    )
    rows = fetch_rows(target.url, table, order_by="id")
    assert [(r["id"], r["status"], _json(r["customer"]), _json(r["ship_to"])) for r in rows] == [
        (1, "NEW", {"name": "Ann", "home": home, "tier": "PAID"}, None),
        (2, "PAID", {"name": "Bob", "home": home, "tier": "NEW"}, home),
    ]
    columns = table_columns(target.url, table)
    assert list(columns) == ["id", "customer", "status", "ship_to"]
    assert isinstance(columns["status"]["type"], sa.String), "the referenced enum is a string column"
    assert columns["ship_to"]["nullable"] and not columns["status"]["nullable"]


AVRO_PAYMENT = {
    "type": "record",
    "name": "Payment",
    "namespace": "shop",
    "fields": [{"name": "id", "type": "long"}, {"name": "amount", "type": "double"}],
}
AVRO_REFUND = {
    "type": "record",
    "name": "Refund",
    "namespace": "shop",
    "fields": [{"name": "id", "type": "long"}, {"name": "reason", "type": "string"}],
}


def test_avro_schema_that_is_a_union_of_referenced_records_lands(
    bootstrap_servers: str, registry_url: str, target: TargetDb, unique_name: str
) -> None:
    """Confluent's way of putting several event types in one topic: the value schema is only a
    union of records defined in other subjects. Each record lands as its branch's fields."""
    topic = table = unique_name
    create_topic(bootstrap_servers, topic)
    client = _client(registry_url)
    payment, refund = f"{unique_name}-payment", f"{unique_name}-refund"
    _register(client, payment, json.dumps(AVRO_PAYMENT), "AVRO", [])
    _register(client, refund, json.dumps(AVRO_REFUND), "AVRO", [])
    references = [SchemaReference("shop.Payment", payment, 1), SchemaReference("shop.Refund", refund, 1)]
    schema_id = client.register_schema(
        f"{topic}-value", Schema(json.dumps(["shop.Payment", "shop.Refund"]), "AVRO", references)
    )
    header = b"\x00" + struct.pack(">I", schema_id)
    pay = header + b"\x00" + b"\x02" + struct.pack("<d", 9.5)  # branch 0; id 1 (zigzag 2); amount
    back = header + b"\x02" + b"\x04" + b"\x08late"  # branch 1; id 2; reason "late" (4 chars: zigzag 8)
    records = [{"key": "1", "value": pay}, {"key": "2", "value": back}]
    _run(
        bootstrap_servers,
        target,
        topic,
        registry_url,
        records,
        value_format="avro",
        insert_mode="upsert",
        pk_mode="record_value",
        pk_fields="id",
        auto_evolve="true",
    )
    rows = fetch_rows(target.url, table, order_by="id")
    assert [(r["id"], r.get("amount"), r.get("reason")) for r in rows] == [(1, 9.5, None), (2, None, "late")]


# ------------------------------------------------------------------------------ Protobuf


def _protobuf_order() -> Any:
    """shop/order.proto imports shop/customer.proto, which imports shop/address.proto (with the
    Status enum) and google/protobuf/timestamp.proto; built at run time (no protoc here)."""
    pool = descriptor_pool.DescriptorPool()
    pool.AddSerializedFile(timestamp_pb2.DESCRIPTOR.serialized_pb)
    address = descriptor_pb2.FileDescriptorProto(name="shop/address.proto", package="shop", syntax="proto3")
    message = address.message_type.add(name="Address")
    message.field.add(name="street", number=1, type=FD.TYPE_STRING, label=FD.LABEL_OPTIONAL)
    message.field.add(name="zip", number=2, type=FD.TYPE_STRING, label=FD.LABEL_OPTIONAL)
    status = address.enum_type.add(name="Status")
    status.value.add(name="NEW", number=0)
    status.value.add(name="PAID", number=1)
    customer = descriptor_pb2.FileDescriptorProto(
        name="shop/customer.proto",
        package="shop",
        syntax="proto3",
        dependency=["shop/address.proto", "google/protobuf/timestamp.proto"],
    )
    message = customer.message_type.add(name="Customer")
    message.field.add(name="name", number=1, type=FD.TYPE_STRING, label=FD.LABEL_OPTIONAL)
    message.field.add(name="home", number=2, type=FD.TYPE_MESSAGE, type_name=".shop.Address", label=FD.LABEL_OPTIONAL)
    order = descriptor_pb2.FileDescriptorProto(
        name="shop/order.proto",
        package="shop",
        syntax="proto3",
        dependency=["shop/customer.proto", "shop/address.proto", "google/protobuf/timestamp.proto"],
    )
    message = order.message_type.add(name="Order")
    add = message.field.add
    add(name="id", number=1, type=FD.TYPE_INT64, label=FD.LABEL_OPTIONAL)
    add(name="customer", number=2, type=FD.TYPE_MESSAGE, type_name=".shop.Customer", label=FD.LABEL_OPTIONAL)
    add(name="status", number=3, type=FD.TYPE_ENUM, type_name=".shop.Status", label=FD.LABEL_OPTIONAL)
    add(name="placed", number=4, type=FD.TYPE_MESSAGE, type_name=".google.protobuf.Timestamp", label=FD.LABEL_OPTIONAL)
    for file in (address, customer, order):
        pool.Add(file)
    return GetMessageClass(pool.FindMessageTypeByName("shop.Order"))


def test_protobuf_imports_from_referenced_subjects_land(
    bootstrap_servers: str, private_registry: RegistryServer, target: TargetDb, unique_name: str
) -> None:
    topic = table = unique_name
    create_topic(bootstrap_servers, topic)
    Order = _protobuf_order()
    serialize = ProtobufSerializer(Order, _client(private_registry.url))
    first = Order(id=1, status=1)
    first.customer.name = "Ann"
    first.customer.home.street = "Main St 1"
    first.placed.FromDatetime(PLACED)
    records = [
        {"key": "1", "value": serialize(first, _ctx(topic))},
        {"key": "2", "value": serialize(Order(id=2), _ctx(topic))},
    ]
    # the serializer registered each imported file as a subject of its own, and the order's schema
    # with references to them: the sink must resolve those, two levels deep
    order = private_registry.handle("GET", ["subjects", f"{topic}-value", "versions", "latest"], {}, None)[1]
    assert {r["name"] for r in order["references"]} == {"shop/customer.proto", "shop/address.proto"}
    customer = private_registry.handle("GET", ["subjects", "shop/customer.proto", "versions", "1"], {}, None)[1]
    assert [r["name"] for r in customer["references"]] == ["shop/address.proto"], "a nested reference"
    _run(
        bootstrap_servers,
        target,
        topic,
        private_registry.url,
        records,
        value_format="protobuf",
        insert_mode="upsert",
        pk_mode="record_value",
        pk_fields="id",
    )
    rows = fetch_rows(target.url, table, order_by="id")
    assert [(r["id"], r["status"], _json(r["customer"])) for r in rows] == [
        (1, "PAID", {"name": "Ann", "home": {"street": "Main St 1", "zip": ""}}),
        (2, "NEW", None),
    ]
    assert _instant(rows[0]["placed"]) == PLACED and rows[1]["placed"] is None
    columns = table_columns(target.url, table)
    assert isinstance(columns["status"]["type"], sa.String), "the imported enum is a string column"
    assert isinstance(columns["placed"]["type"], sa.DateTime)


# ------------------------------------------------------------------------------ JSON Schema

JSON_COMMON = {  # definitions only
    "$schema": "http://json-schema.org/draft-07/schema#",
    "definitions": {
        "Instant": {"type": "string", "format": "date-time"},
        "Email": {"type": "string"},
    },
}
JSON_SHIPPING = {  # references common.json: a nested reference
    "$schema": "http://json-schema.org/draft-07/schema#",
    "definitions": {"When": {"$ref": "common.json#/definitions/Instant"}},
    "type": "object",
    "properties": {"carrier": {"type": "string"}},
}
JSON_ORDER = {
    "$schema": "http://json-schema.org/draft-07/schema#",
    "title": "Order",
    "type": "object",
    "properties": {
        "id": {"type": "integer"},
        "email": {"$ref": "common.json#/definitions/Email"},
        "placed": {"$ref": "common.json#/definitions/Instant"},
        "shipped": {"$ref": "shipping.json#/definitions/When"},
        "shipping": {"$ref": "shipping.json"},
        "note": {"$ref": "#/definitions/Note"},
    },
    "required": ["id", "email"],
    "definitions": {"Note": {"type": ["null", "string"]}},
}


def test_json_schema_refs_to_referenced_subjects_land(
    bootstrap_servers: str, registry_url: str, target: TargetDb, unique_name: str
) -> None:
    topic = table = unique_name
    create_topic(bootstrap_servers, topic)
    client = _client(registry_url)
    common, shipping = f"{unique_name}-common", f"{unique_name}-shipping"
    _register(client, common, json.dumps(JSON_COMMON), "JSON", [])
    _register(client, shipping, json.dumps(JSON_SHIPPING), "JSON", [SchemaReference("common.json", common, 1)])
    references = [SchemaReference("common.json", common, 1), SchemaReference("shipping.json", shipping, 1)]
    serialize = JSONSerializer(Schema(json.dumps(JSON_ORDER), "JSON", references), client)
    values = [
        {
            "id": 1,
            "email": "a@example.com",
            "placed": "2024-05-01T14:30:00.25+02:00",
            "shipped": "2024-05-02T08:00:00Z",
            "shipping": {"carrier": "post"},
            "note": "gift",
        },
        {"id": 2, "email": "b@example.com"},
    ]
    records = [{"key": str(v["id"]), "value": serialize(v, _ctx(topic))} for v in values]
    _run(
        bootstrap_servers,
        target,
        topic,
        registry_url,
        records,
        value_format="json_schema",
        insert_mode="upsert",
        pk_mode="record_value",
        pk_fields="id",
    )
    rows = fetch_rows(target.url, table, order_by="id")
    assert [(r["id"], r["email"], r["note"], _json(r["shipping"])) for r in rows] == [
        (1, "a@example.com", "gift", {"carrier": "post"}),
        (2, "b@example.com", None, None),
    ]
    assert _instant(rows[0]["placed"]) == PLACED
    assert _instant(rows[0]["shipped"]) == dt.datetime(2024, 5, 2, 8, 0, tzinfo=UTC)
    assert rows[1]["placed"] is None and rows[1]["shipped"] is None
    columns = table_columns(target.url, table)
    assert list(columns) == ["id", "email", "placed", "shipped", "shipping", "note"]
    assert isinstance(columns["placed"]["type"], sa.DateTime), "a $ref into another subject's definitions"
    assert isinstance(columns["shipped"]["type"], sa.DateTime), "a $ref two references down"
    assert isinstance(columns["email"]["type"], sa.String) and not columns["email"]["nullable"]


# ------------------------------------------------------------------------------ missing and unreachable

AVRO_USES_GHOST = {
    "type": "record",
    "name": "Row",
    "namespace": "ghosts",
    "fields": [{"name": "id", "type": "long"}, {"name": "ghost", "type": "ghosts.Ghost"}],
}


def _framed(schema_id: int, body: bytes, fmt: str) -> bytes:
    return b"\x00" + struct.pack(">I", schema_id) + (b"\x00" if fmt == "protobuf" else b"") + body


def _schema_with_a_missing_reference(registry: RegistryServer, fmt: str, name: str) -> tuple[int, bytes]:
    """(schema id, body) of a value schema whose reference `name` points at a subject the registry
    does not have; the body is what the schema would read."""
    ghost = [{"name": name, "subject": "no-such-subject", "version": 1}]
    if fmt == "avro":
        return registry.register("ghosts-value", json.dumps(AVRO_USES_GHOST), "AVRO", ghost), b"\x02\x02"
    if fmt == "protobuf":
        file = descriptor_pb2.FileDescriptorProto(name="row.proto", syntax="proto3", dependency=[name])
        row = file.message_type.add(name="Row")
        row.field.add(name="id", number=1, type=FD.TYPE_INT64, label=FD.LABEL_OPTIONAL)
        text = base64.b64encode(file.SerializeToString()).decode()
        return registry.register("ghosts-value", text, "PROTOBUF", ghost), b"\x08\x01"
    schema = {"type": "object", "properties": {"id": {"type": "integer"}, "ghost": {"$ref": name}}}
    return registry.register("ghosts-value", json.dumps(schema), "JSON", ghost), b'{"id": 1}'


@pytest.mark.parametrize(
    ("fmt", "name"), [("avro", "ghosts.Ghost"), ("protobuf", "ghost.proto"), ("json_schema", "ghost.json")]
)
def test_a_reference_the_registry_lacks_is_the_records_error(
    bootstrap_servers: str,
    private_registry: RegistryServer,
    pg: TargetDb,
    unique_name: str,
    caplog: pytest.LogCaptureFixture,
    fmt: str,
    name: str,
) -> None:
    topic = pg.table(unique_name)
    create_topic(bootstrap_servers, topic)
    schema_id, body = _schema_with_a_missing_reference(private_registry, fmt, name)
    produce(bootstrap_servers, topic, [{"key": "1", "value": _framed(schema_id, body, fmt)}])
    env = sink_env(bootstrap_servers, pg.url, topic, topic, schema_registry_url=private_registry.url, value_format=fmt)
    with caplog.at_level(logging.ERROR, logger="sink"), running_sink(env, expect_exit=1) as sink:
        sink.thread.join(60)
        assert not sink.thread.is_alive(), "the worker did not stop at the record"
    stop = [r.getMessage() for r in caplog.records if "SINK_ERRORS_TOLERANCE=none" in r.getMessage()]
    assert stop, caplog.text
    assert f"record {topic}/0@0 failed at VALUE_CONVERTER" in stop[0], stop[0]
    assert f"schema id {schema_id}" in stop[0] and repr(name) in stop[0], stop[0]
    assert "no-such-subject" in caplog.text, "the full reason names the missing subject"
    assert committed_offsets(bootstrap_servers, topic, topic) in ({0: None}, {0: 0}), "the record is not committed"


def test_a_registry_down_for_a_referenced_subject_is_an_outage_not_a_bad_record(
    bootstrap_servers: str, private_registry: RegistryServer, pg: TargetDb, unique_name: str
) -> None:
    topic = table = pg.table(unique_name)
    dlq = f"{unique_name}_dlq"
    create_topic(bootstrap_servers, topic)
    create_topic(bootstrap_servers, dlq)
    client = _client(private_registry.url)
    status = f"{unique_name}-status"
    _register(client, status, json.dumps(AVRO_STATUS), "AVRO", [])
    schema = {
        "type": "record",
        "name": "Ticket",
        "namespace": "shop",
        "fields": [{"name": "id", "type": "long"}, {"name": "status", "type": "shop.Status"}],
    }
    serialize = AvroSerializer(client, Schema(json.dumps(schema), "AVRO", [SchemaReference("shop.Status", status, 1)]))
    records = [{"key": str(n), "value": serialize({"id": n, "status": "PAID"}, _ctx(topic))} for n in (1, 2)]
    produce(bootstrap_servers, topic, records)
    private_registry.unavailable_paths.add(f"/subjects/{status}")  # the writer schema answers, its reference not
    env = sink_env(
        bootstrap_servers,
        pg.url,
        topic,
        topic,
        schema_registry_url=private_registry.url,
        value_format="avro",
        errors_tolerance="all",
        errors_deadletterqueue_topic_name=dlq,
        errors_retry_delay_max_ms=300,
    )
    with running_sink(env) as sink:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:  # the worker keeps asking for the reference
            asked = [path for method, path in private_registry.requests if path.startswith(f"/subjects/{status}")]
            if len(asked) >= 3:
                break
            time.sleep(0.1)
        assert len(asked) >= 3, f"the reference was asked for {len(asked)} time(s): not retried"
        assert committed_offsets(bootstrap_servers, topic, topic) in ({0: None}, {0: 0}), "nothing settles in an outage"
        private_registry.unavailable_paths.clear()
        sink.wait_committed(topic, {0: 2})
    rows = fetch_rows(pg.url, table, order_by="id")
    assert [(r["id"], r["status"]) for r in rows] == [(1, "PAID"), (2, "PAID")]
    assert consume_all(bootstrap_servers, dlq) == [], "an outage never dead-letters"
