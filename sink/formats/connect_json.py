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
from . import identity, logical, nullable

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
        return nullable(named)
    kind = schema.get("type")
    if kind in FLOATS:  # the envelope is parsed with exact decimals (for decimal.format=NUMERIC)
        return nullable(float)
    if kind == "bytes":
        return nullable(lambda v: base64.b64decode(v) if isinstance(v, str) else v)
    if kind == "struct":
        fields = [(f["field"], converter(f)) for f in schema.get("fields", [])]
        return nullable(lambda v: {name: conv(v.get(name)) for name, conv in fields})
    if kind == "array":
        item = converter(schema.get("items") or {})
        return nullable(lambda v: [item(x) for x in v])
    if kind == "map":
        values = converter(schema.get("values") or {})
        return nullable(lambda v: _map(v, values))
    return identity


def _map(value: Any, values: Convert) -> dict[str, Any]:
    # Connect writes maps with non-string keys as [[k, v], ...]
    pairs = value.items() if isinstance(value, Mapping) else value
    return {str(k): values(v) for k, v in pairs}


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


SCHEMA_OPEN = b'{"schema":'
PAYLOAD_MARK = b',"payload":'
MAX_SCHEMAS = 1000  # distinct schemas kept compiled; a topic has a handful


class ConnectJsonDecoder:
    """Connect's JsonConverter writes `{"schema":...,"payload":...}` with the schema bytes repeated
    in every record, so the schema's bytes are the cache key: a known schema is neither parsed nor
    re-serialised again, only the payload is (any other layout takes the full path)."""

    def __init__(self) -> None:
        self._compiled: dict[str, tuple[Shape, Convert]] = {}
        self._by_bytes: dict[bytes, tuple[str, Shape, Convert]] = {}

    def decode(self, data: bytes) -> Payload:
        known = self._known_schema(data)
        if known is not None:
            key, record_shape, convert, payload_at = known
            try:
                payload = json.loads(data[payload_at:].rstrip()[:-1], parse_float=decimal.Decimal)
            except (UnicodeDecodeError, json.JSONDecodeError):
                return self._decode_full(data)  # let the full parse name the problem
            return self._convert(payload, record_shape, convert, key)
        return self._decode_full(data)

    def _known_schema(self, data: bytes) -> tuple[str, Shape, Convert, int] | None:
        if not data.startswith(SCHEMA_OPEN):
            return None
        end = data.find(PAYLOAD_MARK)
        entry = self._by_bytes.get(data[:end]) if end > 0 else None
        return None if entry is None else (*entry, end + len(PAYLOAD_MARK))

    def _decode_full(self, data: bytes) -> Payload:
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
            if len(self._compiled) >= MAX_SCHEMAS:
                self._compiled.clear()
                self._by_bytes.clear()
            compiled = self._compiled[key] = self._compile(schema)
        self._remember_bytes(data, schema, key, compiled)
        return self._convert(envelope["payload"], *compiled, key)

    def _remember_bytes(self, data: bytes, schema: Any, key: str, compiled: tuple[Shape, Convert]) -> None:
        end = data.find(PAYLOAD_MARK) if data.startswith(SCHEMA_OPEN) else -1
        if end <= 0 or data[:end] in self._by_bytes:
            return
        try:  # only when the bytes before the mark really are this schema
            same = json.loads(data[len(SCHEMA_OPEN) : end], parse_float=decimal.Decimal) == schema
        except (UnicodeDecodeError, json.JSONDecodeError):
            same = False
        if same:
            self._by_bytes[data[:end]] = (key, *compiled)

    @staticmethod
    def _convert(payload: Any, record_shape: Shape, convert: Convert, key: str) -> Payload:
        try:
            return Payload(convert(payload), record_shape, key)
        except (ValueError, TypeError, KeyError, AttributeError, ArithmeticError) as exc:
            raise DecodeError(f"payload does not match its schema: {type(exc).__name__}: {exc}") from None

    @staticmethod
    def _compile(schema: Any) -> tuple[Shape, Convert]:
        if not isinstance(schema, Mapping) or "type" not in schema:
            raise DecodeError('Connect schema must be an object with a "type"')
        return shape(schema), converter(schema)
