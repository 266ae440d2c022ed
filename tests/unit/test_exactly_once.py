"""Exactly-once in the worker, against the in-memory fakes: positions written with the rows (never
past an unsettled record), position-only transactions for what settled without rows, the start
from the table on assignment, and fencing (a partition claimed by another worker is dropped, the
others go on)."""

from __future__ import annotations

import json
from typing import Any

from sink.model import Coord, Outcome, RawRecord, Settled, Status
from sink.offsets import Ledger, OffsetTracker
from sink.outcomes import RoutingRules
from sink.pipeline import WriteRules
from sink.transforms import MappingRules
from tests.support.fakes import TP, FakeOffsets, FakeStore
from tests.support.harness import WorkerHarness
from tests.unit.test_outcomes import FakePublisher
from tests.unit.test_worker import FakeTx

P0: TP = ("orders", 0)
P1: TP = ("orders", 1)


class RecordingOffsets(FakeOffsets):
    """Also remembers, for each position written, the ids the table held in that transaction."""

    def __init__(self, store: FakeStore) -> None:
        super().__init__(store)
        self.history: list[tuple[TP, int | None, list[int]]] = []

    def advance(self, tx: Any, positions: Any) -> frozenset[TP]:
        fenced = super().advance(tx, positions)
        for tp, (offset, _epoch) in positions.items():
            if tp not in fenced:
                self.history.append((tp, offset, self.store.values("orders")))
        return fenced


class Harness(WorkerHarness):
    def __init__(
        self,
        store: FakeStore | None = None,
        publisher: FakePublisher | None = None,
        batch_size: int = 6,
        write_in_background: bool = True,
    ):
        store = store or FakeStore(FakeTx)
        self.offsets = RecordingOffsets(store)
        tolerance = "all" if publisher else "none"
        super().__init__(
            store,
            mapping=MappingRules(pk_mode="none"),
            write=WriteRules("insert", auto_create=True, stop_at_rejection=tolerance == "none"),
            batch_size=batch_size,
            routing=RoutingRules(tolerance=tolerance, dlq_topic="dlq" if publisher else None),
            publisher=publisher,
            ledger=Ledger(self.offsets),
            retry_delay_initial_s=0.25,
            write_in_background=write_in_background,
        )

    def run(self, *steps: Any) -> int:  # type: ignore[override]
        self.then(*steps)
        return super().run()


def rec(partition: int, offset: int, value: Any = None) -> RawRecord:
    value = {"id": partition * 100 + offset} if value is None else value
    return RawRecord(Coord("orders", partition, offset), None, json.dumps(value).encode())


def recs(partition: int, offsets: range) -> list[RawRecord]:
    return [rec(partition, o) for o in offsets]


def ids(partition: int, offsets: range) -> list[int]:
    return [partition * 100 + o for o in offsets]


def test_rows_and_positions_are_written_together() -> None:
    h = Harness()
    assert h.run(h.source.assign([P0, P1]), recs(0, range(3)) + recs(1, range(3)), recs(0, range(3, 5))) == 0
    assert h.store.values("orders") == ids(0, range(5)) + ids(1, range(3))  # pk none: a duplicate is a row
    assert h.offsets.rows() == {P0: (5, 1), P1: (3, 1)}
    for tp, offset, held in h.offsets.history:  # every position covers only rows already in its transaction
        assert set(ids(tp[1], range(offset or 0))) <= set(held), (tp, offset)
    assert h.source.committed == {P0: 5, P1: 3}  # Kafka still hears of it, after the database


def test_a_restart_starts_where_the_table_says_and_writes_nothing_twice() -> None:
    first = Harness()
    first.run(first.source.assign([P0]), recs(0, range(6)))
    assert first.offsets.rows() == {P0: (6, 1)}
    second = Harness(store=first.store)
    second.run(second.source.assign([P0]), recs(0, range(6, 8)))
    assert second.source.started == {P0: 6}
    assert second.offsets.rows() == {P0: (8, 2)}  # the claim bumped the epoch
    assert second.store.values("orders") == ids(0, range(8))


def test_a_partition_never_written_starts_at_the_committed_offset() -> None:
    h = Harness()
    h.run(h.source.assign([P0]))
    assert h.source.started == {}
    assert h.offsets.rows() == {P0: (None, 1)}


