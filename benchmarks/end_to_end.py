"""End to end: JSON records on an EmbeddedBroker topic with 3 partitions, `sink run --env-file` as a
subprocess, timed from its start until the group's committed offsets reach the end of every
partition. The end of a partition is the number of records the producer's delivery reports
acknowledged there (the topic is new, so offsets start at 0); never ListOffsets/watermarks, which
this broker answers wrongly. Nothing is subtracted: the time includes interpreter start-up, the
group join (about half the 6 s session timeout on this broker), the commit interval (1 s) and the
batch wait (500 ms); the time to the first committed offset is shown next to it.

The ceiling is benchmarks/bare_consumer.py, a group consumer that commits like the sink but decodes
nothing and writes nowhere, measured the same way on the same topic.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from . import records
from .common import CEILING, INFO, SINK, Progress, Result, count_rows, drop_tables

SECTION = "end to end"
PARTITIONS = 3
SESSION_TIMEOUT_MS = 6000
DONE_TIMEOUT_S = 300.0
BIN = Path(sys.executable).parent


@dataclass
class Timing:
    first_commit: float | None  # seconds from process start to the first committed offset
    done: float  # seconds from process start until every partition is committed to its end
    exit_code: int | None


def create_topic(bootstrap: str, topic: str) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(topic, num_partitions=PARTITIONS)])[topic].result(timeout=20)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        metadata = admin.list_topics(topic=topic, timeout=5).topics.get(topic)
        if metadata is not None and metadata.error is None and len(metadata.partitions) == PARTITIONS:
            return
        time.sleep(0.1)
    raise RuntimeError(f"topic {topic} not visible with {PARTITIONS} partitions")


def produce(bootstrap: str, topic: str, count: int, distinct_keys: int | None) -> tuple[dict[int, int], float]:
    """Produce `count` JSON records; return records acknowledged per partition and the seconds taken."""
    encoded = [records.json_record(i, i if distinct_keys is None else i % distinct_keys) for i in range(count)]
    producer = Producer(
        {
            "bootstrap.servers": bootstrap,
            "linger.ms": 20,
            "batch.num.messages": 10000,
            "queue.buffering.max.messages": 500000,
            "acks": "all",
        }
    )
    acknowledged: Counter[int] = Counter()
    highest: dict[int, int] = {}
    errors: list[str] = []

    def delivered(err: object, msg: object) -> None:
        if err is not None:
            errors.append(str(err))
            return
        partition, offset = msg.partition(), msg.offset()  # type: ignore[attr-defined]
        acknowledged[partition] += 1
        highest[partition] = max(highest.get(partition, -1), offset)

    started = time.perf_counter()
    for key, value in encoded:
        while True:
            try:
                producer.produce(topic, value, key, on_delivery=delivered)
                break
            except BufferError:
                producer.poll(0.05)
        producer.poll(0)
    left = producer.flush(120)
    seconds = time.perf_counter() - started
    if left or errors or sum(acknowledged.values()) != count:
        raise RuntimeError(f"produce to {topic}: {left} undelivered, {len(errors)} errors {errors[:3]}")
    for partition, acked in acknowledged.items():
        if highest[partition] + 1 != acked:  # a new topic: offsets 0..n-1, one per acknowledged record
            raise RuntimeError(f"{topic}[{partition}]: {acked} acknowledged but highest offset {highest[partition]}")
    return {p: acknowledged.get(p, 0) for p in range(PARTITIONS)}, seconds


def wait_committed(
    process: subprocess.Popen[bytes], started: float, bootstrap: str, group: str, topic: str, ends: dict[int, int]
) -> Timing:
    """Poll the group's committed offsets until each partition reaches its end."""
    watcher = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False})
    partitions = [TopicPartition(topic, p) for p in sorted(ends)]
    first: float | None = None
    try:
        while True:
            now = time.perf_counter()
            if now - started > DONE_TIMEOUT_S:
                raise RuntimeError(f"group {group} did not commit the end of {topic} within {DONE_TIMEOUT_S:g} s")
            if process.poll() is not None:
                raise RuntimeError(f"the consumer exited early with code {process.returncode}")
            try:
                committed = {tp.partition: tp.offset for tp in watcher.committed(partitions, timeout=5)}
            except KafkaException:
                time.sleep(0.1)
                continue
            if first is None and any(offset > 0 for offset in committed.values()):
                first = now - started
            if all(committed.get(p, -1) >= end for p, end in ends.items()):
                return Timing(first, now - started, None)
            time.sleep(0.05)
    finally:
        watcher.close()


def run_consumer(
    command: list[str], log_path: Path, bootstrap: str, group: str, topic: str, ends: dict[int, int]
) -> Timing:
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith("SINK_")}
    with open(log_path, "wb") as log:
        started = time.perf_counter()
        process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env)
        try:
            timing = wait_committed(process, started, bootstrap, group, topic, ends)
            process.send_signal(signal.SIGTERM)
            timing.exit_code = process.wait(timeout=30)
            return timing
        except BaseException as exc:
            process.kill()
            process.wait(timeout=10)
            tail = "\n".join(log_path.read_text(errors="replace").splitlines()[-15:])
            raise RuntimeError(f"{exc}\n--- {log_path} (last lines) ---\n{tail}") from exc


