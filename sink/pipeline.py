"""The two halves of the work on records: `Preparer` (bytes -> Row) and `Writer` (Batch -> Outcomes).

The writer owns table DDL (create, evolve) and bad-row isolation: a batch the database rejects is
bisected, each part under its own savepoint, so the good rows land in the same transaction and only
the rejected rows become record errors, each with the database's own reason. The search finds
the *first* rejected row of what is left (binary search over prefixes: a prefix that the database
takes is kept under its released savepoint), then tries the rest whole again; with k bad rows in n
this costs about k·(log2 n + 1) + 1 statements instead of n, and writes the good rows in order, so
`stop_at_rejection` (errors.tolerance=none) can stop right at the first bad row with nothing after
it written.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Protocol

from .batch import Unit, segments
from .errors import DecodeError, RecordRejected, SchemaEvolutionRefused
from .formats import Decoder
from .model import Batch, ColumnType, Decoded, Op, Outcome, Payload, RawRecord, Row, Stage, Status, TableSpec
from .schema import Evolution, evolve
from .transforms import RowMapper

NULL = Payload(None)


class Preparer:
    """Decode and map one raw record. Raises a RecordError (with its Connect stage) for bad input."""

    def __init__(self, key_decoder: Decoder, value_decoder: Decoder, mapper: RowMapper) -> None:
        self.key_decoder = key_decoder
        self.value_decoder = value_decoder
        self.mapper = mapper

    def prepare(self, raw: RawRecord) -> Row | Outcome:
        decoded = Decoded(
            raw,
            self._decode(self.key_decoder, raw.key, Stage.KEY_CONVERTER),
            self._decode(self.value_decoder, raw.value, Stage.VALUE_CONVERTER),
        )
        row = self.mapper.to_row(decoded)
        if row is None:
            table = self.mapper.table_name(raw.coord.topic)
            return Outcome(raw, Status.SKIPPED, table, "skip", stage=Stage.TRANSFORMATION)
        return row

    @staticmethod
    def _decode(decoder: Decoder, data: bytes | None, stage: Stage) -> Payload:
        if data is None:
            return NULL
        try:
            return decoder.decode(data)
        except DecodeError as exc:
            exc.stage = stage
            raise


# ------------------------------------------------------------------------------ the store port


class Transaction(Protocol):
    def savepoint(self) -> AbstractContextManager[None]:
        """Roll back to the savepoint (and raise RecordRejected) when a statement inside fails."""
        ...

    def apply(self, spec: TableSpec, units: Sequence[Unit], mode: str) -> dict[int, str]:
        """Delete/insert/upsert/update the units; return operation names by unit index where the
        database told which (insert vs update); raise RecordRejected for data/integrity errors."""
        ...


class Store(Protocol):
    def table(self, name: str) -> TableSpec | None: ...
    def storage_type(self, column_type: ColumnType) -> ColumnType: ...
    def create_table(self, spec: TableSpec) -> None: ...
    def alter_table(self, existing: TableSpec, evolution: Evolution) -> None: ...
    def transaction(self) -> AbstractContextManager[Transaction]: ...


@dataclass(frozen=True, slots=True)
class WriteRules:
    insert_mode: str = "insert"
    auto_create: bool = False
    auto_evolve: bool = False
    stop_at_rejection: bool = False  # errors.tolerance=none: write nothing after the first rejected row


class Writer:
    def __init__(self, store: Store, rules: WriteRules) -> None:
        self.store = store
        self.rules = rules

    def write(self, batch: Batch) -> list[Outcome]:
        """Write one batch in one transaction."""
        if all(row.op is Op.DELETE for row in batch.rows) and self.store.table(batch.spec.name) is None:
            # Nothing to delete from a table that does not exist; creating it from the key alone
            # would shape it without the columns of the records that follow.
            return [Outcome(r.raw, Status.DELETED, batch.table, "delete", dict(r.key)) for r in batch.rows]
        spec = self.ensure_table(batch.spec, lenient=batch.inferred)
        outcomes: list[Outcome] = []
        with self.store.transaction() as tx:
            for segment in segments(batch.rows, self.rules.insert_mode == "insert"):
                if not self._write_isolated(tx, spec, segment, outcomes):
                    break  # stopped at a rejected row: the rows after it stay unwritten and unsettled
        return outcomes

    # -------------------------------------------------------------- DDL

    def ensure_table(self, wanted: TableSpec, lenient: bool = False) -> TableSpec:
        existing = self.store.table(wanted.name)
        if existing is None:
            if not self.rules.auto_create:
                raise SchemaEvolutionRefused(
                    f"table {wanted.name!r} does not exist; create it or set SINK_AUTO_CREATE=true"
                )
            self.store.create_table(wanted)
            return self.store.table(wanted.name) or wanted
        evolution = evolve(existing, wanted, self.store.storage_type, lenient=lenient)
        if not evolution:
            return existing
        if not self.rules.auto_evolve:
            raise SchemaEvolutionRefused(
                f"table {wanted.name!r} needs {_describe(evolution)} to take these records; "
                "set SINK_AUTO_EVOLVE=true or change the table yourself"
            )
        self.store.alter_table(existing, evolution)
        return self.store.table(wanted.name) or wanted

    # -------------------------------------------------------------- isolation

    def _write_isolated(self, tx: Transaction, spec: TableSpec, units: list[Unit], out: list[Outcome]) -> bool:
        """Write `units` in order, each rejected unit isolated as a record error. False when stopped
        at the first rejected unit (`stop_at_rejection`)."""
        start = 0
        while start < len(units):
            if self._attempt(tx, spec, units, start, len(units), out) is None:
                return True
            bad, error = self._first_rejected(tx, spec, units, start, out)
            if error is not None:
                out.extend(_rejected(units[bad], error))
                if self.rules.stop_at_rejection:
                    return False
            start = bad + 1
        return True

    def _first_rejected(
        self, tx: Transaction, spec: TableSpec, units: list[Unit], start: int, out: list[Outcome]
    ) -> tuple[int, RecordRejected | None]:
        """Binary search for the first rejected unit of units[start:], which the database refused as
        a whole; the good units before it are written on the way. Returns its index and the
        database's reason (None if, tried alone, it went in after all)."""
        low, high = start, len(units)  # the first rejected unit is in units[low:high]
        error: RecordRejected | None = None  # the reason of units[low] alone, once known
        while high - low > 1:
            middle = (low + high) // 2
            failure = self._attempt(tx, spec, units, low, middle, out)
            if failure is None:
                low = middle
            else:
                high = middle
                error = failure if high - low == 1 else None
        if error is None:
            error = self._attempt(tx, spec, units, low, low + 1, out)
        return low, error

    def _attempt(
        self, tx: Transaction, spec: TableSpec, units: list[Unit], start: int, stop: int, out: list[Outcome]
    ) -> RecordRejected | None:
        """One statement (per operation) for units[start:stop] under a savepoint: the outcomes on
        success, the database's reason when it rejects them (rolled back to the savepoint)."""
        chunk = units[start:stop]
        try:
            with tx.savepoint():
                operations = tx.apply(spec, chunk, self.rules.insert_mode)
        except RecordRejected as exc:
            return exc
        for index, unit in enumerate(chunk):
            out.extend(_settled(spec.name, unit, operations.get(index), self.rules.insert_mode))
        return None


def _settled(table: str, unit: Unit, operation: str | None, mode: str) -> Iterator[Outcome]:
    for row in unit.rows:
        if row.op is Op.DELETE:
            yield Outcome(row.raw, Status.DELETED, table, "delete", dict(row.key))
        elif row is unit.final:
            yield Outcome(row.raw, Status.WRITTEN, table, operation or mode, dict(row.key))
        else:  # an earlier version of the key, superseded in the same batch
            yield Outcome(row.raw, Status.WRITTEN, table, "skip", dict(row.key))


def _rejected(unit: Unit, exc: RecordRejected) -> Iterator[Outcome]:
    for row in unit.rows:
        error = exc.for_record(row.coord)
        yield Outcome(row.raw, Status.FAILED, row.table, row.op.value, dict(row.key), Stage.TASK_PUT, error)


def _describe(evolution: Evolution) -> str:
    parts = [f"new column {c.name!r} ({c.type})" for c in evolution.add]
    parts += [f"column {c.name!r} widened from {c.type} to {t}" for c, t in evolution.widen]
    parts += [f"column {n!r} made nullable" for n in evolution.drop_not_null]
    return ", ".join(parts)
