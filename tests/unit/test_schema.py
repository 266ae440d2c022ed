"""Schema inference for schemaless JSON and the rules of table evolution."""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal

import pytest
from sqlalchemy.dialects import mysql, postgresql, sqlite

from sink.dialects import MysqlDialect, PostgresDialect, SqliteDialect
from sink.errors import SchemaEvolutionRefused
from sink.model import Column, ColumnType, Kind, TableSpec
from sink.schema import Evolution, evolve, infer_columns, infer_type, merge_inferred

INT32, INT64 = ColumnType(Kind.INT32), ColumnType(Kind.INT64)
STRING = ColumnType(Kind.STRING)


def identity(ct: ColumnType) -> ColumnType:
    return ct


def table(*columns: Column, key: tuple[str, ...] = ("id",)) -> TableSpec:
    return TableSpec("orders", (Column("id", INT64, nullable=False), *columns), key)


# ------------------------------------------------------------------------------ inference


def test_infer_columns_types_every_json_value() -> None:
    columns = infer_columns(
        {"i": 1, "b": True, "f": 1.5, "s": "x", "n": None, "o": {"a": 1}, "l": [1, 2], "big": 2**62}
    )
    assert columns == (
        Column("i", INT64),
        Column("b", ColumnType(Kind.BOOLEAN)),
        Column("f", ColumnType(Kind.FLOAT64)),
        Column("s", STRING),
        Column("o", ColumnType(Kind.JSON)),
        Column("l", ColumnType(Kind.JSON)),
        Column("big", INT64),
    ), "null says nothing about a type: no column for it; every inferred column is nullable"


def test_infer_type_of_python_values() -> None:
    assert infer_type(False) == ColumnType(Kind.BOOLEAN), "bool before int"
    assert infer_type(Decimal("1.5")).kind is Kind.DECIMAL
    assert infer_type(dt.datetime(2024, 1, 1)).kind is Kind.TIMESTAMP
    assert infer_type(dt.date(2024, 1, 1)) == ColumnType(Kind.DATE), "a date is not a datetime"
    assert infer_type(dt.time(1, 2)).kind is Kind.TIME
    assert infer_type(uuid.uuid4()) == ColumnType(Kind.UUID)
    assert infer_type(b"x") == ColumnType(Kind.BYTES)
    assert infer_type(None) is None


def test_merge_inferred_adds_columns_and_meets_int_and_float_at_float() -> None:
    spec = TableSpec("t", (Column("a", INT64), Column("b", STRING)))
    merged = merge_inferred(spec, (Column("a", ColumnType(Kind.FLOAT64)), Column("c", ColumnType(Kind.BOOLEAN))))
    assert merged.columns == (
        Column("a", ColumnType(Kind.FLOAT64)),
        Column("b", STRING),
        Column("c", ColumnType(Kind.BOOLEAN)),
    )
    assert merge_inferred(spec, (Column("b", INT64),)).column("b") == Column("b", STRING), "first type kept"


# ------------------------------------------------------------------------------ evolve: allowed


def test_same_table_needs_nothing() -> None:
    spec = table(Column("a", STRING))
    assert not evolve(spec, spec, identity)


def test_add_nullable_column() -> None:
    evolution = evolve(table(), table(Column("note", STRING)), identity)
    assert evolution == Evolution(add=(Column("note", STRING),))


def test_add_required_column_with_default() -> None:
    column = Column("status", STRING, nullable=False, default="new", has_default=True)
    assert evolve(table(), table(column), identity).add == (column,)


def test_drop_not_null_when_field_becomes_optional() -> None:
    existing = table(Column("a", STRING, nullable=False))
    assert evolve(existing, table(Column("a", STRING)), identity) == Evolution(drop_not_null=("a",))


def test_key_column_keeps_not_null() -> None:
    assert not evolve(table(), TableSpec("orders", (Column("id", INT64),), ("id",)), identity)


@pytest.mark.parametrize(
    ("have", "want"),
    [
        (INT32, INT64),
        (ColumnType(Kind.INT8), ColumnType(Kind.INT16)),
        (ColumnType(Kind.FLOAT32), ColumnType(Kind.FLOAT64)),
        (ColumnType(Kind.STRING, length=10), ColumnType(Kind.STRING, length=20)),
        (ColumnType(Kind.STRING, length=10), STRING),
        (ColumnType(Kind.DECIMAL, precision=10, scale=2), ColumnType(Kind.DECIMAL, precision=20, scale=2)),
    ],
)
def test_widen(have: ColumnType, want: ColumnType) -> None:
    existing = table(Column("a", have))
    assert evolve(existing, table(Column("a", want)), identity) == Evolution(widen=((Column("a", have), want),))


