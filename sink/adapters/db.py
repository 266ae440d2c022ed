"""The database edge: SQLAlchemy engine, reflection, transactions with savepoints, and the
classification of database errors by code (SQLSTATE, MySQL errno, SQLite error name)."""

from __future__ import annotations

import base64
import datetime as dt
import decimal
import json
import logging
import sqlite3
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event, exc
from sqlalchemy.engine import Connection, Engine

from ..batch import Unit
from ..dialects import Dialect, for_backend
from ..errors import DatabaseUnavailable, FatalError, RecordRejected, SinkError
from ..model import Column, ColumnType, Kind, TableSpec
from ..schema import Evolution

log = logging.getLogger("sink.db")


# ------------------------------------------------------------------------------ classification

PG_RETRIABLE_CLASSES = ("08", "53", "57")  # connection, insufficient resources, operator intervention
PG_RETRIABLE_CODES = ("40001", "40P01")  # serialization failure, deadlock
PG_RECORD_CLASSES = ("22", "23")  # data exception, integrity constraint violation

MYSQL_RECORD_ERRNOS = frozenset(
    {1048, 1062, 1264, 1265, 1292, 1366, 1406, 1451, 1452, 1364, 1690, 3819, 4025, 1411, 1367, 3140, 4078}
)
MYSQL_RETRIABLE_ERRNOS = frozenset({1040, 1053, 1205, 1213, 1927, 2002, 2003, 2006, 2013, 2055, 1152, 1158, 1159})

SQLITE_RECORD_NAMES = ("SQLITE_CONSTRAINT", "SQLITE_MISMATCH", "SQLITE_TOOBIG", "SQLITE_RANGE")
SQLITE_RETRIABLE_NAMES = ("SQLITE_BUSY", "SQLITE_LOCKED", "SQLITE_IOERR", "SQLITE_CANTOPEN", "SQLITE_FULL")


def classify(error: exc.DBAPIError) -> SinkError:
    """A SQLAlchemy/DBAPI error as RecordRejected, DatabaseUnavailable or FatalError, by code."""
    orig = error.orig
    reason = _reason(orig)
    if error.connection_invalidated:
        return DatabaseUnavailable(f"connection lost: {reason}")
    sqlstate = getattr(orig, "sqlstate", None)
    if sqlstate:
        return _classify_sqlstate(sqlstate, reason)
    errno = _mysql_errno(orig)
    if errno is not None:
        return _classify_mysql(errno, reason)
    if isinstance(orig, sqlite3.Error):
        return _classify_sqlite(orig, reason)
    if isinstance(error, exc.OperationalError | exc.InterfaceError):
        return DatabaseUnavailable(reason)  # psycopg raises these without SQLSTATE when it cannot connect
    return FatalError(f"database error: {reason}")


def _classify_sqlstate(sqlstate: str, reason: str) -> SinkError:
    if sqlstate[:2] in PG_RECORD_CLASSES:
        return RecordRejected(reason, sqlstate=sqlstate)
    if sqlstate[:2] in PG_RETRIABLE_CLASSES or sqlstate in PG_RETRIABLE_CODES:
        return DatabaseUnavailable(f"{reason} (SQLSTATE {sqlstate})")
    return FatalError(f"database error (SQLSTATE {sqlstate}): {reason}")


def _mysql_errno(orig: Any) -> int | None:
    module = type(orig).__module__
    if module.startswith("pymysql") and orig.args and isinstance(orig.args[0], int):
        return int(orig.args[0])
    return None


def _classify_mysql(errno: int, reason: str) -> SinkError:
    if errno in MYSQL_RECORD_ERRNOS:
        return RecordRejected(reason, sqlstate=f"MySQL {errno}")
    if errno in MYSQL_RETRIABLE_ERRNOS:
        return DatabaseUnavailable(f"{reason} (MySQL error {errno})")
    return FatalError(f"database error (MySQL error {errno}): {reason}")


def _classify_sqlite(orig: sqlite3.Error, reason: str) -> SinkError:
    name = getattr(orig, "sqlite_errorname", "") or ""
    if isinstance(orig, sqlite3.IntegrityError | sqlite3.DataError) or name.startswith(SQLITE_RECORD_NAMES):
        return RecordRejected(reason, sqlstate=name or None)
    if name.startswith(SQLITE_RETRIABLE_NAMES):
        return DatabaseUnavailable(f"{reason} ({name})")
    return FatalError(f"database error ({name or type(orig).__name__}): {reason}")


def _reason(orig: Any) -> str:
    diag = getattr(orig, "diag", None)  # psycopg: the server's own primary message, detail, constraint
    if diag is not None and getattr(diag, "message_primary", None):
        parts = [diag.message_primary]
        if diag.message_detail:
            parts.append(diag.message_detail)
        if diag.constraint_name:
            parts.append(f"constraint {diag.constraint_name}")
        if diag.column_name:
            parts.append(f"column {diag.column_name}")
        return "; ".join(parts)
    if orig is not None and getattr(orig, "args", None) and len(orig.args) >= 2:
        return str(orig.args[1])
    return str(orig).strip().splitlines()[0] if orig is not None else "unknown database error"


@contextmanager
def classified() -> Iterator[None]:
    try:
        yield
    except exc.DBAPIError as error:
        raise classify(error) from error


# ------------------------------------------------------------------------------ the store


def _json_default(value: Any) -> Any:
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return str(value)
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, bytes | bytearray):
        return base64.b64encode(value).decode()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def json_dumps(value: Any) -> str:
    return json.dumps(value, default=_json_default, separators=(",", ":"))


