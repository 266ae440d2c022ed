"""Review: the dead-letter topic keeps each failed record byte for byte and adds Kafka Connect's
context headers as Connect's DeadLetterQueueReporter does (appended after the original headers,
numbers as decimal UTF-8 strings), and `sink dlq redrive` sends back exactly the original record.

A real `sink run` (subprocess) writes the dead letters; the real `sink dlq` commands read them.
"""

from __future__ import annotations

import json
import signal
import subprocess
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.e2e.conftest import SINK, SinkRunner, _clean_environ, write_env
from tests.support.db import drop_table
from tests.support.kafka import Message, committed_offsets, consume_all, create_topic, produce, wait_for

pytestmark = pytest.mark.e2e

PREFIX = "__connect.errors."
COUNT = "__sink.redrive.count"
CONTEXT_NAMES = [
    PREFIX + name
    for name in (
        "topic",
        "partition",
        "offset",
        "connector.name",
        "task.id",
        "stage",
        "class.name",
        "exception.class.name",
        "exception.message",
        "exception.stacktrace",
    )
]


def dlq(command: str, env: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(SINK), "dlq", command, "--env-file", str(env), "--idle-ms", "3000", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=_clean_environ(),
        check=False,
    )


def test_dead_letters_keep_the_record_byte_for_byte_and_redrive_restores_it(
    bootstrap_servers: str, pg_url: str, unique_name: str, tmp_path: Path, sink_runner: SinkRunner
) -> None:
    topic, dlq_topic, group = unique_name, f"{unique_name}_dlq", f"{unique_name}-group"
    drop_table(pg_url, topic)
    engine = sa.create_engine(pg_url)
    with engine.begin() as conn:
        conn.execute(sa.text(f"CREATE TABLE {topic} (id BIGINT, note VARCHAR(10))"))
    create_topic(bootstrap_servers, topic, 2)
    create_topic(bootstrap_servers, dlq_topic, 1)
    bad = [
        {  # binary, repeated, null and empty headers; an empty (not null) key; a fixed timestamp
            "key": b"",
            "value": b"\xff\xfe{not json",
            "partition": 1,
            "timestamp": 1_600_000_000_123,
            "headers": [("h", b"\x00\xff"), ("h", None), ("e", b""), ("h", b"last")],
        },
        {  # a null key; headers left by an earlier Kafka Connect dead-lettering of the same bytes
            "key": None,
            "value": b'{"id": 1, "note": ',
            "partition": 0,
            "timestamp": 1_500_000_000_000,
            "headers": [
                ("trace", b"t-1"),
                (PREFIX + "topic", b"elsewhere"),
                (PREFIX + "partition", b"7"),
                (PREFIX + "offset", b"99"),
            ],
        },
    ]
    good = {"key": "k", "value": json.dumps({"id": 2, "note": "ok"}), "partition": 0}
    produce(bootstrap_servers, topic, [good, *bad])
    env = write_env(
        tmp_path / "sink.env",
        bootstrap_servers,
        pg_url,
        topic,
        group,
        name="review-dlq",
        key_format="string",
        value_format="json",
        pk_mode="none",
        insert_mode="insert",
        auto_create="false",
        auto_evolve="false",
        errors_tolerance="all",
        errors_deadletterqueue_topic_name=dlq_topic,
        errors_deadletterqueue_context_headers_enable="true",
    )
    sink = sink_runner.start(env)

    def settled() -> bool:
        assert sink.process.poll() is None, sink.stderr[-3000:]
        return committed_offsets(bootstrap_servers, group, topic, 2) == {0: 2, 1: 1}

    wait_for(settled, 90, interval=0.25, message="the sink did not settle every record")
    sink.process.send_signal(signal.SIGTERM)
    assert sink.wait(30) == 0, sink.stderr[-3000:]
    source = {(m.partition, m.offset): m for m in consume_all(bootstrap_servers, topic)}
    originals = [source[(1, 0)], source[(0, 1)]]
    assert [m.key for m in originals] == [b"", None]

    letters = consume_all(bootstrap_servers, dlq_topic)
    assert len(letters) == 2, letters
    by_source: dict[tuple[int, int], Message] = {}
    for letter in letters:
        context = letter.headers[-len(CONTEXT_NAMES) :]
        assert [name for name, _ in context] == CONTEXT_NAMES, letter.headers
        values = {name[len(PREFIX) :]: value for name, value in context}
        by_source[(int(values["partition"] or b""), int(values["offset"] or b""))] = letter
        assert values["topic"] == topic.encode()
        assert values["connector.name"] == b"review-dlq" and values["task.id"] == b"0"
        assert values["stage"] == b"VALUE_CONVERTER"
        assert values["exception.class.name"] == b"sink.errors.DecodeError"
    assert sorted(by_source) == [(0, 1), (1, 0)]
    for original, spec in zip(originals, bad, strict=True):
        letter = by_source[(original.partition, original.offset)]
        assert (letter.key, letter.value, letter.timestamp) == (original.key, original.value, spec["timestamp"])
        assert letter.headers[: -len(CONTEXT_NAMES)] == original.headers, "original headers first, unchanged"

    shown = dlq("inspect", env, "--json")
    assert shown.returncode == 0, shown.stderr
    listed = sorted((r["topic"], r["partition"], r["offset"]) for r in json.loads(shown.stdout)["records"])
    assert listed == [(topic, 0, 1), (topic, 1, 0)], "the sink's own (last) context headers say where it came from"

    done = dlq("redrive", env, "--execute")
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"re-driven 2 record(s) of {dlq_topic}" in done.stdout, done.stdout
    again = [m for m in consume_all(bootstrap_servers, topic) if (m.partition, m.offset) not in source]
    assert len(again) == 2, again
    for original in originals:
        back = next(m for m in again if m.value == original.value)
        assert back.partition == original.partition
        assert back.key == original.key
        kept = [(n, v) for n, v in original.headers if not n.startswith(PREFIX)]
        assert back.headers == [*kept, (COUNT, b"1")]

    done = dlq("redrive", env, "--execute")  # a second run sends nothing again
    assert done.returncode == 0 and "re-driven 0 record(s)" in done.stdout, done.stdout + done.stderr
    assert len([m for m in consume_all(bootstrap_servers, topic) if (m.partition, m.offset) not in source]) == 2

    # the re-driven records fail again: one context block, about where they are now
    sink = sink_runner.start(env)
    wait_for(lambda: len(consume_all(bootstrap_servers, dlq_topic)) == 4, 60, message="no second dead letters")
    sink.process.send_signal(signal.SIGTERM)
    assert sink.wait(30) == 0, sink.stderr[-3000:]
    second = [m for m in consume_all(bootstrap_servers, dlq_topic) if m.offset >= 2]
    for letter in second:
        back = next(m for m in again if m.value == letter.value)
        assert letter.key == back.key and letter.headers[: -len(CONTEXT_NAMES)] == back.headers
        context = dict(letter.headers[-len(CONTEXT_NAMES) :])
        assert [n for n, _ in letter.headers].count(PREFIX + "offset") == 1, letter.headers
        assert (context[PREFIX + "partition"], context[PREFIX + "offset"]) == (
            str(back.partition).encode(),
            str(back.offset).encode(),
        )
    done = dlq("redrive", env, "--execute")
    assert done.returncode == 0 and "re-driven 2 record(s)" in done.stdout, done.stdout + done.stderr
    seen = {*source, *((m.partition, m.offset) for m in again)}
    third = [m for m in consume_all(bootstrap_servers, topic) if (m.partition, m.offset) not in seen]
    assert len(third) == 2
    for original in originals:
        back = next(m for m in third if m.value == original.value)
        kept = [(n, v) for n, v in original.headers if not n.startswith(PREFIX)]
        assert (back.partition, back.key, back.headers) == (original.partition, original.key, [*kept, (COUNT, b"2")])
    engine.dispose()
    drop_table(pg_url, topic)


