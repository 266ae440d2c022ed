"""Batcher (count / age / schema change) and segments (last write wins, insert mode never merges)."""

from __future__ import annotations

import math
import random
from typing import Any

from sink.batch import Batcher, Unit, WriteUnit, _distinct_writes, _folded, final_row, segments, unit_rows
from sink.model import Batch, Column, ColumnType, Coord, Kind, Op, RawRecord, Row, TableSpec

INT64, STRING = ColumnType(Kind.INT64), ColumnType(Kind.STRING)
SPEC = TableSpec("t", (Column("id", INT64, nullable=False), Column("v", STRING)), ("id",))
SPEC_V2 = TableSpec("t", (*SPEC.columns, Column("extra", STRING)), ("id",))


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


_offsets: dict[str, int] = {}


def mk(
    key: Any,
    v: Any = "x",
    op: Op = Op.UPSERT,
    *,
    table: str = "t",
    spec: TableSpec | None = None,
    schema_id: Any = "s1",
    inferred: bool = False,
    offset: int | None = None,
) -> Row:
    if offset is None:
        offset = _offsets[table] = _offsets.get(table, -1) + 1
    spec = spec or SPEC
    if spec.name != table:
        spec = TableSpec(table, spec.columns, spec.primary_key)
    keys = {} if key is None else {"id": key}
    values = keys if op is Op.DELETE else {**keys, "v": v}
    return Row(RawRecord(Coord(table, 0, offset), None, None), table, op, keys, values, spec, schema_id, inferred)


def key_of(unit: WriteUnit) -> Any:
    """A unit's key: a Unit's own; a Row alone in its segment goes by its key values (by its
    coordinates without a primary key)."""
    if isinstance(unit, Unit):
        return unit.key if isinstance(unit.key, Coord) else tuple(value for _, value in sorted(unit.key))
    return tuple(unit.key.values()) if unit.key else unit.coord


def describe(units: list[WriteUnit]) -> list[tuple[Any, bool, Any, list[int]]]:
    return [
        (
            key_of(u),
            isinstance(u, Unit) and u.delete_first,
            None if (final := final_row(u)) is None else final.values["v"],
            [r.coord.offset for r in unit_rows(u)],
        )
        for u in units
    ]


def segs(rows: list[Row], insert_mode: bool) -> list[list[tuple[Any, bool, Any, list[int]]]]:
    return [describe(s) for s in segments(tuple(rows), insert_mode)]


# ------------------------------------------------------------------------------ segments


def test_upsert_last_write_wins_per_key_in_first_seen_order() -> None:
    rows = [mk(k, v, offset=n) for n, (k, v) in enumerate([(1, "a"), (2, "b"), (1, "c"), (3, "d"), (2, "e")])]
    assert segs(rows, insert_mode=False) == [
        [((1,), False, "c", [0, 2]), ((2,), False, "e", [1, 4]), ((3,), False, "d", [3])],
    ]


def test_unit_values_are_the_writes_since_the_last_delete_in_turn() -> None:
    first = mk(1, "a", offset=0)
    partial = Row(first.raw, "t", Op.UPSERT, {"id": 1}, {"id": 1, "w": 2}, SPEC)
    (segment,) = segments((first, partial), insert_mode=False)
    assert segment[0].values == {"id": 1, "v": "a", "w": 2}, "a field the last record lacks keeps its value"
    assert segment[0].final is partial
    (segment,) = segments((first, mk(1, op=Op.DELETE, offset=1), partial), insert_mode=False)
    assert segment[0].values == {"id": 1, "w": 2}, "nothing survives a delete"


def test_a_write_whose_key_comes_once_is_its_own_unit() -> None:
    """The usual row needs no Unit: it is the unit; a key that comes again folds its rows into one."""
    once, twice, again = mk(1, "a", offset=0), mk(2, "b", offset=1), mk(2, "c", offset=2)
    (segment,) = segments((once, twice, again), insert_mode=False)
    assert segment[0] is once
    assert isinstance(segment[1], Unit) and segment[1].rows == [twice, again] and segment[1].final is again
    (segment,) = segments((mk(3, op=Op.DELETE, offset=3),), insert_mode=False)
    assert isinstance(segment[0], Unit) and segment[0].delete_first, "a delete is a Unit (it deletes first)"


def test_write_then_delete_is_a_delete() -> None:
    rows = [mk(1, "a", offset=0), mk(1, op=Op.DELETE, offset=1)]
    assert segs(rows, insert_mode=False) == [[((1,), True, None, [0, 1])]]


