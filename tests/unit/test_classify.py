"""Database errors are classified by code (SQLSTATE, MySQL errno, SQLite error name), never by
message text: the driver exceptions here carry misleading messages on purpose.

The real servers' errors for the same conditions are checked in tests/integration/test_errors.py.
"""

from __future__ import annotations

import logging
import sqlite3

import psycopg
import pymysql
import pytest
from sqlalchemy import exc

from sink.adapters.dberrors import classified, classify
from sink.deadletter import exception_message
from sink.errors import DatabaseUnavailable, FatalError, RecordRejected

MISLEADING = "connection refused; deadlock detected; duplicate key"  # a message that says nothing reliable


def wrap(orig: Exception, cls: type[exc.DBAPIError] = exc.DBAPIError, invalidated: bool = False) -> exc.DBAPIError:
    return cls("INSERT INTO t VALUES (%(x)s)", {"x": "secret value"}, orig, connection_invalidated=invalidated)


def pg(sqlstate: str) -> psycopg.Error:
    return psycopg.errors.lookup(sqlstate)(MISLEADING)


@pytest.mark.parametrize(
    ("sqlstate", "code"),
    [
        ("22001", "SQLSTATE 22001 string_data_right_truncation"),
        ("22003", "SQLSTATE 22003 numeric_value_out_of_range"),
        ("22P02", "SQLSTATE 22P02 invalid_text_representation"),
        ("22007", "SQLSTATE 22007 invalid_datetime_format"),
        ("23502", "SQLSTATE 23502 not_null_violation"),
        ("23503", "SQLSTATE 23503 foreign_key_violation"),
        ("23505", "SQLSTATE 23505 unique_violation"),
        ("23514", "SQLSTATE 23514 check_violation"),
    ],
)
def test_postgres_data_and_integrity_classes_are_record_errors(sqlstate: str, code: str) -> None:
    error = classify(wrap(pg(sqlstate), exc.IntegrityError))
    assert isinstance(error, RecordRejected)
    assert error.sqlstate == sqlstate
    assert error.code == code
    assert error.safe_reason == f"rejected by the database ({code})"


@pytest.mark.parametrize(
    "sqlstate",
    [
        "08000",
        "08001",
        "08006",
        "08P01",
        "40001",
        "40P01",
        "53000",
        "53100",
        "53200",
        "53300",
        "57P01",
        "57P03",
        "55P03",
    ],
)
def test_postgres_outages_are_retriable(sqlstate: str) -> None:
    error = classify(wrap(pg(sqlstate), exc.OperationalError))
    assert isinstance(error, DatabaseUnavailable)
    assert f"SQLSTATE {sqlstate}" in str(error)


@pytest.mark.parametrize("sqlstate", ["42P01", "42703", "42501", "28P01", "3D000", "57P04", "XX000", "25P02"])
def test_other_postgres_errors_are_fatal(sqlstate: str) -> None:
    error = classify(wrap(pg(sqlstate), exc.ProgrammingError))
    assert type(error) is FatalError
    assert f"SQLSTATE {sqlstate}" in str(error)


def test_postgres_connection_failure_without_sqlstate_is_retriable() -> None:
    orig = psycopg.OperationalError('connection failed: connection to server at "127.0.0.1", port 5432 failed')
    assert isinstance(classify(wrap(orig, exc.OperationalError)), DatabaseUnavailable)


def test_an_invalidated_connection_is_retriable_whatever_the_code() -> None:
    error = classify(wrap(pg("23505"), exc.OperationalError, invalidated=True))
    assert isinstance(error, DatabaseUnavailable)


@pytest.mark.parametrize(
    ("errno", "name"),
    [
        (1048, "ER_BAD_NULL_ERROR"),
        (1062, "ER_DUP_ENTRY"),
        (1264, "ER_WARN_DATA_OUT_OF_RANGE"),
        (1292, "ER_TRUNCATED_WRONG_VALUE"),
        (1366, "ER_TRUNCATED_WRONG_VALUE_FOR_FIELD"),
        (1406, "ER_DATA_TOO_LONG"),
        (1452, "ER_NO_REFERENCED_ROW_2"),
        (3819, "ER_CHECK_CONSTRAINT_VIOLATED"),
        (4025, "ER_CONSTRAINT_FAILED"),
    ],
)
def test_mysql_record_errnos_are_record_errors(errno: int, name: str) -> None:
    # PyMySQL passes the server's SQLSTATE too; for 1366 it is HY000, so the errno decides
    orig = pymysql.err.OperationalError(errno, MISLEADING, sqlstate="HY000")
    error = classify(wrap(orig, exc.OperationalError))
    assert isinstance(error, RecordRejected)
    assert error.code == f"MySQL error {errno} {name}"


@pytest.mark.parametrize("errno", [0, 1040, 1053, 1205, 1213, 1927, 2002, 2003, 2006, 2013])
def test_mysql_outages_are_retriable(errno: int) -> None:
    orig = pymysql.err.OperationalError(errno, MISLEADING)
    assert isinstance(classify(wrap(orig, exc.OperationalError)), DatabaseUnavailable)


