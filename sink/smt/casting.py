"""Transforms that change a field's type: Cast and TimestampConverter."""

from __future__ import annotations

import dataclasses
import datetime as dt
import decimal
from collections.abc import Callable
from typing import Any

from ..errors import MappingError
from ..model import ColumnType, Kind, RawRecord, Shape
from .base import (
    EPOCH,
    UTC,
    Compiled,
    Options,
    nested_shapes,
    same_kind,
    struct_columns,
    to_string,
    value_step,
)
from .dates import date_pattern, strptime_format

# ------------------------------------------------------------------------------ Cast


def _logical_number(value: Any) -> Any:
    """Connect's Cast encodes Date / Time / Timestamp before a cast to a number or boolean
    (encodeLogicalType): Timestamp as epoch millis, Date as days since epoch, Time as millis of day."""
    if isinstance(value, dt.datetime):
        when = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
        return (when - EPOCH) // dt.timedelta(milliseconds=1)
    if isinstance(value, dt.date):
        return (value - EPOCH.date()).days
    if isinstance(value, dt.time):
        return (value.hour * 3600 + value.minute * 60 + value.second) * 1000 + value.microsecond // 1000
    return value


def _to_int(bits: int) -> Callable[[Any], int]:
    low, high = -(1 << (bits - 1)), (1 << (bits - 1)) - 1

    def cast(value: Any) -> int:
        number = int(value.strip()) if isinstance(value, str) else int(_logical_number(value))
        if not low <= number <= high:
            raise ValueError(f"out of range for int{bits}")
        return number

    return cast


def _to_float(value: Any) -> float:
    return float(_logical_number(value))


