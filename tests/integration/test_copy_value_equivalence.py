"""A value lands the same on every one of PostgreSQL's write paths: COPY in binary (where
`pgbinary.binary_safe` lets a chunk go so), COPY in text, and the driver's executemany (the path of
small plans, and of the isolation's short prefixes after a rejected batch).

Each hostile value is written alone, by the sink's own `Writer` over `SqlStore`, into three tables of
one hand-made shape (every column type the sink writes, and a few it only meets in users' tables):
bulk path as the sink chooses, bulk path with binary switched off, and row by row. The stored values
are compared as PostgreSQL prints them (`col::text`), and the outcomes by status and SQLSTATE. The
session's TimeZone is not UTC, so a value read in it shows.
"""

from __future__ import annotations

import datetime as dt
import decimal
import itertools
import math
import random
import struct
import uuid
import zoneinfo
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import pytest
import sqlalchemy as sa

from sink.adapters import pgbinary, pgcopy
from sink.adapters.db import SqlStore, create_engine
from sink.errors import RecordRejected
from sink.model import Column, ColumnType, Kind, Status, TableSpec
from tests.integration.test_hostile_input import Sink
from tests.integration.test_writer_contract import row, write
from tests.support.db import drop_table, fetch_rows
from tests.support.subclasses import Day, Id, Moment, Rank, Real, Text, Wide

pytestmark = pytest.mark.integration

D = decimal.Decimal
SESSION_ZONE = "America/New_York"
LISBON = zoneinfo.ZoneInfo("Europe/Lisbon")
PLUS_1530 = dt.timezone(dt.timedelta(hours=15, minutes=30))
PLUS_16 = dt.timezone(dt.timedelta(hours=16))
ODD_SECONDS = dt.timezone(dt.timedelta(hours=1, seconds=30))

COLUMNS = {
    "i2": "smallint",
    "i4": "integer",
    "i8": "bigint",
    "f8": "double precision",
    "f4": "real",
    "num": "numeric",
    "num2": "numeric(10,2)",
    "b": "boolean",
    "t": "text",
    "vc": "varchar(5)",
    "bpc": "char(3)",
    "by": "bytea",
    "tz": "timestamptz",
    "ts": "timestamp",
    "ts3": "timestamp(3)",
    "d": "date",
    "tm": "time",
    "tm3": "time(3)",
    "u": "uuid",
    "j": "json",
    "jb": "jsonb",
    "ai": "bigint[]",
    "at": "text[]",
}


class Case(NamedTuple):
    column: str
    value: Any
    binary: bool  # whether the chunk of this value alone goes by binary COPY


def case(column: str, value: Any, binary: bool = False, *, known: str | None = None) -> Any:
    """A case; `known`: the row-by-row path writes it otherwise, for a reason outside COPY."""
    marks = [pytest.mark.xfail(strict=True, reason=known)] if known else []
    return pytest.param(Case(column, value, binary), marks=marks, id=label(column, value))


def label(column: str, value: Any) -> str:
    shown = f"memoryview({bytes(value)!r})" if isinstance(value, memoryview) else repr(value)
    return f"{column}-{shown}"[:60]


# Where executemany writes otherwise than COPY (text and binary alike) for reasons of its own: the
# parameter's type psycopg picks by the value's class, then the server's assignment cast.
CAST_ROUNDS = "executemany: a float8 parameter cast to integer rounds; COPY's text '1.5' is refused"
CAST_FLOAT4 = "executemany rounds the double to real once; COPY rounds its shortest decimal text"
CAST_NUMERIC = "executemany: float8 -> numeric keeps 15 digits; COPY keeps repr's 17"
BOOL_STRICT = "executemany: SQLAlchemy's Boolean refuses a str; COPY's boolean input takes 't', 'yes'"
BYTES_STRICT = "executemany: psycopg refuses a str for bytea; COPY's bytea input takes the text"
TS_CAST = "executemany: timestamptz -> timestamp in the session's zone; text input drops the offset"
OFFSET_16 = "executemany sends binary: an offset of 16 hours is stored; text input refuses it (22009)"
ARRAY_ITEMS = "items of a text[] column are spelled by psycopg's own dumpers, not the server's casts"

