"""Formats: bytes -> `Payload` (data + neutral shape + schema id). One module per format.

Registry formats (avro, protobuf, json_schema) take a `SchemaSource` port, the adapter that fetches
writer schemas by id over HTTP, so this package stays free of I/O.
"""

from __future__ import annotations

import struct
import uuid
from collections.abc import Callable, Iterable
from typing import Any

from ..errors import ConfigError, DecodeError
from ..model import Column, Shape
from ..ports import Decoder, SchemaRef, SchemaSource


class Struct(tuple[Column, ...]):
    """A struct's shape that also knows its schema name and the shapes of its struct fields.

    It is a tuple of `Column`s like any struct shape (nested structs are still JSON columns there),
    made only for structs whose name or nesting matters downstream: Debezium envelopes and
    Debezium's own records (`sink.cdc` reads `before`/`after` with their own columns), and structs
    with struct fields (the Flatten and ExtractField transforms). Other structs stay plain tuples.
    """

    name: str | None
    nested: dict[str, Shape]

    def __new__(cls, columns: Iterable[Column], name: str | None = None, nested: dict[str, Shape] | None = None):  # type: ignore[no-untyped-def]
        struct = super().__new__(cls, columns)
        struct.name = name
        struct.nested = nested or {}
        return struct

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (Struct, (tuple(self), self.name, self.nested))


def struct_shape(columns: tuple[Column, ...], name: str | None, nested: dict[str, Shape]) -> Shape:
    """`columns` as a `Struct` when its name or nested structs matter (see Struct), else as they are."""
    if nested or (name and (name.endswith(".Envelope") or name.startswith("io.debezium."))):
        return Struct(columns, name, nested)
    return columns


def identity(value: Any) -> Any:
    return value


