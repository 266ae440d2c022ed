"""Per-table buffers that close on count, age or schema change; last write wins by key.

A batch keeps every row (each needs its outcome) but is written as *units*: one per primary key,
holding "delete first?" and the final row. Insert mode never merges two inserts of one key (the
second must fail as it would on its own), so such a batch is written in several *segments*.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .keys import KeyEquality, hashable
from .model import Batch, Op, Row, SchemaId, TableSpec
from .schema import merge_inferred


class Unit:
    """All rows of one key in one segment, collapsed to the statements that produce the final state."""

    __slots__ = ("delete_first", "deleted", "final", "key", "rows", "stale", "values", "version")
    fields: None = None  # (as `Row.fields`: the names of a unit's values are not known in advance)

    def __init__(self, key: Any, row: Row | None = None) -> None:
        self.key = key
        self.rows: list[Row] = []
        self.delete_first = False
        self.final: Row | None = None  # the row to insert/upsert/update after the optional delete
        # What to write: the final row's values over those of the earlier writes since the last
        # delete, so a field the final record does not carry ends as if each record had been
        # written in turn. A unit of one write shares its row's values (nothing changes them).
        self.values: Mapping[str, Any] = {}
        # With a version field (SINK_UPSERT_VERSION_FIELD) only: the delete to apply first (its
        # version bounds it), the version of the final row, and the rows older than what the unit
        # already holds (reported `skip`, never written).
        self.deleted: Row | None = None
        self.version: Any = None
        self.stale: list[Row] | None = None
        if row is not None:  # the usual unit, a write of its own: made in one call
            self.rows.append(row)
            if row.op is Op.DELETE:
                self.delete_first = True
            else:
                self.final, self.values = row, row.values

    def add(self, row: Row) -> None:
        self.rows.append(row)
        if row.op is Op.DELETE:
            self.delete_first, self.final, self.values = True, None, {}
        else:
            self.values = {**self.values, **row.values} if self.final is not None else row.values
            self.final = row

    def add_versioned(self, row: Row, field: str) -> None:
        """`add` as the database applies records one by one under a version field: a write only
        over a state with no version or an older one, a delete only over a state no newer than it
        (a delete without a version always). The database compares the unit's result with the
        stored row the same way (`dialects`), so the batch ends as if each record had been applied
        in turn, in arrival order."""
        self.rows.append(row)
        version = row.values.get(field)
        if self.final is not None and not _applies(row.op, version, self.version):
            self.stale = [*(self.stale or ()), row]
            return
        if row.op is Op.DELETE:
            if self.deleted is not None:  # deleted twice: the newest delete bounds the first statement
                version = _newest_delete(self.deleted.values.get(field), version)
                row = row._replace(values={**row.values, field: version})
            self.delete_first, self.final, self.values, self.deleted, self.version = True, None, {}, row, None
        else:
            self.values = {**self.values, **row.values} if self.final is not None else row.values
            self.final, self.version = row, version


def _applies(op: Op, version: Any, current: Any) -> bool:
    """Whether a record of `version` changes a state of version `current` (SQL's rule: a NULL on
    either side compares as unknown, i.e. false, except a state without version, which anything
    replaces, and a delete without version, which always deletes)."""
    if current is None:
        return True
    if version is None:
        return op is Op.DELETE
    try:
        return bool(version >= current) if op is Op.DELETE else bool(version > current)
    except TypeError:  # values of different classes (schemaless): arrival order decides
        return True


def _newest_delete(first: Any, second: Any) -> Any:
    if first is None or second is None:
        return None  # a delete without version deletes whatever is stored
    try:
        return second if second >= first else first
    except TypeError:
        return second


# A unit of a segment: a Unit, or, for most rows, the Row itself: a write whose key comes once in
# its segment needs nothing more (a Unit made for every row was a third of the cost of segments).
WriteUnit = Unit | Row


def segments(
    rows: tuple[Row, ...],
    insert_mode: bool,
    exact: bool = False,
    version: str | None = None,
    keys: KeyEquality | None = None,
) -> Iterator[list[WriteUnit]]:
    """Rows as lists of units, in order. A segment never holds a key twice except as delete+write.
    `exact`: never fold a later row of a key into its earlier unit (a key that comes again starts a
    new segment), so the units of all segments are in record order and a stop at one of them leaves
    every later record unwritten. `version` (SINK_UPSERT_VERSION_FIELD): a unit keeps its key's
    newest version, not its last arrived row (`Unit.add_versioned`), and a newer write that lacks
    a field of the unit's values starts a new segment (`_narrower`). `keys`: the table's key as
    its database compares it; two keys it may find one row (1 and "1") are never in one segment."""
    meeting = keys if keys is not None and keys.meet(list(filter(None, map(_key_of, rows)))) else None
    if version is None and meeting is None and _distinct_writes(rows):  # the usual batch: every row a unit
        return iter([list(rows)])
    return _folded(rows, insert_mode, exact, version, meeting)


def _folded(
    rows: tuple[Row, ...], insert_mode: bool, exact: bool, version: str | None, keys: KeyEquality | None = None
) -> Iterator[list[WriteUnit]]:
    """`segments`, row by row: the rows of a key that comes again fold into one Unit. With `keys`
    (the batch holds keys the database may take for one another), a row whose key meets another
    key of the segment in the database's eyes starts a new segment."""
    units: dict[Any, WriteUnit] = {}
    met: dict[Any, Any] = {}  # with `keys`: the segment's keys by their loose form
    for row in rows:
        key = _unit_key(row)
        if keys is not None and row.key:
            loose = keys.loose(row.key)
            if met.setdefault(loose, key) != key:  # another key that may be this row: apart, in order
                yield list(units.values())
                units, met = {}, {loose: key}
        unit = units.get(key)
        if unit is None:  # most rows: the first of their key in the segment
            units[key] = _first_unit(key, row, version)
            continue
        # Insert mode: an insert ends its unit. A later insert must meet the database on its own (a
        # duplicate fails), and a later delete must not fold the insert away unattempted. Under a
        # version field, a write that lacks a field of its unit's values ends it too (`_narrower`).
        if exact or (insert_mode and final_row(unit) is not None) or (version and _narrower(unit, row, version)):
            yield list(units.values())
            units = {key: _first_unit(key, row, version)}
            if keys is not None and row.key:
                met = {keys.loose(row.key): key}
            continue
        if isinstance(unit, Row):  # the key comes again: its rows fold into a Unit
            unit = units[key] = Unit(key, unit)
        if version is None:
            unit.add(row)
        else:
            unit.add_versioned(row, version)
    if units:
        yield list(units.values())


