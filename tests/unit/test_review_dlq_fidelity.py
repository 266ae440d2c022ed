"""Review: dead letters against Kafka Connect's DeadLetterQueueReporter (apache/kafka,
connect/runtime/.../errors/DeadLetterQueueReporter.java): the context headers are *added* after
the record's own headers (`headers.add`, never removed or replaced, so a record that failed
before carries both blocks and readers take the last one); and Connect refuses a dead-letter topic
the connector consumes (SinkConnectorConfig.validate)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from sink import dlq
from sink.deadletter import PREFIX
from sink.errors import ConfigError, DecodeError
from sink.model import Coord, RawRecord
from sink.outcomes import OutcomeRouter, RoutingRules


class Publisher:
    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []
        self.pending: list[Callable[[Exception | None], None]] = []

    def publish(self, topic, key, value, headers, timestamp, on_done) -> None:  # type: ignore[no-untyped-def]
        self.sent.append({"topic": topic, "key": key, "value": value, "headers": list(headers), "ts": timestamp})
        self.pending.append(on_done)

    def flush(self) -> None:
        pending, self.pending = self.pending, []
        for on_done in pending:
            on_done(None)


EARLIER = [(PREFIX + "topic", b"elsewhere"), (PREFIX + "partition", b"7"), (PREFIX + "offset", b"99")]


def test_a_record_that_failed_before_keeps_its_old_context_and_gets_a_new_last_block() -> None:
    publisher = Publisher()
    rules = RoutingRules(connector_name="c", tolerance="all", dlq_topic="dlq", dlq_context_headers=True)
    router = OutcomeRouter(rules, publisher)
    raw = RawRecord(Coord("orders", 2, 41), b"k", b"{bad", (("a", b"1"), *EARLIER), 1_700_000_000_000)
    router.tracker.track(raw.coord)
    router.record_failed(raw, DecodeError("invalid JSON"))
    router.flush()
    [sent] = publisher.sent
    headers = sent["headers"]
    assert headers[:4] == [("a", b"1"), *EARLIER], "Connect adds, it does not remove the earlier block"
    assert [n for n, _ in headers].count(PREFIX + "topic") == 2
    letter = dlq.parse(RawRecord(Coord("dlq", 0, 0), sent["key"], sent["value"], tuple(headers), sent["ts"]))
    assert letter.source == Coord("orders", 2, 41), "the last block (lastHeader) says where it failed now"
    assert letter.stage == "VALUE_CONVERTER" and letter.exception_class == "sink.errors.DecodeError"


def test_a_failed_record_read_from_the_dead_letter_topic_stops_the_sink_instead_of_looping() -> None:
    publisher = Publisher()
    router = OutcomeRouter(RoutingRules(tolerance="all", dlq_topic="orders"), publisher)
    raw = RawRecord(Coord("orders", 0, 5), b"k", b"{bad", (), None)
    router.tracker.track(raw.coord)
    with pytest.raises(ConfigError, match="SINK_ERRORS_DEADLETTERQUEUE_TOPIC_NAME"):
        router.record_failed(raw, DecodeError("invalid JSON"))
    router.flush()
    assert publisher.sent == [], "nothing dead-lettered into the topic it was read from"
    assert router.tracker.committable() == {}, "not settled: read again after the configuration is fixed"
