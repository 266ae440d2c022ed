"""The target database's rules for table and column names, checked before any DDL.

A database that meets a name it cannot hold does not always refuse it: PostgreSQL silently cuts a
name at 63 bytes (two long fields then share one column, a long field writes NULL into another),
and MariaDB and SQLite compare names case-insensitively (`Name` and `name` are one column). So every
name the sink derives from data is checked here against the rules of the database it writes to,
and a name that does not fit, or that becomes another after those rules, is a record error naming
the name and the rule. Never a silent truncation or merge.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Literal

from .errors import MappingError

Folding = Literal["none", "ascii", "unicode"]


@dataclass(frozen=True, slots=True)
class IdentifierRules:
    """What one database accepts as a table or column name (its dialect builds these)."""

    database: str = "the database"
    max_length: int | None = None  # None: no practical limit
    length_unit: Literal["bytes", "characters"] = "bytes"
    column_folding: Folding = "none"  # how the database compares column names
    table_folding: Folding = "none"
    basic_plane_only: bool = False  # MariaDB/MySQL's identifier charset is 3-byte utf8
    no_trailing_space: bool = False  # MariaDB/MySQL refuse names ending in a space
    reserved_table_prefix: str | None = None  # SQLite keeps sqlite_* for itself
    # PostgreSQL keeps pg_* schemas for itself (pg_temp.x would be a table that vanishes with the session)
    reserved_schema_prefix: str | None = None
    # The database's own schemas (compared as it compares table names): information_schema and the
    # catalogue on either, MariaDB/MySQL's mysql, sys, performance_schema. A `${source.db}` named
    # like one must not write into it.
    reserved_schemas: frozenset[str] = frozenset()
    reserved_columns: frozenset[str] = frozenset()  # PostgreSQL's system columns (xmin, ctid, ...)
    # Names the sink's own statements give columns next to a table's (PostgreSQL's COPY stage and
    # its merges): a column so named would be taken for them.
    staging_columns: frozenset[str] = frozenset()
    no_control_characters: bool = False  # MariaDB keeps them, but its catalogue reads them back changed

    def problem(self, name: str) -> str | None:
        """Why the database cannot hold `name` as it is; None when it can."""
        if not name:
            return "an empty name is not allowed"
        if "\x00" in name:
            return "a name may not contain the NUL character"
        if any(0xD800 <= ord(c) <= 0xDFFF for c in name):
            return "a name may not contain a lone surrogate (not valid Unicode)"
        if self.basic_plane_only and any(ord(c) > 0xFFFF for c in name):
            return f"{self.database} names may only hold characters of the basic multilingual plane"
        if self.no_control_characters and any(ord(c) < 0x20 or 0x7F <= ord(c) < 0xA0 for c in name):
            return f"{self.database} names may not contain control characters"
        if self.no_trailing_space and name.endswith(" "):
            return f"{self.database} names may not end with a space"
        if self.max_length is not None:
            size = len(name.encode("utf-8")) if self.length_unit == "bytes" else len(name)
            if size > self.max_length:
                return f"{size} {self.length_unit} is longer than {self.database}'s limit of {self.max_length}"
        return None

    def column_key(self, name: str) -> str:
        """The form under which the database compares column names: equal keys are one column."""
        return _fold(name, self.column_folding)

    def table_key(self, name: str) -> str:
        return _fold(name, self.table_folding)

    def column_keys(self, names: Iterable[str]) -> dict[str, str]:
        """Names by the form the database compares them in (`column_key`)."""
        return {self.column_key(name): name for name in names}

    def column_clash(self, names: Iterable[str], taken: Mapping[str, str]) -> tuple[str, str] | None:
        """The first of `names` that the database would take for another name, one of `taken` (from
        `column_keys`) or an earlier one of `names`, as (that name, the other); None when none is."""
        seen = dict(taken)
        for name in names:
            other = seen.setdefault(self.column_key(name), name)
            if other != name:
                return name, other
        return None


def _fold(name: str, folding: Folding) -> str:
    if folding == "ascii":
        return name.translate(_ASCII_LOWER)
    if folding == "unicode":
        return name.lower()  # not casefold(): MariaDB keeps "ß" and "ss" apart
    return name


_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


def check_table(rules: IdentifierRules, table: str) -> None:
    problem = rules.problem(table)
    prefix = rules.reserved_table_prefix
    if not problem and prefix and rules.table_key(table).startswith(rules.table_key(prefix)):
        problem = f"{rules.database} reserves names starting with {prefix!r}"
    if problem:
        raise MappingError(f"table name {_shown(table)} cannot be used: {problem}")


def check_schema(rules: IdentifierRules, schema: str) -> None:
    """The schema part of a schema-qualified table name (a MariaDB/MySQL database) fits the
    database's rules for names, as a table name does."""
    problem = rules.problem(schema)
    prefix = rules.reserved_schema_prefix
    if not problem and prefix and schema.startswith(prefix):
        problem = f"{rules.database} reserves schema names starting with {prefix!r}"
    if not problem and rules.table_key(schema) in {rules.table_key(name) for name in rules.reserved_schemas}:
        problem = f"{schema!r} is one of {rules.database}'s own schemas"
    if problem:
        raise MappingError(f"schema name {_shown(schema)} cannot be used: {problem}")


