"""`sink dlq inspect | redrive` against the real broker: the dead-lettered records are made by a
real `sink run` (PostgreSQL table without a column the records carry, invalid JSON, a CHECK
violation), then read, re-driven and written once the table is fixed.

The end of a topic is read from end-of-partition events (`consume_all`), never from ListOffsets.
"""

from __future__ import annotations

import json
import random
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.e2e.conftest import SINK, SinkRunner, _clean_environ, write_env
from tests.support.db import drop_table, fetch_rows
from tests.support.kafka import Message, committed_offsets, consume_all, create_topic, produce, wait_for

pytestmark = pytest.mark.e2e

PREFIX = "__connect.errors."
COUNT = "__sink.redrive.count"


@dataclass
class Dead:
    env: Path
    topic: str
    dlq: str
    group: str
    source: list[Message]  # the source topic as the sink read it
    kinds: dict[tuple[int, int], str]  # (partition, offset) in the source -> kind of record


def sink_cli(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(SINK), *args], capture_output=True, text=True, timeout=timeout, env=_clean_environ(), check=False
    )


def dlq(command: str, env: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return sink_cli("dlq", command, "--env-file", str(env), "--idle-ms", "3000", *args)


def records(partition: int, count: int) -> list[dict[str, object]]:
    """Per partition: good, missing column, invalid JSON, check violation, in turn."""
    out: list[dict[str, object]] = []
    for i in range(count):
        ident = partition * 1000 + i
        kind = ("good", "missing_column", "invalid_json", "check_violation")[i % 4]
        value: str = json.dumps({"id": ident, "qty": i, "note": f"n{i}"})
        if kind == "missing_column":
            value = json.dumps({"id": ident, "qty": i, "note": f"n{i}", "extra": f"x{i}"})
        elif kind == "invalid_json":
            value = '{"id": ' + str(ident) + ', "qty": '
        elif kind == "check_violation":
            value = json.dumps({"id": ident, "qty": -1, "note": "neg"})
        headers = [("kind", kind), ("trace", f"t-{ident}")]
        out.append({"key": str(ident), "value": value, "headers": headers, "partition": partition})
    return out


@pytest.fixture
def dead(
    bootstrap_servers: str, pg_url: str, unique_name: str, tmp_path: Path, sink_runner: SinkRunner
) -> Iterator[Dead]:
    yield from dead_letters(bootstrap_servers, pg_url, unique_name, tmp_path, sink_runner, (12, 8))


@pytest.fixture
def many_dead(
    bootstrap_servers: str, pg_url: str, unique_name: str, tmp_path: Path, sink_runner: SinkRunner
) -> Iterator[Dead]:
    yield from dead_letters(bootstrap_servers, pg_url, unique_name, tmp_path, sink_runner, (400, 400))


def dead_letters(
    bootstrap_servers: str,
    pg_url: str,
    unique_name: str,
    tmp_path: Path,
    sink_runner: SinkRunner,
    counts: tuple[int, int],
) -> Iterator[Dead]:
    """`counts[p]` records in partition p of the source topic (a quarter good), through `sink run`."""
    topic, dlq_topic, group = unique_name, f"{unique_name}_dlq", f"{unique_name}-group"
    drop_table(pg_url, topic)
    engine = sa.create_engine(pg_url)
    with engine.begin() as conn:
        conn.execute(
            sa.text(f"CREATE TABLE {topic} (id BIGINT PRIMARY KEY, qty INTEGER CHECK (qty >= 0), note VARCHAR(10))")
        )
    create_topic(bootstrap_servers, topic, 2)
    create_topic(bootstrap_servers, dlq_topic, 2)
    produce(bootstrap_servers, topic, records(0, counts[0]) + records(1, counts[1]))
    env = write_env(
        tmp_path / "sink.env",
        bootstrap_servers,
        pg_url,
        topic,
        group,
        key_format="string",
        value_format="json",
        pk_mode="record_value",
        pk_fields="id",
        insert_mode="upsert",
        auto_create="false",
        auto_evolve="false",
        errors_tolerance="all",
        errors_deadletterqueue_topic_name=dlq_topic,
        errors_deadletterqueue_context_headers_enable="true",
    )
    sink = sink_runner.start(env)

    def settled() -> bool:
        assert sink.process.poll() is None, sink.stderr[-3000:]
        return committed_offsets(bootstrap_servers, group, topic, 2) == {0: counts[0], 1: counts[1]}

    wait_for(settled, 90, interval=0.25, message="the sink did not settle every record")
    sink.process.send_signal(signal.SIGTERM)
    assert sink.wait(30) == 0, sink.stderr[-3000:]
    source = consume_all(bootstrap_servers, topic)
    kinds = {(m.partition, m.offset): (m.header("kind") or b"").decode() for m in source}
    yield Dead(env, topic, dlq_topic, group, source, kinds)
    engine.dispose()
    drop_table(pg_url, topic)


EXPECTED = {"missing_column": 3 + 2, "invalid_json": 3 + 2, "check_violation": 3 + 2}


def dead_kinds(d: Dead) -> list[tuple[int, int, str]]:
    return sorted((p, o, k) for (p, o), k in d.kinds.items() if k != "good")


def clean(stderr: str) -> None:
    """librdkafka's own lines never come raw (`%3|...|FAIL|rdkafka#...`)."""
    assert "rdkafka#" not in stderr and not any(line.startswith("%") for line in stderr.splitlines()), stderr


# ------------------------------------------------------------------------------ inspect


def test_inspect_table_json_and_limit(dead: Dead) -> None:
    done = dlq("inspect", dead.env)
    assert done.returncode == 0, done.stderr
    clean(done.stderr)
    lines = done.stdout.splitlines()
    assert lines[0].startswith(f"dead-letter topic {dead.dlq}: 15 record(s) (read to the end of every partition")
    header = lines[2].split()
    assert header == ["DLQ", "TOPIC", "PARTITION", "OFFSET", "STAGE", "EXCEPTION", "MESSAGE"]
    rows = [line.split(None, 6) for line in lines[3:18]]
    listed = sorted((int(r[2]), int(r[3]), r[4], r[5]) for r in rows)
    stage_class = {
        "missing_column": ("TASK_PUT", "SchemaRefused"),
        "invalid_json": ("VALUE_CONVERTER", "DecodeError"),
        "check_violation": ("TASK_PUT", "RecordRejected"),
    }
    assert listed == [(p, o, *stage_class[k]) for p, o, k in dead_kinds(dead)]
    assert all(r[1] == dead.topic for r in rows)
    counts_at = lines.index("counts per reason:")
    assert lines[counts_at + 1].split()[:3] == ["COUNT", "STAGE", "EXCEPTION"]
    per_class = Counter[str]()
    for line in lines[counts_at + 2 :]:
        count, _stage, cls = line.split()[:3]
        per_class[cls] += int(count)
    assert per_class == {"SchemaRefused": 5, "DecodeError": 5, "RecordRejected": 5}

    done = dlq("inspect", dead.env, "--json", "--limit", "4")
    assert done.returncode == 0, done.stderr
    document = json.loads(done.stdout)
    assert document["topic"] == dead.dlq and document["total"] == 15
    assert len(document["records"]) == 4
    for record in document["records"]:
        kind = dead.kinds[(record["partition"], record["offset"])]
        assert (record["stage"], record["exception_class"].rsplit(".", 1)[-1]) == stage_class[kind]
        assert record["topic"] == dead.topic and record["redrive_count"] == 0
    by_class = Counter[str]()
    for reason in document["reasons"]:
        by_class[reason["exception_class"]] += reason["count"]
    assert by_class == {
        "sink.errors.SchemaRefused": 5,
        "sink.errors.DecodeError": 5,
        "sink.errors.RecordRejected": 5,
    }

    done = dlq("inspect", dead.env, "--json", "--error-class", "DecodeError")
    assert json.loads(done.stdout)["total"] == 5


def test_a_bad_configuration_is_one_line_with_exit_2(dead: Dead, tmp_path: Path) -> None:
    text = dead.env.read_text()
    no_dlq = tmp_path / "no-dlq.env"
    no_dlq.write_text("".join(line + "\n" for line in text.splitlines() if "DEADLETTERQUEUE_TOPIC" not in line))
    secret = tmp_path / "secret.env"
    secret.write_text(text + "SINK_CONSUMER__SASL_PASSWORD=hunter2-secret\nSINK_BATCH_SIZE=-3\n")
    for env, variable in ((no_dlq, "SINK_ERRORS_DEADLETTERQUEUE_TOPIC_NAME"), (secret, "SINK_BATCH_SIZE")):
        for command in ("inspect", "redrive"):
            done = dlq(command, env)
            assert done.returncode == 2, done.stderr
            assert len(done.stderr.strip().splitlines()) == 1 and variable in done.stderr, done.stderr
            assert "hunter2" not in done.stderr + done.stdout
    done = dlq("redrive", dead.env, "--from-offset", "3")
    assert done.returncode == 2 and "--topic" in done.stderr, done.stderr


# ------------------------------------------------------------------------------ redrive


def redriven(bootstrap: str, d: Dead) -> list[Message]:
    """What was appended to the source topic after the records the sink read."""
    seen = {(m.partition, m.offset) for m in d.source}
    return [m for m in consume_all(bootstrap, d.topic) if (m.partition, m.offset) not in seen]


def test_dry_run_then_execute_after_fixing_the_table_lands_once(
    dead: Dead, bootstrap_servers: str, pg_url: str, sink_runner: SinkRunner
) -> None:
    missing = [(p, o) for p, o, k in dead_kinds(dead) if k == "missing_column"]
    done = dlq("redrive", dead.env, "--error-class", "SchemaRefused")
    assert done.returncode == 0, done.stderr
    clean(done.stderr)
    assert done.stdout.splitlines()[-1].startswith("dry run: 5 record(s) of")
    planned = [line.split() for line in done.stdout.splitlines()[1:-1]]
    assert sorted((int(r[2]), int(r[3])) for r in planned) == missing
    assert all(r[1] == dead.topic and r[4] == "SchemaRefused" and r[5] == "1" for r in planned)
    assert redriven(bootstrap_servers, dead) == [], "a dry run sends nothing"
    assert committed_offsets(bootstrap_servers, f"{dead.group}.redrive", dead.dlq, 2) == {0: None, 1: None}

    with sa.create_engine(pg_url).begin() as conn:  # the user fixes the table
        conn.execute(sa.text(f"ALTER TABLE {dead.topic} ADD COLUMN extra VARCHAR(10)"))
    done = dlq("redrive", dead.env, "--error-class", "SchemaRefused", "--execute")
    assert done.returncode == 0, done.stderr
    clean(done.stderr)
    assert f"re-driven 5 record(s) of {dead.dlq}" in done.stdout, done.stdout

    again = redriven(bootstrap_servers, dead)
    originals = {(m.partition, m.offset): m for m in dead.source}
    assert sorted((m.partition, int(m.key or b"0")) for m in again) == sorted(
        (p, int(originals[(p, o)].key or b"0")) for p, o in missing
    ), "back in their original partitions"
    for message in again:
        original = next(m for m in dead.source if m.key == message.key)
        assert message.value == original.value
        assert message.headers == [*original.headers, (COUNT, b"1")]
        assert not any(name.startswith(PREFIX) for name, _ in message.headers)

    # the sink reads them and, the column being there now, writes them
    sink = sink_runner.start(dead.env)
    wait_for(
        lambda: len([r for r in fetch_rows(pg_url, dead.topic) if r["extra"]]) == 5,
        60,
        message="the re-driven rows did not land",
    )
    sink.process.send_signal(signal.SIGTERM)
    assert sink.wait(30) == 0, sink.stderr[-3000:]
    rows = {r["id"]: r for r in fetch_rows(pg_url, dead.topic)}
    for p, o in missing:
        ident = p * 1000 + o  # the records of a partition were produced in order, from offset 0
        assert rows[ident]["extra"] == f"x{o}"

    # run again: nothing left to re-drive for this group
    done = dlq("redrive", dead.env, "--error-class", "SchemaRefused", "--execute")
    assert done.returncode == 0 and "re-driven 0 record(s)" in done.stdout, done.stdout + done.stderr
    assert len(redriven(bootstrap_servers, dead)) == 5


def test_topic_and_offset_filters_in_limited_slices_re_drive_each_once(dead: Dead, bootstrap_servers: str) -> None:
    wanted = [(p, o) for p, o, _k in dead_kinds(dead) if p == 0 and 2 <= o <= 9]
    assert len(wanted) == 6
    args = ("--topic", f"{dead.topic}:0", "--from-offset", "2", "--to-offset", "9")
    done = dlq("redrive", dead.env, *args)
    assert sorted((int(r.split()[2]), int(r.split()[3])) for r in done.stdout.splitlines()[1:-1]) == wanted
    runs = 0
    while True:  # slices of 4: the run stops, the next one continues where it stopped
        done = dlq("redrive", dead.env, *args, "--limit", "4", "--execute")
        assert done.returncode == 0, done.stderr
        runs += 1
        if "re-driven 0 record(s)" in done.stdout:
            break
        assert runs < 5, done.stdout
    assert runs == 3  # 4 + 2 + 0
    again = redriven(bootstrap_servers, dead)
    originals = {m.key: (m.partition, m.offset) for m in dead.source}
    assert sorted(originals[m.key] for m in again) == wanted, "each selected record once, no other"
    assert all(m.header(COUNT) == b"1" for m in again)


def test_redrive_interrupted_and_run_again_re_drives_each_record_once(many_dead: Dead, bootstrap_servers: str) -> None:
    dead = many_dead
    rng = random.Random(8)
    for _ in range(4):  # SIGTERM at a random moment: the batch in flight is finished and committed
        process = subprocess.Popen(
            [str(SINK), "dlq", "redrive", "--env-file", str(dead.env), "--execute", "--batch-size", "5"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=_clean_environ(),
        )
        time.sleep(rng.uniform(0.8, 2.0))
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=60)
        assert process.returncode in (0, 1, -signal.SIGTERM), out + err
    done = dlq("redrive", dead.env, "--execute")
    assert done.returncode == 0, done.stderr
    again = redriven(bootstrap_servers, dead)
    originals = {m.key: (m.partition, m.offset) for m in dead.source}
    assert Counter(originals[m.key] for m in again) == Counter((p, o) for p, o, _k in dead_kinds(dead))
    assert all(m.header(COUNT) == b"1" for m in again)
