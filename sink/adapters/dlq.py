"""The Kafka edge of `sink dlq inspect | redrive`: a consumer that reads the dead-letter topic by
assigning its partitions (it never joins a group, so the sink's group is left alone) and keeps
the re-drive cursor in a progress group by explicit commits; a producer that sends records back
to their source topic and waits for each acknowledgement.

The end of the topic is not taken from ListOffsets (wrong on some brokers) but decided by
`dlq.EndOfTopic`: end-of-partition events, which come with each fetch's high watermark, plus a
quiet period.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, Message, Producer, TopicPartition

from ..dlq import EndOfTopic
from ..dlq_commands import Outgoing
from ..errors import BrokerUnavailable, ConfigError, FatalError, SinkError
from ..logs import librdkafka_logger
from ..model import RawRecord
from .kafka import consumer_config, to_raw

TIMEOUT_S = 10.0
# librdkafka's lines go through logging (formatted, masked, repeats held back), warnings and up:
# its INFO lines (connections closed when idle, ...) are not news for a command's output.
LOG = librdkafka_logger("dlq")
LOG.setLevel(logging.WARNING)
log = logging.getLogger("sink.dlq")


def _kafka_error(exc: KafkaException, what: str, bootstrap: str) -> SinkError:
    error: KafkaError = exc.args[0]
    if error.code() in (KafkaError._TRANSPORT, KafkaError._TIMED_OUT, KafkaError._ALL_BROKERS_DOWN):
        return BrokerUnavailable(f"{what}: broker {bootstrap} did not answer: {error.str()}")
    return SinkError(f"{what}: {error.str()}")


class DeadLetterReader:
    """dlq_commands.DeadLetterReader. `group` is the progress group (only `commit` writes it)."""

    def __init__(self, bootstrap: str, group: str, overrides: Mapping[str, str], idle_s: float = 5.0) -> None:
        config = consumer_config(bootstrap, group, overrides)
        config.update(
            {
                "enable.partition.eof": True,  # the end of each partition, from the fetch's high watermark
                "auto.offset.reset": "earliest",  # a cursor below the log start: from the start, not the end
                "enable.auto.offset.store": False,
                "client.id": f"kafka-sql-sink-dlq-{group}",
                "logger": LOG,
            }
        )
        self._bootstrap = bootstrap
        self._idle_s = idle_s
        self._end = "not read"
        try:
            self._consumer = Consumer(config)
        except KafkaException as exc:
            raise ConfigError(f"SINK_CONSUMER__*: {exc.args[0].str()}") from None

    def topics(self) -> dict[str, tuple[int, ...]]:
        try:
            metadata = self._consumer.list_topics(timeout=TIMEOUT_S)
        except KafkaException as exc:
            raise _kafka_error(exc, "topic metadata", self._bootstrap) from None
        return {
            name: tuple(sorted(topic.partitions))
            for name, topic in metadata.topics.items()
            if topic.error is None and topic.partitions
        }

    def committed(self, topic: str, partitions: Sequence[int]) -> dict[int, int | None]:
        try:
            result = self._consumer.committed([TopicPartition(topic, p) for p in partitions], timeout=TIMEOUT_S)
        except KafkaException as exc:
            raise _kafka_error(exc, "the progress group's committed offsets", self._bootstrap) from None
        out: dict[int, int | None] = {}
        for tp in result:
            if tp.error is not None:
                raise _kafka_error(KafkaException(tp.error), "the progress group's committed offsets", self._bootstrap)
            out[tp.partition] = tp.offset if tp.offset >= 0 else None
        return out

    def read(self, topic: str, start: Mapping[int, int | None], stop: Callable[[], bool]) -> Iterator[RawRecord]:
        """Every record from `start` (None: the beginning) up to the end, in offset order per partition."""
        assignment = [TopicPartition(topic, p, OFFSET_BEGINNING if o is None else o) for p, o in start.items()]
        end = EndOfTopic(frozenset(start), time.monotonic(), idle_s=self._idle_s)
        problem: str | None = None
        self._consumer.assign(assignment)
        try:
            while not stop():
                for message in self._consumer.consume(num_messages=500, timeout=0.2):
                    error, partition = message.error(), message.partition()
                    assert partition is not None  # a consumed message always has its partition
                    if error is None:
                        end.record(partition, time.monotonic())
                        yield to_raw(message)
                    elif error.code() == KafkaError._PARTITION_EOF:
                        end.end_of_partition(partition, time.monotonic())
                    elif error.fatal():
                        raise FatalError(f"reading {topic}: {error.str()}")
                    else:
                        problem = error.str()  # librdkafka recovers by itself; said at the end
                why = end.why(time.monotonic())
                if why is not None:
                    self._end = why if problem is None else f"{why}; last broker error: {problem}"
                    return
            self._end = "interrupted"
        finally:
            self._consumer.unassign()

    def end(self) -> str:
        return self._end

    def commit(self, topic: str, offsets: Mapping[int, int]) -> None:
        partitions = [TopicPartition(topic, p, o) for p, o in offsets.items()]
        for attempt in range(5):
            try:
                self._consumer.commit(offsets=partitions, asynchronous=False)
                return
            except KafkaException as exc:
                if not exc.args[0].retriable() or attempt == 4:
                    raise _kafka_error(exc, "committing the re-drive progress", self._bootstrap) from None
                time.sleep(0.2 * 2**attempt)

    def close(self) -> None:
        try:
            self._consumer.close()  # never subscribed: leaves no group behind
        except (KafkaException, RuntimeError) as exc:
            log.warning("closing the dead-letter consumer: %s", exc)


class Republisher:
    """dlq_commands.Republisher: an idempotent producer with acks=all, like the sink's dead-letter
    producer, with the same SINK_PRODUCER__* properties; the record goes to its original partition
    (the key's partition under the original producer's partitioner) when the topic still has it."""

    def __init__(self, bootstrap: str, overrides: Mapping[str, str]) -> None:
        config: dict[str, Any] = {
            "bootstrap.servers": bootstrap,
            "linger.ms": 5,
            "message.timeout.ms": 60_000,
            "client.id": "kafka-sql-sink-redrive",
        }
        config.update(overrides)
        config.update({"enable.idempotence": True, "acks": "all", "logger": LOG})
        self._timeout_s = float(config.get("message.timeout.ms", 60_000)) / 1000 + 10
        try:
            self._producer = Producer(config)
        except KafkaException as exc:
            raise ConfigError(f"SINK_PRODUCER__*: {exc.args[0].str()}") from None

    def send(self, records: Sequence[Outgoing]) -> list[Exception | None]:
        pending = object()
        results: list[Any] = [pending] * len(records)

        def on_delivery(index: int) -> Callable[[KafkaError | None, Message], None]:
            def done(error: KafkaError | None, _message: Message) -> None:
                results[index] = None if error is None else KafkaException(error)

            return done

        refused: Exception | None = None
        for index, (topic, partition, key, value, headers) in enumerate(records):
            if refused is not None:  # the cursor stays before a refused record: what follows would go twice
                results[index] = RuntimeError(f"not sent: an earlier record of the batch was refused ({refused})")
                continue
            kwargs: dict[str, Any] = {"key": key, "value": value, "headers": headers, "on_delivery": on_delivery(index)}
            if partition is not None:
                kwargs["partition"] = partition
            while True:
                try:
                    self._producer.produce(topic, **kwargs)
                    break
                except BufferError:
                    self._producer.poll(0.1)
                except (KafkaException, TypeError, ValueError) as exc:
                    results[index] = refused = exc
                    break
            self._producer.poll(0)
        deadline = time.monotonic() + self._timeout_s
        while self._producer.flush(1.0) > 0 and time.monotonic() < deadline:
            pass
        return [RuntimeError("not acknowledged in time") if r is pending else r for r in results]

    def close(self) -> None:
        if self._producer.flush(5.0) > 0:
            self._producer.purge()
            self._producer.poll(0)
        close = getattr(self._producer, "close", None)
        if close is not None:
            close()
