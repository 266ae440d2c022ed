"""Names the target database cannot hold, or would take for another, are record errors before
any DDL: never a silent truncation (PostgreSQL cuts at 63 bytes) or merge (MariaDB and SQLite
compare names without regard to case)."""

from __future__ import annotations

import json

import pytest
from sqlalchemy.dialects import mysql, postgresql, sqlite

from sink.dialects import MysqlDialect, PostgresDialect, SqliteDialect
from sink.errors import MappingError
from sink.identifiers import IdentifierRules
from sink.model import Coord, Decoded, Payload, RawRecord
from sink.transforms import MappingRules, RowMapper

PG = PostgresDialect(postgresql.psycopg.dialect()).identifiers
MY = MysqlDialect(mysql.pymysql.dialect()).identifiers
LITE = SqliteDialect(sqlite.pysqlite.dialect()).identifiers


def decoded(value: dict, topic: str = "orders") -> Decoded:
    raw = RawRecord(Coord(topic, 0, 7), None, json.dumps(value).encode())
    return Decoded(raw, Payload(None), Payload(value))


def mapper(rules: IdentifierRules, **mapping: object) -> RowMapper:
    return RowMapper(MappingRules(**mapping), rules)  # type: ignore[arg-type]


def test_a_field_past_postgresqls_63_bytes_is_a_record_error_not_a_null_column() -> None:
    long = "f" * 70
    with pytest.raises(MappingError) as caught:
        mapper(PG).to_row(decoded({"id": 1, long: 42, "v": "kept"}))
    message = str(caught.value)
    assert "70 bytes is longer than PostgreSQL's limit of 63" in message
    assert "'ffffffff" in message and "table 'orders'" in message


def test_postgresql_counts_bytes_mariadb_characters() -> None:
    assert PG.problem("é" * 31) is None  # 62 bytes
    assert PG.problem("é" * 32) == "64 bytes is longer than PostgreSQL's limit of 63"
    assert MY.problem("é" * 64) is None
    assert MY.problem("é" * 65) == "65 characters is longer than MariaDB/MySQL's limit of 64"
    assert LITE.problem("x" * 10_000) is None


@pytest.mark.parametrize("rules", [PG, MY, LITE], ids=["postgresql", "mariadb", "sqlite"])
@pytest.mark.parametrize(("name", "rule"), [("", "empty name"), ("a\x00b", "NUL"), ("a\ud800", "lone surrogate")])
def test_names_no_database_holds(rules: IdentifierRules, name: str, rule: str) -> None:
    with pytest.raises(MappingError, match=rule):
        mapper(rules).to_row(decoded({"id": 1, name: 2}))


def test_mariadb_refuses_what_its_identifier_charset_cannot_hold() -> None:
    assert MY.problem("a ") == "MariaDB/MySQL names may not end with a space"
    assert "basic multilingual plane" in (MY.problem("😀") or "")
    assert PG.problem("😀") is None


@pytest.mark.parametrize(("rules", "collides"), [(PG, False), (MY, True), (LITE, True)])
def test_fields_that_differ_only_in_case(rules: IdentifierRules, collides: bool) -> None:
    record = decoded({"id": 1, "Name": "a", "name": "b"})
    if not collides:
        assert mapper(rules).to_row(record) is not None
        return
    with pytest.raises(MappingError, match="'Name' and 'name' would be one column"):
        mapper(rules).to_row(record)


def test_mariadb_folds_case_but_keeps_accents_and_sharp_s_apart() -> None:
    assert MY.column_key("É") == MY.column_key("é")
    assert MY.column_key("é") != MY.column_key("e")
    assert MY.column_key("ß") != MY.column_key("ss")
    assert LITE.column_key("É") != LITE.column_key("é"), "SQLite folds ASCII letters only"


def test_two_topics_sharing_their_first_63_bytes_never_share_a_table() -> None:
    prefix = "t" * 63
    rows = mapper(PG)
    for topic in (prefix + "_a", prefix + "_b"):
        with pytest.raises(MappingError, match="longer than PostgreSQL's limit of 63"):
            rows.to_row(decoded({"id": 1}, topic))


def test_topics_that_differ_only_in_case_are_refused_on_sqlite() -> None:
    rows = mapper(LITE)
    assert rows.to_row(decoded({"id": 1}, "Orders")) is not None
    with pytest.raises(MappingError, match="same table as 'Orders'"):
        rows.to_row(decoded({"id": 1}, "orders"))
    assert mapper(PG).to_row(decoded({"id": 1}, "orders")) is not None


def test_sqlite_reserves_its_own_table_names() -> None:
    with pytest.raises(MappingError, match="reserves names starting with 'sqlite_'"):
        mapper(LITE).to_row(decoded({"id": 1}, "SQLITE_stat1"))


def test_a_record_without_fields_is_a_record_error() -> None:
    with pytest.raises(MappingError, match="no fields"):
        mapper(LITE).to_row(decoded({}))


def test_a_long_primary_key_field_name_is_checked_too() -> None:
    with pytest.raises(MappingError, match="longer than PostgreSQL's limit"):
        mapper(PG, pk_mode="record_value", pk_fields=("k" * 64,)).to_row(decoded({"k" * 64: 1}))


def test_postgresqls_system_column_names_are_refused_there_only() -> None:
    with pytest.raises(MappingError, match="reserves the name for a system column"):
        mapper(PG).to_row(decoded({"id": 1, "xmin": 5}))
    assert mapper(PG).to_row(decoded({"id": 1, "XMIN": 5})) is not None, "quoted names are case-sensitive"
    assert mapper(MY).to_row(decoded({"id": 1, "xmin": 5})) is not None
