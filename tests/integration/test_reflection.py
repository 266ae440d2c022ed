"""Reflection (sink/adapters/reflection.py) on real PostgreSQL, MariaDB and SQLite: a table the sink
created reads back column for column as `storage_type` says, hostile names included (MariaDB's
backticks, its JSON check); and tables made by hand read back by the dialect's type registry."""

from __future__ import annotations

import datetime as dt
import decimal
from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from sink.adapters.db import SqlStore, create_engine
from sink.model import Column, ColumnType, Kind, TableSpec
from tests.support.db import drop_table

pytestmark = pytest.mark.integration


@pytest.fixture(params=["pg_url", "mariadb_url", "sqlite_url"], ids=["postgresql", "mariadb", "sqlite"])
def db_url(request: pytest.FixtureRequest) -> str:
    return str(request.getfixturevalue(request.param))


@pytest.fixture
def table_name(db_url: str, unique_name: str) -> Iterator[str]:
    name = f'{unique_name}`x"y'  # quotes of both kinds: MariaDB's reflection doubles backticks
    drop_table(db_url, name)
    yield name
    drop_table(db_url, name)


def reflect(url: str, name: str) -> TableSpec | None:
    engine = create_engine(url)
    try:
        return SqlStore(engine).table(name)
    finally:
        engine.dispose()


def every_kind() -> tuple[Column, ...]:
    details = {
        Kind.DECIMAL: {"precision": 10, "scale": 2},
        Kind.TIME: {"precision": 6},
        Kind.TIMESTAMP: {"precision": 6},
        Kind.LOCAL_TIMESTAMP: {"precision": 6},
        Kind.ARRAY: {"item": ColumnType(Kind.INT64)},
    }
    columns = [Column(f"c {kind.value}`", ColumnType(kind, **details.get(kind, {}))) for kind in Kind]
    columns += [
        Column("s(255)", ColumnType(Kind.STRING, length=255)),
        Column("b(16)", ColumnType(Kind.BYTES, length=16)),
        Column("j`son", ColumnType(Kind.JSON)),
        Column("100%", ColumnType(Kind.INT64), nullable=False, default=7, has_default=True),
        Column("d", ColumnType(Kind.DECIMAL, precision=10, scale=2), default=decimal.Decimal("1.50"), has_default=True),
        Column("day", ColumnType(Kind.DATE), nullable=False, default=dt.date(2024, 2, 29), has_default=True),
    ]
    return tuple(columns)


def test_a_table_the_sink_created_reads_back_as_its_storage_types(db_url: str, table_name: str) -> None:
    key = Column("k`ey", ColumnType(Kind.STRING), nullable=False)
    spec = TableSpec(table_name, (key, *every_kind()), (key.name,))
    engine = create_engine(db_url)
    try:
        store = SqlStore(engine)
        store.create_table(spec)
        found = store.table(table_name)
        assert found is not None
        assert found.name == table_name and found.primary_key == (key.name,)
        assert found.column_names == spec.column_names
        types = store.dialect.types
        key_column = found.columns[0]
        assert key_column.type == types.neutral_type(types.key_type(key.type)), "a key column reads back as declared"
        assert not key_column.nullable
        for wanted, got in zip(spec.columns[1:], found.columns[1:], strict=True):
            assert got.type == store.storage_type(wanted.type), wanted.name
            assert got.nullable == wanted.nullable, wanted.name
            assert got.has_default == wanted.has_default, wanted.name
        if store.dialect.name == "mysql":
            assert found.column("j`son") == Column("j`son", ColumnType(Kind.JSON)), "MariaDB's JSON check found"
    finally:
        engine.dispose()


