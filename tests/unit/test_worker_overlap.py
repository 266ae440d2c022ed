"""The worker's overlap of a batch's write (on the writer thread) with polling and preparing the next,
against the in-memory fakes of tests/support/fakes.py.

The fake database holds a statement on a *gate* (a `threading.Event`) for as long as a test wants:
the write it belongs to is stuck, like a statement waiting for a lock on its table. Gates are opened
from the consumer's side (a poll while the partitions are paused, or a step of the poll script), so
every interleaving below is forced by events, never by sleeping; a gate that nobody opens gives up
after `GATE_TIMEOUT_S` and the test fails instead of hanging.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any

import pytest

from sink import worker as worker_module
from sink.batch import Batcher
from sink.errors import RecordRejected
from sink.model import Batch, RawRecord, TableSpec
from sink.outcomes import RoutingRules
from sink.pipeline import WriteRules
from sink.plan import Plan
from tests.support import fakes
from tests.support.fakes import TP, Clock, FakeSource, FakeStore
from tests.support.harness import WorkerHarness
from tests.support.harness import record as rec

GATE_TIMEOUT_S = 10.0  # a gate nobody opens: the statement goes on and the test fails (`store.stuck`)
P0: TP = ("orders", 0)
WRITER_THREAD = "sink-writer"


@pytest.fixture
def long_writes_soon(monkeypatch: pytest.MonkeyPatch) -> None:
    """A write counts as long after 10 ms instead of a second: the held writes below are waited
    for while polling at once, and the tests do not spend real seconds waiting for that."""
    monkeypatch.setattr(worker_module, "LONG_WRITE_S", 0.01)


# ------------------------------------------------------------------------------ fake database


@dataclass
class Gate:
    """Holds the first statement that writes a given record id until `open()`."""

    entered: threading.Event = field(default_factory=threading.Event)
    opened: threading.Event = field(default_factory=threading.Event)

    @property
    def holding(self) -> bool:
        """A statement is stuck on this gate right now."""
        return self.entered.is_set() and not self.opened.is_set()

    def open(self) -> None:
        self.opened.set()


class GatedTx(fakes.FakeTx):
    """Upserts by `id`; a value 'REJECT' violates a check constraint, a value 'BUG' raises what no
    adapter ever should (a bug); a statement holding a gated id waits for its gate first."""

    store: GatedStore

    def apply(self, spec: TableSpec, plan: Plan, mode: str) -> dict[int, str]:
        store = self.store
        rows = [row for write in plan.writes for row in write.rows]
        ids = tuple(row["id"] for row in rows)
        store.attempts.append((threading.current_thread().name, ids, store.rows_settled()))
        for record_id in ids:
            gate = store.gates.pop(record_id, None)
            if gate is not None:
                gate.entered.set()
                if not gate.opened.wait(GATE_TIMEOUT_S):
                    store.stuck.append(record_id)
        table = store.rows.setdefault(spec.name, {})
        for values in map(dict, rows):
            if "BUG" in values.values():
                raise RuntimeError("an adapter bug: 'NoneType' object is not subscriptable")
            if "REJECT" in values.values():
                raise RecordRejected("value 'REJECT' violates check constraint", sqlstate="23514")
            table[fakes.row_key(spec, values)] = values
        store.applied.append(ids)
        return {}


class GatedStore(FakeStore):
    def __init__(self) -> None:
        super().__init__(GatedTx)
        self.gates: dict[int, Gate] = {}  # record id -> the gate its first statement waits for
        self.attempts: list[tuple[str, tuple[int, ...], int]] = []  # (thread, ids, rows settled then)
        self.applied: list[tuple[int, ...]] = []  # ids of the statements that went through, in order
        self.stuck: list[int] = []  # gates that were never opened
        self.refusals: list[str] = []  # the threads whose transactions the outage refused
        self.before_transaction: Callable[[], None] | None = None  # runs once, at the next transaction
        self.rows_settled: Callable[[], int] = lambda: 0

    def gate(self, record_id: int) -> Gate:
        gate = self.gates[record_id] = Gate()
        return gate

    def transaction(self) -> AbstractContextManager[fakes.FakeTx]:  # type: ignore[override]
        hook, self.before_transaction = self.before_transaction, None
        if hook is not None:
            hook()
        if self.outages:
            self.refusals.append(threading.current_thread().name)
        return super().transaction()

    def written_ids(self) -> list[int]:
        """Every id of every statement that went through, in the order they did."""
        return [record_id for ids in self.applied for record_id in ids]


# ------------------------------------------------------------------------------ fake consumer


class Source(FakeSource):
    """`FakeSource`, and while paused: each poll runs `while_paused` (where librdkafka would run a
    rebalance callback, or where a test opens a gate), and the first one hands out `late` (records
    fetched before the pause took effect). A paused poll yields the interpreter for a moment, as a
    real poll's wait does, so the writer thread runs."""

    def __init__(self, clock: Clock, store: GatedStore) -> None:
        super().__init__(clock, store)
        self.late: list[RawRecord] = []
        self.while_paused: Callable[[], None] = lambda: None

    def poll(self, max_records: int, timeout: float) -> list[RawRecord]:
        if not self.paused:
            return super().poll(max_records, timeout)
        self.clock.now += timeout
        self.polls_while_paused += 1
        time.sleep(0.001)
        self.while_paused()
        late, self.late = self.late, []
        return late