def test_a_dead_letter_topic_the_sink_consumes_is_refused_not_fed_in_a_loop(
    bootstrap_servers: str, pg_url: str, unique_name: str, tmp_path: Path, sink_runner: SinkRunner
) -> None:
    """Kafka Connect refuses a DLQ topic among `topics` (or matched by `topics.regex`): each bad
    record would be read back, fail again and be dead-lettered again, for ever."""
    topic, group = unique_name, f"{unique_name}-group"
    create_topic(bootstrap_servers, topic, 1)
    produce(bootstrap_servers, topic, [{"key": "k", "value": b"{not json"}])
    env = write_env(
        tmp_path / "sink.env",
        bootstrap_servers,
        "sqlite:///" + str(tmp_path / "loop.db"),
        topic,
        group,
        key_format="string",
        value_format="json",
        pk_mode="none",
        insert_mode="insert",
        errors_tolerance="all",
        errors_deadletterqueue_topic_name=topic,
        errors_deadletterqueue_context_headers_enable="true",
    )
    sink = sink_runner.start(env)
    try:
        code = sink.wait(20)
    except AssertionError:
        code = None
        sink.process.send_signal(signal.SIGTERM)
        sink.wait(30)
    records = consume_all(bootstrap_servers, topic)
    assert len(records) == 1, f"dead-lettered into the topic it is read from {len(records) - 1} times"
    assert code == 2, sink.stderr[-2000:]
    assert "SINK_ERRORS_DEADLETTERQUEUE_TOPIC_NAME" in sink.stderr, sink.stderr[-2000:]


