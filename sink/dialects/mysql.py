"""MySQL / MariaDB (PyMySQL): INSERT ... ON DUPLICATE KEY UPDATE, DATETIME(n), bounded key strings.

MariaDB's JSON is LONGTEXT with a `json_valid` CHECK; reflection (`adapters/reflection.py`) finds
that check with `json_checks` so the column reads back as json, not as a string.
"""

from __future__ import annotations

import datetime as dt
import decimal
import functools
import math
import operator
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import mysql
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.expression import Executable
from sqlalchemy.sql.visitors import InternalTraversal

from ..errors import RecordRejected
from ..identifiers import IdentifierRules
from ..model import INTEGER_KINDS, Column, ColumnType, Kind, TableSpec
from ..schema import Evolution
from . import ddl
from .base import Dialect, Statement, write_condition
from .type_registry import (
    Binding,
    Reads,
    SaType,
    TypeEntry,
    TypeRegistry,
    decimal_bounds,
    decimal_digits,
    double_precision,
    length,
    plain,
    second_digits,
    second_digits_of,
    single_precision,
    uuid_text,
)
from .types import UuidText, refuse_inexact_decimal, refuse_nan, utc_naive

VARCHAR_MAX = 768  # utf8mb4 characters that still fit an InnoDB index key (3072 bytes)
VARBINARY_MAX = 3072
KEY_LENGTH = 255  # an unbounded string or bytes key column
# MySQL's largest DECIMAL (MariaDB takes a scale up to 38; 30 is what both do): the home of
# variable-scale decimals, and the bound of every other.
DECIMAL_MAX_PRECISION, DECIMAL_MAX_SCALE = DECIMAL_MAX = (65, 30)


def _string(ct: ColumnType) -> SaType:
    return mysql.VARCHAR(ct.length) if ct.length and ct.length <= VARCHAR_MAX else mysql.LONGTEXT()


def _bytes(ct: ColumnType) -> SaType:
    return mysql.VARBINARY(ct.length) if ct.length and ct.length <= VARBINARY_MAX else mysql.LONGBLOB()


# InnoDB cannot index TEXT/BLOB: key strings and bytes are always VARCHAR/VARBINARY. A key column
# differs from the column of its type only where that column is LONGTEXT/LONGBLOB, which reads back
# unbounded: evolution never widens a bounded key to unbounded, so a key column created from a type
# never looks narrower than that type (a VARBINARY(768) key for bytes(1000) would, and be altered
# to itself on every batch).
def _key_string(ct: ColumnType) -> SaType:
    return KeyString(min(ct.length or KEY_LENGTH, VARCHAR_MAX))


_NUMERIC_KINDS = frozenset({*INTEGER_KINDS, Kind.FLOAT32, Kind.FLOAT64, Kind.DECIMAL})
_TEXT_SAFE: frozenset[type] = frozenset({str, bytes, type(None)})
_NUMBER_SAFE: frozenset[type] = frozenset({int, bool, float, decimal.Decimal, type(None)})
# What the server reads whole as a number: ASCII digits only (Python's \d, strip() and Decimal also
# take Arabic-Indic or full-width digits and NBSP, which MariaDB refuses to INSERT and compares as 0).
_NUMBER_TEXT = re.compile(r"[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?", re.ASCII)
_SPACES = " \t\n\r\f\v"  # the spaces the server skips around a number
_INTEGER_DIGITS = 20  # 18446744073709551615: no integer column holds more
_EXACT_DIGITS = 65  # DECIMAL's most; a larger integral number stays a Decimal (int() of 1E+99999999 takes days)
KeyFix = Callable[[str, Any], Any]


def _exact_row(row: Mapping[str, Any], fixes: list[tuple[str, KeyFix, frozenset[type]]]) -> Mapping[str, Any]:
    changed = {name: fix(name, row.get(name)) for name, fix, safe in fixes if row.get(name).__class__ not in safe}
    return {**row, **changed} if changed else row


def _number_as_text(name: str, value: Any) -> Any:
    """The text an INSERT of the number stores in a string column: PyMySQL sends a bool as 1 or 0,
    an int and a Decimal as their str (a literal with an exponent, as a float, is a double), a float
    as a double literal, which the server writes as `_double_text` (1.0 as '1', 1e16 as '1e16'). A
    NaN or infinity stays as it is (the statement fails on it, as before)."""
    if isinstance(value, bool):
        return str(int(value))
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return _double_text(value) if math.isfinite(value) else value
    if isinstance(value, decimal.Decimal):
        if not value.is_finite():
            return value
        text = str(value)
        if "E" in text:  # a double literal to the server
            double = float(value)
            return _double_text(double) if math.isfinite(double) else value
        return text.lstrip("-") if value.is_zero() else text  # '-0' and '-0.0' are 0 and 0.0
    return value


