"""The fuzz suite's machinery: a scenario of records, produced to fresh topics, pushed through one
`sink run` subprocess, and the invariants checked against the database, the DLQ and the group.

Every produced record carries a header ``fz-seq`` (its sequence number in the scenario) and, when
its payload is well formed, a value field ``id`` with the same number; the checker finds each record
again as a row (by that id) or as a dead-lettered record (by the header, which the DLQ keeps).
Records without a usable id (top-level scalars, zero-field records, mutated schemas) are accounted
for by count. Each check returns *violations* (one line each), so a failing run says everything
that went wrong at once.
"""

from __future__ import annotations

import decimal
import json
import math
import signal
import time
import uuid
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import NewTopic

from tests.e2e.conftest import SinkProcess, SinkRunner, write_env
from tests.support.kafka import admin, consume_all, wait_for

PREFIX = "__connect.errors."
SEQ_HEADER = "fz-seq"
ROW, DLQ, EITHER = "row", "dlq", "either"
MISSING = "neither a row"
ACCOUNTING = "accounting:"
EXITED = "the sink exited on its own"


def early_exit(violations: list[str]) -> bool:
    return any(v.startswith(EXITED) for v in violations)


def db_kind(url: str) -> str:
    if url.startswith("postgresql"):
        return "postgresql"
    if url.startswith("mysql") or url.startswith("mariadb"):
        return "mariadb"
    return "sqlite"


# ------------------------------------------------------------------------------ records


@dataclass
class Rec:
    """One input record and what may become of it."""

    seq: int
    topic: str
    key: bytes | None
    value: bytes
    label: str  # "corpus field_70_bytes (bad)", "fuzz json #12 truncated", ...
    expect: str = EITHER  # ROW: must be a row; DLQ: must be dead-lettered; EITHER: one of them
    ident: int | None = None  # the id its row carries (None: anonymous row)
    fields: Mapping[str, Any] | None = None  # top-level fields its row must keep (value check)
    null: bool = False  # its value decodes to null: a tombstone, skipped (delete.enabled is off)
    partition: int = 0
    offset: int = -1  # learned after producing

    @property
    def coord(self) -> str:
        return f"{self.topic}/{self.partition}@{self.offset}"


@dataclass
class Scenario:
    prefix: str  # every topic and table of the scenario starts with it
    topics: dict[str, int] = field(default_factory=dict)  # name -> partitions
    id_columns: dict[str, str] = field(default_factory=dict)  # topic -> id column when not "id"
    records: list[Rec] = field(default_factory=list)

    def topic(self, name: str, partitions: int = 1, id_column: str = "id") -> str:
        self.topics.setdefault(name, partitions)
        if id_column != "id":
            self.id_columns[name] = id_column
        return name

    def next_seq(self) -> int:
        return len(self.records)

    def add(self, rec: Rec) -> Rec:
        assert rec.seq == len(self.records), "records are added in sequence order"
        self.records.append(rec)
        return rec

    @property
    def ends(self) -> dict[tuple[str, int], int]:
        ends: dict[tuple[str, int], int] = {(t, p): 0 for t, n in self.topics.items() for p in range(n)}
        for rec in self.records:
            ends[(rec.topic, rec.partition)] = max(ends[(rec.topic, rec.partition)], rec.offset + 1)
        return ends


# ------------------------------------------------------------------------------ Kafka


def create_topics(bootstrap: str, topics: Mapping[str, int], timeout: float = 30.0) -> None:
    client = admin(bootstrap)
    futures = client.create_topics([NewTopic(t, num_partitions=n) for t, n in topics.items()])
    for future in futures.values():
        try:
            future.result(timeout=timeout)
        except KafkaException as exc:
            if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise

    def visible() -> bool:
        metadata = client.list_topics(timeout=5).topics
        return all(
            t in metadata and metadata[t].error is None and len(metadata[t].partitions) == n for t, n in topics.items()
        )

    wait_for(visible, timeout, message=f"topics {sorted(topics)} not visible")