class HookedBatcher(Batcher):
    """A Batcher that runs `on_drain` (once) when the worker drains it: the first thing a shutdown does."""

    on_drain: Callable[[], None] | None = None

    def drain(self) -> list[Batch]:
        hook, self.on_drain = self.on_drain, None
        if hook is not None:
            hook()
        return super().drain()


class FakePublisher:
    """A dead-letter producer that acknowledges everything on flush."""

    def __init__(self) -> None:
        self.pending: list[tuple[str, Callable[[Exception | None], None]]] = []
        self.sent: list[str] = []

    def publish(self, topic, key, value, headers, timestamp, on_done) -> None:  # type: ignore[no-untyped-def]
        self.pending.append((topic, on_done))

    def flush(self) -> None:
        pending, self.pending = self.pending, []
        for topic, on_done in pending:
            self.sent.append(topic)
            on_done(None)


# ------------------------------------------------------------------------------ harness


class Harness(WorkerHarness):
    def __init__(
        self,
        *,
        background: bool = True,
        tolerance: str = "none",
        batch_size: int = 2,
        max_wait_ms: int = 600_000,
        dlq_topic: str | None = None,
    ) -> None:
        clock = Clock()
        store = GatedStore()
        self.batcher = HookedBatcher(batch_size, max_wait_ms, clock)
        super().__init__(
            store,
            clock=clock,
            source=Source(clock, store),
            write=WriteRules("upsert", auto_create=True, stop_at_rejection=tolerance == "none"),
            batcher=self.batcher,
            routing=RoutingRules(tolerance=tolerance, dlq_topic=dlq_topic),
            publisher=FakePublisher() if dlq_topic else None,
            shutdown_timeout_s=1000.0,  # paused polls move the fake clock: never let it cut a test short
            write_in_background=background,
        )
        self.store: GatedStore = store
        self.source: Source = self.source  # type: ignore[assignment]
        self.store.rows_settled = lambda: self.worker.counters.rows_written
        self.commit_log: list[tuple[dict[TP, int], list[int]]] = []  # (offsets, ids whose write had started)
        commit = self.source.commit

        def logged_commit(offsets: Mapping[TP, int]) -> bool:
            started = [i for _, ids, _ in self.store.attempts for i in ids]
            committed = commit(offsets)
            self.commit_log.append((dict(offsets), started))
            return committed

        self.source.commit = logged_commit  # type: ignore[method-assign]

    def run(self) -> int:
        code = super().run()
        assert self.store.stuck == [], f"the writes holding ids {self.store.stuck} were never let go"
        return code

    def committed_at_most(self, offset: int, tp: TP = P0) -> bool:
        return all(offsets.get(tp, 0) <= offset for offsets, _ in self.commit_log)

    def writer_threads(self) -> set[str]:
        return {thread.rsplit("_", 1)[0] for thread, _, _ in self.store.attempts}


