"""Avro end to end: `sink run --env-file F` as a subprocess reads a 3-partition topic of 20,000
Avro records (record key with an id, a value with a decimal and a timestamp) with upserts and
tombstones, through the test Schema Registry over HTTP, into PostgreSQL and MariaDB, and ends in
exactly the table state computed from what was produced (last write per key, deleted keys absent).
"""

from __future__ import annotations

import datetime as dt
import io
import json
import random
import signal
import struct
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import fastavro
import pytest
from confluent_kafka import KafkaError, Producer
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient

from tests.e2e.conftest import SinkProcess, SinkRunner, write_env
from tests.support.db import drop_table, fetch_rows, primary_key, table_columns
from tests.support.kafka import committed_offsets, create_topic, wait_for
from tests.support.registry import RegistryServer

pytestmark = pytest.mark.e2e

UTC = dt.UTC
PARTITIONS = 3
TOTAL = 20_000
KEYS = 3_000
TOMBSTONE_SHARE = 0.08

KEY_SCHEMA = {
    "type": "record",
    "name": "AccountKey",
    "namespace": "test.e2e",
    "fields": [{"name": "id", "type": "long"}],
}
VALUE_SCHEMA = {
    "type": "record",
    "name": "Account",
    "namespace": "test.e2e",
    "fields": [
        {"name": "id", "type": "long"},
        {"name": "owner", "type": "string"},
        {"name": "balance", "type": {"type": "bytes", "logicalType": "decimal", "precision": 14, "scale": 2}},
        {"name": "updated", "type": {"type": "long", "logicalType": "timestamp-micros"}},
        {"name": "visits", "type": "int"},
        {"name": "active", "type": "boolean"},
        {"name": "note", "type": ["null", "string"], "default": None},
    ],
}
EPOCH = dt.datetime(2024, 1, 1, tzinfo=UTC)


@pytest.fixture(params=["pg", "mariadb"])
def database(
    request: pytest.FixtureRequest, pg_url: str, mariadb_url: str, unique_name: str
) -> Iterator[tuple[str, str]]:
    """(kind, url); the test's table (named after the topic) is dropped before and after."""
    url = pg_url if request.param == "pg" else mariadb_url
    drop_table(url, unique_name)
    yield request.param, url
    drop_table(url, unique_name)


def _wire(schema_id: int, parsed: Any, datum: Any) -> bytes:
    """Confluent wire format: magic byte 0, 4-byte big-endian schema id, Avro binary."""
    body = io.BytesIO()
    body.write(b"\x00" + struct.pack(">I", schema_id))
    fastavro.schemaless_writer(body, parsed, datum)
    return body.getvalue()


def _value(n: int, key: int, rng: random.Random) -> dict[str, Any]:
    return {
        "id": key,
        "owner": f"owner-{key}-{n}",
        "balance": Decimal(rng.randrange(-(10**12), 10**12)) / 100,
        "updated": EPOCH + dt.timedelta(seconds=n, microseconds=rng.randrange(10**6)),
        "visits": n,
        "active": n % 3 != 0,
        "note": None if n % 5 == 0 else f"note {n} ✓",
    }


