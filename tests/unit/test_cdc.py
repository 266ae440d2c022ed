"""Debezium change events -> rows: every op, deletes in each pk mode, skips, flattened records,
Debezium's logical types as column types, in Connect JSON, Avro and schemaless JSON."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from typing import Any

import pytest

from sink.errors import MappingError
from sink.formats.avro import AvroDecoder
from sink.formats.connect_json import ConnectJsonDecoder
from sink.formats.json_plain import JsonDecoder
from sink.model import Column, ColumnType, Coord, Kind, Op, Outcome, RawRecord, Row, Stage, Status
from sink.pipeline import Preparer
from sink.transforms import MappingRules, RowMapper
from tests.support.debezium import SourceTable, as_source, avro_schemas, connect_schemas, customer, standard_history

CDC = MappingRules(pk_mode="record_key", cdc_format="debezium")


class Registry:
    def __init__(self, schemas: dict[int, Any]) -> None:
        self.schemas = schemas

    def schema(self, ref: int) -> tuple[str, str, list[dict]]:
        return "AVRO", json.dumps(self.schemas[ref]), []

    def reference(self, subject: str, version: int) -> tuple[str, str, list[dict]]:
        raise LookupError(subject)

    def protobuf_file(self, ref: int) -> Any:
        raise LookupError(ref)


def _preparer(rules: MappingRules, fmt: str) -> Preparer:
    if fmt == "avro":
        key_schema, schema = avro_schemas("customers")
        registry = Registry({1: key_schema, 2: schema})
        return Preparer(AvroDecoder(registry), AvroDecoder(registry), RowMapper(rules))
    if fmt == "connect_json":
        return Preparer(ConnectJsonDecoder(), ConnectJsonDecoder(), RowMapper(rules))
    return Preparer(JsonDecoder(), JsonDecoder(), RowMapper(rules))


def _records(source: SourceTable, fmt: str) -> list[dict[str, Any]]:
    if fmt == "avro":
        return source.avro(1, 2)
    records = source.connect_json()
    if fmt == "json":  # schemaless: the payloads alone
        return [
            {
                "key": json.dumps(json.loads(r["key"])["payload"]),
                "value": None if r["value"] is None else json.dumps(json.loads(r["value"])["payload"]),
            }
            for r in records
        ]
    return records


def _prepare_all(rules: MappingRules, fmt: str, source: SourceTable) -> list[Row | Outcome]:
    preparer = _preparer(rules, fmt)
    out = []
    for offset, record in enumerate(_records(source, fmt)):
        key = record["key"].encode() if isinstance(record["key"], str) else record["key"]
        value = record["value"].encode() if isinstance(record["value"], str) else record["value"]
        out.append(preparer.prepare(RawRecord(Coord("dbserver1.inventory.customers", 0, offset), key, value)))
    return out


def _replay(results: list[Row | Outcome]) -> dict[Any, dict[str, Any]]:
    """What a table would hold after these rows (upsert by key, delete by key)."""
    table: dict[Any, dict[str, Any]] = {}
    for r in results:
        if isinstance(r, Outcome):
            continue
        key = tuple(r.key.values())
        if r.op is Op.DELETE:
            table.pop(key, None)
        else:
            table[key] = as_source(r.values)
    return table


@pytest.mark.parametrize("fmt", ["connect_json", "avro"])
@pytest.mark.parametrize("delete_enabled", [True, False])
def test_a_history_replays_to_the_exact_source_state(fmt: str, delete_enabled: bool) -> None:
    source = SourceTable()
    standard_history(source)
    rules = MappingRules(pk_mode="record_key", cdc_format="debezium", delete_enabled=delete_enabled)
    results = _prepare_all(rules, fmt, source)
    table = _replay(results)
    assert [table[k] for k in sorted(table)] == source.state()
    ops = [r.op if isinstance(r, Row) else r.operation for r in results]
    tombstone = Op.DELETE if delete_enabled else "skip"  # applied idempotently, or skipped
    assert ops == [Op.UPSERT] * 9 + [Op.DELETE, tombstone, Op.UPSERT, Op.DELETE, tombstone, Op.UPSERT, Op.UPSERT]


@pytest.mark.parametrize("fmt", ["connect_json", "avro"])
def test_debezium_logical_types_become_column_types(fmt: str) -> None:
    source = SourceTable()
    source.insert(customer(1))
    (r,) = _prepare_all(CDC, fmt, source)
    assert isinstance(r, Row)
    types = {c.name: (c.type, c.nullable) for c in r.spec.columns}
    assert types == {
        "id": (ColumnType(Kind.INT32), False),
        "first_name": (ColumnType(Kind.STRING), False),
        "email": (ColumnType(Kind.STRING), True),
        "balance": (ColumnType(Kind.DECIMAL, precision=10, scale=2), True),
        "created_at": (ColumnType(Kind.LOCAL_TIMESTAMP, precision=6), True),
        "updated_at": (ColumnType(Kind.TIMESTAMP, precision=6), True),
        "birthday": (ColumnType(Kind.DATE), True),
        "status": (ColumnType(Kind.STRING), True),
        "ext_id": (ColumnType(Kind.UUID), True),
        "prefs": (ColumnType(Kind.JSON), True),
        "score": (ColumnType(Kind.DECIMAL, precision=38, scale=None), True),
    }
    assert r.spec.primary_key == ("id",)
    assert r.table == "dbserver1.inventory.customers"
    assert as_source(r.values) == customer(1)  # exact values, not the envelope
    assert not r.inferred


def test_schemaless_envelopes_give_their_rows() -> None:
    source = SourceTable()
    standard_history(source)
    results = _prepare_all(MappingRules(pk_mode="record_key", cdc_format="auto"), "json", source)
    table = _replay(results)
    assert sorted(k[0] for k in table) == [1, 2, 3, 4, 5, 6]
    assert table[(2,)]["email"] == "new2@example.com"
    assert table[(4,)]["first_name"] == "back"
    assert set(table[(1,)]) == {
        "id",
        "first_name",
        "email",
        "balance",
        "created_at",
        "updated_at",
        "birthday",
        "status",
        "ext_id",
        "prefs",
        "score",
    }


def test_the_plan_of_a_schema_is_reused() -> None:
    source = SourceTable()
    source.insert(customer(1))
    source.insert(customer(2))
    first, second = _prepare_all(CDC, "connect_json", source)
    assert isinstance(first, Row) and isinstance(second, Row)
    assert first.spec is second.spec
    assert as_source(second.values) == customer(2)


# ------------------------------------------------------------------------------ deletes


@pytest.mark.parametrize("fmt", ["connect_json", "avro", "json"])
def test_delete_in_record_value_mode_takes_the_key_from_before(fmt: str) -> None:
    source = SourceTable()
    source.insert(customer(3))
    source.delete(3)
    rules = MappingRules(pk_mode="record_value", pk_fields=("id",), cdc_format="debezium")
    upsert, delete, tombstone = _prepare_all(rules, fmt, source)
    assert isinstance(upsert, Row) and upsert.op is Op.UPSERT and dict(upsert.key) == {"id": 3}
    assert isinstance(delete, Row) and delete.op is Op.DELETE and dict(delete.key) == {"id": 3}
    assert delete.spec.primary_key == ("id",)
    assert isinstance(tombstone, Outcome) and tombstone.status is Status.SKIPPED  # no value to key it by


def test_delete_in_record_header_mode() -> None:
    source = SourceTable()
    source.insert(customer(3))
    source.delete(3)
    record = source.connect_json()[1]
    preparer = _preparer(
        MappingRules(pk_mode="record_header", pk_fields=("row",), cdc_format="debezium"), "connect_json"
    )
    raw = RawRecord(Coord("t", 0, 1), record["key"].encode(), record["value"].encode(), (("row", b"3"),))
    r = preparer.prepare(raw)
    assert isinstance(r, Row) and r.op is Op.DELETE and dict(r.key) == {"row": "3"}


def test_delete_without_before_needs_the_record_key() -> None:
    value = json.dumps({"before": None, "after": None, "source": {"table": "t"}, "op": "d"}).encode()
    by_key = _preparer(CDC, "json").prepare(RawRecord(Coord("t", 0, 0), b'{"id": 9}', value))
    assert isinstance(by_key, Row) and by_key.op is Op.DELETE and dict(by_key.key) == {"id": 9}
    rules = MappingRules(pk_mode="record_value", pk_fields=("id",), cdc_format="debezium")
    with pytest.raises(MappingError, match="record value is null"):
        _preparer(rules, "json").prepare(RawRecord(Coord("t", 0, 0), b'{"id": 9}', value))


# ------------------------------------------------------------------------------ skips and errors


def _one(rules: MappingRules, value: dict[str, Any] | None, fmt: str = "json", key: bytes = b'{"id": 1}') -> Any:
    data = None if value is None else json.dumps(value).encode()
    return _preparer(rules, fmt).prepare(RawRecord(Coord("t", 0, 0), key, data))


@pytest.mark.parametrize(
    "value",
    [
        {"before": None, "after": None, "source": {"table": "t"}, "op": "t", "ts_ms": 1},  # truncate
        {"before": None, "after": None, "source": {"table": "t"}, "op": "m", "ts_ms": 1},  # message
        {"before": None, "after": {"id": 1}, "source": {"table": "t"}, "ts_ms": 1},  # no op
        {"source": {"db": "inventory"}, "databaseName": "inventory", "ddl": "ALTER TABLE t ...", "tableChanges": []},
        {"ts_ms": 1_700_000_000_000},  # a heartbeat
    ],
)
def test_events_that_are_no_rows_are_skipped(value: dict[str, Any]) -> None:
    result = _one(CDC, value)
    assert isinstance(result, Outcome)
    assert (result.status, result.operation, result.table) == (Status.SKIPPED, "skip", "t")


def test_a_truncate_event_is_a_truncate_row_for_its_table_when_enabled() -> None:
    truncate = {"before": None, "after": None, "source": {"table": "t"}, "op": "t", "ts_ms": 1}
    row = _one(MappingRules(pk_mode="record_key", cdc_format="debezium", truncate_enabled=True), truncate)
    assert isinstance(row, Row)
    assert (row.op, row.table, row.key, row.values) == (Op.TRUNCATE, "t", {}, {})


@pytest.mark.parametrize(
    "name",
    [
        "io.debezium.connector.common.Heartbeat",
        "io.debezium.connector.mysql.SchemaChangeValue",
        "io.debezium.connector.common.TransactionMetadataValue",
    ],
)
@pytest.mark.parametrize("mode", ["debezium", "auto"])
def test_debezium_records_named_by_their_schema_are_skipped(name: str, mode: str) -> None:
    schema = {
        "type": "struct",
        "name": name,
        "optional": False,
        "fields": [{"field": "ts_ms", "type": "int64", "optional": False}],
    }
    value = {"schema": schema, "payload": {"ts_ms": 5}}
    result = _one(
        MappingRules(pk_mode="record_key", cdc_format=mode),
        value,
        "connect_json",
        key=json.dumps({"schema": {"type": "string", "optional": False}, "payload": "k"}).encode(),
    )
    assert isinstance(result, Outcome) and result.status is Status.SKIPPED


def test_unknown_op_is_a_transformation_error() -> None:
    with pytest.raises(MappingError, match="unknown op") as error:
        _one(CDC, {"before": None, "after": {"id": 1}, "source": {}, "op": "x"})
    assert error.value.stage is Stage.TRANSFORMATION


def test_create_without_after_is_a_transformation_error() -> None:
    with pytest.raises(MappingError, match="without an `after` row") as error:
        _one(CDC, {"before": None, "after": None, "source": {}, "op": "c"})
    assert error.value.stage is Stage.TRANSFORMATION


def test_auto_mode_leaves_ordinary_records_alone() -> None:
    rules = MappingRules(pk_mode="record_key", cdc_format="auto")
    r = _one(rules, {"id": 1, "op": "sale", "after": 3})  # no `source`: not an envelope
    assert isinstance(r, Row) and dict(r.values) == {"id": 1, "op": "sale", "after": 3}
    heartbeat_like = _one(rules, {"ts_ms": 5})  # only `debezium` takes this for a heartbeat
    assert isinstance(heartbeat_like, Row)


def test_without_cdc_an_envelope_is_nested_columns_as_before() -> None:
    r = _one(MappingRules(pk_mode="record_key"), {"before": None, "after": {"id": 1}, "source": {}, "op": "c"})
    assert isinstance(r, Row) and set(r.values) == {"id", "before", "after", "source", "op"}


# ------------------------------------------------------------------------------ flattened records


@pytest.mark.parametrize("mode", ["debezium", "auto"])
def test_extract_new_record_state_rewrite_mode(mode: str) -> None:
    rules = MappingRules(pk_mode="record_value", pk_fields=("id",), cdc_format=mode)
    kept = _one(rules, {"id": 1, "name": "a", "__deleted": "false"})
    assert isinstance(kept, Row) and kept.op is Op.UPSERT and dict(kept.values) == {"id": 1, "name": "a"}
    assert [c.name for c in kept.spec.columns] == ["id", "name"]
    gone = _one(rules, {"id": 1, "name": "a", "__deleted": "true"})
    assert isinstance(gone, Row) and gone.op is Op.DELETE and dict(gone.key) == {"id": 1}


def test_flattened_records_with_a_schema_drop_the_deleted_field_from_the_spec() -> None:
    schema = {
        "type": "struct",
        "name": "dbserver1.inventory.customers.Value",
        "optional": False,
        "fields": [
            {"field": "id", "type": "int32", "optional": False},
            {"field": "first_name", "type": "string", "optional": True},
            {"field": "__deleted", "type": "string", "optional": True},
        ],
    }
    key = json.dumps(
        {
            "schema": {
                "type": "struct",
                "optional": False,
                "fields": [{"field": "id", "type": "int32", "optional": False}],
            },
            "payload": {"id": 1},
        }
    ).encode()
    preparer = _preparer(CDC, "connect_json")

    def prepare(deleted: str) -> Any:
        value = json.dumps({"schema": schema, "payload": {"id": 1, "first_name": "a", "__deleted": deleted}})
        return preparer.prepare(RawRecord(Coord("t", 0, 0), key, value.encode()))

    first, second, gone = prepare("false"), prepare("false"), prepare("true")
    assert first.spec.columns == (
        Column("id", ColumnType(Kind.INT32), False),
        Column("first_name", ColumnType(Kind.STRING), True),
    )
    assert second.spec is first.spec and dict(second.values) == {"id": 1, "first_name": "a"}
    assert gone.op is Op.DELETE and dict(gone.key) == {"id": 1}


def test_connect_json_envelope_shape_keeps_the_row_schema() -> None:
    _, schema = connect_schemas("customers")
    payload = ConnectJsonDecoder().decode(
        json.dumps(
            {
                "schema": schema,
                "payload": {
                    "before": None,
                    "after": None,
                    "source": {
                        "version": "1",
                        "connector": "postgresql",
                        "name": "x",
                        "ts_ms": 1,
                        "db": "d",
                        "schema": "s",
                        "table": "t",
                    },
                    "op": "t",
                    "ts_ms": 1,
                    "transaction": None,
                },
            }
        ).encode()
    )
    assert payload.shape.name == "dbserver1.inventory.customers.Envelope"
    assert [c.name for c in payload.shape.nested["after"]][:3] == ["id", "first_name", "email"]


def test_values_of_iso_and_set_types() -> None:
    schema = {
        "type": "struct",
        "name": "x.Envelope",
        "optional": False,
        "fields": [
            {
                "field": "after",
                "type": "struct",
                "optional": True,
                "name": "x.Value",
                "fields": [
                    {"field": "id", "type": "int32", "optional": False},
                    {"field": "colors", "type": "string", "optional": True, "name": "io.debezium.data.EnumSet"},
                    {"field": "d", "type": "string", "optional": True, "name": "io.debezium.time.IsoDate"},
                    {"field": "ts", "type": "string", "optional": True, "name": "io.debezium.time.IsoTimestamp"},
                ],
            },
            {
                "field": "source",
                "type": "struct",
                "optional": False,
                "fields": [{"field": "table", "type": "string", "optional": False}],
            },
            {"field": "op", "type": "string", "optional": False},
        ],
    }
    value = {
        "schema": schema,
        "payload": {
            "after": {"id": 1, "colors": "red,blue", "d": "2024-02-03Z", "ts": "2024-02-03T04:05:06.7Z"},
            "source": {"table": "x"},
            "op": "c",
        },
    }
    key = json.dumps({"schema": {"type": "int32", "optional": False}, "payload": 1}).encode()
    r = _one(MappingRules(cdc_format="debezium"), value, "connect_json", key=key)
    assert dict(r.values) == {
        "id": 1,
        "colors": "red,blue",
        "d": dt.date(2024, 2, 3),
        "ts": dt.datetime(2024, 2, 3, 4, 5, 6, 700000, tzinfo=dt.UTC),
    }
    assert r.spec.column("colors").type == ColumnType(Kind.STRING)
    assert r.spec.column("ts").type == ColumnType(Kind.TIMESTAMP, precision=6)


def test_a_balance_survives_exactly() -> None:
    source = SourceTable()
    source.insert(customer(1, balance=Decimal("-12345678.99"), score=Decimal("123456789012345678901234.5")))
    (r,) = _prepare_all(CDC, "avro", source)
    assert r.values["balance"] == Decimal("-12345678.99")
    assert r.values["score"] == Decimal("123456789012345678901234.5")
