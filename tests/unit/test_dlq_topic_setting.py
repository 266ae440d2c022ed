"""SINK_ERRORS_DEADLETTERQUEUE_TOPIC_REPLICATION_FACTOR (Connect's errors.deadletterqueue.topic.
replication.factor): validated at start-up (one line naming it, exit code 2), and the creation of a
missing dead-letter topic at the adapter's edge, with an in-memory stand-in for confluent-kafka's
AdminClient whose futures resolve or fail as the real client's do (KafkaException(KafkaError)).

The refusal of a replication factor the cluster cannot meet is tested here, by what the
AdminClient's future raises, because the embedded test broker (Tansu) accepts any replication
factor on its one broker, where Apache Kafka answers INVALID_REPLICATION_FACTOR.
"""

from __future__ import annotations

import logging
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import KafkaError, KafkaException

import sink.adapters.topics
from sink import checks
from sink.adapters.topics import TopicAdmin, TopicRefused
from sink.cli import main
from sink.config import load_settings
from sink.errors import ConfigError, SinkError

VARIABLE = "SINK_ERRORS_DEADLETTERQUEUE_TOPIC_REPLICATION_FACTOR"
BASE = {
    "SINK_BOOTSTRAP_SERVERS": "kafka:9092",
    "SINK_TOPICS": "orders",
    "SINK_DATABASE_URL": "sqlite:///:memory:",
    "SINK_SECRETS_DIR": "",
}
DLQ = "orders-dlq"


