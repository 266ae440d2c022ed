"""Database errors classified at the edge by code, never by message text.

RecordRejected        the row is at fault: SQLSTATE class 22 (data) and 23 (integrity), the
                      MySQL/MariaDB errnos of the same conditions, SQLite constraint/mismatch
                      errors, a value the driver or a bind processor cannot send
DatabaseUnavailable   the database is away or busy: connection loss, SQLSTATE 08*, 53*, 57*
                      (but 57P04), 40001, 40P01, 55P03, MySQL client/connection errnos,
                      SQLITE_BUSY/LOCKED/IOERR, an exhausted connection pool
FatalError            anything else (syntax, permissions, missing objects): an operator is needed
"""

from __future__ import annotations

import logging
import re
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import exc

from ..errors import DatabaseUnavailable, FatalError, RecordRejected, SchemaEvolutionRefused, SinkError

PG_RECORD_CLASSES = ("22", "23")  # data exception, integrity constraint violation
PG_RETRIABLE_CLASSES = ("08", "53", "57")  # connection exception, insufficient resources, operator intervention
PG_RETRIABLE_CODES = ("40001", "40P01", "55P03")  # serialization failure, deadlock, lock not available
PG_FATAL_CODES = ("57P04",)  # database dropped: waiting will not bring it back
# Class 42 is mostly "our statement is wrong" (fatal), but these two arise from one row's bound value
# not fitting its column (a JSON object or boolean sent to a BIGINT column): that row's problem.
PG_RECORD_CODES = ("42804", "42846")  # datatype_mismatch, cannot_coerce

# MySQL / MariaDB errnos of the conditions PostgreSQL files under classes 22 and 23.
MYSQL_RECORD_ERRNOS = {
    1048: "ER_BAD_NULL_ERROR",
    1062: "ER_DUP_ENTRY",
    1169: "ER_DUP_UNIQUE",
    1216: "ER_NO_REFERENCED_ROW",
    1217: "ER_ROW_IS_REFERENCED",
    1264: "ER_WARN_DATA_OUT_OF_RANGE",
    1265: "WARN_DATA_TRUNCATED",
    1292: "ER_TRUNCATED_WRONG_VALUE",
    1364: "ER_NO_DEFAULT_FOR_FIELD",
    1366: "ER_TRUNCATED_WRONG_VALUE_FOR_FIELD",
    1367: "ER_ILLEGAL_VALUE_FOR_TYPE",
    1406: "ER_DATA_TOO_LONG",
    1411: "ER_WRONG_VALUE_FOR_TYPE",
    1451: "ER_ROW_IS_REFERENCED_2",
    1452: "ER_NO_REFERENCED_ROW_2",
    1557: "ER_FOREIGN_DUPLICATE_KEY",
    1586: "ER_DUP_ENTRY_WITH_KEY_NAME",
    1118: "ER_TOO_BIG_ROWSIZE",  # at INSERT: this row's values do not fit InnoDB's row limit
    1690: "ER_DATA_OUT_OF_RANGE",
    1761: "ER_FOREIGN_DUPLICATE_KEY_WITH_CHILD_INFO",
    1762: "ER_FOREIGN_DUPLICATE_KEY_WITHOUT_CHILD_INFO",
    3140: "ER_INVALID_JSON_TEXT",
    3819: "ER_CHECK_CONSTRAINT_VIOLATED",  # MySQL
    4025: "ER_CONSTRAINT_FAILED",  # MariaDB CHECK
}
MYSQL_RETRIABLE_ERRNOS = {
    1021: "ER_DISK_FULL",
    1040: "ER_CON_COUNT_ERROR",
    1053: "ER_SERVER_SHUTDOWN",
    1114: "ER_RECORD_FILE_FULL",
    1152: "ER_ABORTING_CONNECTION",
    1158: "ER_NET_READ_ERROR",
    1159: "ER_NET_READ_INTERRUPTED",
    1160: "ER_NET_ERROR_ON_WRITE",
    1161: "ER_NET_WRITE_INTERRUPTED",
    1205: "ER_LOCK_WAIT_TIMEOUT",
    1213: "ER_LOCK_DEADLOCK",
    1927: "ER_CONNECTION_KILLED",
    4031: "ER_CLIENT_INTERACTION_TIMEOUT",
}
MYSQL_CLIENT_ERRNOS = range(2000, 3000)  # CR_*: the client lost or could not reach the server
SQLITE_RECORD_NAMES = ("SQLITE_CONSTRAINT", "SQLITE_MISMATCH", "SQLITE_TOOBIG", "SQLITE_RANGE")
SQLITE_RETRIABLE_NAMES = ("SQLITE_BUSY", "SQLITE_LOCKED", "SQLITE_IOERR", "SQLITE_CANTOPEN", "SQLITE_FULL")


