"""`Preparer`'s lanes: the usual Avro record (no framing header, a plan that needs only the value)
is prepared by its topic and schema's lane, and whatever the lane returns is exactly what the full
path makes; every record the lane cannot take as the full path would (a bad key, a bad body, a null
key field, a framing header, another schema) goes the full path and gets its own error there."""

from __future__ import annotations

import json
from typing import Any

import pytest

from sink.errors import DecodeError, MappingError, RecordError
from sink.formats import make_decoder
from sink.formats.avro import AvroDecoder
from sink.formats.string import StringDecoder
from sink.model import Coord, Outcome, RawRecord, Row, Stage
from sink.pipeline import MAX_LANES, Preparer
from sink.transforms import MappingRules, RowMapper
from tests.support.fakes import FakeRegistry
from tests.support.wire import avro_bytes, record

ORDER = record(
    {"name": "id", "type": ["null", "long"], "default": None},
    {"name": "name", "type": "string"},
    {"name": "at", "type": {"type": "long", "logicalType": "timestamp-millis"}},
    name="Order",
)
OTHER = record({"name": "id", "type": "long"}, {"name": "qty", "type": "int"}, name="Other")
RULES = MappingRules(pk_mode="record_value", pk_fields=("id",), delete_enabled=True)


def _preparer(rules: MappingRules = RULES, key_format: str = "string") -> Preparer:
    registry = FakeRegistry({1: ("AVRO", json.dumps(ORDER), []), 2: ("AVRO", json.dumps(OTHER), [])})
    key_decoder = StringDecoder() if key_format == "string" else make_decoder(key_format)
    return Preparer(key_decoder, AvroDecoder(registry), RowMapper(rules))


def _raw(
    offset: int, value: bytes | None, key: bytes | None = b"k", topic: str = "orders", headers: Any = ()
) -> RawRecord:
    return RawRecord(Coord(topic, 0, offset), key, value, headers, 1_700_000_000_000)


def _order(i: int, **changes: Any) -> bytes:
    return avro_bytes(ORDER, {"id": i, "name": f"n{i}", "at": 1_700_000_000_000 + i, **changes})


def _outcome(preparer: Preparer, raw: RawRecord, full: bool = False) -> Any:
    """What prepare makes of `raw` (a Row, an Outcome), or the RecordError it raises, as comparable
    data; `full`: by the full path alone."""
    try:
        made = preparer._prepare(raw) if full else preparer.prepare(raw)
    except RecordError as error:
        return (type(error).__name__, error.stage, str(error))
    if isinstance(made, Row):
        if made.fields is not None:  # a lane's row says which names its values hold: they must
            assert tuple(made.values) == made.fields
        return made._replace(spec=made.spec.columns, fields=None)  # (the spec compared by value)
    return made


def _full_path_calls(preparer: Preparer, monkeypatch: pytest.MonkeyPatch) -> list[RawRecord]:
    calls: list[RawRecord] = []
    full = preparer._prepare

    def counted(raw: RawRecord) -> Row | Outcome:
        calls.append(raw)
        return full(raw)

    monkeypatch.setattr(preparer, "_prepare", counted)
    return calls


def test_after_its_first_record_a_schema_takes_the_lane(monkeypatch: pytest.MonkeyPatch) -> None:
    preparer = _preparer()
    calls = _full_path_calls(preparer, monkeypatch)
    rows = [preparer.prepare(_raw(i, _order(i))) for i in range(5)]

    assert [raw.coord.offset for raw in calls] == [0], "only the first record went the full path"
    assert all(isinstance(row, Row) for row in rows)
    first, second = rows[0], rows[1]
    assert isinstance(first, Row) and isinstance(second, Row)
    assert second.spec is first.spec and second.table == first.table == "orders"
    assert (second.key, second.values["name"], second.schema_id) == ({"id": 1}, "n1", 1)


HOSTILE = [
    pytest.param(_raw(10, _order(10), key=b"\xff\xfe"), id="a key that is not UTF-8"),
    pytest.param(_raw(11, _order(11)[:-3]), id="a truncated body"),
    pytest.param(_raw(12, _order(12) + b"\x00"), id="bytes left over"),
    pytest.param(_raw(13, _order(13, id=None)), id="a null key field"),
    pytest.param(_raw(14, _order(14, at=2**62)), id="a timestamp past Python's"),
    pytest.param(_raw(15, b"\x00\x00\x00\x00\x01"), id="an empty body"),
    pytest.param(_raw(16, b"\x01" + _order(16)[1:]), id="another magic byte"),
    pytest.param(_raw(17, _order(17), key=None), id="no key"),
    pytest.param(_raw(18, None), id="a tombstone"),
    pytest.param(_raw(19, avro_bytes(OTHER, {"id": 1, "qty": 2}, schema_id=2)), id="another schema"),
    pytest.param(_raw(20, _order(20), topic="other"), id="another topic"),
    pytest.param(_raw(21, _order(21), headers=(("__value_schema_id", b"\x01" + bytes(16)),)), id="a framing header"),
    pytest.param(_raw(22, _order(22), headers=(("traceparent", b"00-ab"),)), id="another header"),
    pytest.param(_raw(23, _order(23)), id="a usual record"),
]