def produce_scenario(bootstrap: str, scenario: Scenario, timeout: float = 60.0) -> None:
    """Produce every record (in sequence order per partition; one producer for all topics) and learn
    each record's offset by reading everything back (one consumer, assigned, no group)."""
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5, "enable.idempotence": True})
    failures: list[str] = []

    def on_delivery(err: KafkaError | None, msg: Any) -> None:
        if err is not None:
            failures.append(f"{msg.topic()}[{msg.partition()}]: {err}")

    for rec in scenario.records:
        producer.produce(
            rec.topic,
            key=rec.key,
            value=rec.value,
            partition=rec.partition,
            headers=[(SEQ_HEADER, str(rec.seq).encode())],
            on_delivery=on_delivery,
        )
        producer.poll(0)
    assert producer.flush(timeout) == 0, "records still undelivered"
    assert not failures, f"delivery failed: {failures[:5]}"

    by_seq = {r.seq: r for r in scenario.records}
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"fz-read-{uuid.uuid4().hex[:12]}",
            "enable.auto.commit": False,
            "fetch.max.bytes": 52428800,
        }
    )
    seen: set[int] = set()
    deadline = time.monotonic() + timeout
    try:
        consumer.assign([TopicPartition(t, p, OFFSET_BEGINNING) for t, n in scenario.topics.items() for p in range(n)])
        while len(seen) < len(by_seq) and time.monotonic() < deadline:
            for message in consumer.consume(1000, 0.5):
                if message.error() is not None:
                    continue
                headers = dict(message.headers() or [])
                rec = by_seq[int(headers[SEQ_HEADER])]
                rec.partition, rec.offset = message.partition(), message.offset()
                seen.add(rec.seq)
    finally:
        consumer.close()
    assert len(seen) == len(by_seq), f"read back {len(seen)} of {len(by_seq)} records"


class Offsets:
    """The committed offsets of a group, read without joining it (one client, reused)."""

    def __init__(self, bootstrap: str, group: str) -> None:
        self.consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False})

    def read(self, partitions: Iterable[tuple[str, int]]) -> dict[tuple[str, int], int | None]:
        result = self.consumer.committed([TopicPartition(t, p) for t, p in partitions], timeout=10)
        return {(tp.topic, tp.partition): (tp.offset if tp.offset >= 0 else None) for tp in result}

    def close(self) -> None:
        self.consumer.close()


# ------------------------------------------------------------------------------ database


def _engine(url: str) -> sa.Engine:
    return sa.create_engine(url, poolclass=sa.pool.NullPool)


def prefixed_tables(url: str, prefix: str) -> list[str]:
    engine = _engine(url)
    try:
        names = sa.inspect(engine).get_table_names()
    finally:
        engine.dispose()
    return [n for n in names if n.lower().startswith(prefix.lower())]


def read_prefixed_tables(url: str, prefix: str) -> tuple[dict[str, list[dict[str, Any]]], list[str]]:
    """Rows of every table whose name starts with `prefix`, and the problems reading them."""
    tables: dict[str, list[dict[str, Any]]] = {}
    problems: list[str] = []
    engine = _engine(url)
    try:
        for name in prefixed_tables(url, prefix):
            try:
                tables[name] = _select_all(engine, name)
            except Exception as exc:  # a table the sink left unreadable is a finding, not a crash
                problems.append(f"table {name!r} cannot be read: {type(exc).__name__}: {str(exc)[:200]}")
    finally:
        engine.dispose()
    return tables, problems


def drop_prefixed_tables(url: str, prefix: str) -> None:
    engine = _engine(url)
    try:
        for name in prefixed_tables(url, prefix):
            with engine.begin() as conn:
                conn.execute(sa.text(f"DROP TABLE {engine.dialect.identifier_preparer.quote(name)}"))
    finally:
        engine.dispose()


def table_rows(url: str, table: str) -> list[dict[str, Any]]:
    engine = _engine(url)
    try:
        with engine.connect() as conn:
            try:
                exists = sa.inspect(conn).has_table(table)
            except sa.exc.DBAPIError:  # a name the database refuses (too long, ...): no such table
                exists = False
            if not exists:
                return []
        return _select_all(engine, table)
    finally:
        engine.dispose()


def _select_all(engine: sa.Engine, table: str) -> list[dict[str, Any]]:
    """`SELECT *`, column names as the driver reports them: reflection cannot be trusted with hostile
    names (SQLAlchemy's MySQL reflection keeps a backtick doubled, then selects a column that is not there)."""
    quoted = engine.dialect.identifier_preparer.quote_identifier(table)
    with engine.connect() as conn:
        result = conn.exec_driver_sql(f"SELECT * FROM {quoted}")
        names = [d[0] for d in result.cursor.description]
        return [dict(zip(names, row, strict=True)) for row in result.fetchall()]


