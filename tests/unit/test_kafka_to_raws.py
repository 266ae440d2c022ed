"""`to_raws`, the consumer's conversion of a whole poll, gives exactly what `to_raw` gives record by
record: headers (none, empty, several, a None value), a missing timestamp (-1), no key, no value,
several topics and partitions. Messages are confluent-kafka's own, built as librdkafka's would be."""

from __future__ import annotations

from confluent_kafka import Message

from sink.adapters.kafka import to_raw, to_raws
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
