"""The loop: poll -> prepare -> batch -> write -> dead-letter/report -> commit.

Invariant: every polled record gets exactly one Outcome, and offsets are committed only up to the
highest contiguous *settled* record of each partition. One method per event; all I/O goes through
the ports below, so the loop runs in unit tests against in-memory fakes.

Overlap: a closed batch is written on a writer thread while the loop polls and prepares the next
(the database driver and librdkafka release the GIL while they wait). One batch at most is in
flight and batches are written one after another in order, so per-partition order holds across
tables; what the writer thread commits is settled on the loop's thread, when the loop collects
the write (`_collect`), before the next batch is written. Everything that is not the plain path
(outages, revocation, shutdown, a stop after a failure) first collects the write in flight and
then writes in the foreground, as if there were no thread; but the attempts that retry a batch
after an outage go back to the writer thread while the loop polls (the partitions paused), so
that one waiting for a table lock does not stop the heartbeats or cost the group membership.
"""

from __future__ import annotations

import dataclasses
import gc
import logging
import sys
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor, wait
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from itertools import islice, repeat
from typing import Protocol, TypeVar

from .batch import Batcher
from .errors import FatalError, Fenced, RecordError, RecordStop, RetriableError
from .health import Health
from .logs import fields
from .model import COORD_OF_ROW, Batch, Coord, Outcome, RawRecord, Row, Settled, Status
from .offsets import BatchPositions, Ledger
from .outcomes import OutcomeRouter
from .pipeline import Preparer, Writer
from .ports import Source, TopicPartition
from .progress import LogReporter, Reporter, snapshot

log = logging.getLogger("sink.worker")

LONG_WRITE_S = 1.0  # a batch write taking longer than this is waited for with polling
# How long the loop's thread may hold the GIL while the writer thread waits for it. Every reply
# the database sends the writer (a COPY chunk taken, a statement done: some 20 per batch) needs
# the GIL back, and Python's default of 5 ms made a batch's write take twice its time (measured:
# 55,000 -> 68,000 records/s in process at 0.5 ms, for 2-5 % more CPU).
WRITER_SWITCH_INTERVAL_S = 0.0005
# The cyclic garbage collector, tuned while the loop runs. Each record makes some twenty container
# objects that die young by reference counting, yet every 700 allocations CPython scans its young
# objects and now and then every object alive, the libraries' (SQLAlchemy's, pydantic's) included.
# Freezing what exists at start keeps those out of every scan, and a larger young generation
# scans less often: together about a third of the CPU per record (measured in process, 300,000
# Avro records: 21.5 -> 13.7 us at 10,000; 50,000 took another 6 % off with batches of 10,000
# rows, 100,000 no more). Reference cycles are still collected, only later.
GC_YOUNG_THRESHOLD = 50_000

T = TypeVar("T")


class TracedWrite(Protocol):
    def committed(self, on_commit: Callable[[Settled], None]) -> Callable[[Settled], None]: ...


class BatchTracer(Protocol):
    """Tracing (sink/adapters/tracing.py): a context around each batch's write; what it yields
    wraps the write's on-commit callback (to count what each transaction settled)."""

    def batch(self, batch: Batch) -> AbstractContextManager[TracedWrite]: ...


class _NoTracing:
    """Tracing off: one call per batch, nothing per record."""

    def batch(self, batch: Batch) -> _NoTracing:
        return self

    def __enter__(self) -> _NoTracing:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def committed(self, on_commit: Callable[[Settled], None]) -> Callable[[Settled], None]:
        return on_commit


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
    write_in_background: bool = True  # overlap a batch's write with polling and preparing the next


class _HandBack(Exception):
    """Raised on the writer thread when a part it committed holds a failed record: routing that
    part may stop the sink (errors.tolerance=none, the flood limit, the dead-letter topic down), as
    it would have in the middle of a foreground write, so the loop routes it first and then writes
    the rest of the batch in the foreground."""


