"""`SINK_TOPICS_REGEX` through `sink run`: a topic matching the pattern that is created while the
sink runs is picked up (librdkafka finds it at its next metadata refresh, every
`topic.metadata.refresh.interval.ms`, five minutes by default, shortened here) and lands in a table
of its own; a topic that does not match is left alone."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import pytest

from tests.e2e.conftest import SinkRunner, write_env
from tests.support.db import fetch_rows, table_exists
from tests.support.kafka import create_topic, produce, wait_for

pytestmark = pytest.mark.e2e


def _records(ids: range) -> list[dict[str, str]]:
    return [{"key": str(i), "value": json.dumps({"id": i, "name": f"n{i}"})} for i in ids]


def _ids(url: str, table: str) -> list[int]:
    return [row["id"] for row in fetch_rows(url, table, "id")] if table_exists(url, table) else []


def test_a_topic_created_after_start_is_picked_up(
    bootstrap_servers: str, sqlite_url: str, unique_name: str, tmp_path: Path, sink_runner: SinkRunner
) -> None:
    first, later, other = f"{unique_name}_a", f"{unique_name}_b", f"x{unique_name}_c"
    for topic in (first, other):
        create_topic(bootstrap_servers, topic)
    produce(bootstrap_servers, first, _records(range(3)))
    produce(bootstrap_servers, other, _records(range(3)))
    env = write_env(
        tmp_path / "sink.env",
        bootstrap_servers,
        sqlite_url,
        "",
        f"{unique_name}_group",
        topics_regex=f"{unique_name}_.*",
        pk_mode="record_value",
        pk_fields="id",
        consumer__topic_metadata_refresh_interval_ms=1000,
    )
    sink = sink_runner.start(env)
    wait_for(lambda: _ids(sqlite_url, first) == [0, 1, 2], 60, message=f"{first} not written; {sink.stderr[-2000:]}")

    create_topic(bootstrap_servers, later)
    produce(bootstrap_servers, later, _records(range(10, 14)))
    wait_for(lambda: _ids(sqlite_url, later) == [10, 11, 12, 13], 60, message=f"{later} never picked up")

    sink.process.send_signal(signal.SIGTERM)
    assert sink.wait(30) == 0, sink.stderr[-3000:]
    assert not table_exists(sqlite_url, other), "a topic the pattern does not match is left alone"
    assert _ids(sqlite_url, first) == [0, 1, 2]
