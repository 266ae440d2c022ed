"""Debezium change events as Debezium's PostgreSQL connector writes them, for a `customers` table.

`SourceTable` plays the source database: snapshot reads, inserts, updates and deletes change its
rows and give the events Debezium would publish for them (key + envelope, a tombstone after each
delete), encoded as Connect JSON (JsonConverter with schemas) or Avro (AvroConverter: magic byte +
schema id + body). `state()` is the source table as it is now, the exact rows a replica must hold.

The layouts follow Debezium's documentation: the envelope `before`/`after`/`source`/`op`/`ts_ms`/
`transaction`, `source` with `version, connector, name, ts_ms, snapshot, db, sequence, schema,
table, txId, lsn, xmin`, and the logical type names on each column.
"""

from __future__ import annotations

import base64
import datetime as dt
import io
import json
import uuid
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

import fastavro

from sink.jsonvalues import JsonDocument

PREFIX = "dbserver1"
EPOCH = dt.datetime(1970, 1, 1)


# ------------------------------------------------------------------------------ Connect JSON schemas


def _f(name: str, type_: str, optional: bool = True, logical: str | None = None, **extra: Any) -> dict[str, Any]:
    field: dict[str, Any] = {"type": type_, "optional": optional, "field": name, **extra}
    if logical:
        field["name"] = logical
    return field


ROW_FIELDS = [
    _f("id", "int32", optional=False),
    _f("first_name", "string", optional=False),
    _f("email", "string"),
    _f(
        "balance",
        "bytes",
        logical="org.apache.kafka.connect.data.Decimal",
        parameters={"scale": "2", "connect.decimal.precision": "10"},
        version=1,
    ),
    _f("created_at", "int64", logical="io.debezium.time.MicroTimestamp", version=1),
    _f("updated_at", "string", logical="io.debezium.time.ZonedTimestamp", version=1),
    _f("birthday", "int32", logical="io.debezium.time.Date", version=1),
    _f("status", "string", logical="io.debezium.data.Enum", parameters={"allowed": "active,blocked"}, version=1),
    _f("ext_id", "string", logical="io.debezium.data.Uuid", version=1),
    _f("prefs", "string", logical="io.debezium.data.Json", version=1),
    {
        "type": "struct",
        "fields": [_f("scale", "int32", optional=False), _f("value", "bytes", optional=False)],
        "optional": True,
        "name": "io.debezium.data.VariableScaleDecimal",
        "version": 1,
        "doc": "Variable scaled decimal",
        "field": "score",
    },
]

SOURCE_FIELDS = [
    _f("version", "string", optional=False),
    _f("connector", "string", optional=False),
    _f("name", "string", optional=False),
    _f("ts_ms", "int64", optional=False),
    _f(
        "snapshot",
        "string",
        logical="io.debezium.data.Enum",
        parameters={"allowed": "true,last,false,incremental"},
        default="false",
        version=1,
    ),
    _f("db", "string", optional=False),
    _f("sequence", "string"),
    _f("schema", "string", optional=False),
    _f("table", "string", optional=False),
    _f("txId", "int64"),
    _f("lsn", "int64"),
    _f("xmin", "int64"),
]


def connect_schemas(table: str, row_fields: list[dict[str, Any]] = ROW_FIELDS) -> tuple[dict[str, Any], dict[str, Any]]:
    """(key schema, envelope schema) of `table` (its row: `row_fields`, an int32 `id` first), as the
    JsonConverter writes them."""
    base = f"{PREFIX}.inventory.{table}"
    value = {"type": "struct", "fields": row_fields, "optional": True, "name": f"{base}.Value"}
    envelope = {
        "type": "struct",
        "fields": [
            {**value, "field": "before"},
            {**value, "field": "after"},
            {
                "type": "struct",
                "fields": SOURCE_FIELDS,
                "optional": False,
                "name": "io.debezium.connector.postgresql.Source",
                "field": "source",
            },
            _f("op", "string", optional=False),
            _f("ts_ms", "int64"),
            {
                "type": "struct",
                "optional": True,
                "name": "event.block",
                "version": 1,
                "field": "transaction",
                "fields": [
                    _f("id", "string", optional=False),
                    _f("total_order", "int64", optional=False),
                    _f("data_collection_order", "int64", optional=False),
                ],
            },
        ],
        "optional": False,
        "name": f"{base}.Envelope",
        "version": 1,
    }
    key = {"type": "struct", "fields": [_f("id", "int32", optional=False)], "optional": False, "name": f"{base}.Key"}
    return key, envelope