ALL_CASES = [
    # integers at the type bounds, bool and other int subclasses
    case("i2", 32767, True),
    case("i2", -32768, True),
    case("i2", 32768),
    case("i4", 2**31 - 1, True),
    case("i4", -(2**31) - 1),
    case("i8", 2**63 - 1, True),
    case("i8", -(2**63), True),
    case("i8", 2**63),
    case("i4", True, known="both refuse, SQLSTATE 42846 row by row and 22P02 by COPY"),
    case("i4", Rank.ONE),
    case("i8", Wide(7)),
    case("i4", 1.0, known=CAST_ROUNDS),
    case("i4", 1.5, known=CAST_ROUNDS),
    case("i4", D("1")),
    case("i4", "12"),
    case("i4", " 12 "),
    case("i4", D("1.5"), known="executemany: a numeric parameter cast to integer rounds; COPY refuses '1.5'"),
    # double precision: ints, specials, subnormals
    case("f8", 2**53, True),
    case("f8", 2**53 + 1),
    case("f8", 10**400),
    case("f8", float("nan"), True),
    case("f8", float("-inf"), True),
    case("f8", -0.0, True),
    case("f8", 5e-324, True),
    case("f8", Real(1.5)),
    case("f8", D("0.1")),
    case("f8", Rank.ONE),
    case("f8", True, known="both refuse, SQLSTATE 42804 row by row and 22P02 by COPY"),
    # real: never binary
    case("f4", 0.1),
    case("f4", 1 + 2**-24, known=CAST_FLOAT4),
    case("f4", 1e39),
    case("f4", 1e-50),
    case("f4", 1e-40),
    case("f4", 16777217),
    case("f4", float("nan")),
    case("f4", D("1.0000000596046448")),
    # numeric: specials, exponents, scale, ints, floats
    case("num", D("1.50"), True),
    case("num", D("-0"), True),
    case("num", D("-0.00"), True),
    case("num", D("1E+5"), True),
    case("num", D("1E+1000"), True),
    case("num", D("1E+1001")),
    case("num", D("1E-1001")),
    case("num", D("1E-20000")),
    case("num", D("NaN")),
    case("num", D("sNaN")),
    case("num", D("-Infinity")),
    case("num", 10**999, True),
    case("num", 10**1000),
    case("num", 0.1),
    case("num", 3.141592653589793, known=CAST_NUMERIC),
    case("num", float("inf")),
    case("num", Rank.ONE),
    case("num", True, known="both refuse, SQLSTATE 42804 row by row and 22P02 by COPY"),
    case("num2", D("1.005"), True),
    case("num2", D("123456789"), True),
    case("num2", D("NaN")),
    case("num2", D("Infinity")),
    case("num2", 2.675),
    # boolean
    case("b", True, True),
    case("b", 1),
    case("b", 0),
    case("b", 2),
    case("b", "yes", known=BOOL_STRICT),
    case("b", Rank.ONE),
    # text: what the schemaless path's type clashes put there
    case("t", "tab\t nl\n cr\r bs\\ \u2028 \U0001f600", True),
    case("t", "a\x00b"),
    case("t", "\\.", True),
    case("t", "\\.\n\\N", True),
    case("t", "\ud800", True),
    case("t", Text("sub")),
    case("t", True),
    case("t", 5),
    case("t", 2**70),
    case("t", Rank.ONE),
    case("t", 5.0),
    case("t", -0.0),
    case("t", 1e15),
    case("t", 1234567890123456.8),
    case("t", 1e16),
    case("t", 0.0001),
    case("t", 1.5e-7),
    case("t", float("nan")),
    case("t", float("-inf")),
    case("t", Real(2.0)),
    case("t", D("1.10")),
    case("t", D("1E+5")),
    case("t", D("1.0E-7")),
    case("t", D("-0")),
    case("t", D("-0.00")),
    case("t", D("sNaN")),
    case("t", D("-Infinity")),
    case("t", D("1E+1000000")),
    case("t", uuid.UUID(int=1)),
    case("t", Id(int=2)),
    case("t", b"ab"),
    case("t", dt.date(2024, 1, 1)),
    case("t", dt.datetime(2024, 1, 1, 12, 0, 0, 500)),
    case("t", dt.datetime(2024, 1, 1, 12, 0, tzinfo=dt.UTC)),
    case("t", dt.datetime(2024, 3, 31, 1, 30, tzinfo=LISBON)),
    case("t", dt.time(1, 2, 3, tzinfo=PLUS_1530)),
    case("t", dt.time(1, tzinfo=LISBON)),
    case("t", dt.timedelta(days=1, microseconds=5)),
    case("t", 123456789012345678.0),
    case("t", 6.127466324669818e16),
    case("t", dt.time(1, 2, 3)),
    case("t", dt.time(1, 2, 3, 120)),
    case("t", dt.datetime(1, 1, 1, 0, 0, 0, 999999)),
    case("t", Moment(2024, 1, 1, 12, 0, 0, 5)),
    case("t", [1, 2]),
    case("t", {"a": 1}),
    case("vc", "abcdef", True),
    case("vc", "abcde   ", True),
    case("vc", True),
    case("vc", 123456),
    case("vc", 1.25),
    case("bpc", "abcd"),
    case("bpc", "ab "),
    case("bpc", [1]),
    # bytea
    case("by", b"\x00\xff", True),
    case("by", bytearray(b"x\x00")),
    case("by", memoryview(b"xy")),
    case("by", [1]),
    case("by", "abc", known=BYTES_STRICT),
    case("by", "\\x4142", known=BYTES_STRICT),
    # instants and wall times
    case("tz", dt.datetime(1, 1, 1, tzinfo=PLUS_1530), True),
    case("tz", dt.datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=dt.timezone(-dt.timedelta(hours=15))), True),
    case("tz", dt.datetime(2024, 3, 31, 1, 30, tzinfo=LISBON), True),
    case("tz", dt.datetime(2024, 10, 27, 1, 30, fold=1, tzinfo=LISBON), True),
    case("tz", dt.datetime(2024, 1, 1, tzinfo=ODD_SECONDS), True),
    case("tz", dt.datetime(2024, 1, 1, tzinfo=PLUS_16), known=OFFSET_16),
    case("tz", dt.datetime(2024, 1, 1)),
    case("tz", Moment(2024, 1, 1, tzinfo=dt.UTC)),
    case("tz", dt.date(2024, 1, 1)),
    case("tz", "2024-01-01 00:00:00+02"),
    case("ts", dt.datetime(1, 1, 1), True),
    case("ts", dt.datetime(9999, 12, 31, 23, 59, 59, 999999), True),
    case("ts", dt.datetime(2024, 1, 1, tzinfo=PLUS_1530), known=TS_CAST),
    case("ts", dt.date(2024, 1, 1)),
    case("ts", Moment(2024, 1, 1)),
    case("ts3", dt.datetime(2024, 1, 1, 0, 0, 0, 999500), True),
    case("ts3", dt.datetime(9999, 12, 31, 23, 59, 59, 999999), True),
    case("d", dt.date(1, 1, 1), True),
    case("d", dt.date(9999, 12, 31), True),
    case("d", dt.datetime(2024, 1, 1, 23, 0)),
    case("d", dt.datetime(2024, 1, 1, 23, 0, tzinfo=PLUS_1530)),
    case("d", Day(2024, 1, 1)),
    case("tm", dt.time(23, 59, 59, 999999), True),
    case("tm", dt.time(1, tzinfo=PLUS_1530)),
    case("tm", dt.time(1, fold=1), True),
    case("tm3", dt.time(23, 59, 59, 999600), True),
    # uuid
    case("u", uuid.UUID(int=2**128 - 1), True),
    case("u", Id(int=5)),
    case("u", "{00000000-0000-0000-0000-00000000000A}"),
    # documents
    case("jb", {"b": 1, "a": 2, "n": -0.0, "big": 2**70}, True),
    case("jb", {"a": float("nan")}, True),
    case("jb", {"a": "\x00"}, True),
    case("jb", {"a": "\ud800"}, True),
    case("jb", {"a": D("1.10"), "b": b"xy", "c": dt.datetime(2024, 1, 1, tzinfo=dt.UTC)}, True),
    case("jb", "str", True),
    case("j", [1, 2], True, known="executemany binds jsonb, cast to json: the server's spacing"),
    case("j", {"a": "\x00"}, True, known="executemany binds jsonb, which refuses \\u0000; json keeps it"),
    case("j", {"a": float("inf")}, True),
    # native arrays: never binary
    case("ai", [1, None, 2**63 - 1]),
    case("ai", [2**63]),
    case("ai", [[1], [2]]),
    case("ai", [1.0], known=CAST_ROUNDS),
    case("ai", "{1,2}"),  # a str for an array column: refused on every path (it was parsed by COPY)
    case("at", "abc"),  # (row by row, SQLAlchemy's ARRAY processor stored it as {a,b,c})
    case("at", ""),
    case("at", ["a", "b,c", 'q"', "", None, "NULL"]),
    case("at", [True], known=ARRAY_ITEMS),
    case("at", [uuid.UUID(int=1)], known=ARRAY_ITEMS),
]

