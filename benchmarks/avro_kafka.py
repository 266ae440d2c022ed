"""Kafka and registry side of the avro peers section: a topic with the dataset's partitions, the
schema registered in the test registry, the dataset produced and checked by delivery reports (never
ListOffsets/watermarks, which the embedded broker answers wrongly)."""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

from . import avro_data


def create_topic(bootstrap: str, topic: str) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(topic, num_partitions=avro_data.PARTITIONS)])[topic].result(timeout=20)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        metadata = admin.list_topics(topic=topic, timeout=5).topics.get(topic)
        if metadata is not None and metadata.error is None and len(metadata.partitions) == avro_data.PARTITIONS:
            return
        time.sleep(0.1)
    raise RuntimeError(f"topic {topic} not visible with {avro_data.PARTITIONS} partitions")


def register(registry_url: str, subject: str) -> int:
    from confluent_kafka.schema_registry import Schema, SchemaRegistryClient

    client = SchemaRegistryClient({"url": registry_url})
    return int(client.register_schema(subject, Schema(json.dumps(avro_data.VALUE_SCHEMA), "AVRO")))


def produce(bootstrap: str, topic: str, count: int, encode: Callable[[int], bytes]) -> float:
    """Produce the dataset (explicit partitions); check every record by its delivery report."""
    producer = Producer(
        {
            "bootstrap.servers": bootstrap,
            "linger.ms": 20,
            "batch.num.messages": 10000,
            "acks": "all",
            "queue.buffering.max.messages": 500000,
        }
    )
    acknowledged: Counter[int] = Counter()
    highest: dict[int, int] = {}
    errors: list[str] = []

    def delivered(err: object, msg: Any) -> None:
        if err is not None:
            errors.append(str(err))
            return
        acknowledged[msg.partition()] += 1
        highest[msg.partition()] = max(highest.get(msg.partition(), -1), msg.offset())

    started = time.perf_counter()
    for i, partition, key in avro_data.messages(count):
        value = encode(i)
        while True:
            try:
                producer.produce(topic, value, key, partition=partition, on_delivery=delivered)
                break
            except BufferError:
                producer.poll(0.05)
        producer.poll(0)
    left = producer.flush(300)
    seconds = time.perf_counter() - started
    total = avro_data.even(count)
    if left or errors or sum(acknowledged.values()) != total:
        raise RuntimeError(f"produce to {topic}: {left} undelivered, {len(errors)} errors {errors[:3]}")
    for partition, acked in acknowledged.items():
        if highest[partition] + 1 != acked:  # a new topic: offsets 0..n-1
            raise RuntimeError(f"{topic}[{partition}]: {acked} acknowledged but highest offset {highest[partition]}")
    return seconds