def rows(*ids: int, start: int | None = None, partition: int = 0) -> list[RawRecord]:
    """Records with {"id": i}; by default record id i sits at offset i - 1."""
    first = ids[0] - 1 if start is None else start
    return [rec(first + n, {"id": i, "v": f"v{i}"}, partition) for n, i in enumerate(ids)]


def assert_commits_cover_only_written_rows(h: Harness) -> None:
    """At every commit, each record below the committed offset (id = offset + 1) is in the table."""
    for commit, snapshot in zip(h.source.commits, h.source.snapshots, strict=True):
        for (_, _partition), offset in commit.items():
            missing = set(range(1, offset + 1)) - set(snapshot.get("orders", []))
            assert not missing, f"commit of offset {offset} before ids {sorted(missing)} were written"


# ------------------------------------------------------------------------------ a stuck write


@pytest.mark.usefixtures("long_writes_soon")
def test_the_loop_keeps_polling_paused_while_a_write_is_stuck_and_writes_nothing_past_it() -> None:
    h = Harness()
    stuck = h.store.gate(3)  # the second batch, (3, 4), waits for a lock on its table
    seen: dict[str, Any] = {}
    polls_while_stuck = 0

    def paused_poll() -> None:
        nonlocal polls_while_stuck
        if not stuck.holding:
            return
        polls_while_stuck += 1
        if polls_while_stuck == 5:  # the loop went on polling all along: let the write finish
            seen.update(
                paused=h.source.paused,
                attempts=[ids for _, ids, _ in h.store.attempts],
                committed=dict(h.source.committed),
            )
            stuck.open()

    h.source.while_paused = paused_poll
    h.then(rows(1, 2), h.wait(1.0), [], rows(3, 4), rows(5, 6), rows(7, 8))
    assert h.run() == 0

    assert seen, "the loop never polled while the write was stuck"
    assert seen["paused"], "consumption was not paused while the write was stuck"
    assert seen["attempts"] == [(1, 2), (3, 4)], "a batch was written while the one before it was stuck"
    assert seen["committed"] == {P0: 2}, "committed past the stuck batch (or not what settled before it)"
    assert h.source.pauses >= 1 and not h.source.paused
    assert h.writer_threads() >= {WRITER_THREAD}

    assert [ids for _, ids, _ in h.store.attempts] == [(1, 2), (3, 4), (5, 6), (7, 8)], "in order, each once"
    settled_before = {ids: settled for _, ids, settled in h.store.attempts}
    assert settled_before[(5, 6)] == 4, "the batch after the stuck one started before the stuck one settled"
    assert h.store.values() == list(range(1, 9))
    assert h.source.committed == {P0: 8}
    assert h.worker.tracker.unsettled() == 0
    assert_commits_cover_only_written_rows(h)


@pytest.mark.usefixtures("long_writes_soon")
def test_records_fetched_before_the_pause_are_held_and_written_later_in_order_exactly_once() -> None:
    h = Harness()
    stuck = h.store.gate(1)
    h.source.late = rows(5, 6, 7)  # already fetched when the pause took effect
    polls_while_stuck = 0

    def paused_poll() -> None:
        nonlocal polls_while_stuck
        if stuck.holding:
            polls_while_stuck += 1
            if polls_while_stuck == 3:
                stuck.open()

    h.source.while_paused = paused_poll
    h.then(rows(1, 2), rows(3, 4), rows(8, 9))
    assert h.run() == 0
    assert h.source.late == [], "the late records were never handed out"
    assert h.store.written_ids() == list(range(1, 10)), "each record once, in offset order"
    assert h.store.applied == [(1, 2), (3, 4), (5, 6), (7, 8), (9,)]
    assert h.source.committed == {P0: 9}
    assert h.worker.counters.records_in == 9
    assert h.worker.tracker.unsettled() == 0
    assert_commits_cover_only_written_rows(h)