try:
    import numpy as np
except ImportError:  # pragma: no cover
    np = None  # type: ignore[assignment]
if np is not None:  # numpy's scalars: subclasses of float (float64) or not numbers to Python at all
    ALL_CASES += [
        case("i8", np.int64(5)),
        case("i2", np.int64(40000)),
        case("f8", np.float64(0.1)),
        case("f8", np.float32(0.1)),
        case("f4", np.float32(0.1)),
        case("num", np.float64(0.1)),
        case("b", np.bool_(True)),
        case("t", np.float64(5.0)),
        case("t", np.int64(5)),
        case("t", np.bool_(False)),
    ]


# ------------------------------------------------------------------------------ the three paths


class Landed(NamedTuple):
    status: Status
    sqlstate: str | None
    reason: str  # the error's class and message, the table's name taken out
    stored: str | None  # the column as PostgreSQL prints it
    binary: tuple[bool, ...]  # the format of each COPY (none row by row)


@dataclass
class Path:
    store: SqlStore
    table: str
    text_only: bool = False


class Paths:
    """Three tables of `COLUMNS`: the bulk path as the sink chooses, the bulk path by text COPY only,
    and row by row; `land` writes a value into each alone (a batch of one row, its own id)."""

    def __init__(self, url: str, suffix: str) -> None:
        self.url = url
        self.ids = itertools.count(1)
        self.formats: list[bool] = []
        self.text_only = False
        self.paths = {
            "chosen": Path(self._store(url, bulk=True), f"eqv_chosen_{suffix}"),
            "text": Path(self._store(url, bulk=True), f"eqv_text_{suffix}", text_only=True),
            "rows": Path(self._store(url, bulk=False), f"eqv_rows_{suffix}"),
        }
        ddl = ", ".join(f"{name} {type_}" for name, type_ in COLUMNS.items())
        for path in self.paths.values():
            with path.store.engine.begin() as connection:
                connection.exec_driver_sql(f"CREATE TABLE {path.table} (id bigint PRIMARY KEY, {ddl})")

    @staticmethod
    def _store(url: str, bulk: bool) -> SqlStore:
        engine = create_engine(url)

        @sa.event.listens_for(engine, "connect")
        def _zone(dbapi_connection: Any, _record: Any) -> None:
            dbapi_connection.execute(f"SET TimeZone = '{SESSION_ZONE}'")
            dbapi_connection.commit()

        store = SqlStore(engine)
        store.dialect.bulk_min_rows = 1 if bulk else None  # type: ignore[misc]
        return store

    def binary_safe(self, types: Sequence[int], rows: Sequence[Sequence[Any]]) -> bool:
        """Stands in for `pgcopy.binary_safe`: the real decision, recorded; text while `text_only`."""
        binary = not self.text_only and pgbinary.binary_safe(types, rows)
        self.formats.append(binary)
        return binary

    def land(self, column: str, value: Any) -> dict[str, Landed]:
        landed = {}
        for name, path in self.paths.items():
            key = next(self.ids)
            self.formats, self.text_only = [], path.text_only
            spec = path.store.table(path.table)
            assert spec is not None
            (outcome,) = write(path.store, spec, [row(spec, key, {"id": key, column: value})], mode="insert")
            with path.store.engine.connect() as connection:
                stored = connection.exec_driver_sql(
                    f"SELECT {column}::text FROM {path.table} WHERE id = {key}"
                ).scalar_one_or_none()
            error = outcome.error
            reason = f"{type(error).__name__}: {error}".replace(path.table, "<table>") if error else ""
            landed[name] = Landed(outcome.status, getattr(error, "sqlstate", None), reason, stored, tuple(self.formats))
        self.text_only = False  # the sink's own choice again, for whatever runs next
        return landed

    def land_batch(self, column: str, values: Sequence[Any]) -> dict[str, list[tuple[Status, str | None]]]:
        """`values` written as one batch (row by row, or COPY chunks of the mixed classes) into each
        table: per path, each value's status and stored text. `formats`: those of the first path."""
        landed, chosen_formats = {}, []
        for name, path in self.paths.items():
            keys = [next(self.ids) for _ in values]
            self.text_only = path.text_only
            self.formats = [] if name == "chosen" else self.formats
            spec = path.store.table(path.table)
            assert spec is not None
            rows = [row(spec, key, {"id": key, column: value}) for key, value in zip(keys, values, strict=True)]
            outcomes = write(path.store, spec, rows, mode="insert")
            with path.store.engine.connect() as connection:
                stored: dict[int, str | None] = dict(
                    connection.exec_driver_sql(
                        f"SELECT id, {column}::text FROM {path.table} WHERE id = ANY(%(keys)s)", {"keys": keys}
                    ).all()
                )
            landed[name] = [(o.status, stored.get(key)) for o, key in zip(outcomes, keys, strict=True)]
            if name == "chosen":
                chosen_formats = list(self.formats)
        self.formats, self.text_only = chosen_formats, False
        return landed

    def close(self) -> None:
        for path in self.paths.values():
            path.store.engine.dispose()
            drop_table(self.url, path.table)


