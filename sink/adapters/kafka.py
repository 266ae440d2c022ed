"""The Kafka edge: a group consumer with manual commits (worker.Source) and an idempotent producer
for dead-letter records and reports (routing.Publisher). Errors are classified by KafkaError code."""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Mapping
from itertools import repeat
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer
from confluent_kafka import TopicPartition as KafkaPartition

from ..errors import BrokerUnavailable, ConfigError, DeadLetterUnavailable, FatalError
from ..logs import librdkafka_logger
from ..model import Coord, RawRecord, make
from ..ports import MessageTooLarge, TopicPartition

log = logging.getLogger("sink.kafka")
# librdkafka's own lines go through Python logging (same format, JSON too, levels mapped from syslog's
# by confluent-kafka, repeats held back by logs.setup_logging), never straight to stderr: every client
# made here is given a logger.
LIBRDKAFKA_LOG = librdkafka_logger()
# Client errors (broker down, ...) repeat many times a second: logs.setup_logging throttles this logger.
CLIENT_LOG = logging.getLogger("sink.kafka.client")
# The start-up probes build throw-away clients; what librdkafka says about them is not news.
_PROBE_LOG = logging.getLogger("sink.kafka.probe")
_PROBE_LOG.propagate = False
_PROBE_LOG.addHandler(logging.NullHandler())

Headers = list[tuple[str, bytes | None]]

# Commit failures that mean "the group moved on": the revoke path already settled what it could.
_COMMIT_REBALANCED = (
    KafkaError.REBALANCE_IN_PROGRESS,
    KafkaError.ILLEGAL_GENERATION,
    KafkaError.UNKNOWN_MEMBER_ID,
)

# Commit refusals no retry gets past: an operator has to grant the ACL (Read on the group, on the topic).
_COMMIT_NOT_AUTHORIZED = (KafkaError.GROUP_AUTHORIZATION_FAILED, KafkaError.TOPIC_AUTHORIZATION_FAILED)

# Where librdkafka starts a partition with no valid start offset (auto.offset.reset's synonyms).
_RESET_TO_START = frozenset({"smallest", "earliest", "beginning"})
_RESET_TO_END = frozenset({"largest", "latest", "end"})
# The lag of a partition nothing came from needs its committed offset: one request per assignment
# (on the loop's thread, so briefly), asked again no sooner than this after it failed.
COMMITTED_TIMEOUT_S = 1.0
COMMITTED_RETRY_S = 30.0


def consumer_config(bootstrap: str, group_id: str, overrides: Mapping[str, str]) -> dict[str, Any]:
    config: dict[str, Any] = {
        "bootstrap.servers": bootstrap,
        "group.id": group_id,
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "auto.offset.reset": "earliest",
        "enable.partition.eof": False,
        "client.id": f"kafka-sql-sink-{group_id}",
    }
    config.update(overrides)
    config["enable.auto.commit"] = False  # offsets move only when records settled: not negotiable
    return config


def subscription(topics: tuple[str, ...], topics_regex: str | None) -> list[str]:
    """librdkafka treats a name starting with ^ as a regular expression."""
    if topics_regex:
        return [topics_regex if topics_regex.startswith("^") else "^" + topics_regex]
    return list(topics)


# ------------------------------------------------------------------------------ start-up validation


def validate_consumer_config(overrides: Mapping[str, str], topics: tuple[str, ...], topics_regex: str | None) -> None:
    """Build (and close) a consumer with the user's properties and subscription, without a broker,
    so that a typo, a bad value or a regex librdkafka cannot compile is a ConfigError at start-up."""
    config = consumer_config("", "sink-config-probe", overrides)
    config.pop("bootstrap.servers")  # no broker: nothing to connect to, nothing to wait for
    consumer = _build(Consumer, config, overrides, "SINK_CONSUMER__")
    try:
        consumer.subscribe(subscription(topics, topics_regex))
    except KafkaException as exc:
        variable = "SINK_TOPICS_REGEX" if topics_regex else "SINK_TOPICS"
        raise ConfigError(f"{variable}: librdkafka refused the subscription ({exc.args[0].str()})") from None
    finally:
        consumer.close()


def validate_producer_config(overrides: Mapping[str, str]) -> None:
    """As `validate_consumer_config`, for the dead-letter/report producer's properties."""
    _build(Producer, dict(overrides), overrides, "SINK_PRODUCER__").flush(0)


