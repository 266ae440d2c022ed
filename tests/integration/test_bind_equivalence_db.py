"""What the sink stores on the real SQLite and MariaDB (positional and named paramstyle) is what
SQLAlchemy's own execution stores for the same values, whichever way the rows were bound:

- A: the sink's Writer, one batch (`rows_binder`, column by column, the cheap timestamp processors);
- B: plain SQLAlchemy `insert()` executed row by row, through a table whose timestamp columns are
  SQLAlchemy's own DATETIME (not the sink's fast processors), with the dialect's documented `bind`
  (instants to naive UTC) applied to the input: no code of executemany.py on this path;
- C: the Writer again, with rejected rows among the good ones (a NOT NULL violation the database
  refuses, a document for a scalar column the binder refuses), so chunks fall back to the row-wise
  binder and good rows are re-written in the bisection's prefixes;
- V: the Writer under a version field (SQLAlchemy's own executemany, `bind` on every value).

Tables are compared as the driver reads them back (raw DB-API rows, no SQLAlchemy processing), and
the rows each path refused must be the same rows. Random values with fixed seeds."""

from __future__ import annotations

import datetime as dt
import decimal
import random
import uuid
import zoneinfo
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.dialects import mysql

from sink.adapters.db import MYSQL_SQL_MODE, SqlStore, create_engine, json_dumps
from sink.adapters.executemany import compile_for_driver, holds_documents, row_binder
from sink.dialects import SqliteDialect
from sink.dialects.mysql import DateTimeText
from sink.dialects.types import UtcDateTime
from sink.model import Batch, Column, ColumnType, Coord, Kind, Op, RawRecord, Row, Status, TableSpec
from sink.pipeline import Writer, WriteRules
from tests.support.db import drop_table

pytestmark = pytest.mark.integration

ZONES = (
    dt.UTC,
    zoneinfo.ZoneInfo("UTC"),
    dt.timezone(dt.timedelta(0), "UTC"),
    zoneinfo.ZoneInfo("Europe/Lisbon"),
    zoneinfo.ZoneInfo("America/New_York"),
    dt.timezone(dt.timedelta(hours=-12)),
    dt.timezone(dt.timedelta(hours=14)),
)


def ct(kind: Kind, **kw: Any) -> ColumnType:
    return ColumnType(kind, **kw)


COLUMNS = (
    Column("id", ct(Kind.INT64), nullable=False),
    Column("ver", ct(Kind.INT64)),
    Column("req", ct(Kind.INT32), nullable=False),  # None here is a row the database refuses
    Column("i", ct(Kind.INT64)),
    Column("f64", ct(Kind.FLOAT64)),
    Column("f32", ct(Kind.FLOAT32)),
    Column("b", ct(Kind.BOOLEAN)),
    Column("s", ct(Kind.STRING)),
    Column("a b", ct(Kind.STRING, length=40)),
    Column("a_b", ct(Kind.STRING, length=40)),
    Column("p%c", ct(Kind.STRING, length=40)),
    Column("by", ct(Kind.BYTES)),
    Column("dec", ct(Kind.DECIMAL, precision=20, scale=4)),
    Column("vdec", ct(Kind.DECIMAL)),
    Column("d", ct(Kind.DATE)),
    Column("t", ct(Kind.TIME, precision=6)),
    Column("ts", ct(Kind.TIMESTAMP, precision=6)),
    Column("ts3", ct(Kind.TIMESTAMP, precision=3)),
    Column("lts", ct(Kind.LOCAL_TIMESTAMP, precision=6)),
    Column("u", ct(Kind.UUID)),
    Column("j", ct(Kind.JSON)),
    Column("arr", ct(Kind.ARRAY, item=ct(Kind.INT64))),
)
NAMES = tuple(c.name for c in COLUMNS)


def instant(rng: random.Random, mariadb: bool) -> dt.datetime:
    year = rng.choice((1000, 1001, 1969, 1970, 2024, 2038, 9998, rng.randint(1001, 9998)))
    if not mariadb:
        year = rng.choice((year, 1, 2, 999))
    return dt.datetime(
        year,
        rng.randint(1, 12),
        rng.randint(1, 28),
        rng.randint(0, 23),
        rng.randint(0, 59),
        rng.randint(0, 59),
        rng.choice((0, 0, 1, 999_999, 500, rng.randint(0, 999_999))),
        tzinfo=rng.choice(ZONES),
        fold=rng.randint(0, 1),
    )


def text(rng: random.Random, size: int) -> str:
    return "".join(rng.choice("aZ \x00'\"\\%s:?é中🎉") for _ in range(rng.randint(0, size)))


