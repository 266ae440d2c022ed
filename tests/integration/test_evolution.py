"""Table evolution (SINK_AUTO_EVOLVE) on real PostgreSQL, MariaDB and SQLite: what is altered, what
is left alone because it fits, and what is refused with a message naming table, column and types."""

from __future__ import annotations

import decimal
from collections.abc import Mapping, Sequence
from typing import Any

import pytest
import sqlalchemy as sa

from sink.adapters.db import SqlStore, create_engine
from sink.errors import SchemaRefused
from sink.model import Batch, Column, ColumnType, Coord, Kind, Op, Outcome, RawRecord, Row, Status, TableSpec
from sink.pipeline import Writer, WriteRules

pytestmark = pytest.mark.integration

ID = Column("id", ColumnType(Kind.INT64), nullable=False)
INT32, INT64 = ColumnType(Kind.INT32), ColumnType(Kind.INT64)
STRING = ColumnType(Kind.STRING)


def spec(name: str, *columns: Column) -> TableSpec:
    return TableSpec(name, (ID, *columns), ("id",))


def write(store: SqlStore, table: TableSpec, *values: Mapping[str, Any], evolve: bool = True) -> list[Outcome]:
    outcomes = _write(store, table, values, evolve)
    assert [o.status for o in outcomes] == [Status.WRITTEN] * len(values)
    return outcomes


def refused(store: SqlStore, table: TableSpec, *values: Mapping[str, Any], evolve: bool = True) -> SchemaRefused:
    """Write records the table cannot take: each is a SchemaRefused record error (one reason)."""
    outcomes = _write(store, table, values, evolve)
    assert [o.status for o in outcomes] == [Status.FAILED] * len(values)
    assert all(isinstance(o.error, SchemaRefused) for o in outcomes)
    assert isinstance(outcomes[0].error, SchemaRefused)
    return outcomes[0].error


def _write(store: SqlStore, table: TableSpec, values: Sequence[Mapping[str, Any]], evolve: bool) -> list[Outcome]:
    rows = tuple(
        Row(RawRecord(Coord("evolution", 0, v["id"]), None, None), table.name, Op.UPSERT, {"id": v["id"]}, v, table)
        for v in values
    )
    writer = Writer(store, WriteRules("upsert", auto_create=True, auto_evolve=evolve))
    return writer.write(Batch(table.name, table, rows))


def reflected(url: str, name: str) -> TableSpec:
    engine = create_engine(url)
    try:
        table = SqlStore(engine).table(name)
    finally:
        engine.dispose()
    assert table is not None
    return table


def read(url: str, name: str) -> list[dict[str, Any]]:
    engine = create_engine(url)
    try:
        fresh = SqlStore(engine)
        table = fresh.sa_table(reflected(url, name))
        with engine.connect() as connection:
            return [dict(r) for r in connection.execute(sa.select(table).order_by(table.c.id)).mappings()]
    finally:
        engine.dispose()


# ------------------------------------------------------------------------------ applied


def test_new_optional_field_adds_a_nullable_column(store: SqlStore, url: str, name: str) -> None:
    write(store, spec(name, Column("a", STRING)), {"id": 1, "a": "x"})
    write(store, spec(name, Column("a", STRING), Column("b", INT64)), {"id": 2, "a": "y", "b": 7})

    assert reflected(url, name).column("b") == Column("b", INT64, nullable=True)
    assert read(url, name) == [{"id": 1, "a": "x", "b": None}, {"id": 2, "a": "y", "b": 7}]


def test_new_required_field_with_a_default_fills_existing_rows(store: SqlStore, url: str, name: str) -> None:
    write(store, spec(name, Column("a", STRING)), {"id": 1, "a": "x"})
    status = Column("status", ColumnType(Kind.STRING, length=20), nullable=False, default="new", has_default=True)
    note = Column("note", STRING, nullable=False, default="it's 100% :ok", has_default=True)  # TEXT default
    write(store, spec(name, Column("a", STRING), status, note), {"id": 2, "a": "y", "status": "paid", "note": "n"})

    assert [(r["status"], r["note"]) for r in read(url, name)] == [("new", "it's 100% :ok"), ("paid", "n")]
    assert not reflected(url, name).column("status").nullable  # type: ignore[union-attr]


def test_field_that_becomes_optional_drops_not_null(store: SqlStore, url: str, name: str) -> None:
    write(store, spec(name, Column("a", STRING, nullable=False), Column("b", INT32)), {"id": 1, "a": "x", "b": 1})
    write(store, spec(name, Column("a", STRING), Column("b", INT32)), {"id": 2, "a": None, "b": 2})

    assert reflected(url, name).column("a") == Column("a", STRING, nullable=True)
    assert read(url, name) == [{"id": 1, "a": "x", "b": 1}, {"id": 2, "a": None, "b": 2}], "rows kept (SQLite rebuilds)"


