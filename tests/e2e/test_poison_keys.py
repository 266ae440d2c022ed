"""Keys that stopped the sink at every restart, whatever errors.tolerance, end to end (`sink run`
as a subprocess, the real broker, PostgreSQL): a JSON key holding an array (the batch's fold raised
TypeError), and a tombstone whose key the table's key column cannot take (the writer retried its
refused batch until a RecursionError). With errors.tolerance=all both are dead-lettered with their
reason, the records around them are written, and every offset is committed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.e2e.conftest import SinkRunner, write_env
from tests.support.db import drop_table, fetch_rows
from tests.support.kafka import consume_all, create_topic, produce

pytestmark = pytest.mark.e2e


def test_an_array_key_and_a_tombstone_of_another_key_type_are_dead_lettered_not_a_crash_loop(
    sink_runner: SinkRunner, bootstrap_servers: str, pg_url: str, unique_name: str, tmp_path: Path
) -> None:
    topic, dlq, table = unique_name, f"{unique_name}_dlq", unique_name
    create_topic(bootstrap_servers, topic)
    create_topic(bootstrap_servers, dlq)
    drop_table(pg_url, table)
    first = [({"id": 1}, {"note": "before"}), ({"id": [1, 2]}, {"note": "array key"})]
    # Read after the table exists, the tombstone opens its batch (so the batch's spec is its own).
    then = [({"id": 2.5}, None), ({"id": 2}, {"note": "after"})]

    def send(records: list[tuple[dict[str, object], dict[str, object] | None]]) -> None:
        produce(
            bootstrap_servers,
            topic,
            [{"key": json.dumps(k), "value": None if v is None else json.dumps(v)} for k, v in records],
        )

    env = write_env(
        tmp_path / "sink.env",
        bootstrap_servers,
        pg_url,
        topic,
        f"{unique_name}_g",
        table_name_format=table,
        key_format="json",
        value_format="json",
        pk_mode="record_key",
        insert_mode="upsert",
        delete_enabled="true",
        errors_tolerance="all",
        errors_deadletterqueue_topic_name=dlq,
        errors_deadletterqueue_context_headers_enable="true",
    )
    try:
        group = f"{unique_name}_g"
        send(first)
        sink_runner.run_until_committed(env, bootstrap_servers, group, topic, {0: 2})
        send(then)
        sink_runner.run_until_committed(env, bootstrap_servers, group, topic, {0: 4})
        assert fetch_rows(pg_url, table, order_by="id") == [{"id": 1, "note": "before"}, {"id": 2, "note": "after"}]
        dead = consume_all(bootstrap_servers, dlq, expected=2)
        assert sorted(m.key or b"" for m in dead) == [b'{"id": 2.5}', b'{"id": [1, 2]}'], dead
        for message in dead:
            headers = dict(message.headers)
            assert headers.get("__connect.errors.exception.message"), headers  # the reason, not empty
    finally:
        drop_table(pg_url, table)