@pytest.fixture(scope="module")
def paths(pg_url: str) -> Iterator[Paths]:
    three = Paths(pg_url, uuid.uuid4().hex[:8])
    patch = pytest.MonkeyPatch()
    patch.setattr(pgcopy, "binary_safe", three.binary_safe)
    try:
        yield three
    finally:
        patch.undo()
        three.close()


@pytest.fixture(scope="module")
def landings() -> dict[Case, dict[str, Landed]]:
    """Each case written once per module, whichever test asks first (by `landed`)."""
    return {}


def _key(case_: Case) -> Case:
    """A hashable stand-in for the case (dicts and lists are values here)."""
    return Case(case_.column, _Frozen(case_.value), case_.binary)


class _Frozen:
    def __init__(self, value: Any) -> None:
        self.value = value

    def __hash__(self) -> int:
        return hash(repr(self.value))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Frozen) and repr(self.value) == repr(other.value)


def landed(landings: dict[Case, dict[str, Landed]], paths: Paths, c: Case) -> dict[str, Landed]:
    key = _key(c)
    if key not in landings:
        landings[key] = paths.land(c.column, c.value)
    return landings[key]


# ------------------------------------------------------------------------------ binary lands as text


BINARY_CASES = [Case(*p.values[0]) for p in ALL_CASES]


