"""Columns declare the digits a Connect schema names, on the real databases: fractional seconds from
Debezium's propagated source types (TIMESTAMP(3), TIME(3), TIMESTAMPTZ(0)) and decimals past a
database's maximum (cut as Debezium's JDBC sink cuts them), as information_schema reports them;
values at those precisions land exactly, and a value a column cannot hold fails alone, never
rounded. Evolution: a table with 6 digits takes records of 3 without DDL, one with 3 is widened to
6. MariaDB: a key column created from a type takes the next batch of that type without DDL.

The table specs and values come from `connect_json` (the Connect JSON format's own mapping), the rows
go through `Writer` over `SqlStore`, as in the sink."""

from __future__ import annotations

import base64
import datetime as dt
import json
from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy as sa

from sink.adapters.db import SqlStore, create_engine
from sink.errors import RecordRejected
from sink.formats import connect_json
from sink.model import Batch, Column, ColumnType, Coord, Kind, Op, Outcome, RawRecord, Row, Status, TableSpec
from sink.pipeline import Writer, WriteRules
from tests.integration.test_writer_contract import read

pytestmark = pytest.mark.integration

EPOCH = dt.datetime(1970, 1, 1)


def _source(type_: str, length: int, scale: int | None = None) -> dict[str, str]:
    params = {"__debezium.source.column.type": type_, "__debezium.source.column.length": str(length)}
    if scale is not None:
        params["__debezium.source.column.scale"] = str(scale)
    return params


def _decimal(precision: int, scale: int) -> dict[str, Any]:
    params = {"scale": str(scale), "connect.decimal.precision": str(precision)}
    return {"type": "bytes", "name": "org.apache.kafka.connect.data.Decimal", "version": 1, "parameters": params}


SCHEMA: dict[str, Any] = {
    "type": "struct",
    "name": "shop.Reading",
    "optional": False,
    "fields": [
        {"field": "id", "type": "int64", "optional": False},
        # Debezium MicroTimestamp of a TIMESTAMP(3) column (PostgreSQL reports length 29, scale 3).
        {"field": "taken", "type": "int64", "optional": True, "name": "io.debezium.time.MicroTimestamp",
         "parameters": _source("TIMESTAMP", 29, 3)},
        # ZonedTimestamp of a TIMESTAMPTZ(0) column.
        {"field": "at", "type": "string", "optional": True, "name": "io.debezium.time.ZonedTimestamp",
         "parameters": _source("TIMESTAMPTZ", 35, 0)},
        # MicroTime of MySQL's TIME(3): the digits in the length.
        {"field": "clock", "type": "int64", "optional": True, "name": "io.debezium.time.MicroTime",
         "parameters": _source("TIME", 3)},
        {"field": "micro", "type": "int64", "optional": True, "name": "io.debezium.time.MicroTimestamp"},
        {"field": "wide", "optional": True, **_decimal(80, 10)},
        {"field": "fine", "optional": True, **_decimal(40, 35)},
        {"field": "huge", "optional": True, **_decimal(1200, 2)},
    ],
}  # fmt: skip

# information_schema per column: (datetime precision, numeric precision, numeric scale).
EXPECTED = {
    "postgresql": {
        "taken": (3, None, None),
        "at": (0, None, None),
        "clock": (3, None, None),
        "micro": (6, None, None),
        "wide": (None, 80, 10),
        "fine": (None, 40, 35),
        "huge": (None, 1000, 2),
    },
    "mysql": {
        "taken": (3, None, None),
        "at": (0, None, None),
        "clock": (3, None, None),
        "micro": (6, None, None),
        "wide": (None, 65, 10),
        "fine": (None, 35, 30),
        "huge": (None, 65, 2),
    },
}


SCALES = {"wide": 10, "fine": 35, "huge": 2}