def row_values(rng: random.Random, n: int, mariadb: bool) -> dict[str, Any]:
    """Values each database holds, in the classes the formats give and a few class mixes."""
    local = instant(rng, mariadb).replace(tzinfo=None)
    return {
        "id": n,
        "ver": rng.randint(0, 3),
        "req": rng.choice((1, True, -7)),
        "i": rng.choice((0, -1, 2**63 - 1, -(2**63), True, rng.randint(-(2**40), 2**40))),
        "f64": rng.choice((rng.uniform(-1e9, 1e9), -0.0, 5e-324, 1.7976931348623157e308, 3, 0.1)),
        "f32": rng.choice((0.1, 1.5, -2.25, 3.4e38, 7)),
        "b": rng.choice((True, False, 0, 1)),
        "s": text(rng, 30),
        "a b": text(rng, 10),
        "a_b": text(rng, 10),
        "p%c": rng.choice(("%s", "%(x)s", "%%", text(rng, 10))),
        "by": bytes(rng.randrange(256) for _ in range(rng.randint(0, 12))),
        "dec": rng.choice(
            (decimal.Decimal(rng.randint(-(10**15), 10**15)).scaleb(-4), decimal.Decimal("0.1000"), 12, 1.5)
        ),
        "vdec": rng.choice(
            (
                decimal.Decimal(rng.randint(-(10**25), 10**25)).scaleb(-rng.randint(0, 30)),
                decimal.Decimal("1E+5"),
                decimal.Decimal("1E-30"),
                decimal.Decimal("-0.000000000000000000000000000001"),
            )
        ),
        "d": dt.date(rng.randint(1000, 9999), rng.randint(1, 12), rng.randint(1, 28)),
        "t": dt.time(rng.randint(0, 23), rng.randint(0, 59), rng.randint(0, 59), rng.choice((0, 1, 999_999))),
        "ts": instant(rng, mariadb),
        "ts3": instant(rng, mariadb),
        "lts": local,
        "u": uuid.UUID(int=rng.getrandbits(128)),
        "j": rng.choice(
            (
                {"a": [1, 2.5, None, True, "x\x00é"], "b": {"c": decimal.Decimal("1.10")}},
                [1, "two", {"three": 3}],
                {"when": dt.datetime(2024, 1, 1, tzinfo=dt.UTC), "bytes": b"\x00\xff"},
                "text",
                42,
                2.5,
                None,
            )
        ),
        "arr": [rng.randint(-5, 5) for _ in range(rng.randint(0, 4))],
    }


# ------------------------------------------------------------------------------ targets


@dataclass
class Target:
    kind: str
    url: str
    store: SqlStore
    tables: list[str] = field(default_factory=list)

    @property
    def mariadb(self) -> bool:
        return self.kind != "sqlite"

    def name(self, suffix: str) -> str:
        name = f"{self.tables[0]}_{suffix}" if self.tables else suffix
        self.tables.append(name)
        return name


def mariadb_engine(url: str, **extra: Any) -> sa.Engine:
    """The sink's MariaDB engine (create_engine's options), with `extra` (a named paramstyle)."""
    connect_args = {"connect_timeout": 5, "charset": "utf8mb4", "sql_mode": MYSQL_SQL_MODE}
    return sa.create_engine(url, json_serializer=json_dumps, connect_args=connect_args, **extra)


@pytest.fixture(params=["sqlite", "mariadb", "mariadb_named"])
def target(request: pytest.FixtureRequest, unique_name: str) -> Iterator[Target]:
    kind = request.param
    url = str(request.getfixturevalue("sqlite_url" if kind == "sqlite" else "mariadb_url"))
    if kind == "mariadb_named":
        engine = mariadb_engine(url, paramstyle="pyformat")
        assert not engine.dialect.positional
    else:
        engine = create_engine(url)
    store = SqlStore(engine)
    found = Target(kind, url, store, [f"bindeq_{unique_name}"])
    yield found
    store.close()
    for table in found.tables:
        drop_table(url, table)


def spec_of(table: str) -> TableSpec:
    return TableSpec(table, COLUMNS, ("id",))


def batch(table: str, rows: Sequence[Mapping[str, Any]]) -> Batch:
    spec = spec_of(table)
    made = tuple(
        Row(RawRecord(Coord("t", 0, n), None, None), table, Op.UPSERT, {"id": r["id"]}, dict(r), spec, schema_id="t")
        for n, r in enumerate(rows)
    )
    return Batch(table, spec, made)


def write(store: SqlStore, table: str, rows: Sequence[Mapping[str, Any]], **rules: Any) -> list[bool]:
    """The sink's Writer; per row, whether it was written."""
    outcomes = Writer(store, WriteRules("upsert", auto_create=True, auto_evolve=False, **rules)).write(
        batch(table, rows)
    )
    assert len(outcomes) == len(rows)
    return [o.status is Status.WRITTEN for o in outcomes]


