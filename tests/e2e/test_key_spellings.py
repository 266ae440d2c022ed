"""One key spelled two ways in one batch, end to end (`sink run` as a subprocess, the real broker,
PostgreSQL): producers that write key 1 and tombstone key "1" name one row, which the database
finds by casting. The batch kept them two units of one segment and ran the delete before the write
it follows, so the row survived its tombstone (reported deleted). Now the row is gone."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.e2e.conftest import SinkRunner, write_env
from tests.support.db import drop_table, fetch_rows
from tests.support.kafka import create_topic, produce

pytestmark = pytest.mark.e2e


def test_a_tombstone_keyed_as_text_deletes_the_row_a_number_key_wrote_in_the_same_batch(
    sink_runner: SinkRunner, bootstrap_servers: str, pg_url: str, unique_name: str, tmp_path: Path
) -> None:
    topic, table, group = unique_name, unique_name, f"{unique_name}_g"
    create_topic(bootstrap_servers, topic)
    drop_table(pg_url, table)
    records: list[tuple[dict[str, object], dict[str, object] | None]] = [
        ({"id": 0}, {"note": "kept"}),
        ({"id": 1}, {"note": "written, then deleted"}),
        ({"id": "1"}, None),
        ({"id": " 2"}, {"note": "written as text"}),
        ({"id": 2}, {"note": "then as a number"}),
    ]
    produce(  # all before the sink starts: its first poll holds them, one batch
        bootstrap_servers,
        topic,
        [{"key": json.dumps(k), "value": None if v is None else json.dumps(v)} for k, v in records],
    )
    env = write_env(
        tmp_path / "sink.env",
        bootstrap_servers,
        pg_url,
        topic,
        group,
        table_name_format=table,
        key_format="json",
        value_format="json",
        pk_mode="record_key",
        insert_mode="upsert",
        delete_enabled="true",
    )
    try:
        sink_runner.run_until_committed(env, bootstrap_servers, group, topic, {0: len(records)})
        rows = fetch_rows(pg_url, table, order_by="id")
        assert [(str(r["id"]).strip(), r["note"]) for r in rows] == [("0", "kept"), ("2", "then as a number")]
    finally:
        drop_table(pg_url, table)
