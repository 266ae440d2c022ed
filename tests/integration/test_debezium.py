"""Debezium change events through the real sink (real broker, test registry, PostgreSQL): snapshot
reads, inserts, updates and deletes with their tombstones end as an exact copy of the source table,
in Connect JSON (with schemas) and in Avro through the registry; truncates, heartbeats and schema
changes are skipped and committed."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from decimal import Decimal
from typing import Any

import pytest

from tests.integration.conftest import TargetDb
from tests.support.db import drop_table, fetch_rows, primary_key, table_columns
from tests.support.debezium import SourceTable, avro_schemas, customer, standard_history
from tests.support.kafka import create_topic, produce
from tests.support.registry import RegistryServer
from tests.support.runner import running_sink, sink_env

pytestmark = pytest.mark.integration


def _env(bootstrap: str, pg: TargetDb, topic: str, group: str, table: str, **extra: Any) -> dict[str, str]:
    return sink_env(
        bootstrap,
        pg.url,
        topic,
        group,
        cdc_format="debezium",
        insert_mode="upsert",
        pk_mode="record_key",
        delete_enabled="true",
        table_name_format=table,
        **extra,
    )


def _assert_replica(pg: TargetDb, table: str, source: SourceTable) -> None:
    assert fetch_rows(pg.url, table, order_by="id") == source.state()
    assert primary_key(pg.url, table) == ["id"]
    columns = table_columns(pg.url, table)
    types = {name: str(c["type"]).upper() for name, c in columns.items()}
    assert types["balance"] == "NUMERIC(10, 2)" and types["score"] == "NUMERIC"
    # MicroTimestamp is the source column's wall clock; ZonedTimestamp an instant.
    assert types["created_at"] == types["updated_at"] == "TIMESTAMP"
    assert (columns["created_at"]["type"].timezone, columns["updated_at"]["type"].timezone) == (False, True)
    assert types["ext_id"] == "UUID" and types["prefs"] == "JSONB" and types["birthday"] == "DATE"
    assert not {"before", "after", "source", "op"} & set(types)


def _skipped_events(source: SourceTable) -> list[dict[str, Any]]:
    """A truncate event and a heartbeat, as Debezium writes them: both skipped, never applied."""
    last = source.connect_json()[-1]
    envelope = json.loads(last["value"])
    truncate = {**envelope, "payload": {**envelope["payload"], "op": "t", "before": None, "after": None}}
    heartbeat_key = {
        "schema": {
            "type": "struct",
            "optional": False,
            "name": "io.debezium.connector.common.ServerNameKey",
            "fields": [{"field": "databaseServerName", "type": "string", "optional": False}],
        },
        "payload": {"databaseServerName": "dbserver1"},
    }
    heartbeat = {
        "schema": {
            "type": "struct",
            "optional": False,
            "name": "io.debezium.connector.common.Heartbeat",
            "fields": [{"field": "ts_ms", "type": "int64", "optional": False}],
        },
        "payload": {"ts_ms": 1_700_000_009_000},
    }
    return [
        {"key": last["key"], "value": json.dumps(truncate)},
        {"key": json.dumps(heartbeat_key), "value": json.dumps(heartbeat)},
    ]


def test_connect_json_change_events_make_an_exact_replica(
    bootstrap_servers: str, pg: TargetDb, unique_name: str
) -> None:
    table = pg.table(unique_name)
    topic = f"dbserver1.inventory.{unique_name}"
    create_topic(bootstrap_servers, topic)
    source = SourceTable(unique_name)
    standard_history(source)
    records = source.connect_json()
    records += _skipped_events(source)  # a truncate after everything: skipped, not applied
    produce(bootstrap_servers, topic, records)
    env = _env(bootstrap_servers, pg, topic, unique_name, table, key_format="connect_json", value_format="connect_json")
    with running_sink(env) as sink:
        sink.wait_committed(topic, {0: len(records)})
    _assert_replica(pg, table, source)


def test_avro_change_events_through_the_registry_make_an_exact_replica(
    bootstrap_servers: str, pg: TargetDb, registry: RegistryServer, unique_name: str
) -> None:
    table = pg.table(unique_name)
    topic = f"dbserver1.inventory.{unique_name}"
    create_topic(bootstrap_servers, topic)
    key_schema, schema = avro_schemas(unique_name)
    key_id = registry.register(f"{topic}-key", json.dumps(key_schema))
    value_id = registry.register(f"{topic}-value", json.dumps(schema))
    source = SourceTable(unique_name)
    standard_history(source)
    records = source.avro(key_id, value_id)
    produce(bootstrap_servers, topic, records)
    env = _env(
        bootstrap_servers,
        pg,
        topic,
        unique_name,
        table,
        key_format="avro",
        value_format="avro",
        schema_registry_url=registry.url,
    )
    with running_sink(env) as sink:
        sink.wait_committed(topic, {0: len(records)})
    _assert_replica(pg, table, source)

    # The stream goes on after a restart: more changes, the replica follows.
    source.events.clear()
    source.update(5, first_name="five", email=None)
    source.delete(1)
    source.insert(customer(8))
    more = source.avro(key_id, value_id)
    produce(bootstrap_servers, topic, more)
    with running_sink(env) as sink:
        sink.wait_committed(topic, {0: len(records) + len(more)})
    _assert_replica(pg, table, source)


@pytest.mark.parametrize("backend", ["mariadb", "sqlite"])
def test_connect_json_change_events_replicate_into_mariadb_and_sqlite(
    bootstrap_servers: str, backend: str, request: pytest.FixtureRequest, unique_name: str
) -> None:
    url = str(request.getfixturevalue(f"{backend}_url"))
    target = TargetDb(backend, url)
    table = unique_name
    topic = f"dbserver1.inventory.{unique_name}"
    create_topic(bootstrap_servers, topic)
    source = SourceTable(unique_name)
    standard_history(source)
    records = source.connect_json() + _skipped_events(source)
    produce(bootstrap_servers, topic, records)
    env = _env(
        bootstrap_servers, target, topic, unique_name, table, key_format="connect_json", value_format="connect_json"
    )
    try:
        with running_sink(env) as sink:
            sink.wait_committed(topic, {0: len(records)})
        got = fetch_rows(url, table, order_by="id")
        assert [row["id"] for row in got] == [row["id"] for row in source.state()], "the same rows"
        assert [_as_stored(row) for row in got] == [_as_stored(row) for row in source.state()]
        assert primary_key(url, table) == ["id"]
    finally:
        drop_table(url, table)


def _as_stored(row: dict[str, Any]) -> dict[str, Any]:
    """A row's values as MariaDB and SQLite give them back: decimals as numbers (SQLite keeps them as
    text), UUIDs and JSON documents as text, instants as naive UTC (docs/types.md)."""
    out: dict[str, Any] = {}
    for name, value in row.items():
        if isinstance(value, uuid.UUID):
            value = str(value)
        elif isinstance(value, dict | list):
            value = json.dumps(value, sort_keys=True, separators=(",", ":"))
        elif isinstance(value, dt.datetime) and value.tzinfo is not None:
            value = value.astimezone(dt.UTC).replace(tzinfo=None)
        elif name in ("balance", "score") and value is not None:
            value = Decimal(str(value))
        elif name == "prefs" and isinstance(value, str):
            value = json.dumps(json.loads(value), sort_keys=True, separators=(",", ":"))
        out[name] = value
    return out


@pytest.mark.parametrize("backend", ["postgresql", "mariadb", "sqlite"])
def test_a_truncate_event_empties_the_table_when_enabled(
    bootstrap_servers: str, backend: str, request: pytest.FixtureRequest, unique_name: str
) -> None:
    url = str(request.getfixturevalue({"postgresql": "pg_url"}.get(backend, f"{backend}_url")))
    target = TargetDb(backend, url)
    topic = f"dbserver1.inventory.{unique_name}"
    create_topic(bootstrap_servers, topic)
    before = SourceTable(unique_name)
    standard_history(before)
    truncate, _heartbeat = _skipped_events(before)
    after = SourceTable(unique_name)  # the source table after its TRUNCATE: two new customers
    after.insert(customer(8))
    after.insert(customer(9))
    records = [*before.connect_json(), truncate, *after.connect_json()]
    produce(bootstrap_servers, topic, records)
    env = _env(
        bootstrap_servers,
        target,
        topic,
        unique_name,
        unique_name,
        key_format="connect_json",
        value_format="connect_json",
        truncate_enabled="true",
    )
    try:
        with running_sink(env) as sink:
            sink.wait_committed(topic, {0: len(records)})
        got = fetch_rows(url, unique_name, order_by="id")
        assert [_as_stored(row) for row in got] == [_as_stored(row) for row in after.state()]
        assert [row["id"] for row in got] == [8, 9], "the rows before the truncate are gone, those after it stay"
    finally:
        drop_table(url, unique_name)


@pytest.mark.parametrize("backend", ["mariadb", "sqlite"])
def test_avro_change_events_replicate_into_mariadb_and_sqlite(
    bootstrap_servers: str, backend: str, registry: RegistryServer, request: pytest.FixtureRequest, unique_name: str
) -> None:
    url = str(request.getfixturevalue(f"{backend}_url"))
    target = TargetDb(backend, url)
    topic = f"dbserver1.inventory.{unique_name}"
    create_topic(bootstrap_servers, topic)
    key_schema, schema = avro_schemas(unique_name)
    key_id = registry.register(f"{topic}-key", json.dumps(key_schema))
    value_id = registry.register(f"{topic}-value", json.dumps(schema))
    source = SourceTable(unique_name)
    standard_history(source)
    records = source.avro(key_id, value_id)
    produce(bootstrap_servers, topic, records)
    env = _env(
        bootstrap_servers,
        target,
        topic,
        unique_name,
        unique_name,
        key_format="avro",
        value_format="avro",
        schema_registry_url=registry.url,
    )
    try:
        with running_sink(env) as sink:
            sink.wait_committed(topic, {0: len(records)})
        got = fetch_rows(url, unique_name, order_by="id")
        assert [row["id"] for row in got] == [row["id"] for row in source.state()], "the same rows"
        assert [_as_stored(row) for row in got] == [_as_stored(row) for row in source.state()]
    finally:
        drop_table(url, unique_name)


def _schemaless(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The JsonConverter's records with schemas.enable=false: the payloads alone (tombstones stay null)."""
    return [
        {
            "key": json.dumps(json.loads(record["key"])["payload"]),
            "value": None if record["value"] is None else json.dumps(json.loads(record["value"])["payload"]),
        }
        for record in records
    ]


