"""`sink run --env-file` with schemaless Debezium JSON (JsonConverter with schemas.enable=false: plain
`{"before", "after", "source", "op", "ts_ms"}` envelopes and `{"id": n}` keys) into PostgreSQL:
snapshot reads, inserts, updates, deletes with their tombstones and a re-insert end as the source
table, every column typed from its JSON values."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import SinkRunner, write_env
from tests.support.db import drop_table, fetch_rows, primary_key
from tests.support.debezium import SourceTable, standard_history
from tests.support.kafka import create_topic, produce

pytestmark = pytest.mark.e2e


def _schemaless(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The JsonConverter's records with schemas.enable=false: the payloads alone (tombstones stay null)."""
    out = []
    for record in records:
        value = record["value"]
        out.append(
            {
                "key": json.dumps(json.loads(record["key"])["payload"]),
                "value": None if value is None else json.dumps(json.loads(value)["payload"]),
            }
        )
    return out


def _as_json_values(rows: list[dict[str, Any]], table: str) -> list[dict[str, Any]]:
    """The source rows as a schemaless event carries them (the `after` of a snapshot read of each)."""
    replica = SourceTable(table)
    replica.snapshot(rows)
    return [json.loads(record["value"])["after"] for record in _schemaless(replica.connect_json())]


def test_schemaless_change_events_make_an_exact_replica(
    bootstrap_servers: str, pg_url: str, unique_name: str, tmp_path: Path, sink_runner: SinkRunner
) -> None:
    topic = f"dbserver1.inventory.{unique_name}"
    drop_table(pg_url, unique_name)
    create_topic(bootstrap_servers, topic)
    source = SourceTable(unique_name)
    standard_history(source)
    records = _schemaless(source.connect_json())
    assert sum(r["value"] is None for r in records) == 2, "two deletes, each followed by its tombstone"
    produce(bootstrap_servers, topic, records)

    env = write_env(
        tmp_path / "cdc.env",
        bootstrap_servers,
        pg_url,
        topic,
        unique_name,
        key_format="json",
        value_format="json",
        cdc_format="debezium",
        insert_mode="upsert",
        pk_mode="record_key",
        delete_enabled="true",
        table_name_format=unique_name,
    )
    sink_runner.run_until_committed(env, bootstrap_servers, unique_name, topic, {0: len(records)}, timeout=90)

    try:
        rows = fetch_rows(pg_url, unique_name, order_by="id")
        assert [row["id"] for row in rows] == [1, 2, 3, 4, 5, 6]
        assert rows == _as_json_values(source.state(), unique_name)
        assert not {"before", "after", "source", "op"} & set(rows[0]), "the row, not the envelope"
        assert primary_key(pg_url, unique_name) == ["id"]
    finally:
        drop_table(pg_url, unique_name)
