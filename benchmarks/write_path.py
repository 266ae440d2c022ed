"""Write path alone (no Kafka): sink.pipeline.Writer on pre-built Batches, between two references.

baseline  one upsert statement per row, autocommit, plain SQLAlchemy Core: what a Kafka Connect
          JDBC sink with batch.size=1 does (stopped after a few seconds: the rate is what counts)
sink      sink.pipeline.Writer over sink.adapters.db.SqlStore, upsert mode, record_key primary key;
          a second line times the same keys again (every row an update)
ceiling   the raw driver, one transaction per batch of the same size, starting from the same
          Python row dicts the sink gets (turning them into driver parameters is timed, as the
          sink must do it too): PostgreSQL psycopg executemany (upsert), COPY into a temp table
          merged by INSERT ... SELECT ... ON CONFLICT (upsert), plain COPY (insert only);
          MariaDB PyMySQL executemany (it rewrites it into multi-row INSERT ... ON DUPLICATE KEY
          UPDATE); SQLite sqlite3 executemany (INSERT ... ON CONFLICT DO UPDATE)

Every variant writes into its own table, created by the sink's own DDL and emptied before each
repetition; each line is the best of `repeat` runs (the slowest is shown in the note).
"""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
import time
import uuid
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import psycopg
import pymysql
import sqlalchemy as sa
from psycopg import sql
from psycopg.types.json import Jsonb
from sqlalchemy.dialects import mysql, postgresql, sqlite

from sink.adapters.db import SqlStore, create_engine
from sink.model import Batch, Outcome, Status
from sink.pipeline import Writer, WriteRules

from . import records
from .common import BASELINE, CEILING, INFO, SINK, Progress, Result, count_rows, drop_tables, repeats

SECTION = "write path"

# A ceiling: (url, table, row dicts, batch size) -> seconds
Ceiling = Callable[[str, str, list[dict[str, Any]], int], float]


def run(
    database: str,
    url: str,
    rows: int,
    batch_size: int,
    naive_rows: int,
    naive_cap_s: float,
    repeat: int,
    progress: Progress,
) -> list[Result]:
    prefix = f"bench_{uuid.uuid4().hex[:6]}"
    ceilings = CEILINGS[database]
    tables = {v: f"{prefix}_{v}" for v in ("naive", "sink", "sink_upd", *ceilings)}
    results: dict[str, Result] = {}
    step = f"write path  {database:<10}"
    store = SqlStore(create_engine(url))
    try:
        for table in tables.values():
            store.create_table(records.spec(table))

        with progress.step(f"{step}  baseline: 1 upsert per row, autocommit") as out:
            out.append(_naive(database, url, tables["naive"], min(rows, naive_rows), naive_cap_s))
        results["naive"] = out[0]

        label = f"sink Writer (upsert, batch {batch_size})"
        batches = records.batches(tables["sink"], rows, batch_size)
        with progress.step(f"{step}  {label}") as out:
            out.append(_best(repeat, lambda: _sink(store, batches, url, database, label, SINK, empty=True)))
        results["sink"] = out[0]

        label = "sink Writer, same keys again (updates)"
        batches = records.batches(tables["sink_upd"], rows, batch_size)
        _sink(store, batches, url, database, label, INFO, empty=False)  # every key exists before timing
        with progress.step(f"{step}  {label}") as out:
            out.append(_best(repeat, lambda: _sink(store, batches, url, database, label, INFO, empty=False)))
        results["sink_upd"] = out[0]

        dicts = [records.values(i) for i in range(rows)]
        for name, (label, write) in ceilings.items():
            with progress.step(f"{step}  ceiling: {label}") as out:

                def ceiling(table: str = tables[name], write: Ceiling = write, label: str = label) -> Result:
                    empty_table(url, table)
                    seconds = write(url, table, dicts, batch_size)
                    return Result(SECTION, database, f"ceiling: {label}", rows, seconds, "rows/s", CEILING)

                out.append(_best(repeat, ceiling))
            results[name] = out[0]

        for variant, result in results.items():  # sanity, outside the timing
            if variant != "naive" and (found := count_rows(url, tables[variant])) != rows:
                result.note = f"WRONG: {found:,} rows in the table"
    finally:
        store.close()
        drop_tables(url, list(tables.values()))
    return list(results.values())


def _best(repeat: int, measure: Callable[[], Result]) -> Result:
    """The fastest of up to `repeat` runs (common.repeats); the note shows the slowest."""
    runs: list[Result] = []

    def timed() -> float:
        runs.append(measure())
        return runs[-1].seconds

    repeats(repeat, timed)
    best = min(runs, key=lambda r: r.seconds)
    if len(runs) > 1:
        slowest = max(runs, key=lambda r: r.seconds)
        spread = f"best of {len(runs)}, slowest {slowest.rate:,.0f}"
        best.note = f"{best.note}; {spread}" if best.note else spread
    return best


# ------------------------------------------------------------------------------ the sink


