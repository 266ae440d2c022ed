"""Review: what `/metrics` of a real `sink run` (real broker, real PostgreSQL) says against what the
run actually did, when the database refuses some rows of a batch."""

from __future__ import annotations

import contextlib
import json
import signal
import socket
import threading
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.e2e.conftest import SinkRunner, write_env
from tests.e2e.test_metrics_and_status import free_port, get, samples
from tests.support.db import create_poison_table, drop_table, fetch_rows
from tests.support.kafka import committed_offsets, create_topic, produce, wait_for

pytestmark = pytest.mark.e2e

REFUSED = (2, 5)  # offsets whose qty breaks the table's CHECK (qty >= 0): refused by PostgreSQL
RECORDS = 8


def test_per_table_counter_counts_only_rows_the_database_took(
    bootstrap_servers: str, pg_url: str, unique_name: str, tmp_path: Path, sink_runner: SinkRunner
) -> None:
    """`sink_table_records_written_total` ("records of the batches written to the table") must add
    up with `sink_records_written_total`: a row the database refused (and the sink logged as
    failed) was not written to the table; counting it there double counts it with
    `sink_records_failed_total`."""
    topic = unique_name
    drop_table(pg_url, topic)
    create_poison_table(pg_url, topic)
    create_topic(bootstrap_servers, topic, partitions=1)
    records = [
        {"partition": 0, "key": str(i), "value": json.dumps({"id": i, "qty": -1 if i in REFUSED else i, "note": "ok"})}
        for i in range(RECORDS)
    ]
    produce(bootstrap_servers, topic, records)
    port = free_port()
    env = write_env(
        tmp_path / "sink.env",
        bootstrap_servers,
        pg_url,
        topic,
        topic,
        name="review-ops",
        http_port=port,
        http_host="127.0.0.1",
        errors_tolerance="all",
        batch_max_wait_ms=2000,
    )
    sink = sink_runner.start(env)

    def settled() -> bool:
        assert sink.process.poll() is None, sink.stderr[-3000:]
        return committed_offsets(bootstrap_servers, topic, topic, 1) == {0: RECORDS}

    wait_for(settled, 90, interval=0.25, message="the sink did not settle every record")
    rows = fetch_rows(pg_url, topic)
    assert len(rows) == RECORDS - len(REFUSED)
    m = samples(get(port, "/metrics")[1])
    s = 'sink="review-ops"'
    assert m[f'sink_records_written_total{{operation="insert",{s}}}'] == len(rows)
    assert m[f"sink_records_failed_total{{{s}}}"] == len(REFUSED)
    assert m[f"sink_records_read_total{{{s}}}"] == RECORDS
    table = m.get(f'sink_table_records_written_total{{{s},table="{topic}"}}', 0.0)
    assert table == len(rows), f"per-table counter {table:g} != rows in the table {len(rows)}"
    batches = m.get(f'sink_batch_records_count{{{s},table="{topic}"}}', 0.0)
    assert batches == m[f"sink_batches_total{{{s}}}"], "the batch histogram misses batches sink_batches_total counts"
    sink.process.send_signal(signal.SIGTERM)
    assert sink.wait(60) == 0, sink.stderr[-3000:]
    drop_table(pg_url, topic)


def test_lag_keeps_growing_while_consumption_is_paused_for_a_long_write(
    bootstrap_servers: str, pg_url: str, unique_name: str, tmp_path: Path, sink_runner: SinkRunner
) -> None:
    """A write held by a table lock pauses the partitions (worker `_wait_in_group_for`). Records
    produced meanwhile are lag: `sink_consumer_lag` must show them, not the watermark cached from
    the last fetch before the pause (a paused partition is not fetched, so that cache freezes and
    the gauge says the sink is caught up while it falls behind). Meanwhile the pod stays live and
    ready (a long write is no outage, deploy/README.md §4)."""
    topic = unique_name
    drop_table(pg_url, topic)
    create_topic(bootstrap_servers, topic, partitions=1)

    def batch(start: int, n: int) -> list[dict[str, object]]:
        return [
            {"partition": 0, "key": str(i), "value": json.dumps({"id": i, "qty": i})} for i in range(start, start + n)
        ]

    produce(bootstrap_servers, topic, batch(0, 5))
    port = free_port()
    env = write_env(
        tmp_path / "sink.env",
        bootstrap_servers,
        pg_url,
        topic,
        topic,
        name="review-lag",
        http_port=port,
        http_host="127.0.0.1",
        insert_mode="upsert",
        pk_mode="record_value",
        pk_fields="id",
    )
    sink = sink_runner.start(env)
    s = 'sink="review-lag"'

    def committed(n: int) -> bool:
        assert sink.process.poll() is None, sink.stderr[-3000:]
        return committed_offsets(bootstrap_servers, topic, topic, 1) == {0: n}

    wait_for(lambda: committed(5), 90, interval=0.25, message="the first records did not settle")
    engine = sa.create_engine(pg_url)
    locker = engine.connect()
    try:
        locker.execute(sa.text(f'LOCK TABLE "{topic}" IN ACCESS EXCLUSIVE MODE'))  # held until rollback
        produce(bootstrap_servers, topic, batch(5, 5))  # read, then its write waits for the lock
        wait_for(lambda: "taking long" in sink.stderr + sink.stdout, 30, message="the write never waited for the lock")
        time.sleep(2)  # past any fetch still in flight when the pause came (fetch.wait.max.ms: 0.5 s)
        produce(bootstrap_servers, topic, batch(10, 50))  # produced while paused: all of it is lag
        time.sleep(4)  # several lag readings (once a second)
        m = samples(get(port, "/metrics")[1])
        assert get(port, "/livez")[0] == 200 and get(port, "/readyz")[0] == 200, "a long write is no outage"
        assert m[f"sink_live{{{s}}}"] == 1 and m[f"sink_ready{{{s}}}"] == 1
        lag = m.get(f"sink_consumer_lag{{{s}}}")
        assert lag is None or lag >= 50, f"sink_consumer_lag={lag} while 50 records wait unread behind a paused fetch"
    finally:
        locker.rollback()
        locker.close()
        engine.dispose()
    wait_for(lambda: committed(60), 60, interval=0.25, message="the sink did not catch up after the lock")
    wait_for(  # resumed: the lag is read again (and is 0: everything was read)
        lambda: samples(get(port, "/metrics")[1]).get(f"sink_consumer_lag{{{s}}}") == 0,
        15,
        message="sink_consumer_lag did not come back after the pause",
    )
    sink.process.send_signal(signal.SIGTERM)
    assert sink.wait(60) == 0, sink.stderr[-3000:]
    drop_table(pg_url, topic)


