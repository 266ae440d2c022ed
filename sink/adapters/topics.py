"""Create a missing topic the sink writes to, as Kafka Connect's sink tasks create their dead-letter
topic (`DeadLetterQueueReporter.createAndSetup`): ask whether it exists (DescribeTopics, which never
auto-creates it, unlike a Metadata request for it), create it with the partitions and replication
factor given when it does not, and leave an existing one as it is (partitions, replicas, configs).

A broker that does not answer is not a refusal: the caller goes on without the topic checked, as
the sink waits out a broker outage. Refusals are classified by KafkaError code, never by text.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, Literal

from confluent_kafka import KafkaError, KafkaException, TopicCollection
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]  # documented there, not in __all__

from ..logs import ClientLog

TIMEOUT_S = 10.0
POLL_S = 0.05

# No answer (yet): the broker is down, unreachable, slow, or turns the client away at the door.
# The consumer meets the same and waits it out; the topic is left unchecked.
NO_ANSWER = frozenset(
    {
        KafkaError._TRANSPORT,
        KafkaError._ALL_BROKERS_DOWN,
        KafkaError._RESOLVE,
        KafkaError._TIMED_OUT,
        KafkaError._AUTHENTICATION,
        KafkaError.REQUEST_TIMED_OUT,
        KafkaError.NETWORK_EXCEPTION,
        KafkaError.NOT_CONTROLLER,
        KafkaError.SASL_AUTHENTICATION_FAILED,
    }
)
# What the error callback reports when no answer is coming: stop waiting at once.
_GIVE_UP = frozenset({KafkaError._ALL_BROKERS_DOWN, KafkaError._AUTHENTICATION})
# A DescribeTopics failure that is the broker's last word (anything else leaves the topic unchecked).
_DESCRIBE_REFUSED = frozenset(
    {KafkaError.TOPIC_AUTHORIZATION_FAILED, KafkaError.CLUSTER_AUTHORIZATION_FAILED, KafkaError.TOPIC_EXCEPTION}
)

AdminFactory = Callable[[dict[str, Any]], Any]  # confluent_kafka.admin.AdminClient, or a test's stand-in


@dataclass(frozen=True, slots=True)
class Ensured:
    """`exists` (left as it is), `created`, or `unchecked` (no answer: `why` says what was heard)."""

    outcome: Literal["exists", "created", "unchecked"]
    why: str = ""


class TopicRefused(Exception):
    """The broker refused to describe or create the topic, for good: `action` (describe/create),
    `code` (KafkaError name, e.g. INVALID_REPLICATION_FACTOR), `reason` (the broker's words),
    `brokers` (how many the cluster has; None: not known)."""

    def __init__(self, action: str, code: int, name: str, reason: str, brokers: int | None = None) -> None:
        super().__init__(f"{name}: {reason}")
        self.action = action
        self.code = code
        self.name = name
        self.reason = reason
        self.brokers = brokers

    @property
    def replication(self) -> bool:
        """The replication factor is what was refused (more replicas than brokers)."""
        return self.code == KafkaError.INVALID_REPLICATION_FACTOR

    @property
    def not_authorized(self) -> bool:
        """An ACL is missing (Describe or Create on the topic, or Create on the cluster)."""
        return self.code in (KafkaError.TOPIC_AUTHORIZATION_FAILED, KafkaError.CLUSTER_AUTHORIZATION_FAILED)

    @property
    def invalid_name(self) -> bool:
        return self.code == KafkaError.TOPIC_EXCEPTION


class _NoAnswer(Exception):
    pass


class TopicAdmin:
    """A short-lived admin client with the producer's properties (the identity that writes the
    topic is the one that creates it). `client_factory` builds the client from its configuration."""

    def __init__(
        self, bootstrap: str, overrides: Mapping[str, str], client_factory: AdminFactory | None = None
    ) -> None:
        self._heard = ClientLog("topics")  # librdkafka's lines at DEBUG; its first complaint for the warning
        self._gave_up: str | None = None
        config: dict[str, Any] = {"bootstrap.servers": bootstrap, **overrides}
        for producer_only in ("transactional.id", "enable.idempotence"):  # no producer state for an admin client
            config.pop(producer_only, None)
        config.update({"client.id": "kafka-sql-sink-admin", "error_cb": self._on_error, "logger": self._heard})
        self._admin = (client_factory or AdminClient)(config)

    def _on_error(self, error: KafkaError) -> None:
        if (error.code() in _GIVE_UP or error.fatal()) and self._gave_up is None:
            self._gave_up = error.str()

    def ensure(self, topic: str, partitions: int, replication_factor: int, timeout_s: float = TIMEOUT_S) -> Ensured:
        """Create `topic` unless it exists. Raises TopicRefused when the broker refuses for good."""
        deadline = time.monotonic() + timeout_s
        try:
            described = self._admin.describe_topics(TopicCollection([topic]), request_timeout=timeout_s)[topic]
            self._wait(described, deadline)
            described.result()
            return Ensured("exists")
        except _NoAnswer as silent:
            return Ensured("unchecked", str(silent))
        except KafkaException as exc:
            error: KafkaError = exc.args[0]
            if error.code() in _DESCRIBE_REFUSED:
                raise TopicRefused("describe", error.code(), error.name(), error.str()) from None
            if error.code() != KafkaError.UNKNOWN_TOPIC_OR_PART:
                return Ensured("unchecked", f"{error.name()}: {error.str()}")
        new = NewTopic(topic, num_partitions=partitions, replication_factor=replication_factor)
        remaining = max(1.0, deadline - time.monotonic())
        try:
            created = self._admin.create_topics([new], request_timeout=remaining, operation_timeout=remaining)[topic]
            self._wait(created, time.monotonic() + remaining)
            created.result()
            return Ensured("created")
        except _NoAnswer as silent:
            return Ensured("unchecked", str(silent))
        except KafkaException as exc:
            error = exc.args[0]
            if error.code() == KafkaError.TOPIC_ALREADY_EXISTS:  # another worker created it meanwhile
                return Ensured("exists")
            if error.code() in NO_ANSWER:
                return Ensured("unchecked", f"{error.name()}: {error.str()}")
            brokers = self._brokers() if error.code() == KafkaError.INVALID_REPLICATION_FACTOR else None
            raise TopicRefused("create", error.code(), error.name(), error.str(), brokers) from None

    def _wait(self, future: Future[Any], deadline: float) -> None:
        """Serve the client's callbacks until `future` is done; _NoAnswer when no answer is coming."""
        while not future.done():
            self._admin.poll(POLL_S)  # the error callback and log lines arrive only when polled
            heard = self._heard.problem
            if self._gave_up is not None:
                raise _NoAnswer(self._gave_up + (f" ({heard})" if heard and heard != self._gave_up else ""))
            if time.monotonic() >= deadline:
                raise _NoAnswer("no answer in time" + (f" ({heard})" if heard else ""))

    def _brokers(self) -> int | None:
        """How many brokers the cluster has (None: it did not say)."""
        try:
            described = self._admin.describe_cluster(request_timeout=TIMEOUT_S)
            self._wait(described, time.monotonic() + TIMEOUT_S)
            return len(described.result().nodes)
        except (KafkaException, _NoAnswer, AttributeError):
            return None

    def close(self) -> None:
        self._admin.poll(0)  # hand over what librdkafka still holds for the log
        close = getattr(self._admin, "close", None)
        if close is not None:
            close()
