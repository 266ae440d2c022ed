"""Lines (b) and (e) of the Avro peers section, run as a subprocess; prints one JSON object per
measurement on stdout.

    python benchmarks/avro_limit.py limit CONNINFO TABLE COUNT BATCH[,BATCH...]
        (b) the dataset's rows, pre-decoded (built before the clock starts), upserted by
        pg_merge.Merger in batches of BATCH rows into a fresh TABLE; one measurement per batch size
    python benchmarks/avro_limit.py naive SQLALCHEMY_URL TABLE COUNT SECONDS
        (e) one SQLAlchemy Core `INSERT … ON CONFLICT DO UPDATE` + COMMIT per record, stopped after
        SECONDS; reports how many records it applied (the caller extrapolates to COUNT)
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

if not __package__:  # run as a script: import `benchmarks.*` from the repository root
    sys.path[0] = str(Path(__file__).resolve().parents[1])

import psycopg

from benchmarks import avro_data, pg_merge


def limit(conninfo: str, table: str, count: int, batch_sizes: list[int]) -> None:
    rows = [avro_data.row(i, count) for i in range(avro_data.even(count))]
    for batch in batch_sizes:
        pg_merge.create_table(conninfo, table)
        with psycopg.connect(conninfo) as conn:
            merger = pg_merge.Merger(conn, table)
            cpu, started = time.process_time(), time.perf_counter()
            for start in range(0, len(rows), batch):
                merger.write(rows[start : start + batch])
            seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
            found = conn.execute(avro_data.CHECKSUM_SQL.format(table)).fetchone()
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
