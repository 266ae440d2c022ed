"""SINK_BUFFER_MAX_BYTES bounds the sink's memory whatever the backlog: a backlog of big records many
times the bound is written exactly with a peak RSS well below the backlog's size, and the same run
with the bound lifted (the control) holds far more — so it is the bound that keeps memory down.

`sink run --env-file F` as a subprocess, the real broker and PostgreSQL. The backlog (1600 JSON
records of exactly 128 KiB, 200 MiB) is produced before the sink starts; the sink's VmHWM/VmRSS
are read from /proc every 0.1 s while it drains the backlog, until it exits after SIGTERM.
"""

from __future__ import annotations

import json
import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from confluent_kafka import KafkaError, Producer

from tests.e2e.conftest import SinkRunner, write_env
from tests.support.db import drop_table
from tests.support.kafka import committed_offsets, create_topic, wait_for

pytestmark = pytest.mark.e2e

KiB, MiB = 1024, 1024 * 1024
RECORD_BYTES = 128 * KiB  # every value exactly this long (the id's digits are taken off its padding)
RECORDS = 1600
BACKLOG = RECORDS * RECORD_BYTES  # 200 MiB of values, no keys
BOUND = 8 * MiB  # 64 records: every batch, the last one too, closes on bytes (none waits for its age)
UNBOUNDED = 1024 * MiB  # the control: more than the whole backlog
# Idle, the sink's RSS is ~77 MB. It holds each buffered record about twice (its bytes and the
# decoded string), has a batch in flight besides and a poll's worth of records; measured: 150-165 MB
# bounded, ~690 MB for the control (it buffers the backlog: 2 x 200 MiB, then the write's copy).
PEAK_LIMIT_MB = 250
CONTROL_MARGIN_MB = 150  # the control must use at least this much more than the bounded run


def value(i: int) -> bytes:
    head = json.dumps({"id": i, "pad": ""}).encode()
    pad = (f"{i:08d}" * (RECORD_BYTES // 8 + 1))[: RECORD_BYTES - len(head)]
    data = json.dumps({"id": i, "pad": pad}).encode()
    assert len(data) == RECORD_BYTES
    return data


def produce_backlog(bootstrap: str, topic: str) -> dict[int, int]:
    """Produce the backlog in big producer batches; each partition's end (last offset + 1), known
    from the delivery reports (never from ListOffsets)."""
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 20, "batch.size": 4 * MiB})
    ends: dict[int, int] = {}
    errors: list[KafkaError] = []
    delivered = 0

    def on_delivery(err: KafkaError | None, msg: Any) -> None:
        nonlocal delivered
        if err is not None:
            errors.append(err)
            return
        delivered += 1
        ends[msg.partition()] = max(ends.get(msg.partition(), 0), msg.offset() + 1)

    for i in range(RECORDS):
        while True:
            try:
                producer.produce(topic, value=value(i), on_delivery=on_delivery)
                break
            except BufferError:  # the local queue is full: let deliveries drain it
                producer.poll(0.1)
        producer.poll(0)
    assert producer.flush(120) == 0, "records still undelivered after 120 s"
    assert not errors, f"delivery failed: {errors[:3]}"
    assert delivered == RECORDS and sum(ends.values()) == RECORDS, (delivered, ends)
    return ends


@dataclass
class Memory:
    """VmHWM (peak RSS) and VmRSS of a process, read every 0.1 s on a thread until it exits."""

    pid: int
    hwm_kb: int = 0
    rss_kb: list[int] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._sample, name="rss-sampler", daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        path = Path(f"/proc/{self.pid}/status")
        while not self._done.is_set():
            try:
                lines = path.read_text().splitlines()
            except OSError:  # gone
                return
            status = dict(line.split(":", 1) for line in lines if ":" in line)
            if "VmHWM" not in status:  # a zombie: it exited
                return
            self.hwm_kb = max(self.hwm_kb, int(status["VmHWM"].split()[0]))
            self.rss_kb.append(int(status["VmRSS"].split()[0]))
            time.sleep(0.1)

    def stop(self) -> None:
        self._done.set()
        self._thread.join(5)

    @property
    def peak_mb(self) -> float:
        return self.hwm_kb / 1024


def table_state(url: str, table: str) -> tuple[int, int, int]:
    """count(*), sum(id) and sum(octet_length(pad)) of `table`, summed in the database."""
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            if not sa.inspect(conn).has_table(table):
                return (0, 0, 0)
            t = sa.Table(table, sa.MetaData(), autoload_with=conn)
            query = sa.select(sa.func.count(), sa.func.sum(t.c.id), sa.func.sum(sa.func.octet_length(t.c.pad)))
            count, ids, pads = conn.execute(query).one()
            return (count, int(ids or 0), int(pads or 0))
    finally:
        engine.dispose()


