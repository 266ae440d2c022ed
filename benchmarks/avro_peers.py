"""The Avro peers section (issue 7): one dataset, one broker, one registry, every line on the same
topic with its own consumer group and its own table, each timed from its process start until its
table holds the exact final state.

(a) sink run      `sink run --env-file F` (Avro through the test registry, upsert, record_value id)
(b) limit         the same rows pre-decoded, binary COPY + DISTINCT ON merge, best of some batch sizes
(c) plain         benchmarks/plain_consumer.py: confluent-kafka + fastavro + the same COPY/merge
(d) quix          Quix Streams' PostgreSQLSink (its own venv, installed on first use)
(e) per record    one SQLAlchemy upsert + COMMIT per record, time-boxed, extrapolated to N
plus `sink run` on a JSON copy of the topic, and `sink run` at N/4 and N/2 (linearity).
Lines (a) and (b) also run against MariaDB and SQLite (a/mariadb, b/mariadb, a/sqlite, b/sqlite)
when those databases are measured: the sink with the same settings, and that database's own limit
from Python (PyMySQL / sqlite3 executemany upserts of the same pre-decoded rows).

"Final state" is checked cheaply while a line runs (the last record of each partition is visible:
every line keeps per-partition order) and then exactly (count, sum(seq), sum of an md5 of the last
version's note; computed in SQL, on SQLite in Python from the rows read back); a line that never
matches is marked WRONG. CPU is the process's utime+stime when its final state was seen, peak RSS
its VmHWM (both from /proc/<pid>).
"""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import psycopg

from . import avro_data, avro_db
from .avro_kafka import create_topic, produce, register
from .avro_watch import BIN, ROOT, Line, run_line
from .common import Progress

SECTION = "avro"
HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
QUIX_VENV = HERE / ".quix-venv"
QUIX_REQUIREMENT = "quixstreams[avro,postgresql]"
SESSION_TIMEOUT_MS = 6000


@dataclass
class Options:
    count: int
    batches: list[int]
    naive_seconds: float
    quix: bool
    sink_env: dict[str, str]
    py_spy: bool = False
    # (c) and (a) are run this many times, alternating, and each keeps its median run: one run of
    # either varies by several percent on two cores shared with the broker and the database
    rounds: int = 3
    # the other databases the sink and its limit run against: {"mariadb": url, "sqlite": url}
    databases: dict[str, str] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)  # the others, and why they are not measured


# ------------------------------------------------------------------------------ the lines


def sink_env(
    path: Path,
    bootstrap: str,
    topic: str,
    group: str,
    url: str,
    table: str,
    value_format: str,
    registry: str,
    extra: dict[str, str],
) -> Path:
    settings = {
        "SINK_NAME": "bench",
        "SINK_BOOTSTRAP_SERVERS": bootstrap,
        "SINK_GROUP_ID": group,
        "SINK_TOPICS": topic,
        "SINK_DATABASE_URL": url,
        "SINK_TABLE_NAME_FORMAT": table,
        "SINK_KEY_FORMAT": "string",
        "SINK_VALUE_FORMAT": value_format,
        "SINK_PK_MODE": "record_value",
        "SINK_PK_FIELDS": "id",
        "SINK_INSERT_MODE": "upsert",
        "SINK_AUTO_CREATE": "true",
        "SINK_AUTO_EVOLVE": "true",
        "SINK_CONSUMER__SESSION_TIMEOUT_MS": str(SESSION_TIMEOUT_MS),
        **({"SINK_SCHEMA_REGISTRY_URL": registry} if value_format == "avro" else {}),
        **extra,
    }
    path.write_text("".join(f"{k}={v}\n" for k, v in settings.items()))
    return path


LIMIT_LABELS = {
    avro_db.POSTGRESQL: "limit: COPY + merge, pre-decoded",
    avro_db.MARIADB: "limit: PyMySQL executemany, ON DUPLICATE KEY UPDATE, pre-decoded",
    avro_db.SQLITE: "limit: sqlite3 executemany, ON CONFLICT DO UPDATE, pre-decoded",
}


