"""The dead-letter envelope: the original record untouched, plus KIP-298 context headers.

Header names and meanings are Kafka Connect's (`__connect.errors.*`), so tools written for
Connect's dead-letter queues read ours unchanged. The reason in `exception.message` and
`exception.stacktrace` is value-free (a database's own message may quote the record) unless
`errors.log.include.messages` turns values on.

A record too large for the dead-letter producer or topic is dead-lettered without its key, value
and headers, with `__connect.errors.sink.truncated` giving their original sizes and, always, the
topic/partition/offset headers that let it be re-read from its source topic.
"""

from __future__ import annotations

import json
import traceback
from dataclasses import dataclass

from .errors import RecordError, RecordRejected
from .model import RawRecord, Stage

PREFIX = "__connect.errors."
TRUNCATED = PREFIX + "sink.truncated"

# The component that failed, by stage, in the role of Connect's `class.name` header.
STAGE_CLASS = {
    Stage.KEY_CONVERTER: "sink.formats.KeyDecoder",
    Stage.VALUE_CONVERTER: "sink.formats.ValueDecoder",
    Stage.HEADER_CONVERTER: "sink.formats.HeaderDecoder",
    Stage.TRANSFORMATION: "sink.transforms.RowMapper",
    Stage.TASK_PUT: "sink.pipeline.Writer",
}

Headers = list[tuple[str, bytes | None]]


@dataclass(frozen=True, slots=True)
class Envelope:
    key: bytes | None
    value: bytes | None
    headers: Headers
    timestamp: int | None


def exception_class(error: Exception) -> str:
    return f"{type(error).__module__}.{type(error).__qualname__}"


def reason(error: Exception, include_messages: bool) -> str:
    """What a header or report may say: the full reason only when values may be shown."""
    if include_messages:
        return exception_message(error)
    return error.safe_reason if isinstance(error, RecordError) else exception_class(error)


def exception_message(error: Exception) -> str:
    """The full reason; a database's rejection ends with its code, e.g. "(SQLSTATE 23514
    check_violation)", "(MySQL error 1062 ER_DUP_ENTRY)", "(SQLITE_CONSTRAINT_CHECK)"."""
    if isinstance(error, RecordRejected) and error.code:
        return f"{error} ({error.code})"
    return str(error)


def context_headers(
    raw: RawRecord, error: RecordError, connector: str, task_id: int = 0, include_messages: bool = False
) -> Headers:
    stage = error.stage
    message = reason(error, include_messages)
    values = {
        "topic": raw.coord.topic,
        "partition": str(raw.coord.partition),
        "offset": str(raw.coord.offset),
        "connector.name": connector,
        "task.id": str(task_id),
        "stage": stage.value,
        "class.name": STAGE_CLASS[stage],
        "exception.class.name": exception_class(error),
        "exception.message": message,
        "exception.stacktrace": _stacktrace(error, message),
    }
    # backslashreplace: a reason may quote a field name that is not valid Unicode (a lone surrogate)
    return [(PREFIX + name, value.encode("utf-8", "backslashreplace")) for name, value in values.items()]


def _stacktrace(error: Exception, message: str) -> str:
    # Only the error itself, not its __cause__ (a database driver's error, as SQLAlchemy wraps it,
    # quotes the statement's parameters), and ending in `message`, not str(error), which may quote
    # the record's values.
    frames = "".join(traceback.format_tb(error.__traceback__)) if error.__traceback__ else ""
    head = "Traceback (most recent call last):\n" if frames else ""
    return f"{head}{frames}{exception_class(error)}: {message}".strip()


def envelope(
    raw: RawRecord,
    error: RecordError,
    *,
    connector: str,
    with_context: bool,
    task_id: int = 0,
    include_messages: bool = False,
) -> Envelope:
    headers: Headers = list(raw.headers)
    if with_context:
        headers += context_headers(raw, error, connector, task_id, include_messages)
    return Envelope(raw.key, raw.value, headers, raw.timestamp)


def truncated(
    raw: RawRecord, error: RecordError, *, connector: str, task_id: int = 0, include_messages: bool = False
) -> Envelope:
    """The envelope of a record too large for the dead-letter topic: no key, value or headers of
    its own; the context headers (always: the coordinates re-read it) and the original sizes."""
    sizes = {
        "key": None if raw.key is None else len(raw.key),
        "value": None if raw.value is None else len(raw.value),
        "headers": sum(len(name) + len(value or b"") for name, value in raw.headers),
    }
    headers = context_headers(raw, error, connector, task_id, include_messages)
    headers.append((TRUNCATED, json.dumps(sizes, separators=(",", ":")).encode()))
    return Envelope(None, None, headers, raw.timestamp)