@pytest.fixture(autouse=True)
def _no_real_admin_client(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every client here is the stand-in: a real one would reach for a broker."""

    def refuse(_config: dict[str, Any]) -> None:
        raise AssertionError("a unit test built a real AdminClient")

    monkeypatch.setattr(sink.adapters.topics, "AdminClient", refuse)


def _settings(**values: str) -> Any:
    return load_settings([], environ={**BASE, **values})


# ------------------------------------------------------------------------------ the setting


def test_the_default_is_the_brokers_own() -> None:
    """-1 (the broker's default.replication.factor), not Connect's 3, which stops every
    single-broker cluster at start."""
    assert _settings().errors_deadletterqueue_topic_replication_factor == -1


@pytest.mark.parametrize(("given", "expected"), [("1", 1), ("2", 2), ("-1", -1), ("32767", 32767)])
def test_accepted_values(given: str, expected: int) -> None:
    assert _settings(**{VARIABLE: given}).errors_deadletterqueue_topic_replication_factor == expected


@pytest.mark.parametrize("given", ["0", "-2", "-3", "32768", "three", "2.5", ""])
def test_a_bad_value_is_one_line_naming_the_variable(given: str) -> None:
    with pytest.raises(ConfigError) as caught:
        _settings(**{VARIABLE: given})
    message = str(caught.value)
    assert caught.value.exit_code == 2
    assert message.startswith(f"{VARIABLE}: ") and "\n" not in message, message
    if given.lstrip("-").isdigit():
        assert "-1" in message and "default.replication.factor" in message, "says what is allowed"


def test_the_variable_is_known_in_an_env_file(tmp_path: Path) -> None:
    env = tmp_path / "sink.env"
    env.write_text("".join(f"{k}={v}\n" for k, v in {**BASE, VARIABLE: "1"}.items()))
    assert load_settings([env], environ={}).errors_deadletterqueue_topic_replication_factor == 1


def test_sink_run_with_a_bad_value_exits_2_with_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    env = tmp_path / "sink.env"
    env.write_text("".join(f"{k}={v}\n" for k, v in {**BASE, VARIABLE: "0"}.items()))
    assert main(["run", "--env-file", str(env)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"sink: configuration error: {VARIABLE}: ") and err.count("\n") == 1, err


# ------------------------------------------------------------------------------ the adapter


def _done(result: Any = None, error: int | None = None, reason: str = "") -> Future[Any]:
    future: Future[Any] = Future()
    if error is None:
        future.set_result(result)
    else:
        future.set_exception(KafkaException(KafkaError(error, reason)))
    return future


class Cluster:
    """confluent-kafka's AdminClient as far as TopicAdmin uses it, over an in-memory cluster."""

    def __init__(
        self,
        topics: set[str] | None = None,
        brokers: int = 1,
        create_error: tuple[int, str] | None = None,
        describe_error: tuple[int, str] | None = None,
        down: bool = False,
    ) -> None:
        self.topics = set(topics or ())
        self.brokers = brokers
        self.create_error = create_error
        self.describe_error = describe_error
        self.down = down
        self.configs: list[dict[str, Any]] = []
        self.created: list[Any] = []

    def client(self, config: dict[str, Any]) -> Cluster:
        self.configs.append(config)
        return self

    def describe_topics(self, collection: Any, request_timeout: float) -> dict[str, Future[Any]]:
        (name,) = collection.topic_names
        if self.down:
            return {name: Future()}  # never answered
        if self.describe_error is not None:
            return {name: _done(error=self.describe_error[0], reason=self.describe_error[1])}
        if name in self.topics:
            return {name: _done(object())}
        return {name: _done(error=KafkaError.UNKNOWN_TOPIC_OR_PART, reason="Broker: Unknown topic or partition")}

    def create_topics(self, new: list[Any], request_timeout: float, operation_timeout: float) -> dict[str, Future[Any]]:
        (topic,) = new
        self.created.append(topic)
        if self.create_error is not None:
            return {topic.topic: _done(error=self.create_error[0], reason=self.create_error[1])}
        self.topics.add(topic.topic)
        return {topic.topic: _done(None)}

    def describe_cluster(self, request_timeout: float) -> Future[Any]:
        return _done(type("Description", (), {"nodes": [object()] * self.brokers})())

    def poll(self, _timeout: float) -> int:
        if self.down:  # librdkafka's error callback, served by poll, as for a refused connection
            self.configs[-1]["error_cb"](KafkaError(KafkaError._ALL_BROKERS_DOWN, "1/1 brokers are down"))
        return 0


def test_a_missing_topic_is_created_with_one_partition_and_the_replication_factor() -> None:
    cluster = Cluster()
    ensured = TopicAdmin("kafka:9092", {"sasl.username": "u"}, cluster.client).ensure(DLQ, 1, 3)
    assert ensured.outcome == "created"
    [new] = cluster.created
    assert (new.topic, new.num_partitions, new.replication_factor) == (DLQ, 1, 3)
    config = cluster.configs[0]
    assert config["bootstrap.servers"] == "kafka:9092" and config["sasl.username"] == "u", "the producer's identity"


def test_an_existing_topic_is_left_as_it_is() -> None:
    cluster = Cluster(topics={DLQ}, brokers=1)
    assert TopicAdmin("kafka:9092", {}, cluster.client).ensure(DLQ, 1, 5).outcome == "exists"
    assert cluster.created == [], "no creation asked, whatever the replication factor"


def test_a_topic_another_worker_created_meanwhile_exists() -> None:
    cluster = Cluster(create_error=(KafkaError.TOPIC_ALREADY_EXISTS, f"Topic '{DLQ}' already exists."))
    assert TopicAdmin("kafka:9092", {}, cluster.client).ensure(DLQ, 1, 3).outcome == "exists"


def test_more_replicas_than_brokers_is_refused_with_the_number_of_brokers() -> None:
    cluster = Cluster(
        brokers=1,
        create_error=(KafkaError.INVALID_REPLICATION_FACTOR, "Replication factor: 3 larger than available brokers: 1."),
    )
    with pytest.raises(TopicRefused) as caught:
        TopicAdmin("kafka:9092", {}, cluster.client).ensure(DLQ, 1, 3)
    assert caught.value.replication and caught.value.brokers == 1
    assert caught.value.name == "INVALID_REPLICATION_FACTOR"


def test_sink_run_refuses_to_start_naming_the_setting_and_a_value() -> None:
    cluster = Cluster(
        brokers=1,
        create_error=(KafkaError.INVALID_REPLICATION_FACTOR, "Replication factor: 3 larger than available brokers: 1."),
    )
    settings = _settings(SINK_ERRORS_DEADLETTERQUEUE_TOPIC_NAME=DLQ, **{VARIABLE: "3"})  # Connect's default
    with pytest.raises(ConfigError) as caught:
        checks.prepare_topics(settings, cluster.client)
    message = str(caught.value)
    assert caught.value.exit_code == 2 and "\n" not in message
    assert message.startswith(f"{VARIABLE}: "), message
    assert DLQ in message and "replication factor 3" in message and "set it to 1" in message, message


@pytest.mark.parametrize(
    ("code", "action"),
    [(KafkaError.TOPIC_AUTHORIZATION_FAILED, "create"), (KafkaError.POLICY_VIOLATION, "create")],
)
def test_another_refusal_names_the_topic_setting(code: int, action: str) -> None:
    cluster = Cluster(create_error=(code, "refused"))
    with pytest.raises(ConfigError) as caught:
        checks.prepare_topics(_settings(SINK_ERRORS_DEADLETTERQUEUE_TOPIC_NAME=DLQ), cluster.client)
    message = str(caught.value)
    assert message.startswith(f"SINK_ERRORS_DEADLETTERQUEUE_TOPIC_NAME: the broker refused to {action} "), message
    assert caught.value.exit_code == 2 and "\n" not in message


def test_an_invalid_topic_name_is_refused_at_describe() -> None:
    cluster = Cluster(describe_error=(KafkaError.TOPIC_EXCEPTION, "Broker: Invalid topic"))
    with pytest.raises(ConfigError) as caught:
        checks.prepare_topics(_settings(SINK_ERRORS_DEADLETTERQUEUE_TOPIC_NAME=DLQ), cluster.client)
    assert str(caught.value).startswith("SINK_ERRORS_DEADLETTERQUEUE_TOPIC_NAME: ")
    assert cluster.created == []


def test_a_broker_that_does_not_answer_leaves_the_topic_unchecked(caplog: pytest.LogCaptureFixture) -> None:
    cluster = Cluster(down=True)
    ensured = TopicAdmin("kafka:9092", {}, cluster.client).ensure(DLQ, 1, 3, timeout_s=30)
    assert ensured.outcome == "unchecked" and "brokers are down" in ensured.why
    settings = _settings(SINK_ERRORS_DEADLETTERQUEUE_TOPIC_NAME=DLQ)
    with caplog.at_level(logging.WARNING, logger="sink.checks"):
        checks.prepare_topics(settings, Cluster(down=True).client)
    assert f"could not check whether dead-letter topic '{DLQ}' exists" in caplog.text
    assert cluster.created == []


def test_a_request_that_timed_out_leaves_the_topic_unchecked() -> None:
    cluster = Cluster(create_error=(KafkaError.REQUEST_TIMED_OUT, "Broker: Request timed out"))
    assert TopicAdmin("kafka:9092", {}, cluster.client).ensure(DLQ, 1, 3).outcome == "unchecked"


def test_no_dead_letter_topic_no_admin_client() -> None:
    cluster = Cluster()
    checks.prepare_topics(_settings(), cluster.client)
    assert cluster.configs == []


# ------------------------------------------------------------------------------ sink check


def test_sink_check_fails_a_missing_topic_the_cluster_cannot_replicate() -> None:
    settings = _settings(SINK_ERRORS_DEADLETTERQUEUE_TOPIC_NAME=DLQ, **{VARIABLE: "3"})
    with pytest.raises(SinkError, match=f"set {VARIABLE} to 1"):
        checks._own_topics_note(settings, {"orders": None}, brokers=1)
    assert checks._own_topics_note(settings, {DLQ: None}, brokers=1) == "", "an existing topic is left alone"
    fits = _settings(SINK_ERRORS_DEADLETTERQUEUE_TOPIC_NAME=DLQ, **{VARIABLE: "1"})
    assert "sink run creates it: 1 partition, replication factor 1" in checks._own_topics_note(fits, {}, 1)
    default = _settings(SINK_ERRORS_DEADLETTERQUEUE_TOPIC_NAME=DLQ)  # -1: whatever the cluster's size
    assert "replication factor the broker's default" in checks._own_topics_note(default, {}, 1)
