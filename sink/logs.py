"""Logging: one line per event, readable by a person (`text`) or by a log pipeline (`json`).

`json` writes one object per line: `time`, `level`, `logger`, `message`, and as fields of their own
whatever the call knows of `topic`, `partition`, `offset`, `table`, `stage` and `error_class` —
passed with `extra=fields(raw, table=..., error=exc)`, or, without it, taken from a `Coord` (or a
record carrying one) and an exception among the call's arguments. Record keys and values are never
fields: a call puts them in its text only when `SINK_ERRORS_LOG_INCLUDE_MESSAGES` is on.

librdkafka's own lines come through the `sink.librdkafka` loggers (every client the sink makes is
given one through confluent-kafka's `logger` property; confluent-kafka maps librdkafka's syslog
levels 0-7 to Python's: 0-2 CRITICAL, 3 ERROR, 4 WARNING, 5-6 INFO, 7 DEBUG), never raw to stderr.
A line they repeat (an unreachable broker: many a second) passes once, then at most once per
interval with the count held back.

Whatever a library logs, a line never carries a credential: third-party loggers that print URLs or
statement parameters are held at WARNING, psycopg's "error ignored" lines (which quote the
database's message, hence record values) are dropped, and every formatted line, traceback and
field included, has URL passwords and `password=`-style parameters masked as a last safety net.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import threading
import time
from typing import Any

from .model import Coord

# httpx/httpcore log every request URL at INFO (a registry URL may carry user:password@); the
# registry client uses httpx2/httpcore2 under those names when installed (confluent_shim).
# SQLAlchemy logs statements with their parameters (record values) once the root is at DEBUG.
QUIET_LOGGERS = ("httpx", "httpcore", "httpx2", "httpcore2", "sqlalchemy", "urllib3")
# librdkafka's lines, one logger per kind of client: `sink.librdkafka`, `sink.librdkafka.check`...
LIBRDKAFKA = "sink.librdkafka"
# Loggers (and their children) whose lines repeat many times a second while a broker is unreachable.
REPEATING_LOGGERS = (LIBRDKAFKA, "sink.kafka.client")
REPEAT_INTERVAL_S = 30.0

# The fields a JSON line carries when the log call knows them (`extra=` names).
FIELDS = ("topic", "partition", "offset", "table", "stage", "error_class")

# A URL's password runs to the last '@' of the URL (SQLAlchemy takes '/', ',' and '@' in one; an '@'
# further on only masks more), never into the next URL of a list or past white space.
_URL_START = r"[A-Za-z][A-Za-z0-9+.-]*://"
_USERINFO = re.compile(rf"(?P<head>{_URL_START}[^/\s:@,]*):(?:(?!{_URL_START})\S)*@")
# A secret's name (its key quoted or not: `password=x`, `'sasl.password': 'x'`, `"token": "x"`).
_SECRET_PARAM = re.compile(
    r"(?P<head>\b[\w.-]*(?:pass|password|passwd|passphrase|pwd|secret|token|credentials?|user\.info|api[_.-]?key)"
    r"['\"]?\s*[=:]\s*)"
    r"(?:'[^']*'|\"[^\"]*\"|[^\s&'\",;)}]+)",
    re.IGNORECASE,
)
# An HTTP credential: `Authorization: Bearer x`, `authorization=Basic x`, a bare `Bearer x`.
_AUTHORIZATION = re.compile(
    r"(?P<head>\b(?:(?:proxy-)?authorization['\"]?\s*[=:]\s*['\"]?(?:[A-Za-z]+\s+)?|bearer\s+))[^\s'\",;)}]+",
    re.IGNORECASE,
)


def mask_secrets(text: str) -> str:
    """`scheme://user:pass@` -> `scheme://user:***@`; `password=x`, `sasl.password: x`,
    `'sasl.password': 'x'`, `Authorization: Bearer x` -> `***`."""
    text = _USERINFO.sub(r"\g<head>:***@", text)
    text = _AUTHORIZATION.sub(r"\g<head>***", text)
    return _SECRET_PARAM.sub(r"\g<head>***", text)


def librdkafka_logger(client: str | None = None) -> logging.Logger:
    """The logger to give a confluent-kafka client (`{"logger": librdkafka_logger()}`), so that
    librdkafka's lines go through logging (format, level, masking, repeats held back)."""
    return logging.getLogger(f"{LIBRDKAFKA}.{client}" if client else LIBRDKAFKA)


class ClientLog(logging.LoggerAdapter):  # type: ignore[type-arg]
    """A confluent-kafka `logger` for a command's short-lived client (`sink check`, reset-offsets):
    librdkafka's lines are logged at `level` (DEBUG: shown only to whoever asks for them, repeats
    held back) and its first complaint of the highest level seen (WARNING or worse) is kept as
    `problem`, so the command can say *why* in its one line instead of echoing librdkafka's many
    (a connection refused, an ERROR, wins over a configuration warning that came before it)."""

    def __init__(self, client: str, level: int = logging.DEBUG) -> None:
        super().__init__(librdkafka_logger(client), {})
        self.level = level
        self.problem: str | None = None
        self._problem_level = logging.WARNING - 1

    def log(self, level: int, msg: object, *args: object, **kwargs: Any) -> None:
        if level > self._problem_level:
            # confluent-kafka logs ("%s [%s] %s", facility, client name, librdkafka's line)
            text = str(args[2]) if len(args) == 3 else (str(msg) % args if args else str(msg))
            self.problem = mask_secrets(re.sub(r"^\[thrd:[^\]]*\]:\s*", "", text))
            self._problem_level = level
        super().log(self.level, msg, *args, **kwargs)