# DDL the database refuses because of what the records ask for (a table too wide, a name it cannot
# hold): the change is refused for those records, not a stop of the sink.
PG_DDL_REFUSALS = {
    "54011": "too_many_columns",
    "42622": "name_too_long",
    "42701": "duplicate_column",
    "42939": "reserved_name",
}
MYSQL_DDL_REFUSALS = {
    1059: "ER_TOO_LONG_IDENT",
    1060: "ER_DUP_FIELDNAME",
    1071: "ER_TOO_LONG_KEY",
    1074: "ER_TOO_BIG_FIELDLENGTH",
    1103: "ER_WRONG_TABLE_NAME",
    1117: "ER_TOO_MANY_FIELDS",
    1118: "ER_TOO_BIG_ROWSIZE",
    1166: "ER_WRONG_COLUMN_NAME",
    1300: "ER_INVALID_CHARACTER_STRING",
}


class _QuietPipelineAbort(logging.Filter):
    """psycopg warns "error ignored terminating <Pipeline>: pipeline aborted" whenever a statement
    run in pipeline mode (executemany) is rejected; the rejection itself is raised and classified
    here, so the warning is noise, once per bisection step."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args if isinstance(record.args, tuple) else ()
        return not (len(args) == 2 and type(args[1]).__name__ == "PipelineAborted")


logging.getLogger("psycopg").addFilter(_QuietPipelineAbort())


def classify(error: exc.SQLAlchemyError) -> SinkError:
    """A SQLAlchemy/DBAPI error as RecordRejected, DatabaseUnavailable or FatalError, by code."""
    if not isinstance(error, exc.DBAPIError):
        return _classify_sqlalchemy(error)
    orig = error.orig
    if error.connection_invalidated:
        return DatabaseUnavailable(f"connection lost: {_message(orig)}")
    errno = _mysql_errno(orig)  # first: PyMySQL also gives a SQLSTATE, but HY000 for many data errors
    if errno is not None:
        return _classify_mysql(errno, orig)
    sqlstate = getattr(orig, "sqlstate", None)
    if sqlstate:
        return _classify_sqlstate(orig, sqlstate)
    if isinstance(orig, sqlite3.Error):
        return _classify_sqlite(orig)
    reason = _message(orig)
    if isinstance(error, exc.OperationalError | exc.InterfaceError):
        return DatabaseUnavailable(reason)  # psycopg raises these without SQLSTATE when it cannot connect
    if isinstance(error, exc.DataError | exc.IntegrityError):  # refused by the driver before the server
        return RecordRejected(reason, code=type(orig).__name__)
    if isinstance(error, exc.ProgrammingError) and type(orig).__module__.startswith("psycopg"):
        # psycopg found no adapter for one row's value (e.g. a JSON object for a TEXT column); a
        # statement the server could not run would carry a SQLSTATE and be classified above.
        return RecordRejected(reason, code="psycopg cannot adapt")
    return FatalError(f"database error ({type(orig).__name__}): {reason}")


def _classify_sqlalchemy(error: exc.SQLAlchemyError) -> SinkError:
    if isinstance(error, exc.TimeoutError):  # the connection pool is exhausted
        return DatabaseUnavailable(f"no database connection: {error}")
    if isinstance(error, exc.StatementError) and isinstance(error.orig, TypeError | ValueError | OverflowError):
        # a bind processor could not convert one row's value for its column type
        return RecordRejected(f"cannot send the value: {error.orig}", code=f"bind {type(error.orig).__name__}")
    if isinstance(error, exc.StatementError) and error.orig is not None:
        # Not str(error): SQLAlchemy appends the statement and its parameters, i.e. record values.
        return FatalError(f"database error ({type(error.orig).__name__}): {error.orig}")
    return FatalError(f"database error: {error}")


def _classify_sqlstate(orig: Any, sqlstate: str) -> SinkError:
    diag = getattr(orig, "diag", None)
    reason = _message(orig)
    if sqlstate[:2] in PG_RECORD_CLASSES or sqlstate in PG_RECORD_CODES:
        condition = _condition(orig, sqlstate)
        return RecordRejected(
            reason,
            sqlstate=sqlstate,
            code=f"SQLSTATE {sqlstate}" + (f" {condition}" if condition else ""),
            constraint=getattr(diag, "constraint_name", None),
            column=getattr(diag, "column_name", None),
        )
    retriable = sqlstate[:2] in PG_RETRIABLE_CLASSES or sqlstate in PG_RETRIABLE_CODES
    if retriable and sqlstate not in PG_FATAL_CODES:
        return DatabaseUnavailable(f"{reason} (SQLSTATE {sqlstate})", sqlstate=sqlstate)
    return FatalError(f"database error (SQLSTATE {sqlstate}): {reason}")


def _condition(orig: Any, sqlstate: str) -> str | None:
    """PostgreSQL's condition name (check_violation), from psycopg's class for the SQLSTATE."""
    cls = type(orig)
    if getattr(cls, "sqlstate", None) != sqlstate:
        return None
    return re.sub(r"(?<!^)(?=[A-Z])", "_", cls.__name__).lower()


def _mysql_errno(orig: Any) -> int | None:
    module = type(orig).__module__
    if module.startswith(("pymysql", "MySQLdb")) and orig.args and isinstance(orig.args[0], int):
        return int(orig.args[0])
    return None


def _classify_mysql(errno: int, orig: Any) -> SinkError:
    reason = _message(orig)
    name = MYSQL_RECORD_ERRNOS.get(errno)
    if name:
        return RecordRejected(reason, sqlstate=getattr(orig, "sqlstate", None), code=f"MySQL error {errno} {name}")
    if errno in MYSQL_RETRIABLE_ERRNOS or errno in MYSQL_CLIENT_ERRNOS or errno == 0:
        return DatabaseUnavailable(f"{reason} (MySQL error {errno})")  # 0: PyMySQL's "connection closed"
    return FatalError(f"database error (MySQL error {errno}): {reason}")


def _classify_sqlite(orig: sqlite3.Error) -> SinkError:
    name = getattr(orig, "sqlite_errorname", "") or ""
    reason = _message(orig)
    if isinstance(orig, sqlite3.IntegrityError | sqlite3.DataError) or name.startswith(SQLITE_RECORD_NAMES):
        return RecordRejected(reason, code=name or type(orig).__name__)
    if name.startswith(SQLITE_RETRIABLE_NAMES):
        return DatabaseUnavailable(f"{reason} ({name})")
    return FatalError(f"database error ({name or type(orig).__name__}): {reason}")


def _message(orig: Any) -> str:
    """The database's own words: psycopg's primary message, detail, constraint and column; the
    driver's message otherwise. Never SQLAlchemy's wrapper, which quotes the SQL and parameters."""
    diag = getattr(orig, "diag", None)
    if diag is not None and getattr(diag, "message_primary", None):
        parts = [diag.message_primary]
        if diag.message_detail:
            parts.append(diag.message_detail)
        if diag.constraint_name:
            parts.append(f"constraint {diag.constraint_name}")
        if diag.column_name:
            parts.append(f"column {diag.column_name}")
        return "; ".join(parts)
    if orig is not None and getattr(orig, "args", None) and len(orig.args) >= 2 and isinstance(orig.args[1], str):
        return orig.args[1]
    text = str(orig).strip() if orig is not None else ""
    return text.splitlines()[0] if text else "unknown database error"


# Raised by a driver (or its adaptation of Python values) for one row's value: a lone surrogate
# that cannot be encoded, JSON nested past the recursion limit, an integer past 64 bits.
# Only when raised outside the sink's own code: there, any of these is a bug to stop at.
DRIVER_VALUE_ERRORS = (TypeError, ValueError, UnicodeError, RecursionError, OverflowError, ArithmeticError)


@contextmanager
def driver_refusals() -> Iterator[None]:
    """Around the statements of one bisection step: a value the driver cannot send is that step's
    rejection (the bisection finds the row; if every row has it, the flood limit sees it)."""
    try:
        yield
    except RecordRejected:
        raise
    except DRIVER_VALUE_ERRORS as error:
        if _raised_by_the_sink(error):
            raise
        name = type(error).__name__
        raise RecordRejected(f"the driver cannot send a value: {name}: {error}", code=f"driver {name}") from error


def _raised_by_the_sink(error: BaseException) -> bool:
    """Whether the innermost Python frame of `error` is the sink's own code (not a driver's)."""
    tb = error.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    return tb is not None and str(tb.tb_frame.f_globals.get("__name__", "")).startswith("sink.")


@contextmanager
def ddl_classified(table: str) -> Iterator[None]:
    """Around CREATE/ALTER: the refusals that the records' shape causes become SchemaEvolutionRefused
    (record errors for the records that need the change); anything else as `classified`."""
    try:
        yield
    except exc.DBAPIError as error:
        refusal = _ddl_refusal(error.orig)
        if refusal is None:
            raise classify(error) from error
        raise SchemaEvolutionRefused(f"the database refused to change table {table!r}: {refusal}") from error
    except exc.StatementError as error:
        raise classify(error) from error


def _ddl_refusal(orig: Any) -> str | None:
    errno = _mysql_errno(orig)
    if errno is not None:
        name = MYSQL_DDL_REFUSALS.get(errno)
        return f"{_message(orig)} (MySQL error {errno} {name})" if name else None
    sqlstate = getattr(orig, "sqlstate", None)
    if sqlstate in PG_DDL_REFUSALS:
        return f"{_message(orig)} (SQLSTATE {sqlstate} {PG_DDL_REFUSALS[sqlstate]})"
    return None


@contextmanager
def classified() -> Iterator[None]:
    """Re-raise SQLAlchemy/DBAPI errors as the sink's own (the original stays as __cause__)."""
    try:
        yield
    except (exc.StatementError, exc.TimeoutError) as error:  # DBAPIError is a StatementError
        raise classify(error) from error
    except OverflowError as error:  # sqlite3 raises it bare for an integer past 64 bits
        raise RecordRejected(f"value out of range for the database: {error}", code="OverflowError") from error