def plain_type(column_type: Any) -> Any:
    """SQLAlchemy's own type in place of the sink's fast timestamp processors."""
    if isinstance(column_type, UtcDateTime):
        return sa.DateTime()
    if isinstance(column_type, DateTimeText):
        return mysql.DATETIME(fsp=column_type.fsp)
    return column_type


def sqlalchemy_insert(store: SqlStore, table: str, rows: Sequence[Mapping[str, Any]]) -> list[bool]:
    """Row by row through SQLAlchemy's `insert()`, each in its own transaction: whether it landed.
    The input gets the dialect's documented `bind` (NaN refused, instants as naive UTC)."""
    store.create_table(spec_of(table))
    sink_table = store.sa_table(spec_of(table))
    plain = sa.Table(
        table, sa.MetaData(), *(sa.Column(c.name, plain_type(c.type), primary_key=c.primary_key) for c in sink_table.c)
    )
    dialect = store.dialect
    landed = []
    for row in rows:
        try:
            values = {k: dialect.bind(v) if v.__class__ in dialect.bind_classes else v for k, v in row.items()}
            with store.engine.begin() as connection:
                connection.execute(plain.insert(), values)
        except Exception:  # a refused row, compared with the sink's
            landed.append(False)
        else:
            landed.append(True)
    return landed


def stored(target: Target, table: str) -> list[tuple[Any, ...]]:
    """The rows as the driver reads them (no SQLAlchemy type processing), id order; the version
    column is left out (the versioned path keeps a row's version semantics, not its value)."""
    columns = [c for c in NAMES if c != "ver"]
    quote = "`{}`".format if target.mariadb else '"{}"'.format  # names without quotes; no % formatting
    if target.mariadb:  # its own text of every value: DATETIME(n), DECIMAL, FLOAT as stored
        select = ", ".join(f"CAST({quote(c)} AS CHAR)" if c != "by" else quote(c) for c in columns)
    else:  # SQLite: each value, and its storage class
        select = ", ".join([quote(c) for c in columns] + [f"typeof({quote(c)})" for c in columns])
    engine = sa.create_engine(target.url, poolclass=sa.pool.NullPool)
    try:
        raw = engine.raw_connection()  # the DB-API's own cursor: no parameters, no % formatting
        try:
            cursor = raw.cursor()
            cursor.execute(f"SELECT {select} FROM {quote(table)} ORDER BY id")  # quoted names
            return [tuple(r) for r in cursor.fetchall()]
        finally:
            raw.close()
    finally:
        engine.dispose()


# ------------------------------------------------------------------------------ the round trips


def test_the_sink_stores_what_sqlalchemy_stores_whichever_way_rows_were_bound(target: Target) -> None:
    rng = random.Random(f"bindeq-{target.kind}")
    rows = [row_values(rng, n, target.mariadb) for n in range(240)]

    a, b = target.name("a"), target.name("b")
    written_a = write(target.store, a, rows)
    landed_b = sqlalchemy_insert(target.store, b, rows)
    assert written_a == landed_b
    assert sum(written_a) > 200  # values the databases hold: nearly all of them
    expected = stored(target, a)
    assert len(expected) == sum(written_a)
    assert stored(target, b) == expected

    # C: bad rows among them, refused by the database (NOT NULL) or by the binder (a document in
    # a scalar column: the chunk falls back to the row-wise binder).
    bad_at = sorted(rng.sample(range(len(rows)), 9))
    mixed: list[Mapping[str, Any]] = []
    for n, row in enumerate(rows):
        mixed.append(row)
        if n in bad_at:
            poison = {"req": None} if n % 2 else {"s": {"not": "scalar"}}
            mixed.append(row | {"id": 10_000 + n} | poison)
    c = target.name("c")
    written_c = write(target.store, c, mixed)
    assert [w for w, r in zip(written_c, mixed, strict=True) if r["id"] >= 10_000] == [False] * len(bad_at)
    assert [w for w, r in zip(written_c, mixed, strict=True) if r["id"] < 10_000] == written_a
    assert stored(target, c) == expected

    # V: under a version field the Writer runs SQLAlchemy's own executemany, `bind` on every value.
    v = target.name("v")
    assert write(target.store, v, rows, version_field="ver") == written_a
    assert stored(target, v) == expected