def env_file(path: Path, bootstrap: str, topic: str, group: str, url: str) -> Path:
    settings = {
        "SINK_NAME": "bench",
        "SINK_BOOTSTRAP_SERVERS": bootstrap,
        "SINK_GROUP_ID": group,
        "SINK_TOPICS": topic,
        "SINK_DATABASE_URL": url,
        "SINK_KEY_FORMAT": "json",
        "SINK_VALUE_FORMAT": "json",
        "SINK_PK_MODE": "record_key",
        "SINK_INSERT_MODE": "upsert",
        "SINK_AUTO_CREATE": "true",
        "SINK_AUTO_EVOLVE": "true",
        "SINK_CONSUMER__SESSION_TIMEOUT_MS": str(SESSION_TIMEOUT_MS),
    }
    path.write_text("".join(f"{k}={v}\n" for k, v in settings.items()))
    return path


def run(
    count: int,
    distinct_keys: int,
    databases: dict[str, str],
    workdir: Path,
    progress: Progress,
    profile: list[str] | None = None,
) -> list[Result]:
    """Measure; with `profile` (a list), also run the sink once under cProfile (unique keys, the
    first database) and append where its time went to that list."""
    from sink.adapters.embedded_broker import EmbeddedBroker

    run_id = uuid.uuid4().hex[:6]
    variants = {
        "unique keys": (f"bench_{run_id}_unique", None),
        f"upserts, {distinct_keys:,} keys": (f"bench_{run_id}_upserts", distinct_keys),
    }
    results: list[Result] = []
    with progress.step("end to end  start the embedded broker (tansu)"):
        broker = EmbeddedBroker(log_path=workdir / "tansu.log").start()
    try:
        bootstrap = broker.bootstrap_servers
        ends: dict[str, dict[int, int]] = {}
        for label, (topic, keys) in variants.items():
            with progress.step(f"end to end  produce {count:,} JSON records ({label}), {PARTITIONS} partitions") as out:
                create_topic(bootstrap, topic)
                ends[topic], seconds = produce(bootstrap, topic, count, keys)
                split = "/".join(f"{ends[topic][p]:,}" for p in range(PARTITIONS))
                out.append(Result(SECTION, "kafka", f"produce: {label}", count, seconds, "records/s", INFO, split))
            results += out

        topic = variants["unique keys"][0]
        with progress.step("end to end  ceiling: bare consumer, commit every 1 s, no decode, no DB") as out:
            group = f"bench_{run_id}_bare"
            command = [sys.executable, str(Path(__file__).with_name("bare_consumer.py")), bootstrap, topic, group]
            timing = run_consumer(command, workdir / "bare.log", bootstrap, group, topic, ends[topic])
            out.append(_result("kafka", "ceiling: bare consumer (unique keys)", count, timing, CEILING, None))
        results += out

        for database, url in databases.items():
            tables = []
            try:
                for label, (topic, keys) in variants.items():
                    tables.append(topic)
                    with progress.step(f"end to end  {database:<10}  sink run: {label}") as out:
                        group = f"bench_{run_id}_{database}_{len(tables)}"
                        config = env_file(workdir / f"{group}.env", bootstrap, topic, group, url)
                        command = [str(BIN / "sink"), "run", "--env-file", str(config)]
                        timing = run_consumer(command, workdir / f"{group}.log", bootstrap, group, topic, ends[topic])
                        rows = count_rows(url, topic)
                        expected = keys or count
                        out.append(_result(database, f"sink run: {label}", count, timing, SINK, (rows, expected)))
                    results += out
            finally:
                drop_tables(url, tables)

        if profile is not None and databases:
            database, url = next(iter(databases.items()))
            topic = variants["unique keys"][0]
            with progress.step(f"profile     {database:<10}  sink run under cProfile: unique keys"):
                group = f"bench_{run_id}_{database}_profile"
                config = env_file(workdir / f"{group}.env", bootstrap, topic, group, url)
                stats = workdir / f"{group}.prof"
                command = [sys.executable, "-m", "cProfile", "-o", str(stats), str(BIN / "sink"), "run"]
                command += ["--env-file", str(config)]
                try:
                    timing = run_consumer(command, workdir / f"{group}.log", bootstrap, group, topic, ends[topic])
                finally:
                    drop_tables(url, [topic])
            from .profiling import summarize

            title = f"sink run on {database} under cProfile, {count:,} records in {timing.done:.1f} s"
            profile += ["", *summarize(str(stats), title)]
    finally:
        broker.stop()
    return results


def _result(target: str, label: str, count: int, timing: Timing, role: str, rows: tuple[int, int] | None) -> Result:
    first = "never" if timing.first_commit is None else f"{timing.first_commit:.1f} s"
    note = f"1st commit {first}"
    if rows is not None:
        found, expected = rows
        note += f", {found:,} rows" + ("" if found == expected else f" (EXPECTED {expected:,})")
    if timing.exit_code != 0:
        note += f", exit code {timing.exit_code}"
    return Result(SECTION, target, label, count, timing.done, "records/s", role, note)