def nullable(convert: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """`convert` for a value that may be null (None stays None)."""
    return lambda v: None if v is None else convert(v)


def exceeds_depth(data: bytes, limit: int) -> bool:
    """Whether JSON text nests arrays/objects deeper than `limit`. Counting brackets is C-fast and
    settles almost every record; only one with more brackets than the limit is scanned (strings
    skipped), so deep input is refused before a recursive parser or encoder meets it."""
    if data.count(b"[") + data.count(b"{") <= limit:
        return False
    depth, in_string, escaped = 0, False, False
    for byte in data:
        if in_string:
            if escaped:
                escaped = False
            elif byte == 0x5C:  # backslash
                escaped = True
            elif byte == 0x22:  # quote
                in_string = False
        elif byte == 0x22:
            in_string = True
        elif byte in (0x5B, 0x7B):  # [ {
            depth += 1
            if depth > limit:
                return True
        elif byte in (0x5D, 0x7D):  # ] }
            depth -= 1
    return False


MAGIC_BYTE = 0  # then a 4-byte big-endian schema id
MAGIC_GUID = 1  # then a 16-byte schema GUID (newer Confluent serializers)
HEADER_SIZE = 5
GUID_HEADER_SIZE = 17
# (schema id,) of framed bytes that start with magic byte 0: one C call, no slice of the header
FRAMED_ID = struct.Struct(">xI").unpack_from
# Newer Confluent serializers may put the framing (magic byte, id or GUID, Protobuf message indexes)
# in a record header instead of in front of the body (confluent-kafka's header_schema_id_serializer).
KEY_SCHEMA_ID_HEADER = "__key_schema_id"
VALUE_SCHEMA_ID_HEADER = "__value_schema_id"
FRAMINGS = (
    "magic byte 0x00 + 4-byte schema id, magic byte 0x01 + 16-byte schema GUID, or the schema id "
    f"in a {KEY_SCHEMA_ID_HEADER}/{VALUE_SCHEMA_ID_HEADER} record header"
)


def schema_id_of(data: bytes, fmt: str) -> int:
    """The schema id of Confluent wire-format bytes: magic byte 0, then a 4-byte big-endian id."""
    ref, _ = framing(data, fmt)
    if isinstance(ref, str):
        raise DecodeError(f"{fmt}: magic byte 0x01 at byte 0 (a schema GUID) where a schema id was expected")
    return ref


def framing(data: bytes, fmt: str, header: bytes | None = None) -> tuple[SchemaRef, int]:
    """(schema id or GUID, offset of the body). The decoders read ordinary magic-byte-0 records
    themselves (one byte check); this is the rest: magic byte 1 + GUID, the framing carried in a
    `__key_schema_id`/`__value_schema_id` header (`header`: its value; the body is then all of
    `data`), and the errors naming what was found."""
    if header is not None:
        return prefix(header, fmt, "the schema id header")[0], 0
    return prefix(data, fmt, "the record")


def prefix(data: bytes, fmt: str, where: str = "the record") -> tuple[SchemaRef, int]:
    """(schema id or GUID, offset after it) of a framing prefix: the start of a record's bytes, or
    the whole value of a schema id header."""
    if not data:
        raise DecodeError(
            f"{fmt}: 0 byte(s) is shorter than the Confluent wire-format header (magic byte 0 + 4-byte schema id)"
        )
    magic = data[0]
    if magic == MAGIC_BYTE:
        if len(data) < HEADER_SIZE:
            raise DecodeError(
                f"{fmt}: {len(data)} byte(s) is shorter than the Confluent wire-format header "
                f"(magic byte 0 + 4-byte schema id) in {where}"
            )
        return FRAMED_ID(data)[0], HEADER_SIZE
    if magic == MAGIC_GUID:
        if len(data) < GUID_HEADER_SIZE:
            raise DecodeError(
                f"{fmt}: magic byte 0x01 at byte 0 of {where} (a 16-byte schema GUID follows) but it ends "
                f"at byte {len(data)}"
            )
        return str(uuid.UUID(bytes=bytes(data[1:GUID_HEADER_SIZE]))), GUID_HEADER_SIZE
    raise DecodeError(
        f"{fmt}: unknown magic byte 0x{magic:02x} at byte 0 of {where}: not {fmt} data from a "
        f"schema-registry serializer (Confluent framing is {FRAMINGS})"
    )


def schema_id_headers(headers: Iterable[tuple[str, bytes | None]]) -> tuple[bytes | None, bytes | None]:
    """(key framing, value framing) from a record's `__key_schema_id` / `__value_schema_id`
    headers (the last of each wins; None where absent), for `Decoder.decode(data, header)`."""
    key = value = None
    for name, content in headers:
        if name == VALUE_SCHEMA_ID_HEADER:
            value = content
        elif name == KEY_SCHEMA_ID_HEADER:
            key = content
    return key, value


def describe_ref(ref: Any) -> str:
    """`schema id 7` or `schema GUID 3f2c...`; for Protobuf with its message indexes."""
    if isinstance(ref, tuple):
        return f"{describe_ref(ref[0])}, message indexes {list(ref[1])}"
    return f"schema GUID {ref}" if isinstance(ref, str) else f"schema id {ref}"


def writer_schema(registry: SchemaSource, ref: SchemaRef, expected: str, fmt: str) -> tuple[str, list[dict[str, Any]]]:
    """(text, references) of writer schema `ref` (an id or a GUID), which must be of type `expected`."""
    try:
        schema_type, text, references = registry.schema(ref)
    except LookupError:
        raise DecodeError(f"{fmt}: unknown {describe_ref(ref)}: the schema registry has no such schema") from None
    if (schema_type or "AVRO").upper() != expected:
        raise DecodeError(f"{fmt}: {describe_ref(ref)} is a {schema_type} schema, not {expected}")
    return text, list(references or [])


def make_decoder(fmt: str, registry: SchemaSource | None = None, max_depth: int = 100) -> Decoder:
    from . import connect_json, json_plain, string

    if fmt == "json":
        return json_plain.JsonDecoder(max_depth)
    if fmt == "connect_json":
        return connect_json.ConnectJsonDecoder(max_depth)
    if fmt == "string":
        return string.StringDecoder()
    if registry is None:
        raise ConfigError(f"format {fmt} needs SINK_SCHEMA_REGISTRY_URL")
    if fmt == "avro":
        from .avro import AvroDecoder

        return AvroDecoder(registry)
    if fmt == "protobuf":
        from .protobuf import ProtobufDecoder

        return ProtobufDecoder(registry)
    if fmt == "json_schema":
        from .json_schema import JsonSchemaDecoder

        return JsonSchemaDecoder(registry)
    raise ConfigError(f"unknown format {fmt!r}")