def limit_line(url: str, table: str, count: int, batches: list[int], log: Path, key: str = "b") -> Line:
    command = [sys.executable, str(HERE / "avro_limit.py"), "limit", url, table, str(count)]
    command.append(",".join(str(b) for b in batches))
    out = subprocess.run(command, capture_output=True, text=True, check=False, cwd=ROOT)
    log.write_text(out.stdout + out.stderr)
    if out.returncode != 0:
        raise RuntimeError(f"limit line failed:\n{out.stderr[-2000:]}")
    runs = [json.loads(text) for text in out.stdout.splitlines() if text.startswith("{")]
    expected = list(avro_data.expected_checksum(count))
    best = min(runs, key=lambda r: r["seconds"])
    database = avro_db.kind(url)
    line = Line(
        key,
        f"{LIMIT_LABELS[database]}, best batch {best['batch']:,}",
        avro_data.even(count),
        best["seconds"],
        cpu=best["cpu"],
        database=database,
    )
    line.note = "; ".join(f"batch {r['batch']:,}: {avro_data.even(count) / r['seconds']:,.0f}/s" for r in runs)
    line.note += "; CPU is this client's, in-process; no RSS (the pre-decoded rows are in memory)"
    line.extra = {"runs": runs}
    wrong = [r["batch"] for r in runs if r["checksum"] != expected]
    if wrong:
        line.wrong = f"WRONG: batch sizes {wrong} did not reach the final state"
    return line


def naive_line(url: str, conninfo: str, table: str, count: int, seconds: float, log: Path) -> Line:
    from . import pg_merge

    pg_merge.create_table(conninfo, table)
    command = [sys.executable, str(HERE / "avro_limit.py"), "naive", url, table, str(count), str(seconds)]
    out = subprocess.run(command, capture_output=True, text=True, check=False, cwd=ROOT)
    log.write_text(out.stdout + out.stderr)
    if out.returncode != 0:
        raise RuntimeError(f"per-record line failed:\n{out.stderr[-2000:]}")
    result = json.loads(out.stdout.strip().splitlines()[-1])
    applied, elapsed = result["applied"], result["seconds"]
    total = avro_data.even(count)
    extrapolated = elapsed * total / applied
    line = Line("e", "per record: SQLAlchemy upsert + COMMIT", total, extrapolated, cpu=result["cpu"] * total / applied)
    line.note = (
        f"EXTRAPOLATED: ran {elapsed:.1f} s, applied {applied:,} records, time and CPU scaled to {total:,}; "
        "checked: the table holds exactly those records' state"
    )
    line.extra = {"applied": applied, "measured_seconds": elapsed}
    if result["checksum"] != list(avro_data.expected_checksum(count, applied)):
        line.wrong = f"WRONG: checksum {result['checksum']} after {applied:,} records"
    return line


def quix_python(progress: Progress) -> tuple[Path | None, str]:
    """The Python of the Quix venv (created and installed from PyPI on first use) and its version."""
    python = QUIX_VENV / "bin" / "python"
    if not python.exists():
        with progress.step(f"avro        install {QUIX_REQUIREMENT} into {QUIX_VENV}"):
            subprocess.run([sys.executable, "-m", "venv", str(QUIX_VENV)], check=True)
            subprocess.run(
                [str(python), "-m", "pip", "install", "-q", QUIX_REQUIREMENT], check=True, stdout=subprocess.DEVNULL
            )
    out = subprocess.run(
        [str(python), "-c", "import quixstreams; print(quixstreams.__version__)"],
        capture_output=True,
        text=True,
        check=False,
    )
    if out.returncode != 0:
        return None, out.stderr.strip().splitlines()[-1] if out.stderr.strip() else "cannot import quixstreams"
    return python, out.stdout.strip()


