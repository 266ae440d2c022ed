"""Record schemas -> table specs, and the rules of table evolution.

`infer_columns` types schemaless JSON from its values. `evolve` compares the table as it exists with
the table a batch wants and answers what DDL is safe (add nullable columns, drop NOT NULL, widen a
type) or refuses with `SchemaEvolutionRefused` naming the table, column, both types and the fix.
Both sides are compared as *stored* types (a dialect's `storage_type`), so "JSON kept as TEXT on
SQLite" is not mistaken for a change.
"""

from __future__ import annotations

import datetime as dt
import decimal
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from .errors import SchemaEvolutionRefused
from .model import INTEGER_KINDS, Column, ColumnType, Kind, TableSpec

_PYTHON_KINDS: tuple[tuple[type, ColumnType], ...] = (
    (bool, ColumnType(Kind.BOOLEAN)),  # before int: bool is an int
    (int, ColumnType(Kind.INT64)),
    (float, ColumnType(Kind.FLOAT64)),
    (str, ColumnType(Kind.STRING)),
    (decimal.Decimal, ColumnType(Kind.DECIMAL, precision=38, scale=None)),
    # No digits named: a value's microseconds, which a column of fewer digits takes as the database
    # does (schema-typed digits, by contrast, widen it: `_loses_digits`).
    (dt.datetime, ColumnType(Kind.TIMESTAMP)),
    (dt.date, ColumnType(Kind.DATE)),
    (dt.time, ColumnType(Kind.TIME)),
    (uuid.UUID, ColumnType(Kind.UUID)),
    (bytes, ColumnType(Kind.BYTES)),
    (dict, ColumnType(Kind.JSON)),
    (list, ColumnType(Kind.JSON)),
)


def infer_type(value: Any) -> ColumnType | None:
    """The column type of a schemaless value; None for null (it says nothing about the type)."""
    if value is None:
        return None
    for python_type, column_type in _PYTHON_KINDS:
        if isinstance(value, python_type):
            return column_type
    return ColumnType(Kind.STRING)


def infer_columns(values: Mapping[str, Any]) -> tuple[Column, ...]:
    """Nullable columns for the non-null fields of a schemaless record."""
    columns = []
    for name, value in values.items():
        column_type = infer_type(value)
        if column_type is not None:
            columns.append(Column(name, column_type, nullable=True))
    return tuple(columns)


def merge_inferred(spec: TableSpec, columns: Iterable[Column]) -> TableSpec:
    """Union of an inferred spec with more inferred columns (int and float meet at float)."""
    by_name = {c.name: c for c in spec.columns}
    for column in columns:
        known = by_name.get(column.name)
        if known is None:
            by_name[column.name] = column
        elif known.type != column.type and {known.type.kind, column.type.kind} == {Kind.INT64, Kind.FLOAT64}:
            by_name[column.name] = replace(known, type=ColumnType(Kind.FLOAT64))
    return replace(spec, columns=tuple(by_name.values()))


# ------------------------------------------------------------------------------ evolution

_INT_RANK = {Kind.INT8: 1, Kind.INT16: 2, Kind.INT32: 3, Kind.INT64: 4}
_FLOAT_RANK = {Kind.FLOAT32: 1, Kind.FLOAT64: 2}
_UNBOUNDED = 1 << 62


@dataclass(frozen=True, slots=True)
class Evolution:
    """The DDL a batch needs before its rows can be written."""

    add: tuple[Column, ...] = ()
    widen: tuple[tuple[Column, ColumnType], ...] = ()  # (existing column, new type)
    drop_not_null: tuple[str, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.add or self.widen or self.drop_not_null)

    def apply(self, existing: TableSpec) -> TableSpec:
        """The table as it will be afterwards (what a dialect that rebuilds tables creates)."""
        new_types = {column.name: new_type for column, new_type in self.widen}
        columns = [
            replace(
                c,
                type=new_types.get(c.name, c.type),
                nullable=c.nullable or c.name in self.drop_not_null,
            )
            for c in existing.columns
        ]
        return replace(existing, columns=(*columns, *self.add))


class Compare:
    """How a stored type relates to a wanted one: fits as is, can be widened, or neither."""

    FITS, WIDEN, INCOMPATIBLE = "fits", "widen", "incompatible"


def compare(existing: ColumnType, wanted: ColumnType) -> str:
    if existing == wanted:
        return Compare.FITS
    if existing.kind != wanted.kind:
        pair = _ranks(existing.kind, wanted.kind)
        if pair is None:
            return Compare.INCOMPATIBLE
        return Compare.FITS if pair[0] >= pair[1] else Compare.WIDEN
    if existing.kind is Kind.STRING or existing.kind is Kind.BYTES:
        have, need = existing.length or _UNBOUNDED, wanted.length or _UNBOUNDED
        return Compare.FITS if have >= need else Compare.WIDEN
    if existing.kind is Kind.DECIMAL:
        return _compare_decimal(existing, wanted)
    if existing.kind is Kind.ARRAY:
        return compare(existing.item, wanted.item) if existing.item and wanted.item else Compare.FITS
    if existing.kind in _FRACTIONAL_SECONDS:
        # Fewer digits fit; more would be rounded (PostgreSQL) or cut (MariaDB) by the column:
        # widened, like a longer string. None: no digits named, the microseconds every value has.
        have, need = _second_digits(existing), _second_digits(wanted)
        return Compare.FITS if have >= need else Compare.WIDEN
    return Compare.FITS


