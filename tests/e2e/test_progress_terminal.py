"""`sink run` in a terminal: one progress line rewritten in place while it ingests, and a summary
table when it stops (SIGTERM). The sink's stderr is a real pseudo-terminal here."""

from __future__ import annotations

import json
import os
import pty
import re
import select
import signal
import subprocess
import time
from pathlib import Path

from tests.e2e.conftest import SINK, _clean_environ, write_env
from tests.support.db import drop_table, fetch_rows, table_exists
from tests.support.kafka import create_topic, produce, wait_for

CLEAR_LINE = "\r\x1b[K"


def _read_available(fd: int, into: bytearray, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        ready, _, _ = select.select([fd], [], [], left)
        if not ready:
            return
        try:
            chunk = os.read(fd, 65536)
        except OSError:  # the terminal's other end closed: the sink exited
            return
        if not chunk:
            return
        into.extend(chunk)


def test_a_terminal_sees_one_updating_line_and_a_summary_at_the_end(
    bootstrap_servers: str, pg_url: str, unique_name: str, tmp_path: Path
) -> None:
    topic = unique_name
    create_topic(bootstrap_servers, topic, partitions=2)
    produce(bootstrap_servers, topic, [{"value": json.dumps({"n": n})} for n in range(300)])
    env = write_env(tmp_path / "sink.env", bootstrap_servers, pg_url, topic, unique_name, pk_mode="kafka")
    leader, follower = pty.openpty()
    process = subprocess.Popen(
        [str(SINK), "run", "--env-file", str(env)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=follower,
        env=_clean_environ(),
    )
    os.close(follower)
    seen = bytearray()
    try:
        landed = lambda: table_exists(pg_url, topic) and len(fetch_rows(pg_url, topic)) == 300  # noqa: E731
        wait_for(landed, 60, message="the records did not land")
        _read_available(leader, seen, 2.5)  # a couple of one-second ticks after the ingest
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0
        _read_available(leader, seen, 2.0)
    finally:
        if process.poll() is None:
            process.kill()
        os.close(leader)
        drop_table(pg_url, topic)
    text = seen.decode(errors="replace")
    updates = re.findall(re.escape(CLEAR_LINE) + r"([\d,]+) records in", text)
    assert len(updates) >= 2, f"the line is rewritten in place at each tick:\n{text[-2000:]}"
    assert updates[-1] == "300", "the last update counts every record"
    assert "written 300 | deleted 0 | dead-lettered 0 | failed 0 | lag" in text
    summary = text.split("received SIGTERM")[-1]
    assert re.search(r"records read\s+300\b", summary) and re.search(r"rows written\s+300\b", summary), summary
    assert re.search(r"\r?\n-{20,}\r?\n", summary), "the summary is a ruled table"
    assert "final: records in=" not in text, "the log line is for logs, not for a person at a terminal"
