"""Review findings (second pass over bcb6c4b..HEAD), proven against the in-memory fakes.

Each test failed before its fix (listed in the review's commit) and guards it now."""

from __future__ import annotations

import gc
import json
import sys
from collections.abc import Mapping
from typing import Any

from sink.errors import RecordRejected
from sink.model import Coord, RawRecord
from sink.offsets import Ledger
from sink.outcomes import RoutingRules
from sink.pipeline import WriteRules
from sink.transforms import MappingRules
from sink.worker import GC_YOUNG_THRESHOLD
from tests.support.fakes import TP, FakeOffsets, FakeSource, FakeStore
from tests.support.harness import WorkerHarness, record
from tests.unit.test_outcomes import FakePublisher
from tests.unit.test_worker import FakeTx

P0: TP = ("orders", 0)


# ------------------------------------------------------------------------------ GIL switch interval


def test_run_restores_the_switch_interval_it_set() -> None:
    before = sys.getswitchinterval()
    try:
        h = WorkerHarness(FakeStore(FakeTx), write_in_background=True)
        assert h.then([record(0, {"id": 1})]).run() == 0
        assert sys.getswitchinterval() == before
    finally:
        sys.setswitchinterval(before)


def test_run_tunes_the_garbage_collector_while_it_runs_and_restores_it() -> None:
    before = gc.get_threshold()
    seen: list[tuple[tuple[int, ...], int]] = []
    h = WorkerHarness(FakeStore(FakeTx))
    h.then([record(0, {"id": 1})], lambda: seen.append((gc.get_threshold(), gc.get_freeze_count())))
    assert h.run() == 0
    ((threshold, frozen),) = seen
    assert threshold[0] == GC_YOUNG_THRESHOLD and threshold[1:] == before[1:]
    assert frozen > 0  # what existed at start is out of every collection
    assert gc.get_threshold() == before and gc.get_freeze_count() == 0


# ------------------------------------------------------------------------------ commit skipped in a rebalance


class RebalancingSource(FakeSource):
    """The first commit is answered as KafkaSource.commit answers REBALANCE_IN_PROGRESS /
    ILLEGAL_GENERATION / UNKNOWN_MEMBER_ID: it returns normally without committing anything."""

    skips = 1

    def commit(self, offsets: Mapping[TP, int]) -> bool:
        if self.skips:
            self.skips -= 1
            return False  # "commit skipped, the group is rebalancing"
        return super().commit(offsets)


def test_a_commit_skipped_for_a_rebalance_is_committed_by_the_revocation() -> None:
    store = FakeStore(FakeTx)
    h = WorkerHarness(store, batch_size=3, write_in_background=False)
    h.source = RebalancingSource(h.clock, store)
    h.worker.source = h.source
    h.source.when_done = h.worker.stop
    h.then([record(i, {"id": i}) for i in range(3)], h.wait(1.0), [], h.source.revoke([P0]))
    assert h.run() == 0
    assert store.values("orders") == [0, 1, 2]
    assert h.source.committed.get(P0) == 3, h.source.commits


# ------------------------------------------------------------------------------ exactly-once: _stale outlives a fence


def test_a_partition_given_back_after_a_fence_loses_no_record() -> None:
    store = FakeStore(FakeTx)
    offsets = FakeOffsets(store)
    publisher = FakePublisher()
    h = WorkerHarness(
        store,
        mapping=MappingRules(pk_mode="none"),
        write=WriteRules("insert", auto_create=True, stop_at_rejection=False),
        batch_size=3,
        routing=RoutingRules(tolerance="all", dlq_topic="dlq"),
        publisher=publisher,
        ledger=Ledger(offsets),
        write_in_background=False,
    )

    def raw(offset: int, value: bytes) -> RawRecord:
        return RawRecord(Coord("orders", 0, offset), None, value)

    def good(offset: int) -> RawRecord:
        return raw(offset, json.dumps({"id": offset}).encode())

    def another_worker_claims_p0() -> None:
        offsets.claim([P0])

    h.then(
        h.source.assign([P0]),
        [good(0), good(1), good(2)],  # one batch: rows and position 3
        another_worker_claims_p0,
        [raw(3, b"not json")],  # dead-lettered: the position moves with no row
        h.wait(1.0),
        [],  # the periodic commit's position-only transaction is refused: Fenced, P0 dropped
        h.source.revoke([P0]),
        h.source.assign([P0]),  # the group gives P0 back: it starts at 3 again (the table's position)
        [raw(3, b"not json"), good(4), good(5), good(6)],
    )
    assert h.run() == 0
    assert offsets.rows()[P0][0] == 7, offsets.rows()  # every record of P0 up to 6 settled
    assert store.values("orders") == [0, 1, 2, 4, 5, 6]


# ------------------------------------------------------------------------------ truncate refused by the database


class ReferencedTx(FakeTx):
    """The table is referenced by another table's foreign key: emptying it is refused (SQLSTATE 23503)."""

    def truncate(self, spec: Any) -> None:
        raise RecordRejected('update or delete on table "orders" violates foreign key constraint', sqlstate="23503")


def test_a_truncate_the_database_refuses_is_that_records_error() -> None:
    publisher = FakePublisher()
    h = WorkerHarness(
        FakeStore(ReferencedTx),
        mapping=MappingRules(pk_mode="record_value", pk_fields=("id",), cdc_format="debezium", truncate_enabled=True),
        write=WriteRules("upsert", auto_create=True, stop_at_rejection=False),
        routing=RoutingRules(tolerance="all", dlq_topic="dlq"),
        publisher=publisher,
        write_in_background=False,
    )
    create = {"before": None, "after": {"id": 1}, "source": {"table": "orders"}, "op": "c", "ts_ms": 1}
    truncate = {"before": None, "after": None, "source": {"table": "orders"}, "op": "t", "ts_ms": 2}
    after = {"before": None, "after": {"id": 2}, "source": {"table": "orders"}, "op": "c", "ts_ms": 3}
    h.then([record(0, create), record(1, truncate), record(2, after)])
    assert h.run() == 0
    assert len(publisher.on("dlq")) == 1
    assert h.source.committed.get(P0) == 3


# ------------------------------------------------------------------------------ a stop settles the rest of its part


def test_a_flood_stop_still_settles_the_committed_rows_after_the_bad_one() -> None:
    """The flood limit stops the sink at a rejected row; the rows its transaction committed after it
    (another partition's) are settled, so their offsets move with the stop."""
    store = FakeStore(FakeTx)
    routing = RoutingRules(tolerance="all", dlq_topic="dlq", max_consecutive=1)
    h = WorkerHarness(store, batch_size=2, routing=routing, publisher=FakePublisher(), write_in_background=False)
    h.then([record(0, {"id": 2, "v": "REJECT"}), record(0, {"id": 3}, partition=1)])
    assert h.run() == 1
    assert store.values("orders") == [3]
    assert h.source.committed.get(("orders", 1)) == 1, "partition 1's committed row settled"
    assert h.source.committed.get(P0) is None, "nothing of partition 0 past its bad record"
