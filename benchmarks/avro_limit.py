"""Lines (b) and (e) of the Avro peers section, run as a subprocess; prints one JSON object per
measurement on stdout.

    python benchmarks/avro_limit.py limit SQLALCHEMY_URL TABLE COUNT BATCH[,BATCH...]
        (b) the dataset's rows, pre-decoded (built before the clock starts), upserted in batches of
        BATCH rows, one transaction each, into a fresh TABLE; one measurement per batch size.
        PostgreSQL: pg_merge.Merger (binary COPY + merge). MariaDB: PyMySQL's executemany of
        `INSERT … VALUES … ON DUPLICATE KEY UPDATE` (which PyMySQL rewrites into multi-row
        statements, applied in row order: the last version of an id wins). SQLite: sqlite3's
        executemany of `INSERT … ON CONFLICT(id) DO UPDATE` (one row after another, in C).
    python benchmarks/avro_limit.py naive SQLALCHEMY_URL TABLE COUNT SECONDS
        (e) one SQLAlchemy Core `INSERT … ON CONFLICT DO UPDATE` + COMMIT per record, stopped after
        SECONDS; reports how many records it applied (the caller extrapolates to COUNT)
"""

from __future__ import annotations

import datetime as dt
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

if not __package__:  # run as a script: import `benchmarks.*` from the repository root
    sys.path[0] = str(Path(__file__).resolve().parents[1])

import psycopg

from benchmarks import avro_data, avro_db, pg_merge


class PostgresWriter:
    def __init__(self, url: str, table: str) -> None:
        self.conn = psycopg.connect(avro_db.conninfo(url))
        self.merger = pg_merge.Merger(self.conn, table)
        self.write = self.merger.write

    def close(self) -> None:
        self.conn.close()


class MariadbWriter:
    """PyMySQL's own executemany; PyMySQL rewrites it into multi-row INSERTs of at most
    `max_stmt_length` bytes (1 MB, its default, as for the sink); one commit per batch."""

    def __init__(self, url: str, table: str) -> None:
        self.conn = avro_db.mariadb_connect(url, autocommit=False)
        self.cursor = self.conn.cursor()
        columns = ", ".join(f"`{c}`" for c in avro_data.COLUMNS)
        updates = ", ".join(f"`{c}` = VALUES(`{c}`)" for c in avro_data.COLUMNS if c != "id")
        markers = ", ".join("%s" for _ in avro_data.COLUMNS)
        self.statement = f"INSERT INTO `{table}` ({columns}) VALUES ({markers}) ON DUPLICATE KEY UPDATE {updates}"

    def write(self, rows: Sequence[tuple[Any, ...]]) -> None:
        self.cursor.executemany(self.statement, rows)
        self.conn.commit()

    def close(self) -> None:
        self.conn.close()


def _sqlite_instant(value: dt.datetime) -> str:
    """An aware datetime as naive UTC text, as the sink stores it in SQLite (SQLAlchemy's format)."""
    return value.astimezone(dt.UTC).replace(tzinfo=None).isoformat(" ", "microseconds")


class SqliteWriter:
    """sqlite3's own executemany (the prepared statement stepped once per row, in C); datetimes
    through a registered adapter (inside the timing, as the other drivers convert them); BEGIN and
    COMMIT around each batch."""

    def __init__(self, url: str, table: str) -> None:
        import sqlite3

        sqlite3.register_adapter(dt.datetime, _sqlite_instant)
        self.conn = avro_db.sqlite_connect(url)
        columns = ", ".join(f'"{c}"' for c in avro_data.COLUMNS)
        updates = ", ".join(f'"{c}" = excluded."{c}"' for c in avro_data.COLUMNS if c != "id")
        markers = ", ".join("?" for _ in avro_data.COLUMNS)
        self.statement = f'INSERT INTO "{table}" ({columns}) VALUES ({markers}) ON CONFLICT(id) DO UPDATE SET {updates}'

    def write(self, rows: Sequence[tuple[Any, ...]]) -> None:
        self.conn.execute("BEGIN")
        self.conn.executemany(self.statement, rows)
        self.conn.execute("COMMIT")

    def close(self) -> None:
        self.conn.close()


WRITERS = {avro_db.POSTGRESQL: PostgresWriter, avro_db.MARIADB: MariadbWriter, avro_db.SQLITE: SqliteWriter}


def limit(url: str, table: str, count: int, batch_sizes: list[int]) -> None:
    rows = [avro_data.row(i, count) for i in range(avro_data.even(count))]
    for batch in batch_sizes:
        avro_db.create_table(url, table)
        writer = WRITERS[avro_db.kind(url)](url, table)
        try:
            cpu, started = time.process_time(), time.perf_counter()
            for start in range(0, len(rows), batch):
                writer.write(rows[start : start + batch])
            seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
        finally:
            writer.close()
        with avro_db.Watcher(url) as watcher:
            found = watcher.checksum(table)
        print(json.dumps({"batch": batch, "seconds": seconds, "cpu": cpu, "checksum": list(found or ())}), flush=True)


def naive(url: str, table: str, count: int, seconds: float) -> None:
    import sqlalchemy as sa
    from sqlalchemy.dialects.postgresql import insert

    engine = sa.create_engine(url)
    target = sa.Table(table, sa.MetaData(), autoload_with=engine)
    statement = insert(target)
    statement = statement.on_conflict_do_update(
        index_elements=["id"], set_={c: statement.excluded[c] for c in avro_data.COLUMNS if c != "id"}
    )
    applied = 0
    with engine.connect() as conn:
        cpu, started = time.process_time(), time.perf_counter()
        while applied < avro_data.even(count) and time.perf_counter() - started < seconds:
            conn.execute(statement, avro_data.values(applied, count))  # decoding is not timed: values() is
            conn.commit()  # a few microseconds against a round trip and a commit per record
            applied += 1
        elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
        found = conn.execute(sa.text(avro_data.CHECKSUM_SQL.format(f'"{table}"'))).one()
    engine.dispose()
    print(json.dumps({"applied": applied, "seconds": elapsed, "cpu": cpu, "checksum": list(found)}), flush=True)


if __name__ == "__main__":
    mode, target, table, records, extra = sys.argv[1:6]
    if mode == "limit":
        limit(target, table, int(records), [int(b) for b in extra.split(",")])
    else:
        naive(target, table, int(records), float(extra))