# ------------------------------------------------------------------------------ value checks


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + f"...({len(text)} chars)"


def _column(row: Mapping[str, Any], name: str, case_insensitive: bool) -> tuple[str | None, str]:
    if name in row:
        return name, ""
    if case_insensitive:
        matches = [c for c in row if c.lower() == name.lower()]
        if len(matches) == 1:
            return matches[0], ""
    return None, f"no column {_short(name)}"


def _same(sent: Any, stored: Any) -> bool:
    if isinstance(sent, bool) or isinstance(stored, bool):
        return True  # booleans come back as 0/1 on MariaDB and SQLite: presence is what is checked
    if isinstance(sent, int):
        if isinstance(stored, int | decimal.Decimal):
            return decimal.Decimal(stored) == sent
        if isinstance(stored, float):
            return math.isfinite(stored) and math.isclose(stored, sent, rel_tol=1e-9)
        return isinstance(stored, str) and stored.strip() == str(sent)
    if isinstance(sent, str):
        if isinstance(stored, bytes):
            stored = stored.decode("utf-8", "replace")
        if stored == sent:
            return True
        if isinstance(stored, int | float | decimal.Decimal) and not isinstance(stored, bool):
            number = _cast_number(sent)  # a numeric column an earlier record made
            if number is None or not math.isfinite(stored):
                return False
            if isinstance(stored, float):
                return math.isclose(float(number), stored, rel_tol=1e-9, abs_tol=1e-300)
            return number == stored
        try:
            return isinstance(stored, str) and json.loads(stored) == sent
        except ValueError:
            return False
    return True


def _cast_number(text: str) -> decimal.Decimal | None:
    """The number the database makes of `text` for a numeric column, or None. Inferred columns
    only add columns and leave a type clash to the database (docs/types.md): a string into a
    numeric column an earlier record made is cast ("0" into a double column is 0.0), and only a
    string that is no number is that record's error."""
    try:
        number = decimal.Decimal(text.strip())
    except decimal.InvalidOperation:
        return None
    return number if number.is_finite() else None


def _exempt(value: Any) -> bool:
    """Values a database may legitimately keep as NULL: NaN and the infinities (SQLite, MariaDB)."""
    if isinstance(value, float | decimal.Decimal):
        try:
            return not math.isfinite(value)
        except (ValueError, TypeError):
            return True
    return False


def value_violations(rec: Rec, row: Mapping[str, Any], kind: str) -> list[str]:
    """A row must keep every non-null top-level field of its record, under its own name, with its
    value (integers and strings compared; other values must at least be non-null)."""
    if rec.fields is None:
        return []
    problems: list[str] = []
    folded = kind in ("mariadb", "sqlite")
    used: dict[str, str] = {}
    for name, sent in rec.fields.items():
        if sent is None:
            continue
        column, why = _column(row, name, folded)
        if column is None:
            problems.append(f"field {_short(name)} lost ({why})")
            continue
        if column in used:
            problems.append(f"fields {_short(used[column])} and {_short(name)} share column {_short(column)}")
            continue
        used[column] = name
        stored = row[column]
        if stored is None:
            if not _exempt(sent):
                problems.append(f"field {_short(name)} stored as NULL (sent {_short(sent)})")
        elif not _same(sent, stored):
            problems.append(f"field {_short(name)} stored as {_short(stored)} (sent {_short(sent)})")
    return [f"{rec.label} [{rec.coord}]: {p}; value {_short(rec.value, 160)}" for p in problems]


# ------------------------------------------------------------------------------ the sink run


def stderr_summary(text: str, lines: int = 3) -> str:
    """The lines that say why a sink stopped: ERROR lines and the last line of a traceback."""
    picked = [line for line in text.splitlines() if "ERROR" in line or "CRITICAL" in line]
    tail = text.strip().splitlines()
    if "Traceback" in text and tail:
        picked.append(tail[-1] if not tail[-1].startswith("20") else "")
        last_exc = [ln for ln in tail if ln and not ln.startswith((" ", "\t", "20", "Traceback"))]
        if last_exc:
            picked.append(last_exc[-1])
    picked = [p.strip()[:400] for p in picked if p.strip()]
    return " | ".join(dict.fromkeys(picked[-lines:])) or (tail[-1][:400] if tail else "(no output)")


