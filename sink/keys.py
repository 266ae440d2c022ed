"""Primary keys as the target database compares them, where Python's equality is finer.

A batch folds the rows of one key into one unit by Python's equality (`batch._unit_key`), and
applies each segment's deletes before its writes. Where the database takes two keys Python keeps
apart for one row (1 and "1" cast to a bigint column, 'a' and 'a ' under MariaDB's PAD SPACE,
{"id": 1} and {"id": 1, "b": 2} for a table keyed by `id`), two such units in one segment would
apply out of record order: a tombstone could run before the write it follows and leave the row.
`KeyEquality.meet` finds batches where that may happen; `segments` then keeps those keys apart,
in record order. A key of the column's own class (an int for an integer column) is compared as
Python compares it, so the usual batch costs a few C-level passes and nothing more.
"""

from __future__ import annotations

import datetime as dt
import operator
import struct
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from .model import INTEGER_KINDS, Kind, TableSpec

# The classes whose Python equality is the database's, per column kind (by exact class: a bool is
# no int here, a datetime no date). Strings only where the database compares them byte for byte.
_EXACT: dict[Kind, frozenset[type]] = {
    **{kind: frozenset({int}) for kind in INTEGER_KINDS},
    # Not FLOAT32: a REAL/FLOAT column rounds to single precision (0.1 and 0.10000000149011612 are one row).
    Kind.FLOAT64: frozenset({float}),
    Kind.BOOLEAN: frozenset({bool}),
    Kind.STRING: frozenset({str}),
    Kind.BYTES: frozenset({bytes}),
    Kind.DECIMAL: frozenset({Decimal}),
    Kind.DATE: frozenset({dt.date}),
    Kind.TIME: frozenset({dt.time}),
    Kind.TIMESTAMP: frozenset({dt.datetime}),
    Kind.LOCAL_TIMESTAMP: frozenset({dt.datetime}),
    Kind.UUID: frozenset({uuid.UUID}),
}


@dataclass(frozen=True, slots=True)
class KeyEquality:
    """A table's primary key: its `columns` and, per column, the value classes the database
    compares as Python does (`exact`; empty: none)."""

    columns: tuple[str, ...]
    exact: tuple[frozenset[type], ...]
    folded_text: bool = False  # a one-column string key the database compares padded or by case

    def meet(self, keys: Sequence[Mapping[str, Any]]) -> bool:
        """Whether two of `keys` (rows' keys, none empty) that Python finds different may be one
        row in the database."""
        if not self.columns or not keys:
            return False
        if self.folded_text:  # MariaDB/MySQL string keys, all str: C-level passes (every batch there)
            texts = self._texts(keys)  # (no class is exact for such a column: `_plain` never holds)
            if texts is not None:
                return len(set(map(str.casefold, map(str.rstrip, texts)))) < len(set(texts))
        elif self._plain(keys):
            return False
        distinct = distinct_keys(keys)
        return len({self.loose(key) for key in distinct}) < len(distinct)

    def _texts(self, keys: Sequence[Mapping[str, Any]]) -> list[str] | None:
        """The one key column's values when every key holds only it, as a str; else None."""
        if set(map(len, keys)) != {1}:
            return None
        try:
            texts = list(map(operator.itemgetter(self.columns[0]), keys))
        except KeyError:
            return None
        return texts if set(map(type, texts)) == {str} else None

    def _plain(self, keys: Sequence[Mapping[str, Any]]) -> bool:
        """Every key holds exactly the table's key columns, each value of an exact class."""
        if set(map(len, keys)) != {len(self.columns)}:
            return False
        try:
            if len(self.columns) == 1:  # the usual key: one pass over its values' classes
                return set(map(type, map(operator.itemgetter(self.columns[0]), keys))) <= self.exact[0]
            values = list(map(operator.itemgetter(*self.columns), keys))
        except KeyError:  # as many fields, other names
            return False
        columns = list(zip(*values, strict=True))
        return all(set(map(type, column)) <= exact for column, exact in zip(columns, self.exact, strict=True))

    def loose(self, key: Mapping[str, Any]) -> tuple[Any, ...]:
        """A form of `key` that two keys share wherever the database may find them equal (coarser
        than the database: sharing it only keeps two keys apart, never makes them one)."""
        if len(self.columns) == 1:
            return (_loose(key.get(self.columns[0])),)
        return tuple(_loose(key.get(column)) for column in self.columns)


def key_equality(table: TableSpec, loose_strings: bool = False) -> KeyEquality:
    """`table`'s key; `loose_strings`: its database may find two different strings one key
    (MariaDB/MySQL: PAD SPACE, and case- or accent-insensitive collations of existing tables)."""
    exact = []
    kinds = []
    for name in table.primary_key:
        column = table.column(name)
        kind = column.type.kind if column is not None else None
        classes = _EXACT.get(kind, frozenset()) if kind is not None else frozenset()
        exact.append(classes - {str} if loose_strings else classes)
        kinds.append(kind)
    folded_text = loose_strings and kinds == [Kind.STRING]
    return KeyEquality(table.primary_key, tuple(exact), folded_text)


