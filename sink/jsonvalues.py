"""Record values as JSON text: one encoding for JSON columns (`adapters.db`) and delivery reports.

Dates and times as ISO 8601, decimals and UUIDs as their exact text, bytes as base64. A document
that arrived as JSON text (`JsonDocument`) is written as that text.
"""

from __future__ import annotations

import base64
import datetime as dt
import decimal
import json
import uuid
from typing import Any


class JsonDocument(str):
    """A JSON document kept as the text it arrived as (Debezium's `io.debezium.data.Json`: "a JSON
    document, array, or scalar"). A JSON column gets the text itself, so a number past a double's
    precision stays exact and the document `null` stays a JSON null, not SQL NULL; a text column
    gets it as the text it is."""

    __slots__ = ()


_documents_made = False  # whether json_document made any: only then can one sit inside another value


def json_document(text: str) -> JsonDocument:
    """`text` (JSON) as a JsonDocument. Made here, not by the class, so that `json_text` looks for
    one inside other documents only in a process that has them (the look costs about as much as
    the encoding)."""
    global _documents_made
    _documents_made = True
    return JsonDocument(text)


def json_text(value: Any) -> str:
    """`value` as the JSON text a JSON column holds: a JsonDocument as it arrived; others encoded
    (with `json_default`), a JsonDocument inside them as its parsed value (the encoder would write
    a str subclass as a JSON string)."""
    if value.__class__ is JsonDocument:
        return str(value)
    if _documents_made and isinstance(value, dict | list) and _holds_document(value):
        value = _parsed_documents(value)
    return json.dumps(value, default=json_default, separators=(",", ":"))


def _holds_document(value: Any) -> bool:
    if value.__class__ is JsonDocument:
        return True
    if isinstance(value, dict):
        return any(map(_holds_document, value.values()))
    if isinstance(value, list):
        return any(map(_holds_document, value))
    return False


def _parsed_documents(value: Any) -> Any:
    if value.__class__ is JsonDocument:
        return json.loads(value)
    if isinstance(value, dict):
        return {k: _parsed_documents(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_parsed_documents(v) for v in value]
    return value


def json_default(value: Any) -> Any:
    """`json.dumps(default=...)` for the values the formats produce; TypeError for any other."""
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, decimal.Decimal | uuid.UUID):
        return str(value)
    if isinstance(value, bytes | bytearray):
        return base64.b64encode(value).decode()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")