@pytest.mark.parametrize("raw", HOSTILE)
def test_a_record_after_the_lane_is_made_gets_what_the_full_path_makes(raw: RawRecord) -> None:
    with_lanes, full_only = _preparer(), _preparer()
    with_lanes.prepare(_raw(0, _order(0)))  # the lane of (orders, schema 1)
    assert with_lanes._lanes, "the first record made a lane"

    assert _outcome(with_lanes, raw) == _outcome(full_only, raw, full=True)


@pytest.mark.parametrize(
    ("raw", "error", "stage"),
    [
        (_raw(1, _order(1), key=b"\xff"), DecodeError, Stage.KEY_CONVERTER),
        (_raw(2, _order(2)[:-2]), DecodeError, Stage.VALUE_CONVERTER),
        (_raw(3, _order(3, id=None)), MappingError, Stage.TRANSFORMATION),
    ],
)
def test_a_bad_record_on_a_lane_still_gets_its_error_and_stage(raw: RawRecord, error: type, stage: Stage) -> None:
    preparer = _preparer()
    preparer.prepare(_raw(0, _order(0)))
    with pytest.raises(error) as caught:
        preparer.prepare(raw)
    assert caught.value.stage is stage


@pytest.mark.parametrize(
    "rules",
    [
        pytest.param(MappingRules(pk_mode="record_key", delete_enabled=True), id="the key is the primary key"),
        pytest.param(MappingRules(pk_mode="record_value", pk_fields=("id",), fields_include=("id",)), id="a filter"),
        pytest.param(MappingRules(pk_mode="record_value", pk_fields=("id", "name")), id="two key fields"),
    ],
)
def test_plans_that_need_more_than_the_value_make_no_lane(rules: MappingRules) -> None:
    preparer = _preparer(rules)
    for i in range(3):
        preparer.prepare(_raw(i, _order(i)))
    assert list(preparer._lanes.values()) == [None]


def test_lanes_are_bounded() -> None:
    preparer = _preparer()
    for i in range(MAX_LANES + 5):
        preparer.prepare(_raw(i, _order(i), topic=f"t{i}"))
    assert 0 < len(preparer._lanes) <= MAX_LANES


def test_a_lanes_rows_say_which_names_their_values_hold() -> None:
    preparer = _preparer()
    first, second = (preparer.prepare(_raw(i, _order(i))) for i in range(2))
    assert isinstance(first, Row) and isinstance(second, Row)
    assert first.fields is None, "the full path says nothing"
    assert second.fields == ("id", "name", "at") == tuple(second.values)


UNION = [OTHER, record({"name": "id", "type": "long"}, {"name": "note", "type": "string"}, name="Note")]
MAP = {"type": "map", "values": "long"}


@pytest.mark.parametrize(
    ("schema", "fields"),
    [
        pytest.param(ORDER, ("id", "name", "at"), id="a record"),
        pytest.param(UNION, None, id="a union of records: values of one schema hold different names"),
        pytest.param(MAP, None, id="a map: any names"),
        pytest.param("long", None, id="no record"),
    ],
)
def test_only_a_record_schema_fixes_the_names_of_its_values(schema: Any, fields: Any) -> None:
    decoder = AvroDecoder(FakeRegistry({7: ("AVRO", json.dumps(schema), [])}))
    assert decoder.body_fields(7) is None, "not known before the schema is"
    value = {"id": 1, "name": "n", "at": 1} if schema is ORDER else ({"id": 1, "qty": 2} if schema is UNION else 5)
    decoder.decode(avro_bytes(schema, {"a": 1} if schema is MAP else value, schema_id=7))
    assert decoder.body_fields(7) == fields


def test_records_of_a_union_schema_keep_their_own_names_on_the_lane() -> None:
    registry = FakeRegistry({3: ("AVRO", json.dumps(UNION), [])})
    preparer = Preparer(StringDecoder(), AvroDecoder(registry), RowMapper(RULES))
    values = [{"id": 1, "qty": 2}, {"id": 2, "note": "x"}, {"id": 3, "qty": 4}, {"id": 4, "note": "y"}]
    rows = [preparer.prepare(_raw(i, avro_bytes(UNION, v, schema_id=3))) for i, v in enumerate(values)]
    assert [dict(r.values) for r in rows if isinstance(r, Row)] == values
    assert all(isinstance(r, Row) and r.fields is None for r in rows)
