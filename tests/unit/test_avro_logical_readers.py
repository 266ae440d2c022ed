"""Issue 7: fastavro is told to leave the timestamp, date and uuid logical types raw (`READERS`), and
the Avro decoder's converter makes their values instead. Every test compares the decoder with the
same decoder whose READERS are empty, which is the decoder before the change (fastavro's own logical
readers): the same values, of the same types and time zones, and the same DecodeError text for the
values fastavro refuses, wherever the logical type sits.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from typing import Any
from unittest import mock

import fastavro
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from benchmarks import avro_data
from sink.errors import DecodeError
from sink.formats import avro
from sink.formats.avro import AvroDecoder
from tests.support.fakes import FakeRegistry
from tests.support.wire import avro_bytes, header, record

UTC = dt.UTC
LONG_MIN, LONG_MAX = -(2**63), 2**63 - 1
INT_MIN, INT_MAX = -(2**31), 2**31 - 1
TIMESTAMPS = ("timestamp-millis", "timestamp-micros", "local-timestamp-millis", "local-timestamp-micros")
DAY_US = 86_400_000_000


def _logical(base: str, logical_type: str) -> dict[str, Any]:
    return {"type": base, "logicalType": logical_type}


@contextmanager
def _fastavro_converts() -> Iterator[None]:
    """The decoder as it was: no logical type left to the converter."""
    with mock.patch.dict(avro.READERS, clear=True):
        yield


class Pair:
    """The decoder and the reference decoder (fastavro converting) over the same registry."""

    def __init__(self, schemas: dict[int, Any], references: dict[tuple[str, int], Any] | None = None) -> None:
        def registry() -> FakeRegistry:
            return FakeRegistry(
                {i: ("AVRO", json.dumps(s), refs) for i, (s, refs) in schemas.items()},
                references={k: ("AVRO", json.dumps(s), []) for k, s in (references or {}).items()},
            )

        self.decoder = AvroDecoder(registry())
        self.reference = AvroDecoder(registry())

    def outcome(self, data: bytes, reference: bool = False) -> tuple[str, Any]:
        decoder = self.reference if reference else self.decoder
        try:
            with _fastavro_converts() if reference else nullcontext():
                payload = decoder.decode(data)
        except DecodeError as exc:
            return "error", str(exc)
        return "value", (payload.data, payload.shape, payload.schema_id)

    def same(self, data: bytes) -> tuple[str, Any]:
        """The outcome, after checking it is the reference decoder's, down to types and time zones."""
        new, old = self.outcome(data), self.outcome(data, reference=True)
        assert not _marked(self.reference, data[1:5]), "the reference leaves every conversion to fastavro"
        assert new == old
        assert _exact(new[1]) == _exact(old[1])
        return new

    def marked(self, schema_id: int = 1) -> bool:
        """Whether the decoder reads this schema with logical types left to its converter."""
        return _marked(self.decoder, schema_id.to_bytes(4, "big"))


def _marked(decoder: AvroDecoder, schema_id: bytes) -> bool:
    return avro.MARK in json.dumps(decoder._compiled[int.from_bytes(schema_id, "big")].parsed)


