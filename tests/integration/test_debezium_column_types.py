"""Debezium change events with propagated source column types (`column.propagate.source.type`)
and spatial columns through the real sink into PostgreSQL: the table is created with the source's
exact types (VARCHAR(n), CHAR(n) as VARCHAR(n), NUMERIC(p,s), also for a VariableScaleDecimal), as
information_schema reports them; a Geometry or Point is a JSONB document `{"wkb": base64, "srid":
n}`; the rows are the source's."""

from __future__ import annotations

import base64
import datetime as dt
import json
from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy as sa

from tests.integration.conftest import TargetDb
from tests.support.db import fetch_rows
from tests.support.kafka import create_topic, produce
from tests.support.runner import running_sink, sink_env

pytestmark = pytest.mark.integration


def _source(type_: str, length: int, scale: int | None = None) -> dict[str, str]:
    params = {"__debezium.source.column.type": type_, "__debezium.source.column.length": str(length)}
    if scale is not None:
        params["__debezium.source.column.scale"] = str(scale)
    return params


def _field(field: str, type_: str, params: dict[str, str], optional: bool = True, **extra: Any) -> dict[str, Any]:
    return {"type": type_, "optional": optional, "field": field, "parameters": params, **extra}


ROW_FIELDS = [
    _field("sku", "string", _source("VARCHAR", 32), optional=False),
    _field("code", "string", _source("BPCHAR", 3)),
    _field("name", "string", _source("VARCHAR", 40)),
    _field("notes", "string", _source("TEXT", 2147483647)),
    _field(
        "price",
        "bytes",
        {"scale": "2", **_source("NUMERIC", 9, 2)},
        name="org.apache.kafka.connect.data.Decimal",
        version=1,
    ),
    {
        "type": "struct",
        "optional": True,
        "field": "rate",
        "name": "io.debezium.data.VariableScaleDecimal",
        "version": 1,
        "parameters": _source("NUMERIC", 12, 5),
        "fields": [
            {"type": "int32", "optional": False, "field": "scale"},
            {"type": "bytes", "optional": False, "field": "value"},
        ],
    },
    _field("placed_at", "int64", _source("TIMESTAMP", 29, 3), name="io.debezium.time.MicroTimestamp", version=1),
    {
        "type": "struct",
        "optional": True,
        "field": "site",
        "name": "io.debezium.data.geometry.Geometry",
        "version": 1,
        "fields": [
            {"type": "bytes", "optional": False, "field": "wkb"},
            {"type": "int32", "optional": True, "field": "srid"},
        ],
    },
    {
        "type": "struct",
        "optional": True,
        "field": "spot",
        "name": "io.debezium.data.geometry.Point",
        "version": 1,
        "fields": [
            {"type": "float64", "optional": False, "field": "x"},
            {"type": "float64", "optional": False, "field": "y"},
            {"type": "bytes", "optional": True, "field": "wkb"},
            {"type": "int32", "optional": True, "field": "srid"},
        ],
    },
]
ROW = {"type": "struct", "optional": True, "name": "dbserver1.inventory.parts.Value", "fields": ROW_FIELDS}
ENVELOPE = {
    "type": "struct",
    "optional": False,
    "name": "dbserver1.inventory.parts.Envelope",
    "fields": [
        {**ROW, "field": "before"},
        {**ROW, "field": "after"},
        {
            "type": "struct",
            "optional": False,
            "field": "source",
            "name": "io.debezium.connector.postgresql.Source",
            "fields": [
                {"type": "string", "optional": False, "field": "table"},
                {"type": "int64", "optional": True, "field": "lsn"},
            ],
        },
        {"type": "string", "optional": False, "field": "op"},
        {"type": "int64", "optional": True, "field": "ts_ms"},
    ],
}
KEY = {"type": "struct", "optional": False, "name": "dbserver1.inventory.parts.Key", "fields": [ROW_FIELDS[0]]}
EPOCH = dt.datetime(1970, 1, 1)
POINT_WKB = bytes.fromhex("0101000000000000000000f03f0000000000000040")


def _b64_unscaled(value: Decimal) -> tuple[int, str]:
    sign, digits, exponent = value.as_tuple()
    unscaled = int("".join(map(str, digits))) * (-1 if sign else 1)
    raw = unscaled.to_bytes((unscaled.bit_length() + 8) // 8, "big", signed=True)
    return -int(exponent), base64.b64encode(raw).decode()


def _wire(row: dict[str, Any] | None) -> dict[str, Any] | None:
    if row is None:
        return None
    scale, rate = _b64_unscaled(row["rate"])
    return {
        **row,
        "price": _b64_unscaled(row["price"])[1],
        "rate": {"scale": scale, "value": rate},
        "placed_at": (row["placed_at"] - EPOCH) // dt.timedelta(microseconds=1),
    }


def _event(op: str, before: dict[str, Any] | None, after: dict[str, Any] | None, lsn: int) -> dict[str, str]:
    sku = (after or before or {})["sku"]
    payload = {"before": _wire(before), "after": _wire(after), "source": {"table": "parts", "lsn": lsn}, "op": op}
    return {
        "key": json.dumps({"schema": KEY, "payload": {"sku": sku}}),
        "value": json.dumps({"schema": ENVELOPE, "payload": {**payload, "ts_ms": 1_700_000_000_000 + lsn}}),
    }


def _part(sku: str, **changes: Any) -> dict[str, Any]:
    row = {
        "sku": sku,
        "code": "AB ",  # CHAR(3) pads: the value keeps its padding
        "name": f"part {sku}",
        "notes": "long " * 50,
        "price": Decimal("1234567.89"),
        "rate": Decimal("1234567.00005"),
        "placed_at": dt.datetime(2024, 5, 6, 7, 8, 9, 123000),
        "site": {"wkb": base64.b64encode(POINT_WKB).decode(), "srid": 4326},  # its JSON form is the stored one
        "spot": {"x": 1.5, "y": -2.25, "wkb": None, "srid": None},
    }
    return {**row, **changes}


def _information_schema(url: str, table: str) -> dict[str, tuple[Any, ...]]:
    query = sa.text(
        "SELECT column_name, data_type, character_maximum_length, numeric_precision, numeric_scale "
        "FROM information_schema.columns WHERE table_name = :table"
    )
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            return {r[0]: tuple(r[1:]) for r in conn.execute(query, {"table": table})}
    finally:
        engine.dispose()


def test_propagated_source_types_make_the_columns_exact_and_spatial_values_documents(
    bootstrap_servers: str, pg: TargetDb, unique_name: str
) -> None:
    table = pg.table(unique_name)
    topic = f"dbserver1.inventory.{unique_name}"
    create_topic(bootstrap_servers, topic)
    one = _part("p-1")
    two = _part("p-2", code="XYZ", price=Decimal("-0.05"), rate=Decimal("0.00001"), site=None)
    updated = {**one, "name": "renamed", "price": Decimal("9999999.99")}
    records = [_event("r", None, one, 8), _event("c", None, two, 16), _event("u", one, updated, 24)]
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

    assert _information_schema(pg.url, table) == {
        "sku": ("character varying", 32, None, None),
        "code": ("character varying", 3, None, None),
        "name": ("character varying", 40, None, None),
        "notes": ("text", None, None, None),
        "price": ("numeric", None, 9, 2),
        "rate": ("numeric", None, 12, 5),
        "placed_at": ("timestamp without time zone", None, None, None),
        "site": ("jsonb", None, None, None),
        "spot": ("jsonb", None, None, None),
    }
    assert fetch_rows(pg.url, table, order_by="sku") == [updated, two]