def _to_bool(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() == "true"  # Java's Boolean.parseBoolean
    value = _logical_number(value)
    if isinstance(value, bool):
        return value
    # Connect: `((Number) value).longValue() != 0L`: the number truncated, so 0.5 is false.
    return bool(abs(value) >= 1)


def _to_string(value: Any) -> str:
    # Connect casts primitives only: a Struct, Map or Array is a DataException (not a Python repr).
    if isinstance(value, dict | list):
        raise MappingError(f"cast: a {'struct or map' if isinstance(value, dict) else 'array'} casts to no string")
    if isinstance(value, dt.datetime | dt.time):
        return _connect_time_text(value)
    return to_string(value)


def _connect_time_text(value: dt.datetime | dt.time) -> str:
    """Connect's castToString of a Timestamp / Time: `Values.dateFormatFor`, ISO 8601 in UTC with
    milliseconds and a `Z` ("yyyy-MM-dd'T'HH:mm:ss.SSS'Z'", "HH:mm:ss.SSS'Z'"); microseconds Connect
    cannot hold are kept (six digits) rather than cut. A Date is "yyyy-MM-dd", as `to_string` writes it."""
    zone = "Z"
    if isinstance(value, dt.datetime):
        if value.tzinfo is not None:
            value = value.astimezone(UTC)
        else:
            zone = ""  # a local date-time (no instant): no zone to claim
        text = value.strftime("%Y-%m-%dT%H:%M:%S")
    else:
        text = value.strftime("%H:%M:%S")
    fraction = f"{value.microsecond:06d}"
    return f"{text}.{fraction[:3] if fraction.endswith('000') else fraction}{zone}"


CASTS: dict[str, tuple[ColumnType, Callable[[Any], Any]]] = {
    "int8": (ColumnType(Kind.INT8), _to_int(8)),
    "int16": (ColumnType(Kind.INT16), _to_int(16)),
    "int32": (ColumnType(Kind.INT32), _to_int(32)),
    "int64": (ColumnType(Kind.INT64), _to_int(64)),
    "float32": (ColumnType(Kind.FLOAT32), _to_float),
    "float64": (ColumnType(Kind.FLOAT64), _to_float),
    "boolean": (ColumnType(Kind.BOOLEAN), _to_bool),
    "string": (ColumnType(Kind.STRING), _to_string),
}


class Cast:
    """org.apache.kafka.connect.transforms.Cast$Value: `spec` = field:type,... or one type for a
    primitive value; types int8, int16, int32, int64, float32, float64, boolean, string (Connect's
    list: there is no cast to bytes, and bytes cast to string only, as base64). A value out of a
    narrower integer's range is the record's error (Connect would wrap it around)."""

    def __init__(self, o: Options) -> None:
        spec = o.required("spec", "field:type,... or a single type")
        self.whole: str | None = None
        self.fields: dict[str, str] = {}
        for part in (p.strip() for p in spec.split(",") if p.strip()):
            name, sep, type_ = part.rpartition(":")
            type_ = type_.strip().lower()
            if type_ not in CASTS:
                raise o.error("spec", f"unknown type {type_!r} in {part!r} (types: {', '.join(CASTS)})")
            if sep:
                self.fields[name.strip()] = type_
            else:
                self.whole = type_
        if self.whole and self.fields:
            raise o.error("spec", "either one type for the whole value or field:type pairs, not both")
        o.check_unknown(("spec",))

    def compile(self, key: Shape, value: Shape) -> Compiled:
        self._check_bytes(value)
        if self.whole:
            column_type, convert = CASTS[self.whole]
            new_shape = column_type if value is not None else None

            def whole(raw: RawRecord, topic: str, k: Any, v: Any) -> tuple[str, Any, Any]:
                return topic, k, None if v is None else convert(v)

            return key, new_shape, whole
        casts = {name: CASTS[type_][1] for name, type_ in self.fields.items()}
        columns = struct_columns(value)
        new_value: Shape = value
        if columns is not None:
            new_value = same_kind(
                columns,
                tuple(
                    dataclasses.replace(
                        c,
                        type=CASTS[self.fields[c.name]][0],
                        default=casts[c.name](c.default) if c.has_default else None,
                    )
                    if c.name in casts
                    else c
                    for c in columns
                ),
                {k: s for k, s in nested_shapes(value).items() if k not in casts},
            )

        def cast(v: dict[str, Any]) -> dict[str, Any]:
            out = dict(v)
            for name, convert in casts.items():
                x = out.get(name)
                if x is not None:
                    out[name] = convert(x)
            return out

        return key, new_value, value_step(cast, "cast")

    def _check_bytes(self, value: Shape) -> None:
        """Binary data casts to string only (base64), as in Connect; refused once per schema."""
        if self.whole:
            targets = {"": self.whole} if isinstance(value, ColumnType) and value.kind is Kind.BYTES else {}
        else:
            columns = {c.name: c.type.kind for c in struct_columns(value) or ()}
            targets = {n: t for n, t in self.fields.items() if columns.get(n) is Kind.BYTES}
        for name, target in targets.items():
            if target != "string":
                what = f"field {name!r}" if name else "the value"
                raise MappingError(f"cast: {what} is bytes, which casts to string only (base64), not {target}")


# ------------------------------------------------------------------------------ TimestampConverter


UNIX = {"seconds": 1_000_000, "milliseconds": 1000, "microseconds": 1, "nanoseconds": 0.001}
TARGETS = {
    "string": ColumnType(Kind.STRING),
    "unix": ColumnType(Kind.INT64),
    "date": ColumnType(Kind.DATE),
    "time": ColumnType(Kind.TIME, precision=6),
    "timestamp": ColumnType(Kind.TIMESTAMP, precision=6),
}


class TimestampConverter:
    """org.apache.kafka.connect.transforms.TimestampConverter$Value: `field` (or the whole value)
    to `target_type` string / unix / Date / Time / Timestamp; `format` a SimpleDateFormat pattern for
    strings (ISO 8601 without one); `unix_precision` seconds / milliseconds (default) / microseconds
    / nanoseconds. Instants without a zone are taken as UTC, as Connect's are."""

    def __init__(self, o: Options) -> None:
        self.target = (o.required("target_type", "string, unix, Date, Time or Timestamp")).lower()
        if self.target not in TARGETS:
            raise o.error("target_type", f"one of string, unix, Date, Time, Timestamp (got {self.target!r})")
        self.field = o.get("field")
        self.format = date_pattern(o, "format", None)
        self.pattern = o.get("format")
        precision = (o.get("unix_precision", "milliseconds") or "").lower()
        if precision not in UNIX:
            raise o.error("unix_precision", f"one of {', '.join(UNIX)} (got {precision!r})")
        self.unit_us = UNIX[precision]
        self.parse_format = strptime_format(self.pattern) if self.pattern else None
        o.check_unknown(("target_type", "field", "format", "unix_precision"))

    def instant(self, value: Any) -> dt.datetime:
        if isinstance(value, dt.datetime):
            return value if value.tzinfo is not None else value.replace(tzinfo=UTC)
        if isinstance(value, dt.date):
            return dt.datetime(value.year, value.month, value.day, tzinfo=UTC)
        if isinstance(value, dt.time):
            return dt.datetime.combine(dt.date(1970, 1, 1), value.replace(tzinfo=value.tzinfo or UTC))
        if isinstance(value, int | float | decimal.Decimal) and not isinstance(value, bool):
            if self.unit_us < 1:  # nanoseconds: whole microseconds in integers (a float product rounds up)
                return EPOCH + dt.timedelta(microseconds=int(value) // 1000)
            return EPOCH + dt.timedelta(microseconds=int(value) * self.unit_us)
        if isinstance(value, str):
            parsed = (
                dt.datetime.strptime(value, self.parse_format)
                if self.parse_format
                else dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
            )
            return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)
        raise ValueError(f"a {type(value).__name__} is no timestamp")

    def convert(self, value: Any) -> Any:
        when = self.instant(value)
        target = self.target
        if target == "timestamp":
            return when
        if target == "date":
            return when.astimezone(UTC).date()
        if target == "time":
            return when.astimezone(UTC).time()
        if target == "unix":
            micros = (when - EPOCH) // dt.timedelta(microseconds=1)
            return micros * 1000 if self.unit_us < 1 else micros // int(self.unit_us)
        # Connect's format has `setTimeZone(UTC)`: the text is the instant's UTC wall time.
        return self.format(when.astimezone(UTC)) if self.format else when.isoformat()

    def compile(self, key: Shape, value: Shape) -> Compiled:
        convert, field = self.convert, self.field
        target_type = TARGETS[self.target]
        if field is None:
            return (
                key,
                (target_type if value is not None else None),
                (lambda raw, topic, k, v: (topic, k, None if v is None else convert(v))),
            )
        columns = struct_columns(value)
        new_value: Shape = value
        if columns is not None:
            new_value = same_kind(
                columns,
                tuple(
                    dataclasses.replace(c, type=target_type, default=None, has_default=False) if c.name == field else c
                    for c in columns
                ),
                nested_shapes(value),
            )

        def step(v: dict[str, Any]) -> dict[str, Any]:
            x = v.get(field)
            if x is None:
                return v
            out = dict(v)
            out[field] = convert(x)
            return out

        return key, new_value, value_step(step, "timestamp_converter")
