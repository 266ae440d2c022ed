"""Kafka helpers for tests: create topics, produce, read back, inspect committed offsets.

They work against the embedded Tansu broker and a real Apache Kafka alike. They never trust
ListOffsets(latest) (Tansu answers the last batch's base offset + 1): reads count messages and
use partition EOF events, which come from the fetch response's high watermark.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

SESSION_TIMEOUT_MS = 6000

Headers = list[tuple[str, bytes | None]]


@dataclass(frozen=True)
class Message:
    """A consumed record, detached from librdkafka."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: Headers = field(default_factory=list)
    timestamp: int | None = None  # ms since the epoch

    def header(self, name: str) -> bytes | None:
        """The last value of header ``name`` (None when absent)."""
        values = [v for k, v in self.headers if k == name]
        return values[-1] if values else None


def wait_for(
    predicate: Callable[[], Any], timeout: float, interval: float = 0.2, message: str = "condition not met"
) -> Any:
    """Poll ``predicate`` until it returns something truthy (returned); AssertionError on timeout."""
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() >= deadline:
            raise AssertionError(f"{message} (waited {timeout:g}s)")
        time.sleep(interval)


def admin(bootstrap: str) -> AdminClient:
    return AdminClient({"bootstrap.servers": bootstrap})


def create_topic(bootstrap: str, name: str, partitions: int = 1, timeout: float = 20.0) -> None:
    """Create ``name`` and wait until its metadata shows every partition."""
    client = admin(bootstrap)
    futures = client.create_topics([NewTopic(name, num_partitions=partitions)], operation_timeout=timeout)
    future = futures[name]
    try:
        future.result(timeout=timeout)
    except KafkaException as exc:
        if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
            raise

    def visible() -> bool:
        topic = client.list_topics(topic=name, timeout=5).topics.get(name)
        return topic is not None and topic.error is None and len(topic.partitions) == partitions

    wait_for(visible, timeout, message=f"topic {name} with {partitions} partition(s) not visible")


def _to_bytes(data: bytes | str | None) -> bytes | None:
    return data.encode() if isinstance(data, str) else data


def produce(bootstrap: str, topic: str, records: Iterable[Mapping[str, Any]], timeout: float = 30.0) -> None:
    """Produce ``records`` (dicts with optional key, value, partition, headers, timestamp) and flush.

    Keys and values are bytes, str (UTF-8) or None (a None value is a tombstone). Headers are a
    dict or a list of (name, bytes|str|None) pairs. Asserts that every delivery succeeded.
    """
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5})
    errors: list[str] = []
    delivered = 0

    def on_delivery(err: KafkaError | None, msg: Any) -> None:
        nonlocal delivered
        if err is not None:
            errors.append(f"{msg.topic()}[{msg.partition()}]: {err}")
        else:
            delivered += 1

    count = 0
    for record in records:
        kwargs: dict[str, Any] = {
            "key": _to_bytes(record.get("key")),
            "value": _to_bytes(record.get("value")),
        }
        if record.get("partition") is not None:
            kwargs["partition"] = record["partition"]
        if record.get("timestamp") is not None:
            kwargs["timestamp"] = record["timestamp"]
        headers = record.get("headers")
        if headers:
            pairs = headers.items() if isinstance(headers, Mapping) else headers
            kwargs["headers"] = [(k, _to_bytes(v)) for k, v in pairs]
        producer.produce(topic, on_delivery=on_delivery, **kwargs)
        producer.poll(0)
        count += 1
    remaining = producer.flush(timeout)
    assert remaining == 0, f"{remaining} record(s) to {topic} still undelivered after {timeout}s"
    assert not errors, f"delivery failed: {errors}"
    assert delivered == count, f"{delivered} of {count} record(s) to {topic} acknowledged"


def _partitions(client: AdminClient, topic: str) -> list[int]:
    metadata = client.list_topics(topic=topic, timeout=10).topics.get(topic)
    if metadata is None or metadata.error is not None or not metadata.partitions:
        raise AssertionError(f"topic {topic} does not exist ({metadata.error if metadata else 'no metadata'})")
    return sorted(metadata.partitions)


def consume_all(bootstrap: str, topic: str, expected: int | None = None, timeout: float = 30.0) -> list[Message]:
    """Read ``topic`` from the beginning with a throwaway group id that never commits.

    Stops once ``expected`` messages were read, or (``expected=None``) once every partition
    reached its end, or when ``timeout`` passed; returns what was read, ordered by
    (partition, offset). Partitions are assigned directly, so there is no group join to wait for.
    """
    partitions = _partitions(admin(bootstrap), topic)
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"test-read-{uuid.uuid4().hex[:12]}",
            "session.timeout.ms": SESSION_TIMEOUT_MS,
            "enable.auto.commit": False,
            "enable.partition.eof": True,
        }
    )
    messages: list[Message] = []
    at_end: set[int] = set()
    deadline = time.monotonic() + timeout
    try:
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
        while time.monotonic() < deadline:
            if expected is not None and len(messages) >= expected:
                break
            if expected is None and at_end >= set(partitions):
                break
            msg = consumer.poll(min(0.5, max(0.01, deadline - time.monotonic())))
            if msg is None:
                continue
            err = msg.error()
            if err is not None:
                if err.code() == KafkaError._PARTITION_EOF:
                    at_end.add(msg.partition())
                    continue
                if err.fatal():
                    raise KafkaException(err)
                continue  # transient (transport, rebalance, ...): librdkafka recovers
            at_end.discard(msg.partition())
            _, ts = msg.timestamp()
            messages.append(
                Message(
                    topic=msg.topic(),
                    partition=msg.partition(),
                    offset=msg.offset(),
                    key=msg.key(),
                    value=msg.value(),
                    headers=list(msg.headers() or []),
                    timestamp=ts if ts > 0 else None,
                )
            )
    finally:
        consumer.close()
    return sorted(messages, key=lambda m: (m.partition, m.offset))


def committed_offsets(
    bootstrap: str, group: str, topic: str, partitions: Sequence[int] | int = 1
) -> dict[int, int | None]:
    """Committed offset per partition for ``group`` (None when nothing is committed).

    ``partitions`` is a list of partition numbers or a partition count. The group is not joined.
    """
    numbers = list(range(partitions)) if isinstance(partitions, int) else list(partitions)
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False})
    try:
        result = consumer.committed([TopicPartition(topic, p) for p in numbers], timeout=10)
    finally:
        consumer.close()
    out: dict[int, int | None] = {}
    for tp in result:
        if tp.error is not None:
            raise KafkaException(tp.error)
        out[tp.partition] = tp.offset if tp.offset >= 0 else None
    return out
