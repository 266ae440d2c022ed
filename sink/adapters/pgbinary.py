"""Whether a chunk of rows may go to PostgreSQL by binary COPY and land exactly as by text COPY.

Binary COPY skips psycopg's text formatting of every value (about a tenth of its CPU cost), but its
dumpers are picked by the column's type, not by the value's class, and they are not as strict as
the server's input functions: an int past int4 wraps around, a float for a `real` column is
rounded twice, a naive datetime for a `timestamptz` column is a TypeError, a NUL in a string reaches
the server instead of psycopg's own DataError. So a chunk goes binary only when every column's type
is on the allow-list below and every value is of a class whose binary form is exact for that type,
within the range where it is; any other chunk goes by text, as before, and the database parses,
checks and rejects its values with its own reasons (which the writer's isolation relies on).

The check is column-wise, over the classes of a column's values (`set(map(type, column))`), plus
one pass with C-level builtins where a range or a zone matters. None is always fine.
"""

from __future__ import annotations

import datetime as dt
import decimal
import operator
import uuid
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from typing import Any

from psycopg.postgres import types as pg_types
from psycopg.types.json import Jsonb

NoneType = type(None)
ValuesCheck = Callable[[Sequence[Any], Collection[type]], bool]

INT2_RANGE = (-(2**15), 2**15 - 1)
INT4_RANGE = (-(2**31), 2**31 - 1)
INT8_RANGE = (-(2**63), 2**63 - 1)
EXACT_DOUBLE_INT = 2**53  # ints up to this magnitude are doubles without rounding
# Decimals of at most 1000 digits whose leading digit is within 10**±1000: far inside both what
# numeric's text input takes and what its binary form can carry (16383 fractional digits, a weight
# of 131072 digits); past them the two fail differently (DataError in psycopg vs SQLSTATE 22003).
NUMERIC_LIMITS = decimal.Context(
    prec=1000,
    Emax=1000,
    Emin=-1000,
    traps=[decimal.Rounded, decimal.Subnormal, decimal.Overflow, decimal.Clamped, decimal.InvalidOperation],
)
NUMERIC_INT_BOUND = 10**1000 - 1

_tzinfo = operator.attrgetter("tzinfo")


@dataclass(frozen=True, slots=True)
class BinaryRule:
    """The value classes whose binary dump is exact for one column type, and what their values must
    satisfy besides (`values_ok` sees the non-None values and their classes)."""

    classes: frozenset[type]
    values_ok: ValuesCheck | None = None


def binary_safe(types: Sequence[int], rows: Sequence[Sequence[Any]]) -> bool:
    """Whether `rows` (values in the order of `types`, the columns' type oids) land the same by
    binary COPY as by text COPY: every column's type has a rule and every column passes it."""
    rules = _rules(types)
    if rules is None:
        return False
    if not rows:
        return True
    columns = zip(*rows, strict=True)
    return all(_column_safe(rule, column) for rule, column in zip(rules, columns, strict=True))


def _rules(types: Sequence[int]) -> list[BinaryRule] | None:
    """The rule of every column type, or None when one has none (that column goes by text)."""
    rules = []
    for oid in types:
        rule = BINARY_RULES.get(oid)
        if rule is None:
            return None
        rules.append(rule)
    return rules


def _column_safe(rule: BinaryRule, column: Sequence[Any]) -> bool:
    classes = set(map(type, column))
    values = column
    if NoneType in classes:
        classes.discard(NoneType)
        values = [v for v in column if v is not None]
    if not classes:
        return True
    return classes <= rule.classes and (rule.values_ok is None or rule.values_ok(values, classes))


def _of_class(values: Sequence[Any], classes: Collection[type], cls: type) -> Sequence[Any]:
    """The values of class `cls` (all of them when that is the only class)."""
    if len(classes) == 1:
        return values if cls in classes else ()
    return [v for v in values if v.__class__ is cls]


def _within(low: int, high: int) -> ValuesCheck:
    """Ints in the type's range: binary int2/int4 would wrap around and int8 fail in psycopg,
    where text gets the server's 'out of range' (SQLSTATE 22003)."""

    def check(values: Sequence[Any], classes: Collection[type]) -> bool:
        return _between(values, low, high)

    return check