@dataclass(slots=True)
class _InFlight:
    """The batch the writer thread is writing, and the outcomes of its committed transactions."""

    batch: Batch
    future: Future[None]
    parts: deque[Settled]  # appended by the writer thread, settled by the loop


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
        health: Health | None = None,
        ledger: Ledger | None = None,
        report: Reporter | None = None,
        tracer: BatchTracer | None = None,
    ) -> None:
        self.source = source
        self.preparer = preparer
        self.writer = writer
        self.batcher = batcher
        self.router = router
        self.rules = rules
        self.clock = clock
        self.health = health or Health(clock, float("inf"), float("inf"))  # what /livez and /readyz tell
        self.report = report or LogReporter()  # the totals at each stats tick and at the end
        self.tracer = tracer or _NoTracing()  # OpenTelemetry: a span per batch written (off: nothing)
        self.tracker = router.tracker  # the router settles into them: one owner
        self.counters = router.counters
        # Exactly-once (None: at-least-once): positions kept in the target database with the rows.
        self.ledger = ledger
        self._fenced: set[TopicPartition] = set()  # taken by another worker; their records are dropped
        self._stopping = False
        self._ready: deque[Batch] = deque()  # closed batches waiting to be written, in order
        self._held: deque[RawRecord] = deque()  # polled, not yet prepared (also during a back-off)
        # Revoked (or lost) while a record or batch of theirs was written or retried: skipped by it,
        # and cleared when it ends, never by an assignment during it (see `_on_assign`).
        self._stale: set[TopicPartition] = set()
        self._failure: FatalError | None = None  # raised in a rebalance callback, re-raised after poll
        self._backing_off = False
        self._outage_paused = False  # an outage's retry paused the partitions (and resumes them)
        self._failed = False  # stopping after a failure: nothing more may be written
        self._stop_deadline: float | None = None  # when a stop was asked: the shutdown timeout's end
        self._at: RawRecord | Batch | str = "start-up"  # what the loop is busy with, for error messages
        # The batch being written, over all its attempts (a hand-back, an outage's retries): the
        # records its committed parts settled, the rows the database took, the seconds its writes took.
        self._parts_done: set[Coord] = set()
        self._taken_rows = 0
        self._write_seconds = 0.0
        self._last_commit = self._last_stats = clock()
        self._writing: _InFlight | None = None
        self._writer_thread = ThreadPoolExecutor(1, "sink-writer") if rules.write_in_background else None
        self.stats = router.stats  # per table and per batch, for /metrics and the status page

    # -------------------------------------------------------------- lifecycle

    def stop(self) -> None:
        """Ask the loop to finish (signal handlers call this): flush, commit, leave the group."""
        if not self._stopping:
            self._stop_deadline = self.clock() + self.rules.shutdown_timeout_s
            self.health.stopping()
        self._stopping = True

    def run(self) -> int:
        """Run until stopped; return the process exit code."""
        with _runtime_tuned(writer_thread=self._writer_thread is not None):
            return self._run()

    def _run(self) -> int:
        if self.ledger is None:
            self.source.subscribe(self._on_assign, self._on_revoke)
        else:  # the consumer asks where each assigned partition starts (the offsets table)
            self.source.subscribe(self._on_assign, self._on_revoke, start_at=self._start_at)
        try:
            while not self._stopping:
                self._step()
            self._finish()
            return 0
        except RecordStop as stop:
            log.error(
                "stopping at the first bad record (SINK_ERRORS_TOLERANCE=none): %s",
                stop,
                extra=fields(stop.coord, error=stop.error),
            )
            self._settle_then_close(self._before(stop.coord))
            return stop.exit_code
        except FatalError as fatal:
            log.error("fatal at %s: %s", _where(self._at), fatal, extra=fields(self._at, error=fatal))
            self._settle_then_close()
            return fatal.exit_code
        except Exception:  # a bug: say where, keep what settled, never commit past it
            log.exception(
                "unexpected error at %s; stopping without committing unsettled records",
                _where(self._at),
                extra=fields(self._at),
            )
            self._settle_then_close()
            return 1

    def _step(self) -> None:
        polled = self._poll(self.rules.poll_timeout_s)
        self._held.extend(polled)
        while self._held:
            if not self._take_run():
                self._on_record(self._held.popleft())
            if self._ready:  # a batch closed: write it before preparing more (memory stays bounded)
                self._flush()
        # Caught up (the poll waited and found nothing): what is buffered is written now, as Kafka
        # Connect writes each put(); waiting out SINK_BATCH_MAX_WAIT_MS would only delay it.
        self._flush(self.batcher.due() if polled else self.batcher.drain())
        self._commit_if_due()
        if self.clock() - self._last_stats >= self.rules.stats_interval_s:
            self._log_stats()

    def _commit_if_due(self) -> None:
        """The periodic commit, once the write in flight (if any) is done, so that it covers every
        batch written before it. A write not yet done puts the commit off, without waiting: to the
        flush of the next batch, which waits for that write anyway and commits right after it, or
        to a later step that finds it done; past one more interval it is waited for. Waiting at
        once cost the loop a batch's merge once a second (1.1 s of a 1M-record run's 20.7 s)."""
        overdue = self.clock() - self._last_commit
        if overdue < self.rules.commit_interval_s:
            return
        writing = self._writing
        if writing is not None and not writing.future.done() and overdue < 2 * self.rules.commit_interval_s:
            return
        self._collect(keep_polling=True)
        self._commit()

    def _poll(self, timeout: float) -> list[RawRecord]:
        records = self.source.poll(self.rules.max_poll_records, timeout)
        self.health.beat()
        if self._failure is not None:  # raised inside a rebalance callback, where it cannot propagate
            failure, self._failure = self._failure, None
            raise failure
        return records

    def _finish(self) -> None:
        deadline = self.clock() + self.rules.shutdown_timeout_s
        self._flush(self.batcher.drain(), deadline=deadline)
        if not self._final_commit(deadline):
            log.error("the final offset commit failed: the records since the last commit will be read again")
        self._close()

    def _final_commit(self, deadline: float) -> bool:
        """The last commit, tried again with back-off (polling meanwhile) until the shutdown
        deadline: a broker that refuses it for a moment must not cost a replay of what was written.
        The only commit retry there is; the adapter tries once."""
        delay = self.rules.retry_delay_initial_s
        while not self._commit():
            if self.clock() + delay >= deadline:
                return False
            self._wait_in_group(delay, deadline)
            delay = min(delay * 2, self.rules.retry_delay_max_s)
        return True

    def _settle_then_close(self, batches: Iterable[Batch] = ()) -> None:
        """After a failure: write `batches` (what came before it, if anything), commit what settled
        (never past an unsettled record), then leave the group. Only `batches` are written: leaving
        the group revokes the partitions, and the revoke must not flush the rows after the failure.
        A batch in flight came before the failure (batches are closed in poll order): it is
        collected first."""
        self._failed = True
        self._ready.clear()
        try:
            self._flush(batches, deadline=self.clock() + self.rules.shutdown_timeout_s)
        except (FatalError, RetriableError) as exc:
            log.error("could not write the records before the failure: %s", exc)
        except Exception:
            log.exception("could not write the records before the failure")
        try:
            self._commit()
        except (FatalError, RetriableError) as exc:
            log.error("not committing: %s", exc)
        finally:
            self._close()

    def _before(self, coord: Coord) -> list[Batch]:
        """The buffered rows that came before `coord` (and all of other partitions), as batches."""

        def earlier(row: Row) -> bool:
            c = row.coord
            return (c.topic, c.partition) != (coord.topic, coord.partition) or c.offset < coord.offset

        batches = [_only(batch, earlier) for batch in (*self._ready, *self.batcher.drain())]
        return [b for b in batches if b.rows]

    def _close(self) -> None:
        self._log_stats(final=True)
        if self._writer_thread is not None:
            self._writer_thread.shutdown(wait=True)
        self.source.close()

    # -------------------------------------------------------------- records

    def _on_record(self, raw: RawRecord) -> None:
        if self._fenced and (raw.coord.topic, raw.coord.partition) in self._fenced:
            return  # fetched before the group took the partition away: its new owner has it
        self._at = raw
        self.tracker.track(raw.coord)
        self.counters.records_in += 1
        try:
            try:
                prepared = self.preparer.prepare(raw)
            except RetriableError as outage:  # the registry is away: wait it out (rare, so off the hot path)
                self._collect(keep_polling=True)  # never a write in flight during a back-off
                if not self.tracker.tracks(raw.coord):
                    return  # revoked while the write was waited for: its new owner reads it
                prepared = self._retrying(lambda: self.preparer.prepare(raw), failed=outage)
        except RecordError as error:
            if self._stale and self._drop_if_stale(raw.coord):
                return
            self.router.record_failed(raw, error)
            return
        if self._stale and self._drop_if_stale(raw.coord):  # revoked during a retry: rare, no call otherwise
            return
        if isinstance(prepared, Outcome):
            if prepared.status is Status.SKIPPED:
                self.stats.skipped()
            self.router.settled([prepared])
        else:
            self.router.accepted(raw)
            self._ready.extend(self.batcher.add(prepared))

    def _take_run(self) -> bool:
        """Take the run of held records at the head that one lane of the preparer takes and the
        open batch has room for, as `_on_record` would one by one (tracked, counted, prepared,
        accepted, batched), with C-level passes for all but the preparing: the usual poll. False:
        the head record goes `_on_record` (no lane, no room, a revocation being handled, a record
        the lane cannot take). A run never closes a batch: the row that would goes `_on_record`."""
        if self._fenced or self._stale:
            return False
        held = self._held
        lane = self.preparer.lane(held[0])
        if lane is None:
            return False
        rows_room, bytes_room = self.batcher.room(lane.table, lane.spec)
        if rows_room <= 0:
            return False
        rows, size = self.preparer.lane_rows(lane, islice(held, rows_room), bytes_room)
        if not rows:
            return False
        for _ in repeat(None, len(rows)):
            held.popleft()
        coords = list(map(COORD_OF_ROW, rows))
        self.tracker.track_all(coords)
        self.counters.records_in += len(rows)
        self.router.accepted_all(coords)
        self.batcher.extend(lane.table, rows, size)
        self._at = rows[-1].raw
        return True

    def _drop_if_stale(self, coord: Coord) -> bool:
        """True when the record's partition was revoked while it was being retried."""
        if not self._stale:
            return False
        stale = (coord.topic, coord.partition) in self._stale
        self._stale.clear()
        return stale

    # -------------------------------------------------------------- writing

    def _flush(self, batches: Iterable[Batch] = (), deadline: float | None = None) -> None:
        """Write the closed batches in order, each retried through outages. With a `deadline`
        (shutdown, failure) every write is waited for; otherwise the last one may stay in flight."""
        if self._writer_thread is None or deadline is not None:
            self._collect(deadline=deadline)
            self._write_ready(batches, lambda batch: self._retrying(lambda: self._write(batch), deadline))
            return
        self._collect(wait=False)
        self._ready.extend(batches)
        while self._ready:
            collected = self._writing is not None
            self._collect(keep_polling=True)  # one batch in flight at most
            if collected:  # the write before this batch just settled: a due commit covers it, no wait
                self._commit_if_due()
            if self._ready:  # (a revocation during the wait writes or drops them itself)
                self._write_in_background(self._ready.popleft())

    def _write_ready(self, batches: Iterable[Batch], write: Callable[[Batch], None]) -> None:
        """Write the waiting batches and then `batches`, in order, in the foreground (the write in
        flight collected first); their outcomes are routed as the transactions that settle them commit."""
        self._ready.extend(batches)
        while self._ready:
            batch = self._ready.popleft()
            self._start_batch()
            write(batch)
            self._written(batch.table)

    def _start_batch(self) -> None:
        """A new batch is about to be written: nothing of it settled, taken or timed yet."""
        self._parts_done.clear()
        self._taken_rows = 0
        self._write_seconds = 0.0

    def _written(self, table: str) -> None:
        """The batch is written: observed once per table, with the rows the database took over all
        its parts and attempts (a row it refused is a failed record, not a row of the table)."""
        self._stale.clear()
        self.counters.batches += 1
        self.stats.observe_batch(table, self._taken_rows, self._write_seconds)

    def _write_in_background(self, batch: Batch) -> None:
        self._start_batch()
        self._writing = self._submit(batch)

    def _submit(self, batch: Batch) -> _InFlight:
        """Hand (what is left of) the batch being written to the writer thread."""
        assert self._writer_thread is not None
        parts: deque[Settled] = deque()

        def committed(part: Settled) -> None:
            parts.append(part)
            if part.failed:
                raise _HandBack  # routing it may stop the sink: nothing more is written meanwhile

        future = self._writer_thread.submit(self._write, batch, committed, self._positions(batch))
        return _InFlight(batch, future, parts)

    def _collect(
        self, wait: bool = True, retry: bool = True, keep_polling: bool = False, deadline: float | None = None
    ) -> None:
        """Settle the write in flight (waiting for it, unless `wait` is false and it is not done):
        what its transactions committed is routed, then its error raised. The rest after a hand-back
        is written in the foreground; an outage is retried until `deadline` if any (never when
        `retry` is false: in a rebalance callback), each attempt on the writer thread while the
        loop polls (`_write_rest`). `keep_polling`: a long wait polls with the partitions paused,
        to stay in the group."""
        writing = self._writing
        if writing is None or not (wait or writing.future.done()):
            return
        if keep_polling:
            self._wait_in_group_for(writing)
            if self._writing is not writing:  # a rebalance callback collected it meanwhile
                return
        error = self._settle_in_flight(writing)
        try:
            if isinstance(error, _HandBack) and not retry:
                self._write(writing.batch)  # the rest of it, in the foreground
            elif isinstance(error, RetriableError | _HandBack) and retry:
                outage = error if isinstance(error, RetriableError) else None
                if not self._retrying(lambda: self._write_rest(writing.batch, deadline), deadline, failed=outage):
                    return  # a rebalance callback collected an attempt: it wrote or put back the rest
            elif error is not None:
                raise error
        except RetriableError:
            if not retry:  # in a rebalance callback: what is left waits, first in line (the revoke drops
                self._ready.appendleft(self._remaining(writing.batch))  # only its revoked partitions' rows)
            raise
        self._written(writing.batch.table)

    def _settle_in_flight(self, writing: _InFlight) -> BaseException | None:
        """On the loop's thread, once the write is done: route what its transactions committed and
        return its error (a partition another worker took becomes a hand-back of the rest)."""
        self._writing = None
        self._at = writing.batch
        error = writing.future.exception()
        while writing.parts:  # what committed; remembered only if the rest is written again
            self._settle_part(writing.parts.popleft(), remember=error is not None)
        if isinstance(error, Fenced):  # another worker took some partitions: the rest goes on
            self._lose(error.partitions)
            error = _HandBack()
        return error

    def _write_rest(self, batch: Batch, deadline: float | None) -> bool:
        """One attempt at what is left of the batch being written. After an outage it goes to the
        writer thread, so that an attempt waiting for a table lock still lets the loop poll (the
        heartbeats, the group membership); a hand-back's rest, a shutdown's deadline and a worker
        without the thread write in the foreground. False: a rebalance callback collected it."""
        if self._outage_paused and self._writer_thread is not None and deadline is None:
            return self._write_rest_in_background(batch)
        self._write(batch)
        return True

    def _write_rest_in_background(self, batch: Batch) -> bool:
        rest = self._remaining(batch)  # (taken on the loop's thread, which changes what it reads)
        if not rest.rows:
            return True
        writing = self._writing = self._submit(rest)
        self._wait_in_group_for(writing)  # (the retry keeps the partitions paused meanwhile)
        if self._writing is not writing:  # a revocation collected it and ended the batch
            self._stale.clear()  # (what it guarded the retry against: see `_on_assign`)
            return False
        error = self._settle_in_flight(writing)
        if isinstance(error, _HandBack):
            self._write(batch)  # the rest of it, in the foreground, as after any hand-back
        elif error is not None:
            raise error  # an outage again: `_retrying` backs off and calls again
        return True

    def _wait_in_group_for(self, writing: _InFlight) -> None:
        """Wait for a write; past LONG_WRITE_S (a lock held on the table, a slow merge), go on
        polling with the partitions paused, so the wait never exceeds max.poll.interval.ms and
        costs the group membership (an outage's retry keeps them paused already). Records fetched
        before the pause took effect are held."""
        if wait([writing.future], timeout=LONG_WRITE_S).done:
            return
        log.info(
            "a batch write of %r is taking long: pausing consumption until it ends",
            writing.batch.table,
            extra=fields(table=writing.batch.table),
        )
        pause = not self._outage_paused  # an outage's retry paused them already, and resumes them
        if pause:
            self.source.pause()
        try:
            while self._writing is writing and not writing.future.done():
                self._held.extend(self._poll(self.rules.poll_timeout_s))
        finally:
            if pause:
                self.source.resume()

    def _write(
        self,
        batch: Batch,
        on_commit: Callable[[Settled], None] | None = None,
        positions: BatchPositions | None = None,
    ) -> None:
        """Write (what is left of) a batch. A retry after an outage skips the records a committed
        part of it already settled, and those of partitions revoked meanwhile (their new owner
        writes them). On the writer thread, `on_commit` passes the committed parts to the loop and
        `positions` were taken on the loop's thread; in the foreground, a partition another worker
        took (Fenced) is dropped and the rest of the batch written again."""
        while True:
            batch = self._remaining(batch)
            if not batch.rows:
                return
            if on_commit is not None:
                self._write_once(batch, on_commit, positions)
                return
            self._at = batch
            try:
                self._write_once(batch, self._settle_part, self._positions(batch))
                return
            except Fenced as fenced:
                self._lose(fenced.partitions)

    def _remaining(self, batch: Batch) -> Batch:
        done, stale = self._parts_done, self._stale
        if not (done or stale):
            return batch
        return _only(batch, lambda r: r.coord not in done and (r.coord.topic, r.coord.partition) not in stale)

    def _write_once(self, batch: Batch, on_commit: Callable[[Settled], None], positions: BatchPositions | None) -> None:
        started = self.clock()
        try:
            with self.tracer.batch(batch) as span:
                self.writer.write(batch, span.committed(on_commit), self._check_stop_deadline, positions)
        except RecordError as exc:  # e.g. a deferred constraint at COMMIT: no single row to blame
            raise FatalError(
                f"the database rejected a whole batch of {batch.table!r} ({_span(batch)}) at commit: {exc.safe_reason}"
            ) from exc
        finally:  # (also on the writer thread: one write at a time, read by the loop once it is done)
            self._write_seconds += self.clock() - started

    def _settle_part(self, outcomes: Settled, remember: bool = True) -> None:
        if remember:  # a retry of this batch skips them
            self._parts_done.update(outcomes.coords())
        self._taken_rows += _taken(outcomes)
        self.router.settled(outcomes)

    def _check_stop_deadline(self) -> None:
        """Between the statements of a batch: a stop was asked and its shutdown timeout is over,
        so leave the rest unwritten (and unsettled: it is read again after the restart)."""
        if self._stop_deadline is not None and self.clock() >= self._stop_deadline:
            raise FatalError(
                f"could not write every record before the shutdown deadline (SINK_SHUTDOWN_TIMEOUT_MS="
                f"{self.rules.shutdown_timeout_s * 1000:.0f}); the rest is read again after a restart"
            )

    # -------------------------------------------------------------- outages

    def _retrying(
        self, attempt: Callable[[], T], deadline: float | None = None, failed: RetriableError | None = None
    ) -> T:
        """Run `attempt`; while the world is down (RetriableError) pause the partitions, stay in the
        group by polling, back off exponentially and try again, until it works or the budget ends.
        Never routes anything to the dead-letter queue. `failed`: the first attempt was made (on
        the writer thread) and failed so: back off before the next."""
        delay = self.rules.retry_delay_initial_s
        started = self.clock()
        paused = False
        try:
            while True:
                try:
                    if failed is not None:
                        raise failed
                    return attempt()
                except RetriableError as exc:
                    failed = None
                    if not paused:
                        log.warning("outage, pausing consumption and retrying: %s", exc)
                        self.source.pause()
                        self.health.retrying(started, why=type(exc).__name__)
                        paused = self._outage_paused = True
                    else:
                        log.info("still unavailable after %.1f s: %s", self.clock() - started, exc)
                    if self._stopping and deadline is None:  # SIGTERM during an outage: wait a bounded time
                        deadline = self.clock() + self.rules.shutdown_timeout_s
                    self._check_retry_budget(exc, started, deadline)
                    self._wait_in_group(delay, deadline)
                    delay = min(delay * 2, self.rules.retry_delay_max_s)
        finally:
            if paused:
                self._outage_paused = False
                self.source.resume()
                self.health.recovered()
                log.info("recovered after %.1f s; resumed consumption", self.clock() - started)

    def _check_retry_budget(self, exc: RetriableError, started: float, deadline: float | None) -> None:
        elapsed = self.clock() - started
        budget = self.rules.retry_timeout_s
        if budget is not None and elapsed >= budget:
            raise FatalError(
                f"gave up after {elapsed:.0f} s of retries (SINK_ERRORS_RETRY_TIMEOUT_MS={budget * 1000:.0f}): {exc}"
            )
        if deadline is not None and self.clock() >= deadline:
            raise FatalError(f"could not flush before the shutdown deadline: {exc}")

    def _wait_in_group(self, seconds: float, deadline: float | None = None) -> None:
        """Back off while polling, so the group sees us alive (no max.poll.interval.ms breach).
        Records fetched before the pause took effect are held, in order, for later; what settled
        before the outage is committed meanwhile."""
        until = self.clock() + seconds
        if deadline is not None:
            until = min(until, deadline)
        self._backing_off = True
        try:
            while self.clock() < until and not (self._stopping and deadline is None):
                self._held.extend(self._poll(min(0.2, seconds)))
                if self.clock() - self._last_commit >= self.rules.commit_interval_s:
                    self._commit()
        finally:
            self._backing_off = False

    # -------------------------------------------------------------- offsets

    def _commit(self) -> bool:
        """Commit the settled prefix of every partition, after the dead-letter records and reports
        it covers are acknowledged. A commit the broker refuses is tried again next time."""
        self._last_commit = self.clock()
        self.router.flush()  # raises when a dead-letter record or report could not be written
        if self.ledger is not None and not self._positions_caught_up():
            return False
        offsets = self.tracker.committable()
        if not offsets:
            return True
        try:
            if not self.source.commit(offsets):  # skipped: the group is rebalancing (the revoke commits)
                return False
        except RetriableError as exc:
            log.warning("offset commit failed, trying again later: %s", exc)
            return False
        self.tracker.mark_committed(offsets)
        self.counters.commits += 1
        return True

    def _on_assign(self, partitions: list[TopicPartition]) -> None:
        """Partitions revoked or lost earlier are ours again: their records are read and settled
        anew. Except during a retry (an outage: its back-offs and its attempts alike, an attempt on
        the writer thread being waited for while polling): what the retry holds of them (the batch
        being written, the record being prepared) was read before they were revoked, and stays
        dropped until it ends (`_written`, `_drop_if_stale`); they come again from the committed
        position (the offsets table's under exactly-once), after the retry, since the partitions
        are paused."""
        if not (self._backing_off or self._outage_paused):
            self._stale.difference_update(partitions)
        self.health.assigned(partitions)
        log.info("assigned %s", _names(partitions))

    # -------------------------------------------------------------- exactly-once

    def _start_at(self, partitions: list[TopicPartition]) -> dict[TopicPartition, int]:
        """Exactly-once, on assignment (in the rebalance callback): claim the partitions in the
        offsets table (their epoch bumped, which fences an earlier owner) and return the positions
        it holds; a partition without one starts at the group's committed offset, or
        auto.offset.reset. A database that cannot be read stops the sink (it must not guess)."""
        assert self.ledger is not None
        self._fenced.difference_update(partitions)  # (stale: see `_on_assign`, which came just before)
        try:
            start = self.ledger.claim(partitions)
        except (RetriableError, FatalError) as exc:
            self._failure = FatalError(f"could not claim {_names(partitions)} in the offsets table: {exc}")
            return {}
        if start:
            log.info("exactly-once: starting %s", ", ".join(f"{t}/{p}@{o}" for (t, p), o in sorted(start.items())))
        return start

    def _positions(self, batch: Batch) -> BatchPositions | None:
        """Exactly-once: the positions the batch's transactions write, from the settled prefixes of
        its partitions now (on the loop's thread)."""
        if self.ledger is None:
            return None
        partitions = {(row.coord.topic, row.coord.partition) for row in batch.rows}
        return self.ledger.for_batch(self.tracker.snapshot(partitions))

    def _positions_caught_up(self) -> bool:
        """Exactly-once, before a Kafka commit: the positions that moved with no row written (all
        dead-lettered or skipped) are written in a transaction of their own. False: try later."""
        assert self.ledger is not None
        try:
            self.ledger.catch_up(self.tracker.prefixes())
        except Fenced as fenced:
            self._lose(fenced.partitions)
        except RetriableError as exc:
            log.warning("could not write the positions to the offsets table, trying again later: %s", exc)
            return False
        return True

    def _lose(self, partitions: frozenset[TopicPartition]) -> None:
        """Another worker claimed `partitions` (the offsets table refused our compare-and-set): drop
        everything of theirs, as on a revocation, without writing or committing it."""
        log.warning("%s now belong to another worker: dropping what was read of them", _names(partitions))
        lost = set(partitions)
        self._fenced |= lost
        self._stale |= lost  # a batch being written or retried skips their rows
        self._drop(lost)
        self.tracker.forget(lost)
        if self.ledger is not None:
            self.ledger.forget(lost)

    def _on_revoke(self, partitions: list[TopicPartition]) -> None:
        """Write and commit what we hold of the revoked partitions before they move to another
        member; during an outage drop it instead (the new owner, maybe us again, reads it from the
        committed offset). Only `partitions` are touched: under cooperative rebalancing (incremental
        revocation) the partitions kept go on, their rows waiting in order."""
        try:
            self._give_up(partitions)
        finally:
            self.health.revoked(partitions)

    def _give_up(self, partitions: list[TopicPartition]) -> None:
        revoked = set(partitions)
        if self._failed:
            log.info("revoked %s while stopping after a failure: dropping what was read of them", _names(partitions))
            self._stale |= revoked  # a batch being written or retried now skips their rows
        elif self._backing_off:
            log.warning("revoked %s during an outage: dropping what was read of them", _names(partitions))
            self._stale |= revoked
        else:
            log.info("revoked %s: flushing and committing first", _names(partitions))
            try:
                self._collect(retry=False)  # no retries inside the callback
                self._write_revoked(revoked)
                self._commit()
            except RetriableError as exc:
                log.warning("could not flush before giving up partitions (the new owner re-reads them): %s", exc)
            except FatalError as exc:  # a bad record with tolerance none, a refused schema change...
                self._failure = exc
        self._drop(revoked)
        self.tracker.forget(partitions)
        if self.ledger is not None:
            self.ledger.forget(partitions)

    def _write_revoked(self, revoked: set[TopicPartition]) -> None:
        """Write, in order, the waiting rows of the revoked partitions (the open batches are closed);
        the rows of the partitions kept stay waiting, in order, for the loop to write them."""
        waiting = [*self._ready, *self.batcher.drain()]
        self._ready.clear()
        for batch in waiting:
            kept = _only(batch, lambda row: (row.coord.topic, row.coord.partition) not in revoked)
            if kept.rows:
                self._ready.append(kept)
        for batch in waiting:
            theirs = _only(batch, lambda row: (row.coord.topic, row.coord.partition) in revoked)
            if theirs.rows:
                self._start_batch()
                self._write(theirs)  # (an outage: the rest of theirs is dropped, the kept rows wait)
                self._written(theirs.table)

    def _drop(self, revoked: set[TopicPartition]) -> None:
        """Forget every record and row of the revoked partitions that is not settled yet; those of
        the partitions kept stay where they are, in order (changed in place: a poll in progress
        appends to them after the revocation it served)."""

        def kept(coord: Coord) -> bool:
            return (coord.topic, coord.partition) not in revoked

        held = [raw for raw in self._held if kept(raw.coord)]
        self._held.clear()
        self._held.extend(held)
        open_batches = self.batcher.drain()
        if self._failed:  # stopping after a failure: the rows not already waiting are never written
            open_batches = []
        batches = [_only(batch, lambda row: kept(row.coord)) for batch in (*self._ready, *open_batches)]
        self._ready.clear()
        self._ready.extend(batch for batch in batches if batch.rows)

    # -------------------------------------------------------------- progress

    def _log_stats(self, final: bool = False) -> None:
        self.report(snapshot(self.clock(), self.counters, self.source.lag()), final)
        self._last_stats = self.clock()


