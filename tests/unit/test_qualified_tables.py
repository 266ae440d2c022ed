"""Schema-qualified targets (SINK_TABLE_NAME_FORMAT=replica.${source.table}): the format's own dot
separates schema and table, a dot a placeholder brings stays in the name; each part is checked
against the database's rules; the qualified form names a table unambiguously."""

from __future__ import annotations

import json
from typing import Any

import pytest
from sqlalchemy.dialects import mysql, postgresql

from sink.config import load_settings
from sink.dialects import MysqlDialect, PostgresDialect, offline
from sink.errors import ConfigError, MappingError
from sink.formats.connect_json import ConnectJsonDecoder
from sink.identifiers import IdentifierRules, check_columns, check_schema, split_table_name_format
from sink.model import Column, ColumnType, Coord, Decoded, Kind, Op, Payload, RawRecord, Row, TableSpec
from sink.pipeline import Preparer
from sink.schema import Evolution
from sink.smt import build_chain
from sink.transforms import MappingRules, RowMapper
from tests.support.debezium import SourceTable, customer

PG = PostgresDialect(postgresql.psycopg.dialect()).identifiers
MY = MysqlDialect(mysql.pymysql.dialect()).identifiers
TOPIC = "dbserver1.inventory.customers"


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


@pytest.mark.parametrize(
    ("rules", "schema"),
    [(PG, "information_schema"), (MY, "information_schema"), (MY, "mysql"), (MY, "performance_schema"), (MY, "sys")],
)
def test_the_databases_own_schemas_are_never_written_into(rules: IdentifierRules, schema: str) -> None:
    """`${source.db}.${source.table}` with a source database named like a system one (a MySQL
    source's `mysql`) must not write into the target's own: `mysql.user` is MariaDB's accounts."""
    with pytest.raises(MappingError, match="own schemas"):
        check_schema(rules, schema)
    check_schema(PG, "mysql")  # an ordinary schema name on PostgreSQL


# ------------------------------------------------------------------------------ the mapping


def _rows(table_name_format: str, source: SourceTable, rules: IdentifierRules = PG, **extra: Any) -> list[Any]:
    mapping = MappingRules(
        table_name_format=table_name_format, pk_mode="record_key", cdc_format="debezium", delete_enabled=True, **extra
    )
    preparer = Preparer(ConnectJsonDecoder(), ConnectJsonDecoder(), RowMapper(mapping, rules))
    records = source.connect_json()
    return [
        preparer.prepare(RawRecord(Coord(TOPIC, 0, n), r["key"].encode(), r["value"] and r["value"].encode()))
        for n, r in enumerate(records)
    ]


def test_a_change_event_lands_in_the_formats_schema_with_its_source_table_as_the_name() -> None:
    source = SourceTable("customers")
    source.insert(customer(1))
    source.delete(1)
    upsert, delete, _tombstone = _rows("replica.${source.table}", source, truncate_enabled=True)
    assert isinstance(upsert, Row) and isinstance(delete, Row)
    assert (upsert.spec.schema, upsert.spec.name, upsert.table) == ("replica", "customers", "replica.customers")
    assert (delete.op, delete.spec.schema, delete.spec.name, delete.table) == (
        Op.DELETE,
        "replica",
        "customers",
        "replica.customers",
    )
    truncate = json.loads(source.connect_json()[0]["value"])
    truncate["payload"].update(op="t", before=None, after=None)
    source_key = source.connect_json()[0]["key"]
    mapper = RowMapper(
        MappingRules("replica.${source.table}", "record_key", cdc_format="debezium", truncate_enabled=True)
    )
    decoder = ConnectJsonDecoder()
    raw = RawRecord(Coord(TOPIC, 0, 9), source_key.encode(), json.dumps(truncate).encode())
    row = Preparer(decoder, decoder, mapper).prepare(raw)
    assert isinstance(row, Row) and (row.op, row.spec.schema, row.spec.name) == (Op.TRUNCATE, "replica", "customers")


def test_a_dot_or_quote_in_the_source_table_stays_in_the_table_name() -> None:
    hostile = 'we"ird.`t`'
    source = SourceTable(hostile)
    source.insert(customer(1))
    (row,) = _rows("replica.${source.table}", source)
    assert isinstance(row, Row)
    assert (row.spec.schema, row.spec.name) == ("replica", hostile)
    assert row.table == 'replica."we""ird.`t`"'


def test_the_schema_part_may_come_from_the_source_too() -> None:
    source = SourceTable("customers")
    source.insert(customer(1))
    (row,) = _rows("${source.db}_copy.${source.table}", source)
    assert isinstance(row, Row) and (row.spec.schema, row.spec.name) == ("inventory_copy", "customers")


def test_a_topic_with_dots_is_one_table_name_in_the_schema() -> None:
    mapper = RowMapper(MappingRules(table_name_format="archive.${topic}"), PG)
    row = mapper.to_row(_decoded({"id": 1}, topic="shop.orders.v1"))
    assert row is not None and (row.spec.schema, row.spec.name) == ("archive", "shop.orders.v1")
    assert row.table == 'archive."shop.orders.v1"'
    plain = RowMapper(MappingRules(table_name_format="${topic}"), PG).to_row(_decoded({"id": 1}, "shop.orders"))
    assert plain is not None and (plain.spec.schema, plain.spec.name, plain.table) == (
        None,
        "shop.orders",
        "shop.orders",
    )


def test_the_naming_transform_names_the_table_not_its_schema() -> None:
    chain = build_chain(("n",), {"n": {"type": "table_name_case", "case": "upper", "prefix": "t_"}}, {})
    mapper = RowMapper(MappingRules(table_name_format="replica.${topic}", transforms=chain), PG)
    row = mapper.to_row(_decoded({"id": 1}))
    assert row is not None and (row.spec.schema, row.spec.name, row.table) == (
        "replica",
        "t_ORDERS",
        "replica.t_ORDERS",
    )


