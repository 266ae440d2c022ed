"""Two guarantees of issue 8 with several `sink run` processes in one group, while records are produced.

- A zombie (exactly-once, insert mode with `pk.mode=none`: any record applied twice is an extra
  row): worker A is stopped with SIGSTOP in the middle of a batch's transaction (its rows written,
  not committed) for longer than the session timeout; the group evicts it and worker B claims its
  partitions (the offsets table's epochs move). Resumed with SIGCONT, A finishes its transaction:
  the compare-and-set on the offsets table is refused (Fenced), it rolls back and A drops what it
  held. The table ends with exactly one row per record and the offsets table at each partition's end.
  To have A's batch in flight at a known moment, a statement trigger sleeps in the transactions of
  A's connection only (a custom setting on A's database URL, `options=-c sinktest.role=zombie`).
- Per-key order across owners (at-least-once upsert by key, no version field): 50 keys x 40
  versions produced in order per key, spread over 4 partitions by their key; a second worker joins
  mid-ingest, the first is SIGKILLed and a third started: every key ends at its last version.

PostgreSQL, Connect JSON values, 4 partitions, the embedded broker.
"""

from __future__ import annotations

import json
import re
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.e2e.conftest import SinkProcess, SinkRunner, write_env
from tests.e2e.test_exactly_once import SCHEMA, count, offsets, rows
from tests.support.db import drop_table
from tests.support.kafka import create_topic, produce, wait_for

pytestmark = pytest.mark.e2e

PARTITIONS = 4
ALL = {str(p) for p in range(PARTITIONS)}
ZOMBIE_SLEEP_S = 0.5  # each statement of A's transactions on the table sleeps this long
VERSIONED = {
    "type": "struct",
    "name": "test.Versioned",
    "optional": False,
    "fields": [{"field": "id", "type": "int32", "optional": False}, {"field": "v", "type": "int32"}],
}


def execute(url: str, *statements: str, **params: object) -> list[tuple[object, ...]]:
    """Run `statements` in one transaction; the rows of the last one."""
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        with engine.begin() as connection:
            result = None
            for statement in statements:
                result = connection.execute(sa.text(statement), params)
            return [tuple(r) for r in result] if result is not None and result.returns_rows else []
    finally:
        engine.dispose()


def alive(*sinks: SinkProcess) -> None:
    for sink in sinks:
        assert sink.process.poll() is None, f"a sink exited early:\n{sink.stderr[-3000:]}"


def assignments(sink: SinkProcess) -> list[set[str]]:
    """The partitions each `assigned ...` line of `sink` names."""
    return [
        set(re.findall(r"/(\d+)", line.split("sink.worker: assigned ", 1)[1]))
        for line in sink.stderr.splitlines()
        if "sink.worker: assigned " in line
    ]


def assigned(sink: SinkProcess, times: int = 1, timeout: float = 60) -> None:
    """Wait until `sink` logged its `times`-th assignment (joining takes Tansu a few seconds)."""

    def done() -> bool:
        alive(sink)
        return len(assignments(sink)) >= times

    wait_for(done, timeout, interval=0.1, message=f"the sink was not assigned partitions {times} time(s)")


def stop(sink: SinkProcess) -> None:
    sink.process.send_signal(signal.SIGTERM)
    assert sink.wait(60) == 0, sink.stderr[-3000:]


class Producer(threading.Thread):
    """Produces `values(i)` (partition, payload, key) for i = 0, 1, ... in chunks, with a pause after
    each chunk, up to `limit` (raised by the test: production in stages) or until stopped or out of
    values; `produced` counts them."""

    def __init__(self, bootstrap: str, topic: str, schema: object, values, chunk: int, pause: float) -> None:  # type: ignore[no-untyped-def]
        super().__init__(daemon=True)
        self.bootstrap, self.topic, self.schema, self.values = bootstrap, topic, schema, values
        self.chunk, self.pause = chunk, pause
        self.produced = 0
        self.limit: float = float("inf")
        self.stopping = threading.Event()
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            while not self.stopping.is_set():
                if self.produced >= self.limit:
                    self.stopping.wait(0.05)
                    continue
                batch = [self.values(i) for i in range(self.produced, self.produced + self.chunk)]
                batch = [b for b in batch if b is not None]
                if not batch:
                    return
                produce(
                    self.bootstrap,
                    self.topic,
                    (
                        {"value": json.dumps({"schema": self.schema, "payload": v}), "partition": p, "key": k}
                        for p, v, k in batch
                    ),
                    timeout=60,
                )
                self.produced += len(batch)
                self.stopping.wait(self.pause)
        except BaseException as exc:  # seen by the test
            self.error = exc

    def finish(self) -> int:
        self.stopping.set()
        self.join(120)
        assert not self.is_alive(), "the producer did not finish"
        if self.error is not None:
            raise self.error
        return self.produced

    def produce_up_to(self, limit: int, timeout: float = 60) -> None:
        """Let it go on up to `limit` records, and wait for them."""
        self.limit = limit
        wait_for(lambda: self.error or self.produced >= limit or not self.is_alive(), timeout, interval=0.05)
        if self.error is not None:
            raise self.error


