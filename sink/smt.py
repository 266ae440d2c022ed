"""Kafka Connect's single message transforms (SMTs) and predicates, in a chain like `transforms=a,b`.

Pure: no I/O. A transform is configured once (`build_chain`, from `SINK_TRANSFORMS` and its
`SINK_TRANSFORMS__<NAME>__<OPTION>` blocks; any problem is a ConfigError naming the variable) and
*compiled* once per schema: `compile(key shape, value shape)` works out the new shapes (renamed,
filtered, cast, flattened columns) and returns the per-record step, which only moves values, with
every name and converter looked up in advance. Schemaless records compile once too; their steps
work from the values. A step takes `(raw, topic, key, value)` and returns the new `(topic, key,
value)`, or None to drop the record (Filter). Anything a step raises is the record's MappingError
at stage TRANSFORMATION, naming the transform.

Connect's names: ReplaceField, RegexRouter, InsertField, Cast, TimestampConverter, Flatten,
ExtractField, HoistField, ValueToKey, MaskField, TimestampRouter, Filter, HeaderFrom, InsertHeader,
DropHeaders; predicates TopicNameMatches, HasHeaderKey, RecordIsTombstone, with `negate`. Each
transform works on the value (Connect's `$Value`); where Connect has a `$Key` variant, `<type>_key`
does the same work on the key (KeySide). ValueToKey writes the key.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import decimal
import json
import re
import uuid
from collections.abc import Callable, Mapping
from typing import Any

from .errors import ConfigError, MappingError, SinkError
from .formats import Struct
from .model import Column, ColumnType, Decoded, Kind, Payload, RawRecord, Shape

# (topic, key, value), or with the headers as a fourth item when the chain carries headers; None: filtered out
Step = Callable[[RawRecord, str, Any, Any], "tuple[Any, ...] | None"]
Predicate = Callable[[RawRecord, str, Any, Any], bool]
Compiled = tuple[Shape, Shape, Step | None]  # new key shape, new value shape, per-record step
MAX_COMPILED = 10_000
UTC = dt.UTC
EPOCH = dt.datetime(1970, 1, 1, tzinfo=UTC)


class Options:
    """One transform's options, read with the variable each comes from for error lines."""

    def __init__(self, prefix: str, values: Mapping[str, str]) -> None:
        self.prefix = prefix  # SINK_TRANSFORMS__<NAME>
        self.values = {k.lower().replace(".", "_"): v for k, v in values.items()}
        self.used: set[str] = {"type"}

    def var(self, option: str) -> str:
        return f"{self.prefix}__{option.upper()}"

    def error(self, option: str, message: str) -> ConfigError:
        return ConfigError(f"{self.var(option)}: {message}")

    def get(self, option: str, default: str | None = None) -> str | None:
        self.used.add(option)
        value = self.values.get(option)
        return default if value is None or not value.strip() else value.strip()

    def required(self, option: str, what: str) -> str:
        value = self.get(option)
        if value is None:
            raise self.error(option, f"required ({what})")
        return value

    def names(self, option: str, required: bool = False) -> tuple[str, ...]:
        value = self.required(option, "a comma list of field names") if required else self.get(option, "")
        return tuple(p.strip() for p in (value or "").split(",") if p.strip())

    def pairs(self, option: str) -> dict[str, str]:
        pairs: dict[str, str] = {}
        for part in self.names(option):
            old, sep, new = part.partition(":")
            if not sep or not old.strip() or not new.strip():
                raise self.error(option, f"{part!r} is not old:new (e.g. a:b,c:d)")
            pairs[old.strip()] = new.strip()
        return pairs

    def boolean(self, option: str) -> bool:
        value = (self.get(option, "false") or "false").lower()
        if value not in ("true", "false"):
            raise self.error(option, f"true or false (got {value!r})")
        return value == "true"

    def regex(self, option: str) -> re.Pattern[str]:
        text = self.required(option, "a regular expression")
        try:
            return re.compile(text)
        except re.error as exc:
            raise self.error(option, f"not a valid regular expression ({exc})") from None

    def check_unknown(self, allowed: tuple[str, ...]) -> None:
        for option in sorted(set(self.values) - set(allowed) - {"type", "predicate", "negate"}):
            known = ", ".join(o.upper() for o in allowed) or "none"
            raise self.error(option, f"not an option of this transform (options: {known})")


# ------------------------------------------------------------------------------ helpers


def _struct(shape: Shape) -> tuple[Column, ...] | None:
    return shape if isinstance(shape, tuple) else None


def _same_kind(shape: tuple[Column, ...], columns: tuple[Column, ...], nested: dict[str, Shape]) -> Shape:
    """New columns for a struct, keeping its name; a Struct only where nested shapes remain."""
    name = shape.name if isinstance(shape, Struct) else None
    if nested or name:
        return Struct(columns, name, nested)
    return columns


def _nested(shape: Shape) -> dict[str, Shape]:
    return dict(shape.nested) if isinstance(shape, Struct) else {}


def _need_struct(value: Any, what: str) -> dict[str, Any]:
    if value.__class__ is not dict:
        raise MappingError(f"{what} needs a struct, not a {type(value).__name__}")
    return value


def _value_step(transform: Callable[[dict[str, Any]], Any], what: str) -> Step:
    """A step that changes struct values (tombstones pass unchanged)."""

    def step(raw: RawRecord, topic: str, key: Any, value: Any) -> tuple[str, Any, Any]:
        if value is None:
            return topic, key, None
        return topic, key, transform(_need_struct(value, what))

    return step


# ------------------------------------------------------------------------------ ReplaceField


