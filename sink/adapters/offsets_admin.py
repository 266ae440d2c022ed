"""reset.OffsetsPort over confluent_kafka's AdminClient: topic metadata, group state, committed
offsets, log start/end and offsets for a time, and altering the group's offsets.

Every KafkaException becomes a SinkError here: an unreachable broker is BrokerUnavailable (exit 1),
a group that still has members is ResetRefused (exit 2), anything else a SinkError (exit 1).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from concurrent.futures import Future
from typing import Any

from confluent_kafka import ConsumerGroupTopicPartitions, KafkaError, KafkaException
from confluent_kafka import TopicPartition as KafkaPartition
from confluent_kafka.admin import AdminClient, OffsetSpec  # type: ignore[attr-defined]  # OffsetSpec: public

from ..errors import BrokerUnavailable, ConfigError, ResetRefused, SinkError
from ..ports import TopicPartition
from ..reset import GroupState

TIMEOUT_S = 10.0
# Consumer-only properties that an AdminClient would warn about; security and client settings stay.
_CONSUMER_ONLY = ("session.", "auto.", "enable.", "max.poll", "group.", "fetch.", "isolation.", "heartbeat.")
_UNREACHABLE = (
    KafkaError._TRANSPORT,
    KafkaError._TIMED_OUT,
    KafkaError._ALL_BROKERS_DOWN,
    KafkaError._RESOLVE,
    KafkaError.REQUEST_TIMED_OUT,
    KafkaError.COORDINATOR_NOT_AVAILABLE,
    KafkaError.NOT_COORDINATOR,
)
_GROUP_ACTIVE = (
    KafkaError.UNKNOWN_MEMBER_ID,
    KafkaError.REBALANCE_IN_PROGRESS,
    KafkaError.ILLEGAL_GENERATION,
    KafkaError.FENCED_INSTANCE_ID,
)
# librdkafka's own lines (connection refused, retries...) are not for the command's output: the
# failure reaches the user once, as the error of the call that needed the broker.
_QUIET = logging.getLogger("sink.librdkafka.reset")
_QUIET.addHandler(logging.NullHandler())
_QUIET.propagate = False


class OffsetsAdmin:
    def __init__(self, bootstrap: str, overrides: Mapping[str, str]) -> None:
        self._bootstrap = bootstrap
        config: dict[str, Any] = {"bootstrap.servers": bootstrap, "client.id": "kafka-sql-sink-reset-offsets"}
        config.update({k: v for k, v in overrides.items() if not k.startswith(_CONSUMER_ONLY)})
        try:
            self._admin = AdminClient({**config, "logger": _QUIET})  # type: ignore[dict-item]
        except KafkaException as exc:
            raise ConfigError(f"SINK_CONSUMER__*: {exc.args[0].str()}") from None

    # -------------------------------------------------------------- reads

    def topics(self) -> dict[str, tuple[int, ...]]:
        try:
            metadata = self._admin.list_topics(timeout=TIMEOUT_S)
        except KafkaException as exc:
            raise self._error(exc.args[0], "topic metadata") from None
        return {
            name: tuple(sorted(topic.partitions))
            for name, topic in metadata.topics.items()
            if topic.error is None and topic.partitions
        }

    def group_state(self, group: str) -> GroupState:
        future = self._admin.describe_consumer_groups([group], request_timeout=TIMEOUT_S)[group]
        try:
            description = future.result()
        except KafkaException as exc:
            if exc.args[0].code() == KafkaError.GROUP_ID_NOT_FOUND:
                return GroupState("DEAD", 0)
            raise self._error(exc.args[0], f"describing group {group}") from None
        state = getattr(description.state, "name", None) or "UNKNOWN"
        return GroupState(state, len(description.members or ()))

    def committed(self, group: str, partitions: Sequence[TopicPartition]) -> dict[TopicPartition, int | None]:
        request = ConsumerGroupTopicPartitions(group, [KafkaPartition(t, p) for t, p in partitions])
        future = self._admin.list_consumer_group_offsets([request], request_timeout=TIMEOUT_S)[group]
        result = self._result(future, f"committed offsets of group {group}")
        out: dict[TopicPartition, int | None] = {}
        for tp in result.topic_partitions:
            if tp.error is not None:
                raise self._error(tp.error, f"committed offset of {tp.topic}:{tp.partition}")
            out[(tp.topic, tp.partition)] = tp.offset if tp.offset >= 0 else None
        return out

    def earliest(self, partitions: Sequence[TopicPartition]) -> dict[TopicPartition, int]:
        return self._list_offsets(partitions, OffsetSpec.earliest(), "earliest")  # type: ignore[return-value,no-untyped-call]

    def latest(self, partitions: Sequence[TopicPartition]) -> dict[TopicPartition, int]:
        return self._list_offsets(partitions, OffsetSpec.latest(), "latest")  # type: ignore[return-value,no-untyped-call]

    def offsets_for_time(
        self, partitions: Sequence[TopicPartition], timestamp_ms: int
    ) -> dict[TopicPartition, int | None]:
        """The first offset whose timestamp is at or after `timestamp_ms`; None when there is none."""
        return self._list_offsets(partitions, OffsetSpec.for_timestamp(timestamp_ms), "offsets for time")

    def _list_offsets(
        self, partitions: Sequence[TopicPartition], spec: OffsetSpec, what: str
    ) -> dict[TopicPartition, int | None]:
        if not partitions:
            return {}
        try:
            futures = self._admin.list_offsets(
                {KafkaPartition(t, p): spec for t, p in partitions}, request_timeout=TIMEOUT_S
            )
        except KafkaException as exc:
            raise self._error(exc.args[0], f"{what} offsets") from None
        out: dict[TopicPartition, int | None] = {}
        for tp, future in futures.items():
            offset = self._result(future, f"{what} offset of {tp.topic}:{tp.partition}").offset
            out[(tp.topic, tp.partition)] = offset if offset >= 0 else None
        return out

    # -------------------------------------------------------------- write

    def alter(self, group: str, offsets: Mapping[TopicPartition, int]) -> None:
        request = ConsumerGroupTopicPartitions(group, [KafkaPartition(t, p, o) for (t, p), o in offsets.items()])
        future = self._admin.alter_consumer_group_offsets([request], request_timeout=TIMEOUT_S)[group]
        result = self._result(future, f"altering the offsets of group {group}")
        for tp in result.topic_partitions:
            if tp.error is not None:
                raise self._error(tp.error, f"altering {tp.topic}:{tp.partition} of group {group}")

    # -------------------------------------------------------------- errors

    def _result(self, future: Future[Any], what: str) -> Any:
        try:
            return future.result()
        except KafkaException as exc:
            raise self._error(exc.args[0], what) from None

    def _error(self, error: KafkaError, what: str) -> SinkError:
        code = error.code()
        if code in _UNREACHABLE:
            return BrokerUnavailable(f"{what}: broker {self._bootstrap} did not answer: {error.str()}")
        if code in _GROUP_ACTIVE:
            return ResetRefused(f"{what}: the group has active members ({error.str()}); stop the sink first")
        return SinkError(f"{what}: {error.str()}")