@pytest.mark.parametrize("c", BINARY_CASES, ids=[label(c.column, c.value) for c in BINARY_CASES])
def test_binary_copy_lands_and_refuses_as_text_copy(
    paths: Paths, landings: dict[Case, dict[str, Landed]], c: Case
) -> None:
    got = landed(landings, paths, c)
    chosen, text = got["chosen"], got["text"]

    assert chosen.binary == (c.binary,), "the format binary_safe picks for this value alone"
    assert text.binary == (False,)
    assert chosen[:4] == text[:4], f"binary COPY: {chosen}; text COPY: {text}"


# ------------------------------------------------------------------------------ COPY lands as row by row


@pytest.mark.parametrize("c", ALL_CASES)
def test_copy_lands_as_row_by_row(paths: Paths, landings: dict[Case, dict[str, Landed]], c: Case) -> None:
    got = landed(landings, paths, c)
    copied, rows = got["text"], got["rows"]

    assert rows.binary == (), "written by executemany"
    assert (copied.status, copied.stored) == (rows.status, rows.stored), f"COPY: {copied}; row by row: {rows}"
    if copied.sqlstate and rows.sqlstate:
        assert copied.sqlstate == rows.sqlstate


MIXED = [
    "plain",
    None,
    True,
    5.0,
    D("1E+5"),
    uuid.UUID(int=3),
    dt.datetime(2024, 7, 1, 12, 0, 0, 500),
    dt.datetime(2024, 7, 1, 12, 0, tzinfo=dt.UTC),
    dt.datetime(2024, 7, 1, 12, 0, tzinfo=LISBON),
    dt.time(1, 2, 3, 40),
    dt.date(2024, 2, 29),
    7,
    Rank.ONE,
    float("nan"),
    False,
    -0.0,
    D("-0.00"),
    Real(3.0),
    1e300,
]


def test_a_chunk_of_mixed_classes_for_a_text_column_lands_as_row_by_row(paths: Paths) -> None:
    landed = paths.land_batch("t", MIXED * 2)

    assert landed["chosen"] == landed["text"] == landed["rows"]
    assert {status for status, _ in landed["rows"]} == {Status.WRITTEN}