def create_engine(url: str) -> Engine:
    backend = sa.engine.make_url(url).get_backend_name()
    kwargs: dict[str, Any] = {"json_serializer": json_dumps, "pool_pre_ping": True}
    if backend == "postgresql":
        kwargs["connect_args"] = {"connect_timeout": 5, "application_name": "kafka-sql-sink"}
    elif backend in ("mysql", "mariadb"):
        kwargs["connect_args"] = {"connect_timeout": 5, "charset": "utf8mb4"}
    engine = sa.create_engine(url, **kwargs)
    if backend == "sqlite":
        _sqlite_real_transactions(engine)
    return engine


def _sqlite_real_transactions(engine: Engine) -> None:
    """pysqlite's own transaction handling breaks SAVEPOINT; let SQLAlchemy emit BEGIN itself."""

    @event.listens_for(engine, "connect")
    def _connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        dbapi_connection.execute("PRAGMA foreign_keys=ON")

    @event.listens_for(engine, "begin")
    def _begin(connection: Connection) -> None:
        connection.exec_driver_sql("BEGIN")


class SqlTransaction:
    def __init__(self, connection: Connection, dialect: Dialect, store: SqlStore) -> None:
        self.connection = connection
        self.dialect = dialect
        self.store = store

    @contextmanager
    def savepoint(self) -> Iterator[None]:
        with classified():
            nested = self.connection.begin_nested()
        try:
            with classified():
                yield
        except BaseException:
            with classified():
                nested.rollback()
            raise
        else:
            with classified():
                nested.commit()

    def apply(self, spec: TableSpec, units: Sequence[Unit], mode: str) -> dict[int, str]:
        table = self.store.sa_table(spec)
        key = spec.primary_key
        deletes = [self.dialect.key_params(u.rows[-1].key) for u in units if u.delete_first]
        writes = [u.final.values for u in units if u.final is not None]
        if deletes:
            self.connection.execute(self.dialect.delete(table, key), deletes)
        if writes:
            statement, params = self._write(table, key, mode, writes)
            self.connection.execute(statement, params)
        return {}

    def _write(self, table: sa.Table, key: Sequence[str], mode: str, rows: list[Any]) -> tuple[Any, list[dict]]:
        bind = self.dialect.bind
        names = [c.name for c in table.columns]
        if mode == "update":
            params = [self.dialect.update_params(key, names, row) for row in rows]
            return self.dialect.update(table, key, names), params
        params = [{name: bind(row.get(name)) for name in names} for row in rows]
        statement = self.dialect.upsert(table, key) if mode == "upsert" else self.dialect.insert(table)
        return statement, params

    def execute(self, statement: Any, params: Any = None) -> Any:
        with classified():
            return self.connection.execute(statement, params)


class SqlStore:
    """Implements pipeline.Store over a SQLAlchemy engine. Reflected tables are cached and
    refreshed only after DDL, so a batch costs no catalogue queries."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.dialect = for_backend(engine.dialect.name, engine.dialect)
        self._tables: dict[str, TableSpec | None] = {}
        self._sa_tables: dict[TableSpec, sa.Table] = {}

    # -------------------------------------------------------------- reflection

    def table(self, name: str) -> TableSpec | None:
        if name not in self._tables:
            self._tables[name] = self._reflect(name)
        return self._tables[name]

    def _reflect(self, name: str) -> TableSpec | None:
        with classified(), self.engine.connect() as connection:
            inspector = sa.inspect(connection)
            if not inspector.has_table(name):
                return None
            columns = inspector.get_columns(name)
            key = inspector.get_pk_constraint(name).get("constrained_columns") or []
        return TableSpec(
            name,
            tuple(
                Column(c["name"], self.dialect.neutral_type(c["type"]), nullable=bool(c["nullable"])) for c in columns
            ),
            tuple(key),
        )

    def storage_type(self, column_type: ColumnType) -> ColumnType:
        return self.dialect.storage_type(column_type)

    def sa_table(self, spec: TableSpec) -> sa.Table:
        table = self._sa_tables.get(spec)
        if table is None:
            table = self._sa_tables[spec] = self.dialect.table(spec)
        return table

    # -------------------------------------------------------------- DDL

    def create_table(self, spec: TableSpec) -> None:
        log.info(
            "creating table %s with %d columns, primary key %s",
            spec.name,
            len(spec.columns),
            spec.primary_key,
        )
        self._ddl([self.dialect.create_table(spec)], spec.name)

    def alter_table(self, existing: TableSpec, evolution: Evolution) -> None:
        statements = [self.dialect.add_column(existing, c) for c in evolution.add]
        statements += [self.dialect.alter_type(existing, c, t) for c, t in evolution.widen]
        for name in evolution.drop_not_null:
            column = existing.column(name)
            assert column is not None
            statements.append(self.dialect.drop_not_null(existing, column))
        log.info("evolving table %s: %s", existing.name, evolution)
        self._ddl(statements, existing.name)

    def _ddl(self, statements: Sequence[Any], table: str) -> None:
        try:
            with classified(), self.engine.begin() as connection:
                for statement in statements:
                    connection.execute(statement)
        finally:
            self._tables.pop(table, None)

    # -------------------------------------------------------------- DML

    @contextmanager
    def transaction(self) -> Iterator[SqlTransaction]:
        with classified(), self.engine.begin() as connection:
            yield SqlTransaction(connection, self.dialect, self)

    def ping(self) -> str:
        with classified(), self.engine.connect() as connection:
            version = connection.dialect.server_version_info
            connection.execute(sa.text("SELECT 1"))
        return ".".join(str(part) for part in version or ())

    def dispose(self) -> None:
        self.engine.dispose()


__all__ = ["Kind", "SqlStore", "classify", "create_engine"]
