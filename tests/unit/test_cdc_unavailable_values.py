"""`cdc.Unavailable`: which fields of a change event's row hold Debezium's unavailable-value
placeholder (and are left out of the row), in every form its PostgreSQL connector sends."""

from __future__ import annotations

from sink.cdc import UNAVAILABLE_VALUE, Change, ChangeReader, Unavailable
from sink.model import Coord, Decoded, Payload, RawRecord

P = UNAVAILABLE_VALUE


def test_the_text_its_bytes_and_one_item_arrays_of_either_are_left_out() -> None:
    row = {"id": 1, "a": P, "b": P.encode(), "c": [P], "d": [P.encode()], "n": 2}
    assert Unavailable(P).without(row) == {"id": 1, "n": 2}


def test_other_values_stay_even_when_they_hold_the_placeholder() -> None:
    row = {"id": 1, "a": [P, "x"], "b": {"k": P}, "c": P + " ", "d": [], "e": None, "f": 0.5}
    assert Unavailable(P).without(row) is None, "nothing to leave out: the row as it is"


def test_another_placeholder_is_the_one_looked_for() -> None:
    assert Unavailable("??").without({"id": 1, "a": "??", "b": P}) == {"id": 1, "b": P}


def test_only_upserts_lose_the_fields_and_an_empty_setting_keeps_them() -> None:
    def event(op: str, after: dict[str, object] | None, before: dict[str, object] | None = None) -> Decoded:
        value = {"op": op, "source": {"table": "t"}, "before": before, "after": after}
        return Decoded(RawRecord(Coord("t", 0, 0), None, None), Payload({"id": 1}), Payload(value))

    change, record, _ = ChangeReader("debezium").read_event(event("u", {"id": 1, "a": P, "n": 2}))
    assert change is Change.UPSERT and record.value.data == {"id": 1, "n": 2}
    change, record, _ = ChangeReader("debezium").read_event(event("d", None, {"id": 1, "a": P}))
    assert change is Change.DELETE and record.value.data == {"id": 1, "a": P}, "a delete's before is its key"
    change, record, _ = ChangeReader("debezium", "").read_event(event("u", {"id": 1, "a": P}))
    assert record.value.data == {"id": 1, "a": P}
