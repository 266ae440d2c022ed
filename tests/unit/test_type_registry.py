"""Each dialect's type registry: one entry per kind, read backwards for reflection (the most
specific SQLAlchemy class decides), key-column variants, and the value bindings."""

from __future__ import annotations

import datetime as dt
import decimal
import math
import re
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.dialects import mysql, postgresql
from sqlalchemy.dialects import sqlite as sa_sqlite

from sink.dialects import offline
from sink.dialects.type_registry import Binding, Reads, TypeEntry, TypeRegistry, length, plain, uuid_text
from sink.dialects.types import DecimalText, JsonText, UtcDateTime
from sink.errors import RecordRejected
from sink.model import ColumnType, Kind

BACKENDS = ("postgresql", "mysql", "sqlite")


def ct(kind: Kind, **details: Any) -> ColumnType:
    return ColumnType(kind, **details)


# What each database's reflection gives for a column type, and the neutral type it reads back as
# (also for tables the sink did not create).
REFLECTED: dict[str, list[tuple[sa.types.TypeEngine[Any], ColumnType]]] = {
    "postgresql": [
        (postgresql.SMALLINT(), ct(Kind.INT16)),
        (postgresql.INTEGER(), ct(Kind.INT32)),
        (postgresql.BIGINT(), ct(Kind.INT64)),
        (postgresql.REAL(), ct(Kind.FLOAT32)),
        (postgresql.DOUBLE_PRECISION(), ct(Kind.FLOAT64)),
        (sa.Float(precision=10), ct(Kind.FLOAT32)),
        (sa.Float(precision=30), ct(Kind.FLOAT64)),
        (postgresql.NUMERIC(), ct(Kind.DECIMAL)),
        (postgresql.NUMERIC(10, 2), ct(Kind.DECIMAL, precision=10, scale=2)),
        (postgresql.BOOLEAN(), ct(Kind.BOOLEAN)),
        (postgresql.TEXT(), ct(Kind.STRING)),
        (postgresql.VARCHAR(20), ct(Kind.STRING, length=20)),
        (postgresql.CHAR(36), ct(Kind.STRING, length=36)),  # PostgreSQL has a UUID type: CHAR(36) is text
        (postgresql.BYTEA(), ct(Kind.BYTES)),
        (postgresql.DATE(), ct(Kind.DATE)),
        # Fractional-second digits are kept; a column declared without has PostgreSQL's 6.
        (postgresql.TIME(timezone=True), ct(Kind.TIME, precision=6)),
        (postgresql.TIME(precision=3), ct(Kind.TIME, precision=3)),
        (postgresql.TIMESTAMP(), ct(Kind.LOCAL_TIMESTAMP, precision=6)),
        (postgresql.TIMESTAMP(precision=0), ct(Kind.LOCAL_TIMESTAMP, precision=0)),
        (postgresql.TIMESTAMP(timezone=True), ct(Kind.TIMESTAMP, precision=6)),
        (postgresql.TIMESTAMP(timezone=True, precision=3), ct(Kind.TIMESTAMP, precision=3)),
        (postgresql.UUID(), ct(Kind.UUID)),
        (postgresql.JSON(), ct(Kind.JSON)),
        (postgresql.JSONB(), ct(Kind.JSON)),
        (postgresql.ARRAY(postgresql.INTEGER()), ct(Kind.ARRAY, item=ct(Kind.INT32))),
        (postgresql.ARRAY(postgresql.NUMERIC(5, 2)), ct(Kind.ARRAY, item=ct(Kind.DECIMAL, precision=5, scale=2))),
        (postgresql.ARRAY(postgresql.JSONB()), ct(Kind.ARRAY, item=ct(Kind.JSON))),
        (
            postgresql.ARRAY(postgresql.TIMESTAMP(precision=3)),
            ct(Kind.ARRAY, item=ct(Kind.LOCAL_TIMESTAMP, precision=3)),
        ),
        (postgresql.INTERVAL(), ct(Kind.STRING)),  # nothing reads it: text
        (postgresql.MONEY(), ct(Kind.STRING)),
    ],
    "mysql": [
        (mysql.TINYINT(display_width=1), ct(Kind.BOOLEAN)),  # BOOL
        (mysql.TINYINT(display_width=4), ct(Kind.INT8)),
        (mysql.TINYINT(), ct(Kind.INT8)),
        (mysql.SMALLINT(), ct(Kind.INT16)),
        (mysql.MEDIUMINT(), ct(Kind.INT32)),
        (mysql.INTEGER(), ct(Kind.INT32)),
        (mysql.YEAR(), ct(Kind.INT32)),
        (mysql.BIGINT(), ct(Kind.INT64)),
        (mysql.FLOAT(), ct(Kind.FLOAT32)),
        (mysql.DOUBLE(), ct(Kind.FLOAT64)),
        (mysql.DECIMAL(10, 2), ct(Kind.DECIMAL, precision=10, scale=2)),
        (mysql.DECIMAL(65, 30), ct(Kind.DECIMAL, precision=65, scale=30)),
        (mysql.CHAR(36), ct(Kind.UUID)),
        (mysql.CHAR(5), ct(Kind.STRING, length=5)),
        (mysql.VARCHAR(20), ct(Kind.STRING, length=20)),
        (mysql.LONGTEXT(), ct(Kind.STRING)),
        (mysql.TINYTEXT(), ct(Kind.STRING)),
        (mysql.LONGBLOB(), ct(Kind.BYTES)),
        (mysql.BLOB(), ct(Kind.BYTES)),
        (mysql.VARBINARY(16), ct(Kind.BYTES, length=16)),
        (mysql.BINARY(16), ct(Kind.BYTES, length=16)),
        (mysql.JSON(), ct(Kind.JSON)),
        (mysql.DATE(), ct(Kind.DATE)),
        # Fractional-second digits are kept; a column declared without has none (MySQL's default).
        (mysql.TIME(fsp=6), ct(Kind.TIME, precision=6)),
        (mysql.TIME(), ct(Kind.TIME, precision=0)),
        (mysql.DATETIME(fsp=6), ct(Kind.LOCAL_TIMESTAMP, precision=6)),
        (mysql.DATETIME(fsp=3), ct(Kind.LOCAL_TIMESTAMP, precision=3)),
        (mysql.DATETIME(), ct(Kind.LOCAL_TIMESTAMP, precision=0)),
        (mysql.TIMESTAMP(fsp=6), ct(Kind.LOCAL_TIMESTAMP, precision=6)),
        (sa.Uuid(), ct(Kind.UUID)),  # MariaDB's native UUID
        (mysql.ENUM("a", "bb"), ct(Kind.STRING)),  # unbounded: a Debezium Enum string fits it as it is
        (mysql.SET("a", "bb"), ct(Kind.STRING)),
        (mysql.BIT(3), ct(Kind.STRING)),
    ],
    "sqlite": [
        (sa_sqlite.INTEGER(), ct(Kind.INT64)),  # every integer is 64-bit, whatever the declared name
        (sa_sqlite.SMALLINT(), ct(Kind.INT64)),
        (sa.BIGINT(), ct(Kind.INT64)),
        (sa_sqlite.REAL(), ct(Kind.FLOAT64)),
        (sa_sqlite.FLOAT(), ct(Kind.FLOAT64)),
        (sa.DOUBLE(), ct(Kind.FLOAT64)),
        (DecimalText(), ct(Kind.DECIMAL)),
        (sa_sqlite.NUMERIC(), ct(Kind.DECIMAL)),
        (sa_sqlite.DECIMAL(10, 2), ct(Kind.DECIMAL, precision=10, scale=2)),
        (JsonText(), ct(Kind.JSON)),
        (sa_sqlite.JSON(), ct(Kind.JSON)),
        (sa_sqlite.BOOLEAN(), ct(Kind.BOOLEAN)),
        (sa_sqlite.TEXT(), ct(Kind.STRING)),
        (sa_sqlite.VARCHAR(20), ct(Kind.STRING)),  # not enforced: no length
        (sa_sqlite.CHAR(36), ct(Kind.UUID)),
        (sa_sqlite.CHAR(5), ct(Kind.STRING)),
        (sa_sqlite.BLOB(), ct(Kind.BYTES)),
        (sa_sqlite.DATE(), ct(Kind.DATE)),
        (sa_sqlite.TIME(), ct(Kind.TIME)),
        (sa_sqlite.DATETIME(), ct(Kind.LOCAL_TIMESTAMP)),
        (sa_sqlite.TIMESTAMP(), ct(Kind.TIMESTAMP)),
        (UtcDateTime(), ct(Kind.TIMESTAMP)),
        (sa.types.NullType(), ct(Kind.STRING)),  # a column declared without type
    ],
}