@pytest.mark.usefixtures("long_writes_soon")
def test_a_due_commit_puts_off_the_write_in_flight_and_waits_for_it_one_interval_later() -> None:
    h = Harness()
    gates = [h.store.gate(first) for first in (1, 3, 5, 7, 9)]  # every batch's write is held
    opened: list[Gate] = []

    def paused_poll() -> None:  # a write finishes only while the loop waits for it, polling
        for gate in gates:
            if gate.holding:
                gate.open()
                opened.append(gate)

    h.source.while_paused = paused_poll
    for n in range(5):
        h.then(h.wait(1.0), rows(2 * n + 1, 2 * n + 2))  # each poll closes a batch, and a commit is due
    h.then(h.wait(2.0), [])  # the last write, held: the commit due for two intervals waits for it
    assert h.run() == 0
    assert len(opened) == 5
    periodic = h.commit_log[:-1]  # the last one is the shutdown's
    assert len(periodic) >= 4  # one per interval: each at the flush that collects the write before it
    for offsets, started in h.commit_log:
        assert offsets[P0] >= max(started), f"commit {offsets} misses rows of a batch written before it"
    assert h.source.committed == {P0: 10}
    assert_commits_cover_only_written_rows(h)


def test_a_due_commit_does_not_wait_for_the_write_in_flight() -> None:
    h = Harness()
    held = h.store.gate(1)
    seen: dict[str, Any] = {}

    def while_the_write_is_held() -> None:  # a step of the script: the loop is polling, not waiting
        assert held.entered.wait(GATE_TIMEOUT_S), "the write never reached the database"
        seen.update(holding=held.holding, committed=dict(h.source.committed), paused=h.source.paused)
        held.open()

    # (1, 2) close a batch, held; a commit is due at the next step; the loop polls on meanwhile
    h.then(rows(1, 2), h.wait(1.0), [], while_the_write_is_held, h.wait(1.0), [])
    assert h.run() == 0
    assert seen == {"holding": True, "committed": {}, "paused": False}, "the due commit waited for the write"
    assert h.source.committed == {P0: 2}
    assert_commits_cover_only_written_rows(h)


# ------------------------------------------------------------------------------ outages, stops, bugs


def test_an_outage_on_the_writer_thread_is_retried_never_dead_lettered_and_ends_exact() -> None:
    h = Harness(tolerance="all", dlq_topic="dlq")

    def database_goes_away() -> None:
        h.store.outages = 3

    h.then(rows(1, 2), h.wait(1.0), [], database_goes_away, rows(3, 4), rows(5, 6), h.wait(1.0), [])
    assert h.run() == 0
    assert h.store.refusals, "no transaction met the outage"
    assert h.store.refusals[0].startswith(WRITER_THREAD), "the outage was not met on the writer thread"
    assert h.store.outages == 0
    assert h.publisher is not None and h.publisher.sent == [], "an outage dead-lettered records"
    assert (h.worker.counters.dead_lettered, h.worker.counters.failed) == (0, 0)
    assert h.source.pauses >= 1 and h.source.polls_while_paused > 0, "stays in the group while backing off"
    assert h.store.written_ids() == list(range(1, 7)), "every record written once, in order"
    assert h.source.committed == {P0: 6}
    assert_commits_cover_only_written_rows(h)


@pytest.mark.usefixtures("long_writes_soon")
def test_a_rejected_row_in_the_batch_in_flight_stops_with_nothing_after_it_written() -> None:
    h = Harness(tolerance="none")
    held = h.store.gate(1)
    h.source.while_paused = lambda: held.open() if held.holding else None
    # (1, REJECT) is in flight while (3, 4) is closed and waits for it; (5, 6) is never read.
    h.then([rec(0, {"id": 1}), rec(1, {"id": 2, "v": "REJECT"})], rows(3, 4), rows(5, 6))
    assert h.run() == 1
    assert held.opened.is_set(), "the batch in flight was not waited for"
    assert h.store.values() == [1], "the row before the rejected one landed, nothing after it"
    assert all(i <= 2 for _, ids, _ in h.store.attempts for i in ids), "a batch after the stop was written"
    assert h.source.committed == {P0: 1}
    assert h.committed_at_most(1), "committed past the rejected record"


