"""Where each outcome goes: settle it, report it, dead-letter it, or stop.

A record is settled when its transaction committed (WRITTEN/DELETED/SKIPPED) or when the
dead-letter producer acknowledged it; only then may its offset be committed. Record errors follow
`errors.tolerance`: `none` stops at the record, `all` dead-letters it (or logs it when no topic is
set). A flood limit turns "every record is bad" into a stop instead of a silent drain.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Protocol

from . import deadletter, report
from .errors import DeadLetterUnavailable, FatalError, RecordError, RecordStop
from .model import Counters, Outcome, RawRecord, Stage, Status
from .offsets import OffsetTracker

log = logging.getLogger("sink.errors")

Headers = list[tuple[str, bytes | None]]


class Publisher(Protocol):
    """An idempotent producer with acks=all. `on_done(None)` means acknowledged."""

    def publish(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        headers: Headers,
        timestamp: int | None,
        on_done: Callable[[Exception | None], None],
    ) -> None: ...

    def flush(self) -> None: ...


@dataclass(frozen=True, slots=True)
class RoutingRules:
    connector_name: str = "sink"
    tolerance: str = "none"
    dlq_topic: str | None = None
    dlq_context_headers: bool = False
    max_ratio: float = 1.0  # dead-lettered share of the last `ratio_window` records that stops the worker
    ratio_window: int = 1000
    max_consecutive: int = 0  # 0: no limit
    log_errors: bool = False
    log_messages: bool = False
    result_topic: str | None = None
    error_topic: str | None = None


class OutcomeRouter:
    def __init__(self, rules: RoutingRules, publisher: Publisher | None) -> None:
        needs_publisher = rules.dlq_topic or rules.result_topic or rules.error_topic
        if needs_publisher and publisher is None:
            raise ValueError("a publisher is needed for dead-letter or report topics")
        self.rules = rules
        self.publisher = publisher
        self.tracker = OffsetTracker()
        self.counters = Counters()
        self._recent: deque[bool] = deque(maxlen=rules.ratio_window)
        self._consecutive = 0
        self._broken: FatalError | None = None

    def bind(self, tracker: OffsetTracker, counters: Counters) -> None:
        self.tracker, self.counters = tracker, counters

    # -------------------------------------------------------------- outcomes

    def record_failed(self, raw: RawRecord, error: RecordError) -> None:
        self.settled([Outcome(raw, Status.FAILED, None, None, None, error.stage, error)])

    def settled(self, outcomes: Iterable[Outcome]) -> None:
        for outcome in outcomes:
            if outcome.status is Status.FAILED:
                self._failed(outcome)
            else:
                self._succeeded(outcome)

    def _succeeded(self, outcome: Outcome) -> None:
        self._count_health(bad=False)
        if outcome.status is Status.WRITTEN:
            self.counters.rows_written += 1
        elif outcome.status is Status.DELETED:
            self.counters.rows_deleted += 1
        self.tracker.settle(outcome.coord)
        self._report(self.rules.result_topic, outcome)

    def _failed(self, outcome: Outcome) -> None:
        error = outcome.error
        assert isinstance(error, RecordError)
        if self.rules.tolerance == "none":
            raise RecordStop(outcome.coord, error)
        self._count_health(bad=True)
        self._log(outcome.raw, error)
        if self.rules.dlq_topic:
            self._dead_letter(outcome, error)
        else:
            self.counters.failed += 1
            self.tracker.settle(outcome.coord)
            self._report(self.rules.error_topic, outcome)

    def _dead_letter(self, outcome: Outcome, error: RecordError) -> None:
        assert self.publisher is not None and self.rules.dlq_topic
        env = deadletter.envelope(
            outcome.raw,
            error,
            connector=self.rules.connector_name,
            with_context=self.rules.dlq_context_headers,
        )

        def acknowledged(failure: Exception | None) -> None:
            if failure is not None:
                self._broken = DeadLetterUnavailable(
                    f"dead-letter topic {self.rules.dlq_topic!r} did not take {outcome.coord}: {failure}"
                )
                return
            self.counters.dead_lettered += 1
            self.tracker.settle(outcome.coord)

        self.publisher.publish(self.rules.dlq_topic, env.key, env.value, env.headers, env.timestamp, acknowledged)
        self._report(self.rules.error_topic, outcome)

    # -------------------------------------------------------------- reports

    def _report(self, topic: str | None, outcome: Outcome) -> None:
        if not topic or self.publisher is None:
            return

        def acknowledged(failure: Exception | None) -> None:
            if failure is not None:
                self._broken = DeadLetterUnavailable(f"report topic {topic!r} did not take a report: {failure}")

        self.publisher.publish(
            topic,
            outcome.raw.key,
            report.body(outcome),
            report.headers(outcome),
            outcome.raw.timestamp,
            acknowledged,
        )

    def flush(self) -> None:
        """Wait for every dead-letter record and report to be acknowledged (before a commit)."""
        if self.publisher is not None:
            self.publisher.flush()
        if self._broken is not None:
            raise self._broken

    # -------------------------------------------------------------- health

    def _count_health(self, bad: bool) -> None:
        self._consecutive = self._consecutive + 1 if bad else 0
        self._recent.append(bad)
        if not bad:
            return
        limit = self.rules.max_consecutive
        if limit and self._consecutive >= limit:
            raise FatalError(
                f"{self._consecutive} bad records in a row (SINK_ERRORS_DEADLETTERQUEUE_MAX_CONSECUTIVE={limit}); "
                "stopping instead of draining the topic into the dead-letter queue"
            )
        window = self._recent
        if len(window) == window.maxlen and self.rules.max_ratio < 1.0:
            ratio = sum(window) / len(window)
            if ratio > self.rules.max_ratio:
                raise FatalError(
                    f"{ratio:.0%} of the last {len(window)} records failed "
                    f"(SINK_ERRORS_DEADLETTERQUEUE_MAX_RATIO={self.rules.max_ratio}); stopping instead of draining"
                )

    def _log(self, raw: RawRecord, error: RecordError) -> None:
        if not self.rules.log_errors:
            return
        stage = error.stage.value if isinstance(error.stage, Stage) else error.stage
        if self.rules.log_messages:
            log.warning("record %s failed at %s: %s; key=%r value=%r", raw.coord, stage, error, raw.key, raw.value)
        else:
            log.warning("record %s failed at %s: %s", raw.coord, stage, error)
