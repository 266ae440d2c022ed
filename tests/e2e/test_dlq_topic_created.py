"""`sink run` creates a missing dead-letter topic at start, before it joins the group, as Kafka
Connect's sink tasks do (1 partition, SINK_ERRORS_DEADLETTERQUEUE_TOPIC_REPLICATION_FACTOR
replicas), and leaves an existing one as it is; against the real broker, `sink run` a subprocess.

Not tested here: a replication factor the cluster cannot meet. Apache Kafka refuses it
(INVALID_REPLICATION_FACTOR) and the sink exits 2 naming the setting; the embedded broker (Tansu)
accepts any replication factor on its one broker, so that path is tested at the adapter's edge
(tests/unit/test_dlq_topic_setting.py). These tests give a replication factor of 1, which every
cluster can meet, and never rely on the broker's auto-creation (Tansu auto-creates a topic a
producer writes to, with 4 partitions: the 1-partition check tells its topic from the sink's).
"""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

import pytest
from confluent_kafka.admin import AdminClient

from tests.e2e.conftest import SinkProcess, SinkRunner, write_env
from tests.support.kafka import committed_offsets, consume_all, create_topic, produce, wait_for

pytestmark = pytest.mark.e2e

VARIABLE = "SINK_ERRORS_DEADLETTERQUEUE_TOPIC_REPLICATION_FACTOR"


def partitions(bootstrap: str, topic: str) -> int | None:
    """The topic's partition count, None when it does not exist. All topics are listed: a Metadata
    request naming the topic could have the broker auto-create it."""
    metadata = AdminClient({"bootstrap.servers": bootstrap}).list_topics(timeout=10)
    found = metadata.topics.get(topic)
    return None if found is None or found.error is not None else len(found.partitions)


def _env(tmp_path: Path, bootstrap: str, topic: str, dlq: str, replication_factor: int) -> Path:
    return write_env(
        tmp_path / "sink.env",
        bootstrap,
        f"sqlite:///{tmp_path / 'sink.db'}",
        topic,
        topic,
        errors_tolerance="all",
        errors_deadletterqueue_topic_name=dlq,
        errors_deadletterqueue_topic_replication_factor=replication_factor,
        errors_deadletterqueue_context_headers_enable="true",
    )


BAD = {"key": b"\x00k\xff", "value": b"\xff\xfe{not json", "headers": [("trace", b"\x00\x01"), ("empty", b"")]}


def _settle_good_and_bad_then_stop(bootstrap: str, topic: str, sink: SinkProcess) -> str:
    """Produce a good record and BAD, wait until the sink committed both, stop it (exit 0): its log."""
    produce(bootstrap, topic, [{"key": "good", "value": json.dumps({"id": 1})}, BAD])
    wait_for(
        lambda: (committed_offsets(bootstrap, topic, topic)[0] or 0) >= 2,
        60,
        interval=0.25,
        message="the sink did not settle both records",
    )
    sink.process.send_signal(signal.SIGTERM)
    assert sink.wait(30) == 0, sink.stderr[-3000:]
    return sink.stderr


def test_a_missing_dead_letter_topic_is_created_at_start_and_takes_the_bad_record(
    bootstrap_servers: str, unique_name: str, tmp_path: Path, sink_runner: SinkRunner
) -> None:
    topic, dlq = unique_name, f"{unique_name}_dlq"
    create_topic(bootstrap_servers, topic)
    assert partitions(bootstrap_servers, dlq) is None
    sink = sink_runner.start(_env(tmp_path, bootstrap_servers, topic, dlq, 1))

    def created() -> bool:
        assert sink.process.poll() is None, sink.stderr[-3000:]
        return partitions(bootstrap_servers, dlq) is not None

    # No record exists yet, so nothing was dead-lettered: the topic is there because the sink made it.
    wait_for(created, 30, interval=0.25, message=f"the sink did not create {dlq} at start")
    assert partitions(bootstrap_servers, dlq) == 1, "created as Connect creates it: one partition"

    log = _settle_good_and_bad_then_stop(bootstrap_servers, topic, sink)
    created_line = f"created dead-letter topic '{dlq}': 1 partition, replication factor 1"
    assert created_line in log and f"assigned {topic}/0" in log, log[-3000:]
    assert log.index(created_line) < log.index(f"assigned {topic}/0"), "created before the group was joined"

    [letter] = consume_all(bootstrap_servers, dlq, expected=1)
    assert (letter.key, letter.value) == (BAD["key"], BAD["value"]), "the original bytes"
    assert letter.headers[:2] == BAD["headers"], "the original headers first"
    assert letter.header("__connect.errors.offset") == b"1"
    assert partitions(bootstrap_servers, dlq) == 1


