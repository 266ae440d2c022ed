"""`connect_json`: Kafka Connect's JsonConverter envelope `{"schema": ..., "payload": ...}`.

The schema is checked and compiled once into a shape and a value converter, cached by its text, so
records sharing a schema cost one dictionary lookup beyond `json.loads`. The converter validates
the payload against the schema as Connect's JsonConverter does (types, ranges, required fields), so
an envelope whose payload does not match its schema is a decode error, never a row.
"""

from __future__ import annotations

import base64
import binascii
import decimal
import json
from collections.abc import Callable, Mapping
from typing import Any

from ..errors import DecodeError
from ..model import Column, ColumnType, Kind, Payload, Shape
from . import exceeds_depth, logical, struct_shape

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
TYPES = (*PRIMITIVES, "struct", "array", "map")
INT_BITS = {"int8": 8, "int16": 16, "int32": 32, "int64": 64}
FLOATS = ("float", "float32", "double", "float64")

Convert = Callable[[Any], Any]
MISSING = object()  # a struct field the payload does not have (not even as null)


class Mismatch(ValueError):
    """The payload does not match its schema; the message names the field path, never the value."""


# ------------------------------------------------------------------------------ schema checks


def check_schema(schema: Any, path: str = "schema") -> None:
    """A Connect schema's structure, before anything is built from it: one DecodeError naming where."""
    if not isinstance(schema, Mapping):
        raise DecodeError(f'Connect schema must be an object with a "type"{_at(path)}')
    kind = schema.get("type")
    if not isinstance(kind, str) or kind not in TYPES:
        raise DecodeError(f"unsupported Connect schema type {kind!r}{_at(path)}")
    for key in ("name", "doc"):
        if schema.get(key) is not None and not isinstance(schema[key], str):
            raise DecodeError(f'Connect schema "{key}" must be a string{_at(path)}')
    if schema.get("parameters") is not None and not isinstance(schema["parameters"], Mapping):
        raise DecodeError(f'Connect schema "parameters" must be an object{_at(path)}')
    if schema.get("optional") is not None and not isinstance(schema["optional"], bool):
        raise DecodeError(f'Connect schema "optional" must be true or false{_at(path)}')
    if kind == "struct":
        _check_fields(schema.get("fields", []), path)
    elif kind == "array":
        check_schema(schema.get("items"), f"{path}.items")
    elif kind == "map":
        check_schema(schema.get("keys"), f"{path}.keys")
        check_schema(schema.get("values"), f"{path}.values")
    _check_logical(schema, path)


def _at(path: str) -> str:
    return "" if path == "schema" else f" (at {path})"


def _check_fields(fields: Any, path: str) -> None:
    if not isinstance(fields, list):
        raise DecodeError(f'Connect struct "fields" must be a list{_at(path)}')
    seen: set[str] = set()
    for index, field in enumerate(fields):
        name = field.get("field") if isinstance(field, Mapping) else None
        if not isinstance(name, str):
            raise DecodeError(f'Connect struct field {index} has no "field" name{_at(path)}')
        if name in seen:
            raise DecodeError(f"Connect struct field {name!r} appears twice{_at(path)}")
        seen.add(name)
        check_schema(field, f"{path}.{name}")


def _check_logical(schema: Mapping[str, Any], path: str) -> None:
    """The parameters a logical type reads must make sense (a Decimal's scale is an integer)."""
    try:
        logical.column_type(schema.get("name"), schema.get("parameters"))
    except (TypeError, ValueError, ArithmeticError) as exc:
        name = schema.get("name")
        reason = f"{type(exc).__name__}: {exc}"
        raise DecodeError(f"Connect logical type {name!r} has bad parameters{_at(path)}", detail=reason) from None


# ------------------------------------------------------------------------------ shapes


def column_type(schema: Mapping[str, Any]) -> ColumnType:
    """The neutral column type of a Connect schema (nested structs and maps become JSON), exact
    where Debezium propagated the source column's type in the schema's parameters."""
    return logical.with_source_type(_schema_type(schema), schema.get("parameters"))


