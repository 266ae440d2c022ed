"""Issue 9, logs: no librdkafka line reaches stdout/stderr raw, `sink check` against an unreachable
broker says so in one line, and `SINK_LOG_FORMAT=json` at DEBUG is JSON line by line, with the
coordinates of a failed record as fields and no planted credential anywhere.

Real processes against the real broker (Tansu) and PostgreSQL; nothing of Kafka is mocked.
"""

from __future__ import annotations

import json
import logging
import re
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Producer

from tests.e2e.conftest import SINK, SinkRunner, _clean_environ, write_env
from tests.support.db import drop_table
from tests.support.kafka import committed_offsets, consume_all, create_topic, produce, wait_for

pytestmark = pytest.mark.e2e

SASL_SECRET, DB_SECRET = "SaslPw-3141q", "DbPw-2718r"
UNREACHABLE = "127.0.0.1:1"
# librdkafka's own stderr format: `%3|1700000000.123|FAIL|rdkafka#producer-1| [thrd:...]: ...`
RAW_LIBRDKAFKA = re.compile(r"^%\d\|\d+\.\d+\|")


def _check(env_file: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(SINK), "check", "--env-file", str(env_file)],
        capture_output=True,
        text=True,
        timeout=60,
        env=_clean_environ(),
        check=False,
    )


# ------------------------------------------------------------------------------ sink check


@pytest.mark.parametrize("level", ["INFO", "DEBUG"])
def test_check_against_an_unreachable_broker_is_one_clear_line(level: str, pg_url: str, tmp_path: Path) -> None:
    env = tmp_path / "down.env"
    env.write_text(
        f"SINK_BOOTSTRAP_SERVERS={UNREACHABLE}\n"
        "SINK_TOPICS=orders\n"
        f"SINK_DATABASE_URL={pg_url}\n"
        f"SINK_LOG_LEVEL={level}\n"
        "SINK_CONSUMER__SECURITY_PROTOCOL=SASL_PLAINTEXT\n"
        "SINK_CONSUMER__SASL_MECHANISM=PLAIN\n"
        "SINK_CONSUMER__SASL_USERNAME=alice\n"
        f"SINK_CONSUMER__SASL_PASSWORD={SASL_SECRET}\n"
    )
    done = _check(env)
    output = done.stdout + done.stderr
    lines = output.splitlines()
    assert done.returncode == 1, output
    failed = [line for line in done.stdout.splitlines() if line.startswith("FAIL")]
    assert len(failed) == 1, output
    assert failed[0].startswith(f"FAIL  broker: {UNREACHABLE} did not answer within 10 s: "), output
    assert "Connection refused" in failed[0], "librdkafka's reason is in the one line"
    assert [line.split(":")[0] for line in done.stdout.splitlines()] == [
        "ok    configuration",
        "FAIL  broker",
        "ok    database",
    ]
    # Today's count was ~190 raw librdkafka lines; at DEBUG its lines come through logging, once each.
    assert len(lines) <= (3 if level == "INFO" else 8), output
    assert not [line for line in lines if RAW_LIBRDKAFKA.match(line)], output
    if level == "DEBUG":
        assert "DEBUG   sink.librdkafka.check: FAIL [" in done.stderr, "librdkafka's lines went through logging"
    assert SASL_SECRET not in output


# ------------------------------------------------------------------------------ sink run, JSON at DEBUG


@dataclass
class JsonRun:
    topic: str
    bad_offset: int
    exit_code: int
    output: str  # stdout + stderr
    docs: list[dict[str, Any]]