# ------------------------------------------------------------------------------ the section


def run(options: Options, url: str, workdir: Path, progress: Progress) -> dict[str, Any]:
    """Run every line; return the results document (avro_report writes it to results/)."""
    from sink.adapters.embedded_broker import EmbeddedBroker
    from tests.support.registry import RegistryServer

    count = avro_data.even(options.count)
    doc: dict[str, Any] = {
        "records": count,
        "databases": [avro_db.POSTGRESQL, *options.databases],
        "distinct_ids": avro_data.distinct(count),
        "partitions": avro_data.PARTITIONS,
        "load_before": os.getloadavg(),
    }
    quix: tuple[Path | None, str] = quix_python(progress) if options.quix else (None, "disabled (--no-quix)")
    doc["quixstreams"] = quix[1]
    with progress.step("avro        start the embedded broker (tansu) and the test registry"):
        broker = EmbeddedBroker(log_path=workdir / "tansu.log").start()
        registry = RegistryServer().start()
    session = Session(options, url, workdir, progress, broker.bootstrap_servers, registry.url, quix)
    try:
        doc.update(session.produce_all())
        session.measure_all()
        if options.py_spy:
            doc["profile"] = session.profile()
    finally:
        registry.stop()
        broker.stop()
        for target, tables in session.tables.items():
            try:
                avro_db.drop(target, tables)
            except Exception as exc:  # a database gone at the end costs its own tables only
                print(f"avro: could not drop {tables} at {target}: {exc}", file=sys.stderr)
    doc["load_after"] = os.getloadavg()
    doc["lines"] = [dict(asdict(line), rate=line.rate) for line in session.lines]
    doc["linearity"] = linearity(session.lines)
    return doc