@pytest.mark.parametrize("errno", [1045, 1049, 1064, 1142, 1146])
def test_other_mysql_errors_are_fatal(errno: int) -> None:
    orig = pymysql.err.ProgrammingError(errno, "duplicate entry")
    error = classify(wrap(orig, exc.ProgrammingError))
    assert type(error) is FatalError
    assert f"MySQL error {errno}" in str(error)


def _sqlite(cls: type[sqlite3.Error], name: str) -> sqlite3.Error:
    error = cls(MISLEADING)
    error.sqlite_errorname = name  # type: ignore[attr-defined]
    return error


@pytest.mark.parametrize(
    "name",
    [
        "SQLITE_CONSTRAINT_CHECK",
        "SQLITE_CONSTRAINT_NOTNULL",
        "SQLITE_CONSTRAINT_PRIMARYKEY",
        "SQLITE_CONSTRAINT_UNIQUE",
    ],
)
def test_sqlite_constraint_errors_are_record_errors(name: str) -> None:
    error = classify(wrap(_sqlite(sqlite3.IntegrityError, name), exc.IntegrityError))
    assert isinstance(error, RecordRejected)
    assert error.code == name


@pytest.mark.parametrize("name", ["SQLITE_BUSY", "SQLITE_LOCKED", "SQLITE_IOERR_WRITE", "SQLITE_FULL"])
def test_sqlite_busy_and_io_errors_are_retriable(name: str) -> None:
    assert isinstance(
        classify(wrap(_sqlite(sqlite3.OperationalError, name), exc.OperationalError)), DatabaseUnavailable
    )


def test_sqlite_other_errors_are_fatal() -> None:
    error = classify(wrap(_sqlite(sqlite3.OperationalError, "SQLITE_ERROR"), exc.OperationalError))
    assert type(error) is FatalError


def test_a_value_that_a_bind_processor_cannot_convert_is_a_record_error() -> None:
    wrapped = exc.StatementError("cannot process", "INSERT ...", {"d": "x"}, TypeError("a date is needed"))
    error = classify(wrapped)
    assert isinstance(error, RecordRejected)
    assert error.code == "bind TypeError"


def test_a_fatal_statement_error_never_quotes_the_parameters() -> None:
    orig = exc.InvalidRequestError("A value is required for bind parameter 'b'")
    error = classify(exc.StatementError("a bug", "INSERT INTO t VALUES (?, ?)", [{"a": "secret value"}], orig))
    assert type(error) is FatalError
    assert "secret value" not in str(error)
    assert "A value is required for bind parameter 'b'" in str(error)


def test_an_exhausted_pool_is_retriable() -> None:
    assert isinstance(classify(exc.TimeoutError("QueuePool limit reached")), DatabaseUnavailable)


def test_classified_keeps_the_driver_error_as_cause_and_never_quotes_the_parameters() -> None:
    with pytest.raises(RecordRejected) as raised, classified():
        raise wrap(pg("23514"), exc.IntegrityError)
    assert isinstance(raised.value.__cause__, exc.IntegrityError)
    assert "secret value" not in str(raised.value)
    assert "secret value" not in exception_message(raised.value)


def test_errors_that_are_not_the_databases_pass_through() -> None:
    with pytest.raises(KeyError), classified():
        raise KeyError("a bug")


def test_psycopg_pipeline_abort_noise_is_filtered(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="psycopg"):
        logging.getLogger("psycopg").warning(
            "error ignored terminating %r: %s", "<Pipeline>", psycopg.errors.PipelineAborted("pipeline aborted")
        )
        logging.getLogger("psycopg").warning("error ignored terminating %r: %s", "<Copy>", RuntimeError("other"))
    assert caplog.messages == ["error ignored terminating '<Copy>': other"]


@pytest.mark.parametrize(("sqlstate", "code"), [("42804", "datatype_mismatch"), ("42846", "cannot_coerce")])
def test_a_bound_value_that_does_not_fit_its_column_is_that_records_error(sqlstate: str, code: str) -> None:
    error = classify(wrap(pg(sqlstate), exc.ProgrammingError))
    assert isinstance(error, RecordRejected)
    assert error.code == f"SQLSTATE {sqlstate} {code}"


def test_other_class_42_errors_stay_fatal() -> None:
    assert isinstance(classify(wrap(pg("42703"), exc.ProgrammingError)), FatalError)  # undefined column


def test_psycopg_finding_no_adapter_for_a_value_is_a_record_error() -> None:
    error = classify(wrap(psycopg.ProgrammingError("cannot adapt type 'dict'"), exc.ProgrammingError))
    assert isinstance(error, RecordRejected)


def test_sqlite_integer_overflow_is_a_record_error() -> None:
    with pytest.raises(RecordRejected, match="out of range"), classified():
        raise OverflowError("Python int too large to convert to SQLite INTEGER")