# Columns made by hand (not by the sink), and what each reads back as.
HAND_MADE = {
    "postgresql": [
        ("smallint", ColumnType(Kind.INT16)),
        ("real", ColumnType(Kind.FLOAT32)),
        ("double precision", ColumnType(Kind.FLOAT64)),
        ("numeric", ColumnType(Kind.DECIMAL)),
        ("numeric(10,2)", ColumnType(Kind.DECIMAL, precision=10, scale=2)),
        ("char(36)", ColumnType(Kind.STRING, length=36)),
        ("varchar(20)", ColumnType(Kind.STRING, length=20)),
        ("integer[]", ColumnType(Kind.ARRAY, item=ColumnType(Kind.INT32))),
        ("jsonb[]", ColumnType(Kind.ARRAY, item=ColumnType(Kind.JSON))),
        ("json", ColumnType(Kind.JSON)),
        ("timestamptz", ColumnType(Kind.TIMESTAMP, precision=6)),  # no (n): PostgreSQL's 6 digits
        ("timestamp", ColumnType(Kind.LOCAL_TIMESTAMP, precision=6)),
        ("timestamp(3)", ColumnType(Kind.LOCAL_TIMESTAMP, precision=3)),
        ("time with time zone", ColumnType(Kind.TIME, precision=6)),
        ("time(0)", ColumnType(Kind.TIME, precision=0)),
        ("interval", ColumnType(Kind.STRING)),
    ],
    "mysql": [
        ("tinyint(1)", ColumnType(Kind.BOOLEAN)),
        ("tinyint", ColumnType(Kind.INT8)),
        ("year", ColumnType(Kind.INT32)),
        ("mediumint", ColumnType(Kind.INT32)),
        ("float", ColumnType(Kind.FLOAT32)),
        ("char(36)", ColumnType(Kind.UUID)),
        ("char(5)", ColumnType(Kind.STRING, length=5)),
        ("uuid", ColumnType(Kind.UUID)),  # MariaDB's native type
        ("json", ColumnType(Kind.JSON)),  # LONGTEXT with a json_valid check
        ("longtext", ColumnType(Kind.STRING)),
        ("tinyblob", ColumnType(Kind.BYTES)),
        ("binary(16)", ColumnType(Kind.BYTES, length=16)),
        ("timestamp(6) NULL", ColumnType(Kind.LOCAL_TIMESTAMP, precision=6)),
        ("datetime", ColumnType(Kind.LOCAL_TIMESTAMP, precision=0)),  # no (n): whole seconds
        ("datetime(3)", ColumnType(Kind.LOCAL_TIMESTAMP, precision=3)),
        ("time(2)", ColumnType(Kind.TIME, precision=2)),
        ("enum('a','bb')", ColumnType(Kind.STRING)),  # unbounded: a Debezium Enum string fits as it is
    ],
    "sqlite": [
        ("INT", ColumnType(Kind.INT64)),
        ("SMALLINT", ColumnType(Kind.INT64)),
        ("FLOAT", ColumnType(Kind.FLOAT64)),
        ("NUMERIC", ColumnType(Kind.DECIMAL)),
        ("DECIMAL(10,2)", ColumnType(Kind.DECIMAL, precision=10, scale=2)),
        ("DECIMAL_TEXT", ColumnType(Kind.DECIMAL)),
        ("JSON_TEXT", ColumnType(Kind.JSON)),
        ("VARCHAR(20)", ColumnType(Kind.STRING)),
        ("CHAR(36)", ColumnType(Kind.UUID)),
        ("DATETIME", ColumnType(Kind.LOCAL_TIMESTAMP)),
        ("TIMESTAMP", ColumnType(Kind.TIMESTAMP)),
        ("", ColumnType(Kind.STRING)),  # no declared type
    ],
}


def test_a_table_made_by_hand_reads_back_by_the_type_registry(db_url: str, table_name: str) -> None:
    engine = create_engine(db_url)
    try:
        backend = SqlStore(engine).dialect.name
        quote = engine.dialect.identifier_preparer.quote
        cases = HAND_MADE[backend]
        columns = ", ".join(
            [f"{quote('id')} INTEGER PRIMARY KEY"] + [f"{quote(f'c{i}')} {sql}" for i, (sql, _) in enumerate(cases)]
        )
        with engine.begin() as connection:
            connection.execute(sa.text(f"CREATE TABLE {quote(table_name)} ({columns})"))
    finally:
        engine.dispose()
    found = reflect(db_url, table_name)
    assert found is not None
    assert [found.column(f"c{i}").type for i in range(len(cases))] == [expected for _, expected in cases]  # type: ignore[union-attr]


def test_a_missing_table_reads_back_as_none(db_url: str, unique_name: str) -> None:
    assert reflect(db_url, unique_name) is None
