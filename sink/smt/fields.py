"""Transforms that reshape the fields of a value: ReplaceField, InsertField, Flatten,
ExtractField, HoistField, ValueToKey, MaskField."""

from __future__ import annotations

import dataclasses
import datetime as dt
import decimal
import uuid
from collections.abc import Callable
from typing import Any

from ..errors import MappingError
from ..formats import Struct
from ..model import Column, ColumnType, Kind, RawRecord, Shape
from .base import (
    EPOCH,
    Compiled,
    Options,
    need_struct,
    nested_shapes,
    same_kind,
    struct_columns,
    unique_columns,
    value_step,
)

# ------------------------------------------------------------------------------ ReplaceField


class ReplaceField:
    """org.apache.kafka.connect.transforms.ReplaceField$Value: include, exclude, renames."""

    def __init__(self, o: Options) -> None:
        # Connect's deprecated `whitelist` / `blacklist` (KIP-629) still work; the new names win.
        self.include = frozenset(o.names("include") or o.names("whitelist"))
        self.exclude = frozenset(o.names("exclude") or o.names("blacklist"))
        self.renames = o.pairs("renames")
        if not (self.include or self.exclude or self.renames):
            raise o.error("include", "give at least one of INCLUDE, EXCLUDE, RENAMES")
        o.check_unknown(("include", "exclude", "renames", "whitelist", "blacklist"))

    def keep(self, name: str) -> bool:
        return (not self.include or name in self.include) and name not in self.exclude

    def compile(self, key: Shape, value: Shape) -> Compiled:
        columns = struct_columns(value)
        if columns is None:
            keep, renames = self.keep, self.renames
            return (
                key,
                value,
                value_step(lambda v: {renames.get(k, k): x for k, x in v.items() if keep(k)}, "replace_field"),
            )
        names = {c.name: self.renames.get(c.name, c.name) for c in columns if self.keep(c.name)}
        new = unique_columns(
            tuple(dataclasses.replace(c, name=names[c.name]) for c in columns if c.name in names), "replace_field"
        )
        nested = {names[k]: s for k, s in nested_shapes(value).items() if k in names}
        return (
            key,
            same_kind(columns, new, nested),
            value_step(lambda v: {names[k]: x for k, x in v.items() if k in names}, "replace_field"),
        )


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
        columns = struct_columns(value)
        new_value: Shape = None
        if columns is not None:
            # A name the struct already has is refused, as Connect's SchemaBuilder refuses a duplicate
            # field (the record fails), rather than overwriting the record's own value.
            extra = tuple(Column(name, self.KINDS[what], nullable) for what, name, nullable in fields)
            new_value = same_kind(columns, unique_columns(columns + extra, "insert_field"), nested_shapes(value))

        def step(raw: RawRecord, topic: str, k: Any, v: Any) -> tuple[str, Any, Any]:
            if v is None:
                return topic, k, None
            out = dict(need_struct(v, "insert_field"))
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


# ------------------------------------------------------------------------------ Flatten / Extract / Hoist


class Flatten:
    """org.apache.kafka.connect.transforms.Flatten$Value: nested structs become columns named
    parent<delimiter>child (default `.`); maps and arrays stay as they are with a schema."""

    def __init__(self, o: Options) -> None:
        self.delimiter = o.get("delimiter", ".") or "."
        o.check_unknown(("delimiter",))

    def compile(self, key: Shape, value: Shape) -> Compiled:
        columns = struct_columns(value)
        delimiter = self.delimiter
        if columns is None:
            return key, value, value_step(lambda v: _flatten_values(v, "", delimiter, {}), "flatten")
        paths: list[tuple[str, tuple[str, ...]]] = []
        flat = unique_columns(tuple(self._columns(value, (), "", True, paths)), "flatten")
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

        return key, flat, value_step(step, "flatten")

    def _columns(
        self, shape: Shape, path: tuple[str, ...], prefix: str, parent_required: bool, paths: list[Any]
    ) -> list[Column]:
        nested = nested_shapes(shape)
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
        columns = struct_columns(value)
        new_value: Shape = None
        if columns is not None:
            column = next((c for c in columns if c.name == field), None)
            if column is None:
                raise MappingError(f"extract_field: the {self.side}'s schema has no field {field!r}")
            new_value = nested_shapes(value).get(field) or column.type

        def step(raw: RawRecord, topic: str, k: Any, v: Any) -> tuple[str, Any, Any]:
            return topic, k, None if v is None else need_struct(v, "extract_field").get(field)

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
        columns = struct_columns(value)
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
            v = need_struct(v, "value_to_key")
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
                # Connect takes a replacement for numbers and strings only (DataException otherwise):
                # bool("***") would be True, list("***") three characters.
                if isinstance(sample, bool) or not isinstance(sample, int | float | str | decimal.Decimal):
                    raise MappingError(f"mask_field: a replacement cannot stand for a {type(sample).__name__}")
                return self.replacement if isinstance(sample, str) else type(sample)(self.replacement)
            if kind not in REPLACEABLE:
                raise MappingError(f"mask_field: a replacement cannot stand for a {kind} field")
            return REPLACEABLE[kind](self.replacement)
        if kind is not None:
            return MASKS[kind]
        return type(sample)() if isinstance(sample, int | float | str | bytes | bool | dict | list) else None

    def compile(self, key: Shape, value: Shape) -> Compiled:
        fields = self.fields
        columns = struct_columns(value)
        if columns is None:

            def schemaless(v: dict[str, Any]) -> dict[str, Any]:
                out = dict(v)
                for f in fields:
                    if out.get(f) is not None:
                        out[f] = self._mask(None, out[f])
                return out

            return key, value, value_step(schemaless, "mask_field")
        kinds = {c.name: c.type.kind for c in columns}
        masks = {f: self._mask(kinds[f], None) for f in fields if f in kinds}

        def masked(v: dict[str, Any]) -> dict[str, Any]:
            out = dict(v)
            for f, mask in masks.items():
                if out.get(f) is not None:
                    out[f] = mask
            return out

        return key, value, value_step(masked, "mask_field")
