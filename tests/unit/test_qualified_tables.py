"""Schema-qualified targets (SINK_TABLE_NAME_FORMAT=replica.${source.table}): the format's own dot
separates schema and table, a dot a placeholder brings stays in the name; each part is checked
against the database's rules; the qualified form names a table unambiguously."""

from __future__ import annotations

import pytest
from sqlalchemy.dialects import mysql, postgresql

from sink.dialects import MysqlDialect, PostgresDialect
from sink.errors import MappingError
from sink.identifiers import check_schema, split_table_name_format
from sink.model import TableSpec

PG = PostgresDialect(postgresql.psycopg.dialect()).identifiers
MY = MysqlDialect(mysql.pymysql.dialect()).identifiers


@pytest.mark.parametrize(
    ("fmt", "parts"),
    [
        ("${topic}", (None, "${topic}")),
        ("kafka_${topic}_v1", (None, "kafka_${topic}_v1")),
        ("replica.${source.table}", ("replica", "${source.table}")),
        ("archive.${topic}", ("archive", "${topic}")),
        ("${source.db}.${source.table}", ("${source.db}", "${source.table}")),
        ("public.orders", ("public", "orders")),
        ("r_${source.schema}.t_${source.table}", ("r_${source.schema}", "t_${source.table}")),
    ],
)
def test_the_formats_own_dot_separates_schema_and_table(fmt: str, parts: tuple[str | None, str]) -> None:
    assert split_table_name_format(fmt) == parts


@pytest.mark.parametrize(
    ("fmt", "reason"),
    [
        ("a.b.${topic}", "has 2 dots outside"),
        ("db.replica.${source.table}", "has 2 dots outside"),
        (".${topic}", "neither may be empty"),
        ("replica.", "neither may be empty"),
    ],
)
def test_more_than_one_qualifying_dot_or_an_empty_part_is_refused(fmt: str, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        split_table_name_format(fmt)


def test_the_qualified_form_is_unambiguous() -> None:
    assert TableSpec("orders", ()).qualified == "orders"
    assert TableSpec("orders", (), schema="replica").qualified == "replica.orders"
    assert TableSpec("a.b", (), schema="replica").qualified == 'replica."a.b"'
    assert TableSpec('we"ird', (), schema="s").qualified == 's."we""ird"'
    # A dot in either part never makes two tables one name (buffers and metrics key by it).
    assert TableSpec.qualify("x.y", "z") != TableSpec.qualify("x", "y.z")
    assert TableSpec.qualify('a"', "b") != TableSpec.qualify("a", '"b')


def test_a_schema_name_is_checked_as_a_name_of_the_database() -> None:
    check_schema(PG, "replica")
    with pytest.raises(MappingError, match=r"schema name 's{70}' cannot be used: 70 bytes is longer"):
        check_schema(PG, "s" * 70)
    with pytest.raises(MappingError, match="65 characters is longer than MariaDB/MySQL's limit of 64"):
        check_schema(MY, "s" * 65)
    with pytest.raises(MappingError, match="may not end with a space"):
        check_schema(MY, "replica ")
    with pytest.raises(MappingError, match="empty name"):
        check_schema(PG, "")


def test_postgresql_keeps_pg_schemas_for_itself() -> None:
    # pg_temp.orders would be a temporary table, gone with the session that wrote it.
    with pytest.raises(MappingError, match="PostgreSQL reserves schema names starting with 'pg_'"):
        check_schema(PG, "pg_temp")
    check_schema(MY, "pg_temp")  # an ordinary database name on MariaDB