def test_delete_then_insert() -> None:
    rows = [mk(1, op=Op.DELETE, offset=0), mk(1, "new", offset=1)]
    for insert_mode in (False, True):
        assert segs(rows, insert_mode) == [[((1,), True, "new", [0, 1])]]


def test_upsert_write_delete_write_collapses_to_delete_then_final() -> None:
    rows = [mk(1, "a", offset=0), mk(1, op=Op.DELETE, offset=1), mk(1, "b", offset=2)]
    assert segs(rows, insert_mode=False) == [[((1,), True, "b", [0, 1, 2])]]


def test_insert_mode_never_merges_two_inserts_of_one_key() -> None:
    rows = [mk(1, "a", offset=0), mk(2, "x", offset=1), mk(1, "b", offset=2), mk(1, "c", offset=3)]
    assert segs(rows, insert_mode=True) == [
        [((1,), False, "a", [0]), ((2,), False, "x", [1])],
        [((1,), False, "b", [2])],
        [((1,), False, "c", [3])],
    ]


def test_insert_mode_insert_delete_insert_tries_both_inserts() -> None:
    # Each insert must meet the database as it would alone (a duplicate must fail), so an insert is
    # never folded away behind a later delete of its key.
    rows = [mk(1, "a", offset=0), mk(1, op=Op.DELETE, offset=1), mk(1, "b", offset=2)]
    result = segments(tuple(rows), insert_mode=True)
    inserts_per_unit = [sum(r.op is Op.UPSERT for r in unit_rows(u)) for s in result for u in s]
    assert max(inserts_per_unit) == 1
    flat = [describe(s) for s in segments(tuple(rows), insert_mode=True)]
    assert flat[0] == [((1,), False, "a", [0])]
    assert flat[-1][-1][2] == "b", "the final state is the last insert"
    attempted = [f.values["v"] for s in segments(tuple(rows), insert_mode=True) for u in s if (f := final_row(u))]
    assert attempted == ["a", "b"]


def test_insert_mode_insert_then_delete_keeps_both() -> None:
    rows = [mk(1, "a", offset=0), mk(1, op=Op.DELETE, offset=1)]
    assert segs(rows, insert_mode=True) == [[((1,), False, "a", [0])], [((1,), True, None, [1])]]


def test_every_row_is_in_exactly_one_unit() -> None:
    rows = [mk(k % 3, str(i), Op.DELETE if i % 4 == 3 else Op.UPSERT, offset=i) for i, k in enumerate(range(20))]
    for insert_mode in (False, True):
        seen = [r.coord.offset for s in segments(tuple(rows), insert_mode) for u in s for r in unit_rows(u)]
        assert sorted(seen) == list(range(20))
        for segment in segments(tuple(rows), insert_mode):
            keys = [key_of(u) for u in segment]
            assert len(keys) == len(set(keys)), "a key at most once per segment"


def test_without_primary_key_every_record_is_its_own_unit() -> None:
    rows = [mk(None, "a", offset=0), mk(None, "a", offset=1)]
    for insert_mode in (False, True):
        assert segs(rows, insert_mode) == [[(Coord("t", 0, 0), False, "a", [0]), (Coord("t", 0, 1), False, "a", [1])]]


# ------------------------------------------------------------------------------ batcher


def test_closes_on_count() -> None:
    batcher = Batcher(max_rows=3, max_wait_ms=1000, clock=Clock())
    assert batcher.add(mk(1)) == []
    assert batcher.add(mk(2)) == []
    assert len(batcher) == 2
    closed = batcher.add(mk(3))
    assert len(closed) == 1
    assert [r.key["id"] for r in closed[0].rows] == [1, 2, 3]
    assert closed[0].table == "t" and closed[0].spec == SPEC
    assert len(batcher) == 0


def test_closes_on_age() -> None:
    clock = Clock()
    batcher = Batcher(max_rows=100, max_wait_ms=500, clock=clock)
    batcher.add(mk(1))
    clock.now += 0.2
    batcher.add(mk(2, table="u"))
    clock.now += 0.299
    assert batcher.due() == []
    clock.now += 0.002
    due = batcher.due()
    assert [b.table for b in due] == ["t"], "age counts from the first row of each buffer"
    clock.now += 0.2
    assert [b.table for b in batcher.due()] == ["u"]
    assert batcher.due() == []


def test_closes_on_schema_change() -> None:
    batcher = Batcher(max_rows=100, max_wait_ms=1000, clock=Clock())
    batcher.add(mk(1, schema_id="s1"))
    closed = batcher.add(mk(2, schema_id="s2", spec=SPEC_V2))
    assert len(closed) == 1 and [r.key["id"] for r in closed[0].rows] == [1]
    closed = batcher.add(mk(3, schema_id="s2", spec=SPEC_V2))
    assert closed == []
    assert batcher.drain()[0].spec == SPEC_V2


