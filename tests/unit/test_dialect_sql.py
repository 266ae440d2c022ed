"""The SQL each dialect builds, compiled with SQLAlchemy's own dialects: quoting, upserts, binds."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.dialects import mysql, postgresql, sqlite

from sink.adapters.executemany import compile_for_driver, row_binder
from sink.dialects import Dialect, MysqlDialect, PostgresDialect, SqliteDialect, for_backend
from sink.model import Column, ColumnType, Kind, TableSpec
from sink.schema import Evolution

INT64, STRING = ColumnType(Kind.INT64), ColumnType(Kind.STRING)
SPEC = TableSpec(
    "Select",
    (
        Column("user id", INT64, nullable=False),
        Column('x"y', STRING),
        Column("Über", STRING),
        Column("order", INT64),
    ),
    ("user id",),
)
COLUMNS = SPEC.column_names
ROW = {"user id": 41, 'x"y': "'; DROP TABLE users; --", "Über": "grüße", "order": 7}

PG = PostgresDialect(postgresql.psycopg.dialect())
LITE = SqliteDialect(sqlite.dialect())
MY = MysqlDialect(mysql.pymysql.dialect())


def sql(dialect: Dialect, statement: Any) -> str:
    return " ".join(str(statement.compile(dialect=dialect.sa_dialect)).split())


def compiled(dialect: Dialect, statement: Any) -> Any:
    return statement.compile(dialect=dialect.sa_dialect)


def quote(dialect: Dialect, identifier: str) -> str:
    return str(dialect.sa_dialect.identifier_preparer.quote_identifier(identifier))


# One change at a time, through `evolve_statements` as the store applies an evolution.


def add_column(dialect: Dialect, spec: TableSpec, column: Column) -> Any:
    return single_change(dialect, spec, column, Evolution(add=(column,)))


def alter_type(dialect: Dialect, spec: TableSpec, column: Column, new_type: ColumnType) -> Any:
    return single_change(dialect, spec, column, Evolution(widen=((column, new_type),)))


def drop_not_null(dialect: Dialect, spec: TableSpec, column: Column) -> Any:
    return single_change(dialect, spec, column, Evolution(drop_not_null=(column.name,)))


def single_change(dialect: Dialect, spec: TableSpec, column: Column, evolution: Evolution) -> Any:
    if not evolution.add:  # the column as given, whatever the spec says of it
        spec = dataclasses.replace(spec, columns=tuple(column if c.name == column.name else c for c in spec.columns))
    (statement,) = dialect.evolve_statements(spec, evolution)
    return statement


# ------------------------------------------------------------------------------ quoting


def test_postgres_identifiers() -> None:
    assert [quote(PG, n) for n in ("Select", "user id", 'x"y', "Über", "order", "plain")] == [
        '"Select"',
        '"user id"',
        '"x""y"',
        '"Über"',
        '"order"',
        '"plain"',
    ], "every identifier is quoted, case kept"


def test_mysql_identifiers() -> None:
    assert [quote(MY, n) for n in ("Select", "user id", 'x"y', "a`b")] == ["`Select`", "`user id`", '`x"y`', "`a``b`"]


def test_sqlite_identifiers() -> None:
    quoted = [quote(LITE, n) for n in ("Select", "user id", 'x"y', "Über")]
    assert quoted == ['"Select"', '"user id"', '"x""y"', '"Über"']


@pytest.mark.parametrize(
    ("dialect", "names"),
    [
        (PG, ['"Select"', '"user id"', '"x""y"', '"Über"', '"order"']),
        (LITE, ['"Select"', '"user id"', '"x""y"', '"Über"', '"order"']),
        (MY, ["`Select`", "`user id`", '`x"y`', "`Über`", "`order`"]),
    ],
)
def test_create_table_quotes_everything(dialect: Dialect, names: list[str]) -> None:
    text = sql(dialect, dialect.create_table(SPEC))
    table, *columns = names
    assert text.startswith(f"CREATE TABLE IF NOT EXISTS {table} (")
    for column in columns:
        assert f"{column} " in text
    assert f"PRIMARY KEY ({columns[0]})" in text
    assert f"{columns[0]} BIGINT NOT NULL" in text


# ------------------------------------------------------------------------------ DML


def test_postgres_insert() -> None:
    text = sql(PG, PG.insert(PG.table(SPEC)))
    assert text.startswith('INSERT INTO "Select" ("user id", "x""y", "Über", "order") VALUES (')


def test_postgres_upsert_is_on_conflict_do_update() -> None:
    text = sql(PG, PG.upsert(PG.table(SPEC), SPEC.primary_key))
    assert text.startswith('INSERT INTO "Select" ("user id", "x""y", "Über", "order") VALUES (')
    assert text.endswith(
        'ON CONFLICT ("user id") DO UPDATE SET "x""y" = excluded."x""y", "Über" = excluded."Über", '
        '"order" = excluded."order"'
    )


def test_sqlite_upsert_is_on_conflict_do_update_never_replace() -> None:
    text = sql(LITE, LITE.upsert(LITE.table(SPEC), SPEC.primary_key))
    assert text == (
        'INSERT INTO "Select" ("user id", "x""y", "Über", "order") VALUES (?, ?, ?, ?) '
        'ON CONFLICT ("user id") DO UPDATE SET "x""y" = excluded."x""y", "Über" = excluded."Über", '
        '"order" = excluded."order"'
    )
    assert "REPLACE" not in text.upper()


def test_mysql_upsert_is_on_duplicate_key_update() -> None:
    text = sql(MY, MY.upsert(MY.table(SPEC), SPEC.primary_key))
    assert text.startswith('INSERT INTO `Select` (`user id`, `x"y`, `Über`, `order`) VALUES (%s, %s, %s, %s)')
    assert "ON DUPLICATE KEY UPDATE" in text
    for name in ('`x"y`', "`Über`", "`order`"):
        assert f"{name} = VALUES({name})" in text or f"{name} = new.{name}" in text
    assert "`user id` = " not in text.split("ON DUPLICATE KEY UPDATE")[1], "the key is not updated"
    assert "REPLACE" not in text.upper()


@pytest.mark.parametrize("dialect", [PG, LITE, MY], ids=lambda d: d.name)
def test_upsert_of_key_only_table_does_nothing_on_conflict(dialect: Dialect) -> None:
    spec = TableSpec(
        "k", (Column("user id", INT64, nullable=False), Column("Über", STRING, nullable=False)), ("user id", "Über")
    )
    text = sql(dialect, dialect.upsert(dialect.table(spec), spec.primary_key))
    if dialect is MY:
        assert text.startswith("INSERT INTO `k` (`user id`, `Über`) VALUES (%s, %s) ON DUPLICATE KEY UPDATE ")
    else:
        assert text.startswith('INSERT INTO "k" ("user id", "Über") VALUES (')
        assert text.endswith('ON CONFLICT ("user id", "Über") DO NOTHING')


@pytest.mark.parametrize(
    ("dialect", "expected"),
    [
        (LITE, 'UPDATE "Select" SET "x""y"=?, "Über"=?, "order"=? WHERE "Select"."user id" = ?'),
        (MY, 'UPDATE `Select` SET `x"y`=%s, `Über`=%s, `order`=%s WHERE `Select`.`user id` = %s'),
    ],
)
def test_update(dialect: Dialect, expected: str) -> None:
    assert sql(dialect, dialect.update(dialect.table(SPEC), SPEC.primary_key, COLUMNS)) == expected


def test_postgres_update_and_delete() -> None:
    update = sql(PG, PG.update(PG.table(SPEC), SPEC.primary_key, COLUMNS))
    assert update.startswith('UPDATE "Select" SET "x""y"=%(')
    assert 'WHERE "Select"."user id" = %(' in update
    delete = sql(PG, PG.delete(PG.table(SPEC), SPEC.primary_key))
    assert delete.startswith('DELETE FROM "Select" WHERE "Select"."user id" = %(')


@pytest.mark.parametrize(
    ("dialect", "expected"),
    [
        (LITE, 'DELETE FROM "Select" WHERE "Select"."user id" = ?'),
        (MY, "DELETE FROM `Select` WHERE `Select`.`user id` = %s"),
    ],
)
def test_delete(dialect: Dialect, expected: str) -> None:
    assert sql(dialect, dialect.delete(dialect.table(SPEC), SPEC.primary_key)) == expected


# ------------------------------------------------------------------------------ values are binds


def driver_parameters(dialect: Dialect, statement: Any, column_keys: Any, binds: dict[str, str], row: Any) -> Any:
    """The SQL and the parameters the database adapter sends for `row` (see sink.adapters.executemany)."""
    driver = compile_for_driver(statement, dialect.sa_dialect, column_keys, binds)
    return driver.sql, row_binder(driver, dialect.bind, dialect.bind_classes, set(COLUMNS))(row)


def bound_values(parameters: Any) -> list[str]:
    return sorted(map(str, parameters.values() if isinstance(parameters, dict) else parameters))


@pytest.mark.parametrize("dialect", [PG, LITE, MY], ids=lambda d: d.name)
def test_values_are_bind_parameters(dialect: Dialect) -> None:
    table = dialect.table(SPEC)
    for statement in (dialect.insert(table), dialect.upsert(table, SPEC.primary_key)):
        text, params = driver_parameters(dialect, statement, COLUMNS, {}, ROW)
        assert "DROP TABLE" not in text and "grüße" not in text and "41" not in text
        assert bound_values(params) == sorted(map(str, ROW.values()))
    update = dialect.update(table, SPEC.primary_key, COLUMNS)
    binds = {f"v{i}": c for i, c in enumerate(COLUMNS)} | {"k0": "user id"}
    _, params = driver_parameters(dialect, update, (), binds, ROW)
    assert bound_values(params) == sorted(map(str, ROW.values()))
    delete = dialect.delete(table, SPEC.primary_key)
    _, params = driver_parameters(dialect, delete, (), {"k0": "user id"}, {"user id": 41})
    assert bound_values(params) == ["41"]


@pytest.mark.parametrize("dialect", [PG, LITE, MY], ids=lambda d: d.name)
def test_columns_whose_names_collide_after_bind_escaping_stay_apart(dialect: Dialect) -> None:
    spec = TableSpec("t", (Column("user id", INT64, nullable=False), Column("user_id", STRING)), ("user id",))
    statement = dialect.upsert(dialect.table(spec), spec.primary_key)
    text, params = driver_parameters(dialect, statement, spec.column_names, {}, {"user id": 1, "user_id": "one"})
    assert bound_values(params) == ["1", "one"]
    if isinstance(params, dict):  # named parameters: each is in the SQL under the name it is sent with
        assert all(f"%({name})s" in text for name in params)


# ------------------------------------------------------------------------------ DDL


@pytest.mark.parametrize(
    ("dialect", "expected"),
    [
        (PG, 'ALTER TABLE "Select" ADD COLUMN "new col" TEXT'),
        (LITE, 'ALTER TABLE "Select" ADD COLUMN "new col" TEXT'),
        (MY, "ALTER TABLE `Select` ADD COLUMN `new col` LONGTEXT"),
    ],
)
def test_add_column(dialect: Dialect, expected: str) -> None:
    assert sql(dialect, add_column(dialect, SPEC, Column("new col", STRING))) == expected


def test_postgres_alter_type_and_drop_not_null() -> None:
    column = Column('x"y', ColumnType(Kind.INT32), nullable=False)
    assert sql(PG, alter_type(PG, SPEC, column, INT64)) == 'ALTER TABLE "Select" ALTER COLUMN "x""y" TYPE BIGINT'
    assert sql(PG, drop_not_null(PG, SPEC, column)) == 'ALTER TABLE "Select" ALTER COLUMN "x""y" DROP NOT NULL'


def test_mysql_alter_type_and_drop_not_null() -> None:
    column = Column("Über", ColumnType(Kind.INT32), nullable=False)
    assert sql(MY, alter_type(MY, SPEC, column, INT64)) == "ALTER TABLE `Select` MODIFY COLUMN `Über` BIGINT NOT NULL"
    assert sql(MY, drop_not_null(MY, SPEC, column)) == "ALTER TABLE `Select` MODIFY COLUMN `Über` INTEGER NULL"


def test_for_backend() -> None:
    assert isinstance(for_backend("postgresql", postgresql.dialect()), PostgresDialect)
    assert isinstance(for_backend("mariadb", mysql.dialect()), MysqlDialect)
    assert isinstance(for_backend("sqlite", sqlite.dialect()), SqliteDialect)
    with pytest.raises(ValueError, match="unsupported database 'oracle'"):
        for_backend("oracle", sa.engine.default.DefaultDialect())


# ------------------------------------------------------------------------------ declared digits

TEMPORAL = TableSpec(
    "t",
    (
        Column("id", INT64, nullable=False),
        Column("at_time", ColumnType(Kind.TIME, precision=3)),
        Column("at", ColumnType(Kind.TIMESTAMP, precision=0)),
        Column("local", ColumnType(Kind.LOCAL_TIMESTAMP, precision=3)),
        Column("unnamed", ColumnType(Kind.LOCAL_TIMESTAMP)),  # no digits named: microseconds
        Column("wide", ColumnType(Kind.TIMESTAMP, precision=9)),  # past microseconds: what values keep
    ),
    ("id",),
)


@pytest.mark.parametrize(
    ("dialect", "expected"),
    [
        (
            PG,
            '"at_time" TIME(3) WITHOUT TIME ZONE, "at" TIMESTAMP(0) WITH TIME ZONE, '
            '"local" TIMESTAMP(3) WITHOUT TIME ZONE, "unnamed" TIMESTAMP(6) WITHOUT TIME ZONE, '
            '"wide" TIMESTAMP(6) WITH TIME ZONE',
        ),
        (MY, "`at_time` TIME(3), `at` DATETIME, `local` DATETIME(3), `unnamed` DATETIME(6), `wide` DATETIME(6)"),
        (LITE, '"at_time" TIME, "at" TIMESTAMP, "local" DATETIME, "unnamed" DATETIME, "wide" TIMESTAMP'),
    ],
    ids=lambda v: v.name if isinstance(v, Dialect) else None,
)
def test_time_columns_declare_the_types_fractional_second_digits(dialect: Dialect, expected: str) -> None:
    text = sql(dialect, dialect.create_table(TEMPORAL))
    assert expected in text, text


@pytest.mark.parametrize(
    ("dialect", "expected"),
    [
        (PG, 'ALTER TABLE "t" ALTER COLUMN "local" TYPE TIMESTAMP(6) WITHOUT TIME ZONE'),
        (MY, "ALTER TABLE `t` MODIFY COLUMN `local` DATETIME(6) NULL"),
    ],
    ids=lambda v: v.name if isinstance(v, Dialect) else None,
)
def test_more_fractional_second_digits_widen_the_column(dialect: Dialect, expected: str) -> None:
    column = TEMPORAL.columns[3]
    wider = dialect.storage_type(ColumnType(Kind.LOCAL_TIMESTAMP, precision=6))
    assert sql(dialect, alter_type(dialect, TEMPORAL, column, wider)) == expected


def decimal_column(precision: int | None, scale: int | None) -> ColumnType:
    return ColumnType(Kind.DECIMAL, precision=precision, scale=scale)


# (precision, scale) -> the column each database declares. Past the maximum the precision is cut as
# Debezium's JDBC sink cuts it (PostgreSQL 1000 digits, MariaDB/MySQL 65); MariaDB/MySQL cut a
# scale past 30 keeping the whole digits; a negative scale is whole numbers, a scale past the
# precision needs that many digits.
DECIMALS = [
    ((10, 2), "NUMERIC(10, 2)", "DECIMAL(10, 2)"),
    ((65, 30), "NUMERIC(65, 30)", "DECIMAL(65, 30)"),
    ((80, 10), "NUMERIC(80, 10)", "DECIMAL(65, 10)"),
    ((40, 35), "NUMERIC(40, 35)", "DECIMAL(35, 30)"),
    ((100, 40), "NUMERIC(100, 40)", "DECIMAL(65, 30)"),
    ((1000, 2), "NUMERIC(1000, 2)", "DECIMAL(65, 2)"),
    ((1200, 10), "NUMERIC(1000, 10)", "DECIMAL(65, 10)"),
    ((2000, 1500), "NUMERIC", "DECIMAL(65, 30)"),  # no NUMERIC(p, s) holds 1500 decimals: unconstrained
    ((5, -2), "NUMERIC(7, 0)", "DECIMAL(7, 0)"),
    ((3, 5), "NUMERIC(5, 5)", "DECIMAL(5, 5)"),
    ((38, None), "NUMERIC", "DECIMAL(65, 30)"),  # variable scale
    ((None, 4), "NUMERIC(1000, 4)", "DECIMAL(65, 4)"),  # no precision given: the maximum
    ((0, 0), "NUMERIC(1000, 0)", "DECIMAL(65, 0)"),
]


@pytest.mark.parametrize(
    ("digits", "postgres", "mysql_"), DECIMALS, ids=lambda v: str(v) if isinstance(v, tuple) else None
)
def test_decimal_columns_within_each_databases_limits(
    digits: tuple[int | None, int | None], postgres: str, mysql_: str
) -> None:
    column_type = decimal_column(*digits)
    assert str(PG.sa_type(column_type).compile(dialect=PG.sa_dialect)) == postgres
    assert str(MY.sa_type(column_type).compile(dialect=MY.sa_dialect)) == mysql_
    assert str(LITE.sa_type(column_type).compile(dialect=LITE.sa_dialect)) == "DECIMAL_TEXT"


@pytest.mark.parametrize("dialect", [PG, MY], ids=lambda d: d.name)
@pytest.mark.parametrize("digits", [d for d, _, _ in DECIMALS], ids=str)
def test_a_cut_decimal_reads_back_as_what_was_declared(dialect: Dialect, digits: tuple[int, int]) -> None:
    """So a table created from a cut type needs no evolution for the next record of that type."""
    stored = dialect.storage_type(decimal_column(*digits))
    assert dialect.storage_type(stored) == stored
    assert repr(dialect.sa_type(stored)) == repr(dialect.sa_type(decimal_column(*digits)))