def whole_numbers_as_ints(table: TableSpec, keys: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]] | None:
    """`keys` with a float or Decimal of a whole value for an integer column as that int (5.0 as
    5); None when one is no whole number of bigint's range (2.5, NaN), which names no row of such a
    column. Bound as a parameter the database compares 5.0 with a bigint column as 5, but
    PostgreSQL's COPY input for bigint refuses '5.0': a delete by that key must find its row
    either way. Values of other classes are left to the database."""
    integers = {c.name for c in table.columns if c.type.kind in INTEGER_KINDS}
    converted: list[Mapping[str, Any]] = []
    for key in keys:
        if not any(type(key.get(name)) in (float, Decimal) for name in integers):
            converted.append(key)
            continue
        whole = {name: _whole(value) if name in integers else value for name, value in key.items()}
        if any(type(whole.get(name)) in (float, Decimal) for name in integers):
            return None
        converted.append(whole)
    return converted


def _whole(value: Any) -> Any:
    """A float or Decimal of a whole value within bigint's range as an int; anything else as it is."""
    if type(value) is float and value.is_integer() and -(2**63) <= value < 2**63:
        return int(value)
    if type(value) is Decimal and value.is_finite() and -(2**63) <= value < 2**63:  # (never a huge int)
        return int(value) if value == value.to_integral_value() else value
    return value


def distinct_keys(keys: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """One key of each value (by Python's equality, fields in any order)."""
    seen: dict[frozenset[Any], Mapping[str, Any]] = {}
    for key in keys:
        try:
            seen.setdefault(frozenset(key.items()), key)
        except TypeError:  # an array or object value
            seen.setdefault(frozenset(map(_hashable_item, key.items())), key)
    return list(seen.values())


def _hashable_item(item: tuple[str, Any]) -> tuple[str, Any]:
    return item[0], hashable(item[1])


def hashable(value: Any) -> Any:
    """An array or object key value as a hashable value equal where they are equal (the database
    judges the row: a record error, or a row)."""
    if isinstance(value, list):
        return (list, tuple(map(hashable, value)))
    if isinstance(value, dict):
        return (dict, frozenset((name, hashable(item)) for name, item in value.items()))
    return value


def _loose(value: Any) -> Any:
    """One value's coarse form: numbers by value whatever their class or spelling ("01", " 1.0",
    1.0 and True meet 1, as a cast to a numeric column makes them; fractions at single precision,
    as a REAL column keeps them), "true" and "false" as 1 and 0 (PostgreSQL writes a boolean so into
    a text column), text trimmed and case-folded (padding, case-insensitive collations), bytes as
    the text they spell (MariaDB compares a string column with them), UUIDs by their hex digits in
    any spelling."""
    if isinstance(value, (bool, int, float, Decimal)):
        return _number(value)
    if isinstance(value, (bytes, bytearray, memoryview)):
        value = bytes(value).decode("utf-8", "surrogateescape")
    if isinstance(value, str):
        text = value.strip().casefold()
        if text in _BOOLEAN_WORDS:
            return _BOOLEAN_WORDS[text]
        first = text[:1]  # Decimal's spellings only (a raised error costs microseconds): digits of any script
        if first in _NUMBER_START or first.isdecimal() or text.lstrip("+-")[:3] in _NUMBER_WORDS:
            try:
                return _number(Decimal(text))
            except (InvalidOperation, ValueError):
                pass
        if _UUID_LENGTHS[0] <= len(text) <= _UUID_LENGTHS[1]:
            try:
                return uuid.UUID(text).hex
            except ValueError:
                pass
        return text
    if isinstance(value, uuid.UUID):
        return value.hex
    return hashable(value)


_BOOLEAN_WORDS = {"true": 1, "false": 0}
_NUMBER_START = frozenset("+-.")
_NUMBER_WORDS = frozenset({"nan", "sna", "inf"})  # Decimal's NaN, sNaN, Infinity (a prefix: "nan12" is one too)
_UUID_LENGTHS = (32, 45)  # hex digits alone .. "urn:uuid:" and dashes
_SINGLE = struct.Struct("f")


def _number(value: bool | int | float | Decimal) -> Any:
    if isinstance(value, int):  # bool included
        return int(value)
    try:
        as_float = float(value)
        if as_float.is_integer():
            return int(value)
        if as_float != as_float:  # NaN: PostgreSQL finds every NaN one value (float and numeric alike)
            return "nan"
        return _SINGLE.unpack(_SINGLE.pack(as_float))[0]
    except (OverflowError, ValueError):  # infinities, signalling NaN; past single precision's range
        return str(value).casefold()