def _schemaless_rows(rows: list[dict[str, Any]], table: str) -> list[dict[str, Any]]:
    """The source rows as schemaless events carry them (the `after` of a snapshot read of each),
    nested documents as the JSON text MariaDB and SQLite give back."""
    replica = SourceTable(table)
    replica.snapshot(rows)
    after = [json.loads(record["value"])["after"] for record in _schemaless(replica.connect_json())]
    return [_json_texts(row) for row in after]


def _json_texts(row: dict[str, Any]) -> dict[str, Any]:
    return {name: _json_text(value) for name, value in row.items()}


def _json_text(value: Any) -> Any:
    if isinstance(value, dict | list):
        return json.dumps(value, sort_keys=True, separators=(",", ":"))
    if isinstance(value, str) and value[:1] in "{[":
        return json.dumps(json.loads(value), sort_keys=True, separators=(",", ":"))
    return value


@pytest.mark.parametrize("backend", ["mariadb", "sqlite"])
def test_schemaless_change_events_replicate_into_mariadb_and_sqlite(
    bootstrap_servers: str, backend: str, request: pytest.FixtureRequest, unique_name: str
) -> None:
    """Debezium's JSON without schemas (schemas.enable=false): the row's columns are inferred from
    the `after` values; snapshot, inserts, updates, deletes and tombstones end as the source."""
    url = str(request.getfixturevalue(f"{backend}_url"))
    target = TargetDb(backend, url)
    table = unique_name
    topic = f"dbserver1.inventory.{unique_name}"
    create_topic(bootstrap_servers, topic)
    source = SourceTable(unique_name)
    standard_history(source)
    records = _schemaless(source.connect_json())
    produce(bootstrap_servers, topic, records)
    env = _env(bootstrap_servers, target, topic, unique_name, table, key_format="json", value_format="json")
    try:
        with running_sink(env) as sink:
            sink.wait_committed(topic, {0: len(records)})
        got = [_json_texts(row) for row in fetch_rows(url, table, order_by="id")]
        assert got == _schemaless_rows(source.state(), unique_name)
        assert primary_key(url, table) == ["id"]
    finally:
        drop_table(url, table)
