"""Error handling end to end: `sink run --env-file F` as a subprocess against the real broker,
the test Schema Registry and PostgreSQL.

- a poison catalogue in one topic, interleaved with good records, with errors.tolerance=all;
- errors.tolerance=none stopping at a row the database rejects, and again after a restart;
- PostgreSQL stopped for 20 s in the middle of an ingest (marked `serial`: it stops the server
  every other test uses, so it runs alone: `pytest -m serial`, never beside other tests).
"""

from __future__ import annotations

import io
import json
import os
import shutil
import signal
import struct
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import fastavro
import pytest
import sqlalchemy as sa

from tests.e2e.conftest import SinkProcess, SinkRunner, write_env
from tests.support.db import create_poison_table, drop_table, fetch_rows
from tests.support.http import free_port, http_get
from tests.support.kafka import Message, committed_offsets, consume_all, create_topic, produce, wait_for
from tests.support.registry import RegistryServer

pytestmark = pytest.mark.e2e

PREFIX = "__connect.errors."
KEY_SCHEMA = {
    "type": "record",
    "name": "OrderKey",
    "namespace": "test.poison",
    "fields": [{"name": "id", "type": "long"}],
}


@pytest.fixture
def poison_table(pg_url: str, unique_name: str) -> Iterator[str]:
    drop_table(pg_url, unique_name)
    create_poison_table(pg_url, unique_name)
    yield unique_name
    drop_table(pg_url, unique_name)


def stop(sink: SinkProcess, timeout: float = 30.0) -> int:
    sink.process.send_signal(signal.SIGTERM)
    return sink.wait(timeout)


def committed(bootstrap: str, group: str, topic: str) -> int | None:
    return committed_offsets(bootstrap, group, topic)[0]


def wait_committed(bootstrap: str, group: str, topic: str, end: int, sink: SinkProcess, timeout: float = 90) -> None:
    def done() -> bool:
        if sink.process.poll() is not None:
            raise AssertionError(f"the sink exited with {sink.process.returncode}:\n{sink.stderr[-3000:]}")
        return (committed(bootstrap, group, topic) or 0) >= end

    wait_for(done, timeout, interval=0.25, message=f"{group} did not commit {end} on {topic}")


# ------------------------------------------------------------------------------ the poison catalogue


def _avro_key(schema_id: int, id_: int) -> bytes:
    body = io.BytesIO()
    fastavro.schemaless_writer(body, fastavro.parse_schema(KEY_SCHEMA), {"id": id_})
    return b"\x00" + struct.pack(">I", schema_id) + body.getvalue()


def catalogue(schema_id: int) -> tuple[list[dict[str, Any]], dict[str, str]]:
    """Good records (keys 1..11) interleaved with one of each poison; keys are Avro (Confluent wire
    format, hand-built), values schemaless JSON. Returns the records and {poison: expected stage}."""
    key = _avro_key

    def value(qty: Any, note: Any) -> str:
        return json.dumps({"qty": qty, "note": note})

    poisons: list[tuple[str, str, bytes, str | bytes]] = [
        ("invalid_json", "VALUE_CONVERTER", key(schema_id, 100), b'{"qty": 1, "note": '),
        ("wrong_magic_byte", "KEY_CONVERTER", b"\x01" + key(schema_id, 101)[1:], value(1, "m")),
        (
            "unknown_schema_id",
            "KEY_CONVERTER",
            b"\x00" + struct.pack(">I", 987_654) + key(schema_id, 102)[5:],
            value(1, "u"),
        ),
        ("truncated_avro", "KEY_CONVERTER", key(schema_id, 2**40)[:-1], value(1, "t")),
        ("check_violation", "TASK_PUT", key(schema_id, 104), value(-5, "neg")),
        ("not_null_violation", "TASK_PUT", key(schema_id, 105), value(1, None)),
        ("too_long", "TASK_PUT", key(schema_id, 106), value(1, "x" * 40)),
        ("wrong_type", "TASK_PUT", key(schema_id, 107), value("SECRET-QTY", "w")),
        ("duplicate_key", "TASK_PUT", key(schema_id, 1), value(7, "dup")),  # key 1 is the first good record's
    ]
    records: list[dict[str, Any]] = []
    stages: dict[str, str] = {}
    good = iter(range(1, 12))
    for name, stage, k, v in poisons:
        n = next(good)
        records.append({"key": key(schema_id, n), "value": value(n, f"n{n}"), "headers": {"kind": "good"}})
        records.append({"key": k, "value": v, "headers": {"kind": name}})
        stages[name] = stage
    records += [{"key": key(schema_id, n), "value": value(n, f"n{n}"), "headers": {"kind": "good"}} for n in good]
    for offset, record in enumerate(records):
        record["timestamp"] = 1_700_000_000_000 + offset
    return records, stages


