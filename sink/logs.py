"""Logging: one line per event, readable by a person (`text`) or by a log pipeline (`json`).

Whatever a library logs, a line never carries a credential: third-party loggers that print URLs or
statement parameters are held at WARNING, psycopg's "error ignored" lines (which quote the
database's message, hence record values) are dropped, and every formatted line, traceback
included, has URL passwords and `password=`-style parameters masked as a last safety net.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import time

# httpx/httpcore log every request URL at INFO (a registry URL may carry user:password@);
# SQLAlchemy logs statements with their parameters (record values) once the root is at DEBUG.
QUIET_LOGGERS = ("httpx", "httpcore", "sqlalchemy", "urllib3")
# Loggers whose lines repeat many times a second while a broker is unreachable.
REPEATING_LOGGERS = ("sink.librdkafka", "sink.kafka.client")

_USERINFO = re.compile(r"(?P<head>[A-Za-z][A-Za-z0-9+.-]*://[^/\s:@]*):[^@\s/]*@")
_SECRET_PARAM = re.compile(
    r"(?P<head>\b[\w.-]*(?:pass|password|passwd|pwd|secret|token|credentials?|user\.info|api[_.-]?key)\s*[=:]\s*)"
    r"(?:'[^']*'|\"[^\"]*\"|[^\s&'\",;)]+)",
    re.IGNORECASE,
)


def mask_secrets(text: str) -> str:
    """`scheme://user:pass@` -> `scheme://user:***@`; `password=x`, `sasl.password: x` -> `***`."""
    text = _USERINFO.sub(r"\g<head>:***@", text)
    return _SECRET_PARAM.sub(r"\g<head>***", text)


class MaskingFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return mask_secrets(super().format(record))


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        doc = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": mask_secrets(record.getMessage()),
        }
        if record.exc_info:
            doc["exception"] = mask_secrets(self.formatException(record.exc_info))
        return json.dumps(doc)


class RepeatFilter(logging.Filter):
    """Lets a repeated message through once per `interval` seconds, saying how many it held back:
    an unreachable broker makes librdkafka say the same thing many times a second."""

    def __init__(self, interval: float = 30.0) -> None:
        super().__init__()
        self.interval = interval
        self._seen: dict[tuple[str, str], tuple[float, int]] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        key = (record.name, re.sub(r"\d+", "#", record.getMessage()))  # "after 10703ms" repeats too
        now = record.created
        last, held = self._seen.get(key, (0.0, 0))
        if now - last < self.interval:
            self._seen[key] = (last, held + 1)
            return False
        if len(self._seen) > 10_000:
            self._seen.clear()
        self._seen[key] = (now, 0)
        if held:
            record.msg = f"{record.msg} (repeated {held} more times)"
        return True


class DropPsycopgErrorIgnored(logging.Filter):
    """psycopg warns "error ignored terminating <Pipeline>: <the database's message>" whenever a
    statement run in pipeline mode is rejected. The rejection itself is raised and classified, so
    the line is noise, and its message may quote the rejected value: drop every form of it."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("error ignored")


def setup_logging(level: str = "INFO", fmt: str = "text") -> None:
    handler = logging.StreamHandler(sys.stderr)
    for name in REPEATING_LOGGERS:
        logging.getLogger(name).filters[:] = [RepeatFilter()]
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
    psycopg = logging.getLogger("psycopg")
    if not any(isinstance(f, DropPsycopgErrorIgnored) for f in psycopg.filters):
        psycopg.addFilter(DropPsycopgErrorIgnored())
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(MaskingFormatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
