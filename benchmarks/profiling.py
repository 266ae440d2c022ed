"""`--profile`: cProfile the sink's write path and Preparer, and say where the time goes, by
package (own time) and by function (top own time, with its share of the total)."""

from __future__ import annotations

import cProfile
import pstats
import uuid
from collections import defaultdict

from sink.adapters.db import SqlStore, create_engine
from sink.pipeline import Writer, WriteRules

from . import records
from .common import drop_tables
from .decode_map import preparer, raw_records

PACKAGES = ("sink", "sqlalchemy", "psycopg", "pymysql", "confluent_kafka", "json", "decimal", "datetime")


def _package(filename: str, function: str) -> str:
    if filename == "~":  # a C function: "<method 'execute' of 'sqlite3.Cursor' objects>"
        return "C: " + (function.split("'")[3].split(".")[0] if function.count("'") >= 4 else "builtins")
    for package in PACKAGES:
        if f"/{package}/" in filename or filename.endswith(f"/{package}.py"):
            return package
    return "other python"


def _where(filename: str, line: int, function: str) -> str:
    if filename == "~":
        return function
    for marker in ("/site-packages/", "/main/", "/lib/python3"):
        if marker in filename:
            filename = filename.split(marker, 1)[1]
            break
    return f"{filename}:{line} {function}"


def summarize(profiler: cProfile.Profile | str, title: str, top: int = 12) -> list[str]:
    """`profiler`: a Profile or the path of a saved one (python -m cProfile -o FILE)."""
    stats = pstats.Stats(profiler)
    entries = stats.stats  # type: ignore[attr-defined]
    total = sum(tt for (_cc, _nc, tt, _ct, _callers) in entries.values()) or 1e-9
    by_package: dict[str, float] = defaultdict(float)
    for (filename, _line, function), (_cc, _nc, tt, _ct, _callers) in entries.items():
        by_package[_package(filename, function)] += tt
    lines = [f"profile: {title} ({total:.2f} s own time in total)"]
    shares = sorted(((100 * t / total, name) for name, t in by_package.items()), reverse=True)
    packages = ", ".join(f"{name} {share:.0f}%" for share, name in shares[:8] if share >= 1)
    lines.append(f"  own time by package: {packages}")
    lines.append(f"  {'own%':>5} {'own s':>7} {'cum s':>7} {'calls':>9}  function")
    ranked = sorted(entries.items(), key=lambda kv: -kv[1][2])[:top]
    for (filename, line, function), (_cc, calls, tt, ct, _callers) in ranked:
        where = _where(filename, line, function)
        lines.append(f"  {100 * tt / total:5.1f} {tt:7.3f} {ct:7.3f} {calls:9,}  {where}")
    return lines


def profile_writer(database: str, url: str, rows: int, batch_size: int) -> list[str]:
    table = f"bench_{uuid.uuid4().hex[:6]}_profile"
    batches = records.batches(table, rows, batch_size)
    store = SqlStore(create_engine(url))
    try:
        writer = Writer(store, WriteRules("upsert", auto_create=True))
        writer.ensure_table(batches[0].spec)
        profiler = cProfile.Profile()
        profiler.enable()
        for batch in batches:
            writer.write(batch)
        profiler.disable()
    finally:
        store.close()
        drop_tables(url, [table])
    return summarize(profiler, f"sink Writer on {database}, {rows:,} rows, batch {batch_size}")


def profile_preparer(fmt: str, count: int) -> list[str]:
    raws = raw_records(fmt, count)
    prepare = preparer(fmt).prepare
    profiler = cProfile.Profile()
    profiler.enable()
    for raw in raws:
        prepare(raw)
    profiler.disable()
    return summarize(profiler, f"sink Preparer, {fmt}, {count:,} records")
