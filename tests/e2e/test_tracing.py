"""Issue 9, tracing: `sink run` with `OTEL_TRACES_EXPORTER=console` prints one `sink.write_batch` span
per written batch, whose attributes match the table and whose links are the producers' spans (the
records' `traceparent` headers); without OTEL_* it prints no span; `otlp` without its package is a
one-line configuration error.

Real processes against the real broker (Tansu) and PostgreSQL; the spans are read from the console
exporter's JSON on the sink's stdout.
"""

from __future__ import annotations

import json
import os
import re
import signal
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import SinkRunner, write_env
from tests.support.db import drop_table, fetch_rows
from tests.support.kafka import committed_offsets, create_topic, produce, wait_for

pytestmark = pytest.mark.e2e

TRACE_A = "4bf92f3577b34da6a3ce929d0e0e4736"
TRACE_B = "0af7651916cd43dd8448eb211c80319c"
PARTITIONS = 2
BATCH_SIZE = 10


@pytest.fixture
def no_otel(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """The sink's environment without OTEL_* from the test runner's (a test sets what it wants)."""
    for name in [n for n in os.environ if n.startswith("OTEL_")]:
        monkeypatch.delenv(name)
    return monkeypatch


@pytest.fixture
def pg_table(pg_url: str, unique_name: str):  # type: ignore[no-untyped-def]
    drop_table(pg_url, unique_name)
    yield unique_name
    drop_table(pg_url, unique_name)


def spans_in(stdout: str) -> list[dict[str, Any]]:
    """The console exporter's spans: indented JSON objects one after another."""
    decoder, spans, at = json.JSONDecoder(), [], 0
    while True:
        while at < len(stdout) and stdout[at].isspace():
            at += 1
        if at == len(stdout):
            return spans
        span, at = decoder.raw_decode(stdout, at)
        spans.append(span)


def produce_traced(bootstrap: str, topic: str) -> tuple[dict[tuple[str, str], int], int]:
    """40 records over two partitions: 16 from producer spans of trace A, 16 of trace B, 6 without a
    traceparent and 2 with an invalid one. Returns {(trace id, span id): records} and the count."""
    records: list[dict[str, Any]] = []
    producers: dict[tuple[str, str], int] = {}
    for n in range(40):
        headers: dict[str, str] = {"source": "test"}
        if n < 32:
            trace = TRACE_A if n % 2 == 0 else TRACE_B
            span = f"{(n // 4) + 1 + (100 if trace == TRACE_B else 0):016x}"  # 4 records per producer span
            headers["traceparent"] = f"00-{trace}-{span}-01"
            producers[(trace, span)] = producers.get((trace, span), 0) + 1
        elif n < 34:
            headers["traceparent"] = "00-not-a-trace-01"
        records.append({"value": json.dumps({"n": n}), "partition": n % PARTITIONS, "headers": headers})
    produce(bootstrap, topic, records)
    return producers, len(records)


def run_until_committed(
    sink_runner: SinkRunner, env: Path, bootstrap: str, group: str, topic: str, ends: dict[int, int]
) -> tuple[str, str]:
    sink = sink_runner.start(env)

    def done() -> bool:
        if sink.process.poll() is not None:
            raise AssertionError(f"the sink stopped early: {sink.stderr[-3000:]}")
        committed = committed_offsets(bootstrap, group, topic, list(ends))
        return all((committed.get(p) or 0) >= end for p, end in ends.items())

    wait_for(done, 90, interval=0.3, message=f"{group} did not commit {ends} on {topic}")
    sink.process.send_signal(signal.SIGTERM)
    assert sink.wait(30) == 0, sink.stderr[-3000:]
    return sink.stdout, sink.stderr


def batches_logged(stderr: str) -> int:
    finals = re.findall(r"final: records in=\d+ .*?batches=(\d+)", stderr)
    assert finals, f"no final totals line in:\n{stderr[-3000:]}"
    return int(finals[-1])


def test_console_spans_one_per_batch_linked_to_the_producers(
    bootstrap_servers: str,
    pg_url: str,
    pg_table: str,
    unique_name: str,
    tmp_path: Path,
    sink_runner: SinkRunner,
    no_otel: pytest.MonkeyPatch,
) -> None:
    topic = pg_table
    create_topic(bootstrap_servers, topic, partitions=PARTITIONS)
    producers, count = produce_traced(bootstrap_servers, topic)
    env = write_env(
        tmp_path / "sink.env",
        bootstrap_servers,
        pg_url,
        topic,
        unique_name,
        name=unique_name,
        insert_mode="insert",
        pk_mode="kafka",
        batch_size=BATCH_SIZE,
    )
    no_otel.setenv("OTEL_TRACES_EXPORTER", "console")
    stdout, stderr = run_until_committed(
        sink_runner, env, bootstrap_servers, unique_name, topic, {p: count // PARTITIONS for p in range(PARTITIONS)}
    )

    rows = fetch_rows(pg_url, topic)
    assert len(rows) == count
    in_table = {(r["__connect_partition"], r["__connect_offset"]) for r in rows}
    spans = spans_in(stdout)
    assert spans, f"no span on stdout; stderr:\n{stderr[-3000:]}"
    assert {span["name"] for span in spans} == {"sink.write_batch"}
    assert len(spans) == batches_logged(stderr), "one span per written batch"

    covered: list[tuple[int, int]] = []
    for span in spans:
        attributes = span["attributes"]
        assert span["kind"] == "SpanKind.CONSUMER"
        assert span["status"]["status_code"] == "UNSET"
        assert span["resource"]["attributes"]["service.name"] == unique_name  # SINK_NAME by default
        assert attributes["sink.table"] == attributes["db.collection.name"] == topic
        assert attributes["db.system"] == "postgresql"
        assert attributes["sink.insert_mode"] == "insert"
        assert attributes["sink.topics"] == [topic]
        assert 0 < attributes["sink.rows"] <= BATCH_SIZE
        assert attributes["sink.records.written"] == attributes["sink.rows"]
        assert attributes["sink.records.failed"] == attributes["sink.records.deleted"] == 0
        assert attributes["sink.links"] == len(span["links"])
        assert attributes["sink.links.dropped"] == 0
        for offsets in attributes["sink.offsets"]:  # "topic/partition@first-last"
            found = re.fullmatch(rf"{re.escape(topic)}/(\d+)@(\d+)-(\d+)", offsets)
            assert found, offsets
            partition, first, last = map(int, found.groups())
            covered += [(partition, offset) for offset in range(first, last + 1)]
    assert sum(span["attributes"]["sink.rows"] for span in spans) == count == len(covered)
    assert set(covered) == in_table, "the spans' offset ranges are exactly the rows in the table, once each"
    assert sum(span["attributes"]["sink.links.invalid"] for span in spans) >= 1  # the invalid ones, judged per batch

    linked = [
        (link["context"]["trace_id"].removeprefix("0x"), link["context"]["span_id"].removeprefix("0x"))
        for span in spans
        for link in span["links"]
    ]
    assert set(linked) == set(producers), "every producer span is linked, and only those"
    assert {trace for trace, _ in linked} == {TRACE_A, TRACE_B}
    # A producer span's records may land in several batches; a batch links it once.
    for span in spans:
        contexts = [(link["context"]["trace_id"], link["context"]["span_id"]) for link in span["links"]]
        assert len(contexts) == len(set(contexts))
    trace_ids = {span["context"]["trace_id"].removeprefix("0x") for span in spans}
    assert not trace_ids & {TRACE_A, TRACE_B}, "a batch's span starts its own trace; the producers' are links"


def test_without_otel_variables_no_span_is_printed(
    bootstrap_servers: str,
    pg_url: str,
    pg_table: str,
    unique_name: str,
    tmp_path: Path,
    sink_runner: SinkRunner,
    no_otel: pytest.MonkeyPatch,
) -> None:
    topic = pg_table
    create_topic(bootstrap_servers, topic, partitions=PARTITIONS)
    _, count = produce_traced(bootstrap_servers, topic)
    env = write_env(
        tmp_path / "sink.env", bootstrap_servers, pg_url, topic, unique_name, pk_mode="kafka", batch_size=BATCH_SIZE
    )
    stdout, stderr = run_until_committed(
        sink_runner, env, bootstrap_servers, unique_name, topic, {p: count // PARTITIONS for p in range(PARTITIONS)}
    )
    assert len(fetch_rows(pg_url, topic)) == count
    assert batches_logged(stderr) > 0
    assert "sink.write_batch" not in stdout + stderr
    assert stdout.strip() == "", stdout[:2000]


@pytest.mark.skipif(
    any(ep.name.startswith("otlp") for ep in entry_points(group="opentelemetry_traces_exporter")),
    reason="the OTLP exporter is installed here",
)
def test_otlp_without_its_package_exits_2_with_one_line(
    bootstrap_servers: str,
    pg_url: str,
    unique_name: str,
    tmp_path: Path,
    sink_runner: SinkRunner,
    no_otel: pytest.MonkeyPatch,
) -> None:
    env = write_env(tmp_path / "sink.env", bootstrap_servers, pg_url, unique_name, unique_name)
    no_otel.setenv("OTEL_TRACES_EXPORTER", "otlp")
    no_otel.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4317")
    sink = sink_runner.run(env, timeout=60)
    assert sink.process.returncode == 2, sink.stderr
    lines = sink.stderr.strip().splitlines()
    assert [line for line in lines if "OTEL_TRACES_EXPORTER" in line] == [
        "sink: configuration error: OTEL_TRACES_EXPORTER=otlp: the OTLP exporter is not installed: "
        "pip install opentelemetry-exporter-otlp"
    ]
    assert "Traceback" not in sink.stderr
