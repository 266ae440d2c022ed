"""Is the sink alive, is it ready: the state behind `/livez`, `/readyz` and the health gauges.

Pure core: the worker loop (one thread) tells a `Health` what happens, the HTTP adapter (another
thread) asks it for a verdict. Every update is one attribute assignment, a swap of an immutable
set or of a new dict, so a reader never sees half an update and no lock is needed.

    beat()                 the loop is turning (each poll, also while backing off or waiting)
    assigned(partitions)   the group gave us these partitions (any hashables: (topic, partition))
    revoked(partitions)    ... and took these away
    retrying(since, why)   an outage is being retried since `since` (the clock's time)
    recovered()            the retry ended
    stopping()             shutting down: no longer ready
    committed(offsets)     offsets {(topic, partition): next offset} were committed
    attach(worker)         the worker whose counters /metrics and the status page read

Alive: the loop beat less than `heartbeat_timeout_s` ago (before the first beat it is starting,
and alive: the process answers). Ready: alive, not stopping, at least one partition assigned, and
not retrying for `retry_unready_s` or longer.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Verdict:
    ok: bool
    reason: str

    def as_json(self) -> dict[str, Any]:
        return {"status": "ok" if self.ok else "fail", "reason": self.reason}


class Health:
    def __init__(self, clock: Callable[[], float], heartbeat_timeout_s: float, retry_unready_s: float) -> None:
        self.clock = clock
        self.heartbeat_timeout_s = heartbeat_timeout_s
        self.retry_unready_s = retry_unready_s
        self.started_at = clock()
        self.last_beat: float | None = None
        self.partitions: frozenset[Hashable] = frozenset()
        self.retrying_since: float | None = None
        self.retry_reason = ""
        self.is_stopping = False
        # Running totals for /metrics (each changes on an event, never per record):
        self.retries = 0  # times a retry began (consumption paused for an outage; not a long write)
        self.retry_seconds_total = 0.0  # seconds spent in retries that ended
        self.assignments = 0  # rebalances that gave this member partitions it did not hold
        self.revocations = 0  # rebalances that took partitions away
        self.committed_offsets: dict[Hashable, int] = {}  # last committed (next) offset per partition
        self.watched: Any = None  # the worker (its `counters`, `writer`, `router`, optional `stats`), once known
        # The consumer's lag, asked on the loop's thread (the WatchedSource, at most once a second):
        # another thread must never call the consumer, whose calls wait for a poll in progress.
        self.lag: int | None = None
        self.lag_by_partition: dict[tuple[str, int], int] | None = None

    # -------------------------------------------------------------- updates (the worker's thread)

    def beat(self) -> None:
        self.last_beat = self.clock()

    def assigned(self, partitions: Iterable[Hashable]) -> None:
        given = frozenset(partitions)
        if given - self.partitions:  # told twice of one rebalance (source and worker): counted once
            self.assignments += 1
        self.partitions = self.partitions | given

    def revoked(self, partitions: Iterable[Hashable]) -> None:
        taken = frozenset(partitions)
        if taken & self.partitions:
            self.revocations += 1
        self.partitions = self.partitions - taken
        committed = self.committed_offsets
        if any(tp in committed for tp in taken):
            self.committed_offsets = {tp: o for tp, o in committed.items() if tp not in taken}

    def committed(self, offsets: Mapping[Hashable, int]) -> None:
        self.committed_offsets = {**self.committed_offsets, **offsets}

    def attach(self, worker: Any) -> None:
        """The worker whose running totals the HTTP adapter reads at scrape time."""
        self.watched = worker

    def retrying(self, since: float | None = None, why: str = "an outage") -> None:
        """Enter (or stay in) a retry loop; the earliest `since` is kept."""
        if self.retrying_since is None:
            self.retry_reason = why
            self.retrying_since = self.clock() if since is None else since
            self.retries += 1

    def recovered(self) -> None:
        since = self.retrying_since
        if since is not None:
            self.retry_seconds_total += max(0.0, self.clock() - since)
        self.retrying_since = None
        self.retry_reason = ""

    def stopping(self) -> None:
        self.is_stopping = True

    # -------------------------------------------------------------- verdicts (any thread)

    def liveness(self) -> Verdict:
        last = self.last_beat
        if last is None:
            return Verdict(True, f"starting: no heartbeat from the loop yet ({self._since(self.started_at)})")
        age = self.clock() - last
        if age > self.heartbeat_timeout_s:
            return Verdict(False, f"no heartbeat from the loop for {age:.0f} s (limit {self.heartbeat_timeout_s:g} s)")
        return Verdict(True, f"last heartbeat {age:.1f} s ago")

    def readiness(self) -> Verdict:
        live = self.liveness()
        if not live.ok:
            return live
        if self.is_stopping:
            return Verdict(False, "stopping")
        if not self.partitions:
            return Verdict(False, "no partitions assigned")
        since = self.retrying_since
        if since is not None and self.clock() - since >= self.retry_unready_s:
            return Verdict(False, f"retrying {self.retry_reason} for {self.clock() - since:.0f} s")
        return Verdict(True, f"{len(self.partitions)} partition(s) assigned")

    def gauges(self) -> dict[str, float]:
        """Numbers for /metrics, read at scrape time."""
        now = self.clock()
        last, since = self.last_beat, self.retrying_since
        return {
            "up": 1.0,
            "live": float(self.liveness().ok),
            "ready": float(self.readiness().ok),
            "partitions_assigned": float(len(self.partitions)),
            "heartbeat_age_seconds": now - (self.started_at if last is None else last),
            "retrying": float(since is not None),
            "retry_seconds": 0.0 if since is None else now - since,
        }

    def _since(self, at: float) -> str:
        return f"up {self.clock() - at:.0f} s"


LAG_INTERVAL_S = 1.0  # how often the loop asks the consumer for its lag (per poll, never per record)
PAUSED_LAG_STALE_S = 5.0  # paused this long, the lag from cached watermarks is unknown (absent)


class WatchedSource:
    """A Source that tells `Health` what the loop does with it, so `sink run` has heartbeats and
    assignments without the worker knowing: each poll beats; the rebalance callbacks report the
    partitions; a commit records the offsets; the lag is asked on the loop's thread. Retries are
    the worker's to report (`Worker._retrying`): a pause may also be a long write or the buffer
    bound, which leave the sink ready. The owner of the rebalance callbacks (the
    worker) is attached to `Health` unless one was attached already, so `/metrics` and the status
    page can read its counters. Everything else is passed through unchanged."""

    def __init__(self, source: Any, health: Health, lag_interval_s: float = LAG_INTERVAL_S) -> None:
        self._source = source
        self._health = health
        self._lag_interval_s = lag_interval_s
        self._lag_at: float | None = None
        self._paused_at: float | None = None  # paused partitions are not fetched: their cached end of log ages

    def subscribe(self, on_assign: Callable[..., None], on_revoke: Callable[..., None], *args: Any, **kw: Any) -> Any:
        health = self._health
        owner = getattr(on_assign, "__self__", None)  # the worker, when the callback is its method
        if owner is not None and health.watched is None:
            health.attach(owner)

        def assign(partitions: Any, *more: Any) -> None:
            health.assigned(partitions)
            on_assign(partitions, *more)

        def revoke(partitions: Any, *more: Any) -> None:
            try:
                on_revoke(partitions, *more)
            finally:
                health.revoked(partitions)

        return self._source.subscribe(assign, revoke, *args, **kw)

    def poll(self, *args: Any, **kw: Any) -> Any:
        self._health.beat()
        records = self._source.poll(*args, **kw)
        self._health.beat()
        now = self._health.last_beat
        if self._lag_at is None or (now is not None and now - self._lag_at >= self._lag_interval_s):
            self._lag_at = now
            self._read_lag()
        return records

    def _read_lag(self) -> None:
        """The consumer's lag (total, and per partition when the source can tell), for /metrics."""
        health = self._health
        paused_at = self._paused_at
        if paused_at is not None and health.clock() - paused_at >= PAUSED_LAG_STALE_S:
            # The end of the log is known from fetches only, and a paused partition is not fetched:
            # past a short pause (a long write) the lag is unknown, not the frozen value of before it.
            health.lag = health.lag_by_partition = None
            return
        health.lag = _ask(self._source, "lag")
        health.lag_by_partition = _ask(self._source, "lag_by_partition")

    def commit(self, offsets: Mapping[Any, int], *args: Any, **kw: Any) -> bool:
        committed = bool(self._source.commit(offsets, *args, **kw))
        if committed:
            self._health.committed(offsets)
        return committed

    def pause(self) -> None:
        self._source.pause()
        if self._paused_at is None:
            self._paused_at = self._health.clock()

    def resume(self) -> None:
        self._source.resume()
        self._paused_at = None
        self._lag_at = None  # read again at the next poll

    def lag(self) -> int | None:
        lag: int | None = self._source.lag()
        return lag

    def close(self) -> None:
        self._source.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._source, name)


def _ask(source: Any, method: str) -> Any:
    """`source.<method>()`, or None when the source has no such method or it fails."""
    call = getattr(source, method, None)
    if not callable(call):
        return None
    try:
        return call()
    except Exception:  # the lag is a number for people: never a reason to stop
        return None