def check_columns(rules: IdentifierRules, table: str, names: Iterable[str]) -> None:
    """Every name fits, and no two are one column under the database's comparison."""
    names = list(names)
    for name in names:
        problem = rules.problem(name)
        if problem:
            raise MappingError(f"field {_shown(name)} cannot be a column of table {_shown(table)}: {problem}")
        if name in rules.reserved_columns:
            raise MappingError(
                f"field {_shown(name)} cannot be a column of table {_shown(table)}: "
                f"{rules.database} reserves the name for a system column"
            )
        if name in rules.staging_columns:
            raise MappingError(
                f"field {_shown(name)} cannot be a column of table {_shown(table)}: the sink's staging of "
                f"{rules.database} writes uses the name; rename the field (e.g. with a ReplaceField transform)"
            )
    clash = rules.column_clash(names, {})
    if clash is not None:
        name, other = clash
        raise MappingError(
            f"fields {_shown(other)} and {_shown(name)} would be one column of table {_shown(table)}: "
            f"{rules.database} compares column names without regard to case"
        )


_PLACEHOLDER_OR_DOT = re.compile(r"\$\{[^}]*\}|\.")


def split_table_name_format(table_name_format: str) -> tuple[str | None, str]:
    """SINK_TABLE_NAME_FORMAT as (schema part, table part): a dot written in the format itself,
    outside `${...}`, separates the schema from the table (`replica.${source.table}`); a dot that a
    placeholder's value brings stays in its name. ValueError for more than one such dot or an empty
    part (the message completes "SINK_TABLE_NAME_FORMAT: ...")."""
    dots = [m.start() for m in _PLACEHOLDER_OR_DOT.finditer(table_name_format) if m.group() == "."]
    if not dots:
        return None, table_name_format
    if len(dots) > 1:
        raise ValueError(
            f"{table_name_format!r} has {len(dots)} dots outside ${{...}}; at most one, between schema and "
            "table (schema.table, e.g. replica.${source.table})"
        )
    schema, table = table_name_format[: dots[0]], table_name_format[dots[0] + 1 :]
    if not schema.strip() or not table.strip():
        raise ValueError(
            f"{table_name_format!r}: a dot outside ${{...}} separates schema and table, and neither may be "
            "empty (e.g. replica.${source.table})"
        )
    return schema, table


def _shown(name: str) -> str:
    """A name for a message: quoted, escaped, and cut (with its full length said) when very long."""
    text = ascii(name) if len(name) <= 80 else ascii(name[:60]) + f"... ({len(name)} characters)"
    return text


__all__ = ["IdentifierRules", "check_columns", "check_schema", "check_table", "split_table_name_format"]