# ------------------------------------------------------------------------------ fields


def fields(
    at: Any = None, *, table: str | None = None, error: BaseException | type | str | None = None
) -> dict[str, Any]:
    """`extra=` for a log call, so a JSON line carries the coordinates as fields:

        log.warning("record %s failed: %s", raw.coord, reason, extra=fields(raw, error=error))

    `at` is a `Coord` or anything carrying one as `.coord` (RawRecord, Row, Outcome, a RecordError);
    its `.table` is used when `table` is not given (Row, Outcome, Batch). `error` is an exception
    (its class name; a RecordError's stage and coordinates too), an exception class or a class name.
    Never the record's key or value."""
    out: dict[str, Any] = {}
    coord = _coord(at)
    if coord is None and isinstance(error, BaseException):
        coord = _coord(error)
    if coord is not None:
        out["topic"], out["partition"], out["offset"] = coord.topic, coord.partition, coord.offset
    table = table if table is not None else getattr(at, "table", None)
    if isinstance(table, str):
        out["table"] = table
    if error is not None:
        out["error_class"] = error if isinstance(error, str) else _class_name(error)
        stage = getattr(error, "stage", None)
        if stage is not None and isinstance(error, BaseException):
            out["stage"] = str(getattr(stage, "value", stage))
    return out


def _coord(at: Any) -> Coord | None:
    if isinstance(at, Coord):
        return at
    coord = getattr(at, "coord", None)
    return coord if isinstance(coord, Coord) else None


def _class_name(error: BaseException | type) -> str:
    return error.__name__ if isinstance(error, type) else type(error).__name__


def record_fields(record: logging.LogRecord) -> dict[str, Any]:
    """The known fields of a log record: those passed with `extra=`, then what its arguments tell
    (a Coord or something carrying one; an exception, or the one being logged with exc_info)."""
    found = {name: getattr(record, name) for name in FIELDS if getattr(record, name, None) is not None}
    args = record.args if isinstance(record.args, tuple) else ()
    if "topic" not in found:
        for arg in args:
            coord = _coord(arg)
            if coord is not None:
                found.update(topic=coord.topic, partition=coord.partition, offset=coord.offset)
                break
    if "error_class" not in found:
        error = record.exc_info[1] if record.exc_info else next((a for a in args if isinstance(a, BaseException)), None)
        if error is not None:
            found["error_class"] = type(error).__name__
    return found


# ------------------------------------------------------------------------------ formatters


class MaskingFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return mask_secrets(super().format(record))


class JsonFormatter(logging.Formatter):
    """One JSON object per line; every text in it masked."""

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": mask_secrets(record.getMessage()),
        }
        for name, value in record_fields(record).items():
            doc[name] = value if isinstance(value, int | float | bool) else mask_secrets(str(value))
        if record.exc_info:
            doc["exception"] = mask_secrets(self.formatException(record.exc_info))
        elif record.exc_text:
            doc["exception"] = mask_secrets(record.exc_text)
        return json.dumps(doc, ensure_ascii=False)


def formatter(fmt: str) -> logging.Formatter:
    """The formatter of `SINK_LOG_FORMAT`: `json` or `text`."""
    if fmt == "json":
        return JsonFormatter()
    return MaskingFormatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s")


# ------------------------------------------------------------------------------ filters


class RepeatFilter(logging.Filter):
    """Lets a repeated message through once per `interval` seconds, saying how many it held back:
    an unreachable broker makes librdkafka say the same thing many times a second. Two messages
    that differ only in numbers ("after 3ms", "after 7ms") are the same message.

    With `loggers`, only records of those loggers and their children are gated (a handler's
    filter); without, every record that reaches it (a logger's filter)."""

    def __init__(self, interval: float = REPEAT_INTERVAL_S, loggers: tuple[str, ...] = ()) -> None:
        super().__init__()
        self.interval = interval
        self.loggers = loggers
        self._seen: dict[tuple[str, str], tuple[float, int]] = {}
        self._lock = threading.Lock()  # librdkafka's lines may come from several threads

    def filter(self, record: logging.LogRecord) -> bool:
        if self.loggers and not _under(record.name, self.loggers):
            return True
        key = (record.name, re.sub(r"\d+", "#", record.getMessage()))
        now = record.created
        with self._lock:
            last, held = self._seen.get(key, (float("-inf"), 0))
            if now - last < self.interval:
                self._seen[key] = (last, held + 1)
                return False
            if len(self._seen) > 10_000:
                self._seen.clear()
            self._seen[key] = (now, 0)
        if held:
            record.msg = f"{record.msg} (repeated {held} more times)"
        return True


def _under(name: str, loggers: tuple[str, ...]) -> bool:
    return any(name == parent or name.startswith(parent + ".") for parent in loggers)


class DropPsycopgErrorIgnored(logging.Filter):
    """psycopg warns "error ignored terminating <Pipeline>: <the database's message>" whenever a
    statement run in pipeline mode is rejected. The rejection itself is raised and classified, so
    the line is noise, and its message may quote the rejected value: drop every form of it."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("error ignored")


def setup_logging(level: str = "INFO", fmt: str = "text") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter(fmt))
    handler.addFilter(RepeatFilter(loggers=REPEATING_LOGGERS))
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
    psycopg = logging.getLogger("psycopg")
    if not any(isinstance(f, DropPsycopgErrorIgnored) for f in psycopg.filters):
        psycopg.addFilter(DropPsycopgErrorIgnored())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
