"""Log hygiene: librdkafka's repeated lines are held back, the sink's own progress lines never."""

from __future__ import annotations

import logging

from sink.logs import RepeatFilter


def record(message: str, created: float, name: str = "sink.librdkafka") -> logging.LogRecord:
    entry = logging.LogRecord(name, logging.ERROR, __file__, 1, message, None, None)
    entry.created = created
    return entry


def test_a_line_repeated_within_the_interval_is_held_back_and_counted() -> None:
    gate = RepeatFilter(interval=30)
    assert gate.filter(record("Connect to 127.0.0.1:9092 failed (after 3ms)", 100.0))
    assert not gate.filter(record("Connect to 127.0.0.1:9092 failed (after 7ms)", 101.0))
    assert not gate.filter(record("Connect to 127.0.0.1:9092 failed (after 9ms)", 102.0))
    later = record("Connect to 127.0.0.1:9092 failed (after 4ms)", 131.0)
    assert gate.filter(later)
    assert "repeated 2 more times" in later.getMessage()


def test_different_lines_pass() -> None:
    gate = RepeatFilter(interval=30)
    assert gate.filter(record("broker down", 100.0))
    assert gate.filter(record("group rebalanced", 100.5))


def test_progress_lines_are_not_filtered() -> None:
    logging.getLogger("sink.worker").info("check")  # setup_logging only filters sink.librdkafka
    from sink.logs import setup_logging

    setup_logging("INFO", "text")
    assert logging.getLogger("sink.worker").filters == []
    assert any(isinstance(f, RepeatFilter) for f in logging.getLogger("sink.librdkafka").filters)
