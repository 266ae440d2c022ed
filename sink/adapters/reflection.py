"""Reflection: a table as it exists, with neutral types. SQLAlchemy's inspector reads the catalogue;
the dialect's type registry, read backwards (`TypeRegistry.neutral_type`), names each column's kind.
MariaDB/MySQL need two corrections, below."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ..dialects import Dialect, MysqlDialect, SqlDefault
from ..dialects.mysql import json_check_clause, json_checks
from ..dialects.type_registry import TypeRegistry
from ..model import Column, ColumnType, Kind, TableSpec


def reflect_table(connection: Connection, dialect: Dialect, name: str, schema: str | None = None) -> TableSpec | None:
    """Table `name` of `schema` (None: the connection's default) as it exists; None when there is
    none (nor, then, when its schema is missing)."""
    inspector = sa.inspect(connection)
    if not inspector.has_table(name, schema=schema):
        return None
    key = inspector.get_pk_constraint(name, schema=schema).get("constrained_columns") or []
    columns = tuple(_column(info, dialect.types) for info in inspector.get_columns(name, schema=schema))
    spec = TableSpec(name, columns, tuple(key), schema)
    if isinstance(dialect, MysqlDialect):
        spec = _unescaped(spec)
        if getattr(dialect.sa_dialect, "is_mariadb", False):
            spec = _mariadb_json(connection, spec)
    return spec


def _column(info: Mapping[str, Any], types: TypeRegistry) -> Column:
    default = info.get("default")
    return Column(
        info["name"],
        types.neutral_type(info["type"]),
        nullable=bool(info["nullable"]),
        default=None if default is None else SqlDefault(default),
        has_default=default is not None,
    )


def _unescaped(spec: TableSpec) -> TableSpec:
    """SQLAlchemy reads MySQL names from SHOW CREATE TABLE without undoubling an escaped backtick."""
    columns = tuple(dataclasses.replace(c, name=_unescape(c.name)) for c in spec.columns)
    return dataclasses.replace(spec, columns=columns, primary_key=tuple(_unescape(k) for k in spec.primary_key))


def _unescape(name: str) -> str:
    return name.replace("``", "`")


def _mariadb_json(connection: Connection, spec: TableSpec) -> TableSpec:
    """MariaDB's JSON is LONGTEXT with a `json_valid` CHECK: columns with that check are json."""
    clauses = set(connection.execute(json_checks(spec.name, spec.schema)).scalars())
    json_columns = {c.name for c in spec.columns if json_check_clause(c.name) in clauses}
    columns = tuple(
        dataclasses.replace(c, type=ColumnType(Kind.JSON)) if c.name in json_columns else c for c in spec.columns
    )
    return dataclasses.replace(spec, columns=columns)


__all__ = ["reflect_table"]