@pytest.mark.parametrize(
    ("backend", "sa_type", "expected"),
    [(b, t, e) for b, cases in REFLECTED.items() for t, e in cases],
    ids=lambda v: v if isinstance(v, str) else None,
)
def test_reflected_type_reads_back_as(backend: str, sa_type: sa.types.TypeEngine[Any], expected: ColumnType) -> None:
    assert offline(backend).types.neutral_type(sa_type) == expected


@pytest.mark.parametrize("backend", BACKENDS)
def test_one_entry_per_kind(backend: str) -> None:
    assert sorted(offline(backend).types.entries) == sorted(Kind)


# Kinds whose column reads back as a kind declared otherwise: SQLite's integer and float names all
# store a 64-bit integer or an 8-byte float, so a table made from a reflected one says BIGINT, DOUBLE.
REDECLARED = {
    "postgresql": set(),
    "mysql": set(),
    "sqlite": {Kind.INT8, Kind.INT16, Kind.INT32, Kind.FLOAT32},
}


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_created_column_reads_back_as_a_type_with_the_same_column(backend: str) -> None:
    """What a column reads back as is stable, and (but for SQLite's names) declares the very column
    it came from: evolution compares in these terms and never sees a change that is not there."""
    types = offline(backend).types
    redeclared = set()
    for kind in Kind:
        column_type = ct(kind, item=ct(Kind.INT64) if kind is Kind.ARRAY else None)
        stored = types.storage_type(column_type)
        assert types.storage_type(stored) == stored, kind
        if repr(types.column_type(stored)) != repr(types.column_type(column_type)):
            redeclared.add(kind)
    assert redeclared == REDECLARED[backend]


