"""Which chunks of rows PostgreSQL's bulk path sends by binary COPY (`pgbinary.binary_safe`): only
what lands and is rejected exactly as by text COPY. What the database does with both is checked in
tests/integration/test_pg_binary_copy.py; here, the decision itself, the COPY statements, and the
booleans for text columns that text COPY gets spelled out."""

from __future__ import annotations

import datetime as dt
import decimal
import uuid
import zoneinfo
from typing import Any

import pytest
from psycopg.postgres import types as pg_types
from psycopg.types.json import Json, Jsonb
from sqlalchemy.dialects import postgresql

from sink.adapters.pgbinary import binary_safe
from sink.adapters.pgcopy import spelled_out
from sink.dialects import PostgresDialect
from sink.model import Column, ColumnType, Kind, TableSpec

D = decimal.Decimal
UTC = dt.UTC
NAIVE = dt.datetime(2024, 3, 1, 12, 0)
AWARE = NAIVE.replace(tzinfo=UTC)


class NoOffset(dt.tzinfo):
    """A tzinfo that knows no offset: Python calls such datetimes naive."""

    def utcoffset(self, moment: dt.datetime | None) -> dt.timedelta | None:
        return None


def oid(name: str) -> int:
    info = pg_types.get(name)
    assert info is not None
    return info.oid


def safe(type_name: str, *values: Any) -> bool:
    """Whether a one-column chunk of `values` (one per row) goes binary."""
    return binary_safe([oid(type_name)], [(v,) for v in values])


SAFE = [
    ("int2", [-(2**15), 2**15 - 1, 0]),
    ("int4", [-(2**31), 2**31 - 1]),
    ("int8", [-(2**63), 2**63 - 1]),
    ("float8", [1.5, float("nan"), float("inf"), -0.0, 1e308]),
    ("float8", [7, 2**53, -(2**53), 0.5]),  # ints a double holds exactly
    ("numeric", [D("1.50"), D("-12345678.90"), D("1E+2"), D("0E-10"), D("1E+1000"), D("1E-1000")]),
    ("numeric", [5, 10**30, -(10**999), D("0.1")]),
    ("bool", [True, False]),
    ("text", ["", "tab\t newline\n backslash\\ ü 🎉"]),
    ("varchar", ["too long for varchar(3) is the server's to say"]),
    ("bytea", [b"", b"\x00\xff"]),
    ("timestamptz", [AWARE, NAIVE.replace(tzinfo=dt.timezone(dt.timedelta(hours=-3)))]),
    ("timestamptz", [NAIVE.replace(tzinfo=zoneinfo.ZoneInfo("Europe/Lisbon"))]),
    ("timestamp", [NAIVE, dt.datetime(1, 1, 1)]),
    ("date", [dt.date(2024, 2, 29)]),
    ("time", [dt.time(23, 59, 59, 999999)]),
    ("uuid", [uuid.UUID(int=0)]),
    ("jsonb", [Jsonb({"a": [1, None]}), Jsonb(None)]),
    ("json", [Jsonb([1])]),
]

