"""A dialect's type knowledge as one table, after the Debezium JDBC sink's type registry: one entry
per neutral kind says what column the kind becomes, what a key column of it becomes, which column
types read back as it, and how its values are bound. Adding a kind touches one entry per dialect.

Everything about types is read from the table, never spelled twice:

- `column_type(ct)`: the column of a neutral type (CREATE TABLE, ADD COLUMN, COPY's adapters);
- `key_type(ct)`: the same in the primary key (MariaDB/MySQL cannot index TEXT or BLOB);
- `neutral_type(t)`: the inverse, for reflection. Each entry lists the SQLAlchemy classes that read
  back as its kind (`Reads`). The most specific class of `t` that some entry lists decides, so an
  entry for `sa.Double` wins over one for `sa.Float` whatever their order in the table; among reads
  of one class the first whose condition holds wins. A type no entry reads is a string;
- `storage_type(ct)`: the composition, the neutral type a column of `ct` reads back as;
- `bind` / `bind_classes`: values the database cannot take as the driver gives them (a NaN, an
  aware datetime for a column without zone), adapted by the value's Python class: the row binder
  sees values, not columns.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

import sqlalchemy as sa

from ..model import ColumnType, Kind

SaType = sa.types.TypeEngine[Any]
Factory = Callable[[ColumnType], SaType]
Adapt = Callable[[Any], Any]


def plain(make: Callable[[], SaType]) -> Factory:
    """A column type that takes nothing from the neutral type (no length, precision or item)."""
    return lambda _ct: make()


@dataclass(frozen=True, slots=True)
class Reads:
    """Columns of SQLAlchemy class `sa_class` (and its subclasses no entry names) read back as the
    entry's kind, when `when` holds; `keeps` carries their parameters (length, precision, item)."""

    sa_class: type
    when: Callable[[Any], bool] | None = None
    keeps: Callable[[Any], Mapping[str, Any]] | None = None


class Binding(NamedTuple):
    """Values of `value_class` (the Python class the formats give this kind) go through `adapt`."""

    value_class: type
    adapt: Adapt


@dataclass(frozen=True, slots=True)
class TypeEntry:
    kind: Kind
    column: Factory
    reads: tuple[Reads, ...] = ()  # none: the kind reads back as another (see that entry)
    key: Factory | None = None  # the column type in a primary key, where it differs
    bind: Binding | None = None


class TypeRegistry:
    """One database's entries, exactly one per kind."""

    def __init__(self, database: str, *entries: TypeEntry, type_names: Mapping[str, type] | None = None) -> None:
        """`type_names`: the names of the sink's own column types (SQLite's DECIMAL_TEXT), taught to
        an engine's reflection so they read back as what they are."""
        kinds = [e.kind for e in entries]
        if sorted(kinds) != sorted(Kind):
            missing = ", ".join(sorted(set(Kind) - set(kinds))) or "none"
            twice = ", ".join(sorted({k for k in kinds if kinds.count(k) > 1})) or "none"
            raise ValueError(f"{database} type registry: one entry per kind (missing: {missing}; twice: {twice})")
        self.database = database
        self.entries: dict[Kind, TypeEntry] = {e.kind: e for e in entries}
        self.type_names: Mapping[str, type] = type_names or {}
        self._reads: dict[type, list[tuple[Kind, Reads]]] = {}
        for entry in entries:
            for reads in entry.reads:
                self._reads.setdefault(reads.sa_class, []).append((entry.kind, reads))
        adapters = _adapters(database, entries)
        self.bind_classes: frozenset[type] = frozenset(adapters)
        self.bind: Adapt = _binder(adapters)
        self._stored: dict[ColumnType, ColumnType] = {}

    def column_type(self, ct: ColumnType) -> SaType:
        return self.entries[ct.kind].column(ct)

    def key_type(self, ct: ColumnType) -> SaType:
        entry = self.entries[ct.kind]
        return (entry.key or entry.column)(ct)

    def neutral_type(self, sa_type: SaType) -> ColumnType:
        for cls in type(sa_type).__mro__:
            for kind, reads in self._reads.get(cls, ()):
                if reads.when is None or reads.when(sa_type):
                    return ColumnType(kind, **(reads.keeps(sa_type) if reads.keeps else {}))
        return ColumnType(Kind.STRING)  # a type the sink never creates: written as text

    def storage_type(self, ct: ColumnType) -> ColumnType:
        """The neutral type a column of `ct` reads back as (compared per batch: remembered)."""
        stored = self._stored.get(ct)
        if stored is None:
            stored = self._stored[ct] = self.neutral_type(self.column_type(ct))
        return stored


