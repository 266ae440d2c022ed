"""The group moves partitions while the worker is paused (a database outage): what was read of a
partition revoked meanwhile is dropped, not written; the partitions assigned meanwhile are read from
their committed offset once the outage is over; nothing is lost, and no commit passes what the
database holds."""

from __future__ import annotations

from sink.model import RawRecord, TableSpec
from sink.plan import Plan
from tests.support import fakes
from tests.support.fakes import FakeStore
from tests.support.harness import WorkerHarness, record

P0, P1 = ("orders", 0), ("orders", 1)


class UpsertTx(fakes.FakeTx):
    """Upserts by id; every id written is logged in the store's `written`."""

    def apply(self, spec: TableSpec, plan: Plan, mode: str) -> dict[int, str]:
        table = self.store.rows.setdefault(spec.name, {})
        for values in (dict(row) for write in plan.writes for row in write.rows):
            table[fakes.row_key(spec, values)] = values
            self.store.written.append(values["id"])  # type: ignore[attr-defined]
        return {}


def rows(partition: int, offsets: range) -> list[RawRecord]:
    return [record(o, {"id": partition * 100 + o}, partition) for o in offsets]


def test_partitions_revoked_and_assigned_during_an_outage() -> None:
    store = FakeStore(UpsertTx)
    store.written = []  # type: ignore[attr-defined]
    # In the foreground: the first batch's outage must begin before the next scripted polls (on a
    # loaded machine the writer thread may report it only after them).
    h = WorkerHarness(store, batch_size=2, write_in_background=False)
    store.outages = 3
    h.then(h.source.assign([P0]), rows(0, range(2)))  # a batch the database refuses: pause, back off
    # During the pause an eager rebalance takes P0 back (its unwritten rows are dropped) and gives
    # P0 and P1; the polls go on paused.
    h.source.while_paused = [h.source.revoke([P0]), h.source.assign([P0, P1])]
    h.then(rows(0, range(3)), rows(1, range(2)))  # after the outage: both from their committed offset (none)
    assert h.run() == 0
    assert h.source.polls_while_paused > 0 and not h.source.paused
    assert h.source.while_paused == [], "the rebalance happened during the pause"
    assert sorted(set(store.written)) == [0, 1, 2, 100, 101] and store.values() == [0, 1, 2, 100, 101]
    assert h.source.committed == {P0: 3, P1: 2}
    for commit, snapshot in zip(h.source.commits, h.source.snapshots, strict=True):
        for (_topic, partition), offset in commit.items():
            assert {partition * 100 + o for o in range(offset)} <= set(snapshot["orders"]), (commit, snapshot)
