"""Header transforms (HeaderFrom, InsertHeader, DropHeaders) carried through the chain, naming
transforms (table_name_case, column_name_case), Connect's `$Key` variants, routing by a field's
value (field_router) and the field condition predicate (field_value_matches)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from sink.errors import ConfigError, MappingError
from sink.formats.connect_json import ConnectJsonDecoder
from sink.formats.json_plain import JsonDecoder
from sink.formats.string import StringDecoder
from sink.model import ColumnType, Coord, Kind, Outcome, RawRecord, Row, Stage, Status
from sink.pipeline import Preparer
from sink.smt import snake_case
from sink.transforms import RowMapper
from tests.unit.test_smt import INT64, PAYLOAD, STRING, TS, cols, envelope, mapper, settings


def prepare(
    m: RowMapper,
    value: Any,
    *,
    key: bytes | None = b"k",
    json_key: bool = False,
    topic: str = "shop.orders",
    headers: tuple = (),
    connect: bool = False,
) -> Row | Outcome:
    key_decoder = JsonDecoder() if json_key else StringDecoder()
    decoder = ConnectJsonDecoder() if connect else JsonDecoder()
    data = None if value is None else json.dumps(value).encode()
    raw = RawRecord(Coord(topic, 1, 42), key, data, headers, TS)
    return Preparer(key_decoder, decoder, m).prepare(raw)


def row(*args: Any, **kwargs: Any) -> Row:
    result = prepare(*args, **kwargs)
    assert isinstance(result, Row), result
    return result


# ------------------------------------------------------------------------------ headers


def test_header_from_copy_and_move_with_a_schema() -> None:
    copy = mapper({"h": {"type": "header_from", "fields": "name", "headers": "who", "operation": "copy"}})
    r = row(copy, envelope(PAYLOAD), connect=True, headers=(("x", b"1"),))
    assert "name" in r.spec.column_names and r.values["name"] == "Ann"
    assert r.raw.headers == (("x", b"1"),)  # the row keeps the record as it was read (DLQ, reports)
    move = mapper(
        {"h": {"type": "header_from", "fields": "name,id", "headers": "who,ident", "operation": "move"}},
        pk_mode="record_header",
        pk_fields=("who",),
    )
    first = row(move, envelope(PAYLOAD), connect=True)
    second = row(move, envelope({**PAYLOAD, "name": "Bo"}), connect=True)
    assert dict(first.key) == {"who": "Ann"} and dict(second.key) == {"who": "Bo"}
    assert "id" not in first.spec.column_names
    assert second.spec is first.spec


def test_header_from_schemaless_values_become_text() -> None:
    m = mapper(
        {"h": {"type": "header_from", "fields": "n,flag,obj", "headers": "n,flag,obj", "operation": "move"}},
        pk_mode="record_header",
        pk_fields=("n", "flag", "obj"),
    )
    r = row(m, {"id": 1, "n": 5, "flag": True, "obj": {"a": 1}})
    assert dict(r.key) == {"n": "5", "flag": "true", "obj": '{"a":1}'}
    assert set(dict(r.values)) == {"id", "n", "flag", "obj"}  # the key columns, and id


def test_insert_header_then_a_predicate_sees_it() -> None:
    spec = {
        "mark": {"type": "insert_header", "header": "seen", "value_literal": "yes", "predicate": "big"},
        "drop": {"type": "filter", "predicate": "marked"},
    }
    predicates = {
        "big": {"type": "field_value_matches", "field": "qty", "pattern": "[0-9]{3,}"},
        "marked": {"type": "has_header_key", "name": "seen"},
    }
    m = mapper(spec, predicates)
    assert row(m, {"id": 1, "qty": 5}).values["qty"] == 5
    dropped = prepare(m, {"id": 3, "qty": 500})
    assert isinstance(dropped, Outcome) and dropped.status is Status.SKIPPED


def test_drop_headers_hides_them_from_later_steps() -> None:
    spec = {"strip": {"type": "drop_headers", "headers": "replay,other"}, "drop": {"type": "filter", "predicate": "r"}}
    m = mapper(spec, {"r": {"type": "has_header_key", "name": "replay"}})
    kept = row(m, {"id": 1}, headers=(("replay", b"1"), ("keep", b"2")))
    assert kept.raw.headers == (("replay", b"1"), ("keep", b"2"))  # the record as read
    header_keyed = mapper(
        {"strip": {"type": "drop_headers", "headers": "replay"}}, pk_mode="record_header", pk_fields=("replay",)
    )
    with pytest.raises(MappingError, match="header 'replay' is missing"):
        prepare(header_keyed, {"id": 1}, headers=(("replay", b"1"),))


# ------------------------------------------------------------------------------ naming


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("firstName", "first_name"),
        ("HTTPServer", "http_server"),
        ("Order Lines", "order_lines"),
        ("__op", "__op"),
        ("already_snake", "already_snake"),
        ("userID2", "user_id2"),
    ],
)
def test_snake_case(name: str, expected: str) -> None:
    assert snake_case(name) == expected


def test_table_name_case_applies_to_the_derived_name() -> None:
    m = mapper({"t": {"type": "table_name_case", "case": "snake_case", "prefix": "raw_", "suffix": "_v1"}})
    assert row(m, {"id": 1}, topic="ShopOrders").table == "raw_shop_orders_v1"
    upper = mapper({"t": {"type": "table_name_case", "case": "upper"}}, table_name_format="k_${topic}")
    assert row(upper, {"id": 1}, topic="orders").table == "K_ORDERS"


def test_column_name_case_renames_value_and_key_columns_once_per_schema() -> None:
    m = mapper({"c": {"type": "column_name_case", "case": "upper", "prefix": "c_"}})
    first = row(m, envelope(PAYLOAD), connect=True)
    assert [c[0] for c in cols(first)] == ["c_ID", "c_NAME", "c_QTY", "c_SECRET", "c_AT", "c_ADDRESS"]
    assert cols(first)[0] == ("c_ID", INT64, False) and cols(first)[1] == ("c_NAME", STRING, True)
    second = row(m, envelope({**PAYLOAD, "id": 9}), connect=True)
    assert second.spec is first.spec and second.values["c_ID"] == 9
    keyed = mapper({"c": {"type": "column_name_case", "case": "snake_case"}}, pk_mode="record_key")
    r = row(keyed, {"orderId": 4, "unitPrice": 2}, key=b'{"orderId": 4}', json_key=True)
    assert dict(r.key) == {"order_id": 4} and set(r.values) == {"order_id", "unit_price"}


def test_column_name_case_that_merges_two_fields_is_a_record_error() -> None:
    m = mapper({"c": {"type": "column_name_case", "case": "lower"}})
    schema_payload = envelope(PAYLOAD)
    schema_payload["schema"] = {**schema_payload["schema"]}
    schema_payload["schema"]["fields"] = [*schema_payload["schema"]["fields"], {"field": "ID", "type": "int32"}]
    with pytest.raises(MappingError, match="two fields get one name") as error:
        prepare(m, {**schema_payload, "payload": {**PAYLOAD, "ID": 1}}, connect=True)
    assert error.value.stage is Stage.TRANSFORMATION


# ------------------------------------------------------------------------------ $Key variants


def test_key_variants_work_on_the_key() -> None:
    spec = {
        "hoist": {"type": "hoist_field_key", "field": "order_key"},
        "cast": {"type": "cast_key", "spec": "order_key:int64"},
        "rename": {"type": "replace_field_key", "renames": "order_key:id"},
    }
    m = mapper(spec, pk_mode="record_key")
    r = row(m, {"id": 3, "name": "x"}, key=b"3")
    assert dict(r.key) == {"id": 3}
    assert r.spec.column("id").type == ColumnType(Kind.INT64)


def test_extract_flatten_and_mask_on_the_key() -> None:
    m = mapper(
        {"x": {"type": "extract_field_key", "field": "inner"}, "f": {"type": "flatten_key", "delimiter": "_"}},
        pk_mode="record_key",
    )
    r = row(m, {"v": 1}, key=b'{"inner": {"a": {"b": 2}, "c": 3}}', json_key=True)
    assert dict(r.key) == {"a_b": 2, "c": 3}
    masked = mapper({"m": {"type": "mask_field_key", "fields": "pin"}}, pk_mode="record_key", pk_fields=("id",))
    r = row(masked, {"v": 1}, key=b'{"id": 5, "pin": "1234"}', json_key=True)
    assert dict(r.key) == {"id": 5}


def test_a_key_variant_on_a_wrong_key_is_a_transformation_error() -> None:
    m = mapper({"x": {"type": "replace_field_key", "exclude": "a"}}, pk_mode="record_key")
    with pytest.raises(MappingError, match="replace_field_key") as error:
        prepare(m, {"id": 1}, key=b"plain")
    assert error.value.stage is Stage.TRANSFORMATION


# ------------------------------------------------------------------------------ field_router


def test_field_router_names_the_table_from_a_value() -> None:
    m = mapper({"r": {"type": "field_router", "field": "kind", "topic_format": "${topic}_${field}"}})
    assert row(m, {"id": 1, "kind": "refund"}, topic="pay").table == "pay_refund"
    assert row(m, {"id": 2, "kind": 7}, topic="pay").table == "pay_7"
    with pytest.raises(MappingError, match="field 'kind' is missing") as error:
        prepare(m, {"id": 3}, topic="pay")
    assert error.value.stage is Stage.TRANSFORMATION


def test_field_value_matches_with_negate() -> None:
    spec = {"keep_eu": {"type": "filter", "predicate": "eu", "negate": "true"}}
    m = mapper(spec, {"eu": {"type": "field_value_matches", "field": "region", "pattern": "eu-.*"}})
    assert row(m, {"id": 1, "region": "eu-west"}).values["region"] == "eu-west"
    for value in ({"id": 2, "region": "us-east"}, {"id": 3}):
        out = prepare(m, value)
        assert isinstance(out, Outcome) and out.status is Status.SKIPPED


# ------------------------------------------------------------------------------ start-up errors


@pytest.mark.parametrize(
    ("env", "message"),
    [
        (
            {
                "transforms": "h",
                "transforms__h__type": "header_from",
                "transforms__h__fields": "a,b",
                "transforms__h__headers": "a",
                "transforms__h__operation": "copy",
            },
            "SINK_TRANSFORMS__H__HEADERS: give one header name per field",
        ),
        (
            {
                "transforms": "h",
                "transforms__h__type": "header_from",
                "transforms__h__fields": "a",
                "transforms__h__headers": "a",
                "transforms__h__operation": "steal",
            },
            "SINK_TRANSFORMS__H__OPERATION: copy or move",
        ),
        (
            {"transforms": "h", "transforms__h__type": "insert_header", "transforms__h__header": "a"},
            "SINK_TRANSFORMS__H__VALUE_LITERAL: required",
        ),
        ({"transforms": "h", "transforms__h__type": "drop_headers"}, "SINK_TRANSFORMS__H__HEADERS: required"),
        ({"transforms": "n", "transforms__n__type": "table_name_case"}, "SINK_TRANSFORMS__N__CASE: give at least"),
        (
            {"transforms": "n", "transforms__n__type": "column_name_case", "transforms__n__case": "camel"},
            "SINK_TRANSFORMS__N__CASE: one of snake_case, lower, upper",
        ),
        ({"transforms": "r", "transforms__r__type": "field_router"}, "SINK_TRANSFORMS__R__FIELD: required"),
        (
            {"transforms": "k", "transforms__k__type": "cast_key", "transforms__k__spec": "a:money"},
            "SINK_TRANSFORMS__K__SPEC: unknown type",
        ),
        ({"transforms": "k", "transforms__k__type": "value_to_key_key"}, "SINK_TRANSFORMS__K__TYPE: unknown type"),
        (
            {
                "transforms": "x",
                "transforms__x__type": "filter",
                "transforms__x__predicate": "p",
                "predicates__p__type": "field_value_matches",
                "predicates__p__field": "a",
            },
            "SINK_PREDICATES__P__PATTERN: required",
        ),
        (
            {
                "transforms": "x",
                "transforms__x__type": "column_name_case",
                "transforms__x__case": "lower",
                "transforms__x__predicate": "p",
                "predicates__p__type": "record_is_tombstone",
            },
            "SINK_TRANSFORMS__X__PREDICATE: only filter, ",
        ),
    ],
)
def test_bad_configuration_names_the_variable(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError) as error:
        settings(**env)
    assert str(error.value).startswith(message), str(error.value)
    assert "\n" not in str(error.value)


def test_header_and_naming_blocks_from_env_reach_the_chain() -> None:
    s = settings(
        transforms="h,n",
        transforms__h__type="insert_header",
        transforms__h__header="src",
        transforms__h__value_literal="x",
        transforms__n__type="table_name_case",
        transforms__n__case="upper",
    )
    assert repr(s.transforms) == "Chain(h=insert_header, n=table_name_case)"
    assert s.transforms.table_namer("a_b") == "A_B"