def _double_text(value: float) -> str:
    """A finite double as MariaDB writes it into a string column of 34 characters or more (which
    the full form always fits; a narrower one rounds it to fit): the shortest digits that read back
    as the value (Python's repr), fixed-point unless the point lies more than 14 places before the
    first digit, or more than 15 after it and past the last one (1e15, 1.5e15, 1e-15 is
    0.000000000000001). Checked against 12,000 values on MariaDB 10.11."""
    if value == 0:
        return "0"
    sign, digits_, exponent = decimal.Decimal(repr(value)).normalize().as_tuple()
    assert isinstance(exponent, int)
    digits = "".join(map(str, digits_))
    point = len(digits) + exponent  # digits before the decimal point (negative: zeros after it)
    if point >= -14 and (point <= 15 or point < len(digits)):
        if point <= 0:
            body = "0." + "0" * -point + digits
        elif point >= len(digits):
            body = digits + "0" * (point - len(digits))
        else:
            body = digits[:point] + "." + digits[point:]
    else:
        body = digits[0] + ("." + digits[1:] if len(digits) > 1 else "") + f"e{point - 1}"
    return "-" + body if sign else body


def _text_as_number(name: str, value: Any, integer: bool = False) -> Any:
    """The number a key text spells for a numeric column (`integer`: an integer column), or the
    record's error: no plain ASCII number, or (`integer`) a fraction, which an INSERT would round
    to another row that a tombstone of the same key would not find, or more digits than any
    integer column holds."""
    if not isinstance(value, (str, bytes, bytearray)):
        return value
    text = (value.decode("utf-8", "replace") if not isinstance(value, str) else value).strip(_SPACES)
    if not _NUMBER_TEXT.fullmatch(text):
        raise RecordRejected(
            f"key column {name!r} is numeric and the record's key value is no number: MariaDB/MySQL "
            "would compare it by its numeric prefix and find another row",
            code="key value is no number",
            column=name,
        )
    number = decimal.Decimal(text)
    if number.is_zero():  # '0e999', '-0.0': no exponent to weigh
        return 0
    integral = number == number.to_integral_value()
    if integer and (not integral or number.adjusted() >= _INTEGER_DIGITS):
        raise RecordRejected(
            f"key column {name!r} is an integer and the record's key value is none it holds: "
            "MariaDB/MySQL would round or refuse it when written and find no row when deleting",
            code="key value is no integer",
            column=name,
        )
    return int(number) if integral and number.adjusted() < _EXACT_DIGITS else number


_integer_text_as_number: KeyFix = functools.partial(_text_as_number, integer=True)


class KeyString(mysql.VARCHAR):
    """A string key column: utf8mb4 in a binary collation, without padding where the server has one.
    Kafka keys are exact, but the default collations compare without regard to case and accents,
    so 'A' and 'a' would be one row; and utf8mb4_bin still pads with spaces, so 'a' and 'a ' were
    one row too (the second record's upsert overwrote the first's). MariaDB's utf8mb4_nopad_bin
    compares bytes; MySQL has no such collation before 8.0 (its utf8mb4_0900_bin is untested
    here), so it keeps utf8mb4_bin. Reads back as a VARCHAR of its length."""

    inherit_cache = True


@compiles(KeyString, "mysql")
def _key_string_ddl(element: KeyString, compiler: Any, **kw: Any) -> str:
    collation = "utf8mb4_nopad_bin" if getattr(compiler.dialect, "is_mariadb", False) else "utf8mb4_bin"
    return f"VARCHAR({element.length}) CHARACTER SET utf8mb4 COLLATE {collation}"


def _key_bytes(ct: ColumnType) -> SaType:
    return mysql.VARBINARY(min(ct.length or KEY_LENGTH, VARBINARY_MAX))


def _decimal(ct: ColumnType) -> SaType:
    """DECIMAL(p, s) within MySQL's 65 digits and 30 decimals. A larger precision is cut to 65, as
    Debezium's JDBC sink cuts it to the dialect's maximum (a value that needs more digits fails
    alone: 1264 out of range, in the sink's strict sql_mode); a larger scale is cut to 30 with the
    same whole digits, and a value with a digit past the 30th decimal is refused when bound
    (`refuse_inexact_decimal`): the server would round it without an error."""
    bounds = decimal_bounds(ct)
    if bounds is None:
        return mysql.DECIMAL(*DECIMAL_MAX)
    precision, scale = bounds
    if precision is None:
        return mysql.DECIMAL(DECIMAL_MAX_PRECISION, min(scale, DECIMAL_MAX_SCALE))
    cut = max(scale - DECIMAL_MAX_SCALE, 0)
    return mysql.DECIMAL(min(precision - cut, DECIMAL_MAX_PRECISION), scale - cut)


