"""write_plan: which rows of a segment go in which statement (deletes first, one write per column set)."""

from __future__ import annotations

from typing import Any

from sink.batch import segments
from sink.model import Column, ColumnType, Coord, Kind, Op, RawRecord, Row, TableSpec
from sink.plan import write_plan

INT64, STRING = ColumnType(Kind.INT64), ColumnType(Kind.STRING)
TABLE = TableSpec(
    "t",
    (Column("id", INT64, nullable=False), Column("a", STRING), Column("b", STRING), Column("c", STRING)),
    ("id",),
)


def row(offset: int, values: dict[str, Any], op: Op = Op.UPSERT) -> Row:
    key = {"id": values["id"]}
    return Row(RawRecord(Coord("t", 0, offset), None, None), "t", op, key, values, TABLE)


def plan_of(*rows: Row, insert_mode: bool = False) -> Any:
    (units,) = list(segments(rows, insert_mode))
    return write_plan(units, TABLE)


def test_rows_that_carry_the_same_columns_share_one_statement_in_table_order() -> None:
    plan = plan_of(row(0, {"b": "x", "id": 1}), row(1, {"id": 2, "b": "y"}))
    assert plan.deletes == []
    assert [(w.columns, [r["id"] for r in w.rows], w.units) for w in plan.writes] == [(("id", "b"), [1, 2], [0, 1])]


def test_a_row_never_writes_a_column_it_does_not_carry() -> None:
    plan = plan_of(row(0, {"id": 1, "a": "x"}), row(1, {"id": 2, "b": "y"}), row(2, {"id": 3, "a": "z"}))
    assert {w.columns: w.units for w in plan.writes} == {("id", "a"): [0, 2], ("id", "b"): [1]}
    for write in plan.writes:
        assert all(set(r) >= set(write.columns) for r in write.rows), "each row carries every column written"


def test_fields_the_table_does_not_have_are_not_written_and_do_not_split_statements() -> None:
    plan = plan_of(row(0, {"id": 1, "a": "x", "gone": 1}), row(1, {"id": 2, "a": "y"}))
    assert [(w.columns, w.units) for w in plan.writes] == [(("id", "a"), [0, 1])]


def test_deletes_come_first_with_their_keys_and_a_key_written_again_is_also_written() -> None:
    rows = (row(0, {"id": 1, "a": "x"}), row(1, {"id": 1}, Op.DELETE), row(2, {"id": 2}, Op.DELETE))
    plan = plan_of(*rows, row(3, {"id": 2, "a": "again"}))
    assert plan.deletes == [{"id": 1}, {"id": 2}]
    assert [(w.columns, [dict(r) for r in w.rows], w.units) for w in plan.writes] == [
        (("id", "a"), [{"id": 2, "a": "again"}], [1])
    ]
    assert len(plan) == 3, "two deletes and one write"


def test_the_last_write_of_a_key_carries_the_earlier_writes_fields() -> None:
    plan = plan_of(row(0, {"id": 1, "a": "x"}), row(1, {"id": 1, "b": "y"}))
    assert [(w.columns, [dict(r) for r in w.rows]) for w in plan.writes] == [
        (("id", "a", "b"), [{"id": 1, "a": "x", "b": "y"}])
    ]


# Rows that say which names their values hold (`Row.fields`, a lane's rows) are grouped without
# comparing them; the plan is the one the comparison makes.


def shaped(offset: int, values: dict[str, Any]) -> Row:
    return row(offset, values)._replace(fields=tuple(values))


def compared(rows: list[Row]) -> Any:
    """The plan of `rows` as made by comparing their names (no row says what it holds)."""
    return plan_of(*(r._replace(fields=None) for r in rows))


def test_rows_of_one_shape_make_the_plan_the_comparison_makes() -> None:
    rows = [shaped(i, {"b": f"v{i}", "id": i, "gone": i}) for i in range(5)]
    plan = plan_of(*rows)
    assert plan == compared(rows)
    assert [(w.columns, w.units) for w in plan.writes] == [(("id", "b"), [0, 1, 2, 3, 4])]


def test_rows_of_different_shapes_or_one_that_says_nothing_are_compared() -> None:
    mixed = [shaped(0, {"id": 1, "a": "x"}), shaped(1, {"id": 2, "b": "y"}), shaped(2, {"id": 3, "a": "z"})]
    assert {w.columns: w.units for w in plan_of(*mixed).writes} == {("id", "a"): [0, 2], ("id", "b"): [1]}
    silent = [shaped(0, {"id": 1, "a": "x"}), row(1, {"id": 2, "b": "y"})]
    assert {w.columns: w.units for w in plan_of(*silent).writes} == {("id", "a"): [0], ("id", "b"): [1]}


def test_a_key_that_comes_again_is_folded_whatever_its_rows_say() -> None:
    rows = [shaped(0, {"id": 1, "a": "x"}), shaped(1, {"id": 2, "a": "y"}), shaped(2, {"id": 1, "b": "z"})]
    plan = plan_of(*rows)
    assert plan == compared(rows)
    assert [(w.columns, [dict(r) for r in w.rows]) for w in plan.writes] == [
        (("id", "a", "b"), [{"id": 1, "a": "x", "b": "z"}]),
        (("id", "a"), [{"id": 2, "a": "y"}]),
    ]
