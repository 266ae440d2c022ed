"""Decoded record -> Row: every pk mode, tombstones, field filters, table routing."""

from __future__ import annotations

import json
from typing import Any

import pytest

from sink.errors import MappingError
from sink.formats.connect_json import ConnectJsonDecoder
from sink.formats.json_plain import JsonDecoder
from sink.formats.string import StringDecoder
from sink.model import Column, ColumnType, Coord, Kind, Op, Outcome, RawRecord, Row, Stage, Status
from sink.pipeline import Preparer
from sink.transforms import MappingRules, RowMapper

INT64, INT32 = ColumnType(Kind.INT64), ColumnType(Kind.INT32)
KEY_STRING = ColumnType(Kind.STRING, length=255)
COORD = Coord("orders", 2, 7)


def prepare(
    rules: MappingRules,
    key: bytes | None,
    value: bytes | None,
    *,
    key_format: Any = None,
    value_format: Any = None,
    headers: tuple[tuple[str, bytes | None], ...] = (),
) -> Row | Outcome:
    preparer = Preparer(key_format or StringDecoder(), value_format or JsonDecoder(), RowMapper(rules))
    return preparer.prepare(RawRecord(COORD, key, value, headers, 1_700_000_000_000))


def row(*args: Any, **kwargs: Any) -> Row:
    result = prepare(*args, **kwargs)
    assert isinstance(result, Row), result
    return result


def columns(r: Row) -> list[tuple[str, ColumnType, bool]]:
    return [(c.name, c.type, c.nullable) for c in r.spec.columns]


VALUE = json.dumps({"id": 5, "name": "Ann", "qty": 2}).encode()


# ------------------------------------------------------------------------------ pk modes


def test_pk_none() -> None:
    r = row(MappingRules(), b"k", VALUE)
    assert (r.op, dict(r.key), dict(r.values)) == (Op.UPSERT, {}, {"id": 5, "name": "Ann", "qty": 2})
    assert r.spec.primary_key == ()
    assert r.table == "orders"
    assert r.inferred
    assert columns(r) == [("id", INT64, True), ("name", ColumnType(Kind.STRING), True), ("qty", INT64, True)]


def test_pk_kafka_uses_the_coordinates() -> None:
    r = row(MappingRules(pk_mode="kafka"), b"k", VALUE)
    expected = {"__connect_topic": "orders", "__connect_partition": 2, "__connect_offset": 7}
    assert dict(r.key) == expected
    assert dict(r.values) == {"id": 5, "name": "Ann", "qty": 2, **expected}
    assert r.spec.primary_key == ("__connect_topic", "__connect_partition", "__connect_offset")
    assert columns(r)[:3] == [
        ("__connect_topic", ColumnType(Kind.STRING, length=249), False),
        ("__connect_partition", INT32, False),
        ("__connect_offset", INT64, False),
    ]


def test_pk_kafka_with_own_names() -> None:
    r = row(MappingRules(pk_mode="kafka", pk_fields=("t", "p", "o")), None, VALUE)
    assert dict(r.key) == {"t": "orders", "p": 2, "o": 7}
    assert r.spec.primary_key == ("t", "p", "o")


def test_pk_record_key_struct_takes_every_key_field() -> None:
    key = json.dumps({"id": 5, "region": "eu"}).encode()
    r = row(MappingRules(pk_mode="record_key"), key, VALUE, key_format=JsonDecoder())
    assert dict(r.key) == {"id": 5, "region": "eu"}
    assert r.values["region"] == "eu" and r.values["id"] == 5
    assert r.spec.primary_key == ("id", "region")
    assert columns(r)[:2] == [("id", INT64, False), ("region", KEY_STRING, False)], "key strings are bounded"


def test_pk_record_key_struct_with_chosen_fields() -> None:
    key = json.dumps({"id": 5, "region": "eu"}).encode()
    r = row(MappingRules(pk_mode="record_key", pk_fields=("region",)), key, VALUE, key_format=JsonDecoder())
    assert dict(r.key) == {"region": "eu"}
    assert r.spec.primary_key == ("region",)
    assert "id" in r.values and r.values["id"] == 5, "value fields are still written"


def test_pk_record_key_value_wins_over_a_value_field_of_the_same_name() -> None:
    key = json.dumps({"id": 99}).encode()
    r = row(MappingRules(pk_mode="record_key"), key, VALUE, key_format=JsonDecoder())
    assert r.values["id"] == 99


