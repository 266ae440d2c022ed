"""Defects found by a review of the speed work (6c19050..HEAD), each shown by a test that fails."""

from __future__ import annotations

import json
from typing import Any

import pytest

from sink.batch import Batcher
from sink.formats.connect_json import ConnectJsonDecoder
from sink.formats.json_plain import JsonDecoder
from sink.formats.string import StringDecoder
from sink.model import Coord, RawRecord, Row
from sink.outcomes import OutcomeRouter, RoutingRules
from sink.pipeline import Preparer, Writer, WriteRules
from sink.transforms import MappingRules, RowMapper
from sink.worker import LoopRules, Worker
from tests.support.fakes import Clock
from tests.support.harness import BY_ID
from tests.unit.test_worker_overlap import FakePublisher, GatedStore, Source, rec

# ------------------------------------------------------------------------------ row plans


def _connect_json(schema: dict[str, Any], payload: Any) -> bytes:
    return json.dumps({"schema": schema, "payload": payload}).encode()


KEY_SCHEMA = {
    "type": "struct",
    "name": "K",
    "fields": [
        {"field": "id", "type": "int64"},
        # A key field with a default that is a list (or a map's dict, a struct's dict): legal in
        # Connect, Avro and JSON Schema, and carried in Column.default, which is then unhashable.
        {"field": "tags", "type": "array", "items": {"type": "string"}, "optional": True, "default": ["a"]},
    ],
}
VALUE_SCHEMA = {"type": "struct", "name": "V", "fields": [{"field": "qty", "type": "int64"}]}


def test_record_key_mode_maps_a_key_whose_schema_has_a_list_default() -> None:
    """`_plan_key` puts `key.shape` (a tuple of Column, whose `default` may be a list or dict) in a
    dict key: every record of such a key schema became a MappingError (it mapped before)."""
    mapper = RowMapper(MappingRules(pk_mode="record_key", pk_fields=("id",)))
    preparer = Preparer(ConnectJsonDecoder(), ConnectJsonDecoder(), mapper)
    raw = RawRecord(
        Coord("orders", 0, 0),
        _connect_json(KEY_SCHEMA, {"id": 1, "tags": ["x"]}),
        _connect_json(VALUE_SCHEMA, {"qty": 3}),
    )
    row = preparer.prepare(raw)
    assert isinstance(row, Row), row
    assert dict(row.values) == {"qty": 3, "id": 1}


# ------------------------------------------------------------------------------ a flood stop mid-batch


def _flood_worker(background: bool) -> tuple[Worker, GatedStore, Source]:
    clock = Clock()
    store = GatedStore()
    source = Source(clock, store)
    worker = Worker(
        source,
        Preparer(StringDecoder(), JsonDecoder(), RowMapper(BY_ID)),
        # Two savepoints per transaction: isolating the rejected rows commits (and announces) its
        # outcomes part by part, as PostgreSQL's budget of 50 does on a batch with many rejections.
        Writer(store, WriteRules("upsert", auto_create=True, max_savepoints=2)),
        Batcher(8, 600_000, clock),
        OutcomeRouter(RoutingRules(tolerance="all", dlq_topic="dlq", max_consecutive=3), FakePublisher()),
        LoopRules(
            poll_timeout_s=0.1,
            commit_interval_s=1.0,
            stats_interval_s=3600,
            shutdown_timeout_s=1000.0,
            write_in_background=background,
        ),
        clock,
    )
    source.when_done = worker.stop
    return worker, store, source


def _run_flood(background: bool) -> tuple[int, list[Any], dict[Any, int]]:
    worker, store, source = _flood_worker(background)
    bad = [rec(i, {"id": i + 1, "v": "REJECT"}) for i in range(4)]
    good = [rec(i, {"id": i + 1, "v": f"v{i + 1}"}) for i in range(4, 8)]
    source.script.append(bad + good)
    return worker.run(), store.values(), dict(source.committed)


def test_a_flood_stop_in_the_middle_of_a_batch_writes_no_more_on_the_writer_thread() -> None:
    """Four rejected records in a row, then four good ones, in one batch; the flood limit is three
    bad records in a row. In the foreground the stop is raised by `on_commit` when the part holding
    the third failure commits, and the writer stops there (only id 5, in that transaction, is
    written). On the writer thread `on_commit` only queues the parts, so the writer goes on to the
    end of the batch: ids 6..8 land past the stop, unsettled and uncommitted, and are written a
    second time after the restart (insert mode: refused as duplicates and dead-lettered)."""
    foreground = _run_flood(background=False)
    background = _run_flood(background=True)
    assert foreground[0] == background[0] == 1
    assert foreground[2] == background[2], "commits differ"
    # The writer thread hands the batch back at its first part with a failure, so its transactions
    # may end earlier than the foreground's: it may write less, never more.
    assert set(background[1]) <= set(foreground[1]), "the writer thread wrote records past the flood stop"
    assert not {6, 7, 8} & set(background[1])


# ------------------------------------------------------------------------------ a wait without polling


def test_a_registry_outage_waits_for_a_long_write_while_polling(monkeypatch: pytest.MonkeyPatch) -> None:
    """`_on_record` collects the write in flight before backing off from a registry outage, with
    `_collect()`: no `keep_polling`, so a write stuck on a lock is waited for without a poll, past
    max.poll.interval.ms (the member leaves the group), which the writer thread was meant to
    prevent (docs/architecture.md: "the wait never exceeds max.poll.interval.ms"). Here the stuck
    write is let go only by a poll while paused, as in tests/unit/test_worker_overlap.py."""
    from sink import worker as worker_module
    from sink.errors import RegistryUnavailable
    from tests.unit import test_worker_overlap as overlap

    monkeypatch.setattr(worker_module, "LONG_WRITE_S", 0.01)
    monkeypatch.setattr(overlap, "GATE_TIMEOUT_S", 1.0)  # the gate gives up after a second: a failure, not a hang
    h = overlap.Harness()
    held = h.store.gate(1)
    h.source.while_paused = lambda: held.open() if held.holding else None
    prepare = h.worker.preparer.prepare
    outage = {"left": 1}

    def prepare_with_outage(raw: RawRecord) -> Any:
        if raw.coord.offset == 2 and outage["left"]:
            outage["left"] -= 1
            raise RegistryUnavailable("schema registry: connection refused")
        return prepare(raw)

    h.worker.preparer.prepare = prepare_with_outage  # type: ignore[method-assign]
    # (1, 2) is written (held on a lock) while record 3 meets the registry outage
    h.then(overlap.rows(1, 2), [overlap.rec(2, {"id": 3})], [])
    code = h.worker.run()
    assert h.store.stuck == [], "the stuck write was waited for without polling"
    assert code == 0
    assert h.store.values() == [1, 2, 3]
