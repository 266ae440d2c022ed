"""Review of `sink reset-offsets --execute` under exactly-once against the real broker and
PostgreSQL: the offsets table and the group agree afterwards, also when the command is stopped
(SIGTERM) between the table's transaction and the group's alter, and a group left behind the table
is brought to it by `--to-current --execute` (the way the failure message names).

The stop lands after the table's commit, while the alter waits: the offsets table is locked
(EXCLUSIVE: reads pass, the reset's writes wait) while the broker is paused (SIGSTOP), so once the
lock is released the table commits and the alter waits on the broker; then the command gets
SIGTERM and the broker SIGCONT. The broker is a private embedded one: pausing the session's would
stall other tests. (Here the OffsetCommit is already in the paused broker's socket when SIGTERM
lands, so even a killed command moves the group; a stop before the request is written, or a broker
that does not answer, leaves the group behind: see the unit tests of the same name.)
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from sink.adapters.db import SqlOffsets, SqlStore, create_engine
from sink.adapters.embedded_broker import EmbeddedBroker
from tests.e2e.conftest import SINK, _clean_environ, write_env
from tests.e2e.test_reset_exactly_once import table_rows
from tests.e2e.test_reset_offsets import commit, fill, reset
from tests.support.db import drop_table
from tests.support.kafka import committed_offsets, wait_for

pytestmark = pytest.mark.e2e


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[EmbeddedBroker]:
    with EmbeddedBroker(log_path=tmp_path / "tansu.log") as started:
        yield started


@pytest.fixture
def eos(tmp_path: Path, pg_url: str, unique_name: str, broker: EmbeddedBroker) -> Iterator[tuple[Path, str, str]]:
    """One partition of 5 records, the group committed at 3, the offsets table created and empty."""
    topic = group = unique_name
    offsets_table = f"{unique_name}_offsets"
    bootstrap = broker.bootstrap_servers
    fill(bootstrap, topic, 1, 5)
    commit(bootstrap, group, topic, {0: 3})
    env = write_env(
        tmp_path / "sink.env",
        bootstrap,
        pg_url,
        topic,
        group,
        delivery_guarantee="exactly_once",
        offsets_table_name=offsets_table,
    )
    store = SqlStore(create_engine(pg_url))
    try:
        SqlOffsets(store, group, offsets_table)  # creates the table
    finally:
        store.close()
    try:
        yield env, topic, offsets_table
    finally:
        drop_table(pg_url, offsets_table)


def test_sigterm_after_the_table_was_reset_finishes_the_group_and_exits_0(
    eos: tuple[Path, str, str], broker: EmbeddedBroker, pg_url: str
) -> None:
    env, topic, offsets_table = eos
    bootstrap = broker.bootstrap_servers
    assert broker._process is not None
    broker_pid = broker._process.pid
    engine = sa.create_engine(pg_url, poolclass=sa.pool.NullPool)
    locker = engine.connect()
    process: subprocess.Popen[str] | None = None
    paused = False
    try:
        locker.execute(sa.text(f'LOCK TABLE "{offsets_table}" IN EXCLUSIVE MODE'))
        process = subprocess.Popen(
            [str(SINK), "reset-offsets", "--env-file", str(env), "--topic", topic, "--to-earliest", "--execute"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=_clean_environ(),
        )

        def waiting_on_the_lock() -> bool:
            assert process is not None and process.poll() is None, process and process.communicate()
            query = "SELECT count(*) FROM pg_locks WHERE relation = CAST(:t AS regclass) AND NOT granted"
            with engine.connect() as c:
                return bool(c.execute(sa.text(query), {"t": offsets_table}).scalar())

        wait_for(waiting_on_the_lock, 30, message="the reset never reached the offsets table")
        os.kill(broker_pid, signal.SIGSTOP)
        paused = True
        locker.rollback()  # the table's transaction goes on and commits; the alter waits on the broker
        wait_for(
            lambda: table_rows(pg_url, offsets_table, topic).get(0, (None, 0))[0] == 0,
            30,
            message="the offsets table was not reset",
        )
        time.sleep(0.3)  # the command is in the alter now
        process.send_signal(signal.SIGTERM)
        time.sleep(0.3)
        os.kill(broker_pid, signal.SIGCONT)
        paused = False
        _out, err = process.communicate(timeout=60)
        assert table_rows(pg_url, offsets_table, topic)[0][0] == 0
        group = committed_offsets(bootstrap, topic, topic, 1)
        assert group == {0: 0}, (
            f"stopped between the two: the offsets table says 0, the group {group} (exit {process.returncode}, {err!r})"
        )
        assert process.returncode == 0, f"killed mid --execute, nothing said (exit {process.returncode}): {err!r}"
        assert "interrupted (signal 15): finished moving the offsets table and the group first" in err, err
    finally:
        if paused:
            os.kill(broker_pid, signal.SIGCONT)
        if process is not None and process.poll() is None:
            process.kill()
            process.wait(10)
        locker.close()
        engine.dispose()


def test_to_current_brings_a_group_left_behind_to_the_table(
    eos: tuple[Path, str, str], broker: EmbeddedBroker, pg_url: str
) -> None:
    env, topic, offsets_table = eos
    bootstrap = broker.bootstrap_servers
    store = SqlStore(create_engine(pg_url))
    try:  # what an --execute that reset the table but not the group leaves
        SqlOffsets(store, topic, offsets_table, create=False).reset({(topic, 0): 1})
    finally:
        store.close()
    assert committed_offsets(bootstrap, topic, topic, 1) == {0: 3}
    done = reset(env, "--topic", topic, "--to-current", "--execute")
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[1].split() == [topic, "0", "3", "1", "1"], done.stdout
    assert table_rows(pg_url, offsets_table, topic)[0][0] == 1
    assert committed_offsets(bootstrap, topic, topic, 1) == {0: 1}
