"""Review of the SMTs against Kafka Connect's own (apache/kafka connect/transforms, Values.java):
where a Connect user's configuration would give other rows here, or lose a value silently."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest

from sink.errors import MappingError
from sink.formats.connect_json import ConnectJsonDecoder
from sink.formats.json_plain import JsonDecoder
from sink.formats.string import StringDecoder
from sink.model import Coord, Outcome, RawRecord, Row, Stage
from sink.pipeline import Preparer
from sink.smt import build_chain, java_date_format
from sink.transforms import MappingRules, RowMapper

TS = 1_700_000_000_123  # 2023-11-14T22:13:20.123Z


def mapper(spec: dict[str, dict[str, str]]) -> RowMapper:
    return RowMapper(MappingRules(transforms=build_chain(tuple(spec), spec, {})))


def prepare(m: RowMapper, value: Any, *, connect: bool = False) -> Row | Outcome:
    decoder = ConnectJsonDecoder() if connect else JsonDecoder()
    data = None if value is None else json.dumps(value).encode()
    return Preparer(StringDecoder(), decoder, m).prepare(RawRecord(Coord("shop.orders", 1, 42), b"k", data, (), TS))


def row(m: RowMapper, value: Any, **kwargs: Any) -> Row:
    result = prepare(m, value, **kwargs)
    assert isinstance(result, Row), result
    return result


def field(fname: str, type_: str, **extra: Any) -> dict[str, Any]:
    return {"field": fname, "type": type_, "optional": True, **extra}


def envelope(fields: list[dict[str, Any]], payload: dict[str, Any]) -> dict[str, Any]:
    return {"schema": {"type": "struct", "optional": False, "fields": fields}, "payload": payload}


# ------------------------------------------------------------------------------ TimestampConverter


@pytest.mark.parametrize(
    ("pattern", "text", "expected"),
    [
        ("M/d/yyyy", "3/7/2024", dt.date(2024, 3, 7)),
        ("d.M.yyyy H:mm", "7.3.2024 9:05", dt.date(2024, 3, 7)),
        ("dd MMMM yyyy", "07 March 2024", dt.date(2024, 3, 7)),
        ("yyyy-MM-dd h:mm a", "2024-03-07 9:05 PM", dt.date(2024, 3, 7)),
        ("EEE, d MMM yyyy HH:mm:ss Z", "Thu, 7 Mar 2024 09:05:00 +0000", dt.date(2024, 3, 7)),
        ("yyyy-DDD", "2024-067", dt.date(2024, 3, 7)),
    ],
)
def test_timestamp_converter_parses_single_letter_simple_date_format_fields(
    pattern: str, text: str, expected: dt.date
) -> None:
    # SimpleDateFormat parses `M`, `d`, `H`, `h`, `m`, `s` (one letter: "the minimum number of digits",
    # longer numbers accepted) and `MMMM` (a full month name). Here every record failed: the letters
    # stayed literal in the strptime format ("M/d/%Y"), so all of a topic's records were dead-lettered.
    m = mapper({"t": {"type": "timestamp_converter", "field": "t", "target_type": "Date", "format": pattern}})
    assert row(m, {"t": text}).values["t"] == expected


def test_timestamp_converter_single_letter_hours_and_minutes_keep_their_values() -> None:
    m = mapper(
        {"t": {"type": "timestamp_converter", "field": "t", "target_type": "Timestamp", "format": "d/M/yyyy H:m:s"}}
    )
    assert row(m, {"t": "7/3/2024 9:5:7"}).values["t"] == dt.datetime(2024, 3, 7, 9, 5, 7, tzinfo=dt.UTC)


@pytest.mark.parametrize(("pattern", "expected"), [("ss.S", "20.123"), ("ss.SS", "20.123"), ("ss.SSS", "20.123")])
def test_simple_date_format_s_is_the_whole_millisecond_count(pattern: str, expected: str) -> None:
    # SimpleDateFormat `S` is the millisecond (a number: the count of letters is the minimum number of
    # digits, never a truncation): `ss.S` of .123 s is "20.123". Here it was "20.1" (.123 cut to .1).
    when = dt.datetime(2023, 11, 14, 22, 13, 20, 123000, tzinfo=dt.UTC)
    assert java_date_format(pattern)(when) == expected
    assert java_date_format("ss.SS")(when.replace(microsecond=5000)) == "20.05"


# ------------------------------------------------------------------------------ InsertField


def test_insert_field_onto_an_existing_field_with_a_schema_is_a_record_error() -> None:
    # InsertField.makeUpdatedSchema copies every field, then SchemaBuilder.field(topicField.name, ...)
    # throws "Cannot create field because of field name duplication": the record fails (DLQ). Here the
    # record's own `topic` value was silently replaced by the Kafka topic name.
    m = mapper({"i": {"type": "insert_field", "topic_field": "topic"}})
    with pytest.raises(MappingError, match="'topic'") as error:
        prepare(m, envelope([field("id", "int32"), field("topic", "string")], {"id": 1, "topic": "mine"}), connect=True)
    assert error.value.stage is Stage.TRANSFORMATION


def test_insert_field_schemaless_still_overwrites_as_connect_does() -> None:
    # applySchemaless: `updatedValue.put(topicField.name, record.topic())` on a HashMap copy: overwritten.
    m = mapper({"i": {"type": "insert_field", "topic_field": "topic"}})
    assert dict(row(m, {"id": 1, "topic": "mine"}).values) == {"id": 1, "topic": "shop.orders"}


# ------------------------------------------------------------------------------ Cast


def test_cast_connect_temporal_values_to_string_as_connect_writes_them() -> None:
    # Cast.castToString: a java.util.Date is `Values.dateFormatFor(value).format(value)`: ISO 8601 as
    # "yyyy-MM-dd'T'HH:mm:ss.SSS'Z'", "yyyy-MM-dd" and "HH:mm:ss.SSS'Z'". Here Python's isoformat gave
    # "2023-11-14T22:13:20.123000+00:00" and "22:13:20.123000".
    fields = [
        field("at", "int64", name="org.apache.kafka.connect.data.Timestamp"),
        field("day", "int32", name="org.apache.kafka.connect.data.Date"),
        field("clock", "int32", name="org.apache.kafka.connect.data.Time"),
    ]
    m = mapper({"c": {"type": "cast", "spec": "at:string,day:string,clock:string"}})
    r = row(m, envelope(fields, {"at": TS, "day": 19675, "clock": 80_000_123}), connect=True)
    assert (r.values["at"], r.values["day"], r.values["clock"]) == (
        "2023-11-14T22:13:20.123Z",
        "2023-11-14",
        "22:13:20.123Z",
    )


# ------------------------------------------------------------------------------ ReplaceField


@pytest.mark.parametrize(
    ("option", "expected"), [("whitelist", {"a": 1}), ("blacklist", {"b": 2})], ids=["whitelist", "blacklist"]
)
def test_replace_field_takes_connects_deprecated_names(option: str, expected: dict[str, int]) -> None:
    # KAFKA-10573 (KIP-629): ReplaceField's `blacklist` / `whitelist` became `exclude` / `include`;
    # "The old configurations are still allowed (ensuring backward compatibility)". Here a Connect
    # config with `whitelist` exited 2 with "SINK_TRANSFORMS__R__INCLUDE: give at least one of ...".
    m = mapper({"r": {"type": "replace_field", option: "a"}})
    assert dict(row(m, {"a": 1, "b": 2}).values) == expected


def test_replace_field_new_names_win_over_the_deprecated_ones() -> None:
    # ConfigUtils.translateDeprecatedConfigs: when both are given the new name's value is used.
    m = mapper({"r": {"type": "replace_field", "include": "a", "whitelist": "b"}})
    assert dict(row(m, {"a": 1, "b": 2}).values) == {"a": 1}


# ------------------------------------------------------------------------------ RegexRouter / predicates


def test_regex_router_takes_javas_named_groups() -> None:
    # RegexRouter compiles `regex` with java.util.regex.Pattern, whose named group is `(?<name>X)`,
    # and the replacement refers to it as `${name}` (Matcher.appendReplacement). Here the Java form
    # was refused at start-up ("unknown extension ?<d"): only Python's `(?P<name>X)` was read.
    m = mapper({"r": {"type": "regex_router", "regex": r"(?<db>[^.]+)\.(?<table>.*)", "replacement": "${table}_${db}"}})
    assert row(m, {"a": 1}).table == "orders_shop"


def test_java_named_groups_leave_lookbehinds_alone() -> None:
    m = mapper({"r": {"type": "regex_router", "regex": r"(?<=x)?shop\.(?<!y)(.*)", "replacement": "$1"}})
    assert row(m, {"a": 1}).table == "orders"