@pytest.fixture
def topic(bootstrap_servers: str, pg_url: str, unique_name: str) -> Iterator[str]:
    for name in (unique_name, f"{unique_name}_offsets"):
        drop_table(pg_url, name)
    create_topic(bootstrap_servers, unique_name, partitions=PARTITIONS)
    yield unique_name
    for name in (unique_name, f"{unique_name}_offsets"):
        drop_table(pg_url, name)
    execute(pg_url, f"DROP FUNCTION IF EXISTS {unique_name}_slow() CASCADE")


def slow_down_zombie(url: str, table: str, seconds: float) -> None:
    """Every statement writing `table` from a connection with `sinktest.role=zombie` sleeps (the
    function is replaced with seconds=0 to lift it: no lock on the table is needed for that)."""
    execute(
        url,
        f"""CREATE OR REPLACE FUNCTION {table}_slow() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
          IF current_setting('sinktest.role', true) = 'zombie' THEN PERFORM pg_sleep({seconds}); END IF;
          RETURN NULL;
        END $$""",
    )
    if seconds:
        execute(
            url,
            f"DROP TRIGGER IF EXISTS slow ON {table}",
            f"CREATE TRIGGER slow AFTER INSERT ON {table} FOR EACH STATEMENT EXECUTE FUNCTION {table}_slow()",
        )


def sleeping_backend(url: str, table: str) -> int | None:
    """The PostgreSQL backend of A's connection while it sleeps in the trigger (mid-batch)."""
    found = execute(
        url,
        "SELECT pid FROM pg_stat_activity WHERE wait_event = 'PgSleep' AND datname = current_database()"
        " AND strpos(query, :table) > 0",
        table=table,
    )
    return int(found[0][0]) if found else None  # type: ignore[arg-type]


def backend_state(url: str, pid: int) -> str | None:
    found = execute(url, "SELECT state FROM pg_stat_activity WHERE pid = :pid", pid=pid)
    return str(found[0][0]) if found else None


def stop_mid_batch(a: SinkProcess, b: SinkProcess, url: str, table: str) -> int:
    """SIGSTOP A in the middle of a batch: its rows sent, its transaction open (the trigger sleeps in
    it; the compare-and-set and the commit come after); the PostgreSQL backend it leaves open."""
    for _ in range(5):
        pid = wait_for(lambda: alive(a, b) or sleeping_backend(url, table), 60, interval=0.01, message="A never wrote")
        a.process.send_signal(signal.SIGSTOP)
        deadline = time.monotonic() + 3 * ZOMBIE_SLEEP_S + 2
        while time.monotonic() < deadline:
            if backend_state(url, pid) == "idle in transaction":
                return int(pid)
            time.sleep(0.05)
        a.process.send_signal(signal.SIGCONT)  # stopped just after its commit: try again
    raise AssertionError("could not stop A in the middle of a batch")