def _adapters(database: str, entries: tuple[TypeEntry, ...]) -> dict[type, Adapt]:
    adapters: dict[type, Adapt] = {}
    for entry in entries:
        if entry.bind is None:
            continue
        value_class, adapt = entry.bind
        if adapters.setdefault(value_class, adapt) is not adapt:
            raise ValueError(f"{database} type registry: two bindings for {value_class.__name__} values")
    return adapters


def _binder(adapters: dict[type, Adapt]) -> Adapt:
    """One function for every value: by exact class first (the row binder's case), then by
    isinstance (a subclass, or a caller that binds every value)."""
    if not adapters:
        return _unchanged
    by_class = adapters.get
    ordered = tuple(adapters.items())

    def bind(value: Any) -> Any:
        adapt = by_class(value.__class__)
        if adapt is not None:
            return adapt(value)
        for value_class, adapt in ordered:
            if isinstance(value, value_class):
                return adapt(value)
        return value

    return bind


def _unchanged(value: Any) -> Any:
    return value


# ------------------------------------------------------------------------------ what reads keep


def length(t: Any) -> dict[str, Any]:
    return {"length": t.length}


def decimal_digits(t: Any) -> dict[str, Any]:
    """A NUMERIC without scale holds every decimal: a bare `decimal`."""
    return {} if t.scale is None else {"precision": t.precision, "scale": t.scale}


def second_digits_of(attribute: str, undeclared: int) -> Callable[[Any], dict[str, Any]]:
    """What a reflected TIME or TIMESTAMP column keeps: its fractional-second digits, read from
    `attribute` (`precision` on PostgreSQL, `fsp` on MariaDB/MySQL); a column declared without any
    has the database's own default, `undeclared` (PostgreSQL 6, MariaDB/MySQL 0)."""

    def keeps(t: Any) -> dict[str, Any]:
        digits = getattr(t, attribute, None)
        return {"precision": undeclared if digits is None else digits}

    return keeps


# ------------------------------------------------------------------------------ what columns declare

MAX_SECOND_DIGITS = 6  # values are kept to the microsecond


def second_digits(ct: ColumnType) -> int:
    """The fractional-second digits a TIME or TIMESTAMP column of `ct` declares: the type's own
    (Debezium's propagated source precision, 3 for a millisecond type), 6 when it names none."""
    if ct.precision is None:
        return MAX_SECOND_DIGITS
    return min(max(ct.precision, 0), MAX_SECOND_DIGITS)


def decimal_bounds(ct: ColumnType) -> tuple[int | None, int] | None:
    """(precision, scale) of the DECIMAL that holds every value of `ct` exactly, in the form every
    database declares (0 <= scale <= precision): a negative scale (Oracle's NUMBER(5,-2), whole
    hundreds) is whole numbers of p - s digits, a scale past the precision (NUMBER(3,5)) needs s
    digits. None: no fixed scale (a variable-scale decimal); precision None: not given."""
    if ct.scale is None:
        return None
    scale = max(ct.scale, 0)
    if ct.precision is None or ct.precision < 1:
        return None, scale
    return max(ct.precision - min(ct.scale, 0), scale), scale


def single_precision(t: Any) -> bool:
    """FLOAT(p) with p <= 24 is a 4-byte float; without p, an 8-byte one."""
    return (t.precision or 53) <= 24


def double_precision(t: Any) -> bool:
    return not single_precision(t)


def zoned(t: Any) -> bool:
    return bool(t.timezone)


def unzoned(t: Any) -> bool:
    return not t.timezone


def uuid_text(t: Any) -> bool:
    """CHAR(36): what `UuidText` creates where the database has no UUID type."""
    return bool(t.length == 36)


__all__ = [
    "Binding",
    "Reads",
    "SaType",
    "TypeEntry",
    "TypeRegistry",
    "decimal_bounds",
    "decimal_digits",
    "double_precision",
    "length",
    "plain",
    "second_digits",
    "second_digits_of",
    "single_precision",
    "unzoned",
    "uuid_text",
    "zoned",
]