def test_a_chunk_of_mixed_classes_for_a_varchar_column_is_refused_row_for_row(paths: Paths) -> None:
    landed = paths.land_batch("vc", [*MIXED, "fits", 12345, 123456])

    assert landed["chosen"] == landed["text"] == landed["rows"]
    assert landed["rows"][-1][0] is Status.FAILED and landed["rows"][-2] == (Status.WRITTEN, "12345")


def test_a_key_of_another_class_for_a_text_key_column_is_one_key_on_both_paths(
    pg_store: SqlStore, table: str, pg_url: str
) -> None:
    """An upsert's key spelled otherwise by COPY than by executemany would be another key: the
    second write would add a row instead of replacing the first."""
    spec = TableSpec(
        table, (Column("id", ColumnType(Kind.STRING), nullable=False), Column("v", ColumnType(Kind.INT64))), ("id",)
    )
    keys: list[Any] = [5.0, uuid.UUID(int=9), D("1E+2"), dt.datetime(2024, 1, 1, 0, 0, 0, 100)]
    bulk = [*keys, *(f"k{i}" for i in range(20))]  # 16 rows or more: COPY and a merge
    assert pg_store.dialect.bulk_min_rows is not None and len(bulk) >= pg_store.dialect.bulk_min_rows
    first = write(pg_store, spec, [row(spec, n, {"id": k, "v": 1}) for n, k in enumerate(bulk)])
    again = write(pg_store, spec, [row(spec, 100 + n, {"id": k, "v": 2}) for n, k in enumerate(keys)])  # executemany

    assert {o.status for o in [*first, *again]} == {Status.WRITTEN}
    stored = {r["id"]: r["v"] for r in fetch_rows(pg_url, table)}
    assert len(stored) == len(bulk), f"one row per key: {sorted(stored)}"
    assert [stored[k] for k in ("5", "00000000-0000-0000-0000-000000000009", "100", "2024-01-01 00:00:00.0001")] == [
        2
    ] * 4


def _random_values(column: str, rng: random.Random, count: int) -> list[Any]:
    """Values of the classes binary takes for `column`, at random over their whole range."""
    zones = [dt.UTC, LISBON, zoneinfo.ZoneInfo("Asia/Kathmandu"), zoneinfo.ZoneInfo("America/St_Johns"), PLUS_1530]
    zones += [dt.timezone(dt.timedelta(minutes=rng.randint(-959, 959), seconds=rng.randint(0, 59)))]

    def moment() -> dt.datetime:
        seconds = rng.randint(0, int((dt.datetime.max - dt.datetime.min).total_seconds()) - 1)
        return dt.datetime.min + dt.timedelta(seconds=seconds, microseconds=rng.randint(0, 999999))

    def aware() -> dt.datetime:
        # ZoneInfo has no rule past 2037: the years around today, where its gaps and folds are
        wall = (
            moment()
            if rng.random() < 0.5
            else dt.datetime(rng.randint(1900, 2100), 1, 1)
            + dt.timedelta(minutes=rng.randint(0, 366 * 24 * 60), microseconds=rng.randint(0, 999999))
        )
        return wall.replace(tzinfo=rng.choice(zones), fold=rng.randint(0, 1))

    def double() -> float:
        value = struct.unpack("<d", rng.getrandbits(64).to_bytes(8, "little"))[0]
        return value if math.isfinite(value) else rng.uniform(-1, 1)

    def decimal_() -> D:
        digits = "".join(rng.choice("0123456789") for _ in range(rng.choice([1, 5, 20, 100, 999])))
        return D(f"{rng.choice('+-')}{digits}E{rng.randint(-1000, 1000 - len(digits))}")

    make: Callable[[], Any] = {
        "i2": lambda: rng.randint(-(2**15), 2**15 - 1),
        "i4": lambda: rng.choice([rng.randint(-(2**31), 2**31 - 1), rng.randint(-9, 9)]),
        "i8": lambda: rng.randint(-(2**63), 2**63 - 1),
        "f8": lambda: double() if rng.random() < 0.8 else rng.randint(-(2**53), 2**53),
        "num": lambda: decimal_() if rng.random() < 0.8 else rng.randint(-(10**999), 10**999),
        "num2": lambda: D(rng.randint(-(10**10), 10**10)).scaleb(rng.randint(-6, -2)),
        "tz": aware,
        "ts": moment,
        "ts3": moment,
        "d": lambda: moment().date(),
        "tm": lambda: moment().time(),
        "tm3": lambda: moment().time(),
        "t": lambda: "".join(chr(rng.choice([rng.randint(1, 0x7F), rng.randint(0x80, 0xD7FF)])) for _ in range(9)),
        "u": lambda: uuid.UUID(int=rng.getrandbits(128)),
        "by": lambda: rng.randbytes(rng.randint(0, 40)),
    }[column]
    return [make() for _ in range(count)]