def test_each_part_is_checked_against_the_databases_rules() -> None:
    with pytest.raises(MappingError, match="schema name 'pg_temp' cannot be used"):
        RowMapper(MappingRules(table_name_format="pg_temp.${topic}"), PG).to_row(_decoded({"id": 1}))
    with pytest.raises(MappingError, match=r"table name 'o{64}' cannot be used: 64 bytes"):
        RowMapper(MappingRules(table_name_format="replica.${topic}"), PG).to_row(_decoded({"id": 1}, "o" * 64))


def test_tables_are_compared_schema_qualified_where_the_database_ignores_case() -> None:
    folding = IdentifierRules("a case-blind database", table_folding="ascii")
    mapper = RowMapper(MappingRules(table_name_format="${topic}.orders"), folding)
    assert mapper.table_name("a") == "a.orders"
    assert mapper.table_name("b") == "b.orders"  # another schema: another table
    with pytest.raises(MappingError, match=r"'A\.orders' .* is the same table as 'a\.orders'"):
        mapper.table_name("A")


def _decoded(value: dict[str, Any], topic: str = "orders") -> Decoded:
    raw = RawRecord(Coord(topic, 0, 7), None, json.dumps(value).encode())
    return Decoded(raw, Payload(None), Payload(value))


# ------------------------------------------------------------------------------ start-up


PG_ENV = {
    "SINK_BOOTSTRAP_SERVERS": "k:9092",
    "SINK_DATABASE_URL": "postgresql+psycopg://postgres@127.0.0.1:5432/test",
    "SINK_TOPICS": "t",
}
CDC = {"SINK_CDC_FORMAT": "debezium", "SINK_INSERT_MODE": "upsert", "SINK_PK_MODE": "record_key"}


@pytest.mark.parametrize("fmt", ["replica.${source.table}", "${source.db}.${source.table}", "archive.${topic}"])
def test_a_schema_qualified_format_is_accepted_where_the_database_has_schemas(fmt: str) -> None:
    settings = load_settings([], environ={**PG_ENV, **CDC, "SINK_TABLE_NAME_FORMAT": fmt})
    assert settings.table_name_format == fmt


@pytest.mark.parametrize(
    ("env", "words"),
    [
        ({"SINK_TABLE_NAME_FORMAT": "a.b.${topic}"}, "has 2 dots outside ${...}; at most one"),
        ({"SINK_TABLE_NAME_FORMAT": "replica."}, "neither may be empty"),
        (
            {"SINK_TABLE_NAME_FORMAT": "replica.${topic}", "SINK_DATABASE_URL": "sqlite:///:memory:"},
            "names a schema (the dot outside ${...}), and SQLite has none",
        ),
    ],
)
def test_a_format_the_database_cannot_follow_is_refused_at_start(env: dict[str, str], words: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings([], environ={**PG_ENV, **env})
    message = str(caught.value)
    assert message.startswith("SINK_TABLE_NAME_FORMAT: ") and words in message, message
    assert "\n" not in message and caught.value.exit_code == 2


# ------------------------------------------------------------------------------ SQL


def _sql(statement: Any, dialect: Any) -> str:
    return " ".join(str(statement.compile(dialect=dialect.sa_dialect)).split())


HOSTILE = TableSpec('we"ird.`t`', (Column("id", ColumnType(Kind.INT64), nullable=False),), ("id",), 'sch"e.m`a')


def test_schema_and_table_are_quoted_part_by_part() -> None:
    pg, my = offline("postgresql"), offline("mysql")
    assert _sql(pg.create_schema('sch"e.m`a'), pg) == 'CREATE SCHEMA IF NOT EXISTS "sch""e.m`a"'
    assert _sql(my.create_schema('sch"e.m`a'), my) == 'CREATE SCHEMA IF NOT EXISTS `sch"e.m``a`'
    assert _sql(pg.create_schema("replica"), pg) == 'CREATE SCHEMA IF NOT EXISTS "replica"'
    assert _sql(pg.create_table(HOSTILE), pg).startswith('CREATE TABLE IF NOT EXISTS "sch""e.m`a"."we""ird.`t`" (')
    assert _sql(my.create_table(HOSTILE), my).startswith('CREATE TABLE IF NOT EXISTS `sch"e.m``a`.`we"ird.``t``` (')
    upsert = _sql(pg.upsert(pg.table(HOSTILE), ("id",)), pg)
    assert upsert.startswith('INSERT INTO "sch""e.m`a"."we""ird.`t`" ("id")')
    evolution = Evolution(add=(Column("v", ColumnType(Kind.STRING)),))
    (alter,) = pg.evolve_statements(HOSTILE, evolution)
    assert _sql(alter, pg) == 'ALTER TABLE "sch""e.m`a"."we""ird.`t`" ADD COLUMN "v" TEXT'


def test_tables_of_one_name_in_two_schemas_get_two_stages() -> None:
    pg = offline("postgresql")
    assert isinstance(pg, PostgresDialect)
    one, two = (TableSpec("items", HOSTILE.columns, ("id",), schema) for schema in ("a", "b"))
    assert pg.stage(one, ["id"]).name != pg.stage(two, ["id"]).name
    assert pg.stage(one, ["id"]).schema is None  # the session's temporary schema


def test_a_field_named_like_the_postgresql_stagings_own_columns_is_refused() -> None:
    with pytest.raises(MappingError, match="staging"):
        check_columns(PG, "t", ["id", "_sink_n"])
    check_columns(MY, "t", ["id", "_sink_n"])  # MariaDB stages nothing
