"""Issue 9: `/metrics`, `/status.json` and the status page `/` of a real `sink run` (real broker,
real PostgreSQL, an env file), after an ingest with dead-lettered records: the numbers are the
ones written to the table and to the dead-letter topic, and a password planted in the database
URL appears in none of them."""

from __future__ import annotations

import json
import re
import signal
import socket
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import SinkProcess, SinkRunner, write_env
from tests.support.db import drop_table, fetch_rows, table_exists
from tests.support.kafka import committed_offsets, consume_all, create_topic, produce, wait_for

pytestmark = pytest.mark.e2e

SECRET = "PlantedPw-5521x"
GOOD = {0: 17, 1: 13}  # good records per partition
BAD_AT = {0: (3, 10), 1: (3,)}  # offsets of the records that are not JSON: dead-lettered
BAD = {p: len(at) for p, at in BAD_AT.items()}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def get(port: int, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as answer:
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as answer:
        return answer.code, answer.read().decode()


def samples(text: str) -> dict[str, float]:
    """`name{labels}` -> value of every sample in a Prometheus text exposition."""
    pairs = (line.rsplit(" ", 1) for line in text.splitlines() if line and line[0] != "#")
    return {name: float(value) for name, value in pairs}


def with_password(url: str) -> str:
    scheme, rest = url.split("://", 1)
    user, host = rest.split("@", 1)
    return f"{scheme}://{user}:{SECRET}@{host}?password={SECRET}"


def start_sink(
    sink_runner: SinkRunner, tmp_path: Path, bootstrap: str, pg_url: str, topic: str, **extra: Any
) -> tuple[SinkProcess, int]:
    port = free_port()
    env = write_env(
        tmp_path / "sink.env",
        bootstrap,
        with_password(pg_url),
        topic,
        topic,
        name="status-e2e",
        http_port=port,
        http_host="127.0.0.1",
        **extra,
    )
    return sink_runner.start(env), port


def test_metrics_and_status_json_match_the_table_and_the_dead_letter_topic(
    bootstrap_servers: str, pg_url: str, unique_name: str, tmp_path: Path, sink_runner: SinkRunner
) -> None:
    topic, dlq = unique_name, f"{unique_name}-dlq"
    drop_table(pg_url, topic)
    create_topic(bootstrap_servers, topic, partitions=2)
    create_topic(bootstrap_servers, dlq, partitions=1)
    records = []
    for partition in (0, 1):
        for i in range(GOOD[partition] + BAD[partition]):
            bad = i in BAD_AT[partition]
            value = "{not json" if bad else json.dumps({"id": partition * 1000 + i, "qty": i})
            records.append({"partition": partition, "key": str(i), "value": value, "bad": bad})
    assert sum(r["bad"] for r in records) == sum(BAD.values())
    produce(bootstrap_servers, topic, records)
    ends = {p: GOOD[p] + BAD[p] for p in (0, 1)}
    sink, port = start_sink(
        sink_runner,
        tmp_path,
        bootstrap_servers,
        pg_url,
        topic,
        errors_tolerance="all",
        errors_deadletterqueue_topic_name=dlq,
    )

    def settled() -> bool:
        assert sink.process.poll() is None, sink.stderr[-3000:]
        return committed_offsets(bootstrap_servers, topic, topic, 2) == ends

    wait_for(settled, 90, interval=0.25, message="the sink did not settle every record")
    rows = fetch_rows(pg_url, topic) if table_exists(pg_url, topic) else []
    assert len(rows) == sum(GOOD.values())
    dead = consume_all(bootstrap_servers, dlq, expected=sum(BAD.values()))
    assert len(dead) == sum(BAD.values())

    def scraped() -> dict[str, float]:
        return samples(get(port, "/metrics")[1])

    # The offsets the group committed are the ones the sink says it committed (it commits, then tells).
    wait_for(
        lambda: all(
            scraped().get(f'sink_committed_offset{{partition="{p}",sink="status-e2e",topic="{topic}"}}') == e
            for p, e in ends.items()
        ),
        10,
        message="sink_committed_offset never reached the committed offsets",
    )
    status, text = get(port, "/metrics")
    assert status == 200
    m = samples(text)
    s = 'sink="status-e2e"'
    assert m[f"sink_records_read_total{{{s}}}"] == sum(ends.values())
    assert m[f'sink_records_written_total{{operation="insert",{s}}}'] == len(rows)
    assert m[f'sink_records_written_total{{operation="delete",{s}}}'] == 0
    assert m[f"sink_records_dead_lettered_total{{{s}}}"] == len(dead)
    assert m[f"sink_records_failed_total{{{s}}}"] == 0
    assert m[f"sink_batches_total{{{s}}}"] >= 1
    assert m[f"sink_offset_commits_total{{{s}}}"] >= 1
    assert m[f"sink_rebalances_total{{{s}}}"] >= 1
    assert m[f"sink_retries_total{{{s}}}"] == 0
    assert m[f"sink_partitions_assigned{{{s}}}"] == 2
    assert m.get(f"sink_consumer_lag{{{s}}}", 0) >= 0  # absent while librdkafka has no high watermark yet
    # Lag per partition and in all, from the watermarks librdkafka cached from its fetches:
    wait_for(lambda: f"sink_consumer_lag{{{s}}}" in scraped(), 10, message="no lag from the fetches' watermarks")
    m = scraped()
    per_partition = {k: v for k, v in m.items() if k.startswith("sink_partition_lag{")}
    assert len(per_partition) == len(ends), per_partition
    assert sum(per_partition.values()) == m[f"sink_consumer_lag{{{s}}}"] == 0, "everything was read"
    assert m["process_resident_memory_bytes"] > 1_000_000
    # Per table and per reason (fed per batch and per failure by the worker and the router):
    assert m[f'sink_table_records_written_total{{{s},table="{topic}"}}'] == len(rows)
    assert m[f'sink_batch_records_count{{{s},table="{topic}"}}'] == m[f"sink_batches_total{{{s}}}"]
    assert m[f'sink_batch_write_seconds_count{{{s},table="{topic}"}}'] == m[f"sink_batches_total{{{s}}}"]
    errors = {k: v for k, v in m.items() if k.startswith("sink_record_errors_total{")}
    assert sum(errors.values()) == len(dead) and all('action="dead_letter"' in k for k in errors), errors

    status, body = get(port, "/status.json")
    assert status == 200
    doc = json.loads(body)
    assert doc["sink"] == "status-e2e"
    assert doc["counters"]["rows_written"] == len(rows)
    assert doc["counters"]["dead_lettered"] == len(dead)
    assert doc["counters"]["records_in"] == sum(ends.values())
    assert {(p["topic"], p["partition"]): p["committed"] for p in doc["partitions"]} == {
        (topic, p): e for p, e in ends.items()
    }
    assert all(p["assigned"] for p in doc["partitions"])
    assert doc["retry"] == {"retrying": False, "reason": "", "seconds": 0.0, "retries": 0, "seconds_total": 0.0}
    assert doc["ready"]["status"] == "ok" and doc["live"]["status"] == "ok"
    assert doc["include_messages"] is False
    config = json.dumps(doc["config"])
    assert dlq in config, "the configuration summary names the dead-letter topic"

    page_status, page = get(port, "/")
    assert page_status == 200 and '<script src="/static/status.js">' in page
    assert get(port, "/static/status.js")[0] == 200 and get(port, "/static/status.css")[0] == 200

    sink.process.send_signal(signal.SIGTERM)
    assert sink.wait(60) == 0, sink.stderr[-3000:]
    for output in (text, body, page, sink.stdout, sink.stderr):
        assert SECRET not in output
    drop_table(pg_url, topic)


def test_the_page_fetches_nothing_from_elsewhere() -> None:
    """The page and its script reference nothing outside the sink (no CDN): every URL is local."""
    static = Path(__file__).parents[2] / "sink" / "adapters" / "static"
    for name in ("index.html", "status.js", "status.css"):
        text = (static / name).read_text()
        urls = re.findall(r"(?:https?:)?//[\w.-]+", text)
        assert urls in ([], ["http://www.w3.org"]), (name, urls)  # the SVG namespace is a name, not a fetch