def sink_env_file(
    path: Path, bootstrap: str, url: str, topics: Iterable[str], group: str, fmt: str, **extra: Any
) -> Path:
    return write_env(
        path,
        bootstrap,
        url,
        ",".join(topics),
        group,
        name="fuzz",
        key_format=fmt,
        value_format=fmt,
        pk_mode="none",
        insert_mode="insert",
        auto_create="true",
        auto_evolve="true",
        **extra,
    )


@dataclass
class RunResult:
    violations: list[str]
    rows: int
    dead: int
    produced: int
    seconds: float

    def report(self) -> str:
        head = (
            f"{len(self.violations)} violation(s); produced {self.produced}, rows {self.rows}, "
            f"dead-lettered {self.dead}, {self.seconds:.1f}s"
        )
        shown = self.violations[:80]
        more = [f"... and {len(self.violations) - len(shown)} more"] if len(self.violations) > len(shown) else []
        return "\n".join([head, *shown, *more])


def run_tolerance_all(
    bootstrap: str, url: str, scenario: Scenario, fmt: str, runner: SinkRunner, tmp_path: Path, timeout: float
) -> RunResult:
    """Produce the scenario, run one sink over it with errors.tolerance=all and a DLQ, stop it with
    SIGTERM once every partition is committed to its end, and check every invariant."""
    started = time.monotonic()
    dlq = f"{scenario.prefix}_dlq"
    group = f"{scenario.prefix}_group"
    create_topics(bootstrap, {**scenario.topics, dlq: 1})
    produce_scenario(bootstrap, scenario)
    env = sink_env_file(
        tmp_path / f"{scenario.prefix}.env",
        bootstrap,
        url,
        scenario.topics,
        group,
        fmt,
        errors_tolerance="all",
        errors_deadletterqueue_topic_name=dlq,
        errors_deadletterqueue_context_headers_enable="true",
        errors_log_enable="true",
    )
    sink = runner.start(env)
    violations: list[str] = []
    ends = scenario.ends
    offsets = Offsets(bootstrap, group)
    committed: dict[tuple[str, int], int | None] = {}
    try:
        deadline = time.monotonic() + timeout
        while True:
            if sink.process.poll() is not None:
                violations.append(f"{EXITED} with code {sink.process.returncode}: {stderr_summary(sink.stderr)}")
                break
            committed = offsets.read(ends)
            if all((committed.get(tp) or 0) >= end for tp, end in ends.items()):
                break
            if time.monotonic() > deadline:
                behind = {f"{t}/{p}": (committed.get((t, p)), e) for (t, p), e in ends.items()}
                behind = {tp: ce for tp, ce in behind.items() if (ce[0] or 0) < ce[1]}
                violations.append(f"committed offsets did not reach the end in {timeout:g}s: {behind}")
                break
            time.sleep(0.5)
        if sink.process.poll() is None:
            sink.process.send_signal(signal.SIGTERM)
            code = sink.wait(60)
            if code != 0:
                violations.append(f"after SIGTERM the sink exited with {code}: {stderr_summary(sink.stderr)}")
        committed = offsets.read(ends)
    finally:
        offsets.close()
    behind = {
        f"{t}/{p}": f"{committed.get((t, p))} of {end}"
        for (t, p), end in ends.items()
        if (committed.get((t, p)) or 0) != end
    }
    if behind and early_exit(violations):
        violations.append(f"committed offsets short of the partition ends on {len(behind)} of {len(ends)} partitions")
    elif behind:
        violations.append(f"committed offsets short of the partition ends: {behind}")
    dead = consume_all(bootstrap, dlq, timeout=30)
    tables, problems = read_prefixed_tables(url, scenario.prefix)
    violations += problems
    rows = sum(len(r) for r in tables.values())
    accounted = account(scenario, tables, dead, db_kind(url))
    if early_exit(violations):  # the records it never reached are one finding, not hundreds
        missing = [v for v in accounted if MISSING in v]
        accounted = [v for v in accounted if MISSING not in v and not v.startswith(ACCOUNTING)]
        if missing:
            accounted.append(f"{len(missing)} record(s) never processed, the first: {missing[0]}")
    violations += accounted
    return RunResult(violations, rows, len(dead), len(scenario.records), time.monotonic() - started)


