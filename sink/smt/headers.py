"""Transforms on the record headers: HeaderFrom, InsertHeader, DropHeaders."""

from __future__ import annotations

import json
from typing import Any

from ..errors import MappingError
from ..model import RawRecord, Shape
from .base import (
    Compiled,
    Options,
    need_struct,
    nested_shapes,
    same_kind,
    struct_columns,
    to_string,
)

# ------------------------------------------------------------------------------ headers


def header_bytes(value: Any) -> bytes | None:
    """A field's value as a header value: text as UTF-8, bytes as they are, structs as JSON."""
    if value is None or value.__class__ is bytes:
        return value
    if isinstance(value, dict | list):
        return json.dumps(value, default=str, separators=(",", ":")).encode()
    return to_string(value).encode()


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
        columns = struct_columns(value)
        new_value: Shape = value
        if columns is not None:
            missing = [f for f in self.fields if f not in {c.name for c in columns}]
            if missing:
                raise MappingError(f"header_from: the {self.side}'s schema has no field(s) {', '.join(missing)}")
            if moved:
                new_value = same_kind(
                    columns,
                    tuple(c for c in columns if c.name not in moved),
                    {k: s for k, s in nested_shapes(value).items() if k not in moved},
                )

        def step(raw: RawRecord, topic: str, k: Any, v: Any) -> tuple[str, Any, Any, Any]:
            if v is None:
                return topic, k, v, raw.headers
            v = need_struct(v, "header_from")
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