@pytest.mark.usefixtures("long_writes_soon")
def test_a_bug_on_the_writer_thread_exits_1_and_commits_nothing_past_it(caplog: pytest.LogCaptureFixture) -> None:
    h = Harness()
    held = h.store.gate(3)
    h.source.while_paused = lambda: held.open() if held.holding else None
    h.then(rows(1, 2), [rec(2, {"id": 3}), rec(3, {"id": 4, "v": "BUG"})], rows(5, 6))
    with caplog.at_level(logging.ERROR, logger="sink.worker"):
        assert h.run() == 1
    assert any("unexpected error" in m for m in caplog.messages), caplog.messages
    assert any(r.exc_info and isinstance(r.exc_info[1], RuntimeError) for r in caplog.records)
    assert held.opened.is_set()
    assert h.store.attempts[1][0].startswith(WRITER_THREAD)
    assert h.store.values() == [1, 2], "the bug's batch rolled back; the batch after it was not written"
    assert all(i <= 4 for _, ids, _ in h.store.attempts for i in ids), "a batch after the bug was written"
    assert h.source.committed == {P0: 2}
    assert h.committed_at_most(2)


@pytest.mark.parametrize("background", [False, True], ids=["foreground", "background"])
def test_an_outage_of_the_write_in_flight_at_shutdown_is_retried_within_the_shutdown_timeout(
    background: bool,
) -> None:
    # SIGTERM arrives while the writer thread writes (1, 2); that write then meets an outage of
    # the database, which is back a moment later. In the foreground the write is retried within
    # the shutdown timeout, and so it must be when it was in flight: exit 0, written, committed.
    h = Harness(background=background)
    h.store.outages = 2
    if background:
        reached = Gate()

        def hold_the_write() -> None:
            reached.entered.set()
            if not reached.opened.wait(GATE_TIMEOUT_S):
                h.store.stuck.append(0)

        h.store.before_transaction = hold_the_write
        h.batcher.on_drain = reached.open  # the shutdown began: let the write meet the outage now
    h.then(rows(1, 2), h.worker.stop, [])
    code = h.run()
    assert h.store.refusals, "the write never met the outage"
    assert h.store.values() == [1, 2], "the batch in flight at shutdown was not written"
    assert h.source.committed == {P0: 2}
    assert code == 0, "a clean stop: the database came back within the shutdown timeout"


@pytest.mark.parametrize("background", [False, True], ids=["foreground", "background"])
def test_a_stop_at_a_bad_record_still_writes_the_batch_before_it_through_an_outage(background: bool) -> None:
    # Tolerance none: (1, 2) is written (in flight, in the background) and meets a short outage;
    # the next record cannot be decoded. Everything before the bad record is written and committed
    # either way, as "stop at the first bad record" promises.
    h = Harness(background=background, tolerance="none")
    h.store.outages = 1
    if background:
        reached = Gate()

        def hold_the_write() -> None:
            reached.entered.set()
            if not reached.opened.wait(GATE_TIMEOUT_S):
                h.store.stuck.append(0)

        h.store.before_transaction = hold_the_write
        h.batcher.on_drain = reached.open  # the stop began (it drains what came before the bad record)
    h.then(rows(1, 2), [rec(2, b'{"id": 3,')], rows(4, start=3))
    assert h.run() == 1
    assert h.store.refusals, "the write never met the outage"
    assert h.store.values() == [1, 2], "the records before the bad one were not written"
    assert h.source.committed == {P0: 2}


# ------------------------------------------------------------------------------ rebalances


@pytest.mark.usefixtures("long_writes_soon")
def test_a_revocation_while_a_batch_is_in_flight_settles_and_commits_it_first() -> None:
    h = Harness()
    held = h.store.gate(1)
    at_revoke: dict[str, Any] = {}

    def revoke() -> None:  # the rebalance callback runs inside poll, with (1, 2) still being written
        held.entered.wait(5)  # the writer thread may not have reached the statement yet
        at_revoke["in_flight"] = held.holding
        held.open()
        h.source.on_revoke([P0])
        at_revoke.update(committed=dict(h.source.committed), values=h.store.values())

    h.then(rows(1, 2), rows(3), revoke, [], rows(4, 5, start=3))  # the new owner (us) reads on from 3
    assert h.run() == 0
    assert at_revoke["in_flight"], "the revocation did not come while the batch was being written"
    assert at_revoke["values"] == [1, 2, 3], "the batch in flight and the open one were not written first"
    assert at_revoke["committed"] == {P0: 3}, "the commit before giving up the partition misses the batch in flight"
    assert h.store.written_ids() == [1, 2, 3, 4, 5], "each once, in order"
    assert h.source.committed == {P0: 5}
    assert_commits_cover_only_written_rows(h)