def test_same_schema_id_but_other_spec_closes_too() -> None:
    batcher = Batcher(max_rows=100, max_wait_ms=1000, clock=Clock())
    batcher.add(mk(1, schema_id="s1"))
    assert len(batcher.add(mk(2, schema_id="s1", spec=SPEC_V2))) == 1


def test_deletes_join_any_batch() -> None:
    batcher = Batcher(max_rows=100, max_wait_ms=1000, clock=Clock())
    batcher.add(mk(1, schema_id="s1"))
    assert batcher.add(mk(1, op=Op.DELETE, schema_id=None)) == []
    assert len(batcher.drain()[0].rows) == 2


def test_a_truncate_is_a_batch_of_its_own_between_the_rows_before_and_after_it() -> None:
    batcher = Batcher(max_rows=100, max_wait_ms=1000, clock=Clock())
    batcher.add(mk(1))
    batcher.add(mk(2))
    truncate = Row(
        RawRecord(Coord("t", 0, 2), None, None), "t", Op.TRUNCATE, {}, {}, TableSpec("t", (), ()), None, True
    )
    before, alone = batcher.add(truncate)
    assert [r.key["id"] for r in before.rows] == [1, 2] and alone.rows == (truncate,)
    assert batcher.add(mk(3)) == [], "the rows after it start a new batch"
    assert [r.key["id"] for r in batcher.drain()[0].rows] == [3]
    assert Batcher(100, 1000, Clock()).add(truncate)[0].rows == (truncate,), "with nothing before it too"


def test_inferred_rows_merge_their_columns_instead_of_closing() -> None:
    batcher = Batcher(max_rows=100, max_wait_ms=1000, clock=Clock())
    narrow = TableSpec("t", (Column("id", INT64), Column("v", STRING)))
    wide = TableSpec("t", (Column("id", INT64), Column("w", INT64)))
    batcher.add(mk(1, spec=narrow, schema_id=None, inferred=True))
    assert batcher.add(mk(2, spec=wide, schema_id=None, inferred=True)) == []
    (batch,) = batcher.drain()
    assert batch.inferred
    assert [c.name for c in batch.spec.columns] == ["id", "v", "w"]


def test_tables_are_buffered_apart_and_drained() -> None:
    batcher = Batcher(max_rows=2, max_wait_ms=1000, clock=Clock())
    batcher.add(mk(1, table="a"))
    batcher.add(mk(1, table="b"))
    closed = batcher.add(mk(2, table="a"))
    assert [b.table for b in closed] == ["a"]
    assert [b.table for b in batcher.drain()] == ["b"]
    assert batcher.drain() == []


def test_buffered_bytes_close_every_batch_before_rows_do() -> None:
    # Memory is bounded by bytes, not records: 10 KiB records close the batches at 64 KiB, far
    # before the 3,000-row limit.
    batcher = Batcher(max_rows=3000, max_wait_ms=60_000, clock=Clock(), max_bytes=64 * 1024)
    big = b"x" * 10 * 1024
    closed: list[Batch] = []
    for i in range(20):
        table = "a" if i % 2 else "b"
        raw = RawRecord(Coord("t", 0, i), None, big)
        spec = TableSpec(table, (Column("id", ColumnType(Kind.INT64)),))
        closed += batcher.add(Row(raw, table, Op.UPSERT, {}, {"id": i}, spec, None, True))
        assert batcher.buffered_bytes < 64 * 1024
    assert len(closed) >= 4 and {b.table for b in closed} == {"a", "b"}
    assert sum(len(b.rows) for b in closed) + len(batcher) == 20


def keyed(key: dict[str, Any], v: str, op: Op = Op.UPSERT, offset: int = 0) -> Row:
    """A row of a schemaless key: its columns in the order the record gave them."""
    values = key if op is Op.DELETE else {**key, "v": v}
    return Row(RawRecord(Coord("t", 0, offset), None, None), "t", op, key, values, SPEC)


def both(rows: list[Row], insert_mode: bool = False, exact: bool = False) -> list[list[WriteUnit]]:
    """`segments` of `rows`, checked against the row-by-row fold: the same units, the same rows in
    them, a Row where the fold keeps the Row itself."""
    fast = list(segments(tuple(rows), insert_mode, exact))
    folded = list(_folded(tuple(rows), insert_mode, exact, None))
    assert [describe(s) for s in fast] == [describe(s) for s in folded]
    assert [[type(u) for u in s] for s in fast] == [[type(u) for u in s] for s in folded]
    assert [[u for u in s if isinstance(u, Row)] for s in fast] == [
        [u for u in s if isinstance(u, Row)] for s in folded
    ]
    return fast


