"""The dead-letter envelope: the original record untouched, plus KIP-298 context headers.

Header names and meanings are Kafka Connect's (`__connect.errors.*`), so tools written for
Connect's dead-letter queues read ours unchanged.
"""

from __future__ import annotations

import traceback
from dataclasses import dataclass

from .errors import RecordError, RecordRejected
from .model import RawRecord, Stage

PREFIX = "__connect.errors."

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


def exception_message(error: Exception) -> str:
    """The full reason; a database's rejection ends with its code, e.g. "(SQLSTATE 23514
    check_violation)", "(MySQL error 1062 ER_DUP_ENTRY)", "(SQLITE_CONSTRAINT_CHECK)"."""
    if isinstance(error, RecordRejected) and error.code:
        return f"{error} ({error.code})"
    return str(error)


def context_headers(raw: RawRecord, error: RecordError, connector: str, task_id: int = 0) -> Headers:
    stage = error.stage
    values = {
        "topic": raw.coord.topic,
        "partition": str(raw.coord.partition),
        "offset": str(raw.coord.offset),
        "connector.name": connector,
        "task.id": str(task_id),
        "stage": stage.value,
        "class.name": STAGE_CLASS[stage],
        "exception.class.name": exception_class(error),
        "exception.message": exception_message(error),
        "exception.stacktrace": _stacktrace(error),
    }
    return [(PREFIX + name, value.encode("utf-8")) for name, value in values.items()]


def _stacktrace(error: Exception) -> str:
    # Only the error itself, not its __cause__: a database driver's error, as SQLAlchemy wraps it,
    # quotes the statement's parameters, i.e. the values of other records of the batch.
    lines = traceback.format_exception(type(error), error, error.__traceback__, chain=False)
    return "".join(lines).strip()


def envelope(raw: RawRecord, error: RecordError, *, connector: str, with_context: bool, task_id: int = 0) -> Envelope:
    headers: Headers = list(raw.headers)
    if with_context:
        headers += context_headers(raw, error, connector, task_id)
    return Envelope(raw.key, raw.value, headers, raw.timestamp)
