"""The retry of a batch after an outage, with a writer thread: each attempt runs on that thread while
the loop polls with the partitions paused (heartbeats, group membership), as the first write's long
wait does; and the per-table numbers count what the database took, once per batch.

Against the in-memory fakes of tests/unit/test_worker_overlap.py: a statement held on a gate is a
write waiting for a table lock, let go only by a poll while paused (never by sleeping), so an
attempt waited for without polling holds its gate until it gives up and the test fails.
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from sink import worker as worker_module
from tests.unit import test_outage_between_committed_parts as parts
from tests.unit import test_worker_overlap as overlap
from tests.unit.test_worker_overlap import P0, WRITER_THREAD, Harness, rec, rows

P1 = ("orders", 1)


@pytest.fixture(autouse=True)
def quick(monkeypatch: pytest.MonkeyPatch) -> None:
    """A write is long after 10 ms (waited for while polling at once); a gate nobody opens gives
    up after a second: a failure, not a hang."""
    monkeypatch.setattr(worker_module, "LONG_WRITE_S", 0.01)
    monkeypatch.setattr(overlap, "GATE_TIMEOUT_S", 1.0)


def attempts_on(h: Harness, record_id: int) -> list[str]:
    """The threads of the statements that wrote `record_id` (or tried to), in order."""
    return [thread.rsplit("_", 1)[0] for thread, ids, _ in h.store.attempts if record_id in ids]


def outage_after(h: Harness, ids: tuple[int, ...]) -> Any:
    """A script step: once the statement of `ids` went through, the database goes away (its next
    transaction is refused)."""

    def step() -> None:
        deadline = time.monotonic() + 5
        while ids not in h.store.applied and time.monotonic() < deadline:
            time.sleep(0.001)
        h.store.outages = 1

    return step


def test_the_retry_after_an_outage_waits_for_a_lock_on_the_writer_thread_while_polling_paused() -> None:
    h = Harness()
    locked = h.store.gate(3)  # the retried attempt of (3, 4) then waits for a lock on its table
    while_locked: list[tuple[bool, int, float | None]] = []  # (paused, pauses, last heartbeat) per poll

    def paused_poll() -> None:
        if locked.holding:
            while_locked.append((h.source.paused, h.source.pauses, h.worker.health.last_beat))
            if len(while_locked) == 5:
                locked.open()

    h.source.while_paused = paused_poll
    # (3, 4) meets the outage on the writer thread; a due commit collects it, and its retry waits
    h.then(rows(1, 2), h.wait(1.0), [], outage_after(h, (1, 2)), rows(3, 4), h.wait(2.0), [], rows(5, 6))
    assert h.run() == 0

    assert h.store.refusals and h.store.refusals[0].startswith(WRITER_THREAD), "the outage was not met"
    assert attempts_on(h, 3) == [WRITER_THREAD], "the retried attempt did not run on the writer thread"
    assert len(while_locked) == 5, "the loop did not poll while the retried write waited for the lock"
    assert all(paused for paused, _, _ in while_locked), "consumption resumed while the retry went on"
    assert len({pauses for _, pauses, _ in while_locked}) == 1, "resumed and paused again inside the outage's pause"
    beats = [beat for _, _, beat in while_locked]
    assert beats == sorted(beats) and beats[0] != beats[-1], "no heartbeat while the retry waited"
    assert not h.source.paused and h.worker.health.retrying_since is None
    assert h.store.written_ids() == [1, 2, 3, 4, 5, 6], "each once, in order"
    assert h.source.committed == {P0: 6}
    overlap.assert_commits_cover_only_written_rows(h)


def test_a_revocation_while_the_retried_write_waits_settles_it_commits_and_goes_on() -> None:
    h = Harness()
    locked = h.store.gate(3)
    at_revoke: dict[str, Any] = {}

    def paused_poll() -> None:  # librdkafka runs the revoke callback inside a poll of the wait
        if locked.holding and not at_revoke:
            locked.open()
            h.source.on_revoke([P0])
            at_revoke.update(committed=dict(h.source.committed), values=h.store.values())

    h.source.while_paused = paused_poll
    # (the new owner, us, reads on from 4)
    h.then(rows(1, 2), h.wait(1.0), [], outage_after(h, (1, 2)), rows(3, 4), h.wait(2.0), [], rows(5, 6, start=4))
    assert h.run() == 0

    assert at_revoke, "the revocation never came while the retried write waited"
    assert at_revoke["values"] == [1, 2, 3, 4], "the retried batch was not settled before the partition moved"
    assert at_revoke["committed"] == {P0: 4}, "the commit before giving up the partition misses the retried batch"
    assert h.store.written_ids() == [1, 2, 3, 4, 5, 6], "each once, in order"
    assert h.worker.counters.batches == 3, "the retried batch counted twice (or not at all)"
    assert h.source.committed == {P0: 6}
    assert not h.source.paused
    overlap.assert_commits_cover_only_written_rows(h)


def test_rows_revoked_during_the_back_off_stay_dropped_when_assigned_again_during_the_attempt() -> None:
    """Revoked during an outage's back-off, a partition's rows of the retried batch are dropped
    (its new owner reads them from the committed offset). Assigned to us again while the retry's
    attempt is waited for, they must stay dropped until the retry ends: the rest of the batch
    after a hand-back (the refused 12) must not write them from the old read."""
    h = Harness(tolerance="all", batch_size=4)
    locked = h.store.gate(11)
    steps: list[str] = []

    def paused_poll() -> None:
        if h.worker._backing_off and "revoked" not in steps:
            steps.append("revoked")  # in the back-off
            h.source.on_revoke([P0])
        elif locked.holding and "assigned" not in steps:
            steps.append("assigned")  # in the attempt's wait
            h.source.on_assign([P0])
            locked.open()

    def database_goes_away() -> None:
        h.store.outages = 1

    h.source.while_paused = paused_poll
    batch = [rec(0, {"id": 11}, 1), rec(1, {"id": 12, "v": "REJECT"}, 1), rec(0, {"id": 1}), rec(1, {"id": 2})]
    h.then(database_goes_away, batch[:2], batch[2:], h.wait(2.0), [])  # the due commit collects the outage
    assert h.run() == 0

    assert steps == ["revoked", "assigned"]
    assert h.store.values() == [11], "rows of the partition revoked during the outage were written from the old read"
    assert h.source.committed == {P1: 2}
    assert h.worker.counters.failed == 1


def test_after_a_revocation_takes_the_retry_over_records_of_a_partition_assigned_again_are_written() -> None:
    """P0 is revoked during the back-off (its rows of the retried batch dropped), then, while the
    next attempt is waited for, assigned again, and P1 revoked: the callback collects the attempt,
    which met the outage again. The retry is over: P0's records read anew are written, none dropped
    as if they belonged to that retry."""
    h = Harness(batch_size=4)
    held = overlap.Gate()
    steps: list[str] = []

    def hold_the_attempt() -> None:
        held.entered.set()
        if not held.opened.wait(overlap.GATE_TIMEOUT_S):
            h.store.stuck.append(0)

    def paused_poll() -> None:
        if h.worker._backing_off and "revoked P0" not in steps:
            steps.append("revoked P0")  # in the back-off
            h.source.on_revoke([P0])
            h.store.before_transaction = hold_the_attempt  # the next attempt's transaction
        elif held.entered.is_set() and "revoked P1" not in steps:
            steps.append("revoked P1")  # in the attempt's wait
            h.source.on_assign([P0])
            h.store.outages = 1  # the attempt meets the outage again
            held.open()
            h.source.on_revoke([P1])

    def database_goes_away() -> None:
        h.store.outages = 1

    h.source.while_paused = paused_poll
    read = [rec(0, {"id": 11}, 1), rec(1, {"id": 12}, 1), rec(0, {"id": 1}), rec(1, {"id": 2})]
    read_again = [rec(0, {"id": 1}), rec(1, {"id": 2})]  # P0, from its committed offset
    h.then(database_goes_away, read, h.wait(2.0), [], read_again, h.wait(2.0), [])
    assert h.run() == 0

    assert steps == ["revoked P0", "revoked P1"]
    assert h.store.values() == [1, 2], "a record of the partition assigned again was dropped"
    assert h.source.committed == {P0: 2}


# ------------------------------------------------------------------------------ per-table numbers


@pytest.mark.parametrize("background", [True, False], ids=["background", "foreground"])
@pytest.mark.parametrize("fail_at", [None, 2, 3, 4], ids=["no-outage", "outage@2", "outage@3", "outage@4"])
def test_the_per_table_numbers_count_the_rows_the_database_took_once_per_batch(
    background: bool, fail_at: int | None
) -> None:
    """A batch whose refused row (id 3) is isolated part by part, handed back by the writer thread,
    maybe with an outage between its parts: the table's rows add up with the rows written, and the
    batch is observed once."""
    store = parts.CountingStore(fail_at)
    h = parts.isolating(store, write_in_background=background)
    h.then([rec(i - 1, {"id": i}) for i in range(1, 7)], [], h.wait(5.0), [rec(6, {"id": 7})], [])
    assert h.run() == 0
    assert store.values("orders") == [1, 2, 4, 5, 6, 7]
    stats, counters = h.worker.stats, h.worker.counters
    table = stats.table_view()["orders"]
    assert (counters.rows_written, counters.failed, counters.batches) == (6, 1, 2)
    assert table.rows == counters.rows_written, "the per-table counter counts a refused row (or misses a part)"
    assert table.batches == stats.batch_rows["orders"].count == counters.batches
    assert stats.batch_rows["orders"].sum == counters.rows_written
