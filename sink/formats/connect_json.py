"""`connect_json`: Kafka Connect's JsonConverter envelope `{"schema": ..., "payload": ...}`.

The schema is compiled once into a shape and a value converter, cached by its text, so records
sharing a schema cost one dictionary lookup beyond `json.loads`.
"""

from __future__ import annotations

import base64
import decimal
import json
from collections.abc import Callable, Mapping
from typing import Any

from ..errors import DecodeError
from ..model import Column, ColumnType, Kind, Payload, Shape
from . import logical

PRIMITIVES = {
    "int8": Kind.INT8,
    "int16": Kind.INT16,
    "int32": Kind.INT32,
    "int64": Kind.INT64,
    "float": Kind.FLOAT32,
    "float32": Kind.FLOAT32,
    "double": Kind.FLOAT64,
    "float64": Kind.FLOAT64,
    "boolean": Kind.BOOLEAN,
    "string": Kind.STRING,
    "bytes": Kind.BYTES,
}

FLOATS = ("float", "float32", "double", "float64")

Convert = Callable[[Any], Any]


def _identity(value: Any) -> Any:
    return value


def column_type(schema: Mapping[str, Any]) -> ColumnType:
    """The neutral column type of a Connect schema (nested structs and maps become JSON)."""
    named = logical.column_type(schema.get("name"), schema.get("parameters"))
    if named is not None:
        return named
    kind = schema.get("type")
    if kind in PRIMITIVES:
        return ColumnType(PRIMITIVES[kind])
    if kind == "array":
        item = column_type(schema.get("items") or {})
        return ColumnType(Kind.ARRAY, item=item) if item.kind not in (Kind.JSON, Kind.ARRAY) else ColumnType(Kind.JSON)
    if kind in ("struct", "map"):
        return ColumnType(Kind.JSON)
    raise DecodeError(f"unsupported Connect schema type {kind!r}")


def converter(schema: Mapping[str, Any]) -> Convert:
    """A function turning a wire value of `schema` into its Python value (recursively)."""
    named = logical.converter(schema.get("name"), schema.get("parameters"))
    if named is not None:
        return _nullable(named)
    kind = schema.get("type")
    if kind in FLOATS:  # the envelope is parsed with exact decimals (for decimal.format=NUMERIC)
        return _nullable(float)
    if kind == "bytes":
        return _nullable(lambda v: base64.b64decode(v) if isinstance(v, str) else v)
    if kind == "struct":
        fields = [(f["field"], converter(f)) for f in schema.get("fields", [])]
        return _nullable(lambda v: {name: conv(v.get(name)) for name, conv in fields})
    if kind == "array":
        item = converter(schema.get("items") or {})
        return _nullable(lambda v: [item(x) for x in v])
    if kind == "map":
        values = converter(schema.get("values") or {})
        return _nullable(lambda v: _map(v, values))
    return _identity


def _map(value: Any, values: Convert) -> dict[str, Any]:
    # Connect writes maps with non-string keys as [[k, v], ...]
    pairs = value.items() if isinstance(value, Mapping) else value
    return {str(k): values(v) for k, v in pairs}


def _nullable(convert: Convert) -> Convert:
    return lambda v: None if v is None else convert(v)


def shape(schema: Mapping[str, Any]) -> Shape:
    if schema.get("type") == "struct" and not schema.get("name", "").startswith("io.debezium.data."):
        return tuple(_column(f) for f in schema.get("fields", []))
    return column_type(schema)


def _column(field: Mapping[str, Any]) -> Column:
    has_default = "default" in field and field["default"] is not None
    default = converter(field)(field["default"]) if has_default else None
    return Column(
        name=field["field"],
        type=column_type(field),
        nullable=bool(field.get("optional", False)),
        default=default,
        has_default=has_default,
    )


class ConnectJsonDecoder:
    def __init__(self) -> None:
        self._compiled: dict[str, tuple[Shape, Convert]] = {}

    def decode(self, data: bytes) -> Payload:
        try:
            # Exact decimals: a NUMERIC Connect decimal such as 12345678901234567.89 must not pass
            # through a float. Float fields get their float back from their converter.
            envelope = json.loads(data, parse_float=decimal.Decimal)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise DecodeError(f"invalid JSON: {exc}") from None
        if not isinstance(envelope, dict) or "schema" not in envelope or "payload" not in envelope:
            raise DecodeError('not a Connect JSON envelope: expected an object with "schema" and "payload"')
        schema = envelope["schema"]
        if schema is None:  # schemas.enable=true with a null schema: schemaless payload
            return Payload(json.loads(data)["payload"])
        key = json.dumps(schema, sort_keys=True, default=str)
        compiled = self._compiled.get(key)
        if compiled is None:
            compiled = self._compiled[key] = self._compile(schema)
        record_shape, convert = compiled
        try:
            return Payload(convert(envelope["payload"]), record_shape, key)
        except (ValueError, TypeError, KeyError, AttributeError, ArithmeticError) as exc:
            raise DecodeError(f"payload does not match its schema: {type(exc).__name__}: {exc}") from None

    @staticmethod
    def _compile(schema: Any) -> tuple[Shape, Convert]:
        if not isinstance(schema, Mapping) or "type" not in schema:
            raise DecodeError('Connect schema must be an object with a "type"')
        return shape(schema), converter(schema)
