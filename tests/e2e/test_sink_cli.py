"""`sink run` as a subprocess: a large mixed stream, SIGTERM and restart, bad configuration, poison."""

from __future__ import annotations

import json
import random
import re
import signal
import threading
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.e2e.conftest import SinkRunner, write_env
from tests.support.db import drop_table, fetch_rows
from tests.support.kafka import committed_offsets, create_topic, produce, wait_for

pytestmark = pytest.mark.e2e


@pytest.fixture
def pg_table(pg_url: str, unique_name: str):  # type: ignore[no-untyped-def]
    drop_table(pg_url, unique_name)
    yield unique_name
    drop_table(pg_url, unique_name)


def _count(url: str, table: str) -> int:
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            if not sa.inspect(conn).has_table(table):
                return 0
            t = sa.Table(table, sa.MetaData(), autoload_with=conn)
            return int(conn.execute(sa.select(sa.func.count()).select_from(t)).scalar_one())
    finally:
        engine.dispose()


def _wait_committed(bootstrap: str, group: str, topic: str, ends: dict[int, int], timeout: float = 90.0) -> None:
    def done() -> bool:
        committed = committed_offsets(bootstrap, group, topic, list(ends))
        return all((committed.get(p) or 0) >= end for p, end in ends.items())

    wait_for(done, timeout, interval=0.3, message=f"{group} did not commit {ends} on {topic}")


# ------------------------------------------------------------------------------ (a) a large mixed stream


def test_ten_thousand_records_with_updates_and_deletes(
    bootstrap_servers: str, pg_url: str, pg_table: str, unique_name: str, tmp_path: Path, sink_runner: SinkRunner
) -> None:
    topic = pg_table
    create_topic(bootstrap_servers, topic, partitions=3)
    rng = random.Random(20240611)
    records = []
    expected: dict[str, dict] = {}
    for i in range(10_000):
        key = f"user-{rng.randrange(1500)}"
        partition = int(key.split("-")[1]) % 3  # one key, one partition: its order is kept
        if key in expected and rng.random() < 0.15:
            records.append({"key": key, "value": None, "partition": partition})
            del expected[key]
            continue
        value = {"seq": i, "name": f"name {i}", "score": rng.randrange(10**6) / 100, "active": rng.random() < 0.5}
        if rng.random() < 0.3:
            value["tags"] = {"n": i % 7}
        records.append({"key": key, "value": json.dumps(value), "partition": partition})
        expected[key] = {**expected.get(key, {}), **value}  # a field a record lacks keeps its value
    produce(bootstrap_servers, topic, records)
    ends = {p: sum(1 for r in records if r["partition"] == p) for p in range(3)}
    assert sum(ends.values()) == 10_000

    env = write_env(
        tmp_path / "sink.env",
        bootstrap_servers,
        pg_url,
        topic,
        unique_name,
        insert_mode="upsert",
        pk_mode="record_key",
        pk_fields="user_id",
        delete_enabled="true",
        auto_evolve="true",
        batch_size=500,
    )
    sink = sink_runner.start(env)
    _wait_committed(bootstrap_servers, unique_name, topic, ends)
    sink.process.send_signal(signal.SIGTERM)
    assert sink.wait(15) == 0, sink.stderr[-3000:]

    rows = fetch_rows(pg_url, topic, order_by="user_id")
    got = {r.pop("user_id"): r for r in rows}
    assert len(got) == len(expected)
    for key, value in expected.items():
        want = {"seq": None, "name": None, "score": None, "active": None, "tags": None, **value}
        assert got[key] == want, key
    assert committed_offsets(bootstrap_servers, unique_name, topic, 3) == ends


# ------------------------------------------------------------------------------ (b) SIGTERM and restart


def test_sigterm_mid_stream_then_resume_without_rereading(
    bootstrap_servers: str, pg_url: str, pg_table: str, unique_name: str, tmp_path: Path, sink_runner: SinkRunner
) -> None:
    topic = pg_table
    create_topic(bootstrap_servers, topic, partitions=3)
    env = write_env(
        tmp_path / "sink.env",
        bootstrap_servers,
        pg_url,
        topic,
        unique_name,
        insert_mode="insert",
        pk_mode="kafka",
        batch_size=50,
    )
    produced = {0: 0, 1: 0, 2: 0}
    stop_producing = threading.Event()

    def producer() -> None:  # keeps the stream flowing while the sink is stopped and restarted
        n = 0
        while not stop_producing.is_set():
            chunk = [{"value": json.dumps({"n": n + i}), "partition": (n + i) % 3} for i in range(150)]
            produce(bootstrap_servers, topic, chunk)
            for record in chunk:
                produced[record["partition"]] += 1
            n += len(chunk)
            time.sleep(0.05)

    first = sink_runner.start(env)
    thread = threading.Thread(target=producer, daemon=True)
    thread.start()
    try:
        wait_for(lambda: _count(pg_url, topic) >= 500, 60, message="the sink wrote nothing")
        first.process.send_signal(signal.SIGTERM)
        signalled = time.monotonic()
        assert first.wait(10) == 0, first.stderr[-3000:]
        assert time.monotonic() - signalled < 5, "SIGTERM should stop the sink within a few seconds"
        time.sleep(0.3)  # the stream goes on without the sink
    finally:
        stop_producing.set()
        thread.join(30)
    assert "received SIGTERM" in first.stderr

    # Committed offsets are exactly the settled position: every record below them is in the table,
    # none at or above them is.
    committed = committed_offsets(bootstrap_servers, unique_name, topic, 3)
    rows = fetch_rows(pg_url, topic)
    for partition in range(3):
        offsets = sorted(r["__connect_offset"] for r in rows if r["__connect_partition"] == partition)
        assert offsets == list(range(committed[partition] or 0)), f"partition {partition}"
    first_total = len(rows)
    total = sum(produced.values())
    assert 0 < first_total < total, "stopped mid-stream"

    # A restart resumes at the committed offsets: insert mode with the Kafka coordinates as the
    # primary key would fail (and exit 1) on any record read twice.
    second = sink_runner.start(env)
    _wait_committed(bootstrap_servers, unique_name, topic, produced)
    second.process.send_signal(signal.SIGTERM)
    assert second.wait(15) == 0, second.stderr[-3000:]

    rows = fetch_rows(pg_url, topic)
    assert len(rows) == total
    assert len({(r["__connect_partition"], r["__connect_offset"]) for r in rows}) == total
    assert sorted(r["n"] for r in rows) == list(range(total))
    final = re.findall(r"final: records in=(\d+)", second.stderr)
    assert final == [str(total - first_total)], "the second run read only what the first had not committed"


