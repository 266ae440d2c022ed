"""Numbers the worker does not keep in `Counters`, for `/metrics` and the status page.

Pure core, fed per batch or per event, never per record: the hot path (~50,000 records/s) pays
nothing for metrics. The worker's thread writes; the HTTP thread reads at scrape time. Every
update is an int addition or one dict item assignment, and a reader copies a dict or a deque in
one C call (atomic under the GIL), so no lock is needed and a scrape never sees a torn update.

    observe_batch(table, rows, seconds)   a batch was written to `table`: `rows` records it took
    observe_failure(coord, stage, error_class, reason, dead_lettered)
                                          a record failed (dead-lettered, or only logged)
    skipped(n) / reported(n)              records skipped (no write), reports acknowledged

`History` keeps the counters' values every few seconds for the throughput chart.
"""

from __future__ import annotations

from bisect import bisect_left
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import pairwise
from typing import Any

# Bucket upper bounds (Prometheus' `le`): records per batch, seconds per batch write.
BATCH_ROWS_BUCKETS: tuple[float, ...] = (1, 10, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 50000)
BATCH_SECONDS_BUCKETS: tuple[float, ...] = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
)
LATEST_FAILURES = 20  # examples of failed records kept for the status page


class Histogram:
    """Counts per bucket (not cumulative; `cumulative()` gives Prometheus' view), sum and count."""

    __slots__ = ("bounds", "counts", "sum")

    def __init__(self, bounds: Sequence[float]) -> None:
        self.bounds = tuple(bounds)
        self.counts = [0] * (len(self.bounds) + 1)  # the last one is +Inf
        self.sum = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.bounds, value)] += 1
        self.sum += value

    @property
    def count(self) -> int:
        return sum(self.counts)

    def cumulative(self) -> list[tuple[str, int]]:
        """[(le, observations <= le)], ending with ("+Inf", count), as Prometheus wants them."""
        counts, total, out = list(self.counts), 0, []
        for bound, n in zip((*map(_le, self.bounds), "+Inf"), counts, strict=True):
            total += n
            out.append((bound, total))
        return out


def _le(bound: float) -> str:
    return f"{bound:g}" if bound < 1e6 else str(bound)


@dataclass(slots=True)
class TableStats:
    rows: int = 0  # records of the batches the table took (deletes included; refused rows are failures)
    batches: int = 0
    seconds: float = 0.0  # time spent writing its batches


@dataclass(frozen=True, slots=True)
class Failure:
    """An example of a failed record for the status page: where and why, never its key or value."""

    topic: str
    partition: int
    offset: int
    stage: str
    error_class: str
    reason: str
    dead_lettered: bool
    at: float  # wall-clock seconds (time.time()), for people

    def as_json(self) -> dict[str, Any]:
        return {
            "topic": self.topic,
            "partition": self.partition,
            "offset": self.offset,
            "stage": self.stage,
            "error_class": self.error_class,
            "reason": self.reason,
            "dead_lettered": self.dead_lettered,
            "at": self.at,
        }


@dataclass(slots=True)
class Counters:
    """The worker's running totals: the progress line, the final summary, /metrics (mutable, so
    here and not among the frozen data of `model.py`)."""

    records_in: int = 0
    rows_written: int = 0
    rows_deleted: int = 0
    batches: int = 0
    dead_lettered: int = 0
    failed: int = 0
    commits: int = 0


class Stats:
    def __init__(self) -> None:
        self.tables: dict[str, TableStats] = {}
        self.batch_rows: dict[str, Histogram] = {}
        self.batch_seconds: dict[str, Histogram] = {}
        # (topic, stage, error_class, dead_lettered) -> records
        self.failures: dict[tuple[str, str, str, bool], int] = {}
        self.latest: deque[Failure] = deque(maxlen=LATEST_FAILURES)
        self.skipped_records = 0
        self.reported_records = 0

    # -------------------------------------------------------------- updates (the worker's thread)

    def observe_batch(self, table: str, rows: int, seconds: float) -> None:
        """A batch was written to `table` in `seconds` (once per batch, over all its transactions
        and attempts); `rows`: the records of it the database took, as `Counters.rows_written` and
        `rows_deleted` count them (a row it refused is a failed record, not a row of the table)."""
        stats = self.tables.get(table)
        if stats is None:
            stats = self.tables[table] = TableStats()
            self.batch_rows[table] = Histogram(BATCH_ROWS_BUCKETS)
            self.batch_seconds[table] = Histogram(BATCH_SECONDS_BUCKETS)
        stats.rows += rows
        stats.batches += 1
        stats.seconds += seconds
        self.batch_rows[table].observe(rows)
        self.batch_seconds[table].observe(seconds)

    def observe_failure(
        self,
        topic: str,
        partition: int,
        offset: int,
        stage: str,
        error_class: str,
        reason: str,
        dead_lettered: bool,
        at: float,
    ) -> None:
        """A record failed (the exceptional path: once per bad record). `reason` must be the
        value-free reason unless errors.log.include.messages is on."""
        key = (topic, stage, error_class, dead_lettered)
        self.failures[key] = self.failures.get(key, 0) + 1
        self.latest.append(Failure(topic, partition, offset, stage, error_class, reason, dead_lettered, at))

    def skipped(self, records: int = 1) -> None:
        self.skipped_records += records

    def reported(self, records: int = 1) -> None:
        self.reported_records += records

    # -------------------------------------------------------------- views (any thread)

    def table_view(self) -> dict[str, TableStats]:
        return dict(self.tables)

    def failure_counts(self) -> dict[tuple[str, str, str, bool], int]:
        return dict(self.failures)

    def latest_failures(self) -> list[Failure]:
        return list(self.latest)


class History:
    """The counters every `interval` seconds over the last `span` seconds: the throughput chart.
    `sample()` is called by whoever reads (the HTTP adapter's sampler), never by the worker."""

    def __init__(self, interval: float = 2.0, span: float = 600.0) -> None:
        self.interval = interval
        self._samples: deque[tuple[float, dict[str, int]]] = deque(maxlen=max(2, int(span / interval) + 1))

    def sample(self, at: float, values: Mapping[str, int]) -> None:
        samples = self._samples
        if samples and at - samples[-1][0] < self.interval / 2:
            return  # two readers close together: one sample is enough
        samples.append((at, dict(values)))

    def rates(self) -> list[dict[str, float]]:
        """Per interval: {"t": end time, "<name>": per second over the interval}."""
        samples = list(self._samples)
        out = []
        for (t0, before), (t1, after) in pairwise(samples):
            elapsed = t1 - t0
            if elapsed <= 0:
                continue
            point: dict[str, float] = {"t": t1}
            for name, value in after.items():
                point[name] = max(0, value - before.get(name, 0)) / elapsed
            out.append(point)
        return out