def _exact_decimal(value: Any) -> Any:
    return refuse_inexact_decimal(value, "MariaDB/MySQL", DECIMAL_MAX_SCALE)


def _time(ct: ColumnType) -> SaType:
    return mysql.TIME(fsp=second_digits(ct))


def _datetime(ct: ColumnType) -> SaType:
    # Both timestamp kinds: DATETIME has no zone, instants are stored as UTC. (TIMESTAMP ends in 2038.)
    return DateTimeText(fsp=second_digits(ct))


class DateTimeText(mysql.DATETIME):
    """DATETIME (the same DDL, reflected as DATETIME) whose naive datetimes reach PyMySQL as the
    text PyMySQL would write for them: it then only quotes a str (~0.4 us) where its datetime
    escaper formats field by field (~2 us). The statement's bytes are the same."""

    def bind_processor(self, dialect: Any) -> Any:
        inherited = super().bind_processor(dialect)
        if inherited is not None or dialect.driver != "pymysql":
            return inherited
        return pymysql_datetime_text if _same_as_pymysql() else None


def pymysql_datetime_text(value: Any) -> Any:
    """A naive datetime as PyMySQL's `escape_datetime` writes it (no fraction for microsecond 0),
    unquoted; any other value (None, aware, a subclass, a str) as it is, for PyMySQL as before."""
    if value.__class__ is dt.datetime and value.tzinfo is None:
        return value.isoformat(" ", "microseconds" if value.microsecond else "seconds")
    return value


@functools.cache
def _same_as_pymysql() -> bool:
    """Whether PyMySQL's own escaping of the samples is the quoted text (checked once per process:
    `bind_processor` is asked for every statement compiled)."""
    from pymysql.converters import escape_datetime, escape_str  # type: ignore[import-untyped]

    samples = (dt.datetime(1, 1, 1), dt.datetime(999, 12, 31, 23, 59, 59, 999999), dt.datetime(2024, 2, 29, 1, 2, 3, 4))
    return all(escape_str(pymysql_datetime_text(s)) == escape_datetime(s) for s in samples)


_digits = second_digits_of("fsp", undeclared=0)  # TIME, DATETIME without (n): whole seconds


def _document(_ct: ColumnType) -> SaType:
    return mysql.JSON(none_as_null=True)


def _bool_width(t: Any) -> bool:
    return bool(t.display_width == 1)  # BOOL is TINYINT(1)


def _not_bool_width(t: Any) -> bool:
    return not _bool_width(t)


def _finite(value: Any) -> Any:
    return refuse_nan(value, "MariaDB/MySQL", infinity=True)