@pytest.mark.parametrize(
    ("have", "want"),
    [
        (INT64, INT32),
        (INT64, ColumnType(Kind.INT8)),
        (ColumnType(Kind.FLOAT64), ColumnType(Kind.FLOAT32)),
        (ColumnType(Kind.STRING, length=50), ColumnType(Kind.STRING, length=20)),
        (STRING, ColumnType(Kind.STRING, length=20)),
        (ColumnType(Kind.DECIMAL, precision=20, scale=2), ColumnType(Kind.DECIMAL, precision=10, scale=2)),
        (ColumnType(Kind.DECIMAL), ColumnType(Kind.DECIMAL, precision=10, scale=4)),
        (ColumnType(Kind.TIMESTAMP, precision=6), ColumnType(Kind.TIMESTAMP, precision=3)),
    ],
)
def test_narrower_type_fits_and_is_never_narrowed(have: ColumnType, want: ColumnType) -> None:
    assert not evolve(table(Column("a", have)), table(Column("a", want)), identity), "no ALTER that loses data"


# ------------------------------------------------------------------------------ evolve: refused


@pytest.mark.parametrize(
    ("have", "want", "have_text", "want_text"),
    [
        (INT64, STRING, "int64", "string"),
        (INT32, ColumnType(Kind.FLOAT64), "int32", "float64"),
        (ColumnType(Kind.FLOAT64), INT64, "float64", "int64"),
        (STRING, ColumnType(Kind.JSON), "string", "json"),
        (ColumnType(Kind.BOOLEAN), INT32, "boolean", "int32"),
        (ColumnType(Kind.DATE), ColumnType(Kind.TIMESTAMP), "date", "timestamp"),
        (INT64, ColumnType(Kind.DECIMAL, precision=10, scale=2), "int64", "decimal(10,2)"),
        (
            ColumnType(Kind.DECIMAL, precision=10, scale=2),
            ColumnType(Kind.DECIMAL, precision=10, scale=4),
            "decimal(10,2)",
            "decimal(10,4)",
        ),
    ],
)
def test_incompatible_change_is_refused_naming_table_column_and_types(
    have: ColumnType, want: ColumnType, have_text: str, want_text: str
) -> None:
    with pytest.raises(SchemaEvolutionRefused) as caught:
        evolve(table(Column("amount", have)), table(Column("amount", want)), identity)
    message = str(caught.value)
    assert "table 'orders'" in message
    assert "column 'amount'" in message
    assert f"is {have_text} but records now carry {want_text}" in message
    assert "ALTER TABLE" in message, "says what to do"


def test_new_required_column_without_default_is_refused() -> None:
    with pytest.raises(SchemaEvolutionRefused) as caught:
        evolve(table(), table(Column("sku", STRING, nullable=False)), identity)
    message = str(caught.value)
    assert "table 'orders'" in message
    assert "new column 'sku' (string) is required and has no default" in message


def test_inferred_only_adds_columns_as_nullable() -> None:
    existing = table(Column("a", INT64))
    wanted = table(Column("a", STRING), Column("b", STRING, nullable=False))
    evolution = evolve(existing, wanted, identity, inferred=True)
    assert evolution == Evolution(add=(Column("b", STRING),))


def test_first_refusal_wins_over_additions() -> None:
    with pytest.raises(SchemaEvolutionRefused, match="'a'"):
        evolve(table(Column("a", INT64)), table(Column("new", STRING), Column("a", STRING)), identity)


# ------------------------------------------------------------------------------ stored types


@pytest.mark.parametrize(
    ("dialect", "kind"),
    [
        # Kinds each database keeps as another (docs/types.md, "reads back as").
        (PostgresDialect(postgresql.dialect()), Kind.INT8),
        (SqliteDialect(sqlite.dialect()), Kind.DECIMAL),
        (SqliteDialect(sqlite.dialect()), Kind.INT32),
        (MysqlDialect(mysql.dialect()), Kind.TIMESTAMP),
        (MysqlDialect(mysql.dialect()), Kind.ARRAY),
    ],
)
def test_a_type_stored_as_another_is_not_a_change(dialect: object, kind: Kind) -> None:
    wanted = ColumnType(kind, precision=10 if kind is Kind.DECIMAL else None, scale=2 if kind is Kind.DECIMAL else None)
    stored = dialect.storage_type(wanted)  # type: ignore[attr-defined]
    assert stored != wanted
    existing = table(Column("a", stored))
    assert not evolve(existing, table(Column("a", wanted)), dialect.storage_type)  # type: ignore[attr-defined]


