"""Connect's SMTs (sink/smt.py): each transform and predicate on schemaless and schema'd records,
through the real mapping (RowMapper + Preparer), per-schema compilation, and start-up errors."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest

from sink.config import load_settings
from sink.errors import ConfigError, MappingError
from sink.formats.connect_json import ConnectJsonDecoder
from sink.formats.json_plain import JsonDecoder
from sink.formats.string import StringDecoder
from sink.model import Column, ColumnType, Coord, Kind, Outcome, RawRecord, Row, Stage, Status
from sink.pipeline import Preparer
from sink.smt import build_chain, java_date_format, java_replacement
from sink.transforms import MappingRules, RowMapper

TS = 1_700_000_000_123  # 2023-11-14T22:13:20.123Z
BASE = {"SINK_BOOTSTRAP_SERVERS": "k:9092", "SINK_DATABASE_URL": "sqlite:///:memory:", "SINK_TOPICS": "t"}


def chain(spec: dict[str, dict[str, str]], predicates: dict[str, dict[str, str]] | None = None) -> Any:
    return build_chain(tuple(spec), spec, predicates or {})


def mapper(spec: dict[str, dict[str, str]], predicates: Any = None, **rules: Any) -> RowMapper:
    return RowMapper(MappingRules(transforms=chain(spec, predicates), **rules))


def prepare(
    m: RowMapper,
    value: Any,
    *,
    key: bytes | None = b"k",
    topic: str = "shop.orders",
    headers: tuple = (),
    connect: bool = False,
    timestamp: int | None = TS,
) -> Row | Outcome:
    decoder = ConnectJsonDecoder() if connect else JsonDecoder()
    data = None if value is None else json.dumps(value).encode()
    return Preparer(StringDecoder(), decoder, m).prepare(RawRecord(Coord(topic, 1, 42), key, data, headers, timestamp))


def row(*args: Any, **kwargs: Any) -> Row:
    result = prepare(*args, **kwargs)
    assert isinstance(result, Row), result
    return result


def cols(r: Row) -> list[tuple[str, ColumnType, bool]]:
    return [(c.name, c.type, c.nullable) for c in r.spec.columns]


def field(fname: str, type_: str, optional: bool = True, **extra: Any) -> dict[str, Any]:
    return {"field": fname, "type": type_, "optional": optional, **extra}


SCHEMA = {
    "type": "struct",
    "name": "shop.Order",
    "optional": False,
    "fields": [
        field("id", "int64", optional=False),
        field("name", "string"),
        field("qty", "string"),
        field("secret", "string"),
        field("at", "int64", name="org.apache.kafka.connect.data.Timestamp"),
        {
            "field": "address",
            "type": "struct",
            "optional": True,
            "name": "shop.Address",
            "fields": [field("city", "string"), field("zip", "int32", optional=False)],
        },
    ],
}


def envelope(payload: dict[str, Any]) -> dict[str, Any]:
    return {"schema": SCHEMA, "payload": payload}


PAYLOAD = {"id": 7, "name": "Ann", "qty": "3", "secret": "s3", "at": TS, "address": {"city": "Oslo", "zip": 150}}
STRING, INT64 = ColumnType(Kind.STRING), ColumnType(Kind.INT64)


# ------------------------------------------------------------------------------ ReplaceField


def test_replace_field_schemaless() -> None:
    m = mapper({"r": {"type": "replace_field", "exclude": "secret", "renames": "name:customer,qty:amount"}})
    r = row(m, {"id": 1, "name": "Ann", "qty": 2, "secret": "x"})
    assert dict(r.values) == {"id": 1, "customer": "Ann", "amount": 2}


def test_replace_field_on_a_schema_renames_columns_once() -> None:
    m = mapper({"r": {"type": "replace_field", "include": "id,name,qty", "renames": "name:customer"}})
    first, second = row(m, envelope(PAYLOAD), connect=True), row(m, envelope({**PAYLOAD, "id": 8}), connect=True)
    assert cols(first) == [("id", INT64, False), ("customer", STRING, True), ("qty", STRING, True)]
    assert dict(second.values) == {"id": 8, "customer": "Ann", "qty": "3"}
    assert second.spec is first.spec  # compiled and mapped once per schema


def test_replace_field_on_a_primitive_is_a_transformation_error() -> None:
    m = mapper({"r": {"type": "replace_field", "exclude": "a"}})
    with pytest.raises(MappingError, match="transform 'r' \\(replace_field\\) failed") as error:
        prepare(m, 5)
    assert error.value.stage is Stage.TRANSFORMATION


# ------------------------------------------------------------------------------ routers


def test_regex_router_names_the_table() -> None:
    m = mapper({"route": {"type": "regex_router", "regex": r"(\w+)\.(\w+)", "replacement": "$2_copy"}})
    assert row(m, {"id": 1}).table == "orders_copy"
    assert row(m, {"id": 1}, topic="plain").table == "plain"  # no match: the topic as it is


def test_regex_router_with_table_name_format() -> None:
    m = mapper(
        {"route": {"type": "regex_router", "regex": r"shop\.(?P<t>.*)", "replacement": "${t}"}},
        table_name_format="replica_${topic}",
    )
    assert row(m, {"id": 1}).table == "replica_orders"


def test_java_replacement() -> None:
    assert java_replacement(r"a$1b${x}\$c") == r"a\g<1>b\g<x>$c"


def test_timestamp_router() -> None:
    m = mapper(
        {"day": {"type": "timestamp_router", "topic_format": "${topic}_${timestamp}", "timestamp_format": "yyyy_MM"}}
    )
    assert row(m, {"id": 1}, topic="orders").table == "orders_2023_11"
    with pytest.raises(MappingError, match="no timestamp"):
        prepare(m, {"id": 1}, timestamp=None)


def test_java_date_format() -> None:
    when = dt.datetime(2024, 3, 5, 14, 7, 9, 123456, tzinfo=dt.UTC)
    assert java_date_format("yyyyMMdd'T'HHmmss.SSS XXX")(when) == "20240305T140709.123 Z"
    assert java_date_format("yy-M-d h a")(when) == "24-3-5 2 PM"


# ------------------------------------------------------------------------------ InsertField


def test_insert_field_adds_coordinates_and_static() -> None:
    m = mapper(
        {
            "ins": {
                "type": "insert_field",
                "topic_field": "src_topic!",
                "partition_field": "p",
                "offset_field": "o",
                "timestamp_field": "ts",
                "static_field": "origin",
                "static_value": "eu",
            }
        }
    )
    r = row(m, envelope(PAYLOAD), connect=True)
    assert {k: r.values[k] for k in ("src_topic", "p", "o", "ts", "origin")} == {
        "src_topic": "shop.orders",
        "p": 1,
        "o": 42,
        "ts": dt.datetime(2023, 11, 14, 22, 13, 20, 123000, tzinfo=dt.UTC),
        "origin": "eu",
    }
    assert cols(r)[-5:] == [
        ("src_topic", STRING, False),
        ("p", ColumnType(Kind.INT32), True),
        ("o", INT64, True),
        ("ts", ColumnType(Kind.TIMESTAMP, precision=3), True),
        ("origin", STRING, True),
    ]


def test_insert_field_after_a_router_inserts_the_new_topic() -> None:
    m = mapper(
        {
            "route": {"type": "regex_router", "regex": "shop\\.(.*)", "replacement": "$1"},
            "ins": {"type": "insert_field", "topic_field": "t"},
        }
    )
    assert row(m, {"id": 1}).values["t"] == "orders"


# ------------------------------------------------------------------------------ Cast, TimestampConverter


def test_cast_fields_changes_columns_and_values() -> None:
    m = mapper({"c": {"type": "cast", "spec": "qty:int32,id:string"}})
    r = row(m, envelope(PAYLOAD), connect=True)
    assert (r.values["qty"], r.values["id"]) == (3, "7")
    assert ("qty", ColumnType(Kind.INT32), True) in cols(r) and ("id", STRING, False) in cols(r)


def test_cast_schemaless_and_whole_value() -> None:
    assert dict(
        row(
            mapper({"c": {"type": "cast", "spec": "a:float64,b:boolean,c:string"}}),
            {"a": "1.5", "b": "TRUE", "c": True},
        ).values
    ) == {"a": 1.5, "b": True, "c": "true"}
    assert row(mapper({"c": {"type": "cast", "spec": "int64"}}), "12").values == {"__connect_value": 12}


def test_cast_out_of_range_is_a_record_error() -> None:
    with pytest.raises(MappingError, match="cast"):
        prepare(mapper({"c": {"type": "cast", "spec": "a:int8"}}), {"a": 300})


@pytest.mark.parametrize(
    ("options", "expected", "column"),
    [
        ({"target_type": "string", "format": "yyyy-MM-dd HH:mm"}, "2023-11-14 22:13", STRING),
        ({"target_type": "unix"}, TS, INT64),
        ({"target_type": "unix", "unix_precision": "seconds"}, TS // 1000, INT64),
        ({"target_type": "Date"}, dt.date(2023, 11, 14), ColumnType(Kind.DATE)),
        ({"target_type": "Time"}, dt.time(22, 13, 20, 123000), ColumnType(Kind.TIME, precision=6)),
    ],
)
def test_timestamp_converter_from_a_connect_timestamp(options: dict, expected: Any, column: ColumnType) -> None:
    r = row(mapper({"tc": {"type": "timestamp_converter", "field": "at", **options}}), envelope(PAYLOAD), connect=True)
    assert r.values["at"] == expected
    assert r.spec.column("at").type == column


def test_timestamp_converter_parses_strings_and_unix() -> None:
    m = mapper(
        {
            "tc": {
                "type": "timestamp_converter",
                "field": "at",
                "target_type": "Timestamp",
                "format": "dd/MM/yyyy HH:mm:ss",
            }
        }
    )
    assert row(m, {"at": "14/11/2023 22:13:20"}).values["at"] == dt.datetime(2023, 11, 14, 22, 13, 20, tzinfo=dt.UTC)
    m = mapper(
        {
            "tc": {
                "type": "timestamp_converter",
                "field": "at",
                "target_type": "string",
                "unix_precision": "microseconds",
            }
        }
    )
    assert row(m, {"at": 1_000_001}).values["at"] == "1970-01-01T00:00:01.000001+00:00"
    with pytest.raises(MappingError, match="timestamp_converter"):
        prepare(m, {"at": "not a time"})


# ------------------------------------------------------------------------------ Flatten, ExtractField, HoistField


def test_flatten_with_a_schema_types_the_nested_columns() -> None:
    r = row(mapper({"f": {"type": "flatten", "delimiter": "_"}}), envelope(PAYLOAD), connect=True)
    assert cols(r)[-2:] == [("address_city", STRING, True), ("address_zip", ColumnType(Kind.INT32), True)]
    assert (r.values["address_city"], r.values["address_zip"]) == ("Oslo", 150)
    empty = row(mapper({"f": {"type": "flatten"}}), envelope({**PAYLOAD, "address": None}), connect=True)
    assert (empty.values["address.city"], empty.values["address.zip"]) == (None, None)


def test_flatten_schemaless() -> None:
    r = row(mapper({"f": {"type": "flatten"}}), {"a": {"b": {"c": 1}, "d": [1]}, "e": 2})
    assert dict(r.values) == {"a.b.c": 1, "a.d": [1], "e": 2}


def test_extract_field_of_a_struct_keeps_its_schema() -> None:
    r = row(mapper({"x": {"type": "extract_field", "field": "address"}}), envelope(PAYLOAD), connect=True)
    assert dict(r.values) == {"city": "Oslo", "zip": 150}
    assert cols(r) == [("city", STRING, True), ("zip", ColumnType(Kind.INT32), False)]
    assert dict(row(mapper({"x": {"type": "extract_field", "field": "n"}}), {"n": 4}).values) == {"__connect_value": 4}
    with pytest.raises(MappingError, match="no field 'nope'"):
        prepare(mapper({"x": {"type": "extract_field", "field": "nope"}}), envelope(PAYLOAD), connect=True)


def test_hoist_field() -> None:
    assert dict(row(mapper({"h": {"type": "hoist_field", "field": "v"}}), 5).values) == {"v": 5}
    r = row(mapper({"h": {"type": "hoist_field", "field": "doc"}}), envelope(PAYLOAD), connect=True)
    assert cols(r) == [("doc", ColumnType(Kind.JSON), True)] and r.values["doc"]["name"] == "Ann"


# ------------------------------------------------------------------------------ ValueToKey, MaskField


def test_value_to_key_makes_the_primary_key() -> None:
    m = mapper({"k": {"type": "value_to_key", "fields": "id"}}, pk_mode="record_key")
    r = row(m, envelope(PAYLOAD), connect=True, key=None)
    assert dict(r.key) == {"id": 7} and r.spec.primary_key == ("id",)
    assert r.spec.column("id") == Column("id", INT64, False)
    assert dict(row(m, {"id": 3, "x": 1}, key=None).key) == {"id": 3}


def test_mask_field() -> None:
    m = mapper({"m": {"type": "mask_field", "fields": "secret,id,at"}})
    r = row(m, envelope(PAYLOAD), connect=True)
    assert (r.values["secret"], r.values["id"], r.values["at"]) == ("", 0, dt.datetime(1970, 1, 1, tzinfo=dt.UTC))
    m = mapper({"m": {"type": "mask_field", "fields": "secret,n", "replacement": "***"}})
    assert dict(row(m, {"secret": "pw", "n": None}).values) == {"secret": "***", "n": None}
    m = mapper({"m": {"type": "mask_field", "fields": "amount", "replacement": "0.00"}})
    assert row(m, {"amount": 1.5}).values["amount"] == 0.0  # schemaless: the value's own type
    with pytest.raises(MappingError, match="mask_field"):  # "0.00" is no integer
        prepare(m, {"amount": 12})


# ------------------------------------------------------------------------------ Filter and predicates


def test_filter_with_predicates_and_negate() -> None:
    preds = {
        "tomb": {"type": "record_is_tombstone"},
        "audit": {"type": "topic_name_matches", "pattern": "audit.*"},
        "flag": {"type": "has_header_key", "name": "skip-me"},
    }
    m = mapper(
        {
            "a": {"type": "filter", "predicate": "tomb"},
            "b": {"type": "filter", "predicate": "audit"},
            "c": {"type": "filter", "predicate": "flag"},
        },
        preds,
        pk_mode="record_key",
        delete_enabled=True,
    )
    assert isinstance(prepare(m, None), Outcome)  # the tombstone is dropped before it could delete
    skipped = prepare(m, {"id": 1}, topic="audit.log")
    assert isinstance(skipped, Outcome) and (skipped.status, skipped.operation) == (Status.SKIPPED, "skip")
    assert isinstance(prepare(m, {"id": 1}, headers=(("skip-me", b""),)), Outcome)
    assert isinstance(prepare(m, {"id": 1}), Row)
    only = mapper({"a": {"type": "filter", "predicate": "audit", "negate": "true"}}, preds)
    assert isinstance(prepare(only, {"id": 1}), Outcome) and isinstance(prepare(only, {"id": 1}, topic="audit"), Row)


def test_a_conditional_router() -> None:
    preds = {"orders": {"type": "topic_name_matches", "pattern": ".*orders"}}
    m = mapper(
        {"r": {"type": "regex_router", "regex": ".*", "replacement": "all_orders", "predicate": "orders"}}, preds
    )
    assert row(m, {"id": 1}).table == "all_orders" and row(m, {"id": 1}, topic="users").table == "users"


def test_transforms_apply_after_a_debezium_event_became_its_row() -> None:
    event = {"before": None, "after": {"id": 1, "name": "a"}, "source": {"table": "x"}, "op": "c"}
    m = mapper(
        {"r": {"type": "replace_field", "renames": "name:title"}},
        cdc_format="debezium",
        pk_mode="record_value",
        pk_fields=("id",),
    )
    assert dict(row(m, event).values) == {"id": 1, "title": "a"}


# ------------------------------------------------------------------------------ configuration


def settings(**env: str) -> Any:
    return load_settings([], {**BASE, **{f"SINK_{k.upper()}": v for k, v in env.items()}})


def test_a_chain_from_env_reaches_the_mapper() -> None:
    s = settings(
        transforms="rename,route",
        transforms__rename__type="replace_field",
        transforms__rename__renames="a:b,c:d",
        transforms__route__type="regex_router",
        transforms__route__regex="(.*)",
        transforms__route__replacement="x_$1",
    )
    assert [(link.name, link.type) for link in s.transforms.links] == [
        ("rename", "replace_field"),
        ("route", "regex_router"),
    ]
    from sink.cli import rules_from

    assert rules_from(s).mapping.transforms is s.transforms
    assert settings().transforms is None


def test_transform_blocks_in_an_env_file(tmp_path: Any) -> None:
    env = tmp_path / "t.env"
    env.write_text(
        "SINK_TRANSFORMS=drop\nSINK_TRANSFORMS__DROP__TYPE=filter\nSINK_PREDICATES__T__TYPE=record_is_tombstone\n"
        "SINK_TRANSFORMS__DROP__PREDICATE=t\n"
    )
    assert load_settings([env], BASE).transforms.links[0].predicate is not None


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"transforms": "x", "transforms__x__type": "nope"}, "SINK_TRANSFORMS__X__TYPE: unknown type 'nope'"),
        ({"transforms": "x"}, "SINK_TRANSFORMS__X__TYPE: required"),
        ({"transforms": "x", "transforms__x__type": "regex_router"}, "SINK_TRANSFORMS__X__REGEX: required"),
        (
            {"transforms": "x", "transforms__x__type": "regex_router", "transforms__x__regex": "("},
            "SINK_TRANSFORMS__X__REGEX: not a valid regular expression",
        ),
        (
            {
                "transforms": "x",
                "transforms__x__type": "regex_router",
                "transforms__x__regex": "a",
                "transforms__x__replacement": "$2",
            },
            "SINK_TRANSFORMS__X__REPLACEMENT: refers to group '2'",
        ),
        (
            {"transforms": "x", "transforms__x__type": "replace_field", "transforms__x__renames": "a"},
            "SINK_TRANSFORMS__X__RENAMES: 'a' is not old:new",
        ),
        (
            {"transforms": "x", "transforms__x__type": "cast", "transforms__x__spec": "a:int128"},
            "SINK_TRANSFORMS__X__SPEC: unknown type 'int128'",
        ),
        (
            {"transforms": "x", "transforms__x__type": "flatten", "transforms__x__delimeter": "_"},
            "SINK_TRANSFORMS__X__DELIMETER: not an option of this transform",
        ),
        ({"transforms__y__type": "filter"}, "SINK_TRANSFORMS__Y__TYPE: transform 'y' is not listed"),
        (
            {"transforms": "x", "transforms__x__type": "filter", "transforms__x__predicate": "p"},
            "SINK_TRANSFORMS__X__PREDICATE: no predicate 'p'",
        ),
        (
            {
                "transforms": "x",
                "transforms__x__type": "cast",
                "transforms__x__spec": "int8",
                "predicates__p__type": "record_is_tombstone",
                "transforms__x__predicate": "p",
            },
            "SINK_TRANSFORMS__X__PREDICATE: only filter",
        ),
        (
            {"transforms": "x", "transforms__x__type": "filter", "predicates__p__type": "topic_name_matches"},
            "SINK_PREDICATES__P__PATTERN: required",
        ),
        (
            {"transforms": "x", "transforms__x__type": "timestamp_converter", "transforms__x__target_type": "epoch"},
            "SINK_TRANSFORMS__X__TARGET_TYPE: one of",
        ),
        ({"transforms": "x", "transforms__x__type": "insert_field"}, "SINK_TRANSFORMS__X__TOPIC_FIELD: give at least"),
        (
            {"transforms": "x", "transforms__x__type": "filter", "transforms__x__negate": "yes"},
            "SINK_TRANSFORMS__X__NEGATE: true or false",
        ),
        ({"transforms": "x", "transforms__x": "filter"}, "SINK_TRANSFORMS__X: give each option as"),
    ],
)
def test_bad_transform_configuration_names_the_variable(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError) as error:
        settings(**env)
    assert str(error.value).startswith(message), str(error.value)
    assert "\n" not in str(error.value)