def test_the_usual_batch_is_its_rows_as_units_exactly_as_folded() -> None:
    """Distinct keys and no delete (the usual batch): `segments` skips the fold, with the very
    result the fold gives; anything else goes through the fold."""
    distinct = [mk(k, str(k), offset=n) for n, k in enumerate((5, 1.5, "5", 7, (1, 2), math.nan))]
    distinct.append(keyed({"id": None}, "null", offset=9))
    assert _distinct_writes(distinct) and _distinct_writes([mk(None, offset=0), mk(None, offset=1)])
    for insert_mode, exact in ((False, False), (True, False), (False, True)):
        (segment,) = both(distinct, insert_mode, exact)
        assert all(unit is row for unit, row in zip(segment, distinct, strict=True)), "each row its own unit"
    two = [keyed({"a": 1, "b": 2}, "x", offset=0), keyed({"b": 1, "a": 2}, "y", offset=1)]
    assert _distinct_writes(two) and len(both(two)[0]) == 2


def test_what_the_fast_path_leaves_to_the_fold() -> None:
    """A key twice, a delete, keys of other columns (more, or as many with other names), keyed and
    keyless rows together, an unhashable key, one record twice: the fold decides, as before."""
    assert not _distinct_writes([])
    assert not _distinct_writes([mk(7, offset=0), mk(7, offset=1)])
    assert both([mk(1, offset=0), mk(1.0, offset=1)])[0][0].rows[1].coord.offset == 1, "1 and 1.0: one key"
    assert isinstance(both([mk(1, offset=0), mk(2, op=Op.DELETE, offset=1)])[0][1], Unit), "a delete: a Unit"
    wider = keyed({"id": 2, "b": 1}, "w", offset=1)
    renamed = keyed({"other": 1}, "w", offset=1)
    keyless = mk(None, "a", offset=0)
    for rows in ([mk(1, offset=0), wider], [mk(1, offset=0), renamed], [mk(1, offset=0), mk(None, offset=1)]):
        assert not _distinct_writes(rows)
        assert len(both(rows)[0]) == 2, "other columns: two keys, never confused"
    # An unhashable key value (a JSON array): the fast path steps aside, the fold compares it by value.
    assert [len(s) for s in segments((mk([1], offset=0), mk(2, offset=1), mk([1], offset=2)), insert_mode=False)] == [2]
    assert not _distinct_writes([keyless, keyless]) and len(both([keyless, keyless])[0]) == 1, "one record twice"


def test_a_schemaless_key_is_one_key_in_any_column_order() -> None:
    """{"a": 1, "b": 2} and {"b": 2, "a": 1} are one key, {"b": 1, "a": 2} another: by column, not
    by position (a fold by position once merged two keys and left one of them unwritten)."""
    same = [keyed({"a": 1, "b": 2}, "x", offset=0), keyed({"b": 2, "a": 1}, "y", offset=1)]
    other = [keyed({"a": 1, "b": 2}, "x", offset=0), keyed({"b": 1, "a": 2}, "y", offset=1)]
    forcing_the_fold = keyed({"a": 9, "b": 9}, "", Op.DELETE, offset=2)
    (segment,) = both([*same, forcing_the_fold])
    assert [final.values["v"] for u in segment if (final := final_row(u))] == ["y"], "one key: the last write"
    (segment,) = both([*other, forcing_the_fold])
    assert [final.values["v"] for u in segment if (final := final_row(u))] == ["x", "y"], "two keys: both written"


def test_random_batches_give_what_the_fold_gives() -> None:
    rng = random.Random(7)

    def key() -> dict[str, Any]:
        if rng.random() < 0.5:
            return {"id": rng.randint(0, 15)}
        columns = [("a", rng.randint(0, 3)), ("b", rng.randint(0, 3))]
        rng.shuffle(columns)
        return dict(columns)

    for _ in range(500):
        width = rng.choice((1, 2))
        rows = [
            keyed(
                key() if width == 2 else {"id": rng.randint(0, 40)},
                str(n),
                rng.choice([Op.UPSERT] * 9 + [Op.DELETE]),
                n,
            )
            for n in range(rng.randint(1, 12))
        ]
        both(rows, insert_mode=rng.random() < 0.5, exact=rng.random() < 0.3)
