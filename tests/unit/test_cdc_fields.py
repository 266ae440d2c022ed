"""Debezium source metadata: table names from the `source` block (`${source.db}`, `${source.schema}`,
`${source.table}`), `add.fields`-style metadata columns and the soft-delete mode, in Connect JSON,
Avro and schemaless JSON; their start-up validation."""

from __future__ import annotations

import json
from typing import Any

import pytest

from sink.config import load_settings
from sink.errors import ConfigError
from sink.model import ColumnType, Coord, Kind, Op, Outcome, RawRecord, Row, Stage, Status
from sink.transforms import MappingRules, source_placeholders
from tests.support.debezium import SourceTable, as_source, customer, standard_history
from tests.unit.test_cdc import _preparer, _records

BASE = {"SINK_BOOTSTRAP_SERVERS": "k:9092", "SINK_DATABASE_URL": "sqlite:///:memory:", "SINK_TOPICS": "t"}
CDC_ENV = {**BASE, "SINK_CDC_FORMAT": "debezium", "SINK_INSERT_MODE": "upsert", "SINK_PK_MODE": "record_key"}
TOPIC = "dbserver1.inventory.customers"


def _all(rules: MappingRules, fmt: str, source: SourceTable) -> list[Row | Outcome]:
    preparer = _preparer(rules, fmt)
    out = []
    for offset, record in enumerate(_records(source, fmt)):
        key = record["key"].encode() if isinstance(record["key"], str) else record["key"]
        value = record["value"].encode() if isinstance(record["value"], str) else record["value"]
        out.append(preparer.prepare(RawRecord(Coord(TOPIC, 0, offset), key, value)))
    return out


def _rules(**kwargs: Any) -> MappingRules:
    return MappingRules(pk_mode="record_key", cdc_format="debezium", **kwargs)


# ------------------------------------------------------------------------------ table names from the source


@pytest.mark.parametrize("fmt", ["connect_json", "avro", "json"])
def test_table_named_after_the_source_block(fmt: str) -> None:
    source = SourceTable("people")
    source.insert(customer(1))
    source.delete(1)
    rules = _rules(table_name_format="${source.db}_${source.schema}_${source.table}_copy", delete_enabled=True)
    upsert, delete, tombstone = _all(rules, fmt, source)
    assert isinstance(upsert, Row) and isinstance(delete, Row)
    assert upsert.table == upsert.spec.name == "inventory_inventory_people_copy"
    assert (delete.table, delete.op) == ("inventory_inventory_people_copy", Op.DELETE)
    # A tombstone has no source block: skipped (the delete before it did the work), and its
    # report names the table the topic's latest event went to.
    assert isinstance(tombstone, Outcome) and tombstone.status is Status.SKIPPED
    assert tombstone.table == "inventory_inventory_people_copy"


def test_source_tables_of_one_topic_go_to_their_own_tables() -> None:
    one, two = SourceTable("alpha"), SourceTable("beta")
    one.insert(customer(1))
    two.insert(customer(2))
    one.events += two.events
    rows = _all(_rules(table_name_format="r_${source.table}"), "connect_json", one)
    assert [(r.table, r.key["id"]) for r in rows if isinstance(r, Row)] == [("r_alpha", 1), ("r_beta", 2)]


def test_topic_and_source_placeholders_together_after_a_router() -> None:
    from sink.smt import build_chain

    spec = {"route": {"type": "regex_router", "regex": r"dbserver1\.(.*)\.customers", "replacement": "$1"}}
    rules = _rules(table_name_format="${topic}__${source.table}", transforms=build_chain(("route",), spec, {}))
    source = SourceTable("people")
    source.insert(customer(1))
    (r,) = _all(rules, "connect_json", source)
    assert isinstance(r, Row) and r.table == "inventory__people"


def test_a_record_without_a_source_block_is_a_record_error_naming_the_placeholder() -> None:
    rules = _rules(table_name_format="${source.table}")
    preparer = _preparer(rules, "json")
    flattened = RawRecord(Coord(TOPIC, 0, 0), json.dumps({"id": 1}).encode(), json.dumps({"id": 1, "x": 2}).encode())
    with pytest.raises(Exception) as info:
        preparer.prepare(flattened)
    assert "${source.table}" in str(info.value) and "source" in str(info.value)
    assert info.value.stage is Stage.TRANSFORMATION


def test_a_source_block_without_the_value_is_a_record_error_naming_it() -> None:
    source = SourceTable()
    source.insert(customer(1))
    record = _records(source, "json")[0]
    envelope = json.loads(record["value"])
    envelope["source"]["schema"] = None  # MySQL's source block has no schema
    preparer = _preparer(_rules(table_name_format="${source.schema}_${source.table}"), "json")
    with pytest.raises(Exception) as info:
        preparer.prepare(RawRecord(Coord(TOPIC, 0, 0), record["key"].encode(), json.dumps(envelope).encode()))
    assert "${source.schema}" in str(info.value)