def _schema_type(schema: Mapping[str, Any]) -> ColumnType:
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


def shape(schema: Mapping[str, Any]) -> Shape:
    if _is_struct(schema):
        fields = schema.get("fields", [])
        nested = {f["field"]: shape(f) for f in fields if _is_struct(f)}
        return struct_shape(tuple(_column(f) for f in fields), schema.get("name"), nested)
    return column_type(schema)


def _is_struct(schema: Mapping[str, Any]) -> bool:
    return schema.get("type") == "struct" and not (schema.get("name") or "").startswith("io.debezium.data.")


def _column(field: Mapping[str, Any]) -> Column:
    has_default = field.get("default") is not None
    try:
        default = converter(field)(field["default"]) if has_default else None
    except Mismatch as exc:
        name = field["field"]
        raise DecodeError(f"Connect field {name!r} has a default that does not match its type: {exc}") from None
    return Column(
        name=field["field"],
        type=column_type(field),
        nullable=bool(field.get("optional", False)),
        default=default,
        has_default=has_default,
    )


# ------------------------------------------------------------------------------ converters


def converter(schema: Mapping[str, Any], path: str = "") -> Convert:
    """A function turning a wire value of `schema` into its Python value, checking it as Connect's
    JsonConverter does: null only where optional (or a default stands in), the right JSON type,
    integers within their width. Raises Mismatch naming the field path."""
    convert = _logical(schema, path) or _typed(schema, path)
    optional = bool(schema.get("optional", False))
    default = schema.get("default")
    where = path or "the value"
    kind = schema.get("type")

    def checked(value: Any) -> Any:
        if value is None or value is MISSING:
            # An explicit null of an optional field is null: a producer whose JsonConverter has
            # replace.null.with.default=false (KIP-581) wrote it for a NULL that a column default
            # must not replace. An absent field, or a null where null is not allowed, gets the default.
            if default is not None and (value is MISSING or not optional):
                return convert(default)
            if optional:
                return None
            raise Mismatch(f"{where} is null but its {kind} schema is not optional")
        return convert(value)

    return checked


def _logical(schema: Mapping[str, Any], path: str) -> Convert | None:
    named = logical.converter(schema.get("name"), schema.get("parameters"))
    if named is None:
        return None
    base = _typed(schema, path)  # the wire value must still be of the schema's own type
    name = schema.get("name")

    def convert(value: Any) -> Any:
        numeric = isinstance(value, int | float | decimal.Decimal) and not isinstance(value, bool)
        wire = value if numeric and schema.get("type") == "bytes" else base(value)  # decimal.format=NUMERIC
        try:
            return named(wire)
        except (TypeError, ValueError, ArithmeticError, KeyError, OverflowError, binascii.Error) as exc:
            raise Mismatch(f"{path or 'the value'} is not a valid {name}: {type(exc).__name__}") from None

    return convert


def _typed(schema: Mapping[str, Any], path: str) -> Convert:
    kind = schema["type"]
    where = path or "the value"
    if kind in INT_BITS:
        return _integer(INT_BITS[kind], kind, where)
    if kind in FLOATS:
        return lambda v: float(_expect(v, (int, decimal.Decimal, float), "a number", where))
    if kind == "boolean":
        return lambda v: _expect(v, (bool,), "true or false", where)
    if kind == "string":
        return lambda v: _expect(v, (str,), "a string", where)
    if kind == "bytes":
        return lambda v: _base64(v, where)
    if kind == "struct":
        return _struct(schema, path)
    if kind == "array":
        item = converter(schema.get("items") or {}, f"{path}[]")
        return lambda v: [item(x) for x in _expect(v, (list,), "an array", where)]
    values = converter(schema.get("values") or {}, f"{path}{{}}")
    keys = converter(schema.get("keys") or {}, f"{path}{{key}}")
    return lambda v: _map(v, keys, values, where)


