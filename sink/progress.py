"""What `sink run` says about its progress: one updating line in a terminal, a line per interval in
logs, and a summary table a person can read when it stops.

The worker hands a `Snapshot` of its running totals to a reporter at each stats tick (and once at
the end); reporters only format and write, so the loop pays nothing per record for them.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol, TextIO

from .metrics import Counters

log = logging.getLogger("sink.worker")

CLEAR_LINE = "\r\x1b[K"


@dataclass(frozen=True, slots=True)
class Snapshot:
    """A copy of the worker's running totals at one moment (`at`: its clock, seconds)."""

    at: float
    totals: Counters = field(default_factory=Counters)
    lag: int | None = None


class Reporter(Protocol):
    def __call__(self, now: Snapshot, final: bool) -> None: ...


def snapshot(at: float, counters: Counters, lag: int | None) -> Snapshot:
    return Snapshot(at, dataclasses.replace(counters), lag)


def rate(earlier: Snapshot | None, later: Snapshot) -> float | None:
    """Records read per second between two snapshots (None without an earlier one or any time)."""
    if earlier is None or later.at <= earlier.at:
        return None
    return (later.totals.records_in - earlier.totals.records_in) / (later.at - earlier.at)


def one_line(now: Snapshot, per_second: float | None) -> str:
    """`12,345 records in (4,321/s) | written 10,000 | deleted 5 | dead-lettered 2 | failed 0 | lag 1,234`"""
    speed = "" if per_second is None else f" ({per_second:,.0f}/s)"
    lag = "?" if now.lag is None else f"{now.lag:,}"
    t = now.totals
    return (
        f"{t.records_in:,} records in{speed} | written {t.rows_written:,} | deleted {t.rows_deleted:,} | "
        f"dead-lettered {t.dead_lettered:,} | failed {t.failed:,} | lag {lag}"
    )


def summary(first: Snapshot, last: Snapshot) -> str:
    """The table printed when the sink stops."""
    seconds = max(0.0, last.at - first.at)
    per_second = rate(first, last)
    t = last.totals
    rows: Mapping[str, str] = {
        "ran for": f"{seconds:,.1f} s",
        "records read": f"{t.records_in:,}" + ("" if per_second is None else f"  ({per_second:,.0f}/s)"),
        "rows written": f"{t.rows_written:,}",
        "rows deleted": f"{t.rows_deleted:,}",
        "batches": f"{t.batches:,}",
        "dead-lettered": f"{t.dead_lettered:,}",
        "failed (logged)": f"{t.failed:,}",
        "offset commits": f"{t.commits:,}",
        "lag at stop": "?" if last.lag is None else f"{last.lag:,}",
    }
    width = max(map(len, rows))
    rule = "-" * (width + 2 + max(map(len, rows.values())))
    body = "\n".join(f"{name.ljust(width)}  {value}" for name, value in rows.items())
    return f"{rule}\n{body}\n{rule}"


class LogReporter:
    """Without a terminal: the totals as one log line per interval, and a final one."""

    def __init__(self) -> None:
        self._previous: Snapshot | None = None

    def __call__(self, now: Snapshot, final: bool) -> None:
        t = now.totals
        log.info(
            "%srecords in=%d written=%d deleted=%d batches=%d dead-lettered=%d failed=%d commits=%d lag=%s%s",
            "final: " if final else "",
            t.records_in,
            t.rows_written,
            t.rows_deleted,
            t.batches,
            t.dead_lettered,
            t.failed,
            t.commits,
            "?" if now.lag is None else now.lag,
            "" if (r := rate(self._previous, now)) is None else f" rate={r:.0f}/s",
        )
        self._previous = now


class TerminalReporter:
    """In a terminal: one line rewritten in place at each tick, cleared before any log line (a
    logging filter on the root handlers), and the summary table at the end."""

    def __init__(self, stream: TextIO, started_at: float) -> None:
        self.stream = stream
        self._first = self._previous = Snapshot(started_at)  # the worker's clock when it started
        self._showing = False
        for handler in logging.getLogger().handlers:
            handler.addFilter(self._clear_before_log)

    def __call__(self, now: Snapshot, final: bool) -> None:
        if final:
            self._clear()
            self.stream.write(summary(self._first, now) + "\n")
        else:
            self.stream.write(CLEAR_LINE + one_line(now, rate(self._previous, now)))
            self._showing = True
        self.stream.flush()
        self._previous = now

    def _clear_before_log(self, _record: logging.LogRecord) -> bool:
        self._clear()
        return True

    def _clear(self) -> None:
        if self._showing:
            self.stream.write(CLEAR_LINE)
            self._showing = False
