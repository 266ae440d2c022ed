"""`KafkaSource.lag_by_partition` for a partition nothing came from yet (librdkafka gives it no
position): its lag counts from where it starts, start_at's offset or the committed one, else from
where auto.offset.reset puts it; unknown (None) rather than a guess. A stand-in consumer gives the
watermarks and committed offsets (the adapter over the real broker, an idle partition with nothing
committed: tests/integration/test_kafka_source.py)."""

from __future__ import annotations

import time
from typing import Any

import pytest
from confluent_kafka import OFFSET_INVALID, KafkaError, KafkaException
from confluent_kafka import TopicPartition as KafkaPartition

import sink.adapters.kafka
from sink.adapters.kafka import KafkaSource, consumer_config

IDLE, BUSY = ("orders", 1), ("orders", 0)


class StandInConsumer:
    """orders/0 consumed up to 4 (log 0..10); orders/1 nothing consumed yet (log 3..9)."""

    def __init__(self, config: dict[str, Any]) -> None:
        self.positions = {BUSY: 4, IDLE: OFFSET_INVALID}
        self.watermarks = {BUSY: (0, 10), IDLE: (3, 9)}
        self.committed_offsets: dict[tuple[str, int], int] = {}
        self.committed_asked = 0
        self.committed_fails = False

    def subscribe(self, topics: list[str], **callbacks: Any) -> None:
        self.on_assign = callbacks["on_assign"]

    def assign(self, partitions: list[KafkaPartition]) -> None:
        self.assigned = [(p.topic, p.partition, p.offset) for p in partitions]

    def assignment(self) -> list[KafkaPartition]:
        return [KafkaPartition(t, p) for t, p in self.positions]

    def position(self, partitions: list[KafkaPartition]) -> list[KafkaPartition]:
        return [KafkaPartition(p.topic, p.partition, self.positions[(p.topic, p.partition)]) for p in partitions]

    def get_watermark_offsets(self, partition: KafkaPartition, cached: bool) -> tuple[int, int]:
        assert cached, "no request to the broker for the watermarks"
        return self.watermarks[(partition.topic, partition.partition)]

    def committed(self, partitions: list[KafkaPartition], timeout: float) -> list[KafkaPartition]:
        self.committed_asked += 1
        if self.committed_fails:
            raise KafkaException(KafkaError(KafkaError._TIMED_OUT, "timed out"))
        return [
            KafkaPartition(p.topic, p.partition, self.committed_offsets.get((p.topic, p.partition), OFFSET_INVALID))
            for p in partitions
        ]


def stand_in(monkeypatch: pytest.MonkeyPatch, reset: str = "earliest") -> tuple[KafkaSource, StandInConsumer]:
    made: list[StandInConsumer] = []

    def build(config: dict[str, Any]) -> StandInConsumer:
        made.append(StandInConsumer(config))
        return made[0]

    monkeypatch.setattr(sink.adapters.kafka, "Consumer", build)
    source = KafkaSource(consumer_config("", "g", {"auto.offset.reset": reset}), ("orders",), None)
    return source, made[0]


def test_an_idle_partition_lags_by_what_lies_after_its_committed_offset_asked_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    source, consumer = stand_in(monkeypatch)
    consumer.committed_offsets = {IDLE: 5}
    assert source.lag_by_partition() == {BUSY: 6, IDLE: 4}
    assert source.lag() == 10
    assert consumer.committed_asked == 1, "asked once per assignment, not at every reading"


@pytest.mark.parametrize(("reset", "lag"), [("earliest", 6), ("smallest", 6), ("latest", 0), ("error", None)])
def test_with_no_committed_offset_or_one_outside_the_log_auto_offset_reset_tells(
    reset: str, lag: int | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    for committed in ({}, {IDLE: 1}, {IDLE: 12}):  # none, deleted by retention, past the end
        source, consumer = stand_in(monkeypatch, reset)
        consumer.committed_offsets = committed
        assert source.lag_by_partition() == (None if lag is None else {BUSY: 6, IDLE: lag}), committed


def test_a_partition_start_at_started_lags_from_there(monkeypatch: pytest.MonkeyPatch) -> None:
    source, consumer = stand_in(monkeypatch)
    source.subscribe(lambda _: None, lambda _: None, start_at=lambda names: {IDLE: 7})
    consumer.on_assign(consumer, [KafkaPartition("orders", 1)])
    assert consumer.assigned == [("orders", 1, 7)]
    assert source.lag_by_partition() == {BUSY: 6, IDLE: 2}
    assert consumer.committed_asked == 0, "start_at's offset, not the group's committed one"


def test_unknown_while_the_committed_offset_cannot_be_read_asked_again_later(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(sink.adapters.kafka, "COMMITTED_RETRY_S", 0.2)
    source, consumer = stand_in(monkeypatch)
    consumer.committed_fails = True
    assert source.lag_by_partition() is None
    assert source.lag_by_partition() is None
    assert consumer.committed_asked == 1, "not at every reading while the broker does not answer"
    consumer.committed_fails = False
    time.sleep(0.25)
    assert source.lag_by_partition() == {BUSY: 6, IDLE: 6}
    assert consumer.committed_asked == 2