def expected_state() -> tuple[int, int, int]:
    pads = sum(RECORD_BYTES - len(json.dumps({"id": i, "pad": ""})) for i in range(RECORDS))
    return (RECORDS, RECORDS * (RECORDS - 1) // 2, pads)


@dataclass
class Drained:
    peak_mb: float
    seconds: float
    rss_mb: list[int]


def drain(
    runner: SinkRunner, env: Path, pg_url: str, bootstrap: str, topic: str, name: str, ends: dict[int, int]
) -> Drained:
    """Run the sink (group and table `name`) until the table holds the whole backlog exactly and the
    group committed every partition's end; then SIGTERM. Its peak RSS over the run, shutdown included."""
    group = table = name
    sink = runner.start(env)
    memory = Memory(sink.process.pid)
    started = time.monotonic()
    try:

        def done() -> bool:
            if sink.process.poll() is not None:
                raise AssertionError(f"the sink exited with {sink.process.returncode}:\n{sink.stderr[-3000:]}")
            if table_state(pg_url, table) != expected_state():
                return False
            committed = committed_offsets(bootstrap, group, topic, list(ends))
            return all((committed.get(p) or 0) >= end for p, end in ends.items())

        wait_for(done, 90, interval=0.25, message=f"{table} did not get the whole backlog, or {group} did not commit")
        seconds = time.monotonic() - started
        sink.process.send_signal(signal.SIGTERM)
        assert sink.wait(30) == 0, sink.stderr[-3000:]
        memory.stop()
        assert "Traceback" not in sink.stderr, sink.stderr[-3000:]
        assert table_state(pg_url, table) == expected_state()
        assert committed_offsets(bootstrap, group, topic, list(ends)) == ends, "commits at the end, not past it"
        return Drained(memory.peak_mb, seconds, [kb // 1024 for kb in memory.rss_kb])
    finally:
        memory.stop()
        sink.kill()


def test_a_backlog_far_larger_than_buffer_max_bytes_is_written_exactly_in_bounded_memory(
    bootstrap_servers: str, pg_url: str, unique_name: str, tmp_path: Path, sink_runner: SinkRunner
) -> None:
    topic = unique_name
    bounded, control = f"{topic}_bounded", f"{topic}_control"
    for table in (bounded, control):
        drop_table(pg_url, table)
    create_topic(bootstrap_servers, topic)
    ends = produce_backlog(bootstrap_servers, topic)

    def env(name: str, buffer_max_bytes: int) -> Path:
        return write_env(
            tmp_path / f"{name}.env",
            bootstrap_servers,
            pg_url,
            topic,
            name,  # its own group: each run reads the whole backlog
            table_name_format=name,
            value_format="json",
            pk_mode="record_value",
            pk_fields="id",
            insert_mode="upsert",
            buffer_max_bytes=buffer_max_bytes,
            # Neither rows nor age close a batch before bytes do (the bounded run's last batch too).
            batch_size=5000,
            batch_max_wait_ms=5000,
            # librdkafka's own prefetch, kept small so that the sink is what is measured. A poll takes
            # up to min(SINK_BATCH_SIZE, 5000) records, bounded in bytes only by what librdkafka
            # queued, and the sink prepares a whole poll before it writes: with librdkafka's
            # defaults the bounded run peaks at ~300 MB. The queue limit is loose (librdkafka 2.16
            # fetches on after a full queue's back-off: ~27 MB queued against a 4 MiB limit with a
            # 10 ms back-off), so the back-off is 100 ms (1000 ms by default: ~45 records/s here).
            consumer__queued_max_messages_kbytes=4096,
            consumer__fetch_max_bytes=4 * MiB,
            consumer__fetch_queue_backoff_ms=100,
        )

    try:
        with_bound = drain(sink_runner, env(bounded, BOUND), pg_url, bootstrap_servers, topic, bounded, ends)
        without = drain(sink_runner, env(control, UNBOUNDED), pg_url, bootstrap_servers, topic, control, ends)
        print(
            f"\nbacklog {RECORDS} x {RECORD_BYTES // KiB} KiB = {BACKLOG // MiB} MiB; "
            f"SINK_BUFFER_MAX_BYTES={BOUND // MiB} MiB: peak RSS {with_bound.peak_mb:.0f} MB "
            f"(drained in {with_bound.seconds:.1f} s); {UNBOUNDED // MiB} MiB (control): peak RSS "
            f"{without.peak_mb:.0f} MB (drained in {without.seconds:.1f} s)"
            f"\nRSS every 0.5 s, bounded: {with_bound.rss_mb[::5]}\nRSS every 0.5 s, control: {without.rss_mb[::5]}"
        )
        assert with_bound.peak_mb <= PEAK_LIMIT_MB, (
            f"peak RSS {with_bound.peak_mb:.0f} MB with SINK_BUFFER_MAX_BYTES={BOUND} over a "
            f"{BACKLOG // MiB} MiB backlog (limit {PEAK_LIMIT_MB} MB)"
        )
        assert without.peak_mb >= with_bound.peak_mb + CONTROL_MARGIN_MB, (
            f"the control (SINK_BUFFER_MAX_BYTES={UNBOUNDED}) peaked at {without.peak_mb:.0f} MB, the bounded "
            f"run at {with_bound.peak_mb:.0f} MB: the bound is not what keeps memory down"
        )
    finally:
        for table in (bounded, control):
            drop_table(pg_url, table)
