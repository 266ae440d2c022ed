"""The Avro peers section (issue 7): one dataset, one broker, one registry, every line on the same
topic with its own consumer group and its own table, each timed from its process start until its
table holds the exact final state.

(a) sink run      `sink run --env-file F` (Avro through the test registry, upsert, record_value id)
(b) limit         the same rows pre-decoded, binary COPY + DISTINCT ON merge, best of some batch sizes
(c) plain         benchmarks/plain_consumer.py: confluent-kafka + fastavro + the same COPY/merge
(d) quix          Quix Streams' PostgreSQLSink (its own venv, installed on first use)
(e) per record    one SQLAlchemy upsert + COMMIT per record, time-boxed, extrapolated to N
plus `sink run` on a JSON copy of the topic, and `sink run` at N/4 and N/2 (linearity).

"Final state" is checked cheaply while a line runs (the last record of each partition is visible:
every line keeps per-partition order) and then exactly (count, sum(seq), sum of an md5 of the last
version's note); a line that never matches is marked WRONG. Peak RSS is the process's VmHWM and
CPU its utime+stime, both read from /proc just before it is stopped.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import psycopg
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic
from psycopg import sql

from . import avro_data
from .common import Progress

SECTION = "avro"
ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
QUIX_VENV = HERE / ".quix-venv"
QUIX_REQUIREMENT = "quixstreams[avro,postgresql]"
SESSION_TIMEOUT_MS = 6000
VERIFY_GRACE_S = 15.0


@dataclass
class Line:
    key: str  # a, b, c, d, e, json, a/4, a/2
    label: str
    count: int  # records the line stands for
    seconds: float | None  # None: not measured
    cpu: float | None = None
    rss_mb: float | None = None
    wrong: str = ""
    note: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def rate(self) -> float | None:
        return self.count / self.seconds if self.seconds else None


@dataclass
class Options:
    count: int
    batches: list[int]
    naive_seconds: float
    quix: bool
    sink_env: dict[str, str]
    py_spy: bool = False


# ------------------------------------------------------------------------------ Kafka + registry


def create_topic(bootstrap: str, topic: str) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(topic, num_partitions=avro_data.PARTITIONS)])[topic].result(timeout=20)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        metadata = admin.list_topics(topic=topic, timeout=5).topics.get(topic)
        if metadata is not None and metadata.error is None and len(metadata.partitions) == avro_data.PARTITIONS:
            return
        time.sleep(0.1)
    raise RuntimeError(f"topic {topic} not visible with {avro_data.PARTITIONS} partitions")


def register(registry_url: str, subject: str) -> int:
    from confluent_kafka.schema_registry import Schema, SchemaRegistryClient

    client = SchemaRegistryClient({"url": registry_url})
    return int(client.register_schema(subject, Schema(json.dumps(avro_data.VALUE_SCHEMA), "AVRO")))


def produce(bootstrap: str, topic: str, count: int, encode: Callable[[int], bytes]) -> float:
    """Produce the dataset (explicit partitions); check every record by its delivery report."""
    producer = Producer(
        {
            "bootstrap.servers": bootstrap,
            "linger.ms": 20,
            "batch.num.messages": 10000,
            "acks": "all",
            "queue.buffering.max.messages": 500000,
        }
    )
    acknowledged: Counter[int] = Counter()
    highest: dict[int, int] = {}
    errors: list[str] = []

    def delivered(err: object, msg: Any) -> None:
        if err is not None:
            errors.append(str(err))
            return
        acknowledged[msg.partition()] += 1
        highest[msg.partition()] = max(highest.get(msg.partition(), -1), msg.offset())

    started = time.perf_counter()
    for i, partition, key in avro_data.messages(count):
        value = encode(i)
        while True:
            try:
                producer.produce(topic, value, key, partition=partition, on_delivery=delivered)
                break
            except BufferError:
                producer.poll(0.05)
        producer.poll(0)
    left = producer.flush(300)
    seconds = time.perf_counter() - started
    total = avro_data.even(count)
    if left or errors or sum(acknowledged.values()) != total:
        raise RuntimeError(f"produce to {topic}: {left} undelivered, {len(errors)} errors {errors[:3]}")
    for partition, acked in acknowledged.items():
        if highest[partition] + 1 != acked:  # a new topic: offsets 0..n-1
            raise RuntimeError(f"{topic}[{partition}]: {acked} acknowledged but highest offset {highest[partition]}")
    return seconds


# ------------------------------------------------------------------------------ processes


def proc_stats(pid: int) -> tuple[float, float]:
    """(peak RSS in MB from VmHWM, CPU seconds utime+stime) of a live process; (0, 0) if gone."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0, 0.0
    hwm = next((int(line.split()[1]) for line in status.splitlines() if line.startswith("VmHWM:")), 0)
    fields = stat[stat.rindex(")") + 2 :].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return hwm / 1024, (int(fields[11]) + int(fields[12])) / ticks


