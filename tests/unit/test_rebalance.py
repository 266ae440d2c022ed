"""Incremental (cooperative) revocation with the fakes: only the revoked partitions are flushed or
dropped; the partitions kept go on, and none of their records is lost, also when the database is
down during the revocation or goes down in the middle of its flush."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import wait

from tests.unit.test_worker import Harness, rec, rows

P0, P1 = ("orders", 0), ("orders", 1)


def _written(h: Harness) -> Callable[[], None]:
    """A script step: wait until the batch write in flight (if any) is over, so that its outage is
    met by the loop before the script ends (the worker stops when it does)."""

    def step() -> None:
        writing = h.worker._writing
        if writing is not None:
            wait([writing.future], timeout=10)

    return step


def test_a_cooperative_revoke_flushes_only_the_revoked_partition() -> None:
    h = Harness(batch_size=100, max_wait_ms=600_000)
    h.then(
        rows(1, 2, partition=0) + rows(10, 11, partition=1),
        h.source.revoke([P1]),
        rows(3, partition=0, start=2),  # returned by the poll that served the revocation
    )
    assert h.run() == 0
    assert h.source.commits[0] == {P1: 2}, "the revocation commits the revoked partition only"
    assert h.source.snapshots[0] == {"orders": [10, 11]}, "the kept partition's open rows were not flushed"
    assert h.store.values("orders") == [1, 2, 3, 10, 11]
    assert h.source.committed == {P0: 3, P1: 2}


def test_a_revoke_during_an_outage_drops_only_the_revoked_partition() -> None:
    h = Harness(batch_size=2)
    h.store.outages = 3
    h.then([rec(0, {"id": 1}, partition=0), rec(0, {"id": 10}, partition=1)], _written(h), [], [], [])
    h.source.while_paused = [
        h.source.revoke([P1]),
        [rec(1, {"id": 2}, partition=0)],  # fetched before the pause took effect
    ]
    assert h.run() == 0
    assert h.source.polls_while_paused > 0
    assert h.store.values("orders") == [1, 2], "the kept partition's records are all written, the revoked one's not"
    assert h.source.committed == {P0: 2}
    assert all(P1 not in commit for commit in h.source.commits), "nothing committed for a partition given up unwritten"


def test_an_outage_in_the_revoke_flush_keeps_the_kept_partitions_rows() -> None:
    h = Harness(batch_size=100, max_wait_ms=600_000)
    h.then(
        rows(1, 2, partition=0) + rows(10, partition=1),
        lambda: setattr(h.store, "outages", 1),  # the database goes down just as the revocation flushes
        h.source.revoke([P1]),
        rows(3, partition=0, start=2),
    )
    assert h.run() == 0
    assert h.store.values("orders") == [1, 2, 3], "the revoked row is dropped, the kept ones written later"
    assert h.source.committed == {P0: 3}
    assert all(P1 not in commit for commit in h.source.commits)


def test_an_eager_revoke_of_everything_still_flushes_and_commits_everything() -> None:
    h = Harness(batch_size=100, max_wait_ms=600_000)
    h.then(rows(1, 2, partition=0) + rows(10, partition=1), h.source.revoke([P0, P1]))
    assert h.run() == 0
    assert h.source.commits[0] == {P0: 2, P1: 1}
    assert h.source.snapshots[0] == {"orders": [1, 2, 10]}
