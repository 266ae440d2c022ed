"""Review: Debezium change events (Connect JSON, as Debezium's PostgreSQL connector writes them)
through the real sink, broker and PostgreSQL: what lands is what the source columns held. A NULL in
a column with a DEFAULT stays NULL; logical types at their edges; a primary-key change (delete of
the old key, its tombstone, create of the new); a schema change event, a transaction marker and a
heartbeat on the same topic are skipped and committed."""

from __future__ import annotations

import base64
import datetime as dt
import json
from decimal import Decimal
from typing import Any

import pytest

from tests.integration.conftest import TargetDb
from tests.support.db import fetch_rows
from tests.support.debezium import connect_schemas
from tests.support.kafka import create_topic, produce
from tests.support.runner import running_sink, sink_env

pytestmark = pytest.mark.integration


def _field(field: str, type_: str, optional: bool = True, logical: str | None = None, **extra: Any) -> dict[str, Any]:
    schema = {"type": type_, "optional": optional, "field": field, **extra}
    return schema if logical is None else {**schema, "name": logical}


FIELDS = [
    _field("id", "int32", optional=False),
    _field("status", "string", default="active"),
    _field("qty", "int32", default=7),
    _field("d", "int32", logical="io.debezium.time.Date"),
    _field("t", "int64", logical="io.debezium.time.MicroTime"),
    _field("nt", "int64", logical="io.debezium.time.NanoTime"),
    _field("ts", "int64", logical="io.debezium.time.Timestamp"),
    _field("nts", "int64", logical="io.debezium.time.NanoTimestamp"),
    _field("zts", "string", logical="io.debezium.time.ZonedTimestamp"),
    _field("zt", "string", logical="io.debezium.time.ZonedTime"),
    _field("y", "int32", logical="io.debezium.time.Year"),
    _field(
        "price",
        "bytes",
        logical="org.apache.kafka.connect.data.Decimal",
        parameters={"scale": "2", "connect.decimal.precision": "12"},
    ),
    {
        "type": "struct",
        "fields": [_field("scale", "int32", optional=False), _field("value", "bytes", optional=False)],
        "optional": True,
        "name": "io.debezium.data.VariableScaleDecimal",
        "field": "amount",
    },
    _field("tags", "string", logical="io.debezium.data.EnumSet", parameters={"allowed": "a,b,c"}),
    _field("doc", "string", logical="io.debezium.data.Json"),
]


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def _wire(i: int) -> dict[str, Any]:
    return {
        "id": i,
        "status": None,  # NULL in the source, whose column has DEFAULT 'active'
        "qty": None,
        "d": -25567,  # 1900-01-01
        "t": 86_399_999_999,  # 23:59:59.999999
        "nt": 1_000,  # 00:00:00.000001
        "ts": -1,  # 1969-12-31 23:59:59.999
        "nts": 1_529_501_823_123_456_789,  # 2018-06-20 13:37:03.123456(789)
        "zts": "1960-05-01T10:00:00.123456+05:30",
        "zt": "13:37:03.123456789Z",  # TIMETZ, in GMT as Debezium writes it
        "y": 0,
        "price": _b64((-12345).to_bytes(2, "big", signed=True)),  # -123.45
        "amount": {"scale": 5, "value": _b64((-1).to_bytes(1, "big", signed=True))},  # -0.00001
        "tags": "a,c",
        "doc": '{"k": [1, 2], "s": "x"}',
    }


EXPECTED_ROW = {
    "status": None,
    "qty": None,
    "d": dt.date(1900, 1, 1),
    "t": dt.time(23, 59, 59, 999999),
    "nt": dt.time(0, 0, 0, 1),
    "ts": dt.datetime(1969, 12, 31, 23, 59, 59, 999000),
    "nts": dt.datetime(2018, 6, 20, 13, 37, 3, 123456),
    "zts": dt.datetime(1960, 5, 1, 4, 30, 0, 123456, tzinfo=dt.UTC),
    "zt": dt.time(13, 37, 3, 123456),
    "y": 0,
    "price": Decimal("-123.45"),
    "amount": Decimal("-0.00001"),
    "tags": "a,c",
    "doc": {"k": [1, 2], "s": "x"},
}


