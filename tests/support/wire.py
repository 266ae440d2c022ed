"""The Confluent wire format for tests: a schema id header, Avro and Protobuf bodies behind it, and
the DecodeError text a decoder gives for bytes it cannot read."""

from __future__ import annotations

import io
from typing import Any

import fastavro
import pytest

from sink.errors import DecodeError


def header(schema_id: int) -> bytes:
    """Magic byte 0 and the schema id, big-endian."""
    return b"\x00" + schema_id.to_bytes(4, "big")


def record(*fields: dict[str, Any], name: str = "Row") -> dict[str, Any]:
    """An Avro record schema in namespace `test`."""
    return {"type": "record", "name": name, "namespace": "test", "fields": list(fields)}


def avro_bytes(schema: Any, value: Any, schema_id: int = 1) -> bytes:
    out = io.BytesIO()
    fastavro.schemaless_writer(out, fastavro.parse_schema(schema), value)
    return header(schema_id) + out.getvalue()


def proto_bytes(message: Any, schema_id: int = 1, indexes: bytes = b"\x00") -> bytes:
    """A Protobuf message framed with its message indexes (b"\\x00": the file's first message)."""
    return header(schema_id) + indexes + message.SerializeToString()


def decode_error(decoder: Any, data: bytes) -> str:
    """The text of the DecodeError `decoder` raises for `data` (fails the test when it raises none)."""
    with pytest.raises(DecodeError) as caught:
        decoder.decode(data)
    return str(caught.value)