def _build(client: Any, config: Mapping[str, Any], overrides: Mapping[str, str], prefix: str) -> Any:
    try:
        return client({**config, "logger": _PROBE_LOG})
    except KafkaException as whole:
        base = {k: v for k, v in config.items() if k not in overrides}
        for name, value in overrides.items():  # which property: try each alone, rather than parse the text
            try:
                client({**base, name: value, "logger": _PROBE_LOG})
            except KafkaException as exc:
                raise ConfigError(_refused(prefix, name, value, exc)) from None
        reason = _no_values(whole)
        if any(_quotes(reason, str(value)) for value in overrides.values()):
            reason = "its reason quotes a value"
        raise ConfigError(f"{prefix}*: librdkafka refused the combination ({reason})") from None


def _refused(prefix: str, name: str, value: str, exc: KafkaException) -> str:
    variable = prefix + name.upper().replace(".", "_")
    reason = _no_values(exc)
    if _quotes(reason, str(value)):  # a form that quotes the value after all: say less
        reason = "librdkafka refused the value"
    return f"{variable}: {reason}"


def _quotes(reason: str, value: str) -> bool:
    """Whether librdkafka's reason quotes the value or one element of it (a list property's
    refusal names the element it refused: `Unsupported partition.assignment.strategy: x`)."""
    lowered = reason.lower()
    parts = [value, *re.split(r"[\s,;]+", value)]
    return any(len(part) >= 3 and part.lower() in lowered for part in parts if part)


def _no_values(exc: KafkaException) -> str:
    """librdkafka's reason without the value it quotes (a value may be a credential)."""
    text = exc.args[0].str()
    text = re.sub(r'Invalid value "[^"]*"', "Invalid value", text)
    return re.sub(r"(property \"[^\"]+\") value \S+", r"\1 value", text).strip()


def to_raw(message: Message) -> RawRecord:
    """One consumed record (not an error) as a RawRecord."""
    return to_raws([message])[0]


def to_raws(messages: list[Message]) -> list[RawRecord]:
    """Consumed records (none an error) as RawRecords, field by field over the lot: C-level passes,
    without a Python call per record (half the cost). A record always has a topic, partition and
    offset, and its headers are (name, value) pairs: no run-time check, this is the hot path."""
    coords = map(
        make,
        repeat(Coord),
        zip(map(Message.topic, messages), map(Message.partition, messages), map(Message.offset, messages), strict=True),
    )
    headers = [tuple(listed) if listed else () for listed in map(Message.headers, messages)]
    stamps = [stamp if stamp >= 0 else None for _kind, stamp in map(Message.timestamp, messages)]
    fields = zip(coords, map(Message.key, messages), map(Message.value, messages), headers, stamps, strict=True)
    return list(map(make, repeat(RawRecord), fields))