# Every type of MariaDB and MySQL: the column each kind becomes, and the columns that read back as it.
TYPES = TypeRegistry(
    "MariaDB/MySQL",
    TypeEntry(Kind.INT8, plain(mysql.TINYINT), reads=(Reads(mysql.TINYINT, when=_not_bool_width),)),
    TypeEntry(Kind.INT16, plain(sa.SmallInteger), reads=(Reads(sa.SmallInteger),)),
    TypeEntry(Kind.INT32, plain(sa.Integer), reads=(Reads(sa.Integer), Reads(mysql.YEAR))),
    TypeEntry(Kind.INT64, plain(sa.BigInteger), reads=(Reads(sa.BigInteger),)),
    TypeEntry(
        Kind.FLOAT32,
        plain(mysql.FLOAT),
        reads=(Reads(mysql.FLOAT), Reads(sa.Float, when=single_precision)),
        bind=Binding(float, _finite),
    ),
    TypeEntry(
        Kind.FLOAT64,
        plain(lambda: mysql.DOUBLE(asdecimal=False)),  # MySQL's DOUBLE reads as Decimal by default
        reads=(Reads(sa.Double), Reads(sa.Float, when=double_precision)),
        bind=Binding(float, _finite),
    ),
    TypeEntry(Kind.BOOLEAN, plain(sa.Boolean), reads=(Reads(sa.Boolean), Reads(mysql.TINYINT, when=_bool_width))),
    # ENUM and SET are strings SQLAlchemy gives their longest member as length: read unbounded, so a
    # Debezium Enum/EnumSet string (unbounded) fits a hand-made one instead of widening it to text.
    TypeEntry(
        Kind.STRING,
        _string,
        key=_key_string,
        reads=(Reads(sa.Text), Reads(sa.String, keeps=length), Reads(mysql.ENUM), Reads(mysql.SET)),
    ),
    TypeEntry(
        Kind.BYTES,
        _bytes,
        key=_key_bytes,
        # VARBINARY(n) and BINARY(n) keep their length; TINYBLOB .. LONGBLOB hold any bytes.
        reads=(Reads(sa.VARBINARY, keeps=length), Reads(sa.BINARY, keeps=length), Reads(sa.types._Binary)),
    ),
    TypeEntry(
        Kind.DECIMAL,
        _decimal,
        reads=(Reads(sa.Numeric, keeps=decimal_digits),),
        bind=Binding(decimal.Decimal, _exact_decimal),
    ),
    TypeEntry(Kind.DATE, plain(sa.Date), reads=(Reads(sa.Date),)),
    # TIME(n), DATETIME(n): the type's fractional-second digits (6 when it names none).
    TypeEntry(Kind.TIME, _time, reads=(Reads(sa.Time, keeps=_digits),)),
    # An instant is written as naive UTC (DATETIME has no zone), so it reads back as local_timestamp.
    TypeEntry(Kind.TIMESTAMP, _datetime, bind=Binding(dt.datetime, utc_naive)),
    TypeEntry(Kind.LOCAL_TIMESTAMP, _datetime, reads=(Reads(sa.DateTime, keeps=_digits),)),  # DATETIME, TIMESTAMP
    # CHAR(36) in the dashed form; a native MariaDB UUID column made by hand reads back as uuid too.
    TypeEntry(Kind.UUID, plain(UuidText), reads=(Reads(UuidText), Reads(sa.Uuid), Reads(sa.CHAR, when=uuid_text))),
    # MariaDB's JSON is LONGTEXT with a json_valid CHECK: reflection finds the check (adapters/reflection.py).
    TypeEntry(Kind.JSON, _document, reads=(Reads(sa.JSON),)),
    TypeEntry(Kind.ARRAY, _document),  # a JSON array: reads back as json
)


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
        reserved_schemas=frozenset({"information_schema", "mysql", "performance_schema", "sys"}),
    )
    max_columns = 1017  # InnoDB's limit
    loose_string_keys = True  # MySQL's utf8mb4_bin pads; an existing table's collation may pad or ignore case
    types = TYPES

    def exact_keys(self, spec: TableSpec, rows: Sequence[Mapping[str, Any]]) -> Sequence[Mapping[str, Any]]:
        """MariaDB/MySQL compare a string column with a number as numbers, and a numeric column with
        a string by the string's numeric prefix: `DELETE … WHERE k = 0` deleted every string key
        without one ('alice', 'bob'), `WHERE id = 'abc'` row 0 and `'1_0'` row 1, as did UPDATE and
        the version probes. So a number for a string key goes as its text (what an INSERT stores),
        a string for a numeric key as the number it spells, or is the record's error when it
        spells none. The usual rows (keys of the column's own classes) pass with a C-level check
        per key column."""
        fixes: list[tuple[str, KeyFix, frozenset[type]]] = []
        fix: KeyFix
        for name in spec.primary_key:
            column = spec.column(name)
            kind = column.type.kind if column is not None else None
            if kind is Kind.STRING:
                fix, safe = _number_as_text, _TEXT_SAFE
            elif kind in INTEGER_KINDS:
                fix, safe = _integer_text_as_number, _NUMBER_SAFE
            elif kind in _NUMERIC_KINDS:
                fix, safe = _text_as_number, _NUMBER_SAFE
            else:
                continue
            if not set(map(type, map(operator.methodcaller("get", name), rows))) <= safe:
                fixes.append((name, fix, safe))
        if not fixes:
            return rows
        return [_exact_row(row, fixes) for row in rows]

    def _server_default(self, column: Column) -> sa.ColumnElement[Any] | None:
        default = super()._server_default(column)
        if default is None or not isinstance(self.types.column_type(column.type), _NO_LITERAL_DEFAULT):
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

    # -------------------------------------------------------------- statements

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


def json_checks(table_name: str, schema: str | None = None) -> Statement:
    """The CHECK clauses of a table of database `schema` (None: the current one; MariaDB adds
    `json_valid` to a JSON column), to compare with `json_check_clause`."""
    checks = sa.table(
        "CHECK_CONSTRAINTS",
        sa.column("CONSTRAINT_SCHEMA"),
        sa.column("TABLE_NAME"),
        sa.column("CHECK_CLAUSE"),
        schema="information_schema",
    )
    database = sa.func.database() if schema is None else sa.literal(schema)
    in_schema, table = checks.c["CONSTRAINT_SCHEMA"], checks.c["TABLE_NAME"]
    return sa.select(checks.c["CHECK_CLAUSE"]).where(in_schema == database, table == table_name)


def json_check_clause(column: str) -> str:
    """The check MariaDB gives a JSON column, as its catalogue writes it (the name in backticks).
    Compared with the catalogue's text, never executed."""
    return "json_valid(`{}`)".format(column.replace("`", "``"))


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
