"""The loop: poll -> prepare -> batch -> write -> dead-letter/report -> commit.

Invariant: every polled record gets exactly one Outcome, and offsets are committed only up to the
highest contiguous *settled* record of each partition. One method per event; all I/O goes through
the ports below, so the loop runs in unit tests against in-memory fakes.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Protocol, TypeVar

from .batch import Batcher
from .errors import FatalError, RecordError, RecordStop, RetriableError
from .model import Batch, Counters, Outcome, RawRecord, Status
from .offsets import OffsetTracker, TopicPartition
from .pipeline import Preparer, Writer
from .routing import OutcomeRouter

log = logging.getLogger("sink.worker")

T = TypeVar("T")


class Source(Protocol):
    """The consumer: a group member with manual commits."""

    def subscribe(
        self,
        on_assign: Callable[[list[TopicPartition]], None],
        on_revoke: Callable[[list[TopicPartition]], None],
    ) -> None: ...
    def poll(self, max_records: int, timeout: float) -> list[RawRecord]: ...
    def commit(self, offsets: Mapping[TopicPartition, int]) -> None: ...
    def pause(self) -> None: ...
    def resume(self) -> None: ...
    def lag(self) -> int | None: ...
    def close(self) -> None: ...


@dataclass(frozen=True, slots=True)
class LoopRules:
    max_poll_records: int = 500
    poll_timeout_s: float = 0.1
    commit_interval_s: float = 1.0
    stats_interval_s: float = 10.0
    retry_timeout_s: float | None = None  # None: retry forever
    retry_delay_max_s: float = 60.0
    retry_delay_initial_s: float = 0.25
    shutdown_timeout_s: float = 10.0


class Worker:
    def __init__(
        self,
        source: Source,
        preparer: Preparer,
        writer: Writer,
        batcher: Batcher,
        router: OutcomeRouter,
        rules: LoopRules,
        clock: Callable[[], float],
        sleep: Callable[[float], None],
    ) -> None:
        self.source = source
        self.preparer = preparer
        self.writer = writer
        self.batcher = batcher
        self.router = router
        self.rules = rules
        self.clock = clock
        self.sleep = sleep
        self.tracker = OffsetTracker()
        self.counters = Counters()
        self._stopping = False
        self._ready: deque[Batch] = deque()  # closed batches waiting to be written, in order
        self._held: deque[RawRecord] = deque()  # polled during a back-off, processed next step
        self._revoked: set[TopicPartition] = set()
        self._last_commit = self._last_stats = clock()
        router.bind(self.tracker, self.counters)

    # -------------------------------------------------------------- lifecycle

    def stop(self) -> None:
        """Ask the loop to finish (signal handlers call this): flush, commit, leave the group."""
        self._stopping = True

    def run(self) -> int:
        """Run until stopped; return the process exit code."""
        self.source.subscribe(self._on_assign, self._on_revoke)
        try:
            while not self._stopping:
                self._step()
            self._finish()
            return 0
        except RecordStop as stop:
            log.error("stopping at the first bad record (SINK_ERRORS_TOLERANCE=none): %s", stop)
            self._finish_after_failure(flush=True)
            return stop.exit_code
        except FatalError as fatal:
            log.error("fatal: %s", fatal)
            self._finish_after_failure(flush=False)
            return fatal.exit_code
        except Exception:  # a bug: say where, keep what settled, never commit past it
            log.exception("unexpected error; stopping without committing unsettled records")
            self._finish_after_failure(flush=False)
            return 1

    def _step(self) -> None:
        held, self._held = self._held, deque()
        for raw in (*held, *self.source.poll(self.rules.max_poll_records, self.rules.poll_timeout_s)):
            self._on_record(raw)
        self._flush(self.batcher.due())
        if self.clock() - self._last_commit >= self.rules.commit_interval_s:
            self._commit()
        if self.clock() - self._last_stats >= self.rules.stats_interval_s:
            self._log_stats()

    def _finish(self) -> None:
        self._flush(self.batcher.drain(), deadline=self.clock() + self.rules.shutdown_timeout_s)
        self._commit()
        self._close()

    def _finish_after_failure(self, flush: bool) -> None:
        """Settle what came before the failure (never past it), then leave the group."""
        try:
            if flush:
                self._flush(self.batcher.drain(), deadline=self.clock() + self.rules.shutdown_timeout_s)
            self._commit()
        except (FatalError, RetriableError) as exc:
            log.error("could not settle the records before the failure: %s", exc)
        finally:
            self._close()

    def _close(self) -> None:
        self._log_stats(final=True)
        self.source.close()

    # -------------------------------------------------------------- records

    def _on_record(self, raw: RawRecord) -> None:
        if (raw.coord.topic, raw.coord.partition) in self._revoked:
            return  # held across a rebalance: the partition's new owner reads it again
        self.tracker.track(raw.coord)
        self.counters.records_in += 1
        try:
            prepared = self._retrying(lambda: self.preparer.prepare(raw))
        except RecordError as error:
            self.router.record_failed(raw, error)
            return
        if isinstance(prepared, Outcome):
            self.router.settled([prepared])
        else:
            self._ready.extend(self.batcher.add(prepared))

    # -------------------------------------------------------------- writing

    def _flush(self, batches: Iterable[Batch] = (), deadline: float | None = None) -> None:
        """Write the closed batches in order."""
        self._ready.extend(batches)
        while self._ready:
            batch = self._ready.popleft()
            outcomes = self._retrying(lambda: self.writer.write(batch), deadline)  # noqa: B023 - called at once
            self.counters.batches += 1
            self.router.settled(outcomes)

    # -------------------------------------------------------------- outages

    def _retrying(self, attempt: Callable[[], T], deadline: float | None = None) -> T:
        """Run `attempt`; while the world is down (RetriableError) pause the partitions, stay in the
        group by polling, back off exponentially and try again, until it works or the budget ends."""
        delay = self.rules.retry_delay_initial_s
        started = self.clock()
        paused = False
        try:
            while True:
                try:
                    return attempt()
                except RetriableError as exc:
                    if not paused:
                        log.warning("outage, pausing consumption and retrying: %s", exc)
                        self.source.pause()
                        paused = True
                    self._check_retry_budget(exc, started, deadline)
                    self._wait_in_group(delay)
                    delay = min(delay * 2, self.rules.retry_delay_max_s)
        finally:
            if paused:
                self.source.resume()
                log.info("recovered after %.1f s; resumed consumption", self.clock() - started)

    def _check_retry_budget(self, exc: RetriableError, started: float, deadline: float | None) -> None:
        elapsed = self.clock() - started
        budget = self.rules.retry_timeout_s
        if budget is not None and elapsed >= budget:
            raise FatalError(f"gave up after {elapsed:.0f} s of retries (SINK_ERRORS_RETRY_TIMEOUT_MS): {exc}")
        if deadline is not None and self.clock() >= deadline:
            raise FatalError(f"could not flush before the shutdown deadline: {exc}")

    def _wait_in_group(self, seconds: float) -> None:
        """Back off while polling, so the group sees us alive (no max.poll.interval.ms breach).
        Records fetched before the pause took effect are held, in order, for the next step."""
        until = self.clock() + seconds
        while self.clock() < until:
            self._held.extend(self.source.poll(self.rules.max_poll_records, min(0.2, seconds)))

    # -------------------------------------------------------------- offsets

    def _commit(self) -> None:
        self.router.flush()  # dead-letter and report acknowledgements settle records first
        offsets = self.tracker.committable()
        if offsets:
            self.source.commit(offsets)
            self.tracker.mark_committed(offsets)
            self.counters.commits += 1
        self._last_commit = self.clock()

    def _on_assign(self, partitions: list[TopicPartition]) -> None:
        self._revoked.difference_update(partitions)
        log.info("assigned %s", _names(partitions))

    def _on_revoke(self, partitions: list[TopicPartition]) -> None:
        """Flush and commit what we hold before the partitions move to another member."""
        log.info("revoked %s: flushing and committing first", _names(partitions))
        self._ready.extend(self.batcher.drain())
        try:
            while self._ready:
                batch = self._ready.popleft()
                self.counters.batches += 1
                self.router.settled(self.writer.write(batch))
            self._commit()
        except (RetriableError, FatalError) as exc:
            log.warning("could not flush before giving up partitions (the new owner re-reads them): %s", exc)
        self.tracker.forget(partitions)
        self._revoked.update(partitions)

    # -------------------------------------------------------------- progress

    def _log_stats(self, final: bool = False) -> None:
        c = self.counters
        lag = self.source.lag()
        log.info(
            "%srecords in=%d written=%d deleted=%d batches=%d dead-lettered=%d failed=%d commits=%d lag=%s",
            "final: " if final else "",
            c.records_in,
            c.rows_written,
            c.rows_deleted,
            c.batches,
            c.dead_lettered,
            c.failed,
            c.commits,
            "?" if lag is None else lag,
        )
        self._last_stats = self.clock()

    @property
    def idle(self) -> bool:
        return not self._ready and len(self.batcher) == 0 and self.tracker.unsettled() == 0


def _names(partitions: Iterable[TopicPartition]) -> str:
    return ", ".join(f"{t}/{p}" for t, p in sorted(partitions)) or "nothing"


__all__ = ["LoopRules", "Source", "Status", "Worker"]
