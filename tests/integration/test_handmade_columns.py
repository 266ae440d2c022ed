"""Columns of a table made by hand, reflected on the real database, take the records a Debezium
source sends without a needless change (a review finding): MariaDB's ENUM and SET read back as
strings of their longest member, so a Debezium Enum/EnumSet (an unbounded string) asked to widen
them to LONGTEXT, or was refused without SINK_AUTO_EVOLVE."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from sink.adapters.db import SqlStore, create_engine
from sink.model import Column, ColumnType, Kind, TableSpec
from sink.schema import evolve
from tests.support.db import drop_table

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("ddl", ["ENUM('a','bb','ccc')", "SET('a','bb','ccc')"])
def test_a_mariadb_enum_or_set_column_takes_a_debezium_string_as_it_is(
    mariadb_url: str, unique_name: str, ddl: str
) -> None:
    engine = create_engine(mariadb_url)
    with engine.begin() as connection:
        connection.execute(sa.text(f"CREATE TABLE `{unique_name}` (id INT PRIMARY KEY, c {ddl})"))
    try:
        store = SqlStore(engine)
        existing = store.table(unique_name)
        assert existing is not None
        wanted = TableSpec(
            unique_name,
            (Column("id", ColumnType(Kind.INT32), nullable=False), Column("c", ColumnType(Kind.STRING))),
            ("id",),
        )
        assert not evolve(existing, wanted, store.dialect.storage_type)
    finally:
        engine.dispose()
        drop_table(mariadb_url, unique_name)
