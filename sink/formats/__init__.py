"""Formats: bytes -> `Payload` (data + neutral shape + schema id). One module per format.

Registry formats (avro, protobuf, json_schema) take a `SchemaSource` port, the adapter that fetches
writer schemas by id over HTTP, so this package stays free of I/O.
"""

from __future__ import annotations

from typing import Protocol

from ..errors import ConfigError
from ..model import Payload


class Decoder(Protocol):
    def decode(self, data: bytes) -> Payload:
        """Decode one key or value; raise DecodeError for bytes this format cannot read."""
        ...


class SchemaSource(Protocol):
    """Writer schemas by id (Confluent wire format). Raises RegistryUnavailable on outages."""

    def schema(self, schema_id: int) -> tuple[str, str, list[dict]]:
        """(schema type: AVRO|PROTOBUF|JSON, schema text, references)"""
        ...


def make_decoder(fmt: str, registry: SchemaSource | None = None) -> Decoder:
    from . import connect_json, json_plain, string

    simple: dict[str, type] = {
        "json": json_plain.JsonDecoder,
        "connect_json": connect_json.ConnectJsonDecoder,
        "string": string.StringDecoder,
    }
    if fmt in simple:
        return simple[fmt]()
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
