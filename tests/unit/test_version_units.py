"""SINK_UPSERT_VERSION_FIELD in the core: a batch's unit keeps its key's newest version (not its
last arrived row), deletes are bounded by their version, and the plan carries what the
conditional statements need. Also: whole non-object values and keys (SINK_VALUE_COLUMN_NAME)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from sink.batch import segments
from sink.errors import MappingError
from sink.formats.json_plain import JsonDecoder
from sink.model import Column, ColumnType, Coord, Kind, Op, RawRecord, Row, Stage, TableSpec
from sink.pipeline import Preparer
from sink.plan import delete_slot, write_plan
from sink.transforms import MappingRules, RowMapper

INT64, STRING = ColumnType(Kind.INT64), ColumnType(Kind.STRING)
TABLE = TableSpec("t", (Column("id", INT64, nullable=False), Column("v", INT64), Column("note", STRING)), ("id",))
_offset = iter(range(1_000_000))


def row(values: dict[str, Any], op: Op = Op.UPSERT) -> Row:
    return Row(RawRecord(Coord("t", 0, next(_offset)), None, None), "t", op, {"id": values["id"]}, values, TABLE)


def units_of(*rows: Row) -> Any:
    (units,) = list(segments(rows, insert_mode=False, version="v"))
    return units


def test_a_unit_keeps_the_newest_version_not_the_last_arrived() -> None:
    v3, v1, v2 = row({"id": 1, "v": 3, "note": "c"}), row({"id": 1, "v": 1, "note": "a"}), row({"id": 1, "v": 2})
    (unit,) = units_of(v3, v1, v2)
    assert unit.final is v3 and unit.values == v3.values
    assert unit.stale == [v1, v2]
    # Without a version field the last arrived row wins, as before.
    (plain,) = next(segments((v3, v1, v2), insert_mode=False))
    assert plain.final is v2 and plain.stale is None


def test_a_newer_row_merges_over_an_older_one_that_carries_no_other_field() -> None:
    (unit,) = units_of(row({"id": 1, "v": 1}), row({"id": 1, "v": 2, "note": "b"}), row({"id": 1, "v": 0, "note": "z"}))
    assert unit.values == {"id": 1, "v": 2, "note": "b"}
    assert [r.values.get("note") for r in unit.stale] == ["z"]


def test_a_newer_row_lacking_a_field_of_an_older_one_is_applied_after_it_not_merged() -> None:
    """The stored row may be newer than v1 and older than v2: one by one, v1's note is skipped and v2
    applied. Merged, v1's note would be written with v2's version, so v2 starts a new segment."""
    v1, v2, v0 = row({"id": 1, "v": 1, "note": "a"}), row({"id": 1, "v": 2}), row({"id": 1, "v": 0, "note": "z"})
    parts = list(segments((v1, v2, v0), insert_mode=False, version="v"))
    assert [[dict(u.values) for u in part] for part in parts] == [[{"id": 1, "v": 1, "note": "a"}], [{"id": 1, "v": 2}]]
    assert [r.values.get("note") for r in parts[1][0].stale] == ["z"]


def test_an_equal_version_is_stale_for_a_write_but_not_for_a_delete() -> None:
    first = row({"id": 1, "v": 5, "note": "a"})
    again = row({"id": 1, "v": 5, "note": "replayed"})
    (unit,) = units_of(first, again)
    assert unit.final is first and unit.stale == [again]
    delete = row({"id": 1, "v": 5}, Op.DELETE)
    (unit,) = units_of(first, delete)
    assert unit.delete_first and unit.final is None and unit.stale is None


def test_an_older_delete_is_stale_and_a_delete_without_version_always_deletes() -> None:
    write = row({"id": 1, "v": 5, "note": "a"})
    old_delete = row({"id": 1, "v": 4}, Op.DELETE)
    (unit,) = units_of(write, old_delete)
    assert unit.final is write and not unit.delete_first and unit.stale == [old_delete]
    tombstone = row({"id": 1}, Op.DELETE)
    (unit,) = units_of(write, tombstone)
    assert unit.delete_first and unit.final is None


def test_a_write_after_a_delete_is_an_insert_whatever_its_version() -> None:
    delete, write = row({"id": 1, "v": 9}, Op.DELETE), row({"id": 1, "v": 2, "note": "b"})
    (unit,) = units_of(delete, write)
    assert unit.delete_first and unit.final is write and unit.deleted is delete


def test_the_plan_names_the_version_and_carries_each_deletes_version() -> None:
    units = units_of(
        row({"id": 1, "v": 3}, Op.DELETE),
        row({"id": 2, "v": 7, "note": "x"}),
        row({"id": 1, "v": 6}, Op.DELETE),  # the newer delete of key 1 bounds its statement
        row({"id": 3}, Op.DELETE),
    )
    plan = write_plan(units, TABLE, "v")
    assert plan.version == "v"
    assert plan.deletes == [{"id": 1, "v": 6}, {"id": 3, "v": None}]
    assert plan.delete_units == [0, 2]
    assert [(w.columns, list(w.rows), w.units) for w in plan.writes] == [
        (("id", "v", "note"), [{"id": 2, "v": 7, "note": "x"}], [1])
    ]
    assert delete_slot(0) == -1 and delete_slot(2) == -3
    # Without a version field the plan is as before: no version, keys only.
    plain = write_plan(next(segments((row({"id": 1, "v": 3}, Op.DELETE),), insert_mode=False)), TABLE)
    assert plain.version is None and plain.delete_units is None and plain.deletes == [{"id": 1}]


# ------------------------------------------------------------------------------ whole values


def prepare(rules: MappingRules, key: bytes | None, value: Any) -> Row:
    preparer = Preparer(JsonDecoder(), JsonDecoder(), RowMapper(rules))
    result = preparer.prepare(RawRecord(Coord("orders", 0, 1), key, json.dumps(value).encode()))
    assert isinstance(result, Row), result
    return result


@pytest.mark.parametrize("value", [42, "text", [1, 2], True])
def test_a_schemaless_scalar_or_array_value_is_a_record_error(value: Any) -> None:
    with pytest.raises(MappingError, match=r"not an object with fields.*SINK_VALUE_COLUMN_NAME") as error:
        prepare(MappingRules(), None, value)
    assert error.value.stage is Stage.VALUE_CONVERTER


def test_with_a_value_column_name_the_whole_value_lands_in_it() -> None:
    r = prepare(MappingRules(value_column_name="payload"), None, [1, 2])
    assert dict(r.values) == {"payload": [1, 2]}
    assert [c.name for c in r.spec.columns] == ["payload"]
    obj = prepare(MappingRules(value_column_name="payload"), None, {"a": 1})
    assert dict(obj.values) == {"a": 1}, "objects still map field by field"


def test_a_schemaless_scalar_key_needs_a_column_name() -> None:
    rules = MappingRules(pk_mode="record_key")
    with pytest.raises(MappingError, match=r"record key is a single int value.*SINK_KEY_COLUMN_NAME") as error:
        prepare(rules, b"7", {"a": 1})
    assert error.value.stage is Stage.KEY_CONVERTER
    r = prepare(MappingRules(pk_mode="record_key", key_column_name="k"), b"7", {"a": 1})
    assert dict(r.key) == {"k": 7}
    named = prepare(MappingRules(pk_mode="record_key", pk_fields=("id",)), b"7", {"a": 1})
    assert dict(named.key) == {"id": 7}


def test_a_tombstone_delete_carries_no_version() -> None:
    rules = MappingRules(pk_mode="record_key", pk_fields=("id",), version_field="v", delete_enabled=True)
    mapper = RowMapper(rules)
    preparer = Preparer(JsonDecoder(), JsonDecoder(), mapper)
    tombstone = preparer.prepare(RawRecord(Coord("orders", 0, 1), b"7", None))
    assert isinstance(tombstone, Row) and tombstone.op is Op.DELETE and "v" not in tombstone.values