@pytest.mark.usefixtures("long_writes_soon")
def test_a_revocation_while_the_loop_waits_for_a_long_write_settles_it_and_goes_on() -> None:
    # A member joins while a write is stuck on a lock: librdkafka runs the revoke callback inside
    # one of the polls the loop makes while it waits for that write with the partitions paused.
    h = Harness()
    held = h.store.gate(1)
    at_revoke: dict[str, Any] = {}

    def paused_poll() -> None:
        if held.holding:
            held.open()
            h.source.on_revoke([P0])
            at_revoke.update(committed=dict(h.source.committed), values=h.store.values())

    h.source.while_paused = paused_poll
    h.then(rows(1, 2), rows(3, 4), [], rows(5, 6))  # (3, 4) waits for (1, 2) when the revocation comes
    code = h.run()
    assert at_revoke, "the revocation never came while the loop waited for the write"
    assert at_revoke["values"] == [1, 2, 3, 4]
    assert at_revoke["committed"] == {P0: 4}, "the commit before giving up the partition misses settled rows"
    assert code == 0, "a rebalance during a long write stopped the worker"
    assert h.store.written_ids() == [1, 2, 3, 4, 5, 6], "each once, in order"
    assert h.source.committed == {P0: 6}
    assert_commits_cover_only_written_rows(h)


# ------------------------------------------------------------------------------ same result either way


@pytest.mark.parametrize("background", [False, True], ids=["foreground", "background"])
def test_writing_in_the_background_changes_neither_the_tables_nor_the_commits(background: bool) -> None:
    h = Harness(background=background, tolerance="all", batch_size=3, max_wait_ms=2000)
    h.then(
        [*rows(1, 2, partition=0, start=0), *rows(101, partition=1, start=0)],
        [rec(2, {"id": 3, "v": "REJECT"}), *rows(4, 5, start=3)],  # a rejected row, passed (tolerance all)
        h.wait(1.0),
        [],
        rows(102, 103, 104, partition=1, start=1),
        [rec(5, b"{not json"), *rows(7, start=6)],  # a record that cannot be decoded, passed
        h.wait(2.5),
        [],
        rows(105, 106, partition=1, start=4),
        *[rows(8 + n, start=7 + n) for n in range(6)],
        h.wait(1.0),
        [],
    )
    assert h.run() == 0
    assert h.store.values() == [1, 2, 4, 5, 7, 8, 9, 10, 11, 12, 13, 101, 102, 103, 104, 105, 106]
    commits = [
        {("orders", 0): 5, ("orders", 1): 1},
        {("orders", 0): 7, ("orders", 1): 4},  # the batch of 7 closed by age, the 2.5 s wait
        {("orders", 0): 13, ("orders", 1): 6},  # 12 and 13 too: written when a poll found nothing
    ]
    if background:  # a due commit with a write in flight comes a step later: what it covers depends on timing
        assert h.source.committed == {**commits[0], **commits[1], **commits[2]}
        assert len(h.source.commits) >= 2, "no periodic commit"
    else:
        assert h.source.commits == commits
        assert h.source.snapshots[0] == {"orders": [1, 2, 4, 5, 101]}
    assert h.worker.counters.failed == 2
    assert h.worker.counters.rows_written == 17
    assert_commits_cover_only_written_rows_per_partition(h)
    threads = h.writer_threads()
    assert (WRITER_THREAD in threads) == background, f"writes ran on {threads}"


def assert_commits_cover_only_written_rows_per_partition(h: Harness) -> None:
    """Partition 0 holds ids offset + 1 (but the failed 3 and 6), partition 1 ids 101 + offset."""
    for commit, snapshot in zip(h.source.commits, h.source.snapshots, strict=True):
        written = set(snapshot.get("orders", []))
        for (_, partition), offset in commit.items():
            wanted = {101 + o for o in range(offset)} if partition else set(range(1, offset + 1)) - {3, 6}
            assert wanted <= written, f"commit {commit} before ids {sorted(wanted - written)} were written"