def _between(values: Sequence[Any], low: int, high: int) -> bool:
    return bool(min(values) >= low and max(values) <= high)


def _exact_as_double(values: Sequence[Any], classes: Collection[type]) -> bool:
    """Ints for a float8 column only where Python's conversion cannot round or overflow."""
    ints = _of_class(values, classes, int)
    return not ints or _between(ints, -EXACT_DOUBLE_INT, EXACT_DOUBLE_INT)


def _numeric_in_range(values: Sequence[Any], classes: Collection[type]) -> bool:
    """Finite decimals and ints of sane size (NUMERIC_LIMITS); NaN and infinities go by text."""
    ints = _of_class(values, classes, int)
    if ints and not _between(ints, -NUMERIC_INT_BOUND, NUMERIC_INT_BOUND):
        return False
    decimals = _of_class(values, classes, decimal.Decimal)
    if not all(map(decimal.Decimal.is_finite, decimals)):
        return False
    try:
        for _ in map(NUMERIC_LIMITS.plus, decimals):  # raises at the first decimal past the limits
            pass
    except decimal.DecimalException:
        return False
    return True


def _without_nul(values: Sequence[Any], classes: Collection[type]) -> bool:
    """psycopg's text dumper refuses a NUL itself (DataError); the binary one would leave it to the
    server (SQLSTATE 22021), a different reason for the same row."""
    return "\x00" not in "".join(values)


def _all_aware(values: Sequence[Any], classes: Collection[type]) -> bool:
    """timestamptz: naive datetimes go by text, which reads them in the session's TimeZone; so do
    offsets PostgreSQL's text input refuses (a fraction of a second, ±16 hours or more: a
    Debezium ZonedTimestamp keeps its own), which binary would store."""
    zones = set(map(_tzinfo, values))
    if None in zones:
        return False
    if all(zone.__class__ is dt.timezone for zone in zones):
        offsets = {zone.utcoffset(None) for zone in zones}  # a fixed offset: never None
    else:
        offsets = set(map(dt.datetime.utcoffset, values))
    return None not in offsets and all(_text_takes(offset) for offset in offsets)


def _text_takes(offset: dt.timedelta) -> bool:
    return offset.microseconds == 0 and abs(offset) < MAX_TEXT_OFFSET


MAX_TEXT_OFFSET = dt.timedelta(hours=16)


def _all_naive(values: Sequence[Any], classes: Collection[type]) -> bool:
    """timestamp and time: an offset goes by text, whose input drops it silently."""
    return set(map(_tzinfo, values)) == {None}


def _oid(name: str) -> int:
    info = pg_types.get(name)
    assert info is not None, name
    return info.oid


def _rule(*classes: type, values_ok: ValuesCheck | None = None) -> BinaryRule:
    return BinaryRule(frozenset(classes), values_ok)


# Built-in types only (their oids are fixed). Not here, so always by text: real (a double rounded
# to float4 in Python can differ from the server's rounding of its text; an overflow becomes
# Infinity), char(n) (psycopg has no binary dumper), arrays, enums, domains, other types.
BINARY_RULES: dict[int, BinaryRule] = {
    _oid("int2"): _rule(int, values_ok=_within(*INT2_RANGE)),
    _oid("int4"): _rule(int, values_ok=_within(*INT4_RANGE)),
    _oid("int8"): _rule(int, values_ok=_within(*INT8_RANGE)),
    _oid("float8"): _rule(float, int, values_ok=_exact_as_double),
    _oid("numeric"): _rule(decimal.Decimal, int, values_ok=_numeric_in_range),
    _oid("bool"): _rule(bool),
    _oid("text"): _rule(str, values_ok=_without_nul),
    _oid("varchar"): _rule(str, values_ok=_without_nul),  # the length limit is checked by the server
    _oid("bytea"): _rule(bytes),
    _oid("timestamptz"): _rule(dt.datetime, values_ok=_all_aware),
    _oid("timestamp"): _rule(dt.datetime, values_ok=_all_naive),
    _oid("date"): _rule(dt.date),
    _oid("time"): _rule(dt.time, values_ok=_all_naive),
    _oid("uuid"): _rule(uuid.UUID),
    _oid("jsonb"): _rule(Jsonb),
    _oid("json"): _rule(Jsonb),
}