def _struct(schema: Mapping[str, Any], path: str) -> Convert:
    declared = schema.get("fields", [])
    fields = [(f["field"], converter(f, f"{path}.{f['field']}" if path else f["field"])) for f in declared]
    where = path or "the value"

    def convert(value: Any) -> dict[str, Any]:
        record = _expect(value, (dict,), "an object", where)
        return {name: conv(record.get(name, MISSING)) for name, conv in fields}

    return convert


def _integer(bits: int, kind: str, where: str) -> Convert:
    low, high = -(1 << (bits - 1)), (1 << (bits - 1)) - 1

    def convert(value: Any) -> int:
        if not isinstance(value, int) or isinstance(value, bool):
            raise Mismatch(f"{where} must be an integer for its {kind} schema, not {_json_type(value)}")
        if not low <= value <= high:
            raise Mismatch(f"{where} is out of range for {kind}")
        return value

    return convert


def _expect(value: Any, types: tuple[type, ...], what: str, where: str) -> Any:
    if isinstance(value, bool) and bool not in types:
        raise Mismatch(f"{where} must be {what}, not a boolean")
    if not isinstance(value, types):
        raise Mismatch(f"{where} must be {what}, not {_json_type(value)}")
    return value


def _base64(value: Any, where: str) -> bytes:
    text = _expect(value, (str,), "base64 text", where)
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise Mismatch(f"{where} is not valid base64") from None


def _map(value: Any, keys: Convert, values: Convert, where: str) -> dict[str, Any]:
    # Connect writes maps with string keys as objects, others as [[k, v], ...]
    if isinstance(value, dict):
        return {str(keys(k)): values(v) for k, v in value.items()}
    pairs = _expect(value, (list,), "an object or a list of pairs", where)
    if not all(isinstance(p, list) and len(p) == 2 for p in pairs):
        raise Mismatch(f"{where} must be a list of [key, value] pairs")
    return {str(keys(k)): values(v) for k, v in pairs}


def _json_type(value: Any) -> str:
    names = {dict: "an object", list: "an array", str: "a string", bool: "a boolean", type(None): "null"}
    for python_type, name in names.items():
        if isinstance(value, python_type):
            return name
    return "a number"


# ------------------------------------------------------------------------------ the decoder


SCHEMA_OPEN = b'{"schema":'
PAYLOAD_MARK = b',"payload":'
MAX_SCHEMAS = 1000  # distinct schemas kept compiled; a topic has a handful
DEFAULT_MAX_DEPTH = 100


class ConnectJsonDecoder:
    """Connect's JsonConverter writes `{"schema":...,"payload":...}` with the schema bytes repeated
    in every record, so the schema's bytes are the cache key: a known schema is neither parsed nor
    re-serialised again, only the payload is (any other layout takes the full path). The fast path
    only skips work, never checks: the payload bytes must be exactly one JSON value closed by the
    envelope's final brace, and the payload is validated against its schema like any other."""

    def __init__(self, max_depth: int = DEFAULT_MAX_DEPTH) -> None:
        self.max_depth = max_depth
        self._compiled: dict[str, tuple[Shape, Convert]] = {}
        self._by_bytes: dict[bytes, tuple[str, Shape, Convert]] = {}

    def decode(self, data: bytes, header: bytes | None = None) -> Payload:  # header: no framing here
        if exceeds_depth(data, self.max_depth):
            raise DecodeError(f"JSON nested deeper than {self.max_depth} levels (SINK_RECORD_MAX_DEPTH)")
        known = self._known_schema(data)
        if known is not None:
            key, record_shape, convert, payload_at = known
            body = data[payload_at:].rstrip()
            if body.endswith(b"}"):
                try:
                    payload = json.loads(body[:-1], parse_float=decimal.Decimal)
                except (UnicodeDecodeError, json.JSONDecodeError):
                    pass  # let the full parse name the problem
                else:
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
        except Mismatch as exc:
            raise DecodeError(f"payload does not match its schema: {exc}") from None

    @staticmethod
    def _compile(schema: Any) -> tuple[Shape, Convert]:
        check_schema(schema)
        return shape(schema), converter(schema)
