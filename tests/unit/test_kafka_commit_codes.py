"""How `KafkaSource.commit` classifies librdkafka's answers, code by code (a stand-in consumer gives
each answer; the adapter over the real broker is in tests/integration/test_kafka_source.py).

The rebalance codes mean the group moved on: nothing was committed, and the revocation commits what
settled, so `commit` says False. Anything else may pass (a coordinator away, a timeout) and is a
BrokerUnavailable the worker tries again (tests/unit/test_outcomes.py: a refused commit is tried
again later, the final one with back-off); the adapter itself tries once, there is one retry loop.
What never passes by itself (an ACL missing on the group or topic, a fatal consumer error) is a
FatalError: the sink stops instead of writing on with offsets that never move.
"""

from __future__ import annotations

import logging
from typing import Any

import pytest
from confluent_kafka import KafkaError, KafkaException
from confluent_kafka import TopicPartition as KafkaPartition

import sink.adapters.kafka
from sink.adapters.kafka import KafkaSource, consumer_config
from sink.errors import BrokerUnavailable, FatalError, RetriableError

OFFSETS = {("orders", 0): 7, ("orders", 3): 12}


class AnsweringConsumer:
    """Stands in for confluent_kafka.Consumer: each commit is answered with `answer` (None: done)."""

    answer: KafkaError | None = None

    def __init__(self, config: dict[str, Any]) -> None:
        self.commits: list[tuple[list[KafkaPartition], bool]] = []

    def commit(self, *, offsets: list[KafkaPartition], asynchronous: bool) -> None:
        self.commits.append((offsets, asynchronous))
        if self.answer is not None:
            raise KafkaException(self.answer)


def source_answering(monkeypatch: pytest.MonkeyPatch, code: int | None) -> tuple[KafkaSource, AnsweringConsumer]:
    made: list[AnsweringConsumer] = []

    def build(config: dict[str, Any]) -> AnsweringConsumer:
        consumer = AnsweringConsumer(config)
        consumer.answer = None if code is None else KafkaError(code, f"Commit failed: code {code}")
        made.append(consumer)
        return consumer

    monkeypatch.setattr(sink.adapters.kafka, "Consumer", build)
    source = KafkaSource(consumer_config("", "g", {}), ("orders",), None)
    return source, made[0]


def test_a_commit_is_one_synchronous_call_with_the_offsets(monkeypatch: pytest.MonkeyPatch) -> None:
    source, consumer = source_answering(monkeypatch, None)
    assert source.commit(OFFSETS) is True
    ((partitions, asynchronous),) = consumer.commits
    assert asynchronous is False
    assert [(p.topic, p.partition, p.offset) for p in partitions] == [("orders", 0, 7), ("orders", 3, 12)]


@pytest.mark.parametrize(
    "code", [KafkaError.REBALANCE_IN_PROGRESS, KafkaError.ILLEGAL_GENERATION, KafkaError.UNKNOWN_MEMBER_ID]
)
def test_a_rebalance_code_is_a_skipped_commit(
    code: int, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    source, consumer = source_answering(monkeypatch, code)
    with caplog.at_level(logging.INFO, logger="sink.kafka"):
        assert source.commit(OFFSETS) is False
    assert len(consumer.commits) == 1, "tried once"
    assert f"commit skipped, the group is rebalancing: Commit failed: code {code}" in caplog.messages


@pytest.mark.parametrize(
    "code",
    [
        KafkaError._WAIT_COORD,
        KafkaError.COORDINATOR_NOT_AVAILABLE,
        KafkaError.NOT_COORDINATOR,
        KafkaError.COORDINATOR_LOAD_IN_PROGRESS,
        KafkaError._TIMED_OUT,
        KafkaError.REQUEST_TIMED_OUT,
        KafkaError._TRANSPORT,
        KafkaError.UNKNOWN_TOPIC_OR_PART,
    ],
)
def test_any_other_refusal_is_broker_unavailable_tried_once(code: int, monkeypatch: pytest.MonkeyPatch) -> None:
    source, consumer = source_answering(monkeypatch, code)
    with pytest.raises(BrokerUnavailable, match=f"offset commit failed: Commit failed: code {code}") as refused:
        source.commit(OFFSETS)
    assert isinstance(refused.value, RetriableError)
    assert len(consumer.commits) == 1, "tried once: the worker is the one that tries again"


def test_a_group_the_sink_may_not_commit_for_stops_it_naming_the_group(monkeypatch: pytest.MonkeyPatch) -> None:
    """An ACL missing never passes by itself: the sink stops (exit 1) rather than write on with
    offsets that never move."""
    source, consumer = source_answering(monkeypatch, KafkaError.GROUP_AUTHORIZATION_FAILED)
    with pytest.raises(FatalError) as refused:
        source.commit(OFFSETS)
    assert not isinstance(refused.value, RetriableError) and refused.value.exit_code == 1
    assert str(refused.value) == (
        "not authorized to commit offsets of consumer group 'g' (an ACL allowing Read on the group is missing): "
        f"Commit failed: code {KafkaError.GROUP_AUTHORIZATION_FAILED}"
    )
    assert len(consumer.commits) == 1


def test_a_topic_the_sink_may_not_commit_for_stops_it_naming_topic_and_group(monkeypatch: pytest.MonkeyPatch) -> None:
    source, _consumer = source_answering(monkeypatch, KafkaError.TOPIC_AUTHORIZATION_FAILED)
    with pytest.raises(FatalError, match=r"^not authorized to commit offsets of topic orders in consumer group 'g' "):
        source.commit(OFFSETS)


def test_a_fatal_consumer_error_stops_the_sink(monkeypatch: pytest.MonkeyPatch) -> None:
    """librdkafka's fatal errors (e.g. a static member fenced by another with its group.instance.id)
    leave the consumer unusable: every later call fails the same way."""
    source, consumer = source_answering(monkeypatch, None)
    consumer.answer = KafkaError(KafkaError.FENCED_INSTANCE_ID, "Commit failed: fenced", fatal=True)
    with pytest.raises(
        FatalError, match=r"^offset commit failed, the Kafka consumer cannot go on: Commit failed: fenced$"
    ):
        source.commit(OFFSETS)