def test_poison_catalogue_with_tolerance_all(
    bootstrap_servers: str,
    registry: RegistryServer,
    pg_url: str,
    poison_table: str,
    unique_name: str,
    tmp_path: Path,
    sink_runner: SinkRunner,
) -> None:
    topic = poison_table
    dlq, results, errors = f"{topic}_dlq", f"{topic}_results", f"{topic}_errors"
    for name in (topic, dlq, results, errors):
        create_topic(bootstrap_servers, name)
    schema_id = registry.register(f"{topic}-key", json.dumps(KEY_SCHEMA))
    records, stages = catalogue(schema_id)
    produce(bootstrap_servers, topic, records)
    bad_offsets = [i for i, r in enumerate(records) if r["headers"]["kind"] != "good"]
    good_offsets = [i for i, r in enumerate(records) if r["headers"]["kind"] == "good"]

    env = write_env(
        tmp_path / "sink.env",
        bootstrap_servers,
        pg_url,
        topic,
        unique_name,
        name="poison-sink",
        key_format="avro",
        value_format="json",
        schema_registry_url=registry.url,
        pk_mode="record_key",
        pk_fields="id",
        insert_mode="insert",
        auto_create="false",
        errors_tolerance="all",
        errors_deadletterqueue_topic_name=dlq,
        errors_deadletterqueue_context_headers_enable="true",
        errors_log_enable="true",
        reporter_result_topic_name=results,
        reporter_error_topic_name=errors,
    )
    sink = sink_runner.start(env)
    wait_committed(bootstrap_servers, unique_name, topic, len(records), sink)
    assert stop(sink) == 0, sink.stderr[-3000:]

    # every good row landed, and only those
    rows = fetch_rows(pg_url, topic, order_by="id")
    assert [(r["id"], r["qty"], r["note"]) for r in rows] == [(n, n, f"n{n}") for n in range(1, 12)]

    # every bad record is in the dead-letter topic exactly once, untouched, with its coordinates
    dead = consume_all(bootstrap_servers, dlq, expected=len(bad_offsets) + 1, timeout=10)
    assert len(dead) == len(bad_offsets), [m.header("kind") for m in dead]
    by_offset = {int(m.header(PREFIX + "offset") or -1): m for m in dead}
    assert sorted(by_offset) == bad_offsets
    for offset in bad_offsets:
        original, message = records[offset], by_offset[offset]
        kind = original["headers"]["kind"]
        assert message.key == original["key"], kind
        assert message.value == (
            original["value"] if isinstance(original["value"], bytes) else original["value"].encode()
        )
        assert message.timestamp == original["timestamp"], kind
        assert message.headers[0] == ("kind", kind.encode()), "original headers first, untouched"
        assert message.header(PREFIX + "topic") == topic.encode()
        assert message.header(PREFIX + "partition") == b"0"
        assert message.header(PREFIX + "connector.name") == b"poison-sink"
        assert message.header(PREFIX + "task.id") == b"0"
        assert message.header(PREFIX + "stage") == stages[kind].encode(), kind
        assert message.header(PREFIX + "exception.stacktrace"), kind
        assert message.header(PREFIX + "class.name"), kind
    _assert_reasons(by_offset, records)

    # one report per record: good ones on the result topic, bad ones on the error topic
    ok = consume_all(bootstrap_servers, results, expected=len(good_offsets) + 1, timeout=10)
    bad = consume_all(bootstrap_servers, errors, expected=len(bad_offsets) + 1, timeout=10)
    assert [int(m.header("input_record_offset") or -1) for m in ok] == good_offsets
    assert [int(m.header("input_record_offset") or -1) for m in bad] == bad_offsets
    assert all(json.loads(m.value or b"")["operation"] == "insert" for m in ok)
    assert [m.key for m in ok] == [records[o]["key"] for o in good_offsets], "keyed by the input record's key"
    assert [json.loads(m.value or b"")["stage"] for m in bad] == [
        stages[records[o]["headers"]["kind"]] for o in bad_offsets
    ]

    assert committed(bootstrap_servers, unique_name, topic) == len(records)
    assert "SECRET-QTY" not in sink.stderr, "record values are not logged unless asked"
    assert sink.stderr.count("failed at TASK_PUT") == 5 and sink.stderr.count("failed at KEY_CONVERTER") == 3


