"""ALTER TABLE statements SQLAlchemy Core does not have, as DDL elements.

They are compiled by the database's own DDL compiler: identifiers go through its identifier preparer
and column definitions through `get_column_specification`, exactly as in CREATE TABLE. So hostile
names (`a%b`, `:name`, `x"y`) are quoted and escaped the same way there and here, which hand-made
`text()` would not do (it reads `:name` as a bind parameter).
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.ddl import ExecutableDDLElement


class _ColumnDDL(ExecutableDDLElement):
    """One statement about `column`, a column of `column.table` as it should be afterwards."""

    def __init__(self, column: sa.Column[Any]) -> None:
        self.column = column


class AddColumn(_ColumnDDL):
    pass


class AlterColumnType(_ColumnDDL):
    """PostgreSQL: ALTER COLUMN ... TYPE (keeps nullability and default)."""


class DropNotNull(_ColumnDDL):
    """PostgreSQL: ALTER COLUMN ... DROP NOT NULL."""


class ModifyColumn(_ColumnDDL):
    """MySQL/MariaDB: MODIFY COLUMN restates the whole definition (type, NULL, DEFAULT)."""


class AlterTable(ExecutableDDLElement):
    """MySQL/MariaDB: several ADD/MODIFY COLUMN clauses in one ALTER TABLE. Their DDL is not
    transactional, so one statement is the only way an evolution applies all or nothing."""

    def __init__(self, changes: list[AddColumn | ModifyColumn]) -> None:
        self.changes = changes


class RenameTable(ExecutableDDLElement):
    def __init__(self, table: sa.Table, new_name: str) -> None:
        self.table = table
        self.new_name = new_name


def _alter(compiler: Any, column: sa.Column[Any]) -> str:
    return f"ALTER TABLE {compiler.preparer.format_table(column.table)}"


def _add_clause(column: sa.Column[Any], compiler: Any) -> str:
    return f"ADD COLUMN {compiler.get_column_specification(column)}"


def _modify_clause(column: sa.Column[Any], compiler: Any) -> str:
    null = " NULL" if column.nullable else ""  # implied, but dropping NOT NULL is the point of many a MODIFY
    return f"MODIFY COLUMN {compiler.get_column_specification(column)}{null}"


@compiles(AddColumn)
def _add_column(element: AddColumn, compiler: Any, **kw: Any) -> str:
    return f"{_alter(compiler, element.column)} {_add_clause(element.column, compiler)}"


@compiles(AlterColumnType)
def _alter_type(element: AlterColumnType, compiler: Any, **kw: Any) -> str:
    column = element.column
    new_type = compiler.dialect.type_compiler_instance.process(column.type)
    return f"{_alter(compiler, column)} ALTER COLUMN {compiler.preparer.format_column(column)} TYPE {new_type}"


@compiles(DropNotNull)
def _drop_not_null(element: DropNotNull, compiler: Any, **kw: Any) -> str:
    column = element.column
    return f"{_alter(compiler, column)} ALTER COLUMN {compiler.preparer.format_column(column)} DROP NOT NULL"


@compiles(ModifyColumn)
def _modify_column(element: ModifyColumn, compiler: Any, **kw: Any) -> str:
    return f"{_alter(compiler, element.column)} {_modify_clause(element.column, compiler)}"


@compiles(AlterTable)
def _alter_table(element: AlterTable, compiler: Any, **kw: Any) -> str:
    clauses = [
        _add_clause(c.column, compiler) if isinstance(c, AddColumn) else _modify_clause(c.column, compiler)
        for c in element.changes
    ]
    return f"{_alter(compiler, element.changes[0].column)} {', '.join(clauses)}"


@compiles(RenameTable)
def _rename_table(element: RenameTable, compiler: Any, **kw: Any) -> str:
    new_name = compiler.preparer.quote_identifier(element.new_name)
    return f"ALTER TABLE {compiler.preparer.format_table(element.table)} RENAME TO {new_name}"
