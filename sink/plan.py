"""The write plan of a chunk of units, as plain data: which rows go in which statement.

A segment's units (`batch.py`: at most one per key, each "delete first?" plus the values to write)
become, in order, one delete step (the keys of the units that delete first) and one write step per
set of table columns the rows carry: a row never writes a column it does not carry (an upsert
keeps that column's value, an insert gives it its DEFAULT), so rows of different sets go in
different statements. The units of a segment have distinct keys, so the write steps may run in
any order. A dialect turns each step into SQL (COPY + merge on PostgreSQL, an executemany
elsewhere) and the database adapter runs it; the rule lives here, tested without a database.

With a version field (SINK_UPSERT_VERSION_FIELD) the plan names it: every statement is then
conditional on the stored row's version (see `dialects`), a delete step carries each delete's
version beside its key, and the adapter reports per unit what the database did (`delete_slot`).
"""

from __future__ import annotations

import operator
from collections.abc import Container, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .batch import Unit, WriteUnit
from .model import TableSpec


@dataclass(frozen=True, slots=True)
class Write:
    columns: tuple[str, ...]  # the table's columns the rows carry (the key's included), in table order
    rows: list[Mapping[str, Any]]  # the values to write, by column; each carries every one of `columns`
    units: list[int]  # the index of the unit each row writes, for telling inserts from updates


@dataclass(frozen=True, slots=True)
class Plan:
    deletes: list[Mapping[str, Any]]  # primary-key values (by column) of the rows to delete first
    writes: list[Write]
    # With a version field: its name, and the unit index of each delete (the deletes then carry
    # the delete's version under that name, None for a delete without one).
    version: str | None = None
    delete_units: list[int] | None = None

    def __len__(self) -> int:
        """Statements' rows in all: deletes plus writes."""
        return len(self.deletes) + sum(len(write.rows) for write in self.writes)


def delete_slot(index: int) -> int:
    """Where `Transaction.apply` reports what became of unit `index`'s delete (its write is
    reported under `index`): a negative number, so one dict holds both."""
    return -1 - index


def write_plan(units: Sequence[WriteUnit], table: TableSpec, version: str | None = None) -> Plan:
    """The statements that write `units` (of one segment) into `table` (as it exists); `version`:
    the version field the statements are conditional on."""
    shape = _one_shape(units) if version is None else None
    if shape is not None:  # the usual segment: rows of one lane, all writes
        columns = _written_columns(table, set(shape))
        return Plan([], [Write(columns, list(map(_values_of, units)), list(range(len(units))))])
    delete_units: list[int] | None = None
    if version is None:
        deletes = [unit.rows[-1].key for unit in units if isinstance(unit, Unit) and unit.delete_first]
    else:
        delete_units = [i for i, unit in enumerate(units) if isinstance(unit, Unit) and unit.delete_first]
        deletes = [_versioned_key(units[i], version) for i in delete_units]
    table_columns = table.column_names
    groups: dict[frozenset[str], tuple[list[Mapping[str, Any]], list[int]]] = {}
    last_fields: Any = None
    rows: list[Mapping[str, Any]] = []
    indexes: list[int] = []
    for index, unit in enumerate(units):
        if isinstance(unit, Unit) and unit.final is None:  # (a Row is a unit of one write)
            continue
        values = unit.values
        fields = values.keys()
        if fields != last_fields:  # rows of one schema carry the same fields: one lookup per run of them
            carried = frozenset(fields & table_columns)
            rows, indexes = groups.setdefault(carried, ([], []))
            last_fields = fields
        rows.append(values)
        indexes.append(index)
    writes = [Write(_written_columns(table, carried), rows, indexes) for carried, (rows, indexes) in groups.items()]
    return Plan(deletes, writes, version, delete_units)


def _written_columns(table: TableSpec, carried: Container[str]) -> tuple[str, ...]:
    """The columns a write of rows carrying `carried` names sets, in the table's order: those
    carried, and the key."""
    key = set(table.primary_key)
    return tuple(c for c in table.column_names if c in carried or c in key)


_values_of = operator.attrgetter("values")
_fields_of = operator.attrgetter("fields")


def _one_shape(units: Sequence[WriteUnit]) -> tuple[str, ...] | None:
    """The names every unit's values hold, when each unit is a row that says so (`Row.fields`) and
    all say the same: by C-level passes, where grouping compares each row's names (a Unit, which
    may merge several rows' values, says nothing)."""
    if not units:
        return None
    fields = units[0].fields
    if fields is None or list(map(_fields_of, units)).count(fields) != len(units):
        return None
    return fields


def _versioned_key(unit: WriteUnit, version: str) -> Mapping[str, Any]:
    assert isinstance(unit, Unit)  # deletes are always Units
    row = unit.deleted or unit.rows[-1]
    return {**row.key, version: row.values.get(version)}