def _produce(
    bootstrap: str, topic: str, registry_url: str
) -> tuple[dict[int, int], dict[int, dict[str, Any]], set[int]]:
    """Produce TOTAL records (seeded: upserts of KEYS keys, some tombstones) in batches.

    Returns the end offset per partition and the expected table state, both from the delivery
    reports: per key, the record with the highest offset in its partition (a key always goes to
    the same partition) decides whether the row exists and what it holds. Also the keys that were
    written at least once."""
    client = SchemaRegistryClient({"url": registry_url, "max.retries": 0})
    key_id = client.register_schema(f"{topic}-key", Schema(json.dumps(KEY_SCHEMA), "AVRO"))
    value_id = client.register_schema(f"{topic}-value", Schema(json.dumps(VALUE_SCHEMA), "AVRO"))
    key_schema, value_schema = fastavro.parse_schema(KEY_SCHEMA), fastavro.parse_schema(VALUE_SCHEMA)
    rng = random.Random(20_000)
    keys: dict[int, bytes] = {}
    sent: list[tuple[int, dict[str, Any] | None]] = []
    delivered: list[tuple[int, int, int]] = []  # (partition, offset, index into sent)
    errors: list[str] = []

    def report(index: int):  # type: ignore[no-untyped-def]
        def on_delivery(err: KafkaError | None, msg: Any) -> None:
            if err is not None:
                errors.append(str(err))
            else:
                delivered.append((msg.partition(), msg.offset(), index))

        return on_delivery

    producer = Producer(
        {
            "bootstrap.servers": bootstrap,
            "linger.ms": 50,
            "batch.num.messages": 5000,
            "queue.buffering.max.messages": TOTAL * 2,
        }
    )
    for n in range(TOTAL):
        key = rng.randrange(KEYS)
        if key not in keys:
            keys[key] = _wire(key_id, key_schema, {"id": key})
        value = None if rng.random() < TOMBSTONE_SHARE else _value(n, key, rng)
        sent.append((key, value))
        payload = None if value is None else _wire(value_id, value_schema, value)
        producer.produce(topic, key=keys[key], value=payload, on_delivery=report(n))
        if n % 1000 == 999:
            producer.poll(0)
    assert producer.flush(60) == 0, "records still undelivered"
    assert not errors, errors[:5]
    assert len(delivered) == TOTAL

    ends: dict[int, int] = {}
    counts = dict.fromkeys(range(PARTITIONS), 0)
    state: dict[int, dict[str, Any]] = {}
    for partition, offset, index in sorted(delivered):
        counts[partition] += 1
        ends[partition] = offset + 1
        key, value = sent[index]
        if value is None:
            state.pop(key, None)
        else:
            state[key] = value
    assert ends == counts, "a fresh topic: the end offset of a partition is its record count"
    assert all(counts.values()), counts
    return ends, state, {key for key, value in sent if value is not None}


def _wait_committed(bootstrap: str, group: str, topic: str, ends: dict[int, int], sink: SinkProcess) -> None:
    def done() -> bool:
        if sink.process.poll() is not None:
            raise AssertionError(f"the sink exited with {sink.process.returncode}:\n{sink.stderr[-3000:]}")
        committed = committed_offsets(bootstrap, group, topic, list(ends))
        return all((committed.get(p) or 0) >= end for p, end in ends.items())

    wait_for(done, 60, interval=0.25, message=f"{group} did not commit {ends} on {topic}")


def _as_produced(row: dict[str, Any], kind: str) -> dict[str, Any]:
    """MariaDB keeps instants as naive UTC DATETIME(6) and booleans as TINYINT(1)."""
    out = dict(row)
    if kind == "mariadb":
        assert out["updated"].tzinfo is None
        out["updated"] = out["updated"].replace(tzinfo=UTC)
        out["active"] = bool(out["active"])
    assert isinstance(out["balance"], Decimal), "decimals are exact"
    return out


def test_avro_upserts_and_tombstones_end_in_the_expected_state(
    bootstrap_servers: str,
    registry: RegistryServer,
    database: tuple[str, str],
    unique_name: str,
    tmp_path: Path,
    sink_runner: SinkRunner,
) -> None:
    kind, url = database
    topic = unique_name
    create_topic(bootstrap_servers, topic, partitions=PARTITIONS)
    ends, state, written = _produce(bootstrap_servers, topic, registry.url)
    assert len(written - set(state)) > 100, "many keys are written, then deleted by a later tombstone"

    env = write_env(
        tmp_path / "sink.env",
        bootstrap_servers,
        url,
        topic,
        unique_name,
        key_format="avro",
        value_format="avro",
        schema_registry_url=registry.url,
        insert_mode="upsert",
        pk_mode="record_key",
        delete_enabled="true",
    )
    sink = sink_runner.start(env)
    _wait_committed(bootstrap_servers, unique_name, topic, ends, sink)
    sink.process.send_signal(signal.SIGTERM)
    assert sink.wait(30) == 0, sink.stderr[-3000:]
    assert "Traceback" not in sink.stderr, sink.stderr[-3000:]

    rows = [_as_produced(r, kind) for r in fetch_rows(url, topic, order_by="id")]
    expected = [state[key] for key in sorted(state)]
    assert len(rows) == len(expected)
    mismatched = [(row, want) for row, want in zip(rows, expected, strict=True) if row != want]
    assert not mismatched, f"{len(mismatched)} row(s) differ, the first: {mismatched[0]}"
    assert primary_key(url, topic) == ["id"]
    assert list(table_columns(url, topic)) == [f["name"] for f in VALUE_SCHEMA["fields"]]
    assert committed_offsets(bootstrap_servers, unique_name, topic, list(ends)) == ends
