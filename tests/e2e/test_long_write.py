"""A write that waits longer than `max.poll.interval.ms` (a lock held on the table) costs neither a
record nor the group membership: the sink waits for it while polling with the partitions paused.

`sink run --env-file F` as a subprocess, the real broker and PostgreSQL; another session holds
ACCESS EXCLUSIVE on the target table for longer than the consumer's max.poll.interval.ms while
records arrive, then lets go.
"""

from __future__ import annotations

import json
import re
import signal
import time
from pathlib import Path

import psycopg
import pytest
import sqlalchemy as sa
from psycopg import sql

from tests.e2e.conftest import SinkRunner, write_env
from tests.support.db import drop_table, fetch_rows
from tests.support.kafka import SESSION_TIMEOUT_MS, committed_offsets, create_topic, produce, wait_for

pytestmark = pytest.mark.e2e

MAX_POLL_INTERVAL_MS = 6000  # librdkafka wants it >= session.timeout.ms (6000 in the tests)
LOCK_HELD_S = MAX_POLL_INTERVAL_MS / 1000 + 3  # counted from the moment the sink's write waits for the lock
GROUP_TROUBLE = re.compile(r"revoked|assigned|rebalanc|max\.poll|maximum poll|leaving group|lost", re.IGNORECASE)


def libpq_url(url: str) -> str:
    """The SQLAlchemy URL of the tests as a libpq connection string for psycopg."""
    return sa.engine.make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def records(ids: range) -> list[dict[str, str]]:
    return [{"value": json.dumps({"id": i, "v": f"value-{i}"})} for i in ids]


def waiting_for_the_lock(conn: psycopg.Connection, table: str) -> bool:
    """Some session (the sink's writer) asks for a lock on `table` and does not have it."""
    name = sql.Identifier(table).as_string(conn)
    row = conn.execute(
        "SELECT count(*) FROM pg_locks WHERE relation = to_regclass(%s) AND NOT granted", (name,)
    ).fetchone()
    return bool(row and row[0])


def test_a_lock_held_longer_than_max_poll_interval_loses_no_record_and_keeps_the_group_member(
    bootstrap_servers: str, pg_url: str, unique_name: str, tmp_path: Path, sink_runner: SinkRunner
) -> None:
    assert MAX_POLL_INTERVAL_MS >= SESSION_TIMEOUT_MS
    topic = group = unique_name
    drop_table(pg_url, topic)
    create_topic(bootstrap_servers, topic)
    env = write_env(
        tmp_path / "sink.env",
        bootstrap_servers,
        pg_url,
        topic,
        group,
        consumer__max_poll_interval_ms=MAX_POLL_INTERVAL_MS,
        pk_mode="none",  # every record its own row: a record written twice shows
        insert_mode="insert",
    )
    sink = sink_runner.start(env)

    def committed() -> int:
        if sink.process.poll() is not None:
            raise AssertionError(f"the sink exited with {sink.process.returncode}:\n{sink.stderr[-3000:]}")
        return committed_offsets(bootstrap_servers, group, topic)[0] or 0

    def wait_committed(end: int, timeout: float) -> None:
        wait_for(lambda: committed() >= end, timeout, interval=0.25, message=f"{group} did not commit {end}")

    try:
        produce(bootstrap_servers, topic, records(range(0, 10)))
        wait_committed(10, 30)  # in the group, the table exists

        locker = psycopg.connect(libpq_url(pg_url))
        watcher = psycopg.connect(libpq_url(pg_url), autocommit=True)
        try:
            locker.execute(sql.SQL("LOCK TABLE {} IN ACCESS EXCLUSIVE MODE").format(sql.Identifier(topic)))
            log_at_lock = len(sink.stderr)
            produce(bootstrap_servers, topic, records(range(10, 30)))
            wait_for(lambda: waiting_for_the_lock(watcher, topic), 15, interval=0.1, message="the sink never waited")
            blocked_at = time.monotonic()
            time.sleep(LOCK_HELD_S / 2)
            produce(bootstrap_servers, topic, records(range(30, 40)))  # records keep arriving meanwhile
            time.sleep(max(0.0, blocked_at + LOCK_HELD_S - time.monotonic()))
            assert waiting_for_the_lock(watcher, topic), "the sink's write stopped waiting for the lock"
            assert committed() == 10, "committed records that cannot have been written"
            during_lock = sink.stderr[log_at_lock:]
        finally:
            locker.rollback()  # lets go of the lock
            locker.close()
            watcher.close()

        wait_committed(40, 30)
        before_stop = sink.stderr
        sink.process.send_signal(signal.SIGTERM)
        assert sink.wait(30) == 0, sink.stderr[-3000:]

        trouble = [line for line in during_lock.splitlines() if GROUP_TROUBLE.search(line)]
        assert not trouble, "the group noticed the long write:\n" + "\n".join(trouble)
        assigned = [line for line in before_stop.splitlines() if re.search(r"\bassigned\b", line)]
        assert len(assigned) == 1, "the sink left and joined the group again:\n" + "\n".join(assigned)
        assert not re.search(r"revoked|max\.poll|maximum poll", before_stop, re.IGNORECASE), before_stop[-3000:]
        assert "Traceback" not in sink.stderr
        assert "taking long: pausing consumption" in during_lock, f"the sink did not wait by polling:\n{during_lock}"

        rows = fetch_rows(pg_url, topic, order_by="id")
        assert [r["id"] for r in rows] == list(range(40)), "every record exactly once"
        assert all(r["v"] == f"value-{r['id']}" for r in rows)
        assert committed_offsets(bootstrap_servers, group, topic)[0] == 40
    finally:
        sink.kill()
        drop_table(pg_url, topic)
