"""An outage between the transactions of one batch (isolation commits parts as it goes): every
committed row is written once and each record settled once, with or without the writer thread,
and under exactly-once."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from sink.errors import DatabaseUnavailable, RecordRejected
from sink.model import TableSpec
from sink.outcomes import RoutingRules
from sink.pipeline import WriteRules
from sink.plan import Plan
from tests.support import fakes
from tests.support.fakes import FakeStore
from tests.support.harness import WorkerHarness
from tests.support.harness import record as rec


class CountingTx(fakes.FakeTx):
    """Upserts by id; id 3 violates a constraint. Counts how often each id went in a statement that
    the database took."""

    store: CountingStore

    def apply(self, spec: TableSpec, plan: Plan, mode: str) -> dict[int, str]:
        rows = [row for write in plan.writes for row in write.rows]
        if any(row["id"] == 3 for row in rows):
            raise RecordRejected("check constraint", sqlstate="23514")
        table = self.store.rows.setdefault(spec.name, {})
        for row in rows:
            table[(row["id"],)] = dict(row)
        self.store.applied.append([row["id"] for row in rows])
        return {}


class CountingStore(FakeStore):
    """Refuses its `fail_at`-th transaction (1-based) with an outage."""

    def __init__(self, fail_at: int | None) -> None:
        super().__init__(CountingTx)
        self.applied: list[list[int]] = []
        self.begun = 0
        self.fail_at = fail_at

    @contextmanager
    def transaction(self) -> Iterator[Any]:
        self.begun += 1
        if self.begun == self.fail_at:
            raise DatabaseUnavailable("connection refused")
        committed_before = len(self.applied)
        try:
            with super().transaction() as tx:
                yield tx
        except BaseException:
            del self.applied[committed_before:]  # rolled back: not applied
            raise


def isolating(store: CountingStore, **extra: Any) -> WorkerHarness:
    """Tolerance all, one savepoint per transaction: isolating the rejected row commits part by part."""
    return WorkerHarness(
        store,
        tolerance="all",
        routing=RoutingRules(tolerance="all"),
        write=WriteRules("upsert", True, True, False, max_savepoints=1),
        batch_size=6,
        **extra,
    )


def assert_each_good_row_written_once(store: CountingStore) -> None:
    assert store.values("orders") == [1, 2, 4, 5, 6]
    written = Counter(i for statement in store.applied for i in statement)
    assert all(n == 1 for n in written.values()), f"a committed row written again: {store.applied}"


@pytest.mark.parametrize("background", [True, False])
@pytest.mark.parametrize("fail_at", [None, 2, 3, 4])
def test_an_outage_between_the_transactions_of_an_isolating_batch_writes_each_row_once(
    background: bool, fail_at: int | None
) -> None:
    store = CountingStore(fail_at)
    h = isolating(store, write_in_background=background)
    h.then([rec(i - 1, {"id": i}) for i in range(1, 7)], [], h.wait(5.0), [])
    assert h.run() == 0
    assert_each_good_row_written_once(store)
    assert h.source.committed == {("orders", 0): 6}
    assert h.worker.counters.failed == 1
    assert h.worker.counters.rows_written == 5


@pytest.mark.parametrize("fail_at", [None, 3, 4])
def test_exactly_once_positions_follow_the_rows_written_whole_and_the_rejected_one(fail_at: int | None) -> None:
    from sink.offsets import Ledger
    from tests.support.fakes import FakeOffsets

    store = CountingStore(None)
    offsets = FakeOffsets(store)
    h = isolating(store, ledger=Ledger(offsets))
    arm = (lambda: setattr(store, "fail_at", store.begun + fail_at)) if fail_at else (lambda: None)
    h.then(h.source.assign([("orders", 0)]), arm, [rec(i - 1, {"id": i}) for i in range(1, 7)], [], h.wait(5.0), [])
    assert h.run() == 0
    assert_each_good_row_written_once(store)
    assert offsets.rows()[("orders", 0)][0] == 6
    assert h.source.committed == {("orders", 0): 6}
