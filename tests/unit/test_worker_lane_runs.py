"""`Worker._take_run`: the held records a preparer's lane takes are prepared and batched a run at a
time (tracked, counted, accepted and appended to the open batch together). Whatever the records,
the batches, the bytes and the polls, the worker must do exactly what it does one record at a time
(`_on_record` for each): the same writes in the same batches, the same dead letters with the same
reasons, the same commits, the same counts."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sink.batch import Batcher
from sink.formats.avro import AvroDecoder
from sink.model import Coord, Op, RawRecord, Row, TableSpec
from sink.offsets import OffsetTracker
from sink.outcomes import RoutingRules
from sink.pipeline import Preparer
from sink.plan import Plan
from sink.worker import Worker
from tests.support import fakes
from tests.support.harness import WorkerHarness
from tests.support.wire import avro_bytes, record

ORDER = record(
    {"name": "id", "type": ["null", "long"], "default": None},
    {"name": "name", "type": "string"},
    {"name": "at", "type": {"type": "long", "logicalType": "timestamp-millis"}},
    name="Order",
)
OTHER = record(  # ORDER evolved: a field added
    {"name": "id", "type": ["null", "long"], "default": None},
    {"name": "name", "type": "string"},
    {"name": "at", "type": {"type": "long", "logicalType": "timestamp-millis"}},
    {"name": "qty", "type": ["null", "int"], "default": None},
    name="Order",
)
SCHEMAS = {1: ("AVRO", json.dumps(ORDER), []), 2: ("AVRO", json.dumps(OTHER), [])}


class LoggingTx(fakes.FakeTx):
    """Upserts by id, deletes by id; every write is logged in the store's `log`, in order."""

    def apply(self, spec: TableSpec, plan: Plan, mode: str) -> dict[int, str]:
        table = self.store.rows.setdefault(spec.name, {})
        for write in plan.writes:
            for row in write.rows:
                values = dict(row)
                table[fakes.row_key(spec, values)] = values
                self.store.log.append((spec.name, "write", sorted(values.items())))  # type: ignore[attr-defined]
        return {}