def _assert_reasons(by_offset: dict[int, Message], records: list[dict[str, Any]]) -> None:
    """The database's own reason (SQLSTATE, constraint, column) and the decoders' own words."""
    expected = {
        "invalid_json": ("sink.errors.DecodeError", "invalid JSON"),
        "wrong_magic_byte": ("sink.errors.DecodeError", "magic byte"),
        "unknown_schema_id": ("sink.errors.DecodeError", "987654"),
        "truncated_avro": ("sink.errors.DecodeError", "Avro"),
        "check_violation": ("sink.errors.RecordRejected", "(SQLSTATE 23514 check_violation)"),
        "not_null_violation": ("sink.errors.RecordRejected", "(SQLSTATE 23502 not_null_violation)"),
        "too_long": ("sink.errors.RecordRejected", "(SQLSTATE 22001 string_data_right_truncation)"),
        "wrong_type": ("sink.errors.RecordRejected", "(SQLSTATE 22P02 invalid_text_representation)"),
        "duplicate_key": ("sink.errors.RecordRejected", "(SQLSTATE 23505 unique_violation)"),
    }
    for offset, message in by_offset.items():
        kind = records[offset]["headers"]["kind"]
        cls, text = expected[kind]
        assert message.header(PREFIX + "exception.class.name") == cls.encode(), kind
        assert text in (message.header(PREFIX + "exception.message") or b"").decode(), kind
    check = next(m for o, m in by_offset.items() if records[o]["headers"]["kind"] == "check_violation")
    assert b"_qty_nonneg" in (check.header(PREFIX + "exception.message") or b""), "names the constraint"
    null = next(m for o, m in by_offset.items() if records[o]["headers"]["kind"] == "not_null_violation")
    assert b"column note" in (null.header(PREFIX + "exception.message") or b""), "names the column"


# ------------------------------------------------------------------------------ tolerance none


def test_tolerance_none_stops_at_a_rejected_row_and_a_restart_stops_there_again(
    bootstrap_servers: str, pg_url: str, poison_table: str, unique_name: str, tmp_path: Path, sink_runner: SinkRunner
) -> None:
    topic = poison_table
    create_topic(bootstrap_servers, topic)
    values = [
        {"id": 1, "qty": 1, "note": "a"},
        {"id": 2, "qty": 2, "note": "b"},
        {"id": 3, "qty": -1, "note": "SECRET"},
    ]
    values += [{"id": 4, "qty": 4, "note": "d"}, {"id": 5, "qty": 5, "note": "e"}]
    produce(bootstrap_servers, topic, [{"value": json.dumps(v)} for v in values])
    env = write_env(
        tmp_path / "sink.env",
        bootstrap_servers,
        pg_url,
        topic,
        unique_name,
        pk_mode="record_value",
        pk_fields="id",
        insert_mode="insert",
        auto_create="false",
    )
    for attempt in ("first run", "restart"):
        sink = sink_runner.run(env, timeout=60)
        assert sink.process.returncode == 1, (attempt, sink.stderr[-3000:])
        assert f"record {topic}/0@2 failed at TASK_PUT: rejected by the database (SQLSTATE 23514" in sink.stderr
        assert f"constraint {topic}_qty_nonneg" in sink.stderr
        assert "SECRET" not in sink.stderr
        assert "Traceback" not in sink.stderr
        assert committed(bootstrap_servers, unique_name, topic) == 2, attempt
        assert [r["id"] for r in fetch_rows(pg_url, topic, order_by="id")] == [1, 2], "nothing after it written"


# ------------------------------------------------------------------------------ a database outage


def _restart_postgres() -> None:
    version = sorted(os.listdir("/etc/postgresql"))[-1]
    subprocess.run(
        ["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", "start"], check=False, capture_output=True
    )
    wait_for(_postgres_up, 60, interval=0.5, message="PostgreSQL did not come back")


