"""Exactly-once under SIGKILL (issue 8): `SINK_DELIVERY_GUARANTEE=exactly_once`, insert mode with
`pk.mode=none` (any record applied twice is an extra row), 4 partitions; the sink is SIGKILLed at
random moments mid-ingest at least five times and restarted; the table ends with exactly one row
per record (count and content) and the offsets table holds each partition's end.

`sink run --env-file F` as a subprocess, Connect JSON values, PostgreSQL, MariaDB and SQLite.
"""

from __future__ import annotations

import json
import random
import signal
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.e2e.conftest import SinkRunner, write_env
from tests.support.db import drop_table
from tests.support.kafka import create_topic, produce, wait_for

pytestmark = pytest.mark.e2e

PARTITIONS = 4
RECORDS = 40_000
KILLS = 5
SCHEMA = {
    "type": "struct",
    "name": "test.Eos",
    "optional": False,
    "fields": [{"field": "id", "type": "int32", "optional": False}, {"field": "v", "type": "string"}],
}


def scalar(url: str, query: sa.Executable) -> object:
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as connection:
            return connection.execute(query).scalar()
    finally:
        engine.dispose()


def count(url: str, table: str) -> int:
    if not sa.inspect(sa.create_engine(url, poolclass=sa.pool.NullPool)).has_table(table):
        return 0
    return int(scalar(url, sa.select(sa.func.count()).select_from(sa.table(table))) or 0)  # type: ignore[arg-type]


def rows(url: str, table: str) -> list[tuple[int, str]]:
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as connection:
            t = sa.table(table, sa.column("id"), sa.column("v"))
            return [(i, v) for i, v in connection.execute(sa.select(t.c.id, t.c.v))]
    finally:
        engine.dispose()


def offsets(url: str, table: str, group: str) -> dict[int, int | None]:
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as connection:
            t = sa.table(table, sa.column("group_id"), sa.column("partition"), sa.column("next_offset"))
            query = sa.select(t.c.partition, t.c.next_offset).where(t.c.group_id == group)
            return {p: n for p, n in connection.execute(query)}
    finally:
        engine.dispose()


@pytest.mark.parametrize("database", ["postgresql", "mariadb", "sqlite"])
def test_sigkilled_again_and_again_every_record_is_exactly_one_row(
    database: str,
    bootstrap_servers: str,
    request: pytest.FixtureRequest,
    unique_name: str,
    tmp_path: Path,
    sink_runner: SinkRunner,
) -> None:
    if database == "sqlite":
        url = f"sqlite:///{tmp_path / 'eos.db'}"
    else:
        url = str(request.getfixturevalue("pg_url" if database == "postgresql" else "mariadb_url"))
    topic = group = unique_name
    offsets_table = f"{unique_name}_offsets"
    for table in (topic, offsets_table):
        drop_table(url, table)
    create_topic(bootstrap_servers, topic, partitions=PARTITIONS)
    produce(
        bootstrap_servers,
        topic,
        (
            {"value": json.dumps({"schema": SCHEMA, "payload": {"id": i, "v": f"v{i}"}}), "partition": i % PARTITIONS}
            for i in range(RECORDS)
        ),
        timeout=120,
    )
    env = write_env(
        tmp_path / "sink.env",
        bootstrap_servers,
        url,
        topic,
        group,
        value_format="connect_json",
        pk_mode="none",
        insert_mode="insert",
        batch_size=200,
        delivery_guarantee="exactly_once",
        offsets_table_name=offsets_table,
    )
    rng = random.Random(8)
    kills: list[int] = []
    try:
        while len(kills) < KILLS:
            at_start = count(url, topic)
            sink = sink_runner.start(env)
            step = rng.randint(300, 3000)

            def progressed(sink=sink, at_start=at_start, step=step) -> bool:  # type: ignore[no-untyped-def]
                assert sink.process.poll() is None, f"the sink exited:\n{sink.stderr[-3000:]}"
                return count(url, topic) >= min(at_start + step, RECORDS)

            wait_for(progressed, 90, interval=0.02, message="the sink wrote nothing")
            time.sleep(rng.random() * 0.2)  # and a random moment later: mid-batch, mid-commit, anywhere
            sink.process.send_signal(signal.SIGKILL)
            sink.process.wait(10)
            assert sink.process.returncode == -signal.SIGKILL
            kills.append(count(url, topic))
            assert kills[-1] < RECORDS, f"ingest finished before kill {len(kills)}: {kills}"
        last = sink_runner.start(env)
        wait_for(lambda: count(url, topic) >= RECORDS, 180, interval=0.25, message="the sink did not catch up")
        time.sleep(2)  # anything applied twice would show up now
        last.process.send_signal(signal.SIGTERM)
        assert last.wait(60) == 0, last.stderr[-3000:]
    finally:
        print(f"\nrows when killed: {kills}")
    got = rows(url, topic)
    assert len(got) == RECORDS, f"{len(got) - RECORDS:+d} rows"
    assert sorted(got) == [(i, f"v{i}") for i in range(RECORDS)]
    assert offsets(url, offsets_table, group) == {p: RECORDS // PARTITIONS for p in range(PARTITIONS)}
    for table in (topic, offsets_table):
        drop_table(url, table)
