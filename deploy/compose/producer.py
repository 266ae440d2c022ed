"""Sample producer for docker-compose.yml: Avro orders through the Schema Registry, then a few
updates, deletes (tombstones) and one malformed record, so the sink has something of each to do.

    orders (key {"order_id": long}, value Order)  ->  PostgreSQL table "orders"
    one record that is not Avro                    ->  the dead-letter topic orders-dlq

Environment: BOOTSTRAP_SERVERS (kafka:9092), SCHEMA_REGISTRY_URL (http://schema-registry:8081),
TOPIC (orders), COUNT (1000 orders), RATE (orders per second, 200; 0 = as fast as possible).
Needs confluent-kafka[avro,schemaregistry] (docker-compose.yml installs it in a python image).
"""

from __future__ import annotations

import os
import sys
import time
from decimal import Decimal
from typing import Any

from confluent_kafka import Producer
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroSerializer
from confluent_kafka.serialization import MessageField, SerializationContext

KEY_SCHEMA = """{"type": "record", "name": "OrderKey", "namespace": "shop",
  "fields": [{"name": "order_id", "type": "long"}]}"""
VALUE_SCHEMA = """{"type": "record", "name": "Order", "namespace": "shop", "fields": [
  {"name": "order_id", "type": "long"},
  {"name": "customer", "type": "string"},
  {"name": "amount", "type": {"type": "bytes", "logicalType": "decimal", "precision": 10, "scale": 2}},
  {"name": "status", "type": "string"},
  {"name": "created_at", "type": {"type": "long", "logicalType": "timestamp-millis"}}
]}"""
STATUSES = ("new", "paid", "shipped")


def main() -> int:
    bootstrap = os.environ.get("BOOTSTRAP_SERVERS", "kafka:9092")
    registry = SchemaRegistryClient({"url": os.environ.get("SCHEMA_REGISTRY_URL", "http://schema-registry:8081")})
    topic = os.environ.get("TOPIC", "orders")
    count = int(os.environ.get("COUNT", "1000"))
    rate = float(os.environ.get("RATE", "200"))
    keys = AvroSerializer(registry, KEY_SCHEMA)
    values = AvroSerializer(registry, VALUE_SCHEMA)
    producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True, "acks": "all"})
    failed: list[str] = []

    def delivered(error: object, _message: object) -> None:
        if error is not None:
            failed.append(str(error))

    def send(order_id: int, value: dict[str, Any] | None) -> None:
        key = keys({"order_id": order_id}, SerializationContext(topic, MessageField.KEY))
        body = None if value is None else values(value, SerializationContext(topic, MessageField.VALUE))
        producer.produce(topic, key=key, value=body, on_delivery=delivered)
        producer.poll(0)
        if rate > 0:
            time.sleep(1 / rate)

    now_ms = int(time.time() * 1000)

    def order(n: int, status: str) -> dict[str, Any]:
        amount = Decimal(n * 7 % 10000) / 100
        return {"order_id": n, "customer": f"customer-{n % 37}", "amount": amount, "status": status,
                "created_at": now_ms + n}

    for n in range(1, count + 1):
        send(n, order(n, "new"))
    for n in range(1, count + 1, 10):  # every tenth order is paid: an upsert of the same key
        send(n, order(n, "paid"))
    for n in range(5, count + 1, 100):  # a few are cancelled: a tombstone deletes the row
        send(n, None)
    # Not Avro at all: the sink dead-letters it (SINK_ERRORS_TOLERANCE=all) and goes on.
    producer.produce(topic, key=b"not-avro", value=b"this is not an Avro record", on_delivery=delivered)
    producer.flush(60)
    if failed:
        print(f"producer: {len(failed)} records not delivered, e.g. {failed[0]}", file=sys.stderr)
        return 1
    print(f"producer: {count} orders, {len(range(1, count + 1, 10))} updates, "
          f"{len(range(5, count + 1, 100))} deletes and 1 malformed record sent to {topic}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