def _postgres_up() -> bool:
    return subprocess.run(["pg_isready", "-h", "127.0.0.1", "-p", "5432", "-q"], check=False).returncode == 0


def _count(url: str, table: str) -> int:
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as connection:
            if not sa.inspect(connection).has_table(table):
                return 0
            return connection.execute(sa.select(sa.func.count()).select_from(sa.table(table))).scalar_one()
    except sa.exc.OperationalError:
        return -1
    finally:
        engine.dispose()


@pytest.mark.serial
@pytest.mark.xdist_group("pg_outage")
def test_postgres_outage_mid_ingest_is_waited_out(
    bootstrap_servers: str, pg_url: str, unique_name: str, tmp_path: Path, sink_runner: SinkRunner
) -> None:
    if int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1")) > 1:
        pytest.skip("stops PostgreSQL under every other test: run it alone, `pytest -m serial`")
    if shutil.which("pg_ctlcluster") is None or not os.path.isdir("/etc/postgresql"):
        pytest.fail("needs the local PostgreSQL cluster and pg_ctlcluster to stop and start it")
    topic, dlq = unique_name, f"{unique_name}_dlq"
    create_topic(bootstrap_servers, topic)
    create_topic(bootstrap_servers, dlq)
    env = write_env(
        tmp_path / "sink.env",
        bootstrap_servers,
        pg_url,
        topic,
        unique_name,
        pk_mode="kafka",
        insert_mode="upsert",
        batch_size=200,
        errors_tolerance="all",  # a misclassified outage would show up as dead-lettered records
        errors_deadletterqueue_topic_name=dlq,
        errors_retry_delay_max_ms=2000,
        http_port=(port := free_port()),
        health_retry_unready_ms=3000,  # /readyz says unready once an outage has lasted 3 s
    )
    total, chunk = 4000, 100
    produced = threading.Event()
    failures: list[BaseException] = []

    def ingest() -> None:  # a steady stream, before, during and after the outage
        try:
            for start in range(0, total, chunk):
                produce(
                    bootstrap_servers, topic, [{"value": json.dumps({"n": n})} for n in range(start, start + chunk)]
                )
                time.sleep(0.3)  # about 12 s of production: it goes on through the outage
        except BaseException as exc:
            failures.append(exc)
        finally:
            produced.set()

    sink = sink_runner.start(env)
    producer = threading.Thread(target=ingest, daemon=True)
    producer.start()
    try:
        wait_for(lambda: _count(pg_url, topic) > 0, 60, message="nothing landed before the outage")
        version = sorted(os.listdir("/etc/postgresql"))[-1]
        subprocess.run(
            ["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", "stop", "-m", "fast"], check=True
        )
        stopped_at = time.monotonic()
        producing_during_outage = not produced.is_set()

        def outage_lasted() -> bool:
            assert sink.process.poll() is None, f"the sink died during the outage:\n{sink.stderr[-3000:]}"
            return time.monotonic() - stopped_at >= 20

        wait_for(lambda: http_get(port, "/readyz")[0] == 503, 20, message="/readyz stayed ready during the outage")
        assert "retrying" in http_get(port, "/readyz")[1] and http_get(port, "/livez")[0] == 200, "unready, alive"
        wait_for(outage_lasted, 30, interval=0.5)
        assert "outage, pausing consumption and retrying" in sink.stderr
    finally:
        _restart_postgres()
    wait_for(lambda: http_get(port, "/readyz")[0] == 200, 60, message="/readyz did not come back after the outage")

    wait_for(produced.is_set, 120, message="the producer did not finish")
    assert not failures, failures
    wait_committed(bootstrap_servers, unique_name, topic, total, sink, timeout=120)
    assert stop(sink) == 0, sink.stderr[-3000:]
    try:
        assert _count(pg_url, topic) == total, "every record landed, once"
    finally:
        drop_table(pg_url, topic)
    assert producing_during_outage, "the outage really was in the middle of the ingest"
    until_sigterm = sink.stderr.split("received SIGTERM")[0]
    assert "recovered after" in until_sigterm
    assert until_sigterm.count("assigned ") == 1, "it stayed in the group throughout"
    assert "revoked" not in until_sigterm, "it stayed in the group throughout"
    assert consume_all(bootstrap_servers, dlq) == [], "an outage never dead-letters a record"