class KafkaSource:
    """worker.Source over confluent_kafka.Consumer."""

    def __init__(self, config: Mapping[str, Any], topics: tuple[str, ...], topics_regex: str | None) -> None:
        self._consumer = Consumer({**config, "logger": LIBRDKAFKA_LOG})
        self._group = str(config.get("group.id"))
        self._topics = subscription(topics, topics_regex)
        # Cooperative rebalancing hands over only the partitions that move (incremental_assign).
        self._cooperative = "cooperative" in str(config.get("partition.assignment.strategy", ""))
        self._paused = False
        self._paused_partitions: dict[TopicPartition, KafkaPartition] = {}  # paused, maybe revoked since
        self._reset = str(config.get("auto.offset.reset", "largest")).lower()  # librdkafka's default
        # Where each assigned partition started (start_at's offset, else the committed one; None:
        # none committed), for the lag of a partition nothing came from yet. Missing: not known yet.
        self._starts: dict[TopicPartition, int | None] = {}
        self._ask_committed_after = 0.0  # monotonic time

    def subscribe(
        self,
        on_assign: Callable[[list[TopicPartition]], None],
        on_revoke: Callable[[list[TopicPartition]], None],
        *,
        start_at: Callable[[list[TopicPartition]], Mapping[TopicPartition, int]] | None = None,
    ) -> None:
        """With `start_at` (exactly-once), each assignment asks it where the partitions start and
        assigns them itself from there, inside the callback (confluent-kafka then does not assign
        them again; librdkafka fetches from the given offsets, or from the committed offset, then
        auto.offset.reset, for a partition left at OFFSET_INVALID). While paused, the callback
        assigns the partitions itself too and pauses them before it returns: librdkafka pauses
        only assigned partitions, and the `consume` the callback runs in already returns records
        of partitions assigned and started in it."""

        def assigned(consumer: Consumer, partitions: list[KafkaPartition]) -> None:
            names = [(p.topic, p.partition) for p in partitions]
            for name in names:
                self._starts.pop(name, None)
            on_assign(names)
            if start_at is not None or self._paused:
                self._assign_from(consumer, partitions, {} if start_at is None else start_at(names))
            if self._paused:
                self._pause_newly_assigned(partitions)

        def revoked(_consumer: Consumer, partitions: list[KafkaPartition]) -> None:
            names = [(p.topic, p.partition) for p in partitions]
            for name in names:
                self._starts.pop(name, None)
            on_revoke(names)

        self._consumer.subscribe(self._topics, on_assign=assigned, on_revoke=revoked, on_lost=revoked)

    def _assign_from(
        self, consumer: Consumer, partitions: list[KafkaPartition], start: Mapping[TopicPartition, int]
    ) -> None:
        for p in partitions:
            offset = start.get((p.topic, p.partition))
            if offset is not None:
                p.offset = offset
                self._starts[(p.topic, p.partition)] = offset
        if self._cooperative:
            consumer.incremental_assign(partitions)
        else:
            consumer.assign(partitions)

    def _pause_newly_assigned(self, partitions: list[KafkaPartition]) -> None:
        try:
            self._remember_and_pause(partitions)
        except KafkaException as exc:
            log.warning("pausing the partitions assigned: %s", exc.args[0].str())

    def poll(self, max_records: int, timeout: float) -> list[RawRecord]:
        """What the consumer holds now, up to `max_records`; only when it holds nothing, wait up to
        `timeout`. librdkafka's batch consume waits for all `max_records` until the timeout, which
        would idle the loop while fewer are fetched than asked."""
        messages = self._consumer.consume(num_messages=max_records, timeout=0)
        if not messages and timeout > 0:
            messages = self._consumer.consume(num_messages=max_records, timeout=timeout)
        if any(map(Message.error, messages)):  # rare: an event among the records
            return self._records_among_events(messages)
        return to_raws(messages)

    def _records_among_events(self, messages: list[Message]) -> list[RawRecord]:
        """The records of a poll that holds events too (a partition's end, an error), which are
        handled in turn first."""
        records = []
        for message in messages:
            error = message.error()
            if error is None:
                records.append(message)
            else:
                self._on_error(error)
        return to_raws(records)

    @staticmethod
    def _on_error(error: KafkaError) -> None:
        if error.fatal():
            raise FatalError(f"Kafka consumer: {error.str()}")
        if error.code() == KafkaError._PARTITION_EOF:
            return
        # librdkafka reconnects by itself; an unreachable broker is an outage to wait out, not a stop.
        CLIENT_LOG.warning("Kafka consumer: %s", error.str())

    def commit(self, offsets: Mapping[TopicPartition, int]) -> bool:
        """One synchronous commit; False when the group is rebalancing (nothing was committed: the
        worker commits again, in the revocation or at its next commit). A refusal that may pass is
        BrokerUnavailable, which the worker tries again (with back-off for the final one); one that
        never will (an ACL missing, the consumer's fatal error) is a FatalError: the sink stops
        rather than write on with offsets that never move."""
        partitions = [KafkaPartition(t, p, o) for (t, p), o in offsets.items()]
        try:
            self._consumer.commit(offsets=partitions, asynchronous=False)
        except KafkaException as exc:
            error: KafkaError = exc.args[0]
            if error.code() in _COMMIT_REBALANCED:
                log.info("commit skipped, the group is rebalancing: %s", error.str())
                return False
            if error.fatal():
                raise FatalError(f"offset commit failed, the Kafka consumer cannot go on: {error.str()}") from None
            if error.code() in _COMMIT_NOT_AUTHORIZED:
                raise FatalError(self._not_authorized(error, offsets)) from None
            raise BrokerUnavailable(f"offset commit failed: {error.str()}") from None
        return True

    def _not_authorized(self, error: KafkaError, offsets: Mapping[TopicPartition, int]) -> str:
        if error.code() == KafkaError.GROUP_AUTHORIZATION_FAILED:
            what = f"consumer group {self._group!r} (an ACL allowing Read on the group is missing)"
        else:
            topics = ", ".join(sorted({topic for topic, _ in offsets}))
            what = f"topic {topics} in consumer group {self._group!r} (an ACL allowing Read on the topic is missing)"
        return f"not authorized to commit offsets of {what}: {error.str()}"

    def pause(self) -> None:
        """Stop fetching from every assigned partition (polling goes on, so we stay in the group).
        Partitions assigned while paused are paused too, in the rebalance callback (see `subscribe`)."""
        self._paused = True
        self._pause_assigned()

    def resume(self) -> None:
        """Resume every partition paused, also those revoked meanwhile: librdkafka keeps a
        partition's pause across a revocation, so one assigned again later would stay paused."""
        self._paused = False
        self._on_assigned(self._consumer.resume, "resuming")
        paused, self._paused_partitions = self._paused_partitions, {}
        if paused:
            try:
                self._consumer.resume(list(paused.values()))
            except KafkaException as exc:
                log.warning("resuming the partitions: %s", exc.args[0].str())

    def _pause_assigned(self) -> None:
        self._on_assigned(self._remember_and_pause, "pausing")

    def _remember_and_pause(self, partitions: list[KafkaPartition]) -> None:
        self._paused_partitions.update({(p.topic, p.partition): p for p in partitions})
        self._consumer.pause(partitions)

    def _on_assigned(self, action: Callable[[list[KafkaPartition]], None], doing: str) -> None:
        try:
            assignment = self._consumer.assignment()
            if assignment:
                action(assignment)
        except KafkaException as exc:
            log.warning("%s the partitions: %s", doing, exc.args[0].str())

    def lag(self) -> int | None:
        """Records behind the end of the log over the assigned partitions (None: unknown, not 0)."""
        per_partition = self.lag_by_partition()
        return None if per_partition is None else sum(per_partition.values())

    def lag_by_partition(self) -> dict[TopicPartition, int] | None:
        """Records behind the end of the log per assigned partition, from the watermarks cached
        from fetches (no request to the broker); None while any of them is unknown (not in the
        group yet, nothing fetched yet, the broker unreachable). A partition nothing came from
        yet has no position: its lag counts from where it starts (`_lag_from_start`)."""
        try:
            assignment = self._consumer.assignment()
            if not assignment:
                return None
            positions = self._consumer.position(assignment)
            if not self._starts_known([p for p in positions if p.offset < 0]):
                return None
            lags: dict[TopicPartition, int] = {}
            for position in positions:
                low, high = self._consumer.get_watermark_offsets(position, cached=True)
                if high < 0 or position.topic is None:
                    return None
                name = (position.topic, position.partition)
                lag = max(0, high - position.offset) if position.offset >= 0 else self._lag_from_start(name, low, high)
                if lag is None:
                    return None
                lags[name] = lag
            return lags
        except (KafkaException, RuntimeError):
            return None

    def _lag_from_start(self, name: TopicPartition, low: int, high: int) -> int | None:
        """A partition nothing came from: behind by what lies from its start to the end of the
        log. A start outside the log (or none) is where auto.offset.reset puts the fetcher: the
        log's start or its end; None with `error` (no start at all) or the log's start unknown."""
        start = self._starts.get(name)
        if low < 0:
            return None
        if start is not None and low <= start <= high:
            return high - start
        if self._reset in _RESET_TO_START:
            return high - low
        if self._reset in _RESET_TO_END:
            return 0
        return None

    def _starts_known(self, idle: list[KafkaPartition]) -> bool:
        """Look up, once per assignment, the committed offsets of the partitions nothing came
        from whose start is not known yet; False while any start is unknown (the lookup failed,
        or failed less than COMMITTED_RETRY_S ago)."""
        unknown = [KafkaPartition(p.topic, p.partition) for p in idle if (p.topic, p.partition) not in self._starts]
        if not unknown:
            return True
        if time.monotonic() < self._ask_committed_after:
            return False
        try:
            committed = self._consumer.committed(unknown, timeout=COMMITTED_TIMEOUT_S)
        except KafkaException:
            committed = []
        for p in committed:
            if p.error is None and p.topic is not None:
                self._starts[(p.topic, p.partition)] = p.offset if p.offset >= 0 else None
        if all((p.topic, p.partition) in self._starts for p in unknown):
            return True
        self._ask_committed_after = time.monotonic() + COMMITTED_RETRY_S
        return False

    def close(self) -> None:
        try:
            self._consumer.close()  # leaves the group at once instead of waiting for the session to expire
        except (KafkaException, RuntimeError) as exc:
            log.warning("closing the consumer: %s", exc)


