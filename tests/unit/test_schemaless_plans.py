"""Schemaless objects (plain JSON) are mapped by the plan of their shape (their fields, in order,
and their values' classes) once a record of that shape was mapped in full. Every test compares a
mapper that has seen earlier records (plans made) with a fresh mapper for each record (the full
mapping): the same row, spec and key down to order and classes, or the same error."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from sink.errors import MappingError
from sink.model import Coord, Decoded, Payload, RawRecord, Row
from sink.transforms import MappingRules, RowMapper

NAMES = ("id", "name", "qty", "price", "ok", "doc", "tags")
VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False),
    st.text(max_size=5),
    st.dictionaries(st.sampled_from(("a", "b")), st.integers(), max_size=2),
    st.lists(st.integers(), max_size=2),
)
RECORDS = st.lists(st.dictionaries(st.sampled_from(NAMES), VALUES, max_size=5), min_size=1, max_size=12)
RULES = st.sampled_from(
    [
        MappingRules(pk_mode="record_value", pk_fields=("id",)),
        MappingRules(pk_mode="record_value"),  # every field is the key
        MappingRules(pk_mode="none"),
        MappingRules(pk_mode="record_value", pk_fields=("id",), fields_exclude=("doc",)),
        MappingRules(pk_mode="none", fields_include=("id", "name", "tags")),
    ]
)


def decoded(data: dict[str, Any], offset: int) -> Decoded:
    raw = RawRecord(Coord("orders", 0, offset), b"k", b"{}", (), 1_700_000_000_000)
    return Decoded(raw, Payload(None), Payload(data))


def outcome(mapper: RowMapper, record: Decoded) -> tuple[str, Any]:
    try:
        row = mapper.to_row(record)
    except MappingError as exc:
        return "error", str(exc)
    assert row is None or isinstance(row, Row)
    if row is None:
        return "none", None
    return "row", (row, list(row.key.items()), list(row.values.items()), [type(v) for v in row.values.values()])


@settings(max_examples=300, deadline=None)
@given(RULES, RECORDS)
def test_a_shape_s_plan_gives_the_full_mapping_s_row(rules: MappingRules, records: list[dict[str, Any]]) -> None:
    planned = RowMapper(rules)
    for offset, data in enumerate(records):
        for repeat in range(2):  # the second time, the shape's plan is there (if the first made a row)
            record = decoded(dict(data), offset)
            assert outcome(planned, record) == outcome(RowMapper(rules), decoded(dict(data), offset)), repeat


def test_a_shape_is_mapped_in_full_once() -> None:
    mapper = RowMapper(MappingRules(pk_mode="record_value", pk_fields=("id",)))
    full = mapper._row
    calls: list[int] = []

    def counted(*args: Any, **kwargs: Any) -> Row | None:
        calls.append(1)
        return full(*args, **kwargs)

    mapper._row = counted  # type: ignore[method-assign]
    for i in range(5):
        mapper.to_row(decoded({"id": i, "name": f"n{i}"}, i))
    mapper.to_row(decoded({"id": 9, "name": None}, 9))  # another shape: a class changed
    mapper.to_row(decoded({"name": "x", "id": 10}, 10))  # another shape: the order changed
    assert len(calls) == 3


def test_a_missing_key_value_is_the_full_mapping_s_error_after_a_plan() -> None:
    rules = MappingRules(pk_mode="record_value", pk_fields=("id",))
    mapper = RowMapper(rules)
    mapper.to_row(decoded({"id": 1, "name": "a"}, 0))
    bad = decoded({"id": None, "name": "b"}, 1)  # same names, the id's class differs: its own shape
    assert outcome(mapper, bad) == outcome(RowMapper(rules), bad)
    assert outcome(mapper, bad)[0] == "error"


def test_the_same_fields_in_another_order_are_another_shape() -> None:
    rules = MappingRules(pk_mode="record_value", pk_fields=("id",))
    mapper = RowMapper(rules)
    mapper.to_row(decoded({"id": 1, "name": "a", "city": "b"}, 0))
    swapped = decoded({"id": 2, "city": "c", "name": "d"}, 1)  # the same classes in the same order, names swapped
    assert outcome(mapper, swapped) == outcome(RowMapper(rules), swapped)