def test_an_existing_dead_letter_topic_is_left_as_it_is(
    bootstrap_servers: str, unique_name: str, tmp_path: Path, sink_runner: SinkRunner
) -> None:
    """Its partitions are kept, and the replication factor is not checked against the cluster:
    nothing is created (a factor no single broker could meet does not stop the sink)."""
    topic, dlq = unique_name, f"{unique_name}_dlq"
    create_topic(bootstrap_servers, topic)
    create_topic(bootstrap_servers, dlq, partitions=2)
    produce(bootstrap_servers, topic, [BAD])
    sink = sink_runner.start(_env(tmp_path, bootstrap_servers, topic, dlq, 7))

    def settled() -> bool:
        assert sink.process.poll() is None, sink.stderr[-3000:]
        return (committed_offsets(bootstrap_servers, topic, topic)[0] or 0) >= 1

    wait_for(settled, 60, interval=0.25, message="the sink did not settle the bad record")
    sink.process.send_signal(signal.SIGTERM)
    assert sink.wait(30) == 0, sink.stderr[-3000:]
    assert "created dead-letter topic" not in sink.stderr
    assert partitions(bootstrap_servers, dlq) == 2
    [letter] = consume_all(bootstrap_servers, dlq, expected=1)
    assert (letter.key, letter.value) == (BAD["key"], BAD["value"])


@pytest.mark.parametrize("value", ["0", "-2", "three"])
def test_a_bad_replication_factor_is_one_line_with_exit_2(
    value: str, bootstrap_servers: str, unique_name: str, tmp_path: Path, sink_runner: SinkRunner
) -> None:
    env = write_env(
        tmp_path / "bad.env",
        bootstrap_servers,
        f"sqlite:///{tmp_path / 'sink.db'}",
        unique_name,
        unique_name,
        errors_tolerance="all",
        errors_deadletterqueue_topic_name=f"{unique_name}_dlq",
        errors_deadletterqueue_topic_replication_factor=value,
    )
    started = time.monotonic()
    sink = sink_runner.run(env, timeout=30)
    assert sink.process.returncode == 2, sink.stderr[-3000:]
    assert sink.stderr.startswith(f"sink: configuration error: {VARIABLE}: "), sink.stderr[-3000:]
    assert sink.stderr.count("\n") == 1 and "Traceback" not in sink.stderr
    assert partitions(bootstrap_servers, f"{unique_name}_dlq") is None, "nothing created"
    assert time.monotonic() - started < 20


def test_missing_result_and_error_topics_are_created_at_start_and_take_the_reports(
    bootstrap_servers: str, unique_name: str, tmp_path: Path, sink_runner: SinkRunner
) -> None:
    """As Confluent's reporter creates its topics: with SINK_REPORTER_*_TOPIC_PARTITIONS partitions
    (3 and 2 here, where the broker's auto-creation would make 4) and the replication factor given."""
    topic, results, errors = unique_name, f"{unique_name}_results", f"{unique_name}_errors"
    create_topic(bootstrap_servers, topic)
    env = write_env(
        tmp_path / "sink.env",
        bootstrap_servers,
        f"sqlite:///{tmp_path / 'sink.db'}",
        topic,
        topic,
        errors_tolerance="all",
        reporter_result_topic_name=results,
        reporter_result_topic_partitions=3,
        reporter_result_topic_replication_factor=1,
        reporter_error_topic_name=errors,
        reporter_error_topic_partitions=2,
    )
    sink = sink_runner.start(env)

    def created() -> bool:
        assert sink.process.poll() is None, sink.stderr[-3000:]
        return partitions(bootstrap_servers, results) is not None and partitions(bootstrap_servers, errors) is not None

    wait_for(created, 30, interval=0.25, message="the sink did not create its report topics at start")
    assert (partitions(bootstrap_servers, results), partitions(bootstrap_servers, errors)) == (3, 2)

    log = _settle_good_and_bad_then_stop(bootstrap_servers, topic, sink)
    assert f"created result topic '{results}': 3 partitions, replication factor 1" in log, log[-3000:]
    assert f"created error topic '{errors}': 2 partitions, replication factor the broker's default" in log
    assert log.index(f"created result topic '{results}'") < log.index(f"assigned {topic}/0"), "before the join"
    [result] = consume_all(bootstrap_servers, results, expected=1)
    [error] = consume_all(bootstrap_servers, errors, expected=1)
    assert result.header("input_record_offset") == b"0" and error.header("input_record_offset") == b"1"
    assert (partitions(bootstrap_servers, results), partitions(bootstrap_servers, errors)) == (3, 2)