RANDOM_COLUMNS = ["i2", "i4", "i8", "f8", "num", "num2", "tz", "ts", "ts3", "d", "tm", "tm3", "t", "u", "by"]


@pytest.mark.parametrize("column", RANDOM_COLUMNS)
def test_random_values_binary_takes_land_as_by_text(paths: Paths, column: str) -> None:
    values = _random_values(column, random.Random(f"{column}-20261130"), 200)
    landed = paths.land_batch(column, values)

    assert paths.formats[0] is True, "the batch went by binary COPY"
    assert landed["chosen"] == landed["text"]
    assert landed["chosen"] == landed["rows"], "and as row by row"
    if column != "num2":  # numeric(10,2): some overflow, and the batch is isolated
        assert {status for status, _ in landed["chosen"]} == {Status.WRITTEN}


# ------------------------------------------------------------------------------ through the pipeline


@pytest.fixture
def pg_store(pg_url: str) -> Iterator[SqlStore]:
    engine = create_engine(pg_url)
    yield SqlStore(engine)
    engine.dispose()


@pytest.fixture
def table(pg_url: str, unique_name: str) -> Iterator[str]:
    yield unique_name
    drop_table(pg_url, unique_name)


def test_a_value_lands_the_same_whatever_else_its_batch_holds(pg_store: SqlStore, table: str, pg_url: str) -> None:
    """Schemaless records whose numbers meet a text column: a clean batch of 20 goes by COPY; the
    same batch with one unrelated bad row is isolated, its short prefixes row by row."""
    sink = Sink(pg_store, mode="upsert")
    assert {o.status for o in sink.send(table, [{"id": 0, "n": 1, "t": "text"}])} == {Status.WRITTEN}
    clashes = [5.0, -0.0, 1e15, 1e-7, 2.5, 0.1]

    def batch(first_id: int, bad: bool) -> list[dict[str, Any]]:
        records = [{"id": first_id + i, "n": i, "t": f"r{i}"} for i in range(20)]
        for i, value in enumerate(clashes):
            records[2 * i]["t"] = value
        if bad:
            records[19]["t"] = "a\x00b"  # a NUL: that row's error, and the batch is isolated
        return records

    clean, isolated = sink.send(table, batch(100, bad=False)), sink.send(table, batch(200, bad=True))

    assert all(o.status is Status.WRITTEN for o in clean)
    assert [o.status for o in isolated].count(Status.FAILED) == 1
    stored = {r["id"]: r["t"] for r in fetch_rows(pg_url, table, order_by="id")}
    texts = [stored[100 + 2 * i] for i in range(len(clashes))]
    assert texts == [stored[200 + 2 * i] for i in range(len(clashes))]
    assert texts == ["5", "-0", "1e+15", "1e-07", "2.5", "0.1"], "as PostgreSQL's cast spells them"


def test_an_array_for_a_text_column_is_refused_on_the_bulk_path_too(
    pg_store: SqlStore, table: str, pg_url: str
) -> None:
    sink = Sink(pg_store, mode="upsert")
    assert {o.status for o in sink.send(table, [{"id": 0, "n": 1, "t": "text"}])} == {Status.WRITTEN}
    records = [{"id": i, "n": i, "t": f"r{i}"} for i in range(1, 21)]
    records[4]["t"] = [1, 2]
    records[9]["t"] = ["x"]  # lists only: a dict fails psycopg's COPY, whose isolation refuses the lot
    outcomes = sink.send(table, records)

    failed = {o.raw.coord.offset: o.error for o in outcomes if o.status is Status.FAILED}
    assert sorted(failed) == [5, 10]
    for error in failed.values():
        assert isinstance(error, RecordRejected) and "nested value" in str(error)
    stored = {r["id"]: r["t"] for r in fetch_rows(pg_url, table, order_by="id")}
    assert 5 not in stored and 10 not in stored, "never the array's literal '{1,2}' as text"
    assert len(stored) == 19
