"""The Worker loop against small in-memory fakes of the consumer (Source) and the database (Store)
from tests/support/fakes.py, which keep the contracts the real adapters keep."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from sink.errors import RecordRejected
from sink.formats.connect_json import ConnectJsonDecoder
from sink.formats.json_plain import JsonDecoder
from sink.health import Health
from sink.model import Coord, RawRecord, TableSpec
from sink.plan import Plan
from sink.ports import Decoder
from sink.transforms import MappingRules
from tests.support import fakes
from tests.support.fakes import TP, FakeStore
from tests.support.harness import WorkerHarness
from tests.support.harness import record as rec

# ------------------------------------------------------------------------------ fake database


class FakeTx(fakes.FakeTx):
    """Deletes, inserts, upserts and updates; a value 'REJECT' violates a check constraint."""

    def apply(self, spec: TableSpec, plan: Plan, mode: str) -> dict[int, str]:
        table = self.store.rows.setdefault(spec.name, {})
        for deleted in plan.deletes:
            table.pop(tuple(deleted.values()), None)
        for values in (dict(row) for write in plan.writes for row in write.rows):
            key = fakes.row_key(spec, values)
            if any(v == "REJECT" for v in values.values()):
                raise RecordRejected("value 'REJECT' violates check constraint", sqlstate="23514")
            if mode == "insert" and key in table:
                raise RecordRejected(f"duplicate key {key}", sqlstate="23505")
            if mode == "update":
                if key in table:
                    table[key] = {**table[key], **values}
            else:
                table[key] = values
        return {}


# ------------------------------------------------------------------------------ harness


class Harness(WorkerHarness):
    def __init__(
        self,
        *,
        tolerance: str = "none",
        batch_size: int = 100,
        max_wait_ms: int = 60_000,
        mapping: MappingRules | None = None,
        insert_mode: str = "upsert",
        decoder: Decoder | None = None,
        shutdown_timeout_s: float = 10.0,
        write_in_background: bool = True,
    ) -> None:
        super().__init__(
            FakeStore(FakeTx),
            tolerance=tolerance,
            batch_size=batch_size,
            max_wait_ms=max_wait_ms,
            mapping=mapping or MappingRules(pk_mode="record_value", pk_fields=("id",), delete_enabled=False),
            insert_mode=insert_mode,
            value_decoder=decoder,
            shutdown_timeout_s=shutdown_timeout_s,
            write_in_background=write_in_background,
        )


def rows(*ids: int, partition: int = 0, start: int = 0, topic: str = "orders") -> list[RawRecord]:
    return [rec(start + n, {"id": i, "v": f"v{i}"}, partition, topic) for n, i in enumerate(ids)]


def assert_commits_never_pass_unsettled(h: Harness, expected_ids: Callable[[TP, int], list[int]]) -> None:
    """At every commit, every record below the committed offset is in the database."""
    for commit, snapshot in zip(h.source.commits, h.source.snapshots, strict=True):
        for tp, offset in commit.items():
            for wanted in expected_ids(tp, offset):
                assert wanted in snapshot.get(tp[0], []), f"commit {tp}@{offset} before id {wanted} was written"


# ------------------------------------------------------------------------------ tests


# The next three tests look at the commits at given points of the script: their writes are made in the
# foreground, so a due commit is never put off by a write the writer thread has not finished yet
# (under load it may not have: test_worker_overlap.py covers that case).


def test_commits_only_up_to_contiguous_settled() -> None:
    h = Harness(max_wait_ms=5000, write_in_background=False)
    # offset 1 is a tombstone: skipped, so settled at once, while offset 0 still waits in its batch
    # (polls that find records leave it open; the first empty one writes it).
    h.then(
        [rec(0, {"id": 1}), rec(1, None, key=b"k"), rec(2, {"id": 2})],
        h.wait(2.0),
        [rec(3, {"id": 3})],  # a commit is due now: offset 0 has not settled, so nothing may be committed
    )
    h.then(lambda: commits_before_write.extend(h.source.commits), [], h.wait(2.0), [])
    commits_before_write: list[dict[TP, int]] = []
    assert h.run() == 0
    assert commits_before_write == [], "committed past an unwritten record"
    assert h.store.values("orders") == [1, 2, 3]
    assert h.source.commits[0] == {("orders", 0): 4}
    assert h.source.committed == {("orders", 0): 4}


def test_a_poll_that_finds_nothing_writes_what_is_buffered() -> None:
    """Caught up, the sink writes what it holds at once (as Connect writes each put()), not when
    SINK_BATCH_MAX_WAIT_MS has passed; the next commit covers it."""
    h = Harness(max_wait_ms=600_000, write_in_background=False)
    h.then(rows(1, 2), [], h.wait(1.5), [], lambda: early.update(h.source.committed))
    early: dict[TP, int] = {}
    assert h.run() == 0
    assert early == {("orders", 0): 2}, "the rows waited for the batch's age though nothing more came"
    assert h.store.values("orders") == [1, 2]


def test_offsets_per_partition_move_independently() -> None:
    h = Harness(batch_size=2, write_in_background=False)
    # (a poll that finds records, here of another topic, leaves partition 1's open batch waiting)
    h.then(rows(1, 2, partition=0) + rows(3, partition=1), h.wait(1.5), rows(10, topic="other"))
    h.then(lambda: early.update(h.source.committed), rows(4, partition=1, start=1))
    early: dict[TP, int] = {}
    assert h.run() == 0
    assert early == {("orders", 0): 2}, "partition 1's record sits in an open batch"
    assert h.source.committed == {("orders", 0): 2, ("orders", 1): 2, ("other", 0): 1}
    assert h.store.values("orders") == [1, 2, 3, 4]


def test_stop_flushes_open_batches_and_commits() -> None:
    h = Harness(batch_size=1000, max_wait_ms=600_000)
    h.then(rows(1, 2, 3, partition=0), rows(10, 11, partition=1))
    assert h.run() == 0
    assert h.store.values("orders") == [1, 2, 3, 10, 11]
    assert h.source.commits[-1] == {("orders", 0): 3, ("orders", 1): 2}
    assert h.source.snapshots[-1] == {"orders": [1, 2, 3, 10, 11]}, "committed after the flush"
    assert h.worker.counters.records_in == 5
    assert h.worker.counters.rows_written == 5


def test_stop_mid_stream_does_not_read_on() -> None:
    h = Harness()
    h.then(rows(1, 2), h.worker.stop, [], rows(3, 4, start=2))
    assert h.run() == 0
    assert h.store.values("orders") == [1, 2]
    assert h.source.committed == {("orders", 0): 2}


def test_poison_record_with_tolerance_none_exits_1_and_commits_nothing_past_it() -> None:
    h = Harness(max_wait_ms=600_000)
    h.then([*rows(1, 2), rec(2, b'{"id": 3,'), *rows(4, start=3)], rows(5, start=4))
    assert h.run() == 1
    assert h.store.values("orders") == [1, 2], "the records before it landed, nothing after it"
    assert h.source.committed == {("orders", 0): 2}, "committed up to the poison record, not past it"
    assert all(o <= 2 for c in h.source.commits for o in c.values())


def test_poison_in_one_partition_keeps_the_others_progress() -> None:
    h = Harness(max_wait_ms=600_000)
    h.then([*rows(1, 2, partition=0), rec(0, b"not json", partition=1), *rows(7, partition=0, start=2)])
    assert h.run() == 1
    assert h.source.committed.get(("orders", 1), 0) == 0
    assert h.source.committed[("orders", 0)] == 2
    assert h.store.values("orders") == [1, 2]


def test_record_rejected_by_the_database_with_tolerance_none_stops_there() -> None:
    h = Harness(max_wait_ms=600_000)
    h.then([*rows(1, 2), rec(2, {"id": 3, "v": "REJECT"}), *rows(4, start=3)])
    assert h.run() == 1
    assert {1, 2} <= set(h.store.values("orders"))
    assert 3 not in h.store.values("orders")
    assert h.source.committed == {("orders", 0): 2}


def test_tolerance_all_without_dead_letter_topic_passes_bad_records() -> None:
    h = Harness(tolerance="all")
    h.then([*rows(1), rec(1, b"{oops"), rec(2, {"id": 3, "v": "REJECT"}), *rows(4, start=3)])
    assert h.run() == 0
    assert h.store.values("orders") == [1, 4]
    assert h.source.committed == {("orders", 0): 4}
    assert h.worker.counters.records_in == 4


def test_database_outage_pauses_retries_and_never_commits_unwritten() -> None:
    h = Harness(batch_size=2)
    h.store.outages = 3
    h.then(rows(1, 2), rows(3, start=2))
    assert h.run() == 0
    assert h.source.pauses == 1 and not h.source.paused
    assert h.source.polls_while_paused > 0, "stays in the group while backing off"
    assert h.store.values("orders") == [1, 2, 3]
    assert h.source.committed == {("orders", 0): 3}
    assert_commits_never_pass_unsettled(h, lambda tp, offset: list(range(1, offset + 1)))


def test_health_is_unready_before_assignment_and_during_a_long_outage_only() -> None:
    # In the foreground: on a loaded machine the writer thread may report the outage only after
    # polls the script meant for the outage, and a slow write is waited for with the partitions
    # paused (LONG_WRITE_S): a pause too, but not an outage. Only the outage is tested here.
    h = Harness(batch_size=2, write_in_background=False)
    health = h.worker.health = Health(h.clock, heartbeat_timeout_s=60.0, retry_unready_s=1.0)
    h.store.outages = 3  # back-offs of 0.5 + 1 + 2 s: past the 1 s an outage may last while ready
    seen: list[tuple[bool, bool]] = []  # (paused, ready) at each poll
    poll = h.source.poll

    def watched_poll(max_records: int, timeout: float) -> list[RawRecord]:
        seen.append((h.source.paused, health.readiness().ok))
        return poll(max_records, timeout)

    h.source.poll = watched_poll  # type: ignore[method-assign]
    h.then(lambda: h.worker._on_assign([("orders", 0)]), rows(1, 2), rows(3, start=2))
    assert h.run() == 0
    assert seen[0] == (False, False), "no partitions yet: not ready"
    paused_ready = [ready for paused, ready in seen if paused]
    assert True in paused_ready and False in paused_ready, "ready at the outage's start, unready past 1 s"
    after = seen[max(i for i, (paused, _) in enumerate(seen) if paused) + 1 :]
    assert after and all(ready for _, ready in after), "ready again once the writes go through"
    assert health.retrying_since is None and health.is_stopping and not health.partitions


def test_every_written_batch_is_counted_per_table_for_the_metrics() -> None:
    h = Harness(batch_size=2)
    h.then(rows(1, 2), rows(3, start=2), [rec(3, {"id": 4, "v": "x"}, topic="items")])
    assert h.run() == 0
    tables = h.worker.stats.table_view()
    assert {name: (t.rows, t.batches) for name, t in tables.items()} == {"orders": (3, 2), "items": (1, 1)}
    assert h.worker.stats.batch_rows["orders"].count == 2


def test_tombstones_delete_with_delete_enabled() -> None:
    mapping = MappingRules(pk_mode="record_key", delete_enabled=True)
    h = Harness(mapping=mapping)
    h.then(
        [
            rec(0, {"v": "a"}, key=b"k1"),
            rec(1, {"v": "b"}, key=b"k2"),
            rec(2, None, key=b"k1"),
            rec(3, {"v": "c"}, key=b"k2"),
        ]
    )
    assert h.run() == 0
    assert h.store.rows["orders"] == {("k2",): {"v": "c", "__connect_key": "k2"}}
    assert h.source.committed == {("orders", 0): 4}
    assert (h.worker.counters.rows_written, h.worker.counters.rows_deleted) == (3, 1)


def test_insert_mode_duplicate_in_one_batch_is_a_record_error() -> None:
    h = Harness(insert_mode="insert", tolerance="all")
    h.then([rec(0, {"id": 1, "v": "a"}), rec(1, {"id": 1, "v": "b"}), rec(2, {"id": 2, "v": "c"})])
    assert h.run() == 0
    assert h.store.rows["orders"][(1,)]["v"] == "a", "the second insert of a key fails, it does not win"
    assert h.store.values("orders") == [1, 2]


@pytest.mark.parametrize("batch_size", [1, 3, 1000])
def test_every_record_settles_once_whatever_the_batch_size(batch_size: int) -> None:
    h = Harness(batch_size=batch_size)
    h.then(*(rows(i, partition=i % 2, start=i // 2) for i in range(10)))
    assert h.run() == 0
    assert h.store.values("orders") == list(range(10))
    assert h.source.committed == {("orders", 0): 5, ("orders", 1): 5}
    assert h.worker.tracker.unsettled() == 0


def test_stop_during_a_database_outage_leaves_within_the_shutdown_timeout() -> None:
    h = Harness(batch_size=2)
    h.store.outages = 10**9  # the database never comes back
    runaway = []

    def poll_while_down(max_records: int, timeout: float) -> list[RawRecord]:
        h.clock.now += timeout
        if h.source.polls_while_paused == 20:
            h.worker.stop()  # SIGTERM while the worker backs off
            stopped_at.append(h.clock.now)
        if h.source.polls_while_paused > 100_000:
            runaway.append(True)
            raise RuntimeError("the worker never gave up")
        h.source.polls_while_paused += 1
        return []

    stopped_at: list[float] = []
    h.then(rows(1, 2), rows(3, start=2))
    original_poll = h.source.poll
    h.source.poll = lambda n, t: poll_while_down(n, t) if h.source.paused else original_poll(n, t)  # type: ignore[method-assign]
    code = h.run()
    assert not runaway
    assert code != 0, "could not flush: not a clean stop"
    assert h.clock.now - stopped_at[0] <= h.worker.rules.shutdown_timeout_s + 1
    assert h.source.committed == {}, "nothing was written, nothing may be committed"
    assert h.store.values("orders") == []


def test_a_batch_of_deletes_does_not_create_the_table() -> None:
    h = Harness(mapping=MappingRules(pk_mode="record_key", delete_enabled=True), batch_size=2)
    h.then([rec(0, None, key=b"k1"), rec(1, None, key=b"k2")], [rec(2, {"v": "a"}, key=b"k1")])
    assert h.run() == 0
    spec = h.store.specs["orders"]
    assert [c.name for c in spec.columns] == ["__connect_key", "v"], "shaped by the first record, not the key"
    assert h.source.committed == {("orders", 0): 3}
    assert h.worker.counters.rows_deleted == 2


def test_a_bad_record_found_while_flushing_for_a_rebalance_still_stops_the_worker() -> None:
    # The revoke callback runs inside the consumer's poll, where an exception cannot propagate;
    # the worker must still stop at the bad record (tolerance none), not log it and go on.
    h = Harness(max_wait_ms=60_000)
    h.then(
        [rec(0, {"id": 1}), rec(1, {"id": 2, "v": "REJECT"}), rec(2, {"id": 3})],
        lambda: h.source.on_revoke([("orders", 0)]),
        rows(4, start=3),
    )
    assert h.run() == 1
    assert all(offset <= 1 for commit in h.source.commits for offset in commit.values())


# ------------------------------------------------------------------------------ nothing past a stop


def _connect(record_id: int, extra: bool = False) -> bytes:
    fields = [{"field": "id", "type": "int64", "optional": False}]
    payload = {"id": record_id}
    if extra:  # a new required field without a default: the table cannot take it on its own
        fields.append({"field": "sku", "type": "string", "optional": False})
        payload["sku"] = "s"
    schema = {"type": "struct", "fields": fields, "optional": False}
    return json.dumps({"schema": schema, "payload": payload}, separators=(",", ":")).encode()


def test_a_stop_at_a_refused_record_writes_nothing_after_it() -> None:
    # Issue 12 §6: with tolerance none, 3 good, 1 needing a refused change, 3 good must leave
    # exactly 0, 1, 2 in the table and commit 3, also when leaving the group revokes the
    # partitions (the revoke used to flush the open batch of 4, 5, 6).
    h = Harness(
        tolerance="none",
        mapping=MappingRules(pk_mode="none"),
        insert_mode="insert",
        decoder=ConnectJsonDecoder(),
        max_wait_ms=600_000,
    )
    h.then([RawRecord(Coord("orders", 0, i), None, _connect(i, extra=i == 3)) for i in range(7)])
    assert h.run() == 1
    assert h.store.values("orders") == [0, 1, 2]
    assert h.source.committed == {("orders", 0): 3}
    assert all(offset <= 3 for commit in h.source.commits for offset in commit.values())


def test_the_revoke_while_stopping_after_a_failure_flushes_nothing() -> None:
    h = Harness(tolerance="none", max_wait_ms=600_000)
    h.then([*rows(1, 2), rec(2, b"{broken"), *rows(4, start=3)], rows(5, start=4))
    assert h.run() == 1
    assert h.store.values("orders") == [1, 2]
    assert h.source.committed == {("orders", 0): 2}


class SlowRejectingTx(FakeTx):
    """Every statement takes a second (the fake clock's); a value 'REJECT' is refused."""

    def apply(self, spec: TableSpec, plan: Plan, mode: str) -> dict[int, str]:
        self.store.statements += 1
        self.store.clock.now += 1.0  # type: ignore[attr-defined]
        return super().apply(spec, plan, mode)


def test_sigterm_during_isolation_leaves_within_the_shutdown_timeout() -> None:
    # Issue 12 §5: isolating many rejected rows must not outlast the shutdown timeout.
    h = Harness(tolerance="all", batch_size=400, shutdown_timeout_s=10.0)
    h.store.tx = SlowRejectingTx
    h.store.clock = h.clock  # type: ignore[attr-defined]
    records = [rec(i, {"id": i, "v": "REJECT" if i % 2 else "ok"}) for i in range(400)]
    h.then(h.worker.stop, records)
    stopped_at = h.clock.now
    code = h.run()
    assert code == 1, "not everything could be written: not a clean stop"
    assert h.clock.now - stopped_at <= 10.0 + 2.0
    assert h.store.statements < 40
    committed = h.source.committed.get(("orders", 0), 0)
    written = set(h.store.values("orders"))
    assert all(i in written for i in range(committed) if i % 2 == 0), "committed only what settled"


class ExplodingDecoder:
    """JSON, except that a value starting with `!` raises what a library might: any exception type."""

    def __init__(self, exc: Exception) -> None:
        self.exc = exc
        self.inner = JsonDecoder()

    def decode(self, data: bytes, header: bytes | None = None) -> Any:
        if data.startswith(b"!"):
            raise self.exc
        return self.inner.decode(data)


@pytest.mark.parametrize("exc", [RecursionError("maximum recursion depth exceeded"), TypeError("x"), KeyError("k")])
def test_any_exception_while_decoding_one_record_is_that_records_error(exc: Exception) -> None:
    # Issue 12 §4: these used to stop the worker through the "unexpected error" path, on every restart.
    h = Harness(tolerance="all", decoder=ExplodingDecoder(exc))
    h.then([*rows(1), rec(1, b"!boom"), *rows(3, start=2)])
    assert h.run() == 0
    assert h.store.values("orders") == [1, 3]
    assert h.source.committed == {("orders", 0): 3}
    assert h.worker.counters.failed == 1


def test_with_tolerance_none_such_a_record_stops_at_its_coordinates(caplog: pytest.LogCaptureFixture) -> None:
    h = Harness(tolerance="none", decoder=ExplodingDecoder(RecursionError("deep")), max_wait_ms=600_000)
    h.then([*rows(1), rec(1, b"!boom"), *rows(3, start=2)])
    assert h.run() == 1
    assert h.store.values("orders") == [1]
    stop = [r.getMessage() for r in caplog.records if "stopping at the first bad record" in r.getMessage()]
    assert stop and "orders/0@1" in stop[0] and "VALUE_CONVERTER" in stop[0]
