"""`sink reset-offsets` under `SINK_DELIVERY_GUARANTEE=exactly_once` (issue 8), against the real
broker and databases: the dry run shows the group's offsets and the offsets table's positions and
changes neither; `--execute` to earliest of one partition resets the table (epoch bumped) and the
group, and the next `sink run` applies that partition again from its start. Insert mode with
`pk.mode=none`: each re-applied record is one more row, so the duplicates are exactly what the
reset asked for. PostgreSQL and SQLite.
"""

from __future__ import annotations

import json
import signal
from collections import Counter
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.e2e.conftest import SinkRunner, write_env
from tests.e2e.test_exactly_once import SCHEMA, count, rows
from tests.e2e.test_reset_offsets import reset
from tests.support.db import drop_table
from tests.support.kafka import committed_offsets, create_topic, produce, wait_for

pytestmark = pytest.mark.e2e

PER_PARTITION = 150


def table_rows(url: str, table: str, group: str) -> dict[int, tuple[int | None, int]]:
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as connection:
            columns = (sa.column(name) for name in ("group_id", "partition", "next_offset", "epoch"))
            t = sa.table(table, *columns)
            query = sa.select(t.c.partition, t.c.next_offset, t.c.epoch).where(t.c.group_id == group)
            return {p: (n, e) for p, n, e in connection.execute(query)}
    finally:
        engine.dispose()


def run_until(sink_runner: SinkRunner, env: Path, url: str, topic: str, rows_wanted: int) -> None:
    sink = sink_runner.start(env)

    def done() -> bool:
        assert sink.process.poll() is None, f"the sink exited:\n{sink.stderr[-3000:]}"
        return count(url, topic) >= rows_wanted

    wait_for(done, 90, interval=0.2, message=f"the sink did not write {rows_wanted} rows")
    sink.process.send_signal(signal.SIGTERM)
    assert sink.wait(60) == 0, sink.stderr[-3000:]


@pytest.mark.parametrize("database", ["postgresql", "sqlite"])
def test_reset_to_earliest_under_exactly_once_reapplies_exactly_what_it_asked(
    database: str,
    bootstrap_servers: str,
    request: pytest.FixtureRequest,
    unique_name: str,
    tmp_path: Path,
    sink_runner: SinkRunner,
) -> None:
    url = f"sqlite:///{tmp_path / 'eos.db'}" if database == "sqlite" else str(request.getfixturevalue("pg_url"))
    topic = group = unique_name
    offsets_table = f"{unique_name}_offsets"
    for name in (topic, offsets_table):
        drop_table(url, name)
    create_topic(bootstrap_servers, topic, partitions=2)
    records = [(p, i) for p in range(2) for i in range(PER_PARTITION)]
    produce(
        bootstrap_servers,
        topic,
        (
            {"value": json.dumps({"schema": SCHEMA, "payload": {"id": p * 1000 + i, "v": f"p{p}"}}), "partition": p}
            for p, i in records
        ),
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
        delivery_guarantee="exactly_once",
        offsets_table_name=offsets_table,
    )
    try:
        run_until(sink_runner, env, url, topic, len(records))
        before = table_rows(url, offsets_table, group)
        assert {p: n for p, (n, _e) in before.items()} == {0: PER_PARTITION, 1: PER_PARTITION}
        wait_for(
            lambda: committed_offsets(bootstrap_servers, group, topic, 2) == {0: PER_PARTITION, 1: PER_PARTITION},
            30,
            message="the group's offsets did not reach the end",
        )

        dry = reset(env, "--topic", f"{topic}:0", "--to-earliest")
        assert dry.returncode == 0, dry.stderr
        lines = dry.stdout.splitlines()
        assert lines[0].split() == ["TOPIC", "PARTITION", "CURRENT-OFFSET", "TABLE-OFFSET", "NEW-OFFSET"], dry.stdout
        assert lines[1].split() == [topic, "0", str(PER_PARTITION), str(PER_PARTITION), "0"], dry.stdout
        assert "not changed nor the offsets table" in dry.stdout
        assert table_rows(url, offsets_table, group) == before, "the dry run changed the offsets table"
        assert committed_offsets(bootstrap_servers, group, topic, 2) == {0: PER_PARTITION, 1: PER_PARTITION}

        done = reset(env, "--topic", f"{topic}:0", "--to-earliest", "--execute")
        assert done.returncode == 0, done.stderr
        after = table_rows(url, offsets_table, group)
        assert after[0] == (0, before[0][1] + 1), "position 0, epoch bumped (a running owner would be fenced)"
        assert after[1] == before[1], "a partition the reset did not name is left as it was"
        assert committed_offsets(bootstrap_servers, group, topic, 2) == {0: 0, 1: PER_PARTITION}

        run_until(sink_runner, env, url, topic, len(records) + PER_PARTITION)
        got = Counter(rows(url, topic))
        expected = Counter({(p * 1000 + i, f"p{p}"): 2 if p == 0 else 1 for p, i in records})
        assert got == expected, f"{sum(got.values()) - sum(expected.values()):+d} rows against the expected"
        assert {p: n for p, (n, _e) in table_rows(url, offsets_table, group).items()} == {
            0: PER_PARTITION,
            1: PER_PARTITION,
        }
    finally:
        for name in (topic, offsets_table):
            drop_table(url, name)
