"""In-memory fakes of the ports for unit tests: a clock, the consumer (`ports.Source`), the database
(`ports.Store`), the offsets table (`ports.OffsetStore`) and the Schema Registry (`ports.SchemaSource`).

They keep the contracts the real adapters keep: the store's transactions are atomic and its
savepoints roll back, the source hands out records in offset order and records every commit. What
a table accepts is each test module's own rule: a subclass of `FakeTx` with its `apply`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from sink.errors import BrokerUnavailable, DatabaseUnavailable, RecordRejected
from sink.model import ColumnType, RawRecord, TableSpec
from sink.plan import Plan
from sink.schema import Evolution

TP = tuple[str, int]


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


class FakeTx:
    """A transaction of `FakeStore`: a savepoint rolls the rows back when a statement is rejected."""

    def __init__(self, store: FakeStore) -> None:
        self.store = store

    @contextmanager
    def savepoint(self) -> Iterator[None]:
        saved = self.store.snapshot()
        try:
            yield
        except RecordRejected:
            self.store.rows = saved
            raise

    def truncate(self, spec: TableSpec) -> None:
        self.store.rows.get(spec.name, {}).clear()

    def apply(self, spec: TableSpec, plan: Plan, mode: str) -> dict[int, str]:
        raise NotImplementedError("a test module's FakeTx says what its tables accept")


def row_key(spec: TableSpec, values: Mapping[str, Any]) -> Any:
    """A row's identity in a fake table: its primary key, or (no primary key) a new identity."""
    return tuple(values.get(k) for k in spec.primary_key) if spec.primary_key else object()


class FakeStore:
    """Tables as {name: {key: row}}; a transaction commits all or nothing."""

    def __init__(self, tx: type[FakeTx]) -> None:
        self.tx = tx
        self.specs: dict[str, TableSpec] = {}
        self.rows: dict[str, dict[Any, dict[str, Any]]] = {}
        self.outages = 0  # transactions to refuse with DatabaseUnavailable before working again
        self.transactions = 0  # committed ones
        self.statements = 0  # for the transaction's `apply` to count

    def table(self, name: str, schema: str | None = None) -> TableSpec | None:
        return self.specs.get(TableSpec.qualify(schema, name))

    def storage_type(self, column_type: ColumnType) -> ColumnType:
        return column_type

    def create_table(self, spec: TableSpec) -> None:
        self.specs[spec.qualified] = spec

    def alter_table(self, existing: TableSpec, evolution: Evolution) -> None:
        spec = self.specs[existing.qualified]
        self.specs[existing.qualified] = TableSpec(
            spec.name, spec.columns + evolution.add, spec.primary_key, spec.schema
        )

    @contextmanager
    def transaction(self) -> Iterator[FakeTx]:
        if self.outages:
            self.outages -= 1
            raise DatabaseUnavailable("connection refused")
        saved = self.snapshot()
        try:
            yield self.tx(self)
        except BaseException:
            self.rows = saved
            raise
        self.transactions += 1

    def snapshot(self) -> dict[str, dict[Any, dict[str, Any]]]:
        """The tables as they are; rows are replaced, never changed in place, so two levels suffice."""
        return {name: dict(rows) for name, rows in self.rows.items()}

    def values(self, table: str = "orders", field: str = "id") -> list[Any]:
        return sorted(row[field] for row in self.rows.get(table, {}).values() if field in row)