def account(scenario: Scenario, tables: Mapping[str, list[dict[str, Any]]], dead: list[Any], kind: str) -> list[str]:
    """Every record is a row or exactly once in the DLQ (original bytes and coordinates), never both."""
    violations: list[str] = []
    by_seq = {r.seq: r for r in scenario.records}
    by_ident = {r.ident: r for r in scenario.records if r.ident is not None}

    # the dead-letter queue
    by_coord = {(r.topic, r.partition, r.offset): r for r in scenario.records}
    dead_seqs: Counter[int] = Counter()
    reasons: dict[int, str] = {}
    for message in dead:
        where = tuple(message.header(PREFIX + name) for name in ("topic", "partition", "offset"))
        try:
            rec = by_coord.get((where[0].decode(), int(where[1]), int(where[2])))  # type: ignore[union-attr]
        except (AttributeError, ValueError, TypeError):
            rec = None
        if rec is None:
            violations.append(f"DLQ record whose context headers name no produced record: {where}")
            continue
        dead_seqs[rec.seq] += 1
        reasons[rec.seq] = (message.header(PREFIX + "exception.message") or b"").decode("utf-8", "replace")[:160]
        truncated = message.header(PREFIX + "sink.truncated")
        if truncated is not None:
            violations += _truncated_violations(rec, message, truncated)
            continue
        if message.header(SEQ_HEADER) != str(rec.seq).encode():
            violations.append(f"{rec.label}: DLQ record lost its original headers ({message.headers[:2]})")
        if message.key != rec.key:
            violations.append(f"{rec.label}: DLQ key {_short(message.key)} != original {_short(rec.key)}")
        if message.value != rec.value:
            violations.append(f"{rec.label}: DLQ value differs from the original bytes ({_short(message.value)})")
    for seq, count in dead_seqs.items():
        if count > 1:
            violations.append(f"{by_seq[seq].label}: dead-lettered {count} times")

    # the rows
    found: Counter[int] = Counter()
    anonymous: list[tuple[str, dict[str, Any]]] = []
    for table, rows in tables.items():
        id_column = scenario.id_columns.get(table, "id")
        for row in rows:
            column, _ = _column(row, id_column, kind != "postgresql")
            value = row.get(column) if column else None
            ident = _as_int(value)
            rec = by_ident.get(ident) if ident is not None else None
            if rec is None:
                anonymous.append((table, row))
                continue
            found[rec.seq] += 1
            if table != rec.topic:
                violations.append(f"{rec.label}: its row is in table {_short(table, 90)}, not {_short(rec.topic, 90)}")
            if rec.seq in dead_seqs:
                violations.append(f"{rec.label}: both a row and dead-lettered ({reasons.get(rec.seq)})")
            elif rec.expect == DLQ:
                violations.append(f"{rec.label}: stored as a row, must be dead-lettered [{rec.coord}]")
            violations += value_violations(rec, row, kind)
    for seq, count in found.items():
        if count > 1:
            violations.append(f"{by_seq[seq].label}: {count} rows")

    # every record accounted for
    required, nulls = 0, 0
    unaccounted: list[str] = []
    for rec in scenario.records:
        if rec.seq in dead_seqs:
            if rec.expect == ROW:
                violations.append(f"{rec.label}: dead-lettered, must be a row: {reasons.get(rec.seq)}")
            continue
        if rec.seq in found:
            continue
        if rec.null:
            nulls += 1
        elif rec.ident is not None:
            violations.append(f"{rec.label}: {MISSING} with id {rec.ident} nor in the DLQ [{rec.coord}]")
        else:
            required += 1
            unaccounted.append(f"{rec.label} [{rec.coord}]")
            if rec.expect == DLQ:
                violations.append(f"{rec.label}: {MISSING} nor dead-lettered (must be dead-lettered) [{rec.coord}]")
    if not required <= len(anonymous) <= required + nulls:
        sample = ", ".join(f"{_short(t, 40)}:{_short(r, 80)}" for t, r in anonymous[:3])
        unaccounted.sort(key=lambda u: u.startswith("fuzz"))
        violations.append(
            f"{ACCOUNTING} {len(anonymous)} row(s) without a known id for {required} record(s) without an id "
            f"(+{nulls} null values) that are not dead-lettered (rows e.g. {sample}; records {unaccounted[:4]})"
        )
    total_rows = sum(len(r) for r in tables.values())
    if not len(scenario.records) - nulls <= total_rows + len(dead) <= len(scenario.records):
        violations.append(
            f"{ACCOUNTING} rows {total_rows} + DLQ {len(dead)} != produced {len(scenario.records)} "
            f"(of which {nulls} null values that may be skipped as tombstones)"
        )
    return violations


