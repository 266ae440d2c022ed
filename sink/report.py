"""Per-record delivery reports, shaped like Confluent's Connect Reporter.

Headers `input_record_topic/partition/offset/timestamp` locate the input record; the key is the
input record's key, so a consumer can join a report back to what it reports on; the value is JSON.
"""

from __future__ import annotations

import json
from typing import Any

from .deadletter import exception_class, reason
from .jsonvalues import json_default
from .model import Outcome, Status


def headers(outcome: Outcome) -> list[tuple[str, bytes | None]]:
    raw = outcome.raw
    return [
        ("input_record_topic", raw.coord.topic.encode()),
        ("input_record_partition", str(raw.coord.partition).encode()),
        ("input_record_offset", str(raw.coord.offset).encode()),
        ("input_record_timestamp", str(raw.timestamp if raw.timestamp is not None else -1).encode()),
    ]


def body(outcome: Outcome, include_messages: bool = False) -> bytes:
    """The report as JSON; `error_message` is value-free unless `include_messages`."""
    doc: dict[str, Any] = {
        "topic": outcome.coord.topic,
        "partition": outcome.coord.partition,
        "offset": outcome.coord.offset,
        "status": outcome.status.value,
        "table": outcome.table,
        "operation": outcome.operation,
        "key": outcome.key,
    }
    if outcome.status in (Status.FAILED, Status.DEAD_LETTERED) and outcome.error is not None:
        doc["stage"] = outcome.stage.value if outcome.stage else None
        doc["error_class"] = exception_class(outcome.error)
        doc["error_message"] = reason(outcome.error, include_messages)
    return json.dumps(doc, default=_json_default, separators=(",", ":")).encode()


def _json_default(value: Any) -> Any:
    try:
        return json_default(value)
    except TypeError:  # a report must not fail on a key it cannot encode: its text will do
        return str(value)