def test_source_placeholders() -> None:
    assert source_placeholders("${topic}") == ()
    assert source_placeholders("x_${source.table}_${source.db}") == ("source.db", "source.table")


@pytest.mark.parametrize(
    ("env", "variable", "words"),
    [
        ({"SINK_TABLE_NAME_FORMAT": "${source.table}"}, "SINK_TABLE_NAME_FORMAT", "SINK_CDC_FORMAT"),
        ({**CDC_ENV, "SINK_TABLE_NAME_FORMAT": "${source.tabel}"}, "SINK_TABLE_NAME_FORMAT", "unknown placeholder"),
        ({**CDC_ENV, "SINK_TABLE_NAME_FORMAT": "replica.${source.table}"}, "SINK_TABLE_NAME_FORMAT", "schema"),
        ({"SINK_CDC_ADD_FIELDS": "op"}, "SINK_CDC_ADD_FIELDS", "SINK_CDC_FORMAT"),
        ({**CDC_ENV, "SINK_CDC_ADD_FIELDS": "op,after.id"}, "SINK_CDC_ADD_FIELDS", "'after.id'"),
        ({**CDC_ENV, "SINK_CDC_ADD_FIELDS_PREFIX": "a b"}, "SINK_CDC_ADD_FIELDS_PREFIX", ""),
        ({"SINK_CDC_DELETE_MODE": "soft"}, "SINK_CDC_DELETE_MODE", "SINK_CDC_FORMAT"),
        ({**CDC_ENV, "SINK_CDC_DELETE_MODE": "gentle"}, "SINK_CDC_DELETE_MODE", "soft"),
    ],
)
def test_start_up_errors_name_the_variable(env: dict[str, str], variable: str, words: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(environ={**BASE, **env})
    assert str(info.value).startswith(f"{variable}: ") and words in str(info.value)
    assert "\n" not in str(info.value)


def test_valid_settings_reach_the_rules() -> None:
    from sink.cli import rules_from

    s = load_settings(
        environ={
            **CDC_ENV,
            "SINK_TABLE_NAME_FORMAT": "replica_${source.table}",
            "SINK_CDC_ADD_FIELDS": "op, source.ts_ms,table",
            "SINK_CDC_ADD_FIELDS_PREFIX": "meta_",
            "SINK_CDC_DELETE_MODE": "soft",
        }
    )
    rules = rules_from(s).mapping
    assert rules.cdc_add_fields == ("op", "source.ts_ms", "table")
    assert (rules.cdc_add_fields_prefix, rules.cdc_soft_delete) == ("meta_", True)
    assert rules.table_name_format == "replica_${source.table}"


# ------------------------------------------------------------------------------ add.fields


@pytest.mark.parametrize("fmt", ["connect_json", "avro"])
def test_add_fields_become_typed_columns(fmt: str) -> None:
    source = SourceTable()
    source.insert(customer(1))
    source.update(1, email="b@example.com")
    rules = _rules(cdc_add_fields=("op", "ts_ms", "source.ts_ms", "source.lsn", "source.table", "db"))
    first, second = _all(rules, fmt, source)
    assert isinstance(first, Row) and isinstance(second, Row)
    meta = ["__op", "__ts_ms", "__source_ts_ms", "__source_lsn", "__source_table", "__db"]
    assert [c.name for c in first.spec.columns][-6:] == meta
    types = {c.name: (c.type, c.nullable) for c in first.spec.columns}
    assert types["__op"] == (ColumnType(Kind.STRING), True)
    assert types["__source_lsn"] == (ColumnType(Kind.INT64), True)
    assert types["__source_ts_ms"] == (ColumnType(Kind.INT64), True)
    (_, e1), (_, e2) = source.events
    assert {k: first.values[k] for k in meta} == {
        "__op": "c",
        "__ts_ms": e1["ts_ms"],
        "__source_ts_ms": e1["source"]["ts_ms"],
        "__source_lsn": e1["source"]["lsn"],
        "__source_table": "customers",
        "__db": "inventory",
    }
    assert (second.values["__op"], second.values["__source_lsn"]) == ("u", e2["source"]["lsn"])
    assert second.spec is first.spec  # worked out once per schema
    assert {k: v for k, v in as_source(first.values).items() if k not in meta} == customer(1)


def test_add_fields_schemaless_and_with_a_prefix() -> None:
    source = SourceTable()
    source.insert(customer(1))
    (r,) = _all(_rules(cdc_add_fields=("op", "source.lsn"), cdc_add_fields_prefix="cdc_"), "json", source)
    assert isinstance(r, Row)
    assert (r.values["cdc_op"], r.values["cdc_source_lsn"]) == ("c", source.events[0][1]["source"]["lsn"])
    assert {"cdc_op", "cdc_source_lsn"} <= set(r.spec.column_names)


def test_an_add_field_the_schema_lacks_is_a_record_error() -> None:
    source = SourceTable()
    source.insert(customer(1))
    preparer = _preparer(_rules(cdc_add_fields=("source.scn",)), "connect_json")
    record = _records(source, "connect_json")[0]
    with pytest.raises(Exception) as info:
        preparer.prepare(RawRecord(Coord(TOPIC, 0, 0), record["key"].encode(), record["value"].encode()))
    assert "source.scn" in str(info.value) and info.value.stage is Stage.TRANSFORMATION


# ------------------------------------------------------------------------------ soft deletes


@pytest.mark.parametrize("fmt", ["connect_json", "avro", "json"])
def test_soft_delete_upserts_the_before_row_flagged(fmt: str) -> None:
    source = SourceTable()
    standard_history(source)
    results = _all(_rules(cdc_soft_delete=True, cdc_add_fields=("op",), delete_enabled=True), fmt, source)
    rows = [r for r in results if isinstance(r, Row)]
    assert all(r.op is Op.UPSERT for r in rows)  # never a DELETE
    skipped = [r for r in results if isinstance(r, Outcome)]
    assert len(skipped) == 2 and all(o.status is Status.SKIPPED for o in skipped)  # the tombstones
    final: dict[int, dict[str, Any]] = {}
    for r in rows:
        final[r.key["id"]] = as_source(r.values)
    live = {row["id"]: row for row in source.state()}
    for i, values in final.items():
        if i in live:
            assert values["__deleted"] is False and values["__op"] in ("r", "c", "u")
            if fmt != "json":  # schemaless values stay in their wire form (strings, structs)
                assert {k: v for k, v in values.items() if not k.startswith("__")} == live[i]
            assert values["first_name"] == live[i]["first_name"]
        else:
            assert values["__deleted"] is True and values["__op"] == "d"
            assert values["first_name"] == customer(i)["first_name"]  # the before values
    assert sorted(final) == [1, 2, 3, 4, 5, 6, 7] and final[7]["__deleted"] is True
    if fmt != "json":
        deleted = next(r for r in rows if r.values["__deleted"])
        assert deleted.spec.column("__deleted").type == ColumnType(Kind.BOOLEAN)
        assert not deleted.inferred


def test_a_soft_delete_leaves_out_the_nulls_of_a_key_only_before() -> None:
    """PostgreSQL's default REPLICA IDENTITY: `before` holds the key and nulls. Written whole, the
    soft delete erased the row's last values; its null fields are left out (the columns keep them)."""
    preparer = _preparer(_rules(cdc_soft_delete=True, delete_enabled=True), "json")
    event = {"op": "d", "before": {"id": 3, "first_name": None, "email": None}, "after": None, "source": {}}
    row = preparer.prepare(RawRecord(Coord(TOPIC, 0, 0), json.dumps({"id": 3}).encode(), json.dumps(event).encode()))
    assert isinstance(row, Row) and row.op is Op.UPSERT
    assert dict(row.values) == {"id": 3, "__deleted": True}


def test_soft_delete_of_a_flattened_rewrite_record() -> None:
    preparer = _preparer(_rules(cdc_soft_delete=True), "json")
    key = json.dumps({"id": 3}).encode()
    deleted = json.dumps({"id": 3, "name": "x", "__deleted": "true"}).encode()
    kept = json.dumps({"id": 4, "name": "y", "__deleted": "false"}).encode()
    r1 = preparer.prepare(RawRecord(Coord(TOPIC, 0, 0), key, deleted))
    r2 = preparer.prepare(RawRecord(Coord(TOPIC, 0, 1), json.dumps({"id": 4}).encode(), kept))
    assert isinstance(r1, Row) and isinstance(r2, Row)
    assert (r1.op, dict(r1.values)) == (Op.UPSERT, {"id": 3, "name": "x", "__deleted": True})
    assert dict(r2.values) == {"id": 4, "name": "y", "__deleted": False}


def test_hard_deletes_stay_deletes_with_add_fields() -> None:
    source = SourceTable()
    source.insert(customer(1))
    source.delete(1)
    upsert, delete, _ = _all(_rules(cdc_add_fields=("op",)), "connect_json", source)
    assert isinstance(delete, Row) and delete.op is Op.DELETE and dict(delete.key) == {"id": 1}
    assert isinstance(upsert, Row) and upsert.values["__op"] == "c"
