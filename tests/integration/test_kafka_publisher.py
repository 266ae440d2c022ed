"""The dead-letter/report producer (`KafkaPublisher`) at its limits, on the real broker or on an
address nothing answers: a full local queue makes `publish` wait for deliveries instead of failing
or dropping, and `flush` gives up after its timeout with DeadLetterUnavailable; every record's
`on_done` is called once, with None only for an acknowledged one."""

from __future__ import annotations

import time

import pytest

from sink.adapters.kafka import KafkaPublisher
from sink.errors import DeadLetterUnavailable
from tests.support.kafka import consume_all, create_topic

pytestmark = pytest.mark.integration

NOBODY = "127.0.0.1:1"  # refuses connections at once


class Deliveries:
    """What `on_done` heard, per record number."""

    def __init__(self) -> None:
        self.done: dict[int, list[Exception | None]] = {}

    def callback(self, n: int):  # type: ignore[no-untyped-def]
        def on_done(error: Exception | None) -> None:
            self.done.setdefault(n, []).append(error)

        return on_done


def test_a_full_queue_waits_for_deliveries_and_loses_nothing(bootstrap_servers: str, unique_name: str) -> None:
    create_topic(bootstrap_servers, unique_name)
    publisher = KafkaPublisher(bootstrap_servers, {"queue.buffering.max.messages": "1"})
    deliveries = Deliveries()
    try:
        for n in range(20):  # a queue of one: every publish after the first meets it full
            publisher.publish(
                unique_name, b"k%d" % n, b"v%d" % n, [("n", b"%d" % n)], 1_700_000_000_000 + n, deliveries.callback(n)
            )
        publisher.flush()
    finally:
        publisher.close()
    assert deliveries.done == {n: [None] for n in range(20)}, "each acknowledged, once"
    records = consume_all(bootstrap_servers, unique_name, expected=20)
    assert [(m.key, m.value, m.headers, m.timestamp) for m in records] == [
        (b"k%d" % n, b"v%d" % n, [("n", b"%d" % n)], 1_700_000_000_000 + n) for n in range(20)
    ]


def test_flush_gives_up_after_its_timeout_and_the_record_fails_later() -> None:
    publisher = KafkaPublisher(NOBODY, {"message.timeout.ms": "2000"}, flush_timeout_s=1.0)
    deliveries = Deliveries()
    try:
        publisher.publish("dlq", b"k", b"v", [], None, deliveries.callback(0))
        started = time.monotonic()
        with pytest.raises(DeadLetterUnavailable, match=r"^1 dead-letter/report records not acknowledged after 1 s$"):
            publisher.flush()
        assert time.monotonic() - started < 1.9, "gave up at its own timeout, before the record's"
        assert deliveries.done == {}, "not acknowledged, not failed yet: librdkafka still tries"
    finally:
        publisher.close()  # waits for the record's message.timeout.ms
    assert list(deliveries.done) == [0] and len(deliveries.done[0]) == 1
    assert isinstance(deliveries.done[0][0], Exception), "failed, never reported as delivered"


def test_a_full_queue_with_no_broker_fails_the_queued_record_after_its_timeout() -> None:
    """A queue of one and a broker away: the second publish waits until the first record's
    `message.timeout.ms` failed it (its on_done hears the error), then queues."""
    publisher = KafkaPublisher(NOBODY, {"queue.buffering.max.messages": "1", "message.timeout.ms": "1000"})
    deliveries = Deliveries()
    try:
        publisher.publish("dlq", b"k", b"first", [], None, deliveries.callback(0))
        started = time.monotonic()
        publisher.publish("dlq", b"k", b"second", [], None, deliveries.callback(1))
        waited = time.monotonic() - started
        assert 0.5 < waited < 5, f"the second publish waited {waited:.1f} s for room in the queue"
        assert list(deliveries.done) == [0] and isinstance(deliveries.done[0][0], Exception)
        publisher.flush()  # returns once the second one failed too (its on_done says so), well before 11 s
    finally:
        publisher.close()
    assert sorted(deliveries.done) == [0, 1] and all(isinstance(d[0], Exception) for d in deliveries.done.values())