def _narrower(unit: WriteUnit, row: Row, version: str) -> bool:
    """Whether `row`, a write the unit would apply, lacks a field of the unit's values. Under a
    version field the database may skip the unit's earlier writes (a stored row newer than them)
    and still apply `row`: merged into its values, their fields would be written with it. Such a
    row starts a new segment (applied after the earlier one, each statement compared with the
    stored version)."""
    assert isinstance(unit, Unit)  # under a version field every unit is a Unit
    return (
        row.op is not Op.DELETE
        and unit.final is not None
        and not unit.values.keys() <= row.values.keys()
        and _applies(row.op, row.values.get(version), unit.version)
    )


def _unit_key(row: Row) -> Any:
    """What makes two rows one unit: their primary key, column by column (a schemaless key may
    name its columns in any order: {"a": 1, "b": 2} and {"b": 2, "a": 1} are one key, {"b": 1,
    "a": 2} another, and {"id": 1} and {"other": 1} two), or without one their record."""
    if not row.key:
        return row.coord
    try:
        return frozenset(row.key.items())
    except TypeError:  # a JSON key holding an array or an object: compared by value all the same
        return frozenset((name, hashable(value)) for name, value in row.key.items())


_op_of = operator.attrgetter("op")
_key_of = operator.attrgetter("key")
_coord_of = operator.attrgetter("raw.coord")


def _distinct_writes(rows: Sequence[Row]) -> bool:
    """Whether no row deletes and no two rows share a `_unit_key`, so that `_folded` would make every
    row a unit of its own; C-level passes, at a fifth of its cost. Keys are compared column by
    column, as `_unit_key` compares them (1 and 1.0 are one key); keys of other columns than the
    first row's, or a value that cannot be hashed, say no (and `_folded` decides)."""
    if not rows or Op.DELETE in map(_op_of, rows):
        return False
    columns = tuple(rows[0].key)
    if set(map(len, map(_key_of, rows))) != {len(columns)}:
        return False
    keys = map(operator.itemgetter(*columns), map(_key_of, rows)) if columns else map(_coord_of, rows)
    try:
        distinct = set(keys)
    except (KeyError, TypeError):  # as many columns but other names; a value that cannot be hashed
        return False
    return len(distinct) == len(rows)


def _first_unit(key: Any, row: Row, version: str | None) -> WriteUnit:
    if version is None:
        return row if row.op is not Op.DELETE else Unit(key, row)
    unit = Unit(key)
    unit.add_versioned(row, version)
    return unit


def unit_rows(unit: WriteUnit) -> Sequence[Row]:
    """The rows of a unit, in order."""
    return (unit,) if isinstance(unit, Row) else unit.rows


def final_row(unit: WriteUnit) -> Row | None:
    """The row a unit writes after its delete, if any (None: it only deletes)."""
    return unit if isinstance(unit, Row) else unit.final


