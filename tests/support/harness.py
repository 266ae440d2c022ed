"""One way to run the real Worker over the in-memory fakes (tests/support/fakes.py): every unit test
of the loop builds its worker here and only says what differs (the store's rules, the source, the
batcher, the routing, the loop's timings, exactly-once), then drives it with a script of polls."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from sink.batch import Batcher
from sink.formats.json_plain import JsonDecoder
from sink.formats.string import StringDecoder
from sink.model import Coord, RawRecord
from sink.offsets import Ledger
from sink.outcomes import OutcomeRouter, RoutingRules
from sink.pipeline import Preparer, Writer, WriteRules
from sink.ports import Decoder, Publisher
from sink.transforms import MappingRules, RowMapper
from sink.worker import LoopRules, Worker
from tests.support.fakes import Clock, FakeSource, FakeStore

# Polls take 0.1 s of the fake clock, commits every second, no stats lines, quick first back-off.
LOOP = {"poll_timeout_s": 0.1, "commit_interval_s": 1.0, "stats_interval_s": 3600, "retry_delay_initial_s": 0.5}
BY_ID = MappingRules(pk_mode="record_value", pk_fields=("id",))


class WorkerHarness:
    def __init__(
        self,
        store: FakeStore,
        *,
        clock: Clock | None = None,
        source: FakeSource | None = None,
        value_decoder: Decoder | None = None,
        mapping: MappingRules = BY_ID,
        write: WriteRules | None = None,
        insert_mode: str = "upsert",
        tolerance: str = "none",
        batcher: Batcher | None = None,
        batch_size: int = 100,
        max_wait_ms: int = 60_000,
        routing: RoutingRules | None = None,
        publisher: Publisher | None = None,
        ledger: Ledger | None = None,
        **loop: Any,
    ) -> None:
        """`loop`: LoopRules fields over LOOP (e.g. shutdown_timeout_s, write_in_background)."""
        self.clock = Clock() if clock is None else clock
        self.store = store
        self.source = FakeSource(self.clock, store) if source is None else source
        self.publisher = publisher
        self.router = OutcomeRouter(RoutingRules(tolerance=tolerance) if routing is None else routing, publisher)
        stop_at_rejection = self.router.rules.tolerance == "none"
        self.worker = Worker(
            self.source,
            Preparer(StringDecoder(), JsonDecoder() if value_decoder is None else value_decoder, RowMapper(mapping)),
            Writer(store, WriteRules(insert_mode, True, True, stop_at_rejection) if write is None else write),  # type: ignore[arg-type]
            Batcher(batch_size, max_wait_ms, self.clock) if batcher is None else batcher,  # (an empty one is falsy)
            self.router,
            LoopRules(**{**LOOP, **loop}),
            self.clock,
            ledger=ledger,
        )
        self.source.when_done = self.worker.stop

    def then(self, *steps: list[RawRecord] | Callable[[], None]) -> WorkerHarness:
        """Polls to hand out, in order: lists of records, or steps to run between polls."""
        self.source.script.extend(steps)
        return self

    def wait(self, seconds: float) -> Callable[[], None]:
        def advance() -> None:
            self.clock.now += seconds

        return advance

    def run(self) -> int:
        code = self.worker.run()
        assert self.source.closed, "the worker always leaves the group"
        return code


def record(
    offset: int, value: Any, partition: int = 0, topic: str = "orders", key: bytes | None = None, **raw: Any
) -> RawRecord:
    """A record of `value` (JSON unless bytes; None: a tombstone) at topic/partition@offset."""
    data = None if value is None else (value if isinstance(value, bytes) else json.dumps(value).encode())
    return RawRecord(Coord(topic, partition, offset), key, data, **raw)