class ReplaceField:
    """org.apache.kafka.connect.transforms.ReplaceField$Value: include, exclude, renames."""

    def __init__(self, o: Options) -> None:
        self.include = frozenset(o.names("include"))
        self.exclude = frozenset(o.names("exclude"))
        self.renames = o.pairs("renames")
        if not (self.include or self.exclude or self.renames):
            raise o.error("include", "give at least one of INCLUDE, EXCLUDE, RENAMES")
        o.check_unknown(("include", "exclude", "renames"))

    def keep(self, name: str) -> bool:
        return (not self.include or name in self.include) and name not in self.exclude

    def compile(self, key: Shape, value: Shape) -> Compiled:
        columns = _struct(value)
        if columns is None:
            keep, renames = self.keep, self.renames
            return (
                key,
                value,
                _value_step(lambda v: {renames.get(k, k): x for k, x in v.items() if keep(k)}, "replace_field"),
            )
        names = {c.name: self.renames.get(c.name, c.name) for c in columns if self.keep(c.name)}
        new = tuple(dataclasses.replace(c, name=names[c.name]) for c in columns if c.name in names)
        nested = {names[k]: s for k, s in _nested(value).items() if k in names}
        return (
            key,
            _same_kind(columns, new, nested),
            _value_step(lambda v: {names[k]: x for k, x in v.items() if k in names}, "replace_field"),
        )


# ------------------------------------------------------------------------------ routers


def java_replacement(text: str) -> str:
    """A java.util.regex replacement (`$1`, `${name}`, `\\$`) as a Python `Match.expand` template."""
    out, i = [], 0
    while i < len(text):
        c = text[i]
        if c == "\\" and i + 1 < len(text):
            out.append("\\\\" if text[i + 1] == "\\" else text[i + 1])
            i += 2
        elif c == "$" and text[i + 1 : i + 2] == "{":
            end = text.index("}", i)
            out.append(f"\\g<{text[i + 2 : end]}>")
            i = end + 1
        elif c == "$" and text[i + 1 : i + 2].isdigit():
            j = i + 1
            while j < len(text) and text[j].isdigit():
                j += 1
            out.append(f"\\g<{text[i + 1 : j]}>")
            i = j
        else:
            out.append("\\\\" if c == "\\" else c)
            i += 1
    return "".join(out)


class RegexRouter:
    """org.apache.kafka.connect.transforms.RegexRouter: a topic matching `regex` (whole) becomes
    `replacement` ($1, ${name}), so its table is SINK_TABLE_NAME_FORMAT of the new topic."""

    routes = True

    def __init__(self, o: Options) -> None:
        self.pattern = o.regex("regex")
        self.replacement = java_replacement(o.get("replacement", "") or "")
        for group in re.findall(r"\\g<([^>]*)>", self.replacement):
            if not (int(group) <= self.pattern.groups if group.isdigit() else group in self.pattern.groupindex):
                raise o.error("replacement", f"refers to group {group!r}, which REGEX does not have")
        o.check_unknown(("regex", "replacement"))
        self._routes: dict[str, str] = {}

    def route(self, topic: str) -> str:
        routed = self._routes.get(topic)
        if routed is None:
            match = self.pattern.fullmatch(topic)
            routed = match.expand(self.replacement) if match else topic
            if len(self._routes) < MAX_COMPILED:
                self._routes[topic] = routed
        return routed

    def compile(self, key: Shape, value: Shape) -> Compiled:
        route = self.route
        return key, value, lambda raw, topic, k, v: (route(topic), k, v)


def java_date_format(pattern: str) -> Callable[[dt.datetime], str]:
    """A java.text.SimpleDateFormat pattern (the common letters) as a formatting function."""
    parts = _date_format_parts(pattern)

    def format_(when: dt.datetime) -> str:
        return "".join(p(when) if callable(p) else p for p in parts)

    return format_


_DATE_LETTERS: dict[str, Callable[[int], Callable[[dt.datetime], str]]] = {
    "y": lambda n: (lambda d: f"{d.year % 100:02d}") if n == 2 else (lambda d: f"{d.year:0{n}d}"),
    "M": lambda n: (lambda d: d.strftime("%b" if n == 3 else "%B")) if n >= 3 else (lambda d: f"{d.month:0{n}d}"),
    "d": lambda n: lambda d: f"{d.day:0{n}d}",
    "H": lambda n: lambda d: f"{d.hour:0{n}d}",
    "h": lambda n: lambda d: f"{(d.hour % 12) or 12:0{n}d}",
    "m": lambda n: lambda d: f"{d.minute:0{n}d}",
    "s": lambda n: lambda d: f"{d.second:0{n}d}",
    "S": lambda n: lambda d: f"{d.microsecond:06d}"[:n] if n <= 6 else f"{d.microsecond:06d}".ljust(n, "0"),
    "a": lambda n: lambda d: "AM" if d.hour < 12 else "PM",
    "E": lambda n: lambda d: d.strftime("%a" if n <= 3 else "%A"),
    "D": lambda n: lambda d: f"{d.timetuple().tm_yday:0{n}d}",
    "X": lambda n: lambda d: "Z" if not d.utcoffset() else d.strftime("%z")[: 3 if n == 1 else 5],
    "Z": lambda n: lambda d: d.strftime("%z"),
}


def _date_format_parts(pattern: str) -> list[Any]:
    parts: list[Any] = []
    i = 0
    while i < len(pattern):
        c = pattern[i]
        if c == "'":
            end = pattern.find("'", i + 1)
            if end < 0:
                raise ValueError("unclosed quote")
            parts.append(pattern[i + 1 : end] or "'")
            i = end + 1
        elif c.isalpha():
            j = i
            while j < len(pattern) and pattern[j] == c:
                j += 1
            if c not in _DATE_LETTERS:
                raise ValueError(f"pattern letter {c!r} is not supported")
            letter = _DATE_LETTERS[c](j - i)
            if c == "X" and j - i == 3:
                letter = lambda d: "Z" if not d.utcoffset() else d.isoformat()[-6:]  # noqa: E731
            parts.append(letter)
            i = j
        else:
            parts.append(c)
            i += 1
    return parts


def _date_pattern(o: Options, option: str, default: str | None) -> Callable[[dt.datetime], str] | None:
    text = o.get(option, default)
    if text is None:
        return None
    try:
        return java_date_format(text)
    except ValueError as exc:
        raise o.error(option, f"not a SimpleDateFormat pattern the sink reads ({exc})") from None