class Session:
    """One run of the section: the topics it produced, the tables it made, the lines it measured."""

    def __init__(
        self,
        options: Options,
        url: str,
        workdir: Path,
        progress: Progress,
        bootstrap: str,
        registry_url: str,
        quix: tuple[Path | None, str],
    ) -> None:
        self.options, self.url, self.workdir, self.progress = options, url, workdir, progress
        self.bootstrap, self.registry_url, self.quix = bootstrap, registry_url, quix
        self.count = avro_data.even(options.count)
        self.conninfo = url.replace("+psycopg", "")
        self.prefix = f"bench_avro_{uuid.uuid4().hex[:6]}"
        self.sizes = {"": self.count, "_q": avro_data.even(self.count // 4), "_h": avro_data.even(self.count // 2)}
        self.topics = {suffix: f"{self.prefix}{suffix}" for suffix in (*self.sizes, "_json")}
        self.tables: dict[str, list[str]] = {}  # by database URL
        self.lines: list[Line] = []

    def table(self, name: str, url: str | None = None) -> str:
        """A new table name in the database at `url` (default PostgreSQL), dropped at the end. A
        name asked for again (a line's next round) is numbered: a run never finds an earlier run's
        table, nor its consumer group (named after the table)."""
        names = self.tables.setdefault(url or self.url, [])
        table, number = f"{self.prefix}_{name}", 1
        while table in names:
            number += 1
            table = f"{self.prefix}_{name}_{number}"
        names.append(table)
        return table

    def produce_all(self) -> dict[str, float]:
        """The Avro topics (N, N/4, N/2) and the JSON copy of N; production seconds by topic."""
        seconds: dict[str, float] = {}
        for suffix, size in self.sizes.items():
            topic = self.topics[suffix]
            text = f"avro        produce {size:,} Avro records to {topic}, {avro_data.PARTITIONS} partitions"
            with self.progress.step(text):
                create_topic(self.bootstrap, topic)
                schema_id = register(self.registry_url, f"{topic}-value")
                encode = functools.partial(_avro, schema_id, size)
                seconds[f"produce{suffix or '_n'}_s"] = produce(self.bootstrap, topic, size, encode)
        topic = self.topics["_json"]
        with self.progress.step(f"avro        produce {self.count:,} JSON records to {topic}"):
            create_topic(self.bootstrap, topic)
            seconds["produce_json_s"] = produce(self.bootstrap, topic, self.count, functools.partial(_json, self.count))
        return seconds

    def measure_all(self) -> None:
        count, options, workdir = self.count, self.options, self.workdir
        self.attempt(
            "(b) limit: pre-decoded rows, COPY + merge",
            lambda: limit_line(self.url, self.table("limit"), count, options.batches, workdir / "limit.log"),
        )
        self.alternating(
            [
                ("(c) plain consumer", self.plain_line),
                ("(a) sink run, Avro", lambda: self.sink_line("a", "sink run (Avro)", "", "avro")),
            ]
        )
        self.attempt("(cx2) plain consumer, 2 processes", lambda: self.plain_line(copies=2))
        self.attempt(
            "(ax2) sink run, Avro, 2 processes",
            lambda: self.sink_line("ax2", "sink run (Avro), 2 processes, one group", "", "avro", copies=2),
        )
        self.attempt("(a/2) sink run, Avro, N/2", lambda: self.sink_line("a/2", "sink run (Avro), N/2", "_h", "avro"))
        self.attempt("(a/4) sink run, Avro, N/4", lambda: self.sink_line("a/4", "sink run (Avro), N/4", "_q", "avro"))
        self.attempt(
            "(json) sink run, JSON", lambda: self.sink_line("json", "sink run (plain JSON, same rows)", "_json", "json")
        )
        for database in (avro_db.MARIADB, avro_db.SQLITE):
            if database in options.databases:
                self.other_database(database, options.databases[database])
            else:
                why = options.skipped.get(database, "not in --databases")
                self.progress.line(f"avro        (b/{database}), (a/{database}): not run ({why})")
        self.attempt("(d) Quix Streams PostgreSQLSink", self.quix_line)
        self.attempt(
            f"(e) per record, time-boxed {options.naive_seconds:g} s",
            lambda: naive_line(
                self.url, self.conninfo, self.table("naive"), count, options.naive_seconds, workdir / "naive.log"
            ),
        )

    def other_database(self, database: str, url: str) -> None:
        """(b/db) that database's limit from Python, then (a/db) the sink into it; then the check
        that the limit's table has exactly the columns the sink created (types, NOT NULL, key)."""
        name = avro_db.NAMES[database]
        limit_table = self.table(f"limit_{database}", url)
        self.attempt(
            f"(b/{database}) limit into {name}: pre-decoded rows, executemany upsert",
            lambda: limit_line(
                url,
                limit_table,
                self.count,
                self.options.batches,
                self.workdir / f"limit_{database}.log",
                f"b/{database}",
            ),
        )
        self.attempt(
            f"(a/{database}) sink run, Avro, into {name}",
            lambda: self.sink_line(f"a/{database}", f"sink run (Avro) into {name}", "", "avro", url=url),
        )
        lines = {line.key: line for line in self.lines}
        sink, limit = lines.get(f"a/{database}"), lines.get(f"b/{database}")
        if sink is None or limit is None or sink.wrong or limit.wrong:
            return
        made, ours = avro_db.columns(url, sink.extra["table"]), avro_db.columns(url, limit_table)
        sink.extra["columns_as_limit"] = made == ours
        if made != ours:
            sink.note = f"{sink.note}; the sink's columns {made} differ from (b/{database})'s {ours}".lstrip("; ")

    def profile(self) -> list[str]:
        """One more sink run on the N/2 topic under py-spy; where its CPU went."""
        from .pyspy_summary import summarize

        raw = self.workdir / "sink.pyspy.txt"
        self.attempt(
            "(profile) sink run (Avro), N/2, under py-spy",
            lambda: self.sink_line("profile", "sink run under py-spy", "_h", "avro", raw),
        )
        return summarize(raw) if raw.exists() else ["py-spy: no profile written"]

    def alternating(self, measures: list[tuple[str, Callable[[], Line]]]) -> None:
        """Measure the lines in turn, `options.rounds` times, and keep each line's median run (its
        rates by round in `extra["rounds"]`); a line that failed in any round keeps that failure."""
        rounds = self.options.rounds
        runs: list[list[Line]] = [[] for _ in measures]
        for number in range(1, rounds + 1):
            for (text, measure), kept in zip(measures, runs, strict=True):
                kept.append(self.measured(text if rounds == 1 else f"{text}, round {number} of {rounds}", measure))
        self.lines += [median_run(kept) for kept in runs]

    def attempt(self, text: str, measure: Callable[[], Line]) -> None:
        """Measure one line; a failure is recorded as that line's result and never stops the others."""
        self.lines.append(self.measured(text, measure))

    def measured(self, text: str, measure: Callable[[], Line]) -> Line:
        """One run of a line, or its failure as its result."""
        try:
            with self.progress.step(f"avro        {text}"):
                try:
                    shown = measure()
                except Exception as exc:
                    key, _, label = text.partition(" ")
                    key = key.strip("()")
                    database = key.partition("/")[2] if key.partition("/")[2] in avro_db.NAMES else avro_db.POSTGRESQL
                    failed = Line(key, label, self.count, None, wrong=f"FAILED: {exc}", database=database)
                    raise _Failed(failed) from exc
        except _Failed as failure:
            print(failure.__cause__, file=sys.stderr)
            return failure.line
        self.progress.line(f"            -> {shown.rate or 0:,.0f} records/s {shown.wrong}".rstrip())
        threads = shown.extra.get("threads")
        if threads:  # where the process's CPU went, by thread, when its table was done
            busiest = sorted(threads.items(), key=lambda item: -item[1])[:5]
            self.progress.line("               CPU s by thread: " + ", ".join(f"{n} {s:.1f}" for n, s in busiest))
        return shown

    def sink_line(
        self,
        key: str,
        label: str,
        suffix: str,
        value_format: str,
        spy: Path | None = None,
        url: str | None = None,
        copies: int = 1,
        tree: Path | None = None,
        settings: dict[str, str] | None = None,
    ) -> Line:
        """`sink run` on the topic of `suffix` into a new table at `url` (default PostgreSQL); with
        `copies`, that many processes in one consumer group (how the sink scales out: each takes
        some of the partitions). `tree`: the sink of that source checkout instead of this venv's
        (benchmarks/compare.py); `settings`: more SINK_* settings over `--sink-env`'s."""
        url = url or self.url
        name = self.table(f"sink{key.replace('/', '_')}", url)
        size = self.sizes.get(suffix, self.count)
        env = sink_env(
            self.workdir / f"{name}.env",
            self.bootstrap,
            self.topics[suffix],
            f"{name}_g",
            url,
            name,
            value_format,
            self.registry_url,
            {**self.options.sink_env, **(settings or {})},
        )
        command = [str(BIN / "sink"), "run", "--env-file", str(env)]
        environment = None
        if tree is not None:  # -P: the tree's `sink` package first on the path, not the cwd's
            command = [sys.executable, "-P", "-m", "sink", "run", "--env-file", str(env)]
            environment = {"PYTHONPATH": str(tree)}
        log = self.workdir / f"{name}.log"
        line = run_line(key, label, command, log, url, name, size, environment, spy, copies)
        line.extra["table"] = name
        return line

    def plain_line(self, copies: int = 1) -> Line:
        """(c), or with `copies` (cx2) that many of its processes in one consumer group: the
        baseline scaled out as the sink is in (ax2)."""
        from . import pg_merge

        name = self.table("plain" if copies == 1 else f"plainx{copies}")
        batch = max(self.options.batches)
        pg_merge.create_table(self.conninfo, name)
        command = [
            sys.executable,
            str(HERE / "plain_consumer.py"),
            self.bootstrap,
            self.topics[""],
            f"{name}_g",
            self.registry_url,
            self.conninfo,
            name,
            str(batch),
        ]
        label = "plain consumer: confluent-kafka + fastavro + COPY/merge"
        key = "c" if copies == 1 else f"cx{copies}"
        if copies > 1:
            label = f"plain consumer, {copies} processes, one group"
        line = run_line(key, label, command, self.workdir / f"{name}.log", self.url, name, self.count, copies=copies)
        line.note = f"batch {batch:,} rows or an empty poll; commit after each DB commit"
        return line

    def quix_line(self) -> Line:
        python, version = self.quix
        if python is None:
            return Line("d", "Quix Streams PostgreSQLSink", self.count, None, note=f"not run: {version}")
        name = self.table("quix")
        dsn = psycopg.conninfo.conninfo_to_dict(self.conninfo)
        database = [
            str(dsn.get(k, default))
            for k, default in (("host", "127.0.0.1"), ("port", 5432), ("dbname", "test"), ("user", "postgres"))
        ]
        command = [
            str(python),
            str(HERE / "quix_consumer.py"),
            self.bootstrap,
            self.topics[""],
            f"{name}_g",
            self.registry_url,
            *database,
            name,
        ]
        env = {"Quix__State__Dir": str(self.workdir / "quix-state")}
        label = f"Quix Streams {version} PostgreSQLSink"
        line = run_line("d", label, command, self.workdir / f"{name}.log", self.url, name, self.count, env=env)
        line.note = "upsert_on_primary_key, Avro through the registry, include_metadata=False, defaults otherwise"
        return line


class _Failed(Exception):
    """A line's run failed: its result is `line` (the progress step has shown the error)."""

    def __init__(self, line: Line) -> None:
        super().__init__(line.wrong)
        self.line = line


def median_run(runs: list[Line]) -> Line:
    """The run of a line to report among its rounds: the first failed or WRONG one if any (a line
    is only as good as its worst run), else the median by time; the note names every round's rate."""
    bad = [run for run in runs if run.wrong]
    if len(runs) == 1 or bad:
        return bad[0] if bad else runs[0]
    ordered = sorted(runs, key=lambda run: run.seconds or 0.0)
    kept = ordered[len(ordered) // 2]  # of an even number, the slower middle run
    rates = [round(run.rate or 0) for run in runs]
    kept.extra["rounds"] = rates
    spread = f"median of {len(runs)} alternating runs ({', '.join(f'{r:,}' for r in rates)} records/s)"
    kept.note = f"{spread}; {kept.note}" if kept.note else spread
    return kept


def _avro(schema_id: int, count: int, i: int) -> bytes:
    return avro_data.avro_value(schema_id, i, count)


def _json(count: int, i: int) -> bytes:
    return avro_data.json_value(i, count)


def linearity(lines: list[Line]) -> dict[str, Any]:
    by_key = {line.key: line for line in lines if line.seconds and not line.wrong}
    points = [(by_key[k].count, by_key[k].seconds) for k in ("a/4", "a/2", "a") if k in by_key]
    out: dict[str, Any] = {"points": points}
    if "a" in by_key and "a/2" in by_key:
        out["t(N)/t(N/2)"] = by_key["a"].seconds / by_key["a/2"].seconds  # type: ignore[operator]
    if "a/2" in by_key and "a/4" in by_key:
        out["t(N/2)/t(N/4)"] = by_key["a/2"].seconds / by_key["a/4"].seconds  # type: ignore[operator]
    if "a" in by_key and "a/2" in by_key:
        a, h = by_key["a"], by_key["a/2"]
        out["marginal records/s (N/2 -> N)"] = (a.count - h.count) / (a.seconds - h.seconds)  # type: ignore[operator]
    return out