# ------------------------------------------------------------------------------ (c) bad configuration


@pytest.mark.parametrize(
    ("settings", "variable"),
    [
        ({"SINK_INSERT_MODE": "merge"}, "SINK_INSERT_MODE"),
        ({"SINK_BATCH_SIZE": "-1"}, "SINK_BATCH_SIZE"),
        ({"SINK_DELETE_ENABLED": "true"}, "SINK_DELETE_ENABLED"),
        ({"SINK_DATABASE_URL": "postgresql+psycopg://sink:p@ss:Secret123@db/x"}, "SINK_DATABASE_URL"),
        ({"SINK_TOPICS_REGEX": "orders.*"}, "SINK_TOPICS"),
        ({"SINK_PK_MOD": "kafka"}, "SINK_PK_MOD"),
        ({"SINK_VALUE_FORMAT": "avro", "SINK_SCHEMA_REGISTRY_URL": "registry:8081"}, "SINK_SCHEMA_REGISTRY_URL"),
    ],
)
def test_bad_configuration_exits_2_with_one_line(
    tmp_path: Path, sink_runner: SinkRunner, settings: dict[str, str], variable: str
) -> None:
    env = tmp_path / "bad.env"
    base = {
        "SINK_BOOTSTRAP_SERVERS": "127.0.0.1:1",
        "SINK_DATABASE_URL": "postgresql+psycopg://sink:Secret123@db/x",
        "SINK_TOPICS": "orders",
    }
    env.write_text("".join(f"{k}={v}\n" for k, v in {**base, **settings}.items()))
    sink = sink_runner.run(env, timeout=30)
    assert sink.process.returncode == 2
    lines = sink.stderr.splitlines()
    assert len(lines) == 1, sink.stderr
    assert f"{variable}:" in lines[0]
    assert "Traceback" not in sink.stderr
    assert "Secret123" not in sink.stderr
    assert sink.stdout == ""


def test_missing_env_file_exits_2(tmp_path: Path, sink_runner: SinkRunner) -> None:
    sink = sink_runner.run(tmp_path / "missing.env", timeout=30)
    assert sink.process.returncode == 2
    assert len(sink.stderr.splitlines()) == 1 and "--env-file" in sink.stderr


def test_later_env_file_wins_on_the_command_line(tmp_path: Path, sink_runner: SinkRunner) -> None:
    good = tmp_path / "a.env"
    good.write_text("SINK_BOOTSTRAP_SERVERS=127.0.0.1:1\nSINK_DATABASE_URL=sqlite:///x.db\nSINK_TOPICS=t\n")
    bad = tmp_path / "b.env"
    bad.write_text("SINK_INSERT_MODE=sometimes\n")
    sink = sink_runner.run(good, bad, timeout=30)
    assert sink.process.returncode == 2
    assert sink.stderr.startswith("sink: configuration error: SINK_INSERT_MODE:")


# ------------------------------------------------------------------------------ (d) a poison record


def test_poison_record_stops_the_sink_at_its_offset(
    bootstrap_servers: str, pg_url: str, pg_table: str, unique_name: str, tmp_path: Path, sink_runner: SinkRunner
) -> None:
    topic = pg_table
    create_topic(bootstrap_servers, topic)
    good_before = [{"value": json.dumps({"n": i})} for i in range(25)]
    poison = {"value": b'{"n": 25, "broken": '}
    good_after = [{"value": json.dumps({"n": i})} for i in range(26, 40)]
    produce(bootstrap_servers, topic, [*good_before, poison, *good_after])
    poison_offset = len(good_before)
    env = write_env(
        tmp_path / "sink.env",
        bootstrap_servers,
        pg_url,
        topic,
        unique_name,
        insert_mode="insert",
        pk_mode="kafka",
    )

    first = sink_runner.run(env, timeout=60)
    assert first.process.returncode == 1, first.stderr[-3000:]
    coordinates = f"{topic}/0@{poison_offset}"
    assert coordinates in first.stderr, first.stderr[-3000:]
    assert "Traceback" not in first.stderr
    committed = committed_offsets(bootstrap_servers, unique_name, topic)[0]
    assert committed is not None and committed <= poison_offset
    rows = fetch_rows(pg_url, topic, order_by="__connect_offset")
    assert [r["n"] for r in rows] == list(range(poison_offset)), "the records before it landed, none after"

    second = sink_runner.run(env, timeout=60)
    assert second.process.returncode == 1, second.stderr[-3000:]
    assert coordinates in second.stderr, "a restart stops at the same record"
    assert re.findall(r"final: records in=(\d+)", second.stderr) == [str(1 + poison_offset - committed)]
    assert [r["n"] for r in fetch_rows(pg_url, topic, order_by="__connect_offset")] == list(range(poison_offset))
    assert committed_offsets(bootstrap_servers, unique_name, topic)[0] == committed
