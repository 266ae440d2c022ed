"""Where the SMTs must behave as Kafka Connect's do (org.apache.kafka.connect.transforms, as in
apache/kafka's source and the Confluent SMT reference): value conversions that would otherwise
silently differ, renames that would silently lose a field, Java regex replacement syntax."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest

from sink.errors import ConfigError, MappingError
from sink.formats.connect_json import ConnectJsonDecoder
from sink.formats.json_plain import JsonDecoder
from sink.formats.string import StringDecoder
from sink.model import Coord, Outcome, RawRecord, Row, Stage
from sink.pipeline import Preparer
from sink.smt import build_chain, java_replacement
from sink.transforms import MappingRules, RowMapper

TS = 1_700_000_000_123  # 2023-11-14T22:13:20.123Z


def mapper(spec: dict[str, dict[str, str]]) -> RowMapper:
    return RowMapper(MappingRules(transforms=build_chain(tuple(spec), spec, {})))


def prepare(m: RowMapper, value: Any, *, connect: bool = False, topic: str = "shop.orders") -> Row | Outcome:
    decoder = ConnectJsonDecoder() if connect else JsonDecoder()
    data = None if value is None else json.dumps(value).encode()
    return Preparer(StringDecoder(), decoder, m).prepare(RawRecord(Coord(topic, 1, 42), b"k", data, (), TS))


def row(m: RowMapper, value: Any, **kwargs: Any) -> Row:
    result = prepare(m, value, **kwargs)
    assert isinstance(result, Row), result
    return result


def field(fname: str, type_: str, **extra: Any) -> dict[str, Any]:
    return {"field": fname, "type": type_, "optional": True, **extra}


def envelope(fields: list[dict[str, Any]], payload: dict[str, Any]) -> dict[str, Any]:
    return {"schema": {"type": "struct", "optional": False, "fields": fields}, "payload": payload}


# ------------------------------------------------------------------------------ Cast


@pytest.mark.parametrize(("number", "expected"), [(0.5, False), (-0.9, False), (1.5, True), (-1.0, True), (0, False)])
def test_cast_number_to_boolean_is_its_long_value_not_zero(number: float, expected: bool) -> None:
    # Cast.castToBoolean: `((Number) value).longValue() != 0L` (apache/kafka Cast.java): 0.5 -> false.
    r = row(mapper({"c": {"type": "cast", "spec": "a:boolean"}}), {"a": number})
    assert r.values["a"] is expected


def test_cast_float_to_int_truncates_toward_zero() -> None:
    # Cast.castToInt32: `((Number) value).intValue()`: Java's narrowing truncates, never rounds.
    r = row(mapper({"c": {"type": "cast", "spec": "a:int32,b:int64"}}), {"a": 2.9, "b": -2.9})
    assert (r.values["a"], r.values["b"]) == (2, -2)


def test_cast_string_to_boolean_is_parse_boolean() -> None:
    # Boolean.parseBoolean: "true" in any case is true, everything else ("1", "yes") false.
    r = row(
        mapper({"c": {"type": "cast", "spec": "a:boolean,b:boolean,c:boolean"}}), {"a": "True", "b": "1", "c": "yes"}
    )
    assert (r.values["a"], r.values["b"], r.values["c"]) == (True, False, False)


def test_cast_string_with_a_fraction_to_int_is_a_record_error() -> None:
    # Integer.parseInt("1.5") throws NumberFormatException -> DataException: the record fails.
    with pytest.raises(MappingError, match="cast"):
        prepare(mapper({"c": {"type": "cast", "spec": "a:int32"}}), {"a": "1.5"})


LOGICAL = [
    field("at", "int64", name="org.apache.kafka.connect.data.Timestamp"),
    field("day", "int32", name="org.apache.kafka.connect.data.Date"),
    field("clock", "int32", name="org.apache.kafka.connect.data.Time"),
]


def test_cast_connect_logical_times_to_numbers_as_connect_encodes_them() -> None:
    # Cast.castValueToType encodes Date/Time/Timestamp to their internal form before a numeric cast
    # (encodeLogicalType): Timestamp -> epoch millis, Date -> days since epoch, Time -> millis of day.
    r = row(
        mapper({"c": {"type": "cast", "spec": "at:int64,day:int32,clock:int32"}}),
        envelope(LOGICAL, {"at": TS, "day": 19675, "clock": 80_000_123}),
        connect=True,
    )
    assert (r.values["at"], r.values["day"], r.values["clock"]) == (TS, 19675, 80_000_123)


# ------------------------------------------------------------------------------ TimestampConverter


def test_timestamp_converter_nanoseconds_are_not_rounded_up() -> None:
    # unix.precision=nanoseconds: Connect truncates (TimeUnit.NANOSECONDS.toMillis); a float product
    # here made ...123456789 ns .123457 s (rounded up, and near midnight into the next day).
    m = mapper(
        {
            "t": {
                "type": "timestamp_converter",
                "field": "t",
                "target_type": "Timestamp",
                "unix_precision": "nanoseconds",
            }
        }
    )
    assert row(m, {"t": 1_700_000_000_123_456_789}).values["t"] == dt.datetime(
        2023, 11, 14, 22, 13, 20, 123456, tzinfo=dt.UTC
    )
    m = mapper(
        {"t": {"type": "timestamp_converter", "field": "t", "target_type": "Date", "unix_precision": "nanoseconds"}}
    )
    assert row(m, {"t": 86_399_999_999_500}).values["t"] == dt.date(1970, 1, 1)


def test_timestamp_converter_formats_in_utc() -> None:
    # TimestampConverter.configure: `format.setTimeZone(UTC)`: the string is the instant's UTC wall
    # time, whatever offset the input carried (here a Debezium ZonedTimestamp at +02:00).
    m = mapper(
        {"t": {"type": "timestamp_converter", "field": "at", "target_type": "string", "format": "yyyy-MM-dd HH:mm"}}
    )
    r = row(
        m,
        envelope([field("at", "string", name="io.debezium.time.ZonedTimestamp")], {"at": "2024-01-01T01:30:00+02:00"}),
        connect=True,
    )
    assert r.values["at"] == "2023-12-31 23:30"


def test_timestamp_converter_the_usual_connect_pattern_both_ways() -> None:
    # The pattern most Connect configs use, with a quoted literal Z (parsed as UTC, as Connect's
    # SimpleDateFormat with setTimeZone(UTC) does).
    pattern = "yyyy-MM-dd'T'HH:mm:ss.SSS'Z'"
    to_unix = mapper({"t": {"type": "timestamp_converter", "field": "t", "target_type": "unix", "format": pattern}})
    assert row(to_unix, {"t": "2023-11-14T22:13:20.123Z"}).values["t"] == TS
    to_text = mapper({"t": {"type": "timestamp_converter", "field": "t", "target_type": "string", "format": pattern}})
    assert row(to_text, {"t": TS}).values["t"] == "2023-11-14T22:13:20.123Z"


def test_timestamp_converter_passes_a_missing_or_null_field_and_tombstones() -> None:
    # applySchemaless / applyValueWithSchema: a null value or field stays null.
    m = mapper({"t": {"type": "timestamp_converter", "field": "t", "target_type": "unix"}})
    assert row(m, {"t": None, "a": 1}).values["t"] is None
    assert row(m, {"a": 1}).values == {"a": 1}
    tombstone = prepare(m, None)
    assert isinstance(tombstone, Outcome) and tombstone.error is None


# ------------------------------------------------------------------------------ ReplaceField / Flatten


def test_replace_field_rename_onto_a_kept_field_is_a_record_error() -> None:
    # With a schema Connect builds the new struct with SchemaBuilder.field, which throws "Cannot create
    # field because of field name duplication": the record fails rather than a field silently vanishing
    # (here `a` renamed to `b` lost `a`'s value and left two columns named b).
    m = mapper({"r": {"type": "replace_field", "renames": "a:b"}})
    with pytest.raises(MappingError, match="'b'") as error:
        prepare(m, envelope([field("a", "int32"), field("b", "string")], {"a": 1, "b": "x"}), connect=True)
    assert error.value.stage is Stage.TRANSFORMATION


def test_replace_field_rename_onto_an_excluded_field_is_fine() -> None:
    m = mapper({"r": {"type": "replace_field", "exclude": "b", "renames": "a:b"}})
    r = row(m, envelope([field("a", "int32"), field("b", "string")], {"a": 1, "b": "x"}), connect=True)
    assert dict(r.values) == {"b": 1} and [c.name for c in r.spec.columns] == ["b"]


def test_replace_field_swap_is_fine() -> None:
    m = mapper({"r": {"type": "replace_field", "renames": "a:b,b:a"}})
    r = row(m, envelope([field("a", "int32"), field("b", "string")], {"a": 1, "b": "x"}), connect=True)
    assert dict(r.values) == {"b": 1, "a": "x"}


def test_flatten_onto_an_existing_field_name_is_a_record_error() -> None:
    # Flatten.buildUpdatedSchema adds each flattened field with SchemaBuilder.field: `a_b` next to
    # `a`.`b` flattened with delimiter `_` is a duplicate, the record's error (not a lost value).
    fields = [
        field("a_b", "int32"),
        {"field": "a", "type": "struct", "optional": True, "fields": [field("b", "string")]},
    ]
    m = mapper({"f": {"type": "flatten", "delimiter": "_"}})
    with pytest.raises(MappingError, match="a_b"):
        prepare(m, envelope(fields, {"a_b": 1, "a": {"b": "x"}}), connect=True)


def test_flatten_a_null_nested_struct_gives_null_leaves() -> None:
    fields = [
        field("id", "int32"),
        {"field": "a", "type": "struct", "optional": True, "fields": [field("b", "string")]},
    ]
    r = row(mapper({"f": {"type": "flatten"}}), envelope(fields, {"id": 1, "a": None}), connect=True)
    assert dict(r.values) == {"id": 1, "a.b": None}


# ------------------------------------------------------------------------------ MaskField


@pytest.mark.parametrize("value", [True, [1, 2], {"x": 1}])
def test_mask_field_replacement_on_a_non_number_non_string_is_a_record_error(value: Any) -> None:
    # MaskField.maskWithCustomReplacement: only numbers and strings take `replacement`; any other
    # type throws DataException. Here a boolean became True (bool("***")) and a list ['*', '*', '*'].
    m = mapper({"m": {"type": "mask_field", "fields": "a", "replacement": "***"}})
    with pytest.raises(MappingError, match="mask_field"):
        prepare(m, {"a": value})


def test_mask_field_replacement_on_numbers_and_strings_schemaless() -> None:
    m = mapper({"m": {"type": "mask_field", "fields": "i,f,s", "replacement": "7"}})
    assert dict(row(m, {"i": 5, "f": 2.5, "s": "secret"}).values) == {"i": 7, "f": 7.0, "s": "7"}


# ------------------------------------------------------------------------------ RegexRouter


def test_java_replacement_takes_only_the_digits_that_name_an_existing_group() -> None:
    # java.util.regex.Matcher.appendReplacement: "The first number after the $ is always treated as
    # part of the group reference. Subsequent numbers are incorporated into g if they would form a
    # legal group reference." So with one group `$12024` is group 1 then "2024".
    m = mapper({"r": {"type": "regex_router", "regex": "shop\\.(.*)", "replacement": "$12024"}})
    assert row(m, {"a": 1}).table == "orders2024"
    assert java_replacement("$12x", groups=12) == "\\g<12>x"


def test_java_replacement_unclosed_named_group_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="REPLACEMENT"):
        mapper({"r": {"type": "regex_router", "regex": "(?P<n>.*)", "replacement": "${n"}})


def test_regex_router_needs_a_whole_match() -> None:
    # RegexRouter: `regex.matcher(topic).matches()`: a partial match leaves the topic as it is.
    m = mapper({"r": {"type": "regex_router", "regex": "orders", "replacement": "x"}})
    assert row(m, {"a": 1}).table == "shop.orders"


@pytest.mark.parametrize("value", [{"x": 1}, [1, 2]])
def test_cast_of_a_map_or_array_to_string_is_a_record_error(value: Any) -> None:
    # Cast.SUPPORTED_CAST_INPUT_TYPES: INT8..FLOAT64, BOOLEAN, STRING, BYTES: a Map/Array/Struct is a
    # DataException. Here it became Python's repr "{'x': 1}", which is neither JSON nor Connect's.
    with pytest.raises(MappingError, match="cast"):
        prepare(mapper({"c": {"type": "cast", "spec": "a:string"}}), {"a": value})