def _sink(
    store: SqlStore, batches: Sequence[Batch], url: str, database: str, label: str, role: str, empty: bool
) -> Result:
    if empty:
        empty_table(url, batches[0].table)
    writer = Writer(store, WriteRules("upsert", auto_create=True, auto_evolve=False))
    writer.ensure_table(batches[0].spec)  # reflect once before timing, as a running sink has
    outcomes: list[list[Outcome]] = []
    started = time.perf_counter()
    for batch in batches:
        outcomes.append(writer.write(batch))
    seconds = time.perf_counter() - started
    written = sum(1 for chunk in outcomes for o in chunk if o.status is Status.WRITTEN)
    expected = sum(len(b.rows) for b in batches)
    note = "" if written == expected else f"WRONG: {written:,} of {expected:,} written"
    return Result(SECTION, database, label, expected, seconds, "rows/s", role, note)


# ------------------------------------------------------------------------------ the baseline


def _plain_table(name: str) -> sa.Table:
    """The table as a plain SQLAlchemy user would declare it (generic types)."""
    return sa.Table(
        name,
        sa.MetaData(),
        sa.Column("id", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("customer", sa.Text),
        sa.Column("quantity", sa.Integer),
        sa.Column("price", sa.Numeric(12, 2)),
        sa.Column("score", sa.Double),
        sa.Column("active", sa.Boolean),
        sa.Column("updated_at", sa.DateTime(timezone=True)),
        sa.Column("attrs", sa.JSON),
    )


def _plain_upsert(database: str, table: sa.Table) -> Any:
    if database == "mariadb":
        stmt = mysql.insert(table)
        return stmt.on_duplicate_key_update({c.name: stmt.inserted[c.name] for c in table.columns if c.name != "id"})
    module = postgresql if database == "postgresql" else sqlite
    stmt = module.insert(table)
    return stmt.on_conflict_do_update(
        index_elements=["id"], set_={c.name: stmt.excluded[c.name] for c in table.columns if c.name != "id"}
    )


def _naive(database: str, url: str, name: str, rows: int, cap_s: float) -> Result:
    """One statement and one commit per row, stopped early after `cap_s` (the rate is what counts)."""
    engine = sa.create_engine(url)
    statement = _plain_upsert(database, _plain_table(name))
    done = 0
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # SQLite: "does not support Decimal objects natively"
            with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
                connection.execute(statement, _naive_params(database, 0))  # compile + connect outside timing
                started = time.perf_counter()
                deadline = started + cap_s
                for i in range(1, rows + 1):
                    connection.execute(statement, _naive_params(database, i))
                    done += 1
                    if time.perf_counter() > deadline:
                        break
                seconds = time.perf_counter() - started
    finally:
        engine.dispose()
    note = "" if done == rows else f"stopped after {cap_s:g} s"
    return Result(SECTION, database, "baseline: 1 upsert/row, autocommit", done, seconds, "rows/s", BASELINE, note)


def _naive_params(database: str, i: int) -> dict[str, Any]:
    row = records.values(i)
    if database != "postgresql":
        row["updated_at"] = row["updated_at"].replace(tzinfo=None)  # stored as naive UTC there
    return row


# ------------------------------------------------------------------------------ the ceilings


def _converter(database: str) -> Callable[[dict[str, Any]], tuple[Any, ...]]:
    """Row dict -> the tuple the driver takes natively (what any Python sink must do per row)."""
    names = records.NAMES
    if database == "postgresql":
        return lambda row: (*(row[n] for n in names[:-1]), Jsonb(row["attrs"]))

    def text(row: dict[str, Any]) -> tuple[Any, ...]:
        updated = row["updated_at"].astimezone(dt.UTC).replace(tzinfo=None)
        attrs = json.dumps(row["attrs"], separators=(",", ":"))
        if database == "sqlite":
            updated = updated.isoformat(sep=" ")
            return (row["id"], row["customer"], row["quantity"], str(row["price"]), row["score"],
                    int(row["active"]), updated, attrs)  # fmt: skip
        return (row["id"], row["customer"], row["quantity"], row["price"], row["score"], row["active"], updated, attrs)

    return text


def empty_table(url: str, table: str) -> None:
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        with engine.begin() as connection:
            name = connection.dialect.identifier_preparer.quote(table)
            connection.exec_driver_sql(f"DELETE FROM {name}" if engine.name == "sqlite" else f"TRUNCATE TABLE {name}")
    finally:
        engine.dispose()


def _chunks(rows: list[dict[str, Any]], size: int) -> list[list[dict[str, Any]]]:
    return [rows[i : i + size] for i in range(0, len(rows), size)]


def _pg_connect(url: str) -> Any:
    u = sa.engine.make_url(url)
    return psycopg.connect(
        host=u.host, port=u.port or 5432, user=u.username, password=u.password or None, dbname=u.database
    )


def _pg_upsert_sql(table: str) -> Any:
    columns = sql.SQL(", ").join(map(sql.Identifier, records.NAMES))
    updates = sql.SQL(", ").join(
        sql.SQL("{0} = EXCLUDED.{0}").format(sql.Identifier(n)) for n in records.NAMES if n != "id"
    )
    placeholders = sql.SQL(", ").join(sql.Placeholder() * len(records.NAMES))
    return sql.SQL("INSERT INTO {} ({}) VALUES ({}) ON CONFLICT (id) DO UPDATE SET {}").format(
        sql.Identifier(table), columns, placeholders, updates
    )


def _pg_executemany(url: str, table: str, rows: list[dict[str, Any]], batch_size: int) -> float:
    convert = _converter("postgresql")
    statement = _pg_upsert_sql(table)
    with _pg_connect(url) as conn, conn.cursor() as cur:
        started = time.perf_counter()
        for chunk in _chunks(rows, batch_size):
            with conn.transaction():
                cur.executemany(statement, [convert(r) for r in chunk])
        return time.perf_counter() - started


def _pg_copy(url: str, table: str, rows: list[dict[str, Any]], batch_size: int) -> float:
    convert = _converter("postgresql")
    columns = sql.SQL(", ").join(map(sql.Identifier, records.NAMES))
    statement = sql.SQL("COPY {} ({}) FROM STDIN").format(sql.Identifier(table), columns)
    with _pg_connect(url) as conn, conn.cursor() as cur:
        started = time.perf_counter()
        for chunk in _chunks(rows, batch_size):
            with conn.transaction(), cur.copy(statement) as copy:
                for row in chunk:
                    copy.write_row(convert(row))
        return time.perf_counter() - started


def _pg_copy_merge(url: str, table: str, rows: list[dict[str, Any]], batch_size: int) -> float:
    convert = _converter("postgresql")
    columns = sql.SQL(", ").join(map(sql.Identifier, records.NAMES))
    stage = sql.Identifier(f"{table}_stage")
    updates = sql.SQL(", ").join(
        sql.SQL("{0} = EXCLUDED.{0}").format(sql.Identifier(n)) for n in records.NAMES if n != "id"
    )
    copy_sql = sql.SQL("COPY {} ({}) FROM STDIN").format(stage, columns)
    merge_sql = sql.SQL("INSERT INTO {} ({}) SELECT {} FROM {} ON CONFLICT (id) DO UPDATE SET {}").format(
        sql.Identifier(table), columns, columns, stage, updates
    )
    with _pg_connect(url) as conn, conn.cursor() as cur:
        cur.execute(sql.SQL("CREATE TEMP TABLE {} (LIKE {})").format(stage, sql.Identifier(table)))
        conn.commit()
        started = time.perf_counter()
        for chunk in _chunks(rows, batch_size):
            with conn.transaction():
                with cur.copy(copy_sql) as copy:
                    for row in chunk:
                        copy.write_row(convert(row))
                cur.execute(merge_sql)
                cur.execute(sql.SQL("TRUNCATE {}").format(stage))
        return time.perf_counter() - started


def _mariadb_executemany(url: str, table: str, rows: list[dict[str, Any]], batch_size: int) -> float:
    convert = _converter("mariadb")
    u = sa.engine.make_url(url)
    columns = ", ".join(f"`{n}`" for n in records.NAMES)
    updates = ", ".join(f"`{n}` = VALUES(`{n}`)" for n in records.NAMES if n != "id")
    placeholders = ", ".join(["%s"] * len(records.NAMES))
    statement = f"INSERT INTO `{table}` ({columns}) VALUES ({placeholders}) ON DUPLICATE KEY UPDATE {updates}"
    conn = pymysql.connect(
        host=u.host, port=u.port or 3306, user=u.username, password=u.password or "", database=u.database,
        charset="utf8mb4", autocommit=False,
    )  # fmt: skip
    try:
        with conn.cursor() as cur:
            started = time.perf_counter()
            for chunk in _chunks(rows, batch_size):
                cur.executemany(statement, [convert(r) for r in chunk])
                conn.commit()
            return time.perf_counter() - started
    finally:
        conn.close()


def _sqlite_executemany(url: str, table: str, rows: list[dict[str, Any]], batch_size: int) -> float:
    convert = _converter("sqlite")
    path = sa.engine.make_url(url).database
    columns = ", ".join(f'"{n}"' for n in records.NAMES)
    updates = ", ".join(f'"{n}" = excluded."{n}"' for n in records.NAMES if n != "id")
    placeholders = ", ".join(["?"] * len(records.NAMES))
    statement = f'INSERT INTO "{table}" ({columns}) VALUES ({placeholders}) ON CONFLICT (id) DO UPDATE SET {updates}'
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        started = time.perf_counter()
        for chunk in _chunks(rows, batch_size):
            conn.execute("BEGIN")
            conn.executemany(statement, [convert(r) for r in chunk])
            conn.execute("COMMIT")
        return time.perf_counter() - started
    finally:
        conn.close()


CEILINGS: dict[str, dict[str, tuple[str, Ceiling]]] = {
    "postgresql": {
        "pg_many": ("psycopg executemany, upsert", _pg_executemany),
        "pg_merge": ("psycopg COPY to temp + INSERT..SELECT upsert", _pg_copy_merge),
        "pg_copy": ("psycopg COPY, insert only", _pg_copy),
    },
    "mariadb": {"my_many": ("pymysql executemany, upsert", _mariadb_executemany)},
    "sqlite": {"lite_many": ("sqlite3 executemany, upsert", _sqlite_executemany)},
}