def test_instants_are_stored_as_their_utc_wall_time(target: Target) -> None:
    """The stored text of an instant is its UTC wall time, computed here the textbook way, to
    the column's digits: DST folds, zones with the same UTC offset, years at the range edges."""
    rng = random.Random(f"instants-{target.kind}")
    rows = [row_values(rng, n, target.mariadb) for n in range(120)]
    table = target.name("utc")
    assert all(write(target.store, table, rows))
    engine = sa.create_engine(target.url, poolclass=sa.pool.NullPool)
    try:
        cast = "CAST(ts AS CHAR)" if target.mariadb else "ts"
        with engine.connect() as connection:
            found = [r[0] for r in connection.exec_driver_sql(f"SELECT {cast} FROM {table} ORDER BY id")]
    finally:
        engine.dispose()
    assert found == [r["ts"].astimezone(dt.UTC).replace(tzinfo=None).isoformat(" ", "microseconds") for r in rows]


# Values SQLite or the sink refuse, or take in another class: a document for a scalar column, NaN,
# text for a date, a non-boolean, a subclass of datetime, an instant before year 1 in UTC...
HOSTILE = (
    {"a": 1},
    [1],
    float("nan"),
    float("inf"),
    decimal.Decimal("NaN"),
    "2024-01-01",
    2,
    b"\x00",
    dt.date(2024, 2, 29),
    dt.datetime(1, 1, 1, tzinfo=dt.timezone(dt.timedelta(hours=1))),
    type("SubDateTime", (dt.datetime,), {})(2024, 1, 1, 12, tzinfo=dt.timezone(dt.timedelta(hours=2))),
    type("SubDateTime", (dt.datetime,), {})(2024, 1, 1, 12),
)


def mixed_rows(seed: int, count: int) -> list[dict[str, Any]]:
    """Rows of `row_values` with about one cell in eight another column's value or a hostile one,
    and now and then a column left out."""
    rng = random.Random(seed)
    rows = [row_values(rng, n, mariadb=False) for n in range(count)]
    for row in rows:
        for name in NAMES[1:]:
            roll = rng.random()
            if roll < 0.06:
                row[name] = rng.choice(rows).get(rng.choice(NAMES[1:]))
            elif roll < 0.12:
                row[name] = rng.choice(HOSTILE)
        if rng.random() < 0.1:
            del row[rng.choice(NAMES[1:])]
    return rows


def comparable(parameters: Sequence[Any]) -> str:
    """The parameters' repr (1 vs 1.0 vs True, NaN), a memoryview (sqlite3.Binary) by its bytes."""
    return repr(tuple(bytes(v) if isinstance(v, memoryview) else v for v in parameters))


def test_row_binder_hands_sqlite3_what_sqlalchemys_own_execution_hands_it() -> None:
    """SQLAlchemy executes the sink's INSERT row by row on an in-memory SQLite (the sink's engine:
    its JSON serializer); what it gives sqlite3 is caught before the cursor runs and compared with
    `row_binder`'s parameters (and so `rows_binder`'s: tests/unit/test_bind_equivalence.py). The
    dialect's `bind` is applied to SQLAlchemy's input as the row binder applies it."""
    engine = create_engine("sqlite://")
    dialect = SqliteDialect(engine.dialect)
    table = dialect.table(spec_of("oracle"))
    statement = compile_for_driver(dialect.insert(table), engine.dialect, NAMES, {})
    scalar = {c.name for c in table.columns if not holds_documents(c.type)}
    one_row = row_binder(statement, dialect.bind, dialect.bind_classes, scalar)
    sent: list[Any] = []

    @sa.event.listens_for(engine, "before_cursor_execute")
    def _capture(conn: Any, cursor: Any, sql: str, parameters: Any, context: Any, many: bool) -> None:
        if sql.startswith("INSERT"):
            sent.append(parameters)

    compared = refused = 0
    with engine.connect() as connection:
        with connection.begin():
            table.metadata.create_all(connection)
        for row in mixed_rows(seed=11, count=800):
            try:
                ours: Any = one_row(row)
            except Exception as exc:  # then SQLAlchemy must refuse it before the driver too
                ours = exc
            full = {c: row.get(c) for c in NAMES}
            del sent[:]
            transaction = connection.begin()
            try:
                prebound = {c: dialect.bind(v) if v.__class__ in dialect.bind_classes else v for c, v in full.items()}
                connection.execute(table.insert(), prebound)
            except Exception:  # refused by `bind`, SQLAlchemy, or sqlite3 after the capture
                pass
            finally:
                transaction.rollback()
            if isinstance(ours, Exception):
                refused += 1
                if sent:  # SQLAlchemy's processors took it: only the sink's refusal of a document may differ
                    assert getattr(ours, "code", None) == "nested value for a scalar column", (row, ours)
                continue
            assert sent, row  # SQLAlchemy refused a row the sink sends
            assert comparable(sent[0]) == comparable(ours), row
            compared += 1
    engine.dispose()
    assert compared > 100 and refused > 20
