"""Formats: bytes -> `Payload` (data + neutral shape + schema id). One module per format.

Registry formats (avro, protobuf, json_schema) take a `SchemaSource` port, the adapter that fetches
writer schemas by id over HTTP, so this package stays free of I/O.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from ..errors import ConfigError, DecodeError
from ..model import Payload


class Decoder(Protocol):
    def decode(self, data: bytes) -> Payload:
        """Decode one key or value; raise DecodeError for bytes this format cannot read."""
        ...


class SchemaSource(Protocol):
    """Writer schemas by id (Confluent wire format), implemented by `sink.adapters.registry`.

    Every method raises `LookupError` for a schema the registry does not have (the format turns it
    into a DecodeError naming the id), `ValueError` for one it cannot turn into what was asked, and
    `RegistryUnavailable` when the registry does not answer (an outage, never a record error).
    """

    def schema(self, schema_id: int) -> tuple[str, str, list[dict]]:
        """(schema type: AVRO|PROTOBUF|JSON, schema text, references)"""
        ...

    def reference(self, subject: str, version: int) -> tuple[str, str, list[dict]]:
        """A referenced schema (subject + version from a `references` entry), as `schema()`."""
        ...

    def protobuf_file(self, schema_id: int) -> Any:
        """The `google.protobuf` FileDescriptor of a Protobuf schema, its imports resolved."""
        ...


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


MAGIC_BYTE = 0
HEADER_SIZE = 5


def schema_id_of(data: bytes, fmt: str) -> int:
    """The schema id of Confluent wire-format bytes: magic byte 0, then a 4-byte big-endian id."""
    if len(data) < HEADER_SIZE:
        raise DecodeError(
            f"{fmt}: {len(data)} byte(s) is shorter than the Confluent wire-format header "
            "(magic byte 0 + 4-byte schema id)"
        )
    if data[0] != MAGIC_BYTE:
        raise DecodeError(
            f"{fmt}: unknown magic byte 0x{data[0]:02x} at byte 0 (the Confluent wire format starts "
            f"with 0x00); not {fmt} data from a schema-registry serializer"
        )
    return int.from_bytes(data[1:HEADER_SIZE], "big")


def writer_schema(registry: SchemaSource, schema_id: int, expected: str, fmt: str) -> tuple[str, list[dict]]:
    """(text, references) of writer schema `schema_id`, which must be of type `expected`."""
    try:
        schema_type, text, references = registry.schema(schema_id)
    except LookupError:
        raise DecodeError(f"{fmt}: unknown schema id {schema_id}: the schema registry has no such schema") from None
    if (schema_type or "AVRO").upper() != expected:
        raise DecodeError(f"{fmt}: schema id {schema_id} is a {schema_type} schema, not {expected}")
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
