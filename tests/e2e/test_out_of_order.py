"""Through `sink run --env-file` on PostgreSQL: SINK_UPSERT_VERSION_FIELD keeps the newest version
of every key whatever the order records arrive in (several partitions, a restart in between), and
a schemaless scalar value for a topic of objects is dead-lettered with its reason, or lands in
SINK_VALUE_COLUMN_NAME when that is set."""

from __future__ import annotations

import json
import random
import signal
from pathlib import Path

import pytest

from tests.e2e.conftest import SinkProcess, SinkRunner, write_env
from tests.support.db import drop_table, fetch_rows, table_columns
from tests.support.kafka import committed_offsets, consume_all, create_topic, produce, wait_for

pytestmark = pytest.mark.e2e

PARTITIONS = 3


def stop(sink: SinkProcess) -> int:
    sink.process.send_signal(signal.SIGTERM)
    return sink.wait(30)


def wait_committed(bootstrap: str, group: str, topic: str, ends: dict[int, int], sink: SinkProcess) -> None:
    def done() -> bool:
        if sink.process.poll() is not None:
            raise AssertionError(f"the sink exited with {sink.process.returncode}:\n{sink.stderr[-3000:]}")
        got = committed_offsets(bootstrap, group, topic, list(ends))
        return all((got.get(p) or 0) >= end for p, end in ends.items())

    wait_for(done, 90, interval=0.25, message=f"{group} did not commit {ends} on {topic}")


def test_shuffled_versions_across_partitions_and_a_restart_end_newest(
    bootstrap_servers: str, pg_url: str, unique_name: str, tmp_path: Path, sink_runner: SinkRunner
) -> None:
    topic = unique_name
    drop_table(pg_url, topic)
    create_topic(bootstrap_servers, topic, partitions=PARTITIONS)
    keys, versions = range(1, 41), range(1, 7)
    records = [{"id": k, "updated_at": v, "note": f"{k}@{v}"} for k in keys for v in versions]
    random.Random(11).shuffle(records)
    # Versions of one key land on different partitions, so nothing orders them but the version.
    messages = [{"value": json.dumps(r), "partition": i % PARTITIONS} for i, r in enumerate(records)]
    ends = {p: sum(1 for m in messages if m["partition"] == p) for p in range(PARTITIONS)}
    half = {p: 0 for p in range(PARTITIONS)}
    for m in messages[: len(messages) // 2]:
        half[m["partition"]] += 1  # type: ignore[index]
    env = write_env(
        tmp_path / "sink.env",
        bootstrap_servers,
        pg_url,
        topic,
        unique_name,
        pk_mode="record_value",
        pk_fields="id",
        insert_mode="upsert",
        auto_create="true",
        auto_evolve="true",
        upsert_version_field="updated_at",
        batch_size=37,
    )
    try:
        produce(bootstrap_servers, topic, messages[: len(messages) // 2])
        sink = sink_runner.start(env)
        wait_committed(bootstrap_servers, unique_name, topic, half, sink)
        assert stop(sink) == 0, sink.stderr[-3000:]
        produce(bootstrap_servers, topic, messages[len(messages) // 2 :])
        sink = sink_runner.start(env)  # the restart: the rest, many of them older than what is stored
        wait_committed(bootstrap_servers, unique_name, topic, ends, sink)
        assert stop(sink) == 0, sink.stderr[-3000:]
        rows = fetch_rows(pg_url, topic, order_by="id")
        assert rows == [{"id": k, "updated_at": 6, "note": f"{k}@6"} for k in keys]
    finally:
        drop_table(pg_url, topic)


def test_a_scalar_value_for_an_object_topic_is_dead_lettered_and_the_table_unchanged(
    bootstrap_servers: str, pg_url: str, unique_name: str, tmp_path: Path, sink_runner: SinkRunner
) -> None:
    topic, dlq = unique_name, unique_name + "-dlq"
    drop_table(pg_url, topic)
    for name in (topic, dlq):
        create_topic(bootstrap_servers, name)
    base = {
        "pk_mode": "none",
        "auto_create": "true",
        "auto_evolve": "true",
        "errors_tolerance": "all",
        "errors_deadletterqueue_topic_name": dlq,
        "errors_deadletterqueue_context_headers_enable": "true",
    }
    try:
        produce(bootstrap_servers, topic, [{"value": json.dumps({"id": 1, "name": "a"})}, {"value": "42"}])
        env = write_env(tmp_path / "a.env", bootstrap_servers, pg_url, topic, unique_name, **base)
        sink = sink_runner.start(env)
        wait_committed(bootstrap_servers, unique_name, topic, {0: 2}, sink)
        assert stop(sink) == 0, sink.stderr[-3000:]
        assert fetch_rows(pg_url, topic) == [{"id": 1, "name": "a"}]
        assert set(table_columns(pg_url, topic)) == {"id", "name"}, "no column for the scalar"
        (dead,) = consume_all(bootstrap_servers, dlq, expected=1, timeout=15)
        assert dead.value == b"42"
        reason = (dead.header("__connect.errors.exception.message") or b"").decode()
        assert "not an object with fields" in reason and "SINK_VALUE_COLUMN_NAME" in reason
        assert dead.header("__connect.errors.stage") == b"VALUE_CONVERTER"

        # With SINK_VALUE_COLUMN_NAME the whole value lands in that column (a new group reads it all again).
        produce(bootstrap_servers, topic, [{"value": "7"}])
        env = write_env(
            tmp_path / "b.env", bootstrap_servers, pg_url, topic, unique_name + "-b", value_column_name="raw", **base
        )
        sink = sink_runner.start(env)
        wait_committed(bootstrap_servers, unique_name + "-b", topic, {0: 3}, sink)
        assert stop(sink) == 0, sink.stderr[-3000:]
        rows = fetch_rows(pg_url, topic)
        assert sorted(r["raw"] for r in rows if r["raw"] is not None) == [7, 42]
        assert len(consume_all(bootstrap_servers, dlq, timeout=5)) == 1, "nothing more dead-lettered"
    finally:
        drop_table(pg_url, topic)
