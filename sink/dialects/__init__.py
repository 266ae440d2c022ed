"""Dialects: the only place that produces SQL. One module per database family, each with its type
registry (`TYPES`: every type of the database in one table, see `type_registry`)."""

from __future__ import annotations

from sqlalchemy.dialects import mysql as sa_mysql
from sqlalchemy.dialects import postgresql as sa_postgresql
from sqlalchemy.dialects import sqlite as sa_sqlite
from sqlalchemy.engine import Dialect as SADialect

from .base import Dialect, SqlDefault
from .mysql import MysqlDialect
from .postgres import PostgresDialect
from .sqlite import SqliteDialect

_BY_BACKEND: dict[str, type[Dialect]] = {
    "postgresql": PostgresDialect,
    "sqlite": SqliteDialect,
    "mysql": MysqlDialect,
    "mariadb": MysqlDialect,
}

# The drivers the sink ships with, for compiling SQL without a connection (documentation).
_OFFLINE = {
    "postgresql": sa_postgresql.psycopg.dialect,
    "mysql": sa_mysql.pymysql.dialect,
    "sqlite": sa_sqlite.pysqlite.dialect,
}


def for_backend(backend: str, sa_dialect: SADialect) -> Dialect:
    try:
        return _BY_BACKEND[backend](sa_dialect)
    except KeyError:
        raise ValueError(f"unsupported database {backend!r}") from None


def offline(backend: str) -> Dialect:
    """A dialect compiling SQL without a connection (documentation, tests)."""
    return for_backend(backend, _OFFLINE[backend]())


__all__ = [
    "Dialect",
    "MysqlDialect",
    "PostgresDialect",
    "SqlDefault",
    "SqliteDialect",
    "for_backend",
    "offline",
]