def test_pk_record_key_primitive_default_column() -> None:
    r = row(MappingRules(pk_mode="record_key"), b"order-1", VALUE)
    assert dict(r.key) == {"__connect_key": "order-1"}
    assert r.spec.primary_key == ("__connect_key",)
    assert columns(r)[0] == ("__connect_key", KEY_STRING, False)


def test_pk_record_key_primitive_named_column() -> None:
    r = row(MappingRules(pk_mode="record_key", pk_fields=("order_id",)), b"order-1", VALUE)
    assert dict(r.key) == {"order_id": "order-1"}
    assert r.values["order_id"] == "order-1"


def test_pk_record_key_primitive_integer_from_connect_schema() -> None:
    key = json.dumps({"schema": {"type": "int32", "optional": False}, "payload": 42}).encode()
    r = row(MappingRules(pk_mode="record_key", pk_fields=("id",)), key, VALUE, key_format=ConnectJsonDecoder())
    assert dict(r.key) == {"id": 42}
    assert columns(r)[0] == ("id", INT32, False)


def test_pk_record_key_missing_key_is_a_mapping_error() -> None:
    with pytest.raises(MappingError, match="record key is null") as caught:
        prepare(MappingRules(pk_mode="record_key"), None, VALUE)
    assert caught.value.stage is Stage.TRANSFORMATION


def test_pk_record_key_missing_field() -> None:
    key = json.dumps({"id": 5}).encode()
    with pytest.raises(MappingError, match="record key has no value for primary-key field\\(s\\) 'region'"):
        prepare(MappingRules(pk_mode="record_key", pk_fields=("region",)), key, VALUE, key_format=JsonDecoder())


def test_pk_record_value() -> None:
    r = row(MappingRules(pk_mode="record_value", pk_fields=("id",)), b"ignored", VALUE)
    assert dict(r.key) == {"id": 5}
    assert r.spec.primary_key == ("id",)
    assert columns(r) == [("id", INT64, False), ("name", ColumnType(Kind.STRING), True), ("qty", INT64, True)]


def test_pk_record_value_compound_with_connect_schema_types() -> None:
    schema = {
        "type": "struct",
        "fields": [
            {"field": "tenant", "type": "string", "optional": False},
            {"field": "n", "type": "int16", "optional": False},
            {"field": "note", "type": "string", "optional": True},
        ],
    }
    value = json.dumps({"schema": schema, "payload": {"tenant": "acme", "n": 3, "note": None}}).encode()
    rules = MappingRules(pk_mode="record_value", pk_fields=("tenant", "n"))
    r = row(rules, None, value, value_format=ConnectJsonDecoder())
    assert dict(r.key) == {"tenant": "acme", "n": 3}
    assert not r.inferred
    assert columns(r) == [
        ("tenant", KEY_STRING, False),
        ("n", ColumnType(Kind.INT16), False),
        ("note", ColumnType(Kind.STRING), True),
    ]


def test_pk_record_value_missing_or_null_field() -> None:
    rules = MappingRules(pk_mode="record_value", pk_fields=("id", "sku"))
    with pytest.raises(MappingError, match="record value has no value for primary-key field\\(s\\) 'sku'"):
        prepare(rules, None, VALUE)
    with pytest.raises(MappingError, match="'id'"):
        prepare(rules, None, b'{"id": null, "sku": "x"}')


def test_pk_record_header() -> None:
    rules = MappingRules(pk_mode="record_header", pk_fields=("tenant", "id"))
    r = row(rules, None, VALUE, headers=(("tenant", b"acme"), ("id", b"9"), ("other", b"x")))
    assert dict(r.key) == {"tenant": "acme", "id": "9"}
    assert r.values["id"] == "9", "the header value is the key column"
    assert columns(r)[:2] == [("tenant", KEY_STRING, False), ("id", KEY_STRING, False)]


@pytest.mark.parametrize("headers", [(), (("tenant", None),)])
def test_pk_record_header_missing_or_null(headers: tuple) -> None:
    with pytest.raises(MappingError, match="primary-key header 'tenant' is missing or null"):
        prepare(MappingRules(pk_mode="record_header", pk_fields=("tenant",)), None, VALUE, headers=headers)


# ------------------------------------------------------------------------------ tombstones


