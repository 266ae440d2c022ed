"""Evolution over the digits a column declares: fractional seconds (TIME(p), TIMESTAMP(p)), decimals
cut to a database's maximum, and MariaDB's bounded primary-key strings. The existing table is what
reflection reads from the columns a dialect creates (`neutral_type` of the created column type, the
key variant for key columns), as tests/integration/test_debezium_column_types.py checks on the
real databases."""

from __future__ import annotations

import dataclasses

import pytest

from sink.dialects import Dialect, offline
from sink.model import Column, ColumnType, Kind, TableSpec
from sink.schema import Compare, Evolution, compare, evolve

PG, MY, LITE = offline("postgresql"), offline("mysql"), offline("sqlite")
ID = Column("id", ColumnType(Kind.INT64), nullable=False)
TEMPORAL_KINDS = (Kind.TIME, Kind.TIMESTAMP, Kind.LOCAL_TIMESTAMP)


def spec(*columns: Column, key: tuple[str, ...] = ("id",)) -> TableSpec:
    return TableSpec("t", (ID, *columns) if "id" in key else columns, key)


def created(dialect: Dialect, wanted: TableSpec) -> TableSpec:
    """The table as reflection reads it after `dialect` created it from `wanted`."""
    types = dialect.types

    def reflected(column: Column) -> Column:
        in_key = column.name in wanted.primary_key
        sa_type = types.key_type(column.type) if in_key else types.column_type(column.type)
        return dataclasses.replace(column, type=types.neutral_type(sa_type))

    return dataclasses.replace(wanted, columns=tuple(reflected(c) for c in wanted.columns))


def digits(kind: Kind, precision: int | None) -> ColumnType:
    return ColumnType(kind, precision=precision)


# ------------------------------------------------------------------------------ fractional seconds


@pytest.mark.parametrize("kind", TEMPORAL_KINDS)
@pytest.mark.parametrize(
    ("have", "want", "verdict"),
    [
        (6, 3, Compare.FITS),
        (6, 0, Compare.FITS),
        (3, 3, Compare.FITS),
        (None, 6, Compare.FITS),  # no digits named: microseconds
        (6, None, Compare.FITS),
        (3, 6, Compare.WIDEN),
        (0, 3, Compare.WIDEN),
        (3, None, Compare.WIDEN),
    ],
)
def test_fewer_second_digits_fit_and_more_widen(kind: Kind, have: int | None, want: int | None, verdict: str) -> None:
    assert compare(digits(kind, have), digits(kind, want)) == verdict


@pytest.mark.parametrize("dialect", [PG, MY, LITE], ids=lambda d: d.name)
@pytest.mark.parametrize("kind", TEMPORAL_KINDS)
@pytest.mark.parametrize("now", [0, 3, 6, None])
def test_a_table_created_with_microseconds_takes_any_precision_without_alter(
    dialect: Dialect, kind: Kind, now: int | None
) -> None:
    """Every table created before the precision was honoured has 6 digits: a record that now says
    3 (or 0) fits as it is."""
    before = created(dialect, spec(Column("at", digits(kind, 6))))
    assert not evolve(before, spec(Column("at", digits(kind, now))), dialect.storage_type)


@pytest.mark.parametrize("dialect", [PG, MY, LITE], ids=lambda d: d.name)
@pytest.mark.parametrize("kind", TEMPORAL_KINDS)
@pytest.mark.parametrize("precision", [0, 3, 6, None])
def test_a_table_created_from_a_precision_needs_no_evolution_for_it(
    dialect: Dialect, kind: Kind, precision: int | None
) -> None:
    wanted = spec(Column("at", digits(kind, precision)))
    assert not evolve(created(dialect, wanted), wanted, dialect.storage_type)