def _event(key_schema: dict, schema: dict, op: str, before: Any, after: Any) -> dict[str, str]:
    source = {
        "version": "2.7.0.Final",
        "connector": "postgresql",
        "name": "dbserver1",
        "ts_ms": 1_700_000_000_000,
        "snapshot": "false",
        "db": "inventory",
        "sequence": None,
        "schema": "inventory",
        "table": "t",
        "txId": 5,
        "lsn": 10,
        "xmin": None,
    }
    transaction = {"id": "5:10", "total_order": 1, "data_collection_order": 1}
    payload = {"before": before, "after": after, "source": source, "op": op, "ts_ms": 1, "transaction": None}
    payload["transaction"] = transaction
    key = {"id": (after or before)["id"]}
    return {
        "key": json.dumps({"schema": key_schema, "payload": key}),
        "value": json.dumps({"schema": schema, "payload": payload}),
    }


def _not_rows() -> list[dict[str, Any]]:
    """A MySQL schema change event, a transaction END marker and a heartbeat, with their schemas."""
    schema_change = {
        "schema": {
            "type": "struct",
            "optional": False,
            "name": "io.debezium.connector.mysql.SchemaChangeValue",
            "fields": [
                _field("source", "struct", optional=False, fields=[_field("db", "string")]),
                _field("ts_ms", "int64", optional=False),
                _field("databaseName", "string"),
                _field("schemaName", "string"),
                _field("ddl", "string"),
                _field("tableChanges", "array", optional=False, items={"type": "string"}),
            ],
        },
        "payload": {
            "source": {"db": "inventory"},
            "ts_ms": 1,
            "databaseName": "inventory",
            "schemaName": None,
            "ddl": "ALTER TABLE t ADD COLUMN x INT",
            "tableChanges": [],
        },
    }
    tx_end = {
        "schema": {
            "type": "struct",
            "optional": False,
            "name": "io.debezium.connector.common.TransactionMetadataValue",
            "fields": [
                _field("status", "string", optional=False),
                _field("id", "string", optional=False),
                _field("ts_ms", "int64", optional=False),
                _field("event_count", "int64"),
                _field("data_collections", "array", items={"type": "string"}),
            ],
        },
        "payload": {"status": "END", "id": "5:10", "ts_ms": 1, "event_count": 3, "data_collections": None},
    }
    heartbeat = {
        "schema": {
            "type": "struct",
            "optional": False,
            "name": "io.debezium.connector.common.Heartbeat",
            "fields": [_field("ts_ms", "int64", optional=False)],
        },
        "payload": {"ts_ms": 1},
    }
    return [{"key": None, "value": json.dumps(v)} for v in (schema_change, tx_end, heartbeat)]


def test_debezium_values_land_as_the_source_held_them(bootstrap_servers: str, pg: TargetDb, unique_name: str) -> None:
    table = pg.table(unique_name)
    topic = f"dbserver1.inventory.{unique_name}"
    create_topic(bootstrap_servers, topic)
    key_schema, schema = connect_schemas(unique_name, FIELDS)
    one, two, three = _wire(1), _wire(2), {**_wire(2), "id": 3}
    records = [
        _event(key_schema, schema, "c", None, one),
        _event(key_schema, schema, "c", None, two),
        *_not_rows(),
        # UPDATE t SET id = 3 WHERE id = 2: Debezium's delete of the old key, its tombstone, a create
        _event(key_schema, schema, "d", two, None),
        {"key": json.dumps({"schema": key_schema, "payload": {"id": 2}}), "value": None},
        _event(key_schema, schema, "c", None, three),
    ]
    produce(bootstrap_servers, topic, records)
    env = sink_env(
        bootstrap_servers,
        pg.url,
        topic,
        unique_name,
        cdc_format="debezium",
        insert_mode="upsert",
        pk_mode="record_key",
        delete_enabled="true",
        table_name_format=table,
        key_format="connect_json",
        value_format="connect_json",
    )
    with running_sink(env) as sink:
        sink.wait_committed(topic, {0: len(records)})
    rows = fetch_rows(pg.url, table, order_by="id")
    assert [r["id"] for r in rows] == [1, 3]
    for row in rows:
        assert {k: v for k, v in row.items() if k != "id"} == EXPECTED_ROW