@pytest.fixture(scope="module")
def json_run(bootstrap_servers: str, pg_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[JsonRun]:
    """One `sink run` with SINK_LOG_FORMAT=json at DEBUG (librdkafka's `conf` debug on: it prints
    every client property) over good records and one that is not JSON, dead-lettered."""
    name = f"t_{uuid.uuid4().hex[:8]}"
    tmp_path = tmp_path_factory.mktemp("json_logs")
    topic, dlq = name, f"{name}_dlq"
    drop_table(pg_url, topic)
    for each in (topic, dlq):
        create_topic(bootstrap_servers, each)
    records = [{"key": str(n), "value": json.dumps({"id": n, "note": f"n{n}"})} for n in range(1, 4)]
    records.insert(2, {"key": "bad", "value": b'{"id": 3, "note": '})  # offset 2: not JSON
    produce(bootstrap_servers, topic, records)
    env = write_env(
        tmp_path / "sink.env",
        bootstrap_servers,
        f"{pg_url}?password={DB_SECRET}",  # PostgreSQL trusts user postgres: any password connects
        topic,
        name,
        errors_tolerance="all",
        errors_deadletterqueue_topic_name=dlq,
        errors_deadletterqueue_context_headers_enable="true",
        errors_log_enable="true",
        consumer__sasl_username="alice",
        consumer__sasl_password=SASL_SECRET,
        consumer__debug="conf",
        producer__sasl_username="alice",
        producer__sasl_password=SASL_SECRET,
        producer__debug="conf",
        log_level="DEBUG",
        log_format="json",
        log_stats_interval_ms=500,
    )
    runner = SinkRunner(tmp_path)
    sink = runner.start(env)
    try:

        def settled() -> bool:
            assert sink.process.poll() is None, sink.stderr[-3000:]
            return (committed_offsets(bootstrap_servers, name, topic)[0] or 0) >= len(records)

        wait_for(settled, 60, interval=0.25, message="the sink did not commit every record")
        assert len(consume_all(bootstrap_servers, dlq, expected=1, timeout=30)) == 1
        sink.process.send_signal(signal.SIGTERM)
        code = sink.wait(30)
    finally:
        sink.kill()
    output = sink.stdout + sink.stderr
    docs = [json.loads(line) for line in output.splitlines() if line.strip()]
    yield JsonRun(topic, 2, code, output, docs)
    drop_table(pg_url, topic)


def test_json_logs_parse_line_by_line(json_run: JsonRun) -> None:
    assert json_run.exit_code == 0, json_run.output[-3000:]
    lines = [line for line in json_run.output.splitlines() if line.strip()]
    assert len(lines) == len(json_run.docs) > 10
    for doc in json_run.docs:
        assert isinstance(doc, dict)
        assert {"time", "level", "logger", "message"} <= set(doc), doc
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", doc["time"]), doc
    assert not [line for line in lines if RAW_LIBRDKAFKA.match(line)]


def test_librdkafka_lines_come_through_logging_as_json_with_their_levels(json_run: JsonRun) -> None:
    librdkafka = [doc for doc in json_run.docs if doc["logger"].startswith("sink.librdkafka")]
    conf = [doc for doc in librdkafka if doc["message"].startswith("CONF ")]
    assert conf, "librdkafka's debug=conf lines are there, as JSON"
    assert {doc["level"] for doc in conf} == {"DEBUG"}, "syslog 7 is DEBUG"
    assert any("sasl.password" in doc["message"] for doc in conf), "the property is named, its value not"


def test_a_failed_record_carries_its_coordinates_as_fields(json_run: JsonRun) -> None:
    failed = [doc for doc in json_run.docs if doc["logger"] == "sink.errors" and doc.get("topic") == json_run.topic]
    assert len(failed) == 1, [doc for doc in json_run.docs if doc["logger"] == "sink.errors"]
    [doc] = failed
    assert (doc["partition"], doc["offset"]) == (0, json_run.bad_offset)
    assert doc["level"] == "WARNING"
    assert f"{json_run.topic}/0@{json_run.bad_offset}" in doc["message"], "the text still says it for people"
    assert "note" not in doc["message"], "no record value without SINK_ERRORS_LOG_INCLUDE_MESSAGES"


def test_a_failed_record_carries_its_error_class_and_stage_as_fields(json_run: JsonRun) -> None:
    [doc] = [doc for doc in json_run.docs if doc["logger"] == "sink.errors" and doc.get("topic") == json_run.topic]
    assert doc["error_class"] == "DecodeError"
    assert doc["stage"] == "VALUE_CONVERTER"


def test_no_planted_credential_in_any_output(json_run: JsonRun) -> None:
    for planted in (SASL_SECRET, DB_SECRET):
        assert planted not in json_run.output


# ------------------------------------------------------------------------------ level mapping


def test_librdkafka_levels_map_to_python_levels() -> None:
    """confluent-kafka maps librdkafka's syslog levels: 7 (debug) -> DEBUG, 3 (err) -> ERROR."""

    class Keep(logging.Handler):
        def __init__(self) -> None:
            super().__init__(logging.DEBUG)
            self.seen: list[tuple[int, str]] = []

        def emit(self, record: logging.LogRecord) -> None:
            self.seen.append((record.levelno, record.getMessage()))

    keep = Keep()
    logger = logging.getLogger(f"test.librdkafka.{uuid.uuid4().hex[:6]}")
    logger.propagate, logger.level = False, logging.DEBUG
    logger.addHandler(keep)
    producer = Producer({"bootstrap.servers": UNREACHABLE, "debug": "conf", "logger": logger})
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not any(level == logging.ERROR for level, _ in keep.seen):
        producer.poll(0.2)
    assert any(level == logging.DEBUG and text.startswith("CONF ") for level, text in keep.seen)
    assert any(level == logging.ERROR and "Connection refused" in text for level, text in keep.seen), keep.seen
