"""`sink.keys`: which batches hold keys the database may take for one another, and their loose form."""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal
from typing import Any

import pytest

from sink.batch import segments, unit_rows
from sink.keys import KeyEquality, key_equality, whole_numbers_as_ints
from sink.model import Column, ColumnType, Coord, Kind, Op, RawRecord, Row, TableSpec

INT = ColumnType(Kind.INT64)
TEXT = ColumnType(Kind.STRING)
TABLE = TableSpec("t", (Column("id", INT, nullable=False), Column("note", TEXT)), ("id",))
NAMED = TableSpec("n", (Column("name", TEXT, nullable=False), Column("note", TEXT)), ("name",))
PAIR = TableSpec("p", (Column("a", INT, nullable=False), Column("b", TEXT, nullable=False)), ("a", "b"))


def row(key: dict[str, Any], offset: int, op: Op = Op.UPSERT, spec: TableSpec = TABLE) -> Row:
    raw = RawRecord(Coord(spec.name, 0, offset), None, None)
    return Row(raw, spec.name, op, key, {**key, "note": str(offset)} if op is Op.UPSERT else dict(key), spec)


@pytest.mark.parametrize(
    ("spec", "keys"),
    [
        (TABLE, [{"id": 1}, {"id": 2}, {"id": 1}]),
        (NAMED, [{"name": "a"}, {"name": "A"}, {"name": "a "}]),  # PostgreSQL and SQLite compare bytes
        (PAIR, [{"a": 1, "b": "x"}, {"b": "x", "a": 2}]),
    ],
)
def test_keys_of_the_columns_own_classes_never_meet(spec: TableSpec, keys: list[dict[str, Any]]) -> None:
    assert not key_equality(spec).meet(keys)


@pytest.mark.parametrize(
    ("keys", "meet"),
    [
        ([{"id": 1}, {"id": "1"}], True),
        ([{"id": 1}, {"id": " 01 "}], True),
        ([{"id": 1}, {"id": Decimal("1.00")}, {"id": "1"}], True),
        ([{"id": True}, {"id": "1"}], True),
        ([{"id": 1}, {"id": 1, "other": 2}], True),  # a field the table's key lacks
        ([{"other": 1}, {"other": "1"}], True),  # none of the key's fields: the database refuses both
        ([{"id": 1}, {"id": "2"}, {"id": 3.0}], False),  # loose, but no two meet
        ([{"id": 1}, {"id": 1.0}], False),  # one key already: Python finds them equal
        ([{"id": 1}, {"id": 2}], False),
        ([], False),
    ],
)
def test_a_number_spelled_otherwise_meets_it(keys: list[dict[str, Any]], meet: bool) -> None:
    assert key_equality(TABLE).meet(keys) is meet


def test_loose_strings_meet_by_padding_and_case() -> None:
    mariadb = key_equality(NAMED, loose_strings=True)
    assert mariadb.folded_text and not key_equality(NAMED).folded_text and not key_equality(TABLE, True).folded_text
    assert mariadb.meet([{"name": "a"}, {"name": "1"}, {"name": 1}]) is True  # 1 goes as '1': one row
    assert mariadb.meet([{"name": "a"}, {"name": "b"}, {"name": 2}]) is False
    assert mariadb.meet([{"name": "a"}, {"name": "a "}])
    assert mariadb.meet([{"name": "a"}, {"name": "A"}])
    assert not mariadb.meet([{"name": "a"}, {"name": "b"}])
    assert not key_equality(NAMED).meet([{"name": "a"}, {"name": "a "}, {"name": "A"}])


@pytest.mark.parametrize(
    ("one", "other"),
    [
        (uuid.UUID(int=5), str(uuid.UUID(int=5)).upper()),
        (uuid.UUID(int=5), "{" + uuid.UUID(int=5).hex + "}"),
        (b"ab", bytearray(b"ab")),
        (1, Decimal("1E0")),
        (0.5, "0.5"),
    ],
)
def test_loose_forms_of_one_value_are_equal(one: Any, other: Any) -> None:
    equality = KeyEquality(("k",), (frozenset(),))
    assert equality.loose({"k": one}) == equality.loose({"k": other})


def test_unhashable_and_odd_values_have_a_loose_form() -> None:
    equality = KeyEquality(("k",), (frozenset(),))
    for value in ([1, [2]], {"a": {"b": 1}}, None, float("nan"), Decimal("Infinity"), dt.date(2024, 1, 1), "1e999"):
        hash(equality.loose({"k": value}))


def test_a_table_without_a_key_or_with_a_column_of_unknown_kind() -> None:
    assert not key_equality(TableSpec("t", TABLE.columns)).meet([{"id": 1}, {"id": "1"}])
    json_key = TableSpec("j", (Column("j", ColumnType(Kind.JSON)),), ("j",))
    assert key_equality(json_key).exact == (frozenset(),)
    assert not key_equality(json_key).meet([{"j": [1]}, {"j": ["1"]}, {"j": {"a": [2]}}])  # JSON: no cast


def test_segments_keep_keys_that_meet_apart_in_record_order() -> None:
    """Write 1, tombstone "1", write 2: one segment held both units of row 1 and ran the delete
    first; now the tombstone starts a segment of its own after the write."""
    rows = (row({"id": 1}, 0), row({"id": "1"}, 1, Op.DELETE), row({"id": 2}, 2))
    assert [len(part) for part in segments(rows, False)] == [3]  # (without the table's key)
    parts = list(segments(rows, False, keys=key_equality(TABLE)))
    assert [[r.coord.offset for unit in part for r in unit_rows(unit)] for part in parts] == [[0], [1, 2]]


def test_segments_fold_keys_that_do_not_meet_as_before() -> None:
    rows = (row({"id": 1}, 0), row({"id": "2"}, 1), row({"id": 1}, 2))
    parts = list(segments(rows, False, keys=key_equality(TABLE)))
    assert len(parts) == 1 and len(parts[0]) == 2


def test_whole_numbers_become_ints_for_integer_key_columns_only() -> None:
    spec = TableSpec(
        "t",
        (Column("id", ColumnType(Kind.INT64)), Column("score", ColumnType(Kind.FLOAT64))),
        ("id", "score"),
    )
    keys: list[dict[str, Any]] = [
        {"id": 5.0, "score": 5.0},
        {"id": Decimal("6.000"), "score": 1.5},
        {"id": "7", "score": 0.0},
        {"id": 8, "score": 0.5},
    ]
    converted = whole_numbers_as_ints(spec, keys)
    assert converted is not None
    assert [(type(k["id"]), k["id"]) for k in converted] == [(int, 5), (int, 6), (str, "7"), (int, 8)]
    assert type(converted[0]["score"]) is float, "a float column keeps its float"
    assert converted[2] is keys[2] and converted[3] is keys[3], "keys without a float or Decimal: the same objects"


@pytest.mark.parametrize(
    "value", [2.5, Decimal("2.5"), Decimal("1e99999999"), float("inf"), Decimal("NaN"), 2.0**63, -(2.0**64)]
)
def test_a_key_no_bigint_holds_names_no_row(value: Any) -> None:
    spec = TableSpec("t", (Column("id", ColumnType(Kind.INT64)),), ("id",))
    assert whole_numbers_as_ints(spec, [{"id": 1}, {"id": value}]) is None
