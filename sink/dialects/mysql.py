"""MySQL / MariaDB (PyMySQL): INSERT ... ON DUPLICATE KEY UPDATE, DATETIME(6), bounded key strings.

MariaDB's JSON is LONGTEXT with a `json_valid` CHECK; reflection finds that check so the column
reads back as json, not as a string.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Callable, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import mysql
from sqlalchemy.engine import Connection
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.expression import Executable
from sqlalchemy.sql.visitors import InternalTraversal

from ..identifiers import IdentifierRules
from ..model import Column, ColumnType, Kind, TableSpec
from ..schema import Evolution
from . import ddl
from .base import Dialect, Statement, write_condition
from .types import refuse_nan, utc_naive

VARCHAR_MAX = 768  # utf8mb4 characters that still fit an InnoDB index key (3072 bytes)
VARBINARY_MAX = 3072
KEY_LENGTH = 255  # an unbounded string or bytes key column
DECIMAL_MAX = (65, 30)  # MySQL's largest DECIMAL: the home of variable-scale decimals


class MysqlDialect(Dialect):
    name = "mysql"
    # Column names compare case-insensitively; table names as the file system does (case-sensitive
    # on Linux, lower_case_table_names=0). Identifiers are utf8mb3.
    identifiers = IdentifierRules(
        "MariaDB/MySQL",
        max_length=64,
        length_unit="characters",
        column_folding="unicode",
        basic_plane_only=True,
        no_trailing_space=True,
        no_control_characters=True,
    )
    max_columns = 1017  # InnoDB's limit

    def sa_type(self, ct: ColumnType) -> sa.types.TypeEngine[Any]:
        if ct.kind is Kind.STRING:
            return mysql.VARCHAR(ct.length) if ct.length and ct.length <= VARCHAR_MAX else mysql.LONGTEXT()
        if ct.kind is Kind.BYTES:
            return mysql.VARBINARY(ct.length) if ct.length and ct.length <= VARBINARY_MAX else mysql.LONGBLOB()
        if ct.kind is Kind.DECIMAL:
            return mysql.DECIMAL(*DECIMAL_MAX) if ct.scale is None else mysql.DECIMAL(ct.precision, ct.scale)
        simple: dict[Kind, Callable[[], sa.types.TypeEngine[Any]]] = {
            Kind.INT8: mysql.TINYINT,
            Kind.FLOAT32: mysql.FLOAT,
            Kind.FLOAT64: lambda: mysql.DOUBLE(asdecimal=False),  # MySQL's DOUBLE reads as Decimal by default
            Kind.TIMESTAMP: lambda: mysql.DATETIME(fsp=6),  # stored as UTC: DATETIME has no zone
            Kind.LOCAL_TIMESTAMP: lambda: mysql.DATETIME(fsp=6),
            Kind.TIME: lambda: mysql.TIME(fsp=6),
            Kind.JSON: lambda: mysql.JSON(none_as_null=True),
            Kind.ARRAY: lambda: mysql.JSON(none_as_null=True),
        }
        factory = simple.get(ct.kind)
        return factory() if factory else self._type(ct)

    def key_type(self, ct: ColumnType) -> sa.types.TypeEngine[Any]:
        # InnoDB cannot index TEXT/BLOB: key strings and bytes are always VARCHAR/VARBINARY.
        length = min(ct.length or KEY_LENGTH, VARCHAR_MAX)
        if ct.kind is Kind.STRING:
            return mysql.VARCHAR(length)
        if ct.kind is Kind.BYTES:
            return mysql.VARBINARY(length)
        return self.sa_type(ct)

    def neutral_type(self, sa_type: sa.types.TypeEngine[Any]) -> ColumnType:
        if isinstance(sa_type, mysql.TINYINT):  # BOOL is TINYINT(1)
            return ColumnType(Kind.BOOLEAN if sa_type.display_width == 1 else Kind.INT8)
        if isinstance(sa_type, mysql.FLOAT):
            return ColumnType(Kind.FLOAT32)
        if isinstance(sa_type, mysql.YEAR):
            return ColumnType(Kind.INT32)
        if isinstance(sa_type, sa.CHAR) and sa_type.length == 36:  # what UuidText creates
            return ColumnType(Kind.UUID)
        return super().neutral_type(sa_type)

    def _server_default(self, column: Column) -> sa.ColumnElement[Any] | None:
        default = super()._server_default(column)
        if default is None or not isinstance(self.sa_type(column.type), _NO_LITERAL_DEFAULT):
            return default
        # TEXT/BLOB/JSON take a default only as an expression (MariaDB 10.2+, MySQL 8.0.13+).
        return sa.sql.elements.Grouping(default)

    # -------------------------------------------------------------- DDL

    def evolve_statements(self, existing: TableSpec, evolution: Evolution) -> list[Executable]:
        target = self.table(evolution.apply(existing))
        changes: list[ddl.AddColumn | ddl.ModifyColumn] = [ddl.AddColumn(target.c[c.name]) for c in evolution.add]
        changed = dict.fromkeys([c.name for c, _ in evolution.widen] + list(evolution.drop_not_null))
        changes += [ddl.ModifyColumn(target.c[name]) for name in changed]
        if len(changes) == 1:
            return list(changes)
        return [ddl.AlterTable(changes)]  # one statement: all or nothing

    def reflect(self, connection: Connection, name: str) -> TableSpec | None:
        spec = super().reflect(connection, name)
        if spec is None:
            return None
        # SQLAlchemy reads names from SHOW CREATE TABLE without undoubling an escaped backtick.
        columns = tuple(dataclasses.replace(c, name=_unescape(c.name)) for c in spec.columns)
        spec = TableSpec(spec.name, columns, tuple(_unescape(k) for k in spec.primary_key))
        if not getattr(self.sa_dialect, "is_mariadb", False):
            return spec
        json_columns = self._json_checked(connection, spec)
        columns = tuple(
            dataclasses.replace(c, type=ColumnType(Kind.JSON)) if c.name in json_columns else c for c in spec.columns
        )
        return dataclasses.replace(spec, columns=columns)

    def _json_checked(self, connection: Connection, spec: TableSpec) -> set[str]:
        """Columns of a MariaDB table with the `json_valid` CHECK that MariaDB adds to JSON columns."""
        checks = sa.table(
            "CHECK_CONSTRAINTS",
            sa.column("CONSTRAINT_SCHEMA"),
            sa.column("TABLE_NAME"),
            sa.column("CHECK_CLAUSE"),
            schema="information_schema",
        )
        schema, table = checks.c["CONSTRAINT_SCHEMA"], checks.c["TABLE_NAME"]
        query = sa.select(checks.c["CHECK_CLAUSE"]).where(schema == sa.func.database(), table == spec.name)
        clauses = set(connection.execute(query).scalars())
        # Compared with the catalogue's text, never executed: MariaDB writes the name in backticks.
        return {c.name for c in spec.columns if "json_valid(`{}`)".format(c.name.replace("`", "``")) in clauses}

    # -------------------------------------------------------------- statements and values

    def upsert(
        self, table: sa.Table, key: Sequence[str], columns: Sequence[str] | None = None, version: str | None = None
    ) -> Statement:
        stmt = mysql.insert(table)
        updates = [c for c in columns or table.c.keys() if c not in key] or list(key)  # all key: a no-op
        if version is None:
            return stmt.on_duplicate_key_update({c: InsertedValue(table.c[c]) for c in updates})
        # `c = IF(fresh, VALUES(c), c)` per column. MariaDB/MySQL assign left to right and a later
        # assignment sees the earlier ones' new values: the version column goes last, so every
        # condition still compares with the stored version.
        stored = table.c[version]
        fresh = write_condition(stored, InsertedValue(stored) if version in updates else None)
        ordered = [c for c in updates if c != version] + [c for c in updates if c == version]
        return stmt.on_duplicate_key_update(
            [(c, sa.func.IF(fresh, InsertedValue(table.c[c]), table.c[c])) for c in ordered]
        )

    bind_classes = frozenset({float, dt.datetime})

    def bind(self, value: Any) -> Any:
        return utc_naive(refuse_nan(value, "MariaDB/MySQL", infinity=True))


def _unescape(name: str) -> str:
    return name.replace("``", "`")


class InsertedValue(sa.ColumnElement[Any]):
    """`VALUES(column)` in ON DUPLICATE KEY UPDATE. SQLAlchemy's own `inserted[...]` escapes a `%`
    in the column name twice for PyMySQL; this goes through the identifier preparer once."""

    inherit_cache = True
    _traverse_internals = [("column", InternalTraversal.dp_clauseelement)]

    def __init__(self, column: sa.ColumnElement[Any]) -> None:
        self.column = column
        self.type = column.type


@compiles(InsertedValue)
def _inserted_value(element: InsertedValue, compiler: Any, **kw: Any) -> str:
    return f"VALUES({compiler.preparer.quote(element.column.name)})"


_NO_LITERAL_DEFAULT = (mysql.LONGTEXT, mysql.LONGBLOB, mysql.JSON)