class TimestampRouter:
    """org.apache.kafka.connect.transforms.TimestampRouter: the topic (and so the table) from
    `topic_format` with ${topic} and ${timestamp}, the record's timestamp in `timestamp_format` (UTC)."""

    routes = True

    def __init__(self, o: Options) -> None:
        self.topic_format = o.get("topic_format", "${topic}-${timestamp}") or ""
        self.format = _date_pattern(o, "timestamp_format", "yyyyMMdd")
        o.check_unknown(("topic_format", "timestamp_format"))

    def compile(self, key: Shape, value: Shape) -> Compiled:
        topic_format, format_ = self.topic_format, self.format
        assert format_ is not None

        def step(raw: RawRecord, topic: str, k: Any, v: Any) -> tuple[str, Any, Any]:
            if raw.timestamp is None:
                raise MappingError("timestamp_router: the record has no timestamp")
            when = EPOCH + dt.timedelta(milliseconds=raw.timestamp)
            return topic_format.replace("${topic}", topic).replace("${timestamp}", format_(when)), k, v

        return key, value, step


# ------------------------------------------------------------------------------ InsertField


class InsertField:
    """org.apache.kafka.connect.transforms.InsertField$Value: topic, partition, offset, timestamp
    and a static field; a name ending in `!` is a required (NOT NULL) column, `?` or none optional."""

    KINDS = {
        "topic_field": ColumnType(Kind.STRING),
        "partition_field": ColumnType(Kind.INT32),
        "offset_field": ColumnType(Kind.INT64),
        "timestamp_field": ColumnType(Kind.TIMESTAMP, precision=3),
        "static_field": ColumnType(Kind.STRING),
    }

    def __init__(self, o: Options) -> None:
        self.fields: list[tuple[str, str, bool]] = []  # (what, column, nullable)
        for what in self.KINDS:
            name = o.get(what)
            if name:
                self.fields.append((what, name.rstrip("!?"), not name.endswith("!")))
        if not self.fields:
            raise o.error("topic_field", "give at least one of " + ", ".join(k.upper() for k in self.KINDS))
        self.static = o.get("static_value")
        if any(w == "static_field" for w, _, _ in self.fields) and self.static is None:
            raise o.error("static_value", "required with STATIC_FIELD")
        o.check_unknown((*self.KINDS, "static_value"))

    def compile(self, key: Shape, value: Shape) -> Compiled:
        fields, static = self.fields, self.static
        columns = _struct(value)
        new_value: Shape = None
        if columns is not None:
            added = {name for _, name, _ in fields}
            kept = tuple(c for c in columns if c.name not in added)
            extra = tuple(Column(name, self.KINDS[what], nullable) for what, name, nullable in fields)
            new_value = _same_kind(columns, kept + extra, _nested(value))

        def step(raw: RawRecord, topic: str, k: Any, v: Any) -> tuple[str, Any, Any]:
            if v is None:
                return topic, k, None
            out = dict(_need_struct(v, "insert_field"))
            for what, name, _ in fields:
                if what == "topic_field":
                    out[name] = topic
                elif what == "partition_field":
                    out[name] = raw.coord.partition
                elif what == "offset_field":
                    out[name] = raw.coord.offset
                elif what == "timestamp_field":
                    out[name] = None if raw.timestamp is None else EPOCH + dt.timedelta(milliseconds=raw.timestamp)
                else:
                    out[name] = static
            return topic, k, out

        return key, new_value, step


# ------------------------------------------------------------------------------ Cast


def _to_int(bits: int) -> Callable[[Any], int]:
    low, high = -(1 << (bits - 1)), (1 << (bits - 1)) - 1

    def cast(value: Any) -> int:
        number = int(value.strip()) if isinstance(value, str) else int(value)
        if not low <= number <= high:
            raise ValueError(f"out of range for int{bits}")
        return number

    return cast


