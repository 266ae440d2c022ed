"""`json_schema`: Confluent wire format (magic byte 0 + 4-byte schema id, or a framing `framing()`
reads: magic byte 1 + schema GUID, the schema id in a header) + JSON text.

The writer schema (JSON Schema) is compiled once per id into the neutral shape and a converter:
an object's properties become columns (`required` -> NOT NULL, `"type": ["null", ...]` or an
`anyOf`/`oneOf` with `{"type": "null"}` -> nullable), integer -> INT64, number -> FLOAT64, string
formats date-time / date / time / uuid -> TIMESTAMP / DATE / TIME / UUID, objects and arrays -> JSON.
Kafka Connect's JsonSchemaConverter hints (`connect.type`, logical names in `title`) are honoured.
`$ref`s resolve with `referencing`: local pointers and the schemas of other subjects the schema
references (Confluent's `references`, by their name), nested ones too.
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

from referencing import Registry, Resource
from referencing.exceptions import CannotDetermineSpecification, Unresolvable
from referencing.jsonschema import DRAFT7

from ..errors import DecodeError
from ..model import Column, ColumnType, Kind, Payload, Shape
from ..ports import SchemaRef, SchemaSource
from . import FRAMED_ID, HEADER_SIZE, MAGIC_BYTE, describe_ref, framing, logical, nullable, writer_schema
from .json_plain import loads

Convert = Callable[[Any], Any]
Resolver = Any  # a `referencing` resolver (its class is not exported): where a $ref resolves from
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
    parsed = dt.datetime.fromisoformat(str(value).upper())  # RFC 3339: "t" and "z" may be lower case
    return parsed.replace(tzinfo=dt.UTC) if parsed.tzinfo is None else parsed.astimezone(dt.UTC)


def _time(value: Any) -> dt.time:
    parsed = dt.time.fromisoformat(str(value).upper())  # RFC 3339: "z" may be lower case
    if parsed.tzinfo is None:
        return parsed
    return dt.datetime.combine(dt.date(1970, 1, 1), parsed).astimezone(dt.UTC).time()


def _integer(value: Any) -> Any:
    """An `integer` value: 3.0 is one (JSON Schema: a number with a zero fractional part), 2.5 is
    not (a database would round it into an integer column)."""
    if isinstance(value, float):
        if not value.is_integer():
            raise ValueError(f"{value!r} is not an integer")
        return int(value)
    return value


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
        self._compiled: dict[SchemaRef, Compiled] = {}

    def decode(self, data: bytes, header: bytes | None = None) -> Payload:
        if header is None and len(data) >= HEADER_SIZE and data[0] == MAGIC_BYTE:
            schema_id: SchemaRef = FRAMED_ID(data)[0]
            start = HEADER_SIZE
        else:  # magic byte 1 (a schema GUID), the framing in a header, or bytes that are not framed
            schema_id, start = framing(data, "JSON Schema", header)
        compiled = self._compiled.get(schema_id)
        if compiled is None:
            compiled = self._compiled[schema_id] = self._compile(schema_id)
        try:
            value = loads(data[start:])  # json.loads, through orjson where that is the same
        except UnicodeDecodeError as exc:
            raise DecodeError(f"JSON Schema: not valid UTF-8 at byte {start + exc.start}: {exc.reason}") from None
        except json.JSONDecodeError as exc:
            raise DecodeError(
                f"JSON Schema: invalid JSON at byte {start + exc.pos} ({describe_ref(schema_id)}): {exc.msg}"
            ) from None
        if value is None:
            return Payload(None, compiled.shape, schema_id)
        if compiled.is_object and not isinstance(value, dict):
            raise DecodeError(
                f"JSON Schema: {describe_ref(schema_id)} describes an object but the payload is a "
                f"{type(value).__name__}"
            )
        if compiled.convert is not None:
            value = compiled.convert(value)
        return Payload(value, compiled.shape, schema_id)

    def _compile(self, schema_id: SchemaRef) -> Compiled:
        text, references = writer_schema(self._registry, schema_id, "JSON", "JSON Schema")
        where = f"JSON Schema ({describe_ref(schema_id)})"
        schema = _load(text, where)
        resources: list[tuple[str, Resource[Any]]] = []
        self._add_references(references, resources, set(), where)
        try:
            root = Resource.from_contents(schema, default_specification=DRAFT7)
            resolver = Registry().with_resources(resources).resolver_with_root(root)
        except (TypeError, ValueError, Unresolvable, CannotDetermineSpecification) as exc:
            raise DecodeError(f"{where} cannot be read: {type(exc).__name__}: {exc}") from None
        compiler = _Compiler(where)
        try:
            top, top_resolver = compiler.nullable_object(*compiler.resolve(schema, resolver, ""))
            if isinstance(top, Mapping) and _types(top) == ["object"] and "properties" in top:
                columns, convert = compiler.object(top, top_resolver)
                return Compiled(columns, convert, True)
            column_type, _nullable, convert_value = compiler.analyse(schema, resolver, "")
        except RecursionError:  # e.g. X = anyOf[X, null]: $refs that never reach a type
            raise DecodeError(f"{where}: its anyOf/oneOf $refs refer to themselves without end") from None
        return Compiled(column_type, None if convert_value is None else nullable(convert_value), False)

    def _add_references(
        self, references: list[dict[str, Any]], resources: list[tuple[str, Resource[Any]]], seen: set[str], where: str
    ) -> None:
        """The referenced schemas (theirs first), each under its reference name: the URI a `$ref`
        names it by (e.g. `"$ref": "address.json"` or `"address.json#/definitions/Street"`)."""
        for ref in references:
            name, subject, version = str(ref["name"]), str(ref["subject"]), int(ref["version"])
            if name in seen:
                continue
            seen.add(name)
            what = f"referenced schema {name!r} (subject {subject!r} version {version})"
            try:
                schema_type, text, nested = self._registry.reference(subject, version)
            except LookupError as exc:
                raise DecodeError(f"{where}: {what} is missing: {exc}") from None
            if (schema_type or "AVRO").upper() != "JSON":
                raise DecodeError(f"{where}: {what} is a {schema_type} schema, not JSON")
            self._add_references(list(nested or []), resources, seen, where)
            try:
                resources.append((name, Resource.from_contents(_load(text, f"{where}, {what}"), DRAFT7)))
            except (TypeError, ValueError, CannotDetermineSpecification) as exc:
                raise DecodeError(f"{where}: {what} cannot be read: {type(exc).__name__}: {exc}") from None


def _load(text: str, where: str) -> Any:
    try:
        return json.loads(text)
    except ValueError as exc:
        raise DecodeError(f"{where} is not JSON: {exc}") from None


class _Compiler:
    """Walks a schema once. Every subschema travels with its `referencing` resolver, so a `$ref`
    resolves against the document it is written in: local (`#/definitions/X`, `#/$defs/X`), another
    subject's schema by its reference name, or a subschema of one (`address.json#/$defs/Street`)."""

    def __init__(self, where: str) -> None:
        self.where = where

    def error(self, path: str, message: str) -> DecodeError:
        return DecodeError(f"{self.where}, field {path!r}: {message}" if path else f"{self.where}: {message}")

    def resolve(self, schema: Any, resolver: Resolver, path: str) -> tuple[Any, Resolver]:
        """Follow `$ref`s to the schema they name, with the resolver of the document it is in."""
        seen = 0
        while isinstance(schema, Mapping):
            ref = schema.get("$ref")
            if not isinstance(ref, str):
                break
            try:
                resolved = resolver.lookup(ref)
            except Unresolvable:
                hint = "" if ref.startswith("#") else " (not a local pointer nor a schema reference of this schema)"
                raise self.error(path, f"$ref {ref!r} does not resolve{hint}") from None
            schema, resolver, seen = resolved.contents, resolved.resolver, seen + 1
            if seen > 32:
                raise self.error(path, f"$ref {ref!r} loops")
        if isinstance(schema, Mapping) and isinstance(schema.get("$id"), str):
            try:  # a subschema with its own $id: relative $refs inside it resolve against that
                resolver = resolver.in_subresource(Resource.from_contents(schema, DRAFT7))
            except (TypeError, ValueError, CannotDetermineSpecification):
                pass
        return schema, resolver

    def nullable_object(self, schema: Any, resolver: Resolver) -> tuple[Any, Resolver]:
        """The object of a top-level `oneOf`/`anyOf` [null, object] (how Confluent's JsonSchemaData
        writes an optional Connect struct), else `schema` as it is."""
        for combinator in ("oneOf", "anyOf"):
            if isinstance(schema, Mapping) and "type" not in schema and isinstance(schema.get(combinator), list):
                branches = [self.resolve(b, resolver, "") for b in schema[combinator]]
                others = [b for b in branches if not (isinstance(b[0], Mapping) and _types(b[0]) == ["null"])]
                if len(others) == 1 and len(branches) == 2 and isinstance(others[0][0], Mapping):
                    return others[0]
        return schema, resolver

    def object(self, schema: Mapping[str, Any], resolver: Resolver) -> tuple[tuple[Column, ...], Convert]:
        required = set(schema.get("required") or ())
        columns, converters = [], []
        for name, prop in (schema.get("properties") or {}).items():
            column_type, nullable, convert = self.analyse(prop, resolver, name)
            resolved = self.resolve(prop, resolver, name)[0]
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

    def analyse(self, schema: Any, resolver: Resolver, path: str) -> tuple[ColumnType, bool, Convert | None]:
        """(column type, nullable, converter of a non-null value)"""
        schema, resolver = self.resolve(schema, resolver, path)
        if not isinstance(schema, Mapping):  # true / false schemas: anything
            return JSON, True, None
        for combinator in ("anyOf", "oneOf"):
            if combinator in schema and "type" not in schema:
                branches = [self.resolve(b, resolver, path) for b in schema[combinator]]
                others = [b for b in branches if not (isinstance(b[0], Mapping) and _types(b[0]) == ["null"])]
                if len(others) == 1:
                    column_type, nullable, convert = self.analyse(others[0][0], others[0][1], path)
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
            return ColumnType(CONNECT_TYPES[connect_type]), nullable, _integer if kind == "integer" else None
        if kind in TYPES:
            return ColumnType(TYPES[kind]), nullable, _integer if kind == "integer" else None
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