@pytest.mark.parametrize("have", [INT64, INT32, ColumnType(Kind.INT16)])
def test_inferred_refuses_a_float_for_an_integer_column_instead_of_rounding(have: ColumnType) -> None:
    # PostgreSQL and MySQL store 1.5 into BIGINT as 2 without an error: never leave that to them.
    with pytest.raises(SchemaEvolutionRefused) as caught:
        evolve(table(Column("v", have)), table(Column("v", ColumnType(Kind.FLOAT64))), identity, inferred=True)
    assert f"table 'orders': column 'v' is {have} but records now carry float64" in str(caught.value)


def test_inferred_leaves_other_clashes_to_the_database() -> None:
    existing = table(Column("v", INT64), Column("s", STRING), Column("f", ColumnType(Kind.FLOAT64)))
    wanted = table(Column("v", STRING), Column("s", INT64), Column("f", INT64))
    assert not evolve(existing, wanted, identity, inferred=True)


@pytest.mark.parametrize(
    "column_kind", [Kind.DATE, Kind.TIME, Kind.TIMESTAMP, Kind.LOCAL_TIMESTAMP, Kind.BYTES, Kind.UUID]
)
@pytest.mark.parametrize("value_kind", [Kind.INT64, Kind.FLOAT64, Kind.BOOLEAN])
def test_a_schemaless_number_for_a_date_bytes_or_uuid_column_is_refused(column_kind: Kind, value_kind: Kind) -> None:
    # MariaDB stores 0 into a DATE as '0000-00-00' and into a BLOB as its digits; SQLite keeps the
    # number whatever the column says: silent, so refused before the database sees it.
    key = Column("id", ColumnType(Kind.INT64), False)
    existing = TableSpec("t", (key, Column("c", ColumnType(column_kind))), ("id",))
    wanted = TableSpec("t", (key, Column("c", ColumnType(value_kind))), ("id",))
    with pytest.raises(SchemaEvolutionRefused, match="column 'c'"):
        evolve(existing, wanted, lambda t: t, inferred=True)


def test_schemaless_text_for_a_date_column_is_left_to_the_database() -> None:
    existing = TableSpec("t", (Column("c", ColumnType(Kind.DATE)),))
    assert not evolve(existing, TableSpec("t", (Column("c", ColumnType(Kind.STRING)),)), lambda t: t, inferred=True)


def test_a_refusal_names_the_table_with_its_schema() -> None:
    existing = TableSpec("t", (Column("v", ColumnType(Kind.INT64)),), (), "replica")
    wanted = TableSpec("t", (Column("v", ColumnType(Kind.BOOLEAN)),), (), "replica")
    with pytest.raises(SchemaEvolutionRefused, match=r"table 'replica\.t'"):
        evolve(existing, wanted, lambda t: t)


@pytest.mark.parametrize(
    ("have", "incoming"),
    [
        (ColumnType(Kind.LOCAL_TIMESTAMP, precision=3), ColumnType(Kind.LOCAL_TIMESTAMP, precision=6)),
        (ColumnType(Kind.TIME, precision=0), ColumnType(Kind.TIME, precision=3)),
        (ColumnType(Kind.DECIMAL, precision=10, scale=2), ColumnType(Kind.DECIMAL, precision=12, scale=2)),
    ],
)
def test_inferred_still_widens_digits_the_column_would_round(have: ColumnType, incoming: ColumnType) -> None:
    """A spec is inferred when only its key is schemaless; its value's types come from a schema, and
    a column with fewer digits than they carry would round them without a word."""
    evolution = evolve(table(Column("v", have)), table(Column("v", incoming)), identity, inferred=True)
    assert evolution.widen == ((Column("v", have), incoming),)


def test_inferred_leaves_fewer_digits_and_other_clashes_alone() -> None:
    at, s = ColumnType(Kind.TIMESTAMP, precision=6), ColumnType(Kind.STRING, length=5)
    existing = table(Column("at", at), Column("s", s))
    wanted = table(Column("at", ColumnType(Kind.TIMESTAMP, precision=3)), Column("s", ColumnType(Kind.STRING)))
    assert not evolve(existing, wanted, identity, inferred=True)


def test_inferred_refuses_a_decimal_with_more_places_than_its_column_keeps() -> None:
    have, incoming = ColumnType(Kind.DECIMAL, precision=10, scale=2), ColumnType(Kind.DECIMAL, precision=12, scale=4)
    with pytest.raises(SchemaEvolutionRefused):
        evolve(table(Column("v", have)), table(Column("v", incoming)), identity, inferred=True)