def _to_bool(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() == "true"  # Java's Boolean.parseBoolean
    return bool(value)


def _to_string(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, bytes):
        import base64

        return base64.b64encode(value).decode()
    return str(value)


CASTS: dict[str, tuple[ColumnType, Callable[[Any], Any]]] = {
    "int8": (ColumnType(Kind.INT8), _to_int(8)),
    "int16": (ColumnType(Kind.INT16), _to_int(16)),
    "int32": (ColumnType(Kind.INT32), _to_int(32)),
    "int64": (ColumnType(Kind.INT64), _to_int(64)),
    "float32": (ColumnType(Kind.FLOAT32), float),
    "float64": (ColumnType(Kind.FLOAT64), float),
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
        columns = _struct(value)
        new_value: Shape = value
        if columns is not None:
            new_value = _same_kind(
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
                {k: s for k, s in _nested(value).items() if k not in casts},
            )

        def cast(v: dict[str, Any]) -> dict[str, Any]:
            out = dict(v)
            for name, convert in casts.items():
                x = out.get(name)
                if x is not None:
                    out[name] = convert(x)
            return out

        return key, new_value, _value_step(cast, "cast")

    def _check_bytes(self, value: Shape) -> None:
        """Binary data casts to string only (base64), as in Connect; refused once per schema."""
        if self.whole:
            targets = {"": self.whole} if isinstance(value, ColumnType) and value.kind is Kind.BYTES else {}
        else:
            columns = {c.name: c.type.kind for c in _struct(value) or ()}
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
        self.format = _date_pattern(o, "format", None)
        self.pattern = o.get("format")
        precision = (o.get("unix_precision", "milliseconds") or "").lower()
        if precision not in UNIX:
            raise o.error("unix_precision", f"one of {', '.join(UNIX)} (got {precision!r})")
        self.unit_us = UNIX[precision]
        self.parse_format = _strptime_format(self.pattern) if self.pattern else None
        o.check_unknown(("target_type", "field", "format", "unix_precision"))

    def instant(self, value: Any) -> dt.datetime:
        if isinstance(value, dt.datetime):
            return value if value.tzinfo is not None else value.replace(tzinfo=UTC)
        if isinstance(value, dt.date):
            return dt.datetime(value.year, value.month, value.day, tzinfo=UTC)
        if isinstance(value, dt.time):
            return dt.datetime.combine(dt.date(1970, 1, 1), value.replace(tzinfo=value.tzinfo or UTC))
        if isinstance(value, int | float | decimal.Decimal) and not isinstance(value, bool):
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
        return self.format(when) if self.format else when.isoformat()

    def compile(self, key: Shape, value: Shape) -> Compiled:
        convert, field = self.convert, self.field
        target_type = TARGETS[self.target]
        if field is None:
            return (
                key,
                (target_type if value is not None else None),
                (lambda raw, topic, k, v: (topic, k, None if v is None else convert(v))),
            )
        columns = _struct(value)
        new_value: Shape = value
        if columns is not None:
            new_value = _same_kind(
                columns,
                tuple(
                    dataclasses.replace(c, type=target_type, default=None, has_default=False) if c.name == field else c
                    for c in columns
                ),
                _nested(value),
            )

        def step(v: dict[str, Any]) -> dict[str, Any]:
            x = v.get(field)
            if x is None:
                return v
            out = dict(v)
            out[field] = convert(x)
            return out

        return key, new_value, _value_step(step, "timestamp_converter")


def _strptime_format(pattern: str) -> str:
    """A SimpleDateFormat pattern as a strptime format (the letters `strptime` can read)."""
    table = {
        "yyyy": "%Y",
        "yy": "%y",
        "MM": "%m",
        "MMM": "%b",
        "dd": "%d",
        "HH": "%H",
        "hh": "%I",
        "mm": "%M",
        "ss": "%S",
        "SSS": "%f",
        "SSSSSS": "%f",
        "a": "%p",
        "XXX": "%z",
        "Z": "%z",
        "X": "%z",
    }
    out, i = [], 0
    while i < len(pattern):
        c = pattern[i]
        if c == "'":
            end = pattern.find("'", i + 1)
            out.append(pattern[i + 1 : end].replace("%", "%%"))
            i = end + 1
        elif c.isalpha():
            j = i
            while j < len(pattern) and pattern[j] == c:
                j += 1
            out.append(table.get(pattern[i:j], pattern[i:j]))
            i = j
        else:
            out.append("%%" if c == "%" else c)
            i += 1
    return "".join(out)


# ------------------------------------------------------------------------------ Flatten / Extract / Hoist


class Flatten:
    """org.apache.kafka.connect.transforms.Flatten$Value: nested structs become columns named
    parent<delimiter>child (default `.`); maps and arrays stay as they are with a schema."""

    def __init__(self, o: Options) -> None:
        self.delimiter = o.get("delimiter", ".") or "."
        o.check_unknown(("delimiter",))

    def compile(self, key: Shape, value: Shape) -> Compiled:
        columns = _struct(value)
        delimiter = self.delimiter
        if columns is None:
            return key, value, _value_step(lambda v: _flatten_values(v, "", delimiter, {}), "flatten")
        paths: list[tuple[str, tuple[str, ...]]] = []
        flat = tuple(self._columns(value, (), "", True, paths))
        if len(paths) == len(columns) and all(len(p) == 1 for _, p in paths):
            return key, value, None  # nothing nested: nothing to do per record

        def step(v: dict[str, Any]) -> dict[str, Any]:
            out = {}
            for name, path in paths:
                x: Any = v
                for part in path:
                    x = x.get(part) if x.__class__ is dict else None
                out[name] = x
            return out

        return key, flat, _value_step(step, "flatten")

    def _columns(
        self, shape: Shape, path: tuple[str, ...], prefix: str, parent_required: bool, paths: list[Any]
    ) -> list[Column]:
        nested = _nested(shape)
        out: list[Column] = []
        for c in shape if isinstance(shape, tuple) else ():  # a struct's columns (flatten has checked)
            inner = nested.get(c.name)
            name = prefix + c.name
            required = parent_required and not c.nullable
            if isinstance(inner, tuple):
                out += self._columns(inner, (*path, c.name), name + self.delimiter, required, paths)
            else:
                out.append(dataclasses.replace(c, name=name, nullable=not (parent_required and not c.nullable)))
                paths.append((name, (*path, c.name)))
        return out


def _flatten_values(value: dict[str, Any], prefix: str, delimiter: str, out: dict[str, Any]) -> dict[str, Any]:
    for k, x in value.items():
        if x.__class__ is dict:
            _flatten_values(x, f"{prefix}{k}{delimiter}", delimiter, out)
        else:
            out[prefix + k] = x
    return out


class ExtractField:
    """org.apache.kafka.connect.transforms.ExtractField$Value: the value becomes its `field`."""

    side = "value"  # "key" in the $Key variant

    def __init__(self, o: Options) -> None:
        self.field = o.required("field", "the field whose value becomes the record's value")
        o.check_unknown(("field",))

    def compile(self, key: Shape, value: Shape) -> Compiled:
        field = self.field
        columns = _struct(value)
        new_value: Shape = None
        if columns is not None:
            column = next((c for c in columns if c.name == field), None)
            if column is None:
                raise MappingError(f"extract_field: the {self.side}'s schema has no field {field!r}")
            new_value = _nested(value).get(field) or column.type

        def step(raw: RawRecord, topic: str, k: Any, v: Any) -> tuple[str, Any, Any]:
            return topic, k, None if v is None else _need_struct(v, "extract_field").get(field)

        return key, new_value, step


class HoistField:
    """org.apache.kafka.connect.transforms.HoistField$Value: the value becomes {field: value}
    (a tombstone stays a tombstone)."""

    def __init__(self, o: Options) -> None:
        self.field = o.required("field", "the field that will hold the value")
        o.check_unknown(("field",))

    def compile(self, key: Shape, value: Shape) -> Compiled:
        field = self.field
        new_value: Shape = None
        if isinstance(value, tuple):
            new_value = Struct((Column(field, ColumnType(Kind.JSON)),), None, {field: value})
        elif isinstance(value, ColumnType):
            new_value = (Column(field, value),)
        return key, new_value, lambda raw, topic, k, v: (topic, k, None if v is None else {field: v})


class ValueToKey:
    """org.apache.kafka.connect.transforms.ValueToKey: the key becomes a struct of these value fields."""

    def __init__(self, o: Options) -> None:
        self.fields = o.names("fields", required=True)
        o.check_unknown(("fields",))

    def compile(self, key: Shape, value: Shape) -> Compiled:
        fields = self.fields
        columns = _struct(value)
        new_key: Shape = None
        if columns is not None:
            by_name = {c.name: c for c in columns}
            missing = [f for f in fields if f not in by_name]
            if missing:
                raise MappingError(f"value_to_key: the value's schema has no field(s) {', '.join(missing)}")
            new_key = tuple(by_name[f] for f in fields)

        def step(raw: RawRecord, topic: str, k: Any, v: Any) -> tuple[str, Any, Any]:
            if v is None:
                return topic, k, v
            v = _need_struct(v, "value_to_key")
            return topic, {f: v.get(f) for f in fields}, v

        return new_key, value, step


# ------------------------------------------------------------------------------ MaskField


MASKS: dict[Kind, Any] = {
    Kind.INT8: 0,
    Kind.INT16: 0,
    Kind.INT32: 0,
    Kind.INT64: 0,
    Kind.FLOAT32: 0.0,
    Kind.FLOAT64: 0.0,
    Kind.BOOLEAN: False,
    Kind.STRING: "",
    Kind.BYTES: b"",
    Kind.DECIMAL: decimal.Decimal(0),
    Kind.DATE: dt.date(1970, 1, 1),
    Kind.TIME: dt.time(0),
    Kind.TIMESTAMP: EPOCH,
    Kind.LOCAL_TIMESTAMP: dt.datetime(1970, 1, 1),
    Kind.UUID: uuid.UUID(int=0),
    Kind.JSON: {},
    Kind.ARRAY: [],
}
REPLACEABLE: dict[Kind, Callable[[str], Any]] = {
    Kind.INT8: int,
    Kind.INT16: int,
    Kind.INT32: int,
    Kind.INT64: int,
    Kind.FLOAT32: float,
    Kind.FLOAT64: float,
    Kind.STRING: str,
    Kind.DECIMAL: decimal.Decimal,
}


class MaskField:
    """org.apache.kafka.connect.transforms.MaskField$Value: `fields` get their type's empty value
    (0, "", false, epoch...) or `replacement` (numbers and strings)."""

    def __init__(self, o: Options) -> None:
        self.fields = o.names("fields", required=True)
        self.replacement = o.get("replacement")
        o.check_unknown(("fields", "replacement"))

    def _mask(self, kind: Kind | None, sample: Any) -> Any:
        if self.replacement is not None:
            if kind is None:
                return self.replacement if isinstance(sample, str) else type(sample)(self.replacement)
            if kind not in REPLACEABLE:
                raise MappingError(f"mask_field: a replacement cannot stand for a {kind} field")
            return REPLACEABLE[kind](self.replacement)
        if kind is not None:
            return MASKS[kind]
        return type(sample)() if isinstance(sample, int | float | str | bytes | bool | dict | list) else None

    def compile(self, key: Shape, value: Shape) -> Compiled:
        fields = self.fields
        columns = _struct(value)
        if columns is None:

            def schemaless(v: dict[str, Any]) -> dict[str, Any]:
                out = dict(v)
                for f in fields:
                    if out.get(f) is not None:
                        out[f] = self._mask(None, out[f])
                return out

            return key, value, _value_step(schemaless, "mask_field")
        kinds = {c.name: c.type.kind for c in columns}
        masks = {f: self._mask(kinds[f], None) for f in fields if f in kinds}

        def masked(v: dict[str, Any]) -> dict[str, Any]:
            out = dict(v)
            for f, mask in masks.items():
                if out.get(f) is not None:
                    out[f] = mask
            return out

        return key, value, _value_step(masked, "mask_field")


# ------------------------------------------------------------------------------ Filter and predicates


class Filter:
    """org.apache.kafka.connect.transforms.Filter: drops the records its predicate matches (all,
    without a predicate); a dropped record is reported as `skip`."""

    routes = True

    def __init__(self, o: Options) -> None:
        o.check_unknown(())

    def compile(self, key: Shape, value: Shape) -> Compiled:
        return key, value, lambda raw, topic, k, v: None


def topic_name_matches(o: Options) -> Predicate:
    pattern = o.regex("pattern")
    o.check_unknown(("pattern",))
    return lambda raw, topic, k, v: pattern.fullmatch(topic) is not None


def has_header_key(o: Options) -> Predicate:
    name = o.required("name", "the header name")
    o.check_unknown(("name",))
    return lambda raw, topic, k, v: any(h == name for h, _ in raw.headers)


def record_is_tombstone(o: Options) -> Predicate:
    o.check_unknown(())
    return lambda raw, topic, k, v: v is None


# ------------------------------------------------------------------------------ headers


def header_bytes(value: Any) -> bytes | None:
    """A field's value as a header value: text as UTF-8, bytes as they are, structs as JSON."""
    if value is None or value.__class__ is bytes:
        return value
    if isinstance(value, dict | list):
        return json.dumps(value, default=str, separators=(",", ":")).encode()
    return _to_string(value).encode()


class HeaderFrom:
    """org.apache.kafka.connect.transforms.HeaderFrom$Value (and $Key): `fields` become the headers
    named in `headers` (same count, in order); `operation` copy keeps the fields, move removes them."""

    headers = True
    side = "value"  # "key" in the $Key variant

    def __init__(self, o: Options) -> None:
        self.fields = o.names("fields", required=True)
        self.names = o.names("headers", required=True)
        if len(self.fields) != len(self.names):
            raise o.error("headers", f"give one header name per field ({len(self.fields)} fields, {len(self.names)})")
        self.operation = (o.required("operation", "copy or move")).lower()
        if self.operation not in ("copy", "move"):
            raise o.error("operation", f"copy or move (got {self.operation!r})")
        o.check_unknown(("fields", "headers", "operation"))

    def compile(self, key: Shape, value: Shape) -> Compiled:
        pairs = tuple(zip(self.fields, self.names, strict=True))
        moved = frozenset(self.fields) if self.operation == "move" else frozenset()
        columns = _struct(value)
        new_value: Shape = value
        if columns is not None:
            missing = [f for f in self.fields if f not in {c.name for c in columns}]
            if missing:
                raise MappingError(f"header_from: the {self.side}'s schema has no field(s) {', '.join(missing)}")
            if moved:
                new_value = _same_kind(
                    columns,
                    tuple(c for c in columns if c.name not in moved),
                    {k: s for k, s in _nested(value).items() if k not in moved},
                )

        def step(raw: RawRecord, topic: str, k: Any, v: Any) -> tuple[str, Any, Any, Any]:
            if v is None:
                return topic, k, v, raw.headers
            v = _need_struct(v, "header_from")
            added = tuple((name, header_bytes(v.get(f))) for f, name in pairs)
            if moved:
                v = {name: x for name, x in v.items() if name not in moved}
            return topic, k, v, raw.headers + added

        return key, new_value, step


class InsertHeader:
    """org.apache.kafka.connect.transforms.InsertHeader: adds the header `header` with the text
    `value_literal`."""

    headers = True
    routes = True  # changes no schema: may take a predicate

    def __init__(self, o: Options) -> None:
        self.header = o.required("header", "the header name")
        self.value = (o.get("value_literal") or "").encode()
        if o.get("value_literal") is None:
            raise o.error("value_literal", "required (the header's value, as text)")
        o.check_unknown(("header", "value_literal"))

    def compile(self, key: Shape, value: Shape) -> Compiled:
        added = ((self.header, self.value),)
        return key, value, lambda raw, topic, k, v: (topic, k, v, raw.headers + added)


class DropHeaders:
    """org.apache.kafka.connect.transforms.DropHeaders: removes every header named in `headers`."""

    headers = True
    routes = True  # changes no schema: may take a predicate

    def __init__(self, o: Options) -> None:
        self.names = frozenset(o.names("headers", required=True))
        o.check_unknown(("headers",))

    def compile(self, key: Shape, value: Shape) -> Compiled:
        names = self.names

        def step(raw: RawRecord, topic: str, k: Any, v: Any) -> tuple[str, Any, Any, Any]:
            headers = raw.headers
            if headers and any(h in names for h, _ in headers):
                headers = tuple(h for h in headers if h[0] not in names)
            return topic, k, v, headers

        return key, value, step


# ------------------------------------------------------------------------------ naming


def snake_case(name: str) -> str:
    """`firstName` -> `first_name`, `HTTPServer` -> `http_server`, `Order Lines` -> `order_lines`
    (leading underscores kept: `__op` stays)."""
    lead = len(name) - len(name.lstrip("_"))
    body = re.sub(r"([A-Z]+)([A-Z][a-z])", r"\1_\2", name[lead:])
    body = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", body)
    return name[:lead] + re.sub(r"[\s\-.]+", "_", body).lower()


CASES: dict[str, Callable[[str], str]] = {"snake_case": snake_case, "lower": str.lower, "upper": str.upper}


def _namer(o: Options) -> Callable[[str], str]:
    case = (o.get("case") or "").lower() or None
    if case is not None and case not in CASES:
        raise o.error("case", f"one of {', '.join(CASES)} (got {case!r})")
    prefix, suffix = o.get("prefix", "") or "", o.get("suffix", "") or ""
    if case is None and not prefix and not suffix:
        raise o.error("case", "give at least one of CASE, PREFIX, SUFFIX")
    o.check_unknown(("case", "prefix", "suffix"))
    convert = CASES[case] if case else None

    def name(text: str) -> str:
        return prefix + (convert(text) if convert else text) + suffix

    return name


class TableNameCase:
    """Table names like the Debezium JDBC sink's `collection.naming.style` / `.prefix` / `.suffix`:
    `case` snake_case, lower or upper, then `prefix` and `suffix`, applied to every table name the
    sink derives (SINK_TABLE_NAME_FORMAT's result, after routers), once per name."""

    def __init__(self, o: Options) -> None:
        self.table_name = _namer(o)

    def compile(self, key: Shape, value: Shape) -> Compiled:
        return key, value, None


class ColumnNameCase:
    """Column names like the Debezium JDBC sink's `column.naming.style` / `.prefix` / `.suffix`:
    the top-level fields of the value and of a struct key (so record_key primary keys match)."""

    def __init__(self, o: Options) -> None:
        self.name = _namer(o)
        self._names: dict[str, str] = {}

    def _rename(self, name: str) -> str:
        new = self._names.get(name)
        if new is None:
            new = self.name(name)
            if len(self._names) < MAX_COMPILED:
                self._names[name] = new
        return new

    def _shape(self, shape: Shape) -> Shape:
        columns = _struct(shape)
        if columns is None:
            return shape
        names = {c.name: self._rename(c.name) for c in columns}
        if len(set(names.values())) != len(names):
            raise MappingError("column_name_case: two fields get one name")
        return _same_kind(
            columns,
            tuple(dataclasses.replace(c, name=names[c.name]) for c in columns),
            {names[k]: s for k, s in _nested(shape).items() if k in names},
        )

    def compile(self, key: Shape, value: Shape) -> Compiled:
        rename = self._rename

        def renamed(x: Any) -> Any:
            return {rename(n): y for n, y in x.items()} if x.__class__ is dict else x

        return self._shape(key), self._shape(value), lambda raw, topic, k, v: (topic, renamed(k), renamed(v))


# ------------------------------------------------------------------------------ routing by a field


class FieldRouter:
    """The topic (and so the table) from a value field: `topic_format` (default `${field}`) with
    ${topic} and ${field}, the field's value as text; a record without the field is an error, a
    tombstone keeps its topic. Connect has no such SMT (ExtractTopic$Value of Confluent's does this)."""

    routes = True

    def __init__(self, o: Options) -> None:
        self.field = o.required("field", "the value field whose value names the table")
        self.topic_format = o.get("topic_format", "${field}") or "${field}"
        o.check_unknown(("field", "topic_format"))
        self._routes: dict[tuple[str, Any], str] = {}

    def compile(self, key: Shape, value: Shape) -> Compiled:
        field, topic_format, routes = self.field, self.topic_format, self._routes

        def step(raw: RawRecord, topic: str, k: Any, v: Any) -> tuple[str, Any, Any]:
            if v is None:
                return topic, k, v
            x = _need_struct(v, "field_router").get(field)
            if x is None or isinstance(x, dict | list):
                raise MappingError(f"field_router: field {field!r} is missing, null or not a primitive")
            routed = routes.get((topic, x))
            if routed is None:
                routed = topic_format.replace("${topic}", topic).replace("${field}", _to_string(x))
                if len(routes) < MAX_COMPILED:
                    routes[(topic, x)] = routed
            return routed, k, v

        return key, value, step


# ------------------------------------------------------------------------------ key-side variants


class KeySide:
    """Connect's `$Key` variant of a value transform: the same work on the record key (the inner
    transform sees the key as its value; its messages say "key")."""

    def __init__(self, inner: Any, type_: str) -> None:
        self.inner, self.type = inner, type_
        inner.side = "key"
        self.headers = getattr(inner, "headers", False)  # HeaderFrom$Key: the step returns headers too

    def compile(self, key: Shape, value: Shape) -> Compiled:
        _, new_key, step = self.inner.compile(value, key)  # the value passes through unchanged
        if step is None:
            return new_key, value, None
        if self.headers:

            def swapped_with_headers(raw: RawRecord, topic: str, k: Any, v: Any) -> tuple[str, Any, Any, Any]:
                topic, v2, k2, headers = step(raw, topic, v, k)
                return topic, k2, v2, headers

            return new_key, value, swapped_with_headers

        def swapped(raw: RawRecord, topic: str, k: Any, v: Any) -> tuple[str, Any, Any]:
            topic, v2, k2 = step(raw, topic, v, k)
            return topic, k2, v2

        return new_key, value, swapped


def _key_side(cls: Callable[[Options], Any], type_: str) -> Callable[[Options], Any]:
    return lambda o: KeySide(cls(o), type_)


def field_value_matches(o: Options) -> Predicate:
    """A value field (as text) matches `pattern` whole; a missing or null field does not."""
    field = o.required("field", "the value field to test")
    pattern = o.regex("pattern")
    o.check_unknown(("field", "pattern"))

    def test(raw: RawRecord, topic: str, k: Any, v: Any) -> bool:
        if v.__class__ is not dict:
            return False
        x = v.get(field)
        return x is not None and pattern.fullmatch(_to_string(x)) is not None

    return test


TRANSFORMS: dict[str, Callable[[Options], Any]] = {
    "replace_field": ReplaceField,
    "regex_router": RegexRouter,
    "insert_field": InsertField,
    "cast": Cast,
    "timestamp_converter": TimestampConverter,
    "flatten": Flatten,
    "extract_field": ExtractField,
    "hoist_field": HoistField,
    "value_to_key": ValueToKey,
    "mask_field": MaskField,
    "timestamp_router": TimestampRouter,
    "filter": Filter,
    "header_from": HeaderFrom,
    "insert_header": InsertHeader,
    "drop_headers": DropHeaders,
    "table_name_case": TableNameCase,
    "column_name_case": ColumnNameCase,
    "field_router": FieldRouter,
}
# Connect's $Key variants: the value transform's work on the key.
KEY_VARIANTS = (
    "replace_field",
    "cast",
    "mask_field",
    "flatten",
    "extract_field",
    "hoist_field",
    "insert_field",
    "timestamp_converter",
    "header_from",
)
for _type in KEY_VARIANTS:
    TRANSFORMS[_type + "_key"] = _key_side(TRANSFORMS[_type], _type + "_key")
PREDICATES: dict[str, Callable[[Options], Predicate]] = {
    "topic_name_matches": topic_name_matches,
    "has_header_key": has_header_key,
    "record_is_tombstone": record_is_tombstone,
    "field_value_matches": field_value_matches,
}


# ------------------------------------------------------------------------------ the chain


class _Link:
    __slots__ = ("name", "negate", "predicate", "transform", "type")

    def __init__(self, name: str, type_: str, transform: Any, predicate: Predicate | None, negate: bool) -> None:
        self.name, self.type, self.transform, self.predicate, self.negate = name, type_, transform, predicate, negate

    @property
    def headers(self) -> bool:
        """Whether the step returns the headers too: (topic, key, value, headers)."""
        return getattr(self.transform, "headers", False)

    def compile(self, key: Shape, value: Shape) -> Compiled:
        new_key, new_value, step = self.transform.compile(key, value)
        predicate, negate = self.predicate, self.negate
        if step is None or predicate is None:
            return new_key, new_value, step
        headers = self.headers

        def conditional(raw: RawRecord, topic: str, k: Any, v: Any) -> Any:
            if predicate(raw, topic, k, v) != negate:
                return step(raw, topic, k, v)
            return (topic, k, v, raw.headers) if headers else (topic, k, v)

        return new_key, new_value, conditional


class Chain:
    """The configured transforms, applied in order; compiled per key and value schema."""

    def __init__(self, links: list[_Link]) -> None:
        self.links = links
        self._compiled: dict[Any, tuple[Payload, Payload, list[tuple[_Link, Step, bool]]]] = {}
        namers = [link.transform.table_name for link in links if hasattr(link.transform, "table_name")]
        # Naming transforms on table names (TableNameCase): applied by the mapping to each derived
        # table name, once per name.
        self.table_namer: Callable[[str], str] | None = None
        if namers:

            def table_namer(name: str) -> str:
                for namer in namers:
                    name = namer(name)
                return name

            self.table_namer = table_namer

    def __bool__(self) -> bool:
        return bool(self.links)

    def __repr__(self) -> str:
        return "Chain(" + ", ".join(f"{link.name}={link.type}" for link in self.links) + ")"

    def apply(self, record: Decoded, topic: str) -> tuple[str, Decoded] | None:
        """(topic, record) after the chain, or None when a Filter dropped the record. Header
        transforms change the record's headers as it goes (the returned record's `raw`)."""
        key, value = record.key, record.value
        cache_key = (_shape_key(key), _shape_key(value))
        compiled = self._compiled.get(cache_key)
        if compiled is None:
            compiled = self._compile(cache_key, _shape(key), _shape(value))
        key_out, value_out, steps = compiled
        raw = record.raw
        k, v = key.data, value.data
        for link, step, headers in steps:
            try:
                out = step(raw, topic, k, v)
            except MappingError as exc:
                raise MappingError(f"transform {link.name!r} ({link.type}) failed: {exc.safe_reason}") from exc
            except SinkError:
                raise
            except Exception as exc:
                raise MappingError(
                    f"transform {link.name!r} ({link.type}) failed", detail=f"{type(exc).__name__}: {exc}"
                ) from exc
            if out is None:
                return None
            if headers:
                topic, k, v, new_headers = out
                if new_headers is not raw.headers:
                    raw = raw._replace(headers=new_headers)
            else:
                topic, k, v = out
        return topic, Decoded(raw, Payload(k, *key_out[1:]), Payload(v, *value_out[1:]))

    def _compile(self, cache_key: Any, key: Shape, value: Shape) -> tuple[Payload, Payload, list[Any]]:
        steps: list[Any] = []
        for link in self.links:
            try:
                key, value, step = link.compile(key, value)
            except SinkError:
                raise
            except Exception as exc:
                raise MappingError(
                    f"transform {link.name!r} ({link.type}) cannot apply to this schema",
                    detail=f"{type(exc).__name__}: {exc}",
                ) from exc
            if step is not None:
                steps.append((link, step, link.headers))
        compiled = (
            Payload(None, key, None if key is None else ("smt", cache_key, "key")),
            Payload(None, value, None if value is None else ("smt", cache_key, "value")),
            steps,
        )
        if len(self._compiled) >= MAX_COMPILED:
            self._compiled.clear()
        self._compiled[cache_key] = compiled
        return compiled


def _shape(payload: Payload) -> Shape:
    """What the chain may rely on: a schema's shape, a primitive's type; None for schemaless data."""
    if payload.schema_id is not None or payload.shape.__class__ is ColumnType:
        return payload.shape
    return None


def _shape_key(payload: Payload) -> Any:
    if payload.schema_id is not None:
        return payload.schema_id
    return payload.shape if payload.shape.__class__ is ColumnType else None


def build_chain(
    names: tuple[str, ...], options: Mapping[str, Mapping[str, str]], predicates: Mapping[str, Mapping[str, str]]
) -> Chain:
    """The chain `SINK_TRANSFORMS` names, from its `SINK_TRANSFORMS__<NAME>__<OPTION>` blocks and
    the `SINK_PREDICATES__<NAME>__<OPTION>` blocks they refer to. ConfigError naming the variable."""
    names = tuple(n.lower() for n in names)
    for name in options:
        if name not in names:
            raise ConfigError(
                f"SINK_TRANSFORMS__{name.upper()}__TYPE: transform {name!r} is not listed in SINK_TRANSFORMS"
            )
    if len(set(names)) != len(names):
        raise ConfigError(f"SINK_TRANSFORMS: a name is listed twice ({','.join(names)})")
    built_predicates = {}
    for name, values in predicates.items():
        o = Options(f"SINK_PREDICATES__{name.upper()}", values)
        type_ = (o.get("type") or "").lower()
        if type_ not in PREDICATES:
            raise o.error("type", _unknown(type_, PREDICATES))
        built_predicates[name.lower()] = PREDICATES[type_](o)
    links = []
    for name in names:
        if not re.fullmatch(r"[a-z0-9_]+", name) or "__" in name:
            raise ConfigError(f"SINK_TRANSFORMS: {name!r} is not a name of letters, digits and single underscores")
        o = Options(f"SINK_TRANSFORMS__{name.upper()}", options.get(name, {}))
        type_ = (o.get("type") or "").lower()
        if type_ not in TRANSFORMS:
            raise o.error("type", _unknown(type_, TRANSFORMS))
        transform = TRANSFORMS[type_](o)
        predicate_name = (o.get("predicate") or "").lower() or None
        predicate = None
        if predicate_name is not None:
            if not getattr(transform, "routes", False):
                takers = sorted((t for t, c in TRANSFORMS.items() if getattr(c, "routes", False)), key=_first_filter)
                raise o.error("predicate", f"only {', '.join(takers)} take a predicate")
            if predicate_name not in built_predicates:
                define = f"SINK_PREDICATES__{predicate_name.upper()}__TYPE"
                raise o.error("predicate", f"no predicate {predicate_name!r} (define {define})")
            predicate = built_predicates[predicate_name]
        negate = o.boolean("negate")
        if negate and predicate is None:
            raise o.error("negate", "needs a PREDICATE")
        links.append(_Link(name, type_, transform, predicate, negate))
    return Chain(links)


def _first_filter(type_: str) -> tuple[bool, str]:
    return type_ != "filter", type_


def _unknown(type_: str, known: Mapping[str, Any]) -> str:
    what = f"unknown type {type_!r}" if type_ else "required"
    return f"{what} (one of: {', '.join(known)})"