class KafkaPublisher:
    """routing.Publisher: an idempotent producer with acks=all for dead-letter records and reports.

    Every failure reaches the caller through `on_done` (delivery reports, and errors raised by
    `produce` itself), so nothing is skipped silently. `flush` blocks until every record is
    acknowledged or failed: librdkafka retries by itself up to `message.timeout.ms` (default here
    60 s), after which the delivery report carries the error; a producer's fatal error (idempotence
    broken) fails everything still queued.
    """

    def __init__(self, bootstrap: str, overrides: Mapping[str, str], flush_timeout_s: float | None = None) -> None:
        config: dict[str, Any] = {
            "bootstrap.servers": bootstrap,
            "enable.idempotence": True,
            "acks": "all",
            "linger.ms": 5,
            "message.timeout.ms": 60_000,
            "client.id": "kafka-sql-sink-producer",
        }
        config.update(overrides)
        config["enable.idempotence"] = True  # settled means acknowledged exactly once: not negotiable
        config["acks"] = "all"
        config["error_cb"] = self._on_error
        self._producer = Producer({**config, "logger": LIBRDKAFKA_LOG})
        timeout_ms = float(config.get("message.timeout.ms", 60_000)) or 300_000.0
        self._flush_timeout = flush_timeout_s if flush_timeout_s is not None else timeout_ms / 1000 + 10
        self._fatal: KafkaError | None = None

    def _on_error(self, error: KafkaError) -> None:
        if error.fatal():
            self._fatal = error
            log.error("dead-letter/report producer: fatal error: %s", error.str())
        else:  # transport errors: librdkafka reconnects and retries on its own until message.timeout.ms
            CLIENT_LOG.warning("dead-letter/report producer: %s", error.str())

    def publish(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        headers: Headers,
        timestamp: int | None,
        on_done: Callable[[Exception | None], None],
    ) -> None:
        if self._fatal is not None:
            on_done(KafkaException(self._fatal))
            return

        def delivered(error: KafkaError | None, _message: Message) -> None:
            on_done(None if error is None else _failure(KafkaException(error)))

        kwargs: dict[str, Any] = {"key": key, "value": value, "headers": headers, "on_delivery": delivered}
        if timestamp is not None:
            kwargs["timestamp"] = timestamp
        while True:
            try:
                self._producer.produce(topic, **kwargs)
                break
            except BufferError:  # local queue full: serve delivery reports, then try again
                self._producer.poll(0.1)
            except (KafkaException, TypeError, ValueError) as exc:  # e.g. an invalid topic name, too large
                on_done(_failure(exc))
                return
        self._producer.poll(0)

    def flush(self) -> None:
        deadline = time.monotonic() + self._flush_timeout
        while self._producer.flush(1.0) > 0:
            if self._fatal is not None:
                raise DeadLetterUnavailable(f"dead-letter/report producer failed: {self._fatal.str()}")
            if time.monotonic() > deadline:
                raise DeadLetterUnavailable(
                    f"{len(self._producer)} dead-letter/report records not acknowledged after "
                    f"{self._flush_timeout:.0f} s"
                )

    def close(self) -> None:
        if self._producer.flush(5.0) > 0:  # unacknowledged: their records never settled, nothing past them committed
            self._producer.purge()
            self._producer.poll(0)
        close = getattr(self._producer, "close", None)  # confluent-kafka >= 2.13: stop librdkafka's threads now
        if close is not None:
            close()


def _failure(exc: Exception) -> Exception:
    """A record larger than the producer's or the topic's limit is told apart (the router can
    dead-letter it without its value); any other failure goes to the caller as it is."""
    if isinstance(exc, KafkaException) and exc.args[0].code() == KafkaError.MSG_SIZE_TOO_LARGE:
        return MessageTooLarge(exc.args[0].str())
    return exc