def test_zombie_resumed_after_its_partitions_moved_is_fenced_and_nothing_is_applied_twice(
    bootstrap_servers: str, pg_url: str, topic: str, tmp_path: Path, sink_runner: SinkRunner
) -> None:
    settings = dict(
        value_format="connect_json",
        pk_mode="none",
        insert_mode="insert",
        batch_size=50,
        delivery_guarantee="exactly_once",
        offsets_table_name=f"{topic}_offsets",
    )
    env_b = write_env(tmp_path / "b.env", bootstrap_servers, pg_url, topic, topic, **settings)
    zombie_url = f"{pg_url}?options=-c%20sinktest.role%3Dzombie"
    env_a = write_env(tmp_path / "a.env", bootstrap_servers, zombie_url, topic, topic, **settings)
    chunk = 20 * PARTITIONS  # every chunk ends on a whole round of the partitions
    producer = Producer(
        bootstrap_servers, topic, SCHEMA, lambda i: (i % PARTITIONS, {"id": i, "v": f"v{i}"}, None), chunk, 0.1
    )
    a = b = None
    try:
        producer.start()
        a = sink_runner.start(env_a)
        assigned(a)
        wait_for(lambda: alive(a) or count(pg_url, topic) > 0, 60, interval=0.1, message="A wrote nothing")
        slow_down_zombie(pg_url, topic, ZOMBIE_SLEEP_S)
        b = sink_runner.start(env_b)
        assigned(b)
        wait_for(lambda: alive(a, b) or len(assignments(a)) >= 2, 60, message="A was not assigned again")
        assert assignments(a)[-1] and assignments(a)[-1] != ALL, f"A holds {assignments(a)[-1]}"
        takeovers_before = len(assignments(b))

        pid = stop_mid_batch(a, b, pg_url, topic)
        stopped = time.monotonic()

        def b_took_everything() -> bool:
            alive(b)
            return any(got == ALL for got in assignments(b)[takeovers_before:])

        wait_for(b_took_everything, 90, interval=0.1, message="B never took A's partitions over")
        took = time.monotonic() - stopped
        assert backend_state(pg_url, pid) == "idle in transaction", "A's batch did not stay in flight"

        a.process.send_signal(signal.SIGCONT)

        def fenced() -> bool:
            alive(a, b)
            return "now belong to another worker" in a.stderr

        wait_for(fenced, 60, interval=0.1, message="A's late transaction was not refused")
        slow_down_zombie(pg_url, topic, 0)  # the rest at full speed
        rejoined = len(assignments(a)) + 1  # A goes on as a member of the group again and takes a share
        wait_for(lambda: alive(a, b) or len(assignments(a)) >= rejoined, 60, message="A did not rejoin")
        assert assignments(a)[-1] and assignments(a)[-1] != ALL, f"A holds {assignments(a)[-1]}"
        progress = count(pg_url, topic) + 1000
        wait_for(lambda: alive(a, b) or count(pg_url, topic) >= progress, 60, message="no progress after the zombie")
        records = producer.finish()
        wait_for(lambda: alive(a, b) or count(pg_url, topic) >= records, 90, interval=0.25, message="no catch-up")
        time.sleep(2)  # anything applied twice would show up now
        stop(a)
        stop(b)
    finally:
        producer.stopping.set()
        for sink in (a, b):
            if sink is not None and sink.process.poll() is None:
                sink.process.send_signal(signal.SIGCONT)
    print(f"\n{records} records; B took A's partitions {took:.1f}s after SIGSTOP")
    fence = [line for line in a.stderr.splitlines() if "now belong to another worker" in line]
    print("\n".join(fence))
    got = rows(pg_url, topic)
    assert len(got) == records, f"{len(got) - records:+d} rows"
    assert sorted(got) == [(i, f"v{i}") for i in range(records)]
    assert offsets(pg_url, f"{topic}_offsets", topic) == {p: records // PARTITIONS for p in range(PARTITIONS)}


def last_versions(url: str, table: str) -> dict[int, int]:
    if not count(url, table):
        return {}
    return {int(k): int(v) for k, v in execute(url, f"SELECT id, v FROM {table}")}  # type: ignore[call-overload]


@pytest.mark.parametrize("strategy", ["range", "cooperative-sticky"])
def test_upserts_keep_per_key_order_across_owners_join_kill_and_restart(
    strategy: str, bootstrap_servers: str, pg_url: str, topic: str, tmp_path: Path, sink_runner: SinkRunner
) -> None:
    keys, versions = 50, 40
    env = write_env(
        tmp_path / "sink.env",
        bootstrap_servers,
        pg_url,
        topic,
        topic,
        value_format="connect_json",
        pk_mode="record_value",
        pk_fields="id",
        insert_mode="upsert",
        batch_size=20,
        consumer__partition_assignment_strategy=strategy,
    )

    def value(i: int) -> tuple[None, dict[str, int], str] | None:  # version n of every key, n = 1..40
        n, k = divmod(i, keys)
        return None if n >= versions else (None, {"id": k, "v": n + 1}, f"key-{k}")

    # one version of every key each 0.25 s, in three stages so that each owner change has records
    # produced around it and records left behind it
    producer = Producer(bootstrap_servers, topic, VERSIONED, value, keys, 0.25)
    producer.limit = 10 * keys
    producer.start()

    def progressed(*sinks: SinkProcess, to: int) -> None:
        """Wait until every key is at version `to` or later (the running sinks make progress)."""
        wait_for(
            lambda: alive(*sinks) or min(last_versions(pg_url, topic).values() or [0]) >= to,
            60,
            interval=0.1,
            message=f"keys never reached version {to}",
        )

    first = sink_runner.start(env)
    assigned(first)
    progressed(first, to=5)
    producer.limit = 25 * keys  # versions 11..25 while the second joins
    second = sink_runner.start(env)
    assigned(second)
    wait_for(lambda: alive(first, second) or len(assignments(first)) >= 2, 60, message="no rebalance")
    progressed(first, second, to=12)
    producer.produce_up_to(30 * keys)  # then versions 26..30 while the first dies
    first.process.send_signal(signal.SIGKILL)  # its partitions move after the session timeout
    first.process.wait(10)
    producer.limit = keys * versions
    third = sink_runner.start(env)  # and is replaced, mid-ingest
    assigned(third)
    producer.produce_up_to(keys * versions)
    records = producer.finish()
    assert records == keys * versions

    def final() -> bool:
        alive(second, third)
        return last_versions(pg_url, topic) == dict.fromkeys(range(keys), versions)

    wait_for(final, 90, interval=0.25, message="keys not at their last version")
    stop(second)
    stop(third)
    got = last_versions(pg_url, topic)
    stale = {k: v for k, v in got.items() if v != versions}
    assert not stale and len(got) == keys, f"keys not at version {versions}: {stale}"
    assert count(pg_url, topic) == keys
