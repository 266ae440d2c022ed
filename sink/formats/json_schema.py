"""`json_schema`: Confluent wire format (magic byte 0, 4-byte schema id) + JSON text.

The writer schema (JSON Schema) is compiled once per id into the neutral shape and a converter:
an object's properties become columns (`required` -> NOT NULL, `"type": ["null", ...]` or an
`anyOf`/`oneOf` with `{"type": "null"}` -> nullable), integer -> INT64, number -> FLOAT64, string
formats date-time / date / time / uuid -> TIMESTAMP / DATE / TIME / UUID, objects and arrays -> JSON.
Kafka Connect's JsonSchemaConverter hints (`connect.type`, logical names in `title`) are honoured.
Payloads are not validated against the schema: a value that does not fit its column is rejected
by the database, record by record. Properties the schema does not declare are dropped.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from ..errors import DecodeError
from ..model import Column, ColumnType, Kind, Payload, Shape
from . import HEADER_SIZE, SchemaSource, logical, nullable, schema_id_of, writer_schema

Convert = Callable[[Any], Any]
JSON = ColumnType(Kind.JSON)
TYPES = {"integer": Kind.INT64, "number": Kind.FLOAT64, "boolean": Kind.BOOLEAN, "string": Kind.STRING}
CONNECT_TYPES = {
    "int8": Kind.INT8,
    "int16": Kind.INT16,
    "int32": Kind.INT32,
    "int64": Kind.INT64,
    "float32": Kind.FLOAT32,
    "float64": Kind.FLOAT64,
    "bytes": Kind.BYTES,
}


def _timestamp(value: Any) -> dt.datetime:
    parsed = dt.datetime.fromisoformat(str(value))
    return parsed.replace(tzinfo=dt.UTC) if parsed.tzinfo is None else parsed.astimezone(dt.UTC)


def _time(value: Any) -> dt.time:
    parsed = dt.time.fromisoformat(str(value))
    if parsed.tzinfo is None:
        return parsed
    return dt.datetime.combine(dt.date(1970, 1, 1), parsed).astimezone(dt.UTC).time()


FORMATS: dict[str, tuple[ColumnType, Convert]] = {
    "date-time": (ColumnType(Kind.TIMESTAMP, precision=6), _timestamp),
    "date": (ColumnType(Kind.DATE), lambda v: dt.date.fromisoformat(str(v))),
    "time": (ColumnType(Kind.TIME, precision=6), _time),
    "uuid": (ColumnType(Kind.UUID), lambda v: uuid.UUID(str(v))),
}


@dataclass(frozen=True, slots=True)
class Compiled:
    shape: Shape
    convert: Convert | None
    is_object: bool


class JsonSchemaDecoder:
    def __init__(self, registry: SchemaSource) -> None:
        self._registry = registry
        self._compiled: dict[int, Compiled] = {}

    def decode(self, data: bytes) -> Payload:
        schema_id = schema_id_of(data, "JSON Schema")
        compiled = self._compiled.get(schema_id)
        if compiled is None:
            compiled = self._compiled[schema_id] = self._compile(schema_id)
        try:
            value = json.loads(data[HEADER_SIZE:])
        except UnicodeDecodeError as exc:
            raise DecodeError(f"JSON Schema: not valid UTF-8 at byte {HEADER_SIZE + exc.start}: {exc.reason}") from None
        except json.JSONDecodeError as exc:
            raise DecodeError(
                f"JSON Schema: invalid JSON at byte {HEADER_SIZE + exc.pos} (schema id {schema_id}): {exc.msg}"
            ) from None
        if value is None:
            return Payload(None, compiled.shape, schema_id)
        if compiled.is_object and not isinstance(value, dict):
            raise DecodeError(
                f"JSON Schema: schema id {schema_id} describes an object but the payload is a {type(value).__name__}"
            )
        if compiled.convert is not None:
            value = compiled.convert(value)
        return Payload(value, compiled.shape, schema_id)

    def _compile(self, schema_id: int) -> Compiled:
        text, _references = writer_schema(self._registry, schema_id, "JSON", "JSON Schema")
        try:
            schema = json.loads(text)
        except ValueError as exc:
            raise DecodeError(f"JSON Schema: schema id {schema_id} is not JSON: {exc}") from None
        compiler = _Compiler(schema, f"JSON Schema id {schema_id}")
        root = compiler.resolve(schema, "")
        if isinstance(root, Mapping) and _types(root) == ["object"] and "properties" in root:
            columns, convert = compiler.object(root)
            return Compiled(columns, convert, True)
        column_type, _nullable, convert = compiler.analyse(schema, "")
        return Compiled(column_type, None if convert is None else nullable(convert), False)


class _Compiler:
    def __init__(self, root: Any, where: str) -> None:
        self.root = root
        self.where = where

    def error(self, path: str, message: str) -> DecodeError:
        return DecodeError(f"{self.where}, field {path!r}: {message}" if path else f"{self.where}: {message}")

    def resolve(self, schema: Any, path: str) -> Any:
        """Follow local `$ref`s (`#/definitions/X`, `#/$defs/X`); other references stay as they are."""
        seen = 0
        while isinstance(schema, Mapping) and isinstance(schema.get("$ref"), str) and schema["$ref"].startswith("#"):
            target: Any = self.root
            for part in filter(None, schema["$ref"][1:].split("/")):
                part = part.replace("~1", "/").replace("~0", "~")
                if not isinstance(target, Mapping) or part not in target:
                    raise self.error(path, f"$ref {schema['$ref']!r} does not resolve")
                target = target[part]
            schema, seen = target, seen + 1
            if seen > 32:
                raise self.error(path, f"$ref {schema.get('$ref')!r} loops")
        return schema

    def object(self, schema: Mapping[str, Any]) -> tuple[tuple[Column, ...], Convert]:
        required = set(schema.get("required") or ())
        columns, converters = [], []
        for name, prop in (schema.get("properties") or {}).items():
            column_type, nullable, convert = self.analyse(prop, name)
            resolved = self.resolve(prop, name)
            has_default = isinstance(resolved, Mapping) and resolved.get("default") is not None
            default = None
            if has_default:
                try:
                    default = convert(resolved["default"]) if convert else resolved["default"]
                except (ValueError, TypeError) as exc:
                    raise self.error(name, f"default {resolved['default']!r} cannot be read: {exc}") from None
            columns.append(Column(name, column_type, nullable or name not in required, default, has_default))
            converters.append((name, convert))
        return tuple(columns), _object_converter(converters, self.where)

    def analyse(self, schema: Any, path: str) -> tuple[ColumnType, bool, Convert | None]:
        """(column type, nullable, converter of a non-null value)"""
        schema = self.resolve(schema, path)
        if not isinstance(schema, Mapping):  # true / false schemas: anything
            return JSON, True, None
        for combinator in ("anyOf", "oneOf"):
            if combinator in schema and "type" not in schema:
                branches = [self.resolve(b, path) for b in schema[combinator]]
                others = [b for b in branches if not (isinstance(b, Mapping) and _types(b) == ["null"])]
                if len(others) == 1:
                    column_type, nullable, convert = self.analyse(others[0], path)
                    return column_type, nullable or len(others) < len(branches), convert
                return JSON, len(others) < len(branches), None
        types = _types(schema)
        nullable = "null" in types
        types = [t for t in types if t != "null"]
        if len(types) != 1:
            if not types and isinstance(schema.get("enum"), list) and all(isinstance(v, str) for v in schema["enum"]):
                return ColumnType(Kind.STRING), nullable or None in schema["enum"], None
            return JSON, True if not types else nullable, None
        kind = types[0]
        name = schema.get("connect.name") or schema.get("title")
        if name in logical.LOGICAL:
            params = schema.get("connect.parameters")
            return logical.column_type(name, params) or JSON, nullable, logical.converter(name, params)
        if kind == "string" and schema.get("format") in FORMATS:
            column_type, convert = FORMATS[schema["format"]]
            return column_type, nullable, convert
        connect_type = schema.get("connect.type")
        if kind in ("integer", "number", "string") and connect_type in CONNECT_TYPES:
            if connect_type == "bytes":
                return ColumnType(Kind.BYTES), nullable, base64.b64decode
            return ColumnType(CONNECT_TYPES[connect_type]), nullable, None
        if kind in TYPES:
            return ColumnType(TYPES[kind]), nullable, None
        if kind in ("object", "array"):
            return JSON, nullable, None
        raise self.error(path, f"unsupported JSON Schema type {kind!r}")


def _types(schema: Mapping[str, Any]) -> list[str]:
    kind = schema.get("type")
    if isinstance(kind, str):
        return [kind]
    if isinstance(kind, list):
        return [str(k) for k in kind]
    if "properties" in schema:
        return ["object"]
    return []


def _object_converter(converters: list[tuple[str, Convert | None]], where: str) -> Convert:
    """Keep the declared properties (missing ones as None) and convert those with a format."""

    def convert(value: dict[str, Any]) -> dict[str, Any]:
        out = {}
        name = ""
        try:
            for name, conv in converters:
                item = value.get(name)
                out[name] = conv(item) if conv is not None and item is not None else item
        except (ValueError, TypeError, KeyError, ArithmeticError) as exc:
            raise DecodeError(f"{where}, field {name!r}", detail=f"{type(exc).__name__}: {exc}") from None
        return out

    return convert