class Letters:
    """A dead-letter producer that acknowledges at once and keeps what it was given."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes | None, bytes | None, list[tuple[str, Any]]]] = []

    def publish(self, topic, key, value, headers, timestamp, on_done) -> None:  # type: ignore[no-untyped-def]
        self.sent.append((topic, key, value, [(n, v) for n, v in headers if "stacktrace" not in n]))
        on_done(None)

    def flush(self) -> None:
        pass


def _body(kind: str, i: int) -> tuple[bytes | None, bytes | None, tuple[tuple[str, bytes], ...]]:
    """(key, value, headers) of a record of `kind`."""
    order = avro_bytes(ORDER, {"id": i % 7, "name": f"n{i}", "at": 1_700_000_000_000 + i})
    key: bytes | None = b"k%d" % i
    headers: tuple[tuple[str, bytes], ...] = ()
    if kind == "other":
        return key, avro_bytes(OTHER, {"id": i % 5, "name": "o", "at": i, "qty": i}, schema_id=2), headers
    if kind == "null_id":
        order = avro_bytes(ORDER, {"id": None, "name": "x", "at": 0})
    elif kind == "short":
        order = order[:-2]
    elif kind == "long":
        order += b"\x00"
    elif kind == "tombstone":
        order = None  # type: ignore[assignment]
    elif kind == "bad_key":
        key = b"\xff\xfe"
    elif kind == "no_key":
        key = None
    elif kind == "trace_header":
        headers = (("trace", b"1"),)
    elif kind == "framing_header":
        headers = (("__value_schema_id", b"\x00\x00\x00\x00\x01"),)
    elif kind == "unknown_schema":
        order = b"\x00\x00\x00\x00\x09" + order[5:]
    return key, order, headers


KINDS = st.sampled_from(
    ["order"] * 8
    + ["other"] * 3
    + ["null_id", "short", "long", "tombstone", "bad_key", "no_key", "trace_header", "framing_header", "unknown_schema"]
)
RECORD = st.tuples(KINDS, st.sampled_from(["orders", "more"]), st.integers(0, 1))


def _polls(specs: list[tuple[str, str, int]], cuts: list[int]) -> list[list[RawRecord]]:
    offsets: dict[tuple[str, int], int] = {}
    raws = []
    for i, (kind, topic, partition) in enumerate(specs):
        offset = offsets.get((topic, partition), 0)
        offsets[(topic, partition)] = offset + 1
        key, value, headers = _body(kind, i)
        raws.append(RawRecord(Coord(topic, partition, offset), key, value, headers, 1_700_000_000_000 + i))
    polls, start = [], 0
    for cut in [*sorted({c % (len(raws) + 1) for c in cuts}), len(raws)]:
        if cut > start:
            polls.append(raws[start:cut])
            start = cut
    return polls


def _run(polls: list[list[RawRecord]], batch_size: int, max_bytes: int | None, runs: bool) -> dict[str, Any]:
    store = fakes.FakeStore(LoggingTx)
    store.log = []  # type: ignore[attr-defined]
    letters = Letters()
    h = WorkerHarness(
        store,
        value_decoder=AvroDecoder(fakes.FakeRegistry(SCHEMAS)),
        batcher=Batcher(batch_size, 60_000, fakes.Clock(), max_bytes),
        routing=RoutingRules(tolerance="all", dlq_topic="dlq"),
        publisher=letters,
        max_poll_records=7,
        write_in_background=False,
    )
    with _runs_allowed(runs) as counted:
        h.then(*polls)
        assert h.run() == 0
    c = h.router.counters
    return {
        "writes": store.log,  # type: ignore[attr-defined]
        "letters": letters.sent,
        "commits": h.source.commits,
        "counts": (c.records_in, c.rows_written, c.dead_lettered, c.failed, c.batches),
        "taken": counted[0],
    }


@contextmanager
def _runs_allowed(allowed: bool) -> Iterator[list[int]]:
    """Count the records `_take_run` took; with `allowed` False it takes none (one record at a time)."""
    counted = [0]
    original = Worker._take_run

    def take_run(self: Worker) -> bool:
        if not allowed:
            return False
        before = len(self._held)
        took = original(self)
        counted[0] += before - len(self._held)
        return took

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Worker, "_take_run", take_run)
        yield counted


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    specs=st.lists(RECORD, min_size=1, max_size=60),
    cuts=st.lists(st.integers(0, 60), max_size=6),
    batch_size=st.integers(1, 9),
    max_bytes=st.one_of(st.none(), st.integers(1, 400)),
)
def test_runs_do_exactly_what_one_record_at_a_time_does(
    specs: list[tuple[str, str, int]], cuts: list[int], batch_size: int, max_bytes: int | None
) -> None:
    polls = _polls(specs, cuts)
    by_runs = _run(polls, batch_size, max_bytes, runs=True)
    one_by_one = _run(polls, batch_size, max_bytes, runs=False)
    assert one_by_one["taken"] == 0
    assert {k: v for k, v in by_runs.items() if k != "taken"} == {k: v for k, v in one_by_one.items() if k != "taken"}


def test_the_usual_poll_is_taken_in_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    """40 good records of one schema in polls of 7, batches of 10: each batch's first row (it opens
    the buffer) and last (it closes it) go one at a time, the rest in runs, which decode each
    record once."""
    polls = _polls([("order", "orders", 0)] * 40, [7, 14, 21, 28, 35])
    one_at_a_time: list[RawRecord] = []
    prepare = Preparer.prepare

    def counted(self: Preparer, raw: RawRecord) -> Any:
        one_at_a_time.append(raw)
        return prepare(self, raw)

    monkeypatch.setattr(Preparer, "prepare", counted)
    result = _run(polls, 10, None, runs=True)
    assert result["counts"][:2] == (40, 40)
    assert result["taken"] == 40 - len(one_at_a_time)
    assert [raw.coord.offset for raw in one_at_a_time] == [0, 9, 10, 19, 20, 29, 30, 39]


def test_a_run_stops_at_the_record_its_lane_cannot_take() -> None:
    """A bad body in the middle of a poll: the records before it go as a run, it goes the full path
    (dead-lettered with its reason), the records after it as another run into the same batch."""
    specs = [("order", "orders", 0)] * 5 + [("short", "orders", 0)] + [("order", "orders", 0)] * 5
    result = _run(_polls(specs, []), 100, None, runs=True)
    assert result["counts"][:3] == (11, 10, 1)
    assert [(topic, value) for topic, _key, value, _headers in result["letters"]] == [("dlq", _body("short", 5)[1])]
    assert result["taken"] == 9, "all but the first (it opens the batch) and the bad one"


def test_room_leaves_the_closing_row_to_add() -> None:
    batcher = Batcher(5, 60_000, fakes.Clock(), max_bytes=100)
    spec = TableSpec("t", ())
    assert batcher.room("t", spec) == (0, 0), "no open buffer: the first row opens it"
    first = _row(spec, 10)
    assert batcher.add(first) == []
    assert batcher.room("t", spec) == (3, 90)
    assert batcher.room("t", TableSpec("t", ())) == (0, 0), "another spec object: `add` compares them"
    batcher.extend("t", [_row(spec, 10)] * 3, 30)
    assert batcher.buffered_bytes == 40 and len(batcher) == 4
    assert batcher.room("t", spec)[0] == 0
    closed = batcher.add(_row(spec, 10))
    assert [len(b.rows) for b in closed] == [5] and len(batcher) == 0


def _row(spec: TableSpec, size: int) -> Row:
    raw = RawRecord(Coord("t", 0, 0), None, b"x" * size, (), None)
    return Row(raw, "t", Op.UPSERT, {"id": 1}, {"id": 1}, spec)


def test_track_all_is_track_for_each() -> None:
    coords = [Coord("a", p, o) for o, p in enumerate([0, 0, 1, 1, 0, 2, 2, 0])]
    one, many = OffsetTracker(), OffsetTracker()
    for coord in coords:
        one.track(coord)
    many.track_all(coords)
    for tracker in (one, many):
        tracker.settle_all(coords[:5])
    assert one.committable() == many.committable() == {("a", 0): 5, ("a", 1): 4}
    assert one.prefixes() == many.prefixes()


def test_good_all_counts_in_the_ratio_window() -> None:
    from sink.flood import FloodLimit

    coords = [Coord("a", 0, o) for o in range(4)]
    one, many = FloodLimit(0.5, 4, 3), FloodLimit(0.5, 4, 3)
    for limit in (one, many):
        limit.bad(Coord("a", 0, 9))
    for coord in coords:
        one.good(coord)
    many.good_all(coords)
    assert one.consecutive == many.consecutive == 0
    assert list(one._window.items()) == list(many._window.items())