def test_mysql_key_columns_are_bounded() -> None:
    types, dialect = offline("mysql").types, offline("mysql").sa_dialect

    def sql(t: sa.types.TypeEngine[Any]) -> str:
        return str(t.compile(dialect=dialect))

    exact = " CHARACTER SET utf8mb4 COLLATE utf8mb4_bin"  # Kafka keys are exact: no case-blind collation
    assert sql(types.key_type(ct(Kind.STRING))) == "VARCHAR(255)" + exact
    assert sql(types.key_type(ct(Kind.STRING, length=2000))) == "VARCHAR(768)" + exact
    assert sql(types.key_type(ct(Kind.BYTES))) == "VARBINARY(255)"
    assert sql(types.key_type(ct(Kind.BYTES, length=1000))) == "VARBINARY(1000)"
    assert sql(types.key_type(ct(Kind.BYTES, length=5000))) == "VARBINARY(3072)"
    assert sql(types.key_type(ct(Kind.INT64))) == "BIGINT"  # no key variant: the column type
    assert sql(types.column_type(ct(Kind.STRING))) == "LONGTEXT"


def test_mariadb_string_keys_are_not_padded() -> None:
    """utf8mb4_bin pads with spaces ('a' and 'a ' one row); MariaDB has a binary NO PAD collation."""
    types, dialect = offline("mysql").types, mysql.dialect()
    dialect.is_mariadb = True
    key = types.key_type(ct(Kind.STRING))
    assert str(key.compile(dialect=dialect)) == "VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_nopad_bin"
    assert types.neutral_type(key) == ct(Kind.STRING, length=255)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("kind", [Kind.STRING, Kind.BYTES])
def test_a_key_column_differs_only_where_the_column_would_be_unbounded(backend: str, kind: Kind) -> None:
    """`storage_type` knows no keys: a key column reads back as its type's column does, but where
    that column is unbounded (LONGTEXT), which evolution never widens a bounded key to. Otherwise a
    key column would look narrower than its own type and be altered on every batch."""
    types = offline(backend).types
    for bound in (None, 1, 255, 256, 768, 769, 1000, 3072, 3073, 100_000):
        column_type = ct(kind, length=bound)
        key_reads = types.neutral_type(types.key_type(column_type))
        stored = types.storage_type(column_type)
        assert key_reads == stored or stored.length is None, (column_type, key_reads, stored)


def test_postgres_key_columns_are_the_column_types() -> None:
    types = offline("postgresql").types
    assert repr(types.key_type(ct(Kind.STRING))) == repr(types.column_type(ct(Kind.STRING))) == "Text()"


# ------------------------------------------------------------------------------ binding