@contextmanager
def _runtime_tuned(writer_thread: bool) -> Iterator[None]:
    """The interpreter's switch interval (with a writer thread) and garbage collector tuned for the
    loop, both process-wide settings: restored when the loop ends."""
    interval, thresholds = sys.getswitchinterval(), gc.get_threshold()
    if writer_thread:
        sys.setswitchinterval(WRITER_SWITCH_INTERVAL_S)
    gc.freeze()
    gc.set_threshold(GC_YOUNG_THRESHOLD, *thresholds[1:])
    try:
        yield
    finally:
        gc.set_threshold(*thresholds)
        gc.unfreeze()
        sys.setswitchinterval(interval)


def _taken(part: Settled) -> int:
    """The rows of a committed part the database took: all but its failed records (refused rows,
    routed as failures), as `sink_records_written_total` counts them."""
    return len(part) if not part.failed else sum(1 for _ in part.coords(failed=False))


def _only(batch: Batch, keep: Callable[[Row], bool]) -> Batch:
    rows = tuple(row for row in batch.rows if keep(row))
    return batch if len(rows) == len(batch.rows) else dataclasses.replace(batch, rows=rows)


def _where(at: RawRecord | Batch | str) -> str:
    if isinstance(at, RawRecord):
        return f"record {at.coord}"
    if isinstance(at, Batch):
        return f"a batch of table {at.table!r} ({_span(at)})"
    return at


def _span(batch: Batch) -> str:
    """The records of a batch, for a message: `topic/partition@first..last` per partition."""
    ranges: dict[tuple[str, int], tuple[int, int]] = {}
    for row in batch.rows:
        c = row.coord
        low, high = ranges.get((c.topic, c.partition), (c.offset, c.offset))
        ranges[(c.topic, c.partition)] = (min(low, c.offset), max(high, c.offset))
    return ", ".join(f"{t}/{p}@{low}..{high}" for (t, p), (low, high) in sorted(ranges.items()))


def _names(partitions: Iterable[TopicPartition]) -> str:
    return ", ".join(f"{t}/{p}" for t, p in sorted(partitions)) or "nothing"


__all__ = ["LoopRules", "Source", "Status", "Worker"]
