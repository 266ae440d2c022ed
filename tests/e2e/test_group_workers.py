"""Several `sink run` processes in one consumer group (issue 8), while records are produced: one
joins mid-ingest, one leaves with SIGTERM, one dies with SIGKILL; the others take over its
partitions from the settled position and the table ends exact.

- exactly-once, insert mode with `pk.mode=none` (any record applied twice is an extra row), eager
  and cooperative-sticky rebalancing: exactly one row per record;
- at-least-once upserts of the same keys with increasing versions, cooperative-sticky: every key
  ends at its last version (per-key order kept across owners); the cooperative worker's revocations
  name only the partitions that moved (incremental: Tansu runs the classic group protocol, and
  cooperative-sticky is the members' own assignment protocol on top of it).

PostgreSQL, Connect JSON values, 4 partitions.
"""

from __future__ import annotations

import json
import re
import signal
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.e2e.conftest import SinkProcess, SinkRunner, write_env
from tests.e2e.test_exactly_once import SCHEMA, count, rows
from tests.support.db import drop_table
from tests.support.kafka import create_topic, produce, wait_for

pytestmark = pytest.mark.e2e

PARTITIONS = 4
VERSIONED = {
    "type": "struct",
    "name": "test.Versioned",
    "optional": False,
    "fields": [{"field": "id", "type": "int32", "optional": False}, {"field": "v", "type": "int32"}],
}


class Producer(threading.Thread):
    """Produces `values` (partition, payload) in chunks with pauses (about 1,000 a second), so that
    ingest spans the joins, deaths and leaves."""

    def __init__(self, bootstrap: str, topic: str, values: list[tuple[int, dict[str, object]]], schema: object) -> None:
        super().__init__(daemon=True)
        self.bootstrap, self.topic, self.values, self.schema = bootstrap, topic, values, schema
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            for start in range(0, len(self.values), 500):
                chunk = self.values[start : start + 500]
                produce(
                    self.bootstrap,
                    self.topic,
                    ({"value": json.dumps({"schema": self.schema, "payload": v}), "partition": p} for p, v in chunk),
                    timeout=60,
                )
                time.sleep(0.5)  # about 1,000 records a second: joins and takeovers happen mid-ingest
        except BaseException as exc:  # seen by the test
            self.error = exc

    def finish(self) -> None:
        self.join(180)
        assert not self.is_alive(), "the producer did not finish"
        if self.error is not None:
            raise self.error


def alive(*sinks: SinkProcess) -> None:
    for sink in sinks:
        assert sink.process.poll() is None, f"a sink exited early:\n{sink.stderr[-3000:]}"


def grows(url: str, table: str, by: int, *sinks: SinkProcess) -> None:
    """Wait until the table holds `by` more rows than now (the running sinks make progress)."""
    start = count(url, table)

    def done() -> bool:
        alive(*sinks)
        return count(url, table) >= start + by

    wait_for(done, 90, interval=0.1, message=f"no progress past {start} rows")


def stop(sink: SinkProcess) -> None:
    sink.process.send_signal(signal.SIGTERM)
    assert sink.wait(60) == 0, sink.stderr[-3000:]


def kill(sink: SinkProcess) -> None:
    sink.process.send_signal(signal.SIGKILL)
    sink.process.wait(10)
    assert sink.process.returncode == -signal.SIGKILL


@pytest.fixture
def topic(bootstrap_servers: str, pg_url: str, unique_name: str) -> Iterator[str]:
    for name in (unique_name, f"{unique_name}_offsets"):
        drop_table(pg_url, name)
    create_topic(bootstrap_servers, unique_name, partitions=PARTITIONS)
    yield unique_name
    for name in (unique_name, f"{unique_name}_offsets"):
        drop_table(pg_url, name)


def assigned(sink: SinkProcess, times: int = 1) -> None:
    """Wait until `sink` logged its `times`-th assignment (joining takes Tansu a few seconds)."""

    def done() -> bool:
        alive(sink)
        return sink.stderr.count("sink.worker: assigned ") >= times

    wait_for(done, 60, interval=0.1, message="the sink was never assigned partitions")