def checksum(conn: psycopg.Connection[Any], table: str) -> tuple[int, int, int] | None:
    try:
        found = conn.execute(sql.SQL(avro_data.CHECKSUM_SQL).format(sql.Identifier(table))).fetchone()
    except psycopg.errors.UndefinedTable:
        return None
    return (int(found[0]), int(found[1]), int(found[2])) if found else None


def run_line(
    key: str,
    label: str,
    command: list[str],
    log_path: Path,
    conninfo: str,
    table: str,
    count: int,
    env: dict[str, str] | None = None,
    py_spy: Path | None = None,
) -> Line:
    """Start `command`, wait until `table` holds the final state of a `count` dataset, stop it.
    With `py_spy`, py-spy samples the process (CPU only, 100 Hz) into that file (raw stacks)."""
    probe = avro_data.last_per_partition(count)
    expected = avro_data.expected_checksum(count)
    probe_sql = sql.SQL("SELECT id, seq FROM {} WHERE id = ANY(%s)").format(sql.Identifier(table))
    timeout = 120 + count / 1000
    environment = {k: v for k, v in os.environ.items() if not k.upper().startswith("SINK_")}
    environment.update(env or {})
    line = Line(key, label, avro_data.even(count), None)
    with open(log_path, "wb") as log, psycopg.connect(conninfo, autocommit=True) as conn:
        started = time.perf_counter()
        process = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=environment, cwd=ROOT
        )
        spy = None
        if py_spy is not None:
            spy_command = [str(BIN / "py-spy"), "record", "--format", "raw", "--rate", "100", "--nonblocking"]
            spy_command += ["-o", str(py_spy), "--pid", str(process.pid)]
            spy = subprocess.Popen(spy_command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            rss, cpu = 0.0, 0.0
            while True:
                now = time.perf_counter() - started
                if process.poll() is not None:
                    raise RuntimeError(f"{label} exited early with code {process.returncode}")
                rss, cpu = max(rss, proc_stats(process.pid)[0]), proc_stats(process.pid)[1] or cpu
                if now > timeout:
                    line.seconds, line.wrong = now, f"WRONG: not at the final state after {timeout:.0f} s"
                    break
                try:
                    found = dict(conn.execute(probe_sql, (list(probe),)).fetchall())
                except (psycopg.errors.UndefinedTable, psycopg.errors.UndefinedColumn):
                    found = {}
                if found == probe:
                    line.seconds = now
                    _verify(line, conn, table, expected, started)
                    break
                time.sleep(0.1)
            rss_now, cpu_now = proc_stats(process.pid)
            line.rss_mb, line.cpu = max(rss, rss_now), cpu_now or cpu
            process.send_signal(signal.SIGTERM)
            try:
                code = process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                code = process.wait(timeout=10)
                line.note = "did not stop on SIGTERM within 30 s"
            if code not in (0, -signal.SIGTERM):
                line.note = f"{line.note}; exit code {code}".lstrip("; ")
            if spy is not None:
                spy.wait(timeout=60)
            return line
        except BaseException as exc:
            process.kill()
            process.wait(timeout=10)
            if spy is not None:
                spy.kill()
                spy.wait(timeout=10)
            tail = "\n".join(log_path.read_text(errors="replace").splitlines()[-15:])
            raise RuntimeError(f"{exc}\n--- {log_path} (last lines) ---\n{tail}") from exc


def _verify(
    line: Line, conn: psycopg.Connection[Any], table: str, expected: tuple[int, int, int], started: float
) -> None:
    """The exact check once the probe saw the last records; a late match moves the time."""
    deadline = time.perf_counter() + VERIFY_GRACE_S
    while True:
        found = checksum(conn, table)
        if found == expected:
            return
        if time.perf_counter() > deadline:
            line.wrong = f"WRONG: (rows, sum seq, sum hash) = {found}, expected {expected}"
            return
        time.sleep(1.0)
        line.seconds = time.perf_counter() - started


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


def limit_line(conninfo: str, table: str, count: int, batches: list[int], log: Path) -> Line:
    command = [sys.executable, str(HERE / "avro_limit.py"), "limit", conninfo, table, str(count)]
    command.append(",".join(str(b) for b in batches))
    out = subprocess.run(command, capture_output=True, text=True, check=False, cwd=ROOT)
    log.write_text(out.stdout + out.stderr)
    if out.returncode != 0:
        raise RuntimeError(f"limit line failed:\n{out.stderr[-2000:]}")
    runs = [json.loads(text) for text in out.stdout.splitlines() if text.startswith("{")]
    expected = list(avro_data.expected_checksum(count))
    best = min(runs, key=lambda r: r["seconds"])
    line = Line(
        "b",
        f"limit: COPY + merge, pre-decoded, best batch {best['batch']:,}",
        avro_data.even(count),
        best["seconds"],
        cpu=best["cpu"],
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
    """Run every line; return the results document (also written to results/latest.json)."""
    from sink.adapters.embedded_broker import EmbeddedBroker
    from tests.support.registry import RegistryServer

    from . import pg_merge

    count = avro_data.even(options.count)
    conninfo = url.replace("+psycopg", "")
    dsn = psycopg.conninfo.conninfo_to_dict(conninfo)
    run_id = uuid.uuid4().hex[:6]
    prefix = f"bench_avro_{run_id}"
    tables: list[str] = []
    lines: list[Line] = []
    load_before = os.getloadavg()
    doc: dict[str, Any] = {
        "records": count,
        "distinct_ids": avro_data.distinct(count),
        "partitions": avro_data.PARTITIONS,
        "load_before": load_before,
    }

    def table(name: str) -> str:
        tables.append(f"{prefix}_{name}")
        return tables[-1]

    quix: tuple[Path | None, str] = (None, "disabled (--no-quix)")
    if options.quix:
        quix = quix_python(progress)
    doc["quixstreams"] = quix[1]

    with progress.step("avro        start the embedded broker (tansu) and the test registry"):
        broker = EmbeddedBroker(log_path=workdir / "tansu.log").start()
        registry = RegistryServer().start()
    try:
        bootstrap, registry_url = broker.bootstrap_servers, registry.url
        sizes = {"": count, "_q": avro_data.even(count // 4), "_h": avro_data.even(count // 2)}
        topics: dict[str, str] = {}
        for suffix, size in sizes.items():
            topic = topics[suffix] = f"{prefix}{suffix}"
            with progress.step(
                f"avro        produce {size:,} Avro records to {topic}, {avro_data.PARTITIONS} partitions"
            ):
                create_topic(bootstrap, topic)
                schema_id = register(registry_url, f"{topic}-value")
                seconds = produce(bootstrap, topic, size, lambda i, s=schema_id, n=size: avro_data.avro_value(s, i, n))
            doc[f"produce{suffix or '_n'}_s"] = seconds
        json_topic = f"{prefix}_json"
        with progress.step(f"avro        produce {count:,} JSON records to {json_topic}"):
            create_topic(bootstrap, json_topic)
            produce(bootstrap, json_topic, count, lambda i: avro_data.json_value(i, count))

        def sink_line(key: str, label: str, topic: str, size: int, value_format: str, spy: Path | None = None) -> Line:
            name = table(f"sink{key.replace('/', '_')}")
            group = f"{name}_g"
            env = sink_env(
                workdir / f"{name}.env",
                bootstrap,
                topic,
                group,
                url,
                name,
                value_format,
                registry_url,
                options.sink_env,
            )
            command = [str(BIN / "sink"), "run", "--env-file", str(env)]
            return run_line(key, label, command, workdir / f"{name}.log", conninfo, name, size, py_spy=spy)

        def step(text: str, measure: Callable[[], Line]) -> None:
            with progress.step(f"avro        {text}"):
                try:
                    lines.append(measure())
                except Exception as exc:  # one broken line must not lose the others
                    key, _, label = text.partition(" ")
                    lines.append(Line(key.strip("()"), label, count, None, wrong=f"FAILED: {exc}"))
                    raise
            shown = lines[-1]
            progress.line(f"            -> {shown.rate or 0:,.0f} records/s {shown.wrong}".rstrip())

        def attempt(text: str, measure: Callable[[], Line]) -> None:
            try:
                step(text, measure)
            except Exception as exc:
                print(exc, file=sys.stderr)

        attempt(
            "(b) limit: pre-decoded rows, COPY + merge",
            lambda: limit_line(conninfo, table("limit"), count, options.batches, workdir / "limit.log"),
        )

        def plain() -> Line:
            name = table("plain")
            pg_merge.create_table(conninfo, name)
            command = [
                sys.executable,
                str(HERE / "plain_consumer.py"),
                bootstrap,
                topics[""],
                f"{name}_g",
                registry_url,
                conninfo,
                name,
                str(max(options.batches)),
            ]
            line = run_line(
                "c",
                "plain consumer: confluent-kafka + fastavro + COPY/merge",
                command,
                workdir / f"{name}.log",
                conninfo,
                name,
                count,
            )
            line.note = f"batch {max(options.batches):,} rows or an empty poll; commit after each DB commit"
            return line

        attempt("(c) plain consumer", plain)
        attempt("(a) sink run, Avro", lambda: sink_line("a", "sink run (Avro)", topics[""], count, "avro"))
        attempt(
            "(a/2) sink run, Avro, N/2",
            lambda: sink_line("a/2", "sink run (Avro), N/2", topics["_h"], sizes["_h"], "avro"),
        )
        attempt(
            "(a/4) sink run, Avro, N/4",
            lambda: sink_line("a/4", "sink run (Avro), N/4", topics["_q"], sizes["_q"], "avro"),
        )
        attempt(
            "(json) sink run, JSON",
            lambda: sink_line("json", "sink run (plain JSON, same rows)", json_topic, count, "json"),
        )

        def quix_line() -> Line:
            python = quix[0]
            if python is None:
                return Line("d", "Quix Streams PostgreSQLSink", count, None, note=f"not run: {quix[1]}")
            name = table("quix")
            command = [
                str(python),
                str(HERE / "quix_consumer.py"),
                bootstrap,
                topics[""],
                f"{name}_g",
                registry_url,
                str(dsn.get("host", "127.0.0.1")),
                str(dsn.get("port", 5432)),
                str(dsn.get("dbname", "test")),
                str(dsn.get("user", "postgres")),
                name,
            ]
            line = run_line(
                "d",
                f"Quix Streams {quix[1]} PostgreSQLSink",
                command,
                workdir / f"{name}.log",
                conninfo,
                name,
                count,
                env={"Quix__State__Dir": str(workdir / "quix-state")},
            )
            line.note = "upsert_on_primary_key, Avro through the registry, include_metadata=False, defaults otherwise"
            return line

        attempt("(d) Quix Streams PostgreSQLSink", quix_line)
        attempt(
            f"(e) per record, time-boxed {options.naive_seconds:g} s",
            lambda: naive_line(url, conninfo, table("naive"), count, options.naive_seconds, workdir / "naive.log"),
        )
        if options.py_spy:
            raw = workdir / "sink.pyspy.txt"
            attempt(
                "(profile) sink run (Avro), N/2, under py-spy",
                lambda: sink_line("profile", "sink run under py-spy", topics["_h"], sizes["_h"], "avro", raw),
            )
            if raw.exists():
                from .pyspy_summary import summarize

                doc["profile"] = summarize(raw)
    finally:
        registry.stop()
        broker.stop()
        _drop(conninfo, tables)

    doc["load_after"] = os.getloadavg()
    doc["lines"] = [dict(asdict(line), rate=line.rate) for line in lines]
    doc["linearity"] = linearity(lines)
    return doc


def _drop(conninfo: str, tables: list[str]) -> None:
    with psycopg.connect(conninfo, autocommit=True) as conn:
        for name in tables:
            conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(name)))


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