def _unscaled(value: Decimal, scale: int) -> str:
    """Connect's Decimal: the big-endian unscaled value at the schema's scale, base64."""
    sign, digits, exponent = value.as_tuple()
    assert isinstance(exponent, int) and exponent + scale >= 0
    unscaled = int("".join(map(str, digits))) * 10 ** (exponent + scale) * (-1 if sign else 1)
    return base64.b64encode(unscaled.to_bytes((unscaled.bit_length() + 8) // 8, "big", signed=True)).decode()


def _micros(value: dt.datetime) -> int:
    return (value - EPOCH) // dt.timedelta(microseconds=1)


def _payload(row: dict[str, Any]) -> dict[str, Any]:
    """`row` as Connect JSON writes it."""
    wire = dict(row)
    for name, scale in SCALES.items():
        if wire[name] is not None:
            wire[name] = _unscaled(wire[name], scale)
    for name in ("taken", "micro"):
        if wire[name] is not None:
            wire[name] = _micros(wire[name])
    if wire["at"] is not None:
        wire["at"] = wire["at"].isoformat().replace("+00:00", "Z")
    if (clock := wire["clock"]) is not None:
        wire["clock"] = ((clock.hour * 60 + clock.minute) * 60 + clock.second) * 10**6 + clock.microsecond
    return wire


def _reading(id_: int, **changes: Any) -> dict[str, Any]:
    row = {
        "id": id_,
        "taken": dt.datetime(2024, 5, 6, 7, 8, 9, 123000),
        "at": dt.datetime(2024, 5, 6, 7, 8, 9, tzinfo=dt.UTC),
        "clock": dt.time(23, 59, 58, 999000),
        "micro": dt.datetime(1999, 12, 31, 23, 59, 59, 999999),
        "wide": Decimal("-" + "9" * 55 + "." + "1234567890"),  # what DECIMAL(65,10) holds at most
        "fine": Decimal("12345." + "1" * 30 + "00000"),  # 30 decimals that count, 5 trailing zeros
        "huge": Decimal("7" * 63 + ".25"),
    }
    return {**row, **changes}


def _spec(name: str) -> TableSpec:
    columns = connect_json.shape(SCHEMA)
    assert isinstance(columns, tuple)
    return TableSpec(name, columns, ("id",))


def _write(store: SqlStore, spec: TableSpec, rows: list[dict[str, Any]]) -> list[Outcome]:
    convert = connect_json.converter(SCHEMA)
    batch = []
    for offset, values in enumerate(rows):
        raw = RawRecord(Coord("readings", 0, offset), None, json.dumps(_payload(values)).encode())
        data = convert(json.loads(raw.value or b""))
        batch.append(Row(raw, spec.name, Op.UPSERT, {"id": data["id"]}, data, spec))
    writer = Writer(store, WriteRules(insert_mode="upsert", auto_create=True, auto_evolve=True))
    return writer.write(Batch(spec.name, spec, tuple(batch)))


def _information_schema(url: str, table: str) -> dict[str, tuple[Any, ...]]:
    engine = create_engine(url)
    schema = "current_schema()" if engine.dialect.name == "postgresql" else "database()"
    query = sa.text(
        "SELECT column_name, datetime_precision, numeric_precision, numeric_scale FROM information_schema.columns"
        f" WHERE table_name = :table AND table_schema = {schema}"
    )
    try:
        with engine.connect() as connection:
            return {r[0]: tuple(r[1:]) for r in connection.execute(query, {"table": table}) if r[0] != "id"}
    finally:
        engine.dispose()


def _same(got: Any, want: Any) -> bool:
    if isinstance(want, dt.datetime) and want.tzinfo is not None and got.tzinfo is None:  # MariaDB: naive UTC
        got = got.replace(tzinfo=dt.UTC)
    return bool(got == want) and type(got) is type(want)


def test_columns_declare_the_digits_and_hold_the_values_exactly(store: SqlStore, url: str, name: str) -> None:
    spec = _spec(name)
    assert {c.name: (c.type.precision, c.type.scale) for c in spec.columns if c.name != "id"} == {
        "taken": (3, None),
        "at": (0, None),
        "clock": (3, None),
        "micro": (6, None),
        "wide": (80, 10),
        "fine": (40, 35),
        "huge": (1200, 2),
    }, "the format's mapping: propagated digits, Connect's own precision"
    rows = [_reading(1), _reading(2, **dict.fromkeys(("taken", "at", "clock", "micro", "wide", "fine", "huge")))]

    outcomes = _write(store, spec, rows)

    assert [o.status for o in outcomes] == [Status.WRITTEN, Status.WRITTEN]
    if store.dialect.name in EXPECTED:
        assert _information_schema(url, name) == EXPECTED[store.dialect.name]
    stored = read(url, name)
    wrong = {k: (stored[0][k], v) for k, v in rows[0].items() if not _same(stored[0][k], v)}
    assert not wrong, f"values that did not land exactly (got, sent): {wrong}"
    assert stored[1] == rows[1]


# The values a column cut to the database's maximum cannot hold: which backends reject them (alone).
TOO_MANY_DIGITS = [
    # 56 whole digits: one more than DECIMAL(65,10) holds (NUMERIC(80,10) holds 70).
    ("wide", Decimal("9" * 56 + ".5"), {"mysql"}),
    # 31 decimals that count: DECIMAL(35,30) would round the last one.
    ("fine", Decimal("1." + "0" * 30 + "1"), {"mysql"}),
    # 999 whole digits: more than NUMERIC(1000,2) and DECIMAL(65,2) hold.
    ("huge", Decimal("1" * 999 + ".5"), {"mysql", "postgresql"}),
]


@pytest.mark.parametrize(("column", "value", "rejected_by"), TOO_MANY_DIGITS, ids=[c for c, _, _ in TOO_MANY_DIGITS])
def test_a_value_with_more_digits_than_the_cut_column_fails_alone(
    store: SqlStore, url: str, name: str, column: str, value: Decimal, rejected_by: set[str]
) -> None:
    spec = _spec(name)
    rows = [_reading(1), _reading(2, **{column: value}), _reading(3)]

    outcomes = _write(store, spec, rows)

    stored = {r["id"]: r for r in read(url, name)}
    if store.dialect.name in rejected_by:
        assert [o.status for o in outcomes] == [Status.WRITTEN, Status.FAILED, Status.WRITTEN]
        assert isinstance(outcomes[1].error, RecordRejected)
        assert sorted(stored) == [1, 3], "the other rows land"
    else:
        assert [o.status for o in outcomes] == [Status.WRITTEN] * 3
        assert stored[2][column] == value, "held exactly"


def test_second_digits_fit_when_fewer_and_widen_when_more(store: SqlStore, url: str, name: str) -> None:
    """A table created with 6 digits (every table before the digits were honoured) takes records of
    3 without DDL; a column of 3 is widened to 6 when records bring microseconds, which then land."""
    base = TableSpec(name, (Column("id", ColumnType(Kind.INT64), nullable=False),), ("id",))

    def spec(precision: int) -> TableSpec:
        return TableSpec(
            name, (*base.columns, Column("at", ColumnType(Kind.LOCAL_TIMESTAMP, precision=precision))), ("id",)
        )

    def row(offset: int, at: dt.datetime, precision: int) -> Row:
        raw = RawRecord(Coord("readings", 0, offset), None, None)
        return Row(raw, name, Op.UPSERT, {"id": offset}, {"id": offset, "at": at}, spec(precision))

    writer = Writer(store, WriteRules(insert_mode="upsert", auto_create=True, auto_evolve=True))
    millis, micros = dt.datetime(2024, 1, 2, 3, 4, 5, 678000), dt.datetime(2024, 1, 2, 3, 4, 5, 678901)
    writer.write(Batch(name, spec(3), (row(1, millis, 3),)))
    created = store.table(name)
    assert created is not None

    outcomes = writer.write(Batch(name, spec(6), (row(2, micros, 6),)))

    assert [o.status for o in outcomes] == [Status.WRITTEN]
    widened = store.table(name)
    assert widened is not None and widened.column("at") is not None
    if store.dialect.name != "sqlite":  # SQLite declares no digits
        assert created.column("at") == Column("at", ColumnType(Kind.LOCAL_TIMESTAMP, precision=3))
        assert widened.column("at") == Column("at", ColumnType(Kind.LOCAL_TIMESTAMP, precision=6))
        assert _information_schema(url, name)["at"][0] == 6
    assert [r["at"] for r in read(url, name)] == [millis, micros], "microseconds kept, not rounded to 3 digits"

    writer.write(Batch(name, spec(3), (row(3, millis, 3),)))
    assert store.table(name) == widened, "fewer digits fit: no DDL"


@pytest.mark.parametrize("url", ["mariadb"], indirect=True)
@pytest.mark.parametrize(
    "key_type",
    [ColumnType(Kind.STRING), ColumnType(Kind.STRING, length=1000), ColumnType(Kind.BYTES, length=1000)],
    ids=str,
)
def test_mariadb_key_column_takes_its_own_type_without_evolution(
    store: SqlStore, url: str, name: str, key_type: ColumnType
) -> None:
    """MariaDB bounds key strings and bytes (no index on TEXT/BLOB): the key column reads back
    narrower than `storage_type` of its type says, which must be neither an ALTER nor a refusal.
    A VARBINARY(768) key for bytes(1000) was both (refused without SINK_AUTO_EVOLVE)."""
    spec = TableSpec(name, (Column("k", key_type, nullable=False), Column("v", ColumnType(Kind.INT32))), ("k",))
    value = b"\x01" * 900 if key_type.kind is Kind.BYTES else "k" * 200

    def batch(offset: int, v: int) -> Batch:
        raw = RawRecord(Coord("readings", 0, offset), None, None)
        return Batch(name, spec, (Row(raw, name, Op.UPSERT, {"k": value}, {"k": value, "v": v}, spec),))

    Writer(store, WriteRules(insert_mode="upsert", auto_create=True)).write(batch(0, 1))
    created = store.table(name)

    no_evolve = Writer(store, WriteRules(insert_mode="upsert", auto_create=True, auto_evolve=False))
    outcomes = no_evolve.write(batch(1, 2))

    assert [o.status for o in outcomes] == [Status.WRITTEN]
    assert store.table(name) == created
    assert [(r["k"], r["v"]) for r in read(url, name)] == [(value, 2)]
