"""The result and error topics (SINK_REPORTER_RESULT_TOPIC_NAME, SINK_REPORTER_ERROR_TOPIC_NAME) are
created at start when missing, as the dead-letter topic is, with Confluent's reporter settings
(reporter.{result,error}.topic.{partitions,replication.factor} as SINK_REPORTER_*): validated at
start-up (one line naming the variable, exit 2), created with their partitions and replicas,
left alone when they exist, and a refusal names the setting to change. Against the AdminClient
stand-in of tests/unit/test_dlq_topic_setting.py (the embedded broker accepts any replication
factor); tests/e2e/test_dlq_topic_created.py creates a result topic through a real `sink run`."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import KafkaError

from sink import checks
from sink.cli import main
from sink.config import load_settings
from sink.errors import ConfigError, SinkError
from tests.unit.test_dlq_topic_setting import BASE, Cluster, _no_real_admin_client  # noqa: F401 (autouse fixture)

RESULTS, ERRORS, DLQ = "orders-results", "orders-errors", "orders-dlq"


def _settings(**values: str) -> Any:
    return load_settings([], environ={**BASE, **values})


def test_the_defaults_are_one_partition_and_the_brokers_replication_factor() -> None:
    settings = _settings()
    assert (settings.reporter_result_topic_partitions, settings.reporter_result_topic_replication_factor) == (1, -1)
    assert (settings.reporter_error_topic_partitions, settings.reporter_error_topic_replication_factor) == (1, -1)


@pytest.mark.parametrize(
    ("variable", "given"),
    [
        ("SINK_REPORTER_RESULT_TOPIC_REPLICATION_FACTOR", "0"),
        ("SINK_REPORTER_ERROR_TOPIC_REPLICATION_FACTOR", "-2"),
        ("SINK_REPORTER_RESULT_TOPIC_PARTITIONS", "0"),
        ("SINK_REPORTER_ERROR_TOPIC_PARTITIONS", "many"),
    ],
)
def test_a_bad_value_stops_sink_run_with_one_line_naming_it(
    variable: str, given: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    env = tmp_path / "sink.env"
    env.write_text("".join(f"{k}={v}\n" for k, v in {**BASE, variable: given}.items()))
    assert main(["run", "--env-file", str(env)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"sink: configuration error: {variable}: ") and err.count("\n") == 1, err


def test_missing_report_topics_are_created_with_their_partitions_and_replicas(caplog: pytest.LogCaptureFixture) -> None:
    cluster = Cluster(brokers=3)
    settings = _settings(
        SINK_ERRORS_DEADLETTERQUEUE_TOPIC_NAME=DLQ,
        SINK_REPORTER_RESULT_TOPIC_NAME=RESULTS,
        SINK_REPORTER_RESULT_TOPIC_PARTITIONS="6",
        SINK_REPORTER_RESULT_TOPIC_REPLICATION_FACTOR="3",
        SINK_REPORTER_ERROR_TOPIC_NAME=ERRORS,
    )
    with caplog.at_level(logging.INFO, logger="sink.checks"):
        checks.prepare_topics(settings, cluster.client)
    made = [(t.topic, t.num_partitions, t.replication_factor) for t in cluster.created]
    assert made == [(DLQ, 1, -1), (RESULTS, 6, 3), (ERRORS, 1, -1)]
    assert len(cluster.configs) == 1, "one admin client for all of them"
    assert f"created result topic '{RESULTS}': 6 partitions, replication factor 3" in caplog.text
    assert f"created error topic '{ERRORS}': 1 partition, replication factor the broker's default" in caplog.text


def test_existing_topics_are_left_alone_and_one_topic_named_twice_is_made_once() -> None:
    cluster = Cluster(topics={RESULTS})
    settings = _settings(SINK_REPORTER_RESULT_TOPIC_NAME=RESULTS, SINK_REPORTER_ERROR_TOPIC_NAME=RESULTS)
    checks.prepare_topics(settings, cluster.client)
    assert cluster.created == []
    both = _settings(SINK_REPORTER_RESULT_TOPIC_NAME=ERRORS, SINK_REPORTER_ERROR_TOPIC_NAME=ERRORS)
    fresh = Cluster()
    checks.prepare_topics(both, fresh.client)
    assert [t.topic for t in fresh.created] == [ERRORS]


def test_more_replicas_than_brokers_names_the_reporters_replication_setting() -> None:
    cluster = Cluster(
        brokers=1,
        create_error=(KafkaError.INVALID_REPLICATION_FACTOR, "Replication factor: 3 larger than available brokers: 1."),
    )
    settings = _settings(SINK_REPORTER_ERROR_TOPIC_NAME=ERRORS, SINK_REPORTER_ERROR_TOPIC_REPLICATION_FACTOR="3")
    with pytest.raises(ConfigError) as caught:
        checks.prepare_topics(settings, cluster.client)
    message = str(caught.value)
    assert caught.value.exit_code == 2 and "\n" not in message
    assert message.startswith("SINK_REPORTER_ERROR_TOPIC_REPLICATION_FACTOR: the broker refused to create error topic")
    assert ERRORS in message and "replication factor 3" in message and "set it to 1" in message, message


def test_a_missing_acl_names_the_topic_setting_and_the_partitions_to_create() -> None:
    cluster = Cluster(create_error=(KafkaError.TOPIC_AUTHORIZATION_FAILED, "Broker: Topic authorization failed"))
    settings = _settings(SINK_REPORTER_RESULT_TOPIC_NAME=RESULTS, SINK_REPORTER_RESULT_TOPIC_PARTITIONS="4")
    with pytest.raises(ConfigError) as caught:
        checks.prepare_topics(settings, cluster.client)
    message = str(caught.value)
    assert message.startswith(f"SINK_REPORTER_RESULT_TOPIC_NAME: the broker refused to create result topic '{RESULTS}'")
    assert "create it yourself (4 partitions)" in message, message


def test_sink_check_says_which_report_topics_run_would_create_and_fails_one_it_could_not() -> None:
    settings = _settings(
        SINK_REPORTER_RESULT_TOPIC_NAME=RESULTS,
        SINK_REPORTER_RESULT_TOPIC_PARTITIONS="3",
        SINK_REPORTER_ERROR_TOPIC_NAME=ERRORS,
    )
    note = checks._own_topics_note(settings, {ERRORS: None}, brokers=1)
    creates = "sink run creates it: 3 partitions, replication factor the broker's default"
    assert note == f"; result topic {RESULTS} not there yet ({creates})"
    wide = _settings(SINK_REPORTER_ERROR_TOPIC_NAME=ERRORS, SINK_REPORTER_ERROR_TOPIC_REPLICATION_FACTOR="3")
    with pytest.raises(SinkError, match="set SINK_REPORTER_ERROR_TOPIC_REPLICATION_FACTOR to 1"):
        checks._own_topics_note(wide, {}, brokers=1)