def _exact(value: Any) -> Any:
    """`value` with every leaf as (type, repr): a naive and an aware datetime are never equal."""
    if isinstance(value, dict):
        return {k: _exact(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_exact(v) for v in value]
    return type(value).__name__, repr(value)


def raw_bytes(schema: Any, value: Any) -> bytes:
    """`value` written with `schema` with its logical types dropped: any long, int or string."""
    plain = json.loads(json.dumps(schema).replace('"logicalType"', '"ignoredLogicalType"'))
    out = io.BytesIO()
    fastavro.schemaless_writer(out, fastavro.parse_schema(plain), value)
    return header(1) + out.getvalue()


def _edges_for(unit_us: int) -> list[int]:
    """Wire values at the ends of what datetime and timedelta take, for a timestamp in `unit_us`."""
    edges = [0, 1, -1, 999, -999, 1000, -1000, 1001, -1001, LONG_MIN, LONG_MAX, 2**62, -(2**62)]
    max_us = (dt.datetime.max - dt.datetime(1970, 1, 1)) // dt.timedelta(microseconds=1)
    min_us = (dt.datetime.min - dt.datetime(1970, 1, 1)) // dt.timedelta(microseconds=1)
    for us in (max_us, min_us, 999_999_999 * DAY_US, 10**9 * DAY_US, INT_MAX * DAY_US, (INT_MAX + 1) * DAY_US):
        for sign in (1, -1):
            for wire in (sign * us // unit_us + d for d in (-1, 0, 1)):
                if LONG_MIN <= wire <= LONG_MAX:
                    edges.append(wire)
    return edges


DATE_EDGES = [0, 1, -1, -719_162, -719_163, -719_164, 2_932_896, 2_932_897, INT_MAX, INT_MIN]
UUID_EDGES = [
    "12345678-1234-5678-1234-567812345678",
    "{12345678-1234-5678-1234-567812345678}",
    "urn:uuid:12345678-1234-5678-1234-567812345678",
    "12345678123456781234567812345678",
    "12345678-1234-5678-1234-56781234567Z",
    "\uff112345678-1234-5678-1234-567812345678",
    "",
    "x",
]


def pair_schema(logical_type: str, base: str = "long") -> dict[str, Any]:
    """A record of the logical field followed by a string, so reading goes on after it."""
    return record({"name": "v", "type": _logical(base, logical_type)}, {"name": "s", "type": "string"})


def _single(logical_type: str, base: str) -> Pair:
    return Pair({1: (pair_schema(logical_type, base), [])})


@pytest.mark.parametrize("logical_type", TIMESTAMPS)
def test_timestamp_edges_decode_as_fastavro_does(logical_type: str) -> None:
    pair = _single(logical_type, "long")
    edges = _edges_for(1000 if "millis" in logical_type else 1)
    outcomes = {pair.same(raw_bytes(pair_schema(logical_type), {"v": v, "s": "after"}))[0] for v in edges}
    assert outcomes == {"value", "error"}, "the edges hold values and values out of range"
    assert pair.marked()


def test_out_of_range_timestamp_is_fastavros_decode_error() -> None:
    pair = _single("timestamp-millis", "long")
    kind, message = pair.same(raw_bytes(pair_schema("timestamp-millis"), {"v": 253_402_300_800_000, "s": ""}))
    assert (kind, message) == (
        "error",
        "Avro: body does not match writer schema id 1: OverflowError: date value out of range",
    )
    kind, message = pair.same(raw_bytes(pair_schema("timestamp-millis"), {"v": LONG_MAX, "s": ""}))
    assert kind == "error" and message.startswith("Avro: body does not match writer schema id 1: OverflowError")


def test_last_and_first_instants_keep_their_zone() -> None:
    pair = _single("timestamp-micros", "long")
    last = pair.same(raw_bytes(pair_schema("timestamp-micros"), {"v": 253_402_300_799_999_999, "s": ""}))
    assert last[1][0]["v"] == dt.datetime.max.replace(tzinfo=UTC)
    local = _single("local-timestamp-millis", "long")
    first = local.same(raw_bytes(pair_schema("local-timestamp-millis"), {"v": -62_135_596_800_000, "s": ""}))
    assert first[1][0]["v"] == dt.datetime.min and first[1][0]["v"].tzinfo is None


@settings(max_examples=150, deadline=None)
@given(
    logical_type=st.sampled_from(TIMESTAMPS),
    wire=st.one_of(st.integers(LONG_MIN, LONG_MAX), st.integers(-(2**56), 2**56), st.integers(-(2**45), 2**45)),
)
def test_any_timestamp_decodes_as_fastavro_does(logical_type: str, wire: int) -> None:
    _single(logical_type, "long").same(raw_bytes(pair_schema(logical_type), {"v": wire, "s": "after"}))


def test_date_edges_decode_as_fastavro_does() -> None:
    pair = _single("date", "int")
    outcomes = {pair.same(raw_bytes(pair_schema("date", "int"), {"v": v, "s": "after"}))[0] for v in DATE_EDGES}
    assert outcomes == {"value", "error"}
    assert pair.marked()


@settings(max_examples=100, deadline=None)
@given(st.integers(INT_MIN, INT_MAX))
def test_any_date_decodes_as_fastavro_does(wire: int) -> None:
    _single("date", "int").same(raw_bytes(pair_schema("date", "int"), {"v": wire, "s": "after"}))


@settings(max_examples=100, deadline=None)
@given(st.one_of(st.sampled_from(UUID_EDGES), st.uuids().map(str), st.text(max_size=40)))
def test_any_uuid_text_decodes_as_fastavro_does(text: str) -> None:
    _single("uuid", "string").same(raw_bytes(pair_schema("uuid", "string"), {"v": text, "s": "after"}))


def test_uuid_edges_decode_as_fastavro_does() -> None:
    pair = _single("uuid", "string")
    outcomes = {pair.same(raw_bytes(pair_schema("uuid", "string"), {"v": v, "s": ""}))[0] for v in UUID_EDGES}
    assert outcomes == {"value", "error"}
    assert pair.marked()


# ------------------------------------------------------------------------------ logical types inside other types

INNER = {
    "type": "record",
    "name": "Inner",
    "fields": [
        {"name": "at", "type": _logical("long", "timestamp-micros")},
        {"name": "day", "type": ["null", _logical("int", "date")], "default": None},
    ],
}
LINK = {
    "type": "record",
    "name": "Link",
    "fields": [
        {"name": "at", "type": _logical("long", "local-timestamp-millis")},
        {"name": "next", "type": ["null", "Link"], "default": None},
    ],
}
NESTED = record(
    {"name": "inner", "type": INNER},
    {"name": "again", "type": "test.Inner"},
    {"name": "millis", "type": {"type": "array", "items": _logical("long", "timestamp-millis")}},
    {"name": "locals", "type": {"type": "map", "values": _logical("long", "local-timestamp-micros")}},
    {"name": "ids", "type": {"type": "map", "values": _logical("string", "uuid")}},
    {"name": "days", "type": {"type": "array", "items": ["null", _logical("int", "date")]}},
    {"name": "opt", "type": ["null", _logical("long", "timestamp-millis")], "default": None},
    {"name": "last_null", "type": [_logical("long", "timestamp-millis"), "null"], "default": 5},
    {"name": "several", "type": ["null", "string", _logical("long", "timestamp-millis")], "default": None},
    {"name": "chain", "type": LINK},
    {
        "name": "connect",
        "type": {**_logical("long", "timestamp-millis"), "connect.name": "org.apache.kafka.connect.data.Timestamp"},
    },
    {"name": "connect_day", "type": {**_logical("int", "date"), "connect.name": "org.apache.kafka.connect.data.Date"}},
    {"name": "micro", "type": {"type": "long", "connect.name": "io.debezium.time.MicroTimestamp"}},
    {"name": "nanos", "type": _logical("long", "timestamp-nanos")},
    {"name": "when", "type": _logical("long", "timestamp-millis"), "default": 1000},
)
T0 = dt.datetime(2024, 2, 29, 12, 30, 15, 123456, tzinfo=UTC)
T0_US = 1_709_209_815_123_456  # T0
UID = uuid.UUID("12345678-1234-5678-1234-567812345678")
MAX_US, MIN_US = 253_402_300_799_999_999, -62_135_596_800_000_000


def _nested_wire(**changes: Any) -> dict[str, Any]:
    """A NESTED record as its wire values (longs, ints, strings), `changes` applied."""
    value = {
        "inner": {"at": T0_US, "day": 19_782},
        "again": {"at": T0_US - 30_000 * DAY_US, "day": None},
        "millis": [T0_US // 1000, -1],
        "locals": {"a": MIN_US, "b": MAX_US},
        "ids": {"x": str(UID)},
        "days": [-719_162, None, 2_932_896],
        "opt": T0_US // 1_000_000 * 1000,
        "last_null": None,
        "several": T0_US // 1000,
        "chain": {"at": 946_684_800_000, "next": {"at": 946_771_200_000, "next": None}},
        "connect": 0,
        "connect_day": 0,
        "micro": 1_700_000_000_000_001,
        "nanos": 1_700_000_000_000_000_001,
        "when": -1,
    }
    return {**value, **changes}


def test_logical_types_in_records_arrays_maps_and_unions_decode_as_fastavro_does() -> None:
    pair = Pair({1: (NESTED, [])})
    kind, (data, shape, _) = pair.same(raw_bytes(NESTED, _nested_wire()))
    assert kind == "value"
    assert pair.marked(), "the schema is read with its logical types left to the converter"
    assert data["inner"] == {"at": T0, "day": dt.date(2024, 2, 29)}
    assert data["again"]["at"].tzinfo is UTC and data["chain"]["next"]["at"] == dt.datetime(2000, 1, 2)
    assert data["millis"] == [T0.replace(microsecond=123000), dt.datetime(1969, 12, 31, 23, 59, 59, 999000, tzinfo=UTC)]
    assert data["locals"] == {"a": dt.datetime.min, "b": dt.datetime.max}
    assert data["ids"] == {"x": UID} and data["days"] == [dt.date.min, None, dt.date.max]
    assert data["opt"] == T0.replace(microsecond=0) and data["last_null"] is None
    assert data["several"] == T0.replace(microsecond=123000)
    assert data["connect"] == dt.datetime(1970, 1, 1, tzinfo=UTC) and data["connect_day"] == dt.date(1970, 1, 1)
    assert data["micro"] == dt.datetime(2023, 11, 14, 22, 13, 20, 1)
    assert data["nanos"] == dt.datetime(2023, 11, 14, 22, 13, 20, tzinfo=UTC)
    assert data["when"] == dt.datetime(1969, 12, 31, 23, 59, 59, 999000, tzinfo=UTC)
    assert next(c for c in shape if c.name == "when").default == dt.datetime(1970, 1, 1, 0, 0, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    "changes",
    [
        {"millis": [0, LONG_MAX]},
        {"locals": {"a": 0, "b": MAX_US + 1}},
        {"days": [None, 2_932_897]},
        {"opt": LONG_MIN},
        {"last_null": 253_402_300_800_000},
        {"chain": {"at": 0, "next": {"at": LONG_MAX, "next": None}}},
        {"again": {"at": MIN_US - 1, "day": None}},
        {"inner": {"at": 0, "day": INT_MAX}},
        {"connect_day": -719_163},
        {"connect": LONG_MAX},
        {"several": LONG_MAX},
        {"ids": {"x": "not a uuid"}},
        {"when": 10**9 * 86_400_000},
    ],
    ids=lambda c: next(iter(c)),
)
def test_a_refused_value_anywhere_is_fastavros_decode_error(changes: dict[str, Any]) -> None:
    """A value out of datetime's or date's range (or a bad uuid) nested anywhere: the reference's error."""
    kind, message = Pair({1: (NESTED, [])}).same(raw_bytes(NESTED, _nested_wire(**changes)))
    assert kind == "error"
    assert message.startswith("Avro: body does not match writer schema id 1: ")


def test_a_named_record_also_read_in_a_union_of_several_types_is_left_to_fastavro() -> None:
    """The converter cannot tell which branch of ["null", "string", Inner] was read: the schema is
    read with fastavro's conversions, everywhere."""
    schema = record({"name": "inner", "type": INNER}, {"name": "any", "type": ["null", "string", "test.Inner"]})
    pair = Pair({1: (schema, [])})
    value = {"inner": {"at": T0, "day": None}, "any": {"at": T0, "day": dt.date(2020, 1, 1)}}
    kind, (data, _, _) = pair.same(avro_bytes(schema, value))
    assert kind == "value" and data == value
    assert not pair.marked()


def test_a_logical_type_inside_a_connect_struct_is_left_to_fastavro() -> None:
    """A Connect-named struct has a converter of its own that does not look into its fields."""
    point = {
        "type": "record",
        "name": "Point",
        "connect.name": "io.debezium.data.geometry.Point",
        "fields": [{"name": "wkb", "type": "bytes"}, {"name": "at", "type": _logical("long", "timestamp-millis")}],
    }
    schema = record({"name": "p", "type": point}, {"name": "t", "type": _logical("long", "timestamp-millis")})
    pair = Pair({1: (schema, [])})
    value = {"p": {"wkb": b"\x01", "at": T0.replace(microsecond=0)}, "t": T0.replace(microsecond=0)}
    kind, (data, _, _) = pair.same(avro_bytes(schema, value))
    assert kind == "value" and data["p"]["at"] == T0.replace(microsecond=0)
    assert not pair.marked()


def test_logical_types_in_referenced_schemas_decode_as_fastavro_does() -> None:
    inner = {**INNER, "namespace": "other"}
    schema = record(
        {"name": "inner", "type": "other.Inner"}, {"name": "t", "type": _logical("long", "timestamp-micros")}
    )
    refs = [{"name": "other.Inner", "subject": "inner", "version": 1}]
    pair = Pair({1: (schema, refs)}, {("inner", 1): inner})
    value = {"inner": {"at": T0, "day": dt.date(2024, 1, 1)}, "t": T0}
    named: dict[str, Any] = {}
    fastavro.parse_schema(inner, named)
    out = io.BytesIO()
    fastavro.schemaless_writer(out, fastavro.parse_schema(schema, named), value)
    kind, (data, _, _) = pair.same(header(1) + out.getvalue())
    assert kind == "value" and data == value
    assert pair.marked()


def test_each_writer_schema_reads_its_own_logical_types() -> None:
    """Schema evolution: a field's logical type changes between versions; each record is read with
    the schema it was written with."""
    v1 = record({"name": "t", "type": _logical("long", "timestamp-millis")})
    v2 = record(
        {"name": "t", "type": _logical("long", "local-timestamp-micros")},
        {"name": "d", "type": _logical("int", "date"), "default": 0},
    )
    pair = Pair({1: (v1, []), 2: (v2, [])})
    first = pair.same(avro_bytes(v1, {"t": T0.replace(microsecond=0)}))
    out = io.BytesIO()
    fastavro.schemaless_writer(out, fastavro.parse_schema(v2), {"t": dt.datetime(2024, 1, 1, 0, 0, 0, 7), "d": 1})
    second = pair.same(header(2) + out.getvalue())
    assert first[1][0] == {"t": T0.replace(microsecond=0)}
    assert second[1][0] == {"t": dt.datetime(2024, 1, 1, 0, 0, 0, 7), "d": dt.date(1970, 1, 2)}


def test_a_top_level_logical_schema_decodes_as_fastavro_does() -> None:
    for schema, wire in (
        (_logical("long", "timestamp-millis"), 1_700_000_000_123),
        (["null", _logical("long", "timestamp-micros")], None),
        (["null", _logical("long", "timestamp-micros")], LONG_MAX),
        (_logical("string", "uuid"), str(UID)),
    ):
        pair = Pair({1: (schema, [])})
        plain = json.loads(json.dumps(schema).replace('"logicalType"', '"ignoredLogicalType"'))
        out = io.BytesIO()
        fastavro.schemaless_writer(out, fastavro.parse_schema(plain), wire)
        pair.same(header(1) + out.getvalue())


def test_the_benchmark_records_decode_as_fastavro_does() -> None:
    count = 40
    pair = Pair({1: (avro_data.VALUE_SCHEMA, [])})
    for i in range(count):
        kind, (data, _, _) = pair.same(avro_data.avro_value(1, i, count))
        assert kind == "value" and data == avro_data.values(i, count)
    assert pair.marked()


def test_a_refused_value_in_a_body_that_is_also_cut_short_is_a_decode_error() -> None:
    """The one difference: fastavro no longer stops at the refused timestamp, so a body that is also
    truncated (or too long) is reported as that, not as the timestamp's OverflowError. Either way a
    DecodeError, never the converter's internal exception."""
    pair = _single("timestamp-millis", "long")
    body = raw_bytes(pair_schema("timestamp-millis"), {"v": LONG_MAX, "s": "after"})
    for data, reason in ((body[:-2], "Avro: truncated body"), (body + b"\x00", "Avro: 1 byte(s) left over")):
        kind, message = pair.outcome(data)
        assert kind == "error" and message.startswith(reason)
        assert pair.outcome(data, reference=True)[1].startswith("Avro: body does not match writer schema id 1")


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("io.debezium.time.MicroTime", DAY_US),  # PostgreSQL's 24:00:00
        ("io.debezium.time.NanoTime", DAY_US * 1000),
        ("io.debezium.time.Time", 86_400_000),
        ("org.apache.kafka.connect.data.Time", -1),
    ],
)
def test_a_time_outside_the_day_is_refused_not_wrapped_round(name: str, value: int) -> None:
    """24:00:00 became 00:00:00 (and -1 ms 23:59:59.999): a silent change of the value."""
    from sink.formats import logical

    convert = logical.converter(name, None)
    with pytest.raises(ValueError, match="no time of day"):
        convert(value)
    assert convert(0) == dt.time(0)
    assert convert(value - 1 if value > 0 else 0).hour == (23 if value > 0 else 0), "the last moment of the day is one"


NEAR_S = 2**32  # the window of `_instant`'s float path, in seconds either side of the epoch


def _exact_instant(wire: int, micros_per_unit: int) -> dt.datetime:
    return dt.datetime(1970, 1, 1, tzinfo=UTC) + dt.timedelta(microseconds=wire * micros_per_unit)


@pytest.mark.parametrize("micros_per_unit", [1000, 1])
def test_the_float_path_is_exact_at_its_edges(micros_per_unit: int) -> None:
    convert = avro.READERS[("long", "timestamp-millis" if micros_per_unit == 1000 else "timestamp-micros")]
    per_second = 1_000_000 // micros_per_unit
    near = NEAR_S * per_second
    edges = [0, 1, -1, per_second - 1, -per_second + 1, near - 1, -near + 1, near, -near, near + 1, -near - 1]
    edges += [near - per_second // 2, -near + per_second // 2, near // 3, -near // 7]
    for wire in edges:
        got = convert(wire)
        assert got == _exact_instant(wire, micros_per_unit) and got.tzinfo is UTC, wire


@settings(max_examples=2000, deadline=None)
@given(
    micros_per_unit=st.sampled_from([1000, 1]), seconds=st.integers(-NEAR_S, NEAR_S), fraction=st.integers(0, 999_999)
)
def test_the_float_path_gives_the_exact_instant(micros_per_unit: int, seconds: int, fraction: int) -> None:
    convert = avro.READERS[("long", "timestamp-millis" if micros_per_unit == 1000 else "timestamp-micros")]
    wire = seconds * (1_000_000 // micros_per_unit) + fraction // micros_per_unit
    assert convert(wire) == _exact_instant(wire, micros_per_unit)