def revocations(sink: SinkProcess) -> list[set[str]]:
    """The partitions each `revoked ...: flushing` line of `sink` names."""
    return [
        set(re.findall(r"/(\d+)", line.split("revoked", 1)[1].split(":", 1)[0]))
        for line in sink.stderr.splitlines()
        if "revoked " in line and "flushing" in line
    ]


def eos_env(tmp_path: Path, bootstrap: str, url: str, topic: str, strategy: str) -> Path:
    return write_env(
        tmp_path / "sink.env",
        bootstrap,
        url,
        topic,
        topic,
        value_format="connect_json",
        pk_mode="none",
        insert_mode="insert",
        batch_size=200,
        delivery_guarantee="exactly_once",
        offsets_table_name=f"{topic}_offsets",
        consumer__partition_assignment_strategy=strategy,
    )


def exact(url: str, table: str, records: int) -> None:
    got = rows(url, table)
    assert len(got) == records, f"{len(got) - records:+d} rows"
    assert sorted(got) == [(i, f"v{i}") for i in range(records)]


def test_exactly_once_three_workers_join_die_and_leave_mid_ingest(
    bootstrap_servers: str, pg_url: str, topic: str, tmp_path: Path, sink_runner: SinkRunner
) -> None:
    records = 40_000
    env = eos_env(tmp_path, bootstrap_servers, pg_url, topic, "range")
    producer = Producer(
        bootstrap_servers, topic, [(i % PARTITIONS, {"id": i, "v": f"v{i}"}) for i in range(records)], SCHEMA
    )
    producer.start()
    first = sink_runner.start(env)
    assigned(first)
    second = sink_runner.start(env)  # joins mid-ingest
    assigned(second)
    grows(pg_url, topic, 1000, first, second)
    third = sink_runner.start(env)  # a third joins
    assigned(third)
    grows(pg_url, topic, 1000, first, second, third)
    kill(first)  # dies: the others take its partitions over after the session timeout
    grows(pg_url, topic, 1000, second, third)
    stop(second)  # leaves: the third takes over at once
    producer.finish()
    wait_for(lambda: alive(third) or count(pg_url, topic) >= records, 180, interval=0.25, message="no catch-up")
    assert count(pg_url, topic) < records + 1
    time.sleep(2)  # anything applied twice would show up now
    stop(third)
    exact(pg_url, topic, records)


def test_exactly_once_cooperative_second_worker_joins_mid_ingest_and_leaves(
    bootstrap_servers: str, pg_url: str, topic: str, tmp_path: Path, sink_runner: SinkRunner
) -> None:
    records = 30_000
    env = eos_env(tmp_path, bootstrap_servers, pg_url, topic, "cooperative-sticky")
    producer = Producer(
        bootstrap_servers, topic, [(i % PARTITIONS, {"id": i, "v": f"v{i}"}) for i in range(records)], SCHEMA
    )
    producer.start()
    first = sink_runner.start(env)
    assigned(first)
    second = sink_runner.start(env)  # joins mid-ingest: only the partitions that move are revoked
    assigned(second)
    grows(pg_url, topic, 1000, first, second)
    moved = revocations(first)
    assert moved and all(0 < len(m) < PARTITIONS for m in moved), f"not incremental: {moved}"
    stop(second)  # leaves: its partitions go back to the first
    producer.finish()
    wait_for(lambda: alive(first) or count(pg_url, topic) >= records, 180, interval=0.25, message="no catch-up")
    time.sleep(2)
    stop(first)
    exact(pg_url, topic, records)


def versions_of(url: str, table: str) -> Counter[int]:
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as connection:
            t = sa.table(table, sa.column("v"))
            return Counter(v for (v,) in connection.execute(sa.select(t.c.v)))
    finally:
        engine.dispose()