UNSAFE = [
    ("int2", [2**15], "wraps around in binary"),
    ("int4", [2**31], "wraps around in binary"),
    ("int4", [-(2**31) - 1], "wraps around in binary"),
    ("int8", [2**63], "OverflowError in psycopg instead of SQLSTATE 22003"),
    ("int4", [True], "text sends 't', which integer refuses"),
    ("int4", [1.0], "text sends '1.0', which integer refuses"),
    ("int4", [D(1)], "not an int"),
    ("float8", [2**53 + 1], "rounded in Python"),
    ("float8", [10**400], "OverflowError in Python instead of SQLSTATE 22003"),
    ("float8", [True], "a bool"),
    ("float8", [D("1.5")], "a Decimal"),
    ("numeric", [D("NaN")], "not finite"),
    ("numeric", [D("Infinity")], "not finite"),
    ("numeric", [D("1E+1001")], "past the limits"),
    ("numeric", [D("1E-1001")], "past the limits"),
    ("numeric", [D("0." + "1" * 1001)], "more than 1000 digits"),
    ("numeric", [10**1000], "past the limits"),
    ("numeric", [1.5], "a float"),
    ("bool", [1], "an int"),
    ("bool", ["true"], "a string"),
    ("text", ["a\x00b"], "psycopg's DataError on the text path"),
    ("varchar", ["\x00"], "psycopg's DataError on the text path"),
    ("text", [5], "an int: text sends '5'"),
    ("text", [b"x"], "bytes"),
    ("bytea", [bytearray(b"x")], "not exactly bytes"),
    ("timestamptz", [NAIVE], "naive: text reads it in the session's zone"),
    ("timestamptz", [NAIVE.replace(tzinfo=NoOffset())], "naive by its tzinfo"),
    ("timestamptz", [dt.date(2024, 1, 1)], "a date"),
    ("timestamp", [AWARE], "aware: text drops the offset"),
    ("date", [NAIVE], "a datetime for a date"),
    ("time", [dt.time(1, tzinfo=UTC)], "aware"),
    ("uuid", ["12345678-1234-5678-1234-567812345678"], "a string"),
    ("jsonb", [{"a": 1}], "not wrapped"),
    ("jsonb", [Json({"a": 1})], "not the wrapper the bulk path makes"),
    ("float4", [1.5], "real: rounded twice, overflows to Infinity"),
    ("bpchar", ["x"], "no binary dumper"),
    ("interval", [dt.timedelta(1)], "not on the list"),
]


@pytest.mark.parametrize(("type_name", "values"), SAFE)
def test_values_whose_binary_form_is_exact_go_binary(type_name: str, values: list[Any]) -> None:
    assert safe(type_name, *values)
    assert safe(type_name, None, *values, None), "NULLs are always fine"


@pytest.mark.parametrize(("type_name", "values", "why"), UNSAFE)
def test_anything_else_goes_by_text(type_name: str, values: list[Any], why: str) -> None:
    assert not safe(type_name, *values), why
    assert not safe(type_name, None, *values), why


def test_one_unsafe_value_sends_the_whole_chunk_by_text() -> None:
    types = [oid("int8"), oid("text"), oid("timestamptz")]
    rows = [(i, f"r{i}", AWARE) for i in range(100)]

    assert binary_safe(types, rows)
    rows[57] = (57, "r57", NAIVE)
    assert not binary_safe(types, rows)


def test_a_column_of_a_type_without_a_rule_goes_by_text_even_when_null() -> None:
    enum_oid = 987_654  # an enum, a domain or any other type the server made for a user
    assert not binary_safe([oid("int8"), enum_oid], [(1, None), (2, None)])


def test_no_rows_and_all_nulls_are_safe() -> None:
    types = [oid("int4"), oid("text")]
    assert binary_safe(types, [])
    assert binary_safe(types, [(None, None), (None, None)])


def test_a_row_of_another_width_is_a_bug_not_a_fallback() -> None:
    with pytest.raises(ValueError):
        binary_safe([oid("int4"), oid("text")], [(1, "a"), (2,)])


def test_copy_statements_in_both_formats() -> None:
    dialect = PostgresDialect(postgresql.psycopg.dialect())
    spec = TableSpec("t", (Column("id", ColumnType(Kind.INT64)), Column('we"ird', ColumnType(Kind.STRING))), ("id",))
    stage = dialect.stage(spec, ["id", 'we"ird'])

    text = dialect.copy_into(stage)
    assert text == f'COPY "{stage.name}" ("id", "we""ird") FROM STDIN'
    assert dialect.copy_into(stage, binary=True) == text + " (FORMAT BINARY)"


def test_booleans_for_text_columns_are_spelled_out_for_text_copy() -> None:
    rows = [(1, True, True), (2, "x", False), (3, None, None)]

    assert spelled_out(rows, [1]) == [[1, "true", True], [2, "x", False], [3, None, None]]
    untouched = [(1, "a", True)]
    assert spelled_out(untouched, [1]) is untouched, "nothing to spell: the chunk as it is"
    assert spelled_out(rows, []) is rows