# ------------------------------------------------------------------------------ Avro schemas


def _cn(type_: str, name: str, **extra: Any) -> dict[str, Any]:
    return {"type": type_, "connect.version": 1, "connect.name": name, **extra}


def avro_schemas(table: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """(key schema, envelope schema) of `table`, as Confluent's AvroConverter writes them."""
    ns = f"{PREFIX}.inventory.{table}"
    opt = lambda t: {"type": ["null", t], "default": None}  # noqa: E731
    value = {
        "type": "record",
        "name": "Value",
        "namespace": ns,
        "fields": [
            {"name": "id", "type": "int"},
            {"name": "first_name", "type": "string"},
            {"name": "email", **opt("string")},
            {
                "name": "balance",
                **opt(
                    {
                        "type": "bytes",
                        "scale": 2,
                        "precision": 10,
                        "connect.version": 1,
                        "connect.parameters": {"scale": "2", "connect.decimal.precision": "10"},
                        "connect.name": "org.apache.kafka.connect.data.Decimal",
                        "logicalType": "decimal",
                    }
                ),
            },
            {"name": "created_at", **opt(_cn("long", "io.debezium.time.MicroTimestamp"))},
            {"name": "updated_at", **opt(_cn("string", "io.debezium.time.ZonedTimestamp"))},
            {"name": "birthday", **opt(_cn("int", "io.debezium.time.Date"))},
            {
                "name": "status",
                **opt(_cn("string", "io.debezium.data.Enum", **{"connect.parameters": {"allowed": "active,blocked"}})),
            },
            {"name": "ext_id", **opt(_cn("string", "io.debezium.data.Uuid"))},
            {"name": "prefs", **opt(_cn("string", "io.debezium.data.Json"))},
            {
                "name": "score",
                **opt(
                    {
                        "type": "record",
                        "name": "VariableScaleDecimal",
                        "namespace": "io.debezium.data",
                        "fields": [{"name": "scale", "type": "int"}, {"name": "value", "type": "bytes"}],
                        "connect.doc": "Variable scaled decimal",
                        "connect.version": 1,
                        "connect.name": "io.debezium.data.VariableScaleDecimal",
                    }
                ),
            },
        ],
        "connect.name": f"{ns}.Value",
    }
    source = {
        "type": "record",
        "name": "Source",
        "namespace": "io.debezium.connector.postgresql",
        "fields": [
            {"name": "version", "type": "string"},
            {"name": "connector", "type": "string"},
            {"name": "name", "type": "string"},
            {"name": "ts_ms", "type": "long"},
            {
                "name": "snapshot",
                "type": [
                    {
                        "type": "string",
                        "connect.version": 1,
                        "connect.parameters": {"allowed": "true,last,false,incremental"},
                        "connect.default": "false",
                        "connect.name": "io.debezium.data.Enum",
                    },
                    "null",
                ],
                "default": "false",
            },
            {"name": "db", "type": "string"},
            {"name": "sequence", **opt("string")},
            {"name": "schema", "type": "string"},
            {"name": "table", "type": "string"},
            {"name": "txId", **opt("long")},
            {"name": "lsn", **opt("long")},
            {"name": "xmin", **opt("long")},
        ],
        "connect.name": "io.debezium.connector.postgresql.Source",
    }
    envelope = {
        "type": "record",
        "name": "Envelope",
        "namespace": ns,
        "fields": [
            {"name": "before", **opt(value)},
            {"name": "after", **opt(f"{ns}.Value")},
            {"name": "source", "type": source},
            {"name": "op", "type": "string"},
            {"name": "ts_ms", **opt("long")},
            {
                "name": "transaction",
                **opt(
                    {
                        "type": "record",
                        "name": "block",
                        "namespace": "event",
                        "fields": [
                            {"name": "id", "type": "string"},
                            {"name": "total_order", "type": "long"},
                            {"name": "data_collection_order", "type": "long"},
                        ],
                        "connect.version": 1,
                        "connect.name": "event.block",
                    }
                ),
            },
        ],
        "connect.version": 1,
        "connect.name": f"{ns}.Envelope",
    }
    key = {
        "type": "record",
        "name": "Key",
        "namespace": ns,
        "fields": [{"name": "id", "type": "int"}],
        "connect.name": f"{ns}.Key",
    }
    return key, envelope


# ------------------------------------------------------------------------------ rows and events


def customer(i: int, **changes: Any) -> dict[str, Any]:
    """A source row as the database holds it (Python values of the column types)."""
    row = {
        "id": i,
        "first_name": f"name{i}",
        "email": f"c{i}@example.com" if i % 3 else None,
        "balance": Decimal(f"{i * 101}.{i % 100:02d}"),
        "created_at": dt.datetime(2024, 1, 1, 8, 0, 0, 123456) + dt.timedelta(days=i),
        "updated_at": dt.datetime(2024, 2, 1, 9, 30, 0, 654321, tzinfo=dt.UTC) + dt.timedelta(hours=i),
        "birthday": dt.date(1990, 1, 1) + dt.timedelta(days=i * 40),
        "status": "active" if i % 2 else "blocked",
        "ext_id": uuid.UUID(int=i * 7919),
        "prefs": {"lang": "en", "n": i},
        "score": Decimal(f"{i}.{'5' * (i % 5 + 1)}"),
    }
    row.update(changes)
    return row


def as_source(values: Mapping[str, Any]) -> dict[str, Any]:
    """A row's values with each JSON document (`JsonDocument`, Debezium's Json as it arrived)
    parsed, as the source rows here hold them."""
    return {k: json.loads(v) if v.__class__ is JsonDocument else v for k, v in values.items()}


def _unscaled(value: Decimal) -> tuple[int, bytes]:
    sign, digits, exponent = value.as_tuple()
    unscaled = int("".join(map(str, digits)) or "0") * (-1 if sign else 1)
    length = max(1, (unscaled.bit_length() + 8) // 8)
    return -int(exponent), unscaled.to_bytes(length, "big", signed=True)


def _wire(row: dict[str, Any] | None, avro: bool) -> dict[str, Any] | None:
    """A row as Debezium puts it on the wire (JsonConverter: bytes as base64; AvroConverter: raw)."""
    if row is None:
        return None
    b = (lambda raw: raw) if avro else (lambda raw: base64.b64encode(raw).decode())
    scale, unscaled = _unscaled(row["score"]) if row["score"] is not None else (0, b"")
    return {
        "id": row["id"],
        "first_name": row["first_name"],
        "email": row["email"],
        "balance": row["balance"] if avro else b(_unscaled(row["balance"])[1]),
        "created_at": (row["created_at"] - EPOCH) // dt.timedelta(microseconds=1),
        "updated_at": row["updated_at"].isoformat().replace("+00:00", "Z"),
        "birthday": (row["birthday"] - dt.date(1970, 1, 1)).days,
        "status": row["status"],
        "ext_id": str(row["ext_id"]),
        "prefs": json.dumps(row["prefs"]),
        "score": None if row["score"] is None else {"scale": scale, "value": b(unscaled)},
    }


class SourceTable:
    """A source table and the change events Debezium would publish for what happens to it."""

    def __init__(self, table: str = "customers") -> None:
        self.table = table
        self.rows: dict[int, dict[str, Any]] = {}
        self.events: list[tuple[dict[str, Any], dict[str, Any] | None]] = []  # (key, envelope or None)
        self._lsn = 1000

    def _event(self, op: str, before: dict | None, after: dict | None, snapshot: str = "false") -> None:
        self._lsn += 8
        key = {"id": (after or before or {})["id"]}
        source = {
            "version": "2.7.0.Final",
            "connector": "postgresql",
            "name": PREFIX,
            "ts_ms": 1_700_000_000_000 + self._lsn,
            "snapshot": snapshot,
            "db": "inventory",
            "sequence": None,
            "schema": "inventory",
            "table": self.table,
            "txId": self._lsn // 8,
            "lsn": self._lsn,
            "xmin": None,
        }
        self.events.append(
            (
                key,
                {
                    "before": before,
                    "after": after,
                    "source": source,
                    "op": op,
                    "ts_ms": 1_700_000_000_100 + self._lsn,
                    "transaction": None,
                },
            )
        )

    def snapshot(self, rows: list[dict[str, Any]]) -> None:
        for n, row in enumerate(rows):
            self.rows[row["id"]] = row
            self._event("r", None, row, "last" if n == len(rows) - 1 else "true")

    def insert(self, row: dict[str, Any]) -> None:
        self.rows[row["id"]] = row
        self._event("c", None, row)

    def update(self, i: int, **changes: Any) -> None:
        before = self.rows[i]
        self.rows[i] = {**before, **changes}
        self._event("u", before, self.rows[i])

    def delete(self, i: int) -> None:
        before = self.rows.pop(i)
        self._event("d", before, None)
        self.events.append(({"id": i}, None))  # the tombstone Debezium sends after a delete

    def state(self) -> list[dict[str, Any]]:
        return [self.rows[i] for i in sorted(self.rows)]

    # -------------------------------------------------------------- encodings

    def connect_json(self) -> list[dict[str, Any]]:
        """The events as records for `produce`: JsonConverter with schemas.enable=true."""
        key_schema, schema = connect_schemas(self.table)
        out = []
        for key, envelope in self.events:
            value = None
            if envelope is not None:
                payload = {
                    **envelope,
                    "before": _wire(envelope["before"], False),
                    "after": _wire(envelope["after"], False),
                }
                value = json.dumps({"schema": schema, "payload": payload})
            out.append({"key": json.dumps({"schema": key_schema, "payload": key}), "value": value})
        return out

    def avro(self, key_id: int, value_id: int) -> list[dict[str, Any]]:
        """The events as Avro records (schema ids from the registry the schemas were put in)."""
        key_schema, schema = avro_schemas(self.table)
        parsed_key, parsed = fastavro.parse_schema(key_schema), fastavro.parse_schema(schema)
        out = []
        for key, envelope in self.events:
            value = None
            if envelope is not None:
                record = {
                    **envelope,
                    "before": _wire(envelope["before"], True),
                    "after": _wire(envelope["after"], True),
                }
                value = _avro(parsed, record, value_id)
            out.append({"key": _avro(parsed_key, key, key_id), "value": value})
        return out


def _avro(parsed: Any, record: dict[str, Any], schema_id: int) -> bytes:
    out = io.BytesIO()
    fastavro.schemaless_writer(out, parsed, record)
    return b"\x00" + schema_id.to_bytes(4, "big") + out.getvalue()


def standard_history(source: SourceTable) -> None:
    """Snapshot of five rows, then inserts, updates (one nulling columns), deletes (one of a row
    inserted after the snapshot) and a re-insert of a deleted key."""
    source.snapshot([customer(i) for i in range(1, 6)])
    source.insert(customer(6))
    source.insert(customer(7))
    source.update(2, email="new2@example.com", balance=Decimal("-5.25"), status="active")
    source.update(3, email=None, prefs={"lang": "de", "tags": ["a", "b"]}, score=Decimal("0.000001"))
    source.delete(4)
    source.update(6, first_name="six", score=None)
    source.delete(7)
    source.insert(customer(4, first_name="back"))
    source.update(1, updated_at=dt.datetime(2025, 5, 5, 5, 5, 5, 5, tzinfo=dt.UTC))