def test_tombstone_with_delete_enabled_is_a_delete_by_key() -> None:
    rules = MappingRules(pk_mode="record_key", delete_enabled=True)
    r = row(rules, b'{"id": 5}', None, key_format=JsonDecoder())
    assert r.op is Op.DELETE
    assert dict(r.key) == {"id": 5}
    assert r.spec.primary_key == ("id",)


def test_tombstone_with_primitive_key() -> None:
    r = row(MappingRules(pk_mode="record_key", delete_enabled=True), b"order-1", None)
    assert (r.op, dict(r.key)) == (Op.DELETE, {"__connect_key": "order-1"})


@pytest.mark.parametrize("pk_mode", ["none", "record_key", "kafka"])
def test_tombstone_without_delete_is_skipped(pk_mode: str) -> None:
    outcome = prepare(MappingRules(pk_mode=pk_mode), b"order-1", None)
    assert isinstance(outcome, Outcome)
    assert (outcome.status, outcome.table, outcome.operation) == (Status.SKIPPED, "orders", "skip")
    assert outcome.coord == COORD


def test_json_null_value_is_a_tombstone_too() -> None:
    r = row(MappingRules(pk_mode="record_key", delete_enabled=True), b"k1", b"null")
    assert r.op is Op.DELETE


def test_tombstone_delete_without_key_is_a_mapping_error() -> None:
    with pytest.raises(MappingError):
        prepare(MappingRules(pk_mode="record_key", delete_enabled=True), None, None)


# ------------------------------------------------------------------------------ fields


def test_fields_include() -> None:
    r = row(MappingRules(fields_include=("id", "qty")), None, VALUE)
    assert dict(r.values) == {"id": 5, "qty": 2}
    assert [c.name for c in r.spec.columns] == ["id", "qty"]


def test_fields_exclude() -> None:
    r = row(MappingRules(fields_exclude=("name",)), None, VALUE)
    assert dict(r.values) == {"id": 5, "qty": 2}
    assert [c.name for c in r.spec.columns] == ["id", "qty"]


def test_fields_include_and_exclude() -> None:
    r = row(MappingRules(fields_include=("id", "name"), fields_exclude=("name",)), None, VALUE)
    assert dict(r.values) == {"id": 5}


def test_key_columns_survive_field_filters() -> None:
    rules = MappingRules(pk_mode="record_value", pk_fields=("id",), fields_include=("qty",))
    r = row(rules, None, VALUE)
    assert dict(r.values) == {"qty": 2, "id": 5}
    assert [c.name for c in r.spec.columns] == ["id", "qty"]


def test_fields_filter_applies_to_connect_schemas() -> None:
    schema = {
        "type": "struct",
        "fields": [
            {"field": "id", "type": "int64", "optional": False},
            {"field": "secret", "type": "string", "optional": True},
        ],
    }
    value = json.dumps({"schema": schema, "payload": {"id": 1, "secret": "s"}}).encode()
    r = row(MappingRules(fields_exclude=("secret",)), None, value, value_format=ConnectJsonDecoder())
    assert dict(r.values) == {"id": 1}
    assert r.spec.columns == (Column("id", INT64, nullable=False),)


# ------------------------------------------------------------------------------ other shapes


def test_primitive_value_goes_to_one_column() -> None:
    r = row(MappingRules(), None, b"hello", value_format=StringDecoder())
    assert dict(r.values) == {"__connect_value": "hello"}
    assert columns(r) == [("__connect_value", ColumnType(Kind.STRING), True)]


def test_table_name_format() -> None:
    r = row(MappingRules(table_name_format="kafka_${topic}_v1"), None, VALUE)
    assert r.table == r.spec.name == "kafka_orders_v1"


def test_connect_schema_specs_are_cached_per_schema() -> None:
    schema = {"type": "struct", "fields": [{"field": "id", "type": "int64", "optional": False}]}
    mapper = RowMapper(MappingRules())
    preparer = Preparer(StringDecoder(), ConnectJsonDecoder(), mapper)
    first, second = (
        preparer.prepare(
            RawRecord(Coord("orders", 0, n), None, json.dumps({"schema": schema, "payload": {"id": n}}).encode())
        )
        for n in (1, 2)
    )
    assert isinstance(first, Row) and isinstance(second, Row)
    assert first.spec is second.spec
    assert first.schema_id == second.schema_id is not None