def test_the_position_stops_before_a_record_waiting_for_its_dead_letter_ack() -> None:
    """Offset 1 is rejected by the table: its transaction writes offsets 0 and 2 but position 1;
    once the dead-letter topic acknowledged it (before the commit), a position-only transaction
    moves the partition to 3, with no row."""
    publisher = FakePublisher()
    h = Harness(publisher=publisher, batch_size=3)
    records = [rec(0, 0), rec(0, 1, {"id": "REJECT"}), rec(0, 2)]
    assert h.run(h.source.assign([P0]), records) == 0
    assert h.store.values("orders") == [0, 2]
    assert [offset for tp, offset, _ in h.offsets.history] == [1, 3]
    assert h.offsets.history[0][2] == [0, 2]
    assert len(publisher.on("dlq")) == 1
    assert h.offsets.rows() == {P0: (3, 1)}


def test_a_partition_claimed_by_another_worker_is_dropped_and_the_others_go_on() -> None:
    # In the foreground: batch 1 must be written before the claim, whatever the writer thread's pace.
    h = Harness(write_in_background=False)

    def another_worker_claims_p0() -> None:
        FakeOffsets(h.store).claim([P0])

    code = h.run(
        h.source.assign([P0, P1]),
        recs(0, range(3)) + recs(1, range(3)),  # batch 1: written
        another_worker_claims_p0,
        recs(0, range(3, 6)) + recs(1, range(3, 6)),  # batch 2: P0's compare-and-set refused
        recs(0, range(6, 8)) + recs(1, range(6, 7)),  # P0 fetched before the group took it: dropped
    )
    assert code == 0
    assert h.store.values("orders") == ids(0, range(3)) + ids(1, range(7))
    assert h.offsets.rows() == {P0: (3, 2), P1: (7, 1)}  # the new owner's epoch, and nothing of ours
    assert all(commit.get(P0, 3) == 3 for commit in h.source.commits), h.source.commits


def test_snapshot_prefix_counts_this_transactions_outcomes_only_up_to_the_first_gap() -> None:
    tracker = OffsetTracker()
    for offset in range(10, 16):
        tracker.track(Coord("orders", 0, offset))
    tracker.settle(Coord("orders", 0, 10))
    tracker.settle(Coord("orders", 0, 13))  # settled, but after a gap
    snapshot = tracker.snapshot([P0])
    tracker.settle(Coord("orders", 0, 11))  # later settlements do not change the snapshot
    assert snapshot.prefix(P0) == 11
    assert snapshot.prefix(P0, {11}) == 12
    assert snapshot.prefix(P0, {11, 12}) == 14
    assert snapshot.prefix(P0, {11, 12, 14, 15}) == 16
    assert snapshot.prefix(P1, {1}) is None


def test_a_failed_outcome_in_the_transaction_does_not_move_the_position() -> None:
    store = FakeStore(FakeTx)
    offsets = FakeOffsets(store)
    ledger = Ledger(offsets)
    ledger.claim([P0])
    tracker = OffsetTracker()
    for offset in range(3):
        tracker.track(Coord("orders", 0, offset))
    positions = ledger.for_batch(tracker.snapshot([P0]))
    written = [Outcome(rec(0, o), Status.WRITTEN, "orders", "insert", None) for o in (0, 2)]
    failed = Outcome(rec(0, 1), Status.FAILED, "orders", "insert", None)
    with store.transaction() as tx:
        positions.before_commit(tx, Settled([written[0], failed, written[1]]))
    positions.after_commit()
    assert offsets.rows() == {P0: (1, 1)}
    assert ledger.written[P0] == 1


def test_reset_offsets_execute_is_refused_in_one_line_under_exactly_once(capsys: Any) -> None:
    import argparse

    from sink.reset import add_arguments, run_command

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    connected: list[bool] = []

    def connect() -> Any:
        connected.append(True)
        raise AssertionError("the group must not be touched")

    args = parser.parse_args(["--all-topics", "--to-earliest", "--execute"])
    assert run_command(args, "sink-orders", ("orders",), None, connect, exactly_once=True) == 2
    err = capsys.readouterr().err
    assert connected == [] and len(err.strip().splitlines()) == 1
    assert "SINK_DELIVERY_GUARANTEE=exactly_once" in err and "offsets table" in err
