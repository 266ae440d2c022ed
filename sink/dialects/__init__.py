"""Dialects: the only place that produces SQL. One module per database family."""

from __future__ import annotations

from sqlalchemy.engine import Dialect as SADialect

from .base import Dialect
from .mysql import MysqlDialect
from .postgres import PostgresDialect
from .sqlite import SqliteDialect

_BY_BACKEND: dict[str, type[Dialect]] = {
    "postgresql": PostgresDialect,
    "sqlite": SqliteDialect,
    "mysql": MysqlDialect,
    "mariadb": MysqlDialect,
}


def for_backend(backend: str, sa_dialect: SADialect) -> Dialect:
    try:
        return _BY_BACKEND[backend](sa_dialect)
    except KeyError:
        raise ValueError(f"unsupported database {backend!r}") from None


__all__ = ["Dialect", "MysqlDialect", "PostgresDialect", "SqliteDialect", "for_backend"]