@pytest.mark.parametrize("dialect", [PG, MY], ids=lambda d: d.name)
@pytest.mark.parametrize("kind", TEMPORAL_KINDS)
@pytest.mark.parametrize("now", [6, None])
def test_more_second_digits_than_the_column_has_widen_it(dialect: Dialect, kind: Kind, now: int | None) -> None:
    """TIMESTAMP(3) would round (PostgreSQL) or cut (MariaDB) the microseconds: widened like a
    longer string, to the digits the records carry."""
    existing = created(dialect, spec(Column("at", digits(kind, 3))))
    evolution = evolve(existing, spec(Column("at", digits(kind, now))), dialect.storage_type)
    ((column, wider),) = evolution.widen
    assert column == existing.columns[1] and wider.precision == 6
    assert evolution == Evolution(widen=((column, wider),))


def test_sqlite_declares_no_digits_and_never_widens_for_them() -> None:
    existing = created(LITE, spec(Column("at", digits(Kind.TIMESTAMP, 0))))
    assert not evolve(existing, spec(Column("at", digits(Kind.TIMESTAMP, 6))), LITE.storage_type)


# ------------------------------------------------------------------------------ decimals past the maximum


@pytest.mark.parametrize("dialect", [PG, MY, LITE], ids=lambda d: d.name)
@pytest.mark.parametrize(
    ("precision", "scale"), [(80, 10), (1200, 10), (40, 35), (100, 40), (5, -2), (3, 5), (38, None)]
)
def test_a_decimal_cut_to_the_maximum_needs_no_evolution_for_the_next_record(
    dialect: Dialect, precision: int, scale: int | None
) -> None:
    wanted = spec(Column("amount", ColumnType(Kind.DECIMAL, precision=precision, scale=scale)))
    assert not evolve(created(dialect, wanted), wanted, dialect.storage_type)


def test_mysql_widens_a_decimal_up_to_its_maximum_and_no_further() -> None:
    existing = created(MY, spec(Column("amount", ColumnType(Kind.DECIMAL, precision=20, scale=10))))
    wanted = spec(Column("amount", ColumnType(Kind.DECIMAL, precision=90, scale=10)))
    evolution = evolve(existing, wanted, MY.storage_type)
    assert evolution.widen == ((existing.columns[1], ColumnType(Kind.DECIMAL, precision=65, scale=10)),)
    assert not evolve(evolution.apply(existing), wanted, MY.storage_type), "widened once, then it fits"


# ------------------------------------------------------------------------------ MariaDB's key strings


KEY_TYPES = [
    ColumnType(Kind.STRING),  # VARCHAR(255) in the key, LONGTEXT elsewhere
    ColumnType(Kind.STRING, length=100),
    ColumnType(Kind.STRING, length=768),
    ColumnType(Kind.STRING, length=1000),  # VARCHAR(768) in the key
    ColumnType(Kind.BYTES),
    ColumnType(Kind.BYTES, length=1000),  # VARBINARY(1000): was VARBINARY(768) in the key, altered every batch
    ColumnType(Kind.BYTES, length=4000),
]


@pytest.mark.parametrize("key_type", KEY_TYPES, ids=str)
def test_mysql_key_column_created_from_a_type_needs_no_evolution_for_it(key_type: ColumnType) -> None:
    """The key column reads back bounded (string(255)) while `storage_type` of its type says
    unbounded (string, what LONGTEXT reads as): no ALTER, no refusal."""
    wanted = spec(Column("k", key_type, nullable=False), Column("v", ColumnType(Kind.INT32)), key=("k",))
    existing = created(MY, wanted)
    assert not evolve(existing, wanted, MY.storage_type)


def test_mysql_key_string_widens_within_the_index_bound() -> None:
    existing = created(MY, spec(Column("k", ColumnType(Kind.STRING), nullable=False), key=("k",)))
    longer = spec(Column("k", ColumnType(Kind.STRING, length=500), nullable=False), key=("k",))
    evolution = evolve(existing, longer, MY.storage_type)
    assert evolution.widen == ((existing.columns[0], ColumnType(Kind.STRING, length=500)),)
    (statement,) = MY.evolve_statements(existing, evolution)
    # The key's binary collation is kept (a key column made before it took it up then: finer, so still unique).
    assert str(statement.compile(dialect=MY.sa_dialect)) == (
        "ALTER TABLE `t` MODIFY COLUMN `k` VARCHAR(500) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL"
    )
