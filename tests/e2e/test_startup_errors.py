"""Issue 12 section 7 and the oversized dead letter of section 4, through `sink run` as a subprocess:

- configuration problems that used to be tracebacks (exit 1) or outages retried forever are one
  line `sink: configuration error: SINK_X: ...` with exit code 2, while a database that is merely
  down at start-up is still waited out;
- with a dead-letter topic and the broker down, the client warnings are throttled and the progress
  line says `lag=?`, not `lag=0`;
- a record too large for the dead-letter producer is dead-lettered without its key and value, with
  its coordinates and original sizes, and the sink goes on.
"""

from __future__ import annotations

import json
import signal
import socket
import time
from pathlib import Path

import pytest

from tests.e2e.conftest import SinkRunner, write_env
from tests.support.kafka import committed_offsets, consume_all, create_topic, produce, wait_for

pytestmark = pytest.mark.e2e


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.parametrize(
    ("variable", "extra"),
    [
        ("SINK_CONSUMER__SASL_PASSWROD", {"consumer__sasl_passwrod": "x"}),
        ("SINK_CONSUMER__SESSION_TIMEOUT_MS", {"consumer__session_timeout_ms": "soon"}),
        ("SINK_PRODUCER__LINGER_MS", {"producer__linger_ms": "later"}),
        ("SINK_TOPICS_REGEX", {"topics": "", "topics_regex": "(?P<n>orders)"}),
        ("SINK_DATABASE_URL", {"database_url": "postgresql+psycopg2://postgres@127.0.0.1:5432/test"}),
        ("SINK_DATABASE_URL", {"database_url": "postgresql+psycopg://postgres@127.0.0.1:5432/no_such_db_12"}),
        ("SINK_DATABASE_URL", {"database_url": "postgresql+psycopg://no_such_role_12@127.0.0.1:5432/test"}),
        ("SINK_DATABASE_URL", {"database_url": "mysql+pymysql://root@127.0.0.1:3306/no_such_db_12"}),
        ("SINK_DATABASE_URL", {"database_url": "mysql+pymysql://root:wrong@127.0.0.1:3306/test"}),
        ("SINK_DATABASE_URL", {"database_url": "sqlite:////no/such/directory/sink.db"}),
        ("SINK_TABLE_NAME_FORMAT", {"table_name_format": ""}),
        ("SINK_TABLE_NAME_FORMAT", {"table_name_format": "replica.orders", "database_url": "sqlite:///:memory:"}),
        ("SINK_TABLE_NAME_FORMAT", {"table_name_format": "db.replica.orders"}),
    ],
)
def test_a_configuration_problem_is_one_line_with_exit_2(
    variable: str, extra: dict[str, str], bootstrap_servers: str, pg_url: str, tmp_path: Path, sink_runner: SinkRunner
) -> None:
    extra = dict(extra)
    url, topics = extra.pop("database_url", pg_url), extra.pop("topics", "orders")
    env = write_env(tmp_path / "bad.env", bootstrap_servers, url, topics, "g-startup", **extra)
    started = time.monotonic()
    sink = sink_runner.run(env, timeout=30)
    assert sink.process.returncode == 2, sink.stderr[-3000:]
    assert sink.stderr.startswith(f"sink: configuration error: {variable}: "), sink.stderr[-3000:]
    assert sink.stderr.count("\n") == 1 and "Traceback" not in sink.stderr
    assert time.monotonic() - started < 20


def test_a_database_that_is_down_at_start_up_is_still_an_outage_to_wait_out(
    bootstrap_servers: str, tmp_path: Path, sink_runner: SinkRunner
) -> None:
    down = f"postgresql+psycopg://postgres@127.0.0.1:{_free_port()}/test"
    env = write_env(tmp_path / "down.env", bootstrap_servers, down, "orders", "g-down")
    sink = sink_runner.start(env)
    time.sleep(4)
    assert sink.process.poll() is None, f"stopped instead of waiting: {sink.stderr[-3000:]}"
    sink.process.send_signal(signal.SIGTERM)
    sink.wait(30)
    assert "configuration error" not in sink.stderr


def test_broker_down_with_a_dead_letter_topic_throttles_warnings_and_says_lag_unknown(
    tmp_path: Path, sink_runner: SinkRunner
) -> None:
    env = write_env(
        tmp_path / "nobroker.env",
        f"127.0.0.1:{_free_port()}",
        f"sqlite:///{tmp_path / 'sink.db'}",
        "orders",
        "g-nobroker",
        errors_tolerance="all",
        errors_deadletterqueue_topic_name="orders_dlq",
        log_stats_interval_ms=500,
        shutdown_timeout_ms=2000,
    )
    sink = sink_runner.start(env)
    time.sleep(6)
    sink.process.send_signal(signal.SIGTERM)
    sink.wait(30)
    lines = sink.stderr.splitlines()
    producer = [line for line in lines if "dead-letter/report producer" in line]
    assert 1 <= len(producer) <= 2, "\n".join(producer)  # ~3 a second before
    progress = [line for line in lines if "records in=" in line]
    assert progress and all("lag=?" in line for line in progress), "\n".join(progress)


def test_a_record_too_large_for_the_dead_letter_topic_is_dead_lettered_truncated(
    bootstrap_servers: str, unique_name: str, tmp_path: Path, sink_runner: SinkRunner
) -> None:
    topic, dlq = unique_name, f"{unique_name}_dlq"
    for name in (topic, dlq):
        create_topic(bootstrap_servers, name)
    big = b'{"id": 2, "blob": "' + b"x" * 5000  # invalid JSON, too large for a 2000-byte producer
    records = [
        {"key": "k1", "value": json.dumps({"id": 1})},
        {"key": "k2", "value": big, "headers": {"trace": "t-2"}},
        {"key": "k3", "value": b"{not json"},
        {"key": "k4", "value": json.dumps({"id": 4})},
    ]
    produce(bootstrap_servers, topic, records)
    env = write_env(
        tmp_path / "sink.env",
        bootstrap_servers,
        f"sqlite:///{tmp_path / 'sink.db'}",
        topic,
        unique_name,
        errors_tolerance="all",
        errors_deadletterqueue_topic_name=dlq,
        producer__message_max_bytes="2000",
    )
    sink = sink_runner.start(env)

    def settled() -> bool:
        assert sink.process.poll() is None, sink.stderr[-3000:]
        return (committed_offsets(bootstrap_servers, unique_name, topic)[0] or 0) >= len(records)

    wait_for(settled, 30, interval=0.25, message="the sink did not commit past the oversized record")
    sink.process.send_signal(signal.SIGTERM)
    assert sink.wait(30) == 0, sink.stderr[-3000:]

    dead = consume_all(bootstrap_servers, dlq, expected=2)
    assert len(dead) == 2
    [truncated] = [m for m in dead if m.key is None]
    [small] = [m for m in dead if m.key is not None]
    assert truncated.value is None
    # context headers are off, yet a truncated record always carries its coordinates
    assert truncated.header("__connect.errors.topic") == topic.encode()
    assert truncated.header("__connect.errors.offset") == b"1"
    assert truncated.header("__connect.errors.partition") == b"0"
    sizes = json.loads(truncated.header("__connect.errors.sink.truncated") or b"")
    assert sizes == {"key": 2, "value": len(big), "headers": len("trace") + len("t-2")}
    assert small.key == b"k3" and small.value == b"{not json", "a record that fits goes out whole"
    assert small.header("__connect.errors.offset") is None, "no context headers unless asked for"
    assert "too large for the dead-letter topic" in sink.stderr