_FRACTIONAL_SECONDS = (Kind.TIME, Kind.TIMESTAMP, Kind.LOCAL_TIMESTAMP)


def _second_digits(column_type: ColumnType) -> int:
    return 6 if column_type.precision is None else column_type.precision


def _ranks(have: Kind, want: Kind) -> tuple[int, int] | None:
    for ranks in (_INT_RANK, _FLOAT_RANK):
        if have in ranks and want in ranks:
            return ranks[have], ranks[want]
    return None


def _compare_decimal(existing: ColumnType, wanted: ColumnType) -> str:
    if existing.scale is None:  # unconstrained NUMERIC holds every decimal
        return Compare.FITS
    if wanted.scale is None or wanted.scale != existing.scale:
        return Compare.INCOMPATIBLE
    return Compare.FITS if (existing.precision or 0) >= (wanted.precision or 0) else Compare.WIDEN


def evolve(
    existing: TableSpec,
    wanted: TableSpec,
    storage_type: Callable[[ColumnType], ColumnType],
    *,
    inferred: bool = False,
) -> Evolution:
    """What `existing` needs to accept rows of `wanted`. An `inferred` spec (from schemaless data,
    like `Row.inferred` and `Batch.inferred`) only adds columns: a type clash is then left to the
    database, which rejects the bad row alone (except a float for an integer column, which
    databases round instead of rejecting: refused)."""
    add, widen, drop_not_null = [], [], []
    for column in wanted.columns:
        current = existing.column(column.name)
        if current is None:
            add.append(_addable(existing.qualified, column, inferred))
            continue
        if inferred:
            if _rounds(current.type, column.type):
                raise _refusal(existing.qualified, current, column.type)
            # Only a schema names digits: a type inferred from a value names none and is left to the
            # database (a spec is also inferred when only its key is schemaless).
            stored = storage_type(column.type) if column.type.precision is not None else None
            if stored is not None and _loses_digits(current.type, stored):
                widen.append((current, stored))  # widened like any column's, or refused: never rounded
            continue
        stored = storage_type(column.type)
        verdict = compare(current.type, stored)
        if verdict == Compare.WIDEN and not _keeps_key_bound(existing, current, stored):
            widen.append((current, stored))
        elif verdict == Compare.INCOMPATIBLE:
            raise _refusal(existing.qualified, current, column.type)
        if column.nullable and not current.nullable and column.name not in existing.primary_key:
            drop_not_null.append(column.name)
    return Evolution(tuple(add), tuple(widen), tuple(drop_not_null))


_NUMBERS = (*INTEGER_KINDS, Kind.FLOAT32, Kind.FLOAT64, Kind.DECIMAL, Kind.BOOLEAN)
# Columns that some database fills from a number without a word (MariaDB: 0 into a DATE is
# '0000-00-00', into a BLOB its digits; SQLite keeps the number whatever the declared type).
_NOT_FROM_NUMBERS = (Kind.BYTES, Kind.DATE, Kind.TIME, Kind.TIMESTAMP, Kind.LOCAL_TIMESTAMP, Kind.UUID)


def _rounds(existing: ColumnType, incoming: ColumnType) -> bool:
    """The clashes a database does not reject but silently converts: a float into an integer column
    (1.5 into BIGINT stores 2 on PostgreSQL and MySQL), a number into a date, time, bytes or uuid
    column, a decimal whose schema names more decimal places than the column keeps. Refused like
    any incompatible change instead of left to the database. (Text into any column stays the
    database's to parse or reject: schemaless dates and uuids arrive as text.)"""
    if existing.kind in INTEGER_KINDS and incoming.kind in (Kind.FLOAT32, Kind.FLOAT64):
        return True
    if existing.kind is Kind.DECIMAL and incoming.kind is Kind.DECIMAL:
        return existing.scale is not None and incoming.scale is not None and incoming.scale > existing.scale
    return existing.kind in _NOT_FROM_NUMBERS and incoming.kind in _NUMBERS


def _loses_digits(existing: ColumnType, stored: ColumnType) -> bool:
    """A time or decimal with more digits than its column of the same kind holds, which the
    database would round or cut without a word."""
    digits = existing.kind in _FRACTIONAL_SECONDS or existing.kind is Kind.DECIMAL
    return digits and existing.kind is stored.kind and compare(existing, stored) == Compare.WIDEN


def _keeps_key_bound(existing: TableSpec, current: Column, wanted: ColumnType) -> bool:
    # A bounded key column stays bounded (MySQL cannot index TEXT/BLOB): a longer key value is
    # rejected row by row instead of the key becoming unindexable.
    return current.name in existing.primary_key and current.type.length is not None and wanted.length is None


def _addable(table: str, column: Column, inferred: bool) -> Column:
    if column.nullable or column.has_default:
        return column
    if inferred:
        return replace(column, nullable=True)
    raise SchemaEvolutionRefused(
        f"table {table!r}: new column {column.name!r} ({column.type}) is required and has no default, "
        "so existing rows cannot get a value; make the field optional or give it a default in the "
        "schema, or add the column yourself",
        fix=Evolution(add=(replace(column, nullable=True),)),
    )


def _refusal(table: str, current: Column, wanted: ColumnType) -> SchemaEvolutionRefused:
    return SchemaEvolutionRefused(
        f"table {table!r}: column {current.name!r} is {current.type} but records now carry {wanted}; "
        "this is not a safe widening (narrowing or a different type), so the sink will not alter it. "
        "Migrate the column yourself (ALTER TABLE) or route the topic to a new table with "
        "SINK_TABLE_NAME_FORMAT, then restart"
    )
