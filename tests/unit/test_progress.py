"""The progress reports of `sink run`: one updating line in a terminal, log lines otherwise, and
a summary table at the end."""

from __future__ import annotations

import io
import logging

import pytest

from sink.metrics import Counters
from sink.progress import CLEAR_LINE, LogReporter, Snapshot, TerminalReporter, one_line, rate, snapshot, summary


def test_a_snapshot_takes_the_counters_and_the_lag() -> None:
    counters = Counters()
    counters.records_in, counters.rows_written, counters.dead_lettered = 10, 7, 2
    assert snapshot(5.0, counters, 3) == Snapshot(5.0, Counters(records_in=10, rows_written=7, dead_lettered=2), lag=3)


def test_the_line_says_rate_totals_and_lag() -> None:
    earlier, now = (
        Snapshot(10.0, Counters(records_in=1_000)),
        Snapshot(12.0, Counters(records_in=9_000, rows_written=8_500), lag=1234),
    )
    assert rate(earlier, now) == 4000.0
    assert rate(None, now) is None and rate(now, now) is None
    assert one_line(now, rate(earlier, now)) == (
        "9,000 records in (4,000/s) | written 8,500 | deleted 0 | dead-lettered 0 | failed 0 | lag 1,234"
    )


def test_the_summary_is_a_table_of_the_run() -> None:
    table = summary(
        Snapshot(0.0), Snapshot(20.0, Counters(records_in=50_000, rows_written=49_990, dead_lettered=10), lag=0)
    )
    lines = table.splitlines()
    assert lines[0] == lines[-1] and set(lines[0]) == {"-"}, "ruled above and below"
    assert "ran for          20.0 s" in table
    assert "records read     50,000  (2,500/s)" in table
    assert "dead-lettered    10" in table
    assert "lag at stop      0" in table


def test_in_a_terminal_the_line_is_rewritten_in_place_cleared_for_logs_and_replaced_by_the_summary() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        report = TerminalReporter(stream, started_at=0.0)
        report(Snapshot(1.0, Counters(records_in=100)), final=False)
        report(Snapshot(2.0, Counters(records_in=300)), final=False)
        logging.getLogger("sink.test").warning("a log line")
        report(Snapshot(3.0, Counters(records_in=600, rows_written=600)), final=True)
    finally:
        root.removeHandler(handler)
    text = stream.getvalue()
    assert text.startswith(CLEAR_LINE + "100 records in (100/s)")
    assert CLEAR_LINE + "300 records in (200/s)" in text, "the rate since the last tick"
    assert "(200/s) | written 0 | deleted 0 | dead-lettered 0 | failed 0 | lag ?" + CLEAR_LINE + "a log line\n" in text
    assert text.endswith(summary(Snapshot(0.0), Snapshot(3.0, Counters(records_in=600, rows_written=600))) + "\n")


def test_without_a_terminal_the_totals_are_log_lines(caplog: pytest.LogCaptureFixture) -> None:
    report = LogReporter()
    with caplog.at_level(logging.INFO, logger="sink.worker"):
        report(Snapshot(1.0, Counters(records_in=10, rows_written=10, commits=1), lag=0), final=False)
        report(Snapshot(3.0, Counters(records_in=30, rows_written=30, commits=2), lag=0), final=True)
    first, last = (r.getMessage() for r in caplog.records)
    assert first == "records in=10 written=10 deleted=0 batches=0 dead-lettered=0 failed=0 commits=1 lag=0"
    assert last == (
        "final: records in=30 written=30 deleted=0 batches=0 dead-lettered=0 failed=0 commits=2 lag=0 rate=10/s"
    )