def test_a_record_the_producer_refuses_stops_the_redrive_without_sending_what_follows_it(
    bootstrap_servers: str, pg_url: str, unique_name: str, tmp_path: Path, sink_runner: SinkRunner
) -> None:
    """README: a run that fails, then runs again, sends each record once. A record refused at
    once (larger than SINK_PRODUCER__MESSAGE_MAX_BYTES) must not let the records after it in the
    batch go out: the cursor stays before it, so the next run would send them again."""
    topic, dlq_topic, group = unique_name, f"{unique_name}_dlq", f"{unique_name}-group"
    create_topic(bootstrap_servers, topic, 1)
    create_topic(bootstrap_servers, dlq_topic, 1)
    values = [b'{"n": 0, ', b'{"n": 1, "pad": "' + b"x" * 5000, b'{"n": 2, ', b'{"n": 3, ']
    produce(bootstrap_servers, topic, [{"key": f"k{i}", "value": v} for i, v in enumerate(values)])
    env = write_env(
        tmp_path / "sink.env",
        bootstrap_servers,
        "sqlite:///" + str(tmp_path / "redrive.db"),
        topic,
        group,
        key_format="string",
        value_format="json",
        pk_mode="none",
        insert_mode="insert",
        errors_tolerance="all",
        errors_deadletterqueue_topic_name=dlq_topic,
        errors_deadletterqueue_context_headers_enable="true",
    )
    sink = sink_runner.start(env)
    wait_for(lambda: len(consume_all(bootstrap_servers, dlq_topic)) == 4, 60, message="not dead-lettered")
    sink.process.send_signal(signal.SIGTERM)
    assert sink.wait(30) == 0, sink.stderr[-3000:]

    small = tmp_path / "small.env"
    small.write_text("SINK_PRODUCER__MESSAGE_MAX_BYTES=2000\n")
    for _ in range(2):  # the too-large record fails each time
        done = dlq("redrive", env, "--env-file", str(small), "--execute")
        assert done.returncode == 1 and "not acknowledged" in done.stdout, done.stdout + done.stderr
    done = dlq("redrive", env, "--execute")  # the operator lifts the limit
    assert done.returncode == 0, done.stdout + done.stderr
    back = [m.key for m in consume_all(bootstrap_servers, topic)[4:]]
    assert sorted(back) == [b"k0", b"k1", b"k2", b"k3"], f"re-driven: {back}"