OVERSIZED = 900_000  # bytes: only a record about this large may be dead-lettered without its bytes


def _truncated_violations(rec: Rec, message: Any, header: bytes) -> list[str]:
    """A record too large for the DLQ: no key/value/headers, `sink.truncated` with its original sizes."""
    problems = []
    size = len(rec.key or b"") + len(rec.value)
    if size < OVERSIZED:
        problems.append(f"dead-lettered truncated though only {size} bytes")
    if message.key is not None or message.value is not None:
        problems.append("truncated dead letter still carries key or value bytes")
    try:
        sizes = json.loads(header)
        if sizes.get("value") != len(rec.value) or sizes.get("key") != (None if rec.key is None else len(rec.key)):
            problems.append(f"sink.truncated {sizes} does not give the original sizes")
    except (ValueError, AttributeError):
        problems.append(f"sink.truncated is not JSON: {_short(header)}")
    return [f"{rec.label} [{rec.coord}]: {p}" for p in problems]


def _as_int(value: Any) -> int | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        return value
    try:
        number = decimal.Decimal(str(value))
        return int(number) if number == number.to_integral_value() else None
    except (decimal.InvalidOperation, ValueError):
        return None


# ------------------------------------------------------------------------------ tolerance none


@dataclass
class NoneRun:
    """One corpus case under errors.tolerance=none: its topic, records, bad offset, and the sink."""

    case: str
    topic: str
    group: str
    recs: list[Rec]
    bad: Rec
    sink: SinkProcess | None = None
    accepted: bool = False  # every record committed while the sink kept running
    exit_code: int | None = None
    committed: int | None = None
    timed_out: bool = False
    id_column: str = "id"
    seconds: float = 0.0


def judge_none(run: NoneRun, url: str, expect: str) -> list[str]:
    """Either the bad record stopped the sink (exit 1, one line with its coordinates, nothing after it
    in the table, committed offset = its offset) or, where the case allows it, it was written."""
    violations: list[str] = []
    assert run.sink is not None
    bad = run.bad
    coord = bad.coord
    rows = table_rows(url, run.topic)
    ids = sorted(i for i in (_as_int(r.get(run.id_column)) for r in rows) if i is not None)
    before = [r.ident for r in run.recs if r.offset < bad.offset and r.ident is not None]
    everything = [r.ident for r in run.recs if r.ident is not None]
    stderr = run.sink.stderr
    if run.timed_out:
        summary = stderr_summary(stderr)
        violations.append(f"neither stopped nor committed everything: committed {run.committed}; {summary}")
    elif run.accepted:
        if expect == DLQ:
            violations.append(f"the bad record {coord} was written (rows {len(rows)}): it must stop the sink")
        if run.exit_code != 0:
            violations.append(f"after SIGTERM the sink exited with {run.exit_code}: {stderr_summary(stderr)}")
        if ids != sorted(everything) or len(rows) != len(run.recs):
            violations.append(
                f"accepted, but the table holds {len(rows)} rows with ids {ids}, expected {len(run.recs)} "
                f"with ids {sorted(everything)}"
            )
        for row in rows:
            if _as_int(row.get(run.id_column)) == bad.ident:
                violations += value_violations(bad, row, db_kind(url))
    else:
        if expect == ROW:
            violations.append(f"stopped, but the record {coord} is good here: {stderr_summary(stderr)}")
        if run.exit_code != 1:
            violations.append(f"exit code {run.exit_code}, expected 1: {stderr_summary(stderr)}")
        lines = [ln for ln in stderr.splitlines() if coord in ln]
        if not lines:
            violations.append(f"no log line names {coord}: {stderr_summary(stderr)}")
        if "Traceback" in stderr:
            violations.append(f"a traceback instead of one line: {stderr_summary(stderr)}")
        if (run.committed or 0) != bad.offset:
            violations.append(f"committed offset {run.committed}, expected {bad.offset} (the bad record's)")
        if ids != sorted(before):
            violations.append(f"table holds ids {ids}; expected exactly the records before it {sorted(before)}")
        count_before = sum(1 for r in run.recs if r.offset < bad.offset)
        if len(rows) != count_before:
            violations.append(f"table holds {len(rows)} rows for the {count_before} record(s) before the bad one")
    return violations