class Proxy:
    """A TCP proxy to PostgreSQL that the test can take down (an outage) and bring back."""

    def __init__(self, target_port: int = 5432) -> None:
        self.target = ("127.0.0.1", target_port)
        self.port = free_port()
        self.conns: list[socket.socket] = []
        self.listener: socket.socket | None = None
        self.up()

    def up(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(16)
        self.listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def down(self) -> None:
        if self.listener is not None:
            with contextlib.suppress(OSError):  # wakes the accept() blocked in the other thread (Linux)
                self.listener.shutdown(socket.SHUT_RDWR)
            self.listener.close()
            self.listener = None
        for conn in self.conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
            conn.close()
        self.conns.clear()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            server = socket.create_connection(self.target)
            self.conns += [client, server]
            for a, b in ((client, server), (server, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := src.recv(65536):
                dst.sendall(data)
        with contextlib.suppress(OSError):
            dst.shutdown(socket.SHUT_WR)


def test_livez_stays_ok_while_the_write_retried_after_an_outage_waits_for_a_lock(
    bootstrap_servers: str, pg_url: str, unique_name: str, tmp_path: Path, sink_runner: SinkRunner
) -> None:
    """deploy/README.md §4: /livez is 200 while the loop polls, "also while it retries an outage or
    waits for a long write"; a 503 there makes the kubelet kill a pod that would recover by itself."""
    topic = unique_name
    drop_table(pg_url, topic)
    create_topic(bootstrap_servers, topic, partitions=1)
    proxy = Proxy(sa.make_url(pg_url).port or 5432)
    proxied = sa.make_url(pg_url).set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)

    def batch(start: int, n: int) -> list[dict[str, object]]:
        return [
            {"partition": 0, "key": str(i), "value": json.dumps({"id": i, "qty": i})} for i in range(start, start + n)
        ]

    produce(bootstrap_servers, topic, batch(0, 5))
    port = free_port()
    env = write_env(
        tmp_path / "sink.env",
        bootstrap_servers,
        proxied,
        topic,
        topic,
        name="review-live",
        http_port=port,
        http_host="127.0.0.1",
        health_heartbeat_timeout_ms=3000,
        errors_retry_delay_max_ms=500,
    )
    sink = sink_runner.start(env)
    s = 'sink="review-live"'

    def committed(n: int) -> bool:
        assert sink.process.poll() is None, sink.stderr[-3000:]
        return committed_offsets(bootstrap_servers, topic, topic, 1) == {0: n}

    wait_for(lambda: committed(5), 90, interval=0.25, message="the first records did not settle")
    engine = sa.create_engine(pg_url)
    locker = engine.connect()
    try:
        proxy.down()  # the database is away
        produce(bootstrap_servers, topic, batch(5, 5))
        wait_for(
            lambda: samples(get(port, "/metrics")[1]).get(f"sink_retrying{{{s}}}") == 1,
            30,
            message="the sink never retried the outage",
        )
        locker.execute(sa.text(f'LOCK TABLE "{topic}" IN ACCESS EXCLUSIVE MODE'))
        proxy.up()  # back, but the table is locked: the retried write waits
        deadline = time.monotonic() + 8
        while time.monotonic() < deadline:
            status, body = get(port, "/livez")
            assert status == 200, f"/livez {status} {body.strip()} while the sink waits for a lock"
            time.sleep(0.5)
    finally:
        locker.rollback()
        locker.close()
        engine.dispose()
    wait_for(lambda: committed(10), 60, interval=0.25, message="the sink did not recover")
    sink.process.send_signal(signal.SIGTERM)
    assert sink.wait(60) == 0, sink.stderr[-3000:]
    proxy.down()
    drop_table(pg_url, topic)