class FakeSource:
    """Hands out a script of polls (each advances the clock by its timeout); when the script is
    done, `when_done` runs (the harness makes it stop the worker). Polls while paused return
    nothing. With a `store`, each commit snapshots its tables.

    It keeps the `Source` contract (tests/integration/test_source_contract.py runs the same suite
    against it and against KafkaSource): a poll returns at most `max_records` records (the rest of
    a step comes with the next polls); once the script assigned partitions (`assign`), records of a
    partition not assigned are not handed out, nor those below where `start_at` started it; close
    revokes every partition assigned."""

    def __init__(self, clock: Clock, store: FakeStore | None = None) -> None:
        self.clock = clock
        self.store = store
        self.script: list[list[RawRecord] | Callable[[], None]] = []
        self.commits: list[dict[TP, int]] = []
        self.committed: dict[TP, int] = {}
        self.commit_failures = 0  # commits to refuse before working again
        self.snapshots: list[dict[str, list[Any]]] = []  # table contents at each commit
        self.paused = False
        self.pauses = 0
        self.polls_while_paused = 0
        self.closed = False
        self.subscribed = False
        # The partitions assigned by the script's steps, or (a script without them) those records came from.
        self.assigned: set[TP] = set()
        self.assigned_by_script = False
        self.started: dict[TP, int] = {}  # exactly-once: where start_at said assigned partitions start
        self.when_done: Callable[[], None] = lambda: None
        # Served by the polls made while paused (the script waits meanwhile): rebalance steps, and
        # records fetched before the pause took effect.
        self.while_paused: list[list[RawRecord] | Callable[[], None]] = []

    def subscribe(
        self,
        on_assign: Callable[[list[TP]], None],
        on_revoke: Callable[[list[TP]], None],
        *,
        start_at: Callable[[list[TP]], Mapping[TP, int]] | None = None,
    ) -> None:
        self.subscribed = True
        self.on_assign = on_assign
        self.on_revoke = on_revoke
        self.start_at = start_at
        self.started = {}

    def assign(self, partitions: list[TP]) -> Callable[[], None]:
        """A script step: the group assigns `partitions` (on_assign, then start_at if given)."""

        def step() -> None:
            self.assigned_by_script = True
            self.assigned.update(partitions)
            for tp in partitions:
                self.started.pop(tp, None)
            self.on_assign(partitions)
            if self.start_at is not None:
                self.started.update(self.start_at(partitions))

        return step

    def revoke(self, partitions: list[TP]) -> Callable[[], None]:
        """A script step: the group takes `partitions` away (on_revoke with just them, as an
        incremental, cooperative revocation does; the others stay assigned)."""

        def step() -> None:
            self.on_revoke(partitions)
            self.assigned.difference_update(partitions)

        return step

    def poll(self, max_records: int, timeout: float) -> list[RawRecord]:
        self.clock.now += timeout
        if self.paused:
            self.polls_while_paused += 1
            return self._serve(self.while_paused, max_records)
        if self.script:
            return self._serve(self.script, max_records)
        self.when_done()
        return []

    def _serve(self, steps: list[list[RawRecord] | Callable[[], None]], max_records: int) -> list[RawRecord]:
        """Run the steps up to the next records and hand out `max_records` of them (the rest stays first)."""
        while steps:
            step = steps.pop(0)
            if callable(step):
                step()
                continue
            records = [r for r in step if self._held(r)]
            if len(records) > max_records:
                steps.insert(0, records[max_records:])
                records = records[:max_records]
            if not self.assigned_by_script:
                self.assigned.update((r.coord.topic, r.coord.partition) for r in records)
            return records
        return []

    def _held(self, record: RawRecord) -> bool:
        tp = (record.coord.topic, record.coord.partition)
        if self.assigned_by_script and tp not in self.assigned:
            return False
        return record.coord.offset >= self.started.get(tp, 0)

    def commit(self, offsets: Mapping[TP, int]) -> bool:
        assert not self.closed
        if self.commit_failures:
            self.commit_failures -= 1
            raise BrokerUnavailable("offset commit failed: coordinator not available")
        self.commits.append(dict(offsets))
        self.committed.update(offsets)
        if self.store is not None:
            self.snapshots.append({t: self.store.values(t) for t in self.store.rows})
        return True

    def pause(self) -> None:
        self.paused = True
        self.pauses += 1

    def resume(self) -> None:
        self.paused = False

    def lag(self) -> int | None:
        return None

    def close(self) -> None:
        """Leaving the group revokes the assignment first, as confluent-kafka's close does."""
        if self.subscribed and self.assigned:
            self.on_revoke(sorted(self.assigned))
        self.closed = True


OFFSETS = "__sink_offsets"


class FakeOffsets:
    """offsets.OffsetStore over a FakeStore: rows {tp: {"next_offset", "epoch"}} in its table
    `__sink_offsets`, so a transaction's rollback takes the positions back with the rows."""

    def __init__(self, store: FakeStore) -> None:
        self.store = store
        self.advances = 0  # compare-and-sets that matched

    def rows(self) -> dict[TP, tuple[int | None, int]]:
        return {tp: (r["next_offset"], r["epoch"]) for tp, r in self.store.rows.get(OFFSETS, {}).items()}

    def transaction(self) -> Any:
        return self.store.transaction()

    def claim(self, partitions: list[TP]) -> dict[TP, tuple[int | None, int]]:
        with self.store.transaction():
            table = self.store.rows.setdefault(OFFSETS, {})
            for tp in partitions:
                row = table.get(tp, {"next_offset": None, "epoch": 0})
                table[tp] = {**row, "epoch": row["epoch"] + 1}
        return {tp: self.rows()[tp] for tp in partitions}

    def advance(self, tx: Any, positions: Mapping[TP, tuple[int | None, int]]) -> frozenset[TP]:
        table = self.store.rows.setdefault(OFFSETS, {})
        fenced = set()
        for tp, (next_offset, epoch) in positions.items():
            row = table.get(tp)
            if row is None or row["epoch"] != epoch:
                fenced.add(tp)
                continue
            table[tp] = {**row, "next_offset": row["next_offset"] if next_offset is None else next_offset}
            self.advances += 1
        return frozenset(fenced)


class FakeRegistry:
    """The SchemaSource port over dicts; counts lookups. A missing id raises KeyError (a LookupError)."""

    def __init__(
        self,
        schemas: dict[int, tuple[str, str, list[dict[str, Any]]]] | None = None,
        files: dict[int, Any] | None = None,
        references: dict[tuple[str, int], tuple[str, str, list[dict[str, Any]]]] | None = None,
    ) -> None:
        self.schemas = schemas or {}
        self.files = files or {}
        self.references = references or {}
        self.calls: list[int] = []

    def schema(self, schema_id: int) -> tuple[str, str, list[dict[str, Any]]]:
        self.calls.append(schema_id)
        return self.schemas[schema_id]

    def reference(self, subject: str, version: int) -> tuple[str, str, list[dict[str, Any]]]:
        return self.references[subject, version]

    def protobuf_file(self, schema_id: int) -> Any:
        self.calls.append(schema_id)
        return self.files[schema_id]
