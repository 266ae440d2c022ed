"""`to_raws`, the consumer's conversion of a whole poll, gives exactly what `to_raw` gives record by
record: headers (none, empty, several, a None value), a missing timestamp (-1), no key, no value,
several topics and partitions; and `KafkaSource.poll` hands events (a partition's end, a fatal
error) to its error handling, never as records. Messages are confluent-kafka's own, built as
librdkafka's would be; the consumer is a stand-in that returns them."""

from __future__ import annotations

from typing import Any

import pytest
from confluent_kafka import KafkaError, Message

import sink.adapters.kafka
from sink.adapters.kafka import KafkaSource, consumer_config, to_raw, to_raws
from sink.errors import FatalError
from sink.model import Coord, RawRecord

MESSAGES = [
    Message(topic="orders", partition=0, offset=7, key=b"k", value=b"v", timestamp=(1, 1_700_000_000_000)),
    Message(topic="orders", partition=3, offset=0, key=None, value=None, timestamp=(0, -1)),
    Message(topic="b", partition=1, offset=2**40, key=b"", value=b"\x00", headers=[], timestamp=(2, 0)),
    Message(topic="b", partition=1, offset=9, value=b"x", headers=[("h", b"1"), ("h", None)], timestamp=(1, 5)),
]


def test_a_poll_converts_as_its_records_one_by_one() -> None:
    assert to_raws(MESSAGES) == [to_raw(message) for message in MESSAGES]


def test_the_fields_of_a_record() -> None:
    first, missing, empty, headed = to_raws(MESSAGES)
    assert first == RawRecord(Coord("orders", 0, 7), b"k", b"v", (), 1_700_000_000_000)
    assert (missing.key, missing.value, missing.timestamp) == (None, None, None)
    assert (empty.coord, empty.headers, empty.timestamp) == (Coord("b", 1, 2**40), (), 0)
    assert headed.headers == (("h", b"1"), ("h", None))
    assert all(type(raw) is RawRecord and type(raw.coord) is Coord for raw in to_raws(MESSAGES))


def test_an_empty_poll() -> None:
    assert to_raws([]) == []


class PollingConsumer:
    """Hands out one prepared poll's messages, librdkafka's events among them."""

    def __init__(self, config: dict[str, Any]) -> None:
        self.messages: list[Message] = []

    def consume(self, num_messages: int, timeout: float) -> list[Message]:
        messages, self.messages = self.messages, []
        return messages


def polling(monkeypatch: pytest.MonkeyPatch, messages: list[Message]) -> KafkaSource:
    consumer = PollingConsumer({})
    consumer.messages = messages
    monkeypatch.setattr(sink.adapters.kafka, "Consumer", lambda config: consumer)
    return KafkaSource(consumer_config("", "g", {}), ("orders",), None)


def test_a_poll_of_records_only_is_converted_whole(monkeypatch: pytest.MonkeyPatch) -> None:
    assert polling(monkeypatch, MESSAGES).poll(500, 0.1) == [to_raw(message) for message in MESSAGES]


def test_an_event_among_the_records_is_handled_and_never_becomes_a_record(monkeypatch: pytest.MonkeyPatch) -> None:
    end = Message(error=KafkaError(KafkaError._PARTITION_EOF), topic="orders", partition=0, offset=8)
    records = polling(monkeypatch, [MESSAGES[0], end, MESSAGES[1]]).poll(500, 0.1)
    assert records == [to_raw(MESSAGES[0]), to_raw(MESSAGES[1])]
    fatal = Message(error=KafkaError(KafkaError._FATAL, "fenced", fatal=True))
    with pytest.raises(FatalError, match="fenced"):
        polling(monkeypatch, [MESSAGES[0], fatal]).poll(500, 0.1)