@dataclass(slots=True)
class _Buffer:
    spec: TableSpec
    schema_id: SchemaId
    inferred: bool
    opened_at: float
    rows: list[Row] = field(default_factory=list)
    size: int = 0  # key and value bytes of its records (when the Batcher counts bytes)
    merged: dict[int, TableSpec] = field(default_factory=dict)  # inferred specs already merged in

    def accepts(self, row: Row) -> bool:
        if row.op is Op.DELETE or (self.inferred and row.inferred):
            return True
        return row.spec is self.spec or (row.schema_id == self.schema_id and row.spec == self.spec)

    def add(self, row: Row) -> None:
        merge = row.op is Op.UPSERT and row.inferred and self.inferred
        if merge and id(row.spec) not in self.merged:
            # Keyed by id with the spec kept alive, so an id is never reused while remembered.
            self.merged[id(row.spec)] = row.spec
            if any(self.spec.column(c.name) != c for c in row.spec.columns):
                self.spec = merge_inferred(self.spec, row.spec.columns)
        self.rows.append(row)

    def close(self) -> Batch:
        return Batch(self.spec.qualified, self.spec, tuple(self.rows), self.inferred)


class Batcher:
    """Buffers rows per table. `add` returns the batches it closed; `due` those past their age.
    Memory is bounded by bytes as well as rows: when the buffered records' key and value bytes
    reach `max_bytes`, every buffer closes, so large records never pile up to `max_rows` each."""

    def __init__(
        self, max_rows: int, max_wait_ms: int, clock: Callable[[], float], max_bytes: int | None = None
    ) -> None:
        self.max_rows = max_rows
        self.max_wait = max_wait_ms / 1000
        self.clock = clock
        self.max_bytes = max_bytes
        self._bytes = 0  # key and value bytes of the buffered records
        self._buffers: dict[str, _Buffer] = {}

    def __len__(self) -> int:
        return sum(len(b.rows) for b in self._buffers.values())

    def add(self, row: Row) -> list[Batch]:
        """The batches this row closed (most often none)."""
        buffer = self._buffers.get(row.table)
        closed: list[Batch] = []
        if buffer is not None and row.spec is buffer.spec and not buffer.inferred:
            buffer.rows.append(row)  # the usual row: same table, same schema as the rows before it
        elif row.op is Op.TRUNCATE:  # a batch of its own: the rows before it are written first
            before = [self._close(row.table)] if buffer is not None else []
            return [*before, Batch(row.table, row.spec, (row,), True)]
        else:
            buffer, closed = self._placed(row, buffer)
        if self.max_bytes is not None:  # (inline: this runs once per record)
            raw = row.raw
            size = len(raw.value or b"") + len(raw.key or b"")
            buffer.size += size
            self._bytes += size
            if self._bytes >= self.max_bytes:
                return closed + self.drain()
        if len(buffer.rows) >= self.max_rows:
            closed.append(self._close(row.table))
        return closed

    def room(self, table: str, spec: TableSpec) -> tuple[int, float]:
        """How many more rows of `spec` the open buffer of `table` takes as `add` would, with
        nothing but the rows appended (`extend`), and how many more of the records' bytes: the
        row that closes a batch, opens a buffer or merges an inferred spec goes through `add`.
        (0, 0) when no open buffer takes them so."""
        buffer = self._buffers.get(table)
        if buffer is None or buffer.spec is not spec or buffer.inferred:
            return 0, 0
        rows = self.max_rows - len(buffer.rows) - 1  # the row that fills it closes it: `add`'s
        return rows, math.inf if self.max_bytes is None else self.max_bytes - self._bytes

    def extend(self, table: str, rows: Sequence[Row], size: int) -> None:
        """Append `rows`, as many as `room` allowed at most, whose records hold `size` bytes."""
        buffer = self._buffers[table]
        buffer.rows.extend(rows)
        if self.max_bytes is not None:
            buffer.size += size
            self._bytes += size

    def _placed(self, row: Row, buffer: _Buffer | None) -> tuple[_Buffer, list[Batch]]:
        """`row` added to its table's buffer, opened for it when there is none or when the open one
        does not take it (closed first); that buffer, and what was closed."""
        closed = []
        if buffer is not None and not buffer.accepts(row):
            closed.append(self._close(row.table))
            buffer = None
        if buffer is None:
            buffer = self._open(row)
        buffer.add(row)
        return buffer, closed

    def due(self) -> list[Batch]:
        deadline = self.clock() - self.max_wait
        return [self._close(t) for t, b in list(self._buffers.items()) if b.opened_at <= deadline]

    def drain(self) -> list[Batch]:
        return [self._close(table) for table in list(self._buffers)]

    @property
    def buffered_bytes(self) -> int:
        return self._bytes

    def _open(self, row: Row) -> _Buffer:
        inferred = row.inferred or row.op is Op.DELETE
        buffer = _Buffer(row.spec, row.schema_id, inferred, self.clock())
        self._buffers[row.table] = buffer
        return buffer

    def _close(self, table: str) -> Batch:
        buffer = self._buffers.pop(table)
        self._bytes = 0 if not self._buffers else self._bytes - buffer.size
        return buffer.close()