@pytest.mark.parametrize(
    ("steps", "values"),
    [
        pytest.param([INT32, INT64], [2**31 - 1, 2**40], id="int32-int64"),
        pytest.param([ColumnType(Kind.FLOAT32), ColumnType(Kind.FLOAT64)], [1.5, 3.141592653589793], id="float-double"),
        pytest.param(
            [ColumnType(Kind.STRING, length=50), ColumnType(Kind.STRING, length=200), STRING],
            ["a" * 50, "b" * 200, "c" * 5000],
            id="varchar50-varchar200-text",
        ),
        pytest.param(
            [ColumnType(Kind.DECIMAL, precision=10, scale=2), ColumnType(Kind.DECIMAL, precision=20, scale=2)],
            [decimal.Decimal("12345678.91"), decimal.Decimal("123456789012345678.91")],
            id="decimal10-decimal20",
        ),
    ],
)
def test_safe_widening_alters_the_column(
    store: SqlStore, url: str, name: str, steps: list[ColumnType], values: list[Any]
) -> None:
    for step, (type_, value) in enumerate(zip(steps, values, strict=True)):
        write(store, spec(name, Column("v", type_, nullable=False)), {"id": step, "v": value})
        assert reflected(url, name).column("v") == Column("v", store.storage_type(type_), nullable=False)

    assert [r["v"] for r in read(url, name)] == values, "old values kept, wide values fit"


def test_widening_and_dropping_not_null_of_one_column_at_once(store: SqlStore, url: str, name: str) -> None:
    write(store, spec(name, Column("v", INT32, nullable=False)), {"id": 1, "v": 1})
    write(store, spec(name, Column("v", INT64)), {"id": 2, "v": 2**40}, {"id": 3, "v": None})

    assert reflected(url, name).column("v") == Column("v", store.storage_type(INT64), nullable=True)
    assert [r["v"] for r in read(url, name)] == [1, 2**40, None]


def test_a_changed_column_keeps_its_default(store: SqlStore, url: str, name: str) -> None:
    """MySQL's MODIFY and SQLite's rebuild restate the column: the reflected DEFAULT goes along."""
    column = Column("v", INT32, nullable=False, default=5, has_default=True)
    write(store, spec(name, column), {"id": 1, "v": 1})
    write(store, spec(name, Column("v", INT64, default=5, has_default=True)), {"id": 2, "v": None})
    with store.engine.begin() as connection:  # a row without the column takes the DEFAULT
        connection.execute(sa.insert(sa.table(name, sa.column("id"))), [{"id": 3}])

    assert [r["v"] for r in read(url, name)] == [1, None, 5]


def test_narrower_type_fits_without_ddl(store: SqlStore, url: str, name: str) -> None:
    write(store, spec(name, Column("v", INT64)), {"id": 1, "v": 2**40})
    write(store, spec(name, Column("v", INT32)), {"id": 2, "v": 5}, evolve=False)  # nothing to evolve

    assert reflected(url, name).column("v") == Column("v", store.storage_type(INT64))
    assert [r["v"] for r in read(url, name)] == [2**40, 5]


# ------------------------------------------------------------------------------ refused


def test_incompatible_type_change_is_refused(store: SqlStore, url: str, name: str) -> None:
    write(store, spec(name, Column("amount", STRING)), {"id": 1, "amount": "12"})
    error = refused(store, spec(name, Column("amount", INT64)), {"id": 2, "amount": 12})

    message = str(error)
    for part in (f"table {name!r}", "column 'amount'", "is string but records now carry int64", "ALTER TABLE"):
        assert part in message
    assert reflected(url, name).column("amount") == Column("amount", STRING), "table untouched"


def test_new_required_field_without_default_is_refused(store: SqlStore, url: str, name: str) -> None:
    write(store, spec(name, Column("a", STRING)), {"id": 1, "a": "x"})
    sku = Column("sku", STRING, nullable=False)
    error = refused(store, spec(name, Column("a", STRING), sku), {"id": 2, "a": "y", "sku": "s"})

    message = str(error)
    assert f"table {name!r}" in message and "new column 'sku' (string) is required and has no default" in message
    assert "make the field optional or give it a default" in message
    assert "ADD COLUMN" in message and "sku" in message, "the DDL to run by hand is suggested"
    assert reflected(url, name).column("sku") is None


def test_without_auto_evolve_a_needed_change_is_refused(store: SqlStore, url: str, name: str) -> None:
    write(store, spec(name, Column("a", STRING)), {"id": 1, "a": "x"})
    wider = spec(name, Column("a", STRING), Column("b", STRING))
    error = refused(store, wider, {"id": 2, "a": "y", "b": "z"}, evolve=False)
    assert "SINK_AUTO_EVOLVE" in str(error)
