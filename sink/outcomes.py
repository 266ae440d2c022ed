"""Where each outcome goes: settle it, report it, dead-letter it, or stop (the flood limit is
`flood.py`).

A record is settled when its transaction committed (WRITTEN/DELETED/SKIPPED) or when the
dead-letter producer acknowledged it; only then may its offset be committed. Record errors follow
`errors.tolerance`: `none` stops at the record, `all` dead-letters it (or logs it when no topic is
set). A flood limit turns "every record is bad" into a stop instead of a silent drain.

Logs, dead-letter headers and reports never carry record values (nor database messages, which
may quote them) unless `errors.log.include.messages` asks for them: they say the value-free
`safe_reason`. A record too large for the dead-letter topic is dead-lettered without its key,
value and headers (`deadletter.truncated`), never a stop.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass

from . import deadletter, report
from .errors import ConfigError, DeadLetterUnavailable, FatalError, RecordError, RecordStop
from .flood import FloodLimit
from .logs import fields
from .metrics import Counters, Stats
from .model import Coord, Outcome, RawRecord, Settled, Status, Tolerance, WrittenRows
from .offsets import OffsetTracker
from .ports import MessageTooLarge, Publisher

log = logging.getLogger("sink.errors")


@dataclass(frozen=True, slots=True)
class RoutingRules:
    connector_name: str = "sink"
    tolerance: Tolerance = "none"
    dlq_topic: str | None = None
    dlq_context_headers: bool = False
    max_ratio: float = 1.0  # a bad share above this over the last `ratio_window` records stops the worker
    ratio_window: int = 1000
    max_consecutive: int = 0  # 0: no limit
    log_errors: bool = False
    log_messages: bool = False  # errors.log.include.messages: values and full reasons in logs, DLQ headers, reports
    result_topic: str | None = None
    error_topic: str | None = None


class OutcomeRouter:
    """Settles, counts, reports and dead-letters outcomes. It holds the offsets tracker and the
    running totals it keeps (the worker reads them from here: one owner)."""

    def __init__(
        self,
        rules: RoutingRules,
        publisher: Publisher | None,
        tracker: OffsetTracker | None = None,
        counters: Counters | None = None,
    ) -> None:
        needs_publisher = rules.dlq_topic or rules.result_topic or rules.error_topic
        if needs_publisher and publisher is None:
            raise ValueError("a publisher is needed for dead-letter or report topics")
        self.rules = rules
        self.publisher = publisher
        self.tracker = OffsetTracker() if tracker is None else tracker
        self.counters = Counters() if counters is None else counters
        self.flood = FloodLimit(rules.max_ratio, rules.ratio_window, rules.max_consecutive)
        self._broken: FatalError | None = None
        self.stats = Stats()  # failures by reason and reports, for /metrics and the status page

    # -------------------------------------------------------------- outcomes

    def accepted(self, raw: RawRecord) -> None:
        """A record became a row for a batch: good so far, as far as the flood limit goes."""
        self.flood.good(raw.coord)

    def accepted_all(self, coords: Iterable[Coord]) -> None:
        """`accepted` for each record of `coords`, in order."""
        self.flood.good_all(coords)

    def record_failed(self, raw: RawRecord, error: RecordError) -> None:
        self.settled([Outcome(raw, Status.FAILED, None, None, None, error.stage, error)])

    def settled(self, outcomes: Iterable[Outcome]) -> None:
        """Route every outcome. A failure that stops the sink (tolerance none, the flood limit) is
        raised once the others are settled: their rows are committed, so their offsets must move."""
        self._raise_if_broken()
        stop: FatalError | None = None
        per_record = self._per_record_needs()
        good: list[Coord] = []  # neither a ratio window nor a result topic: counted and settled together
        written = deleted = 0
        # Rows written whole (`WrittenRows`) need no Outcome made, unless each is routed on its own.
        groups = outcomes.groups if isinstance(outcomes, Settled) and not per_record else (outcomes,)
        try:
            for group in groups:
                if isinstance(group, WrittenRows):
                    written += len(group)
                    self.flood.consecutive = 0
                    good += group.coords()
                    continue
                for outcome in group:
                    status = outcome.status
                    if status is Status.FAILED:
                        try:
                            self._failed(outcome)
                        except FatalError as exc:
                            stop = stop or exc
                    elif per_record:
                        self._succeeded(outcome)
                    else:
                        if status is Status.WRITTEN:
                            written += 1
                        elif status is Status.DELETED:
                            deleted += 1
                        self.flood.consecutive = 0
                        good.append(outcome.raw.coord)
        finally:  # whatever stops the routing (the dead-letter topic away), what committed is settled
            if good:
                self.counters.rows_written += written
                self.counters.rows_deleted += deleted
                self.tracker.settle_all(good)
        if stop is not None:
            raise stop

    def _per_record_needs(self) -> bool:
        """Whether a good outcome needs more than its count and its offset settled."""
        return self.rules.max_ratio < 1.0 or bool(self.rules.result_topic and self.publisher is not None)

    def _succeeded(self, outcome: Outcome) -> None:
        self.flood.good(outcome.coord)
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
            raise RecordStop(outcome.coord, error, self._reason(error))
        if outcome.coord.topic == self.rules.dlq_topic:  # as Connect refuses it: it would loop for ever
            raise ConfigError(
                f"SINK_ERRORS_DEADLETTERQUEUE_TOPIC_NAME: {outcome.coord.topic!r} is also consumed by the sink "
                f"(SINK_TOPICS/SINK_TOPICS_REGEX): record {outcome.coord} would be dead-lettered into the topic it "
                "was read from, again and again"
            )
        self.flood.bad(outcome.coord)
        if self.rules.dlq_topic:
            self._log(outcome.raw, error, always=False)
            self._dead_letter(outcome, error)
        else:
            self._log(outcome.raw, error, always=True)  # no dead-letter topic: the log is the only trace
            self.counters.failed += 1
            self._note_failure(outcome, error, dead_lettered=False)
            self.tracker.settle(outcome.coord)
            self._report(self.rules.error_topic, outcome)

    def _note_failure(self, outcome: Outcome, error: RecordError, dead_lettered: bool) -> None:
        """Counted by reason for /metrics and the page (value-free unless messages may be logged)."""
        c = outcome.coord
        reason, name = self._reason(error), type(error).__name__
        self.stats.observe_failure(
            c.topic, c.partition, c.offset, error.stage.value, name, reason, dead_lettered, time.time()
        )

    def _dead_letter(self, outcome: Outcome, error: RecordError) -> None:
        env = deadletter.envelope(
            outcome.raw,
            error,
            connector=self.rules.connector_name,
            with_context=self.rules.dlq_context_headers,
            include_messages=self.rules.log_messages,
        )
        self._publish_dead_letter(outcome, error, env, truncated=False)
        self._report(self.rules.error_topic, outcome._replace(status=Status.DEAD_LETTERED))

    def _publish_dead_letter(
        self, outcome: Outcome, error: RecordError, env: deadletter.Envelope, truncated: bool
    ) -> None:
        assert self.publisher is not None and self.rules.dlq_topic
        topic = self.rules.dlq_topic

        def acknowledged(failure: Exception | None) -> None:
            if isinstance(failure, MessageTooLarge) and not truncated:
                self._dead_letter_truncated(outcome, error, failure)
                return
            if failure is not None:
                message = f"dead-letter topic {topic!r} did not take {outcome.coord}: {failure}"
                self._break(DeadLetterUnavailable(message))
                return
            self.counters.dead_lettered += 1
            self._note_failure(outcome, error, dead_lettered=True)
            self.tracker.settle(outcome.coord)

        self.publisher.publish(topic, env.key, env.value, env.headers, env.timestamp, acknowledged)

    def _dead_letter_truncated(self, outcome: Outcome, error: RecordError, failure: Exception) -> None:
        log.warning(
            "record %s is too large for the dead-letter topic (%s): dead-lettered without its key, value "
            "and headers (header %s gives their sizes); re-read it from its topic at that offset",
            outcome.coord,
            failure,
            deadletter.TRUNCATED,
            extra=fields(outcome, error=error),
        )
        env = deadletter.truncated(
            outcome.raw, error, connector=self.rules.connector_name, include_messages=self.rules.log_messages
        )
        self._publish_dead_letter(outcome, error, env, truncated=True)

    # -------------------------------------------------------------- reports

    def _report(self, topic: str | None, outcome: Outcome) -> None:
        if not topic or self.publisher is None:
            return

        def acknowledged(failure: Exception | None) -> None:
            if failure is not None:
                message = f"report topic {topic!r} did not take the report on {outcome.coord}: {failure}"
                self._break(DeadLetterUnavailable(message))
            else:
                self.stats.reported()

        self.publisher.publish(
            topic,
            outcome.raw.key,
            report.body(outcome, self.rules.log_messages),
            report.headers(outcome),
            outcome.raw.timestamp,
            acknowledged,
        )

    def flush(self) -> None:
        """Wait for every dead-letter record and report to be acknowledged (before a commit)."""
        if self.publisher is not None:
            self.publisher.flush()
        self._raise_if_broken()

    def _break(self, error: FatalError) -> None:
        if self._broken is None:  # the first failure is the one to report
            self._broken = error

    def _raise_if_broken(self) -> None:
        if self._broken is not None:
            raise self._broken

    # -------------------------------------------------------------- logging

    def _log(self, raw: RawRecord, error: RecordError, always: bool) -> None:
        if not (self.rules.log_errors or always):
            return
        stage = error.stage.value
        if self.rules.log_messages:
            log.warning(
                "record %s failed at %s: %s; key=%r value=%r",
                raw.coord,
                stage,
                self._reason(error),
                raw.key,
                raw.value,
                extra=fields(raw, error=error),
            )
        else:
            log.warning(
                "record %s failed at %s: %s", raw.coord, stage, self._reason(error), extra=fields(raw, error=error)
            )

    def _reason(self, error: RecordError) -> str:
        """What a log line may say: the full reason only when values may be logged."""
        return deadletter.exception_message(error) if self.rules.log_messages else error.safe_reason