def test_mysql_binding_refuses_nan_and_infinity_and_makes_instants_naive_utc() -> None:
    dialect = offline("mysql")
    assert dialect.bind_classes == {float, dt.datetime, decimal.Decimal}
    for value in (math.nan, math.inf, -math.inf):
        with pytest.raises(RecordRejected, match="MariaDB/MySQL cannot store the float"):
            dialect.bind(value)
    zoned = dt.datetime(2024, 1, 1, 12, tzinfo=dt.timezone(dt.timedelta(hours=2)))
    assert dialect.bind(zoned) == dt.datetime(2024, 1, 1, 10)
    assert dialect.bind(1.5) == 1.5 and dialect.bind("x") == "x" and dialect.bind(None) is None


@pytest.mark.parametrize(
    "value",
    [
        "1.5",
        "-12345678901234567890123456789012345.123456789012345678901234567890",  # 65 digits, 30 decimals
        "1." + "0" * 40,  # zeros past the 30th decimal are no digits lost
        "0E-40",
        "1.23E+40",
    ],
)
def test_mysql_binds_decimals_it_holds_exactly_as_they_are(value: str) -> None:
    number = decimal.Decimal(value)
    assert offline("mysql").bind(number) is number


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("0." + "0" * 30 + "1", "it has 31 digits after the point, a DECIMAL column at most 30"),
        ("1." + "3" * 38 + "000", "it has 38 digits after the point"),
        ("NaN", "cannot store the decimal NaN"),
        ("-Infinity", "cannot store the decimal -Infinity"),
    ],
)
def test_mysql_refuses_a_decimal_the_server_would_round(value: str, reason: str) -> None:
    """MariaDB rounds a decimal past the column's scale with a note, not an error, even in strict
    mode, and no DECIMAL column of the sink has more than 30 decimals: the row fails instead."""
    with pytest.raises(RecordRejected, match=re.escape(reason)):
        offline("mysql").bind(decimal.Decimal(value))


def test_sqlite_binding_refuses_nan_only() -> None:
    dialect = offline("sqlite")
    assert dialect.bind_classes == {float, dt.datetime}
    with pytest.raises(RecordRejected, match="SQLite cannot store the float nan"):
        dialect.bind(math.nan)
    assert dialect.bind(math.inf) == math.inf


def test_postgres_binds_values_as_they_are() -> None:
    dialect = offline("postgresql")
    zoned = dt.datetime(2024, 1, 1, 12, tzinfo=dt.UTC)
    assert dialect.bind_classes == frozenset()
    assert dialect.bind(zoned) is zoned and math.isnan(dialect.bind(math.nan))


def test_binding_reaches_subclasses_of_the_value_class() -> None:
    class Reading(float):
        pass

    with pytest.raises(RecordRejected):
        offline("mysql").bind(Reading("nan"))


# ------------------------------------------------------------------------------ the registry itself


def entries(**reads: tuple[Reads, ...]) -> list[TypeEntry]:
    return [TypeEntry(kind, plain(sa.Text), reads=reads.get(kind.name, ())) for kind in Kind]


def test_the_most_specific_class_decides_whatever_the_order_of_the_table() -> None:
    registry = TypeRegistry(
        "test",
        *entries(
            FLOAT32=(Reads(sa.Float),),  # a base class, listed before its subclass
            FLOAT64=(Reads(sa.Double),),
            UUID=(Reads(sa.CHAR, when=uuid_text),),
            STRING=(Reads(sa.String, keeps=length),),
        ),
    )
    assert registry.neutral_type(sa.Double()) == ct(Kind.FLOAT64)
    assert registry.neutral_type(sa.REAL()) == ct(Kind.FLOAT32)
    assert registry.neutral_type(sa.CHAR(36)) == ct(Kind.UUID)
    assert registry.neutral_type(sa.CHAR(5)) == ct(Kind.STRING, length=5), "a condition that fails falls through"
    assert registry.neutral_type(sa.Date()) == ct(Kind.STRING), "what no entry reads is text"


def test_a_registry_names_a_missing_or_repeated_kind() -> None:
    with pytest.raises(ValueError, match=r"one entry per kind \(missing: uuid; twice: none\)"):
        TypeRegistry("test", *(e for e in entries() if e.kind is not Kind.UUID))
    with pytest.raises(ValueError, match=r"\(missing: none; twice: date\)"):
        TypeRegistry("test", *entries(), TypeEntry(Kind.DATE, plain(sa.Date)))


def test_a_registry_refuses_two_bindings_for_one_value_class() -> None:
    table = entries()
    table[0] = TypeEntry(table[0].kind, table[0].column, bind=Binding(float, abs))
    table[1] = TypeEntry(table[1].kind, table[1].column, bind=Binding(float, round))
    with pytest.raises(ValueError, match="two bindings for float values"):
        TypeRegistry("test", *table)
