"""A real `sink run` (real broker, PostgreSQL, dead-letter topic) over Connect JSON records whose
transforms behave as Kafka Connect's do: a `TimestampConverter` with a one-letter SimpleDateFormat
pattern (`M/d/yyyy`) reads every record, and an `InsertField` onto a field the record's schema
already has fails that record (dead-lettered, as Connect's SchemaBuilder duplicate-field error
would be) instead of overwriting the record's own value; the worker keeps going."""

from __future__ import annotations

import datetime as dt
import json
import signal
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import SinkRunner, write_env
from tests.support.db import drop_table, fetch_rows
from tests.support.kafka import committed_offsets, consume_all, create_topic, produce, wait_for

pytestmark = pytest.mark.e2e


def _connect_json(fields: dict[str, str], payload: dict[str, Any]) -> str:
    schema = {
        "type": "struct",
        "optional": False,
        "fields": [{"field": f, "type": t, "optional": f != "id"} for f, t in fields.items()],
    }
    return json.dumps({"schema": schema, "payload": payload})


def test_transform_errors_are_dead_lettered_and_connect_patterns_parse(
    bootstrap_servers: str, pg_url: str, unique_name: str, sink_runner: SinkRunner, tmp_path: Path
) -> None:
    topic, dlq_topic, group = unique_name, unique_name + "_dlq", unique_name + "_g"
    drop_table(pg_url, topic)
    create_topic(bootstrap_servers, topic)
    create_topic(bootstrap_servers, dlq_topic)
    plain = {"id": "int32", "day": "string"}
    clashing = {"id": "int32", "day": "string", "src": "string"}
    produce(
        bootstrap_servers,
        topic,
        [
            {"key": "1", "value": _connect_json(plain, {"id": 1, "day": "3/7/2024"})},
            {"key": "2", "value": _connect_json(clashing, {"id": 2, "day": "3/8/2024", "src": "mine"})},
            {"key": "3", "value": _connect_json(plain, {"id": 3, "day": "12/25/2023"})},
        ],
    )
    env = write_env(
        tmp_path / "sink.env",
        bootstrap_servers,
        pg_url,
        topic,
        group,
        key_format="string",
        value_format="connect_json",
        pk_mode="record_value",
        pk_fields="id",
        insert_mode="upsert",
        errors_tolerance="all",
        errors_deadletterqueue_topic_name=dlq_topic,
        errors_deadletterqueue_context_headers_enable="true",
        transforms="src,day",
        transforms__src__type="insert_field",
        transforms__src__topic_field="src",
        transforms__day__type="timestamp_converter",
        transforms__day__field="day",
        transforms__day__target_type="Date",
        transforms__day__format="M/d/yyyy",
    )
    sink = sink_runner.start(env)
    try:

        def settled() -> bool:
            assert sink.process.poll() is None, sink.stderr[-3000:]  # a record error never stops the worker
            return (committed_offsets(bootstrap_servers, group, topic, [0]).get(0) or 0) >= 3

        wait_for(settled, 90, interval=0.3, message="the sink did not settle every record")
    finally:
        sink.process.send_signal(signal.SIGTERM)
    assert sink.wait(30) == 0, sink.stderr[-3000:]
    try:
        dead = consume_all(bootstrap_servers, dlq_topic)
        assert [json.loads(m.value or b"{}")["payload"]["id"] for m in dead] == [2]
        assert dead[0].header("__connect.errors.stage") == b"TRANSFORMATION"
        assert b"src" in (dead[0].header("__connect.errors.exception.message") or b"")
        rows = fetch_rows(pg_url, topic, order_by="id")
        assert [(r["id"], r["src"], r["day"]) for r in rows] == [
            (1, topic, dt.date(2024, 3, 7)),
            (3, topic, dt.date(2023, 12, 25)),
        ]
    finally:
        drop_table(pg_url, topic)
