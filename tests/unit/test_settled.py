"""Settled: the outcomes of committed transactions, with rows written whole kept as runs of rows
(`WrittenRows`) whose Outcomes are made only when read; the router settles such runs by their
coordinates and routes each outcome when a report or a ratio window needs it."""

from __future__ import annotations

import json
from typing import Any

from sink.errors import RecordRejected
from sink.model import Coord, Op, Outcome, RawRecord, Row, Settled, Stage, Status, TableSpec, WrittenRows
from sink.outcomes import OutcomeRouter, RoutingRules
from tests.unit.test_outcomes import FakePublisher

SPEC = TableSpec("orders", (), ("id",))


def row(offset: int, partition: int = 0) -> Row:
    raw = RawRecord(Coord("orders", partition, offset), b"k", b"{}", (), 1_700_000_000_000 + offset)
    return Row(raw, "orders", Op.UPSERT, {"id": offset}, {"id": offset}, SPEC)


def failed(offset: int) -> Outcome:
    raw = RawRecord(Coord("orders", 0, offset), b"k", b"{", ())
    error = RecordRejected("rejected by the database", sqlstate="23514").for_record(raw.coord)
    return Outcome(raw, Status.FAILED, "orders", "upsert", {"id": offset}, Stage.TASK_PUT, error)


def test_written_rows_read_as_the_outcomes_they_stand_for_in_order() -> None:
    rows = [row(0), row(1)]
    bad = failed(2)
    settled = Settled()
    settled.add_written("orders", "upsert", rows)
    settled.add([bad])
    settled.add_written("orders", "upsert", [row(3)])
    expected = [Outcome(r.raw, Status.WRITTEN, "orders", "upsert", r.key) for r in rows]
    assert list(settled) == [*expected, bad, Outcome(row(3).raw, Status.WRITTEN, "orders", "upsert", {"id": 3})]
    assert len(settled) == 4 and settled[1] == expected[1] and settled[-1].coord.offset == 3
    assert list(settled.coords()) == [Coord("orders", 0, n) for n in range(4)]
    assert list(settled.coords(failed=False)) == [Coord("orders", 0, n) for n in (0, 1, 3)], "not the failed one"
    assert settled.failed


def test_failed_only_when_an_outcome_failed_and_merge_keeps_order() -> None:
    first, second = Settled(), Settled([failed(1)])
    first.add_written("orders", "insert", [row(0)])
    assert not first.failed
    first.merge(second)
    assert first.failed and [o.coord.offset for o in first] == [0, 1]
    empty = Settled()
    empty.add([])
    empty.add_written("orders", "upsert", [])
    assert len(empty) == 0 and empty.groups == [] and not empty.failed


def tracked(router: OutcomeRouter, *offsets: int) -> None:
    for offset in offsets:
        router.tracker.track(Coord("orders", 0, offset))


def test_the_router_settles_written_rows_by_their_coordinates() -> None:
    router = OutcomeRouter(RoutingRules(tolerance="all"), None)
    tracked(router, 0, 1, 2, 3)
    settled = Settled()
    settled.add_written("orders", "upsert", [row(0), row(1)])
    settled.add([failed(2)])
    settled.add_written("orders", "upsert", [row(3)])
    router.settled(settled)
    assert router.tracker.committable() == {("orders", 0): 4}
    assert router.counters.rows_written == 3 and router.counters.failed == 1
    assert router.flood.consecutive == 0, "a good row after the failure ends the run of failures"


def test_with_a_result_topic_each_written_row_is_reported() -> None:
    publisher = FakePublisher()
    router = OutcomeRouter(RoutingRules(result_topic="ok"), publisher)
    tracked(router, 0, 1)
    settled = Settled()
    settled.add_written("orders", "insert", [row(0), row(1)])
    router.settled(settled)
    router.flush()
    reports: list[dict[str, Any]] = [json.loads(r["value"]) for r in publisher.on("ok")]
    assert [(r["operation"], r["status"], r["key"]) for r in reports] == [
        ("insert", "written", {"id": 0}),
        ("insert", "written", {"id": 1}),
    ]
    assert router.tracker.committable() == {("orders", 0): 2}


def test_written_rows_make_no_outcome_until_read() -> None:
    rows = [row(0)]
    run = WrittenRows("orders", "upsert", rows)
    assert len(run) == 1 and run.coords() == [rows[0].raw.coord]
    assert next(iter(run)) == Outcome(rows[0].raw, Status.WRITTEN, "orders", "upsert", {"id": 0})
