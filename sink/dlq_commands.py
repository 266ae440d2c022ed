"""`sink dlq inspect` and `sink dlq redrive` over two ports: a reader of the dead-letter topic
(assigned partitions, never the sink's group) that also keeps the re-drive cursor in a progress
group, and a publisher that sends records back and says which were acknowledged.

Re-drive is exactly-once per progress group as long as the command stops by itself or on
SIGINT/SIGTERM (it finishes the batch in flight: produced, acknowledged, cursor committed). A
SIGKILL between the acknowledgement and the commit of a batch sends that batch again on the next
run (the count header then says 2): Kafka offers no atomic "produce + commit another group's
offset" without transactions.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from . import dlq
from .errors import FatalError, ResetRefused
from .model import RawRecord
from .reset import parse_topic

BATCH = 500


class DlqRefused(FatalError):
    """The request cannot be carried out: a bad option, a topic that does not exist. Exit 2."""

    exit_code = 2


class DeadLetterReader(Protocol):
    """Reads with assigned partitions; `committed`/`commit` are the progress group's cursor."""

    def topics(self) -> dict[str, tuple[int, ...]]: ...
    def committed(self, topic: str, partitions: Sequence[int]) -> dict[int, int | None]: ...
    def read(self, topic: str, start: Mapping[int, int | None], stop: Callable[[], bool]) -> Iterator[RawRecord]: ...
    def end(self) -> str: ...  # how the last read decided it had reached the end
    def commit(self, topic: str, offsets: Mapping[int, int]) -> None: ...


Outgoing = tuple[str, int | None, bytes | None, bytes | None, dlq.Headers]  # topic, partition, key, value, headers


class Republisher(Protocol):
    def send(self, records: Sequence[Outgoing]) -> list[Exception | None]:
        """Produce all, wait until each is acknowledged or failed; one result per record, in order."""
        ...


# ------------------------------------------------------------------------------ arguments


def add_arguments(parser: argparse.ArgumentParser, redrive: bool) -> None:
    parser.add_argument("--topic", metavar="TOPIC[:P,P]", help="only records from this source topic (partitions)")
    parser.add_argument("--error-class", metavar="CLASS", help="only this exception class (full or last part)")
    parser.add_argument("--from-offset", type=int, metavar="N", help="only source offsets >= N (needs --topic)")
    parser.add_argument("--to-offset", type=int, metavar="M", help="only source offsets <= M (needs --topic)")
    parser.add_argument(
        "--idle-ms", type=int, default=5000, metavar="MS", help="the end of the topic after MS without a record"
    )
    if redrive:
        parser.add_argument("--limit", type=int, metavar="N", help="re-drive at most N records this run")
        parser.add_argument(
            "--batch-size", type=int, default=BATCH, metavar="N", help=f"records per send-and-commit (default {BATCH})"
        )
        parser.add_argument("--group", help="progress group (default: <the sink's group>.redrive)")
        parser.add_argument("--execute", action="store_true", help="send the records (default: dry run)")
    else:
        parser.add_argument("--limit", type=int, default=100, metavar="N", help="records listed (default 100)")
        parser.add_argument("--json", action="store_true", help="one JSON document instead of the tables")


def selection(args: argparse.Namespace) -> dlq.Selection:
    try:
        topic, partitions = parse_topic(args.topic) if args.topic else (None, None)
    except ResetRefused as exc:
        raise DlqRefused(str(exc)) from None
    chosen = dlq.Selection(topic, partitions, args.error_class, args.from_offset, args.to_offset)
    problem = chosen.problem()
    if problem:
        raise DlqRefused(problem)
    if args.limit is not None and args.limit < 0:
        raise DlqRefused("--limit: 0 or more")
    if getattr(args, "batch_size", 1) < 1:
        raise DlqRefused("--batch-size: 1 or more")
    if args.idle_ms < 100:
        raise DlqRefused("--idle-ms: at least 100")
    return chosen


def _partitions(reader: DeadLetterReader, topic: str) -> tuple[dict[str, tuple[int, ...]], tuple[int, ...]]:
    topics = reader.topics()
    if topic not in topics:
        raise DlqRefused(f"dead-letter topic {topic!r} (SINK_ERRORS_DEADLETTERQUEUE_TOPIC_NAME) does not exist")
    return topics, topics[topic]


# ------------------------------------------------------------------------------ inspect


def inspect(
    topic: str,
    reader: DeadLetterReader,
    chosen: dlq.Selection,
    limit: int,
    as_json: bool,
    out: Callable[[str], None],
    stop: Callable[[], bool] = lambda: False,
) -> int:
    _topics, partitions = _partitions(reader, topic)
    summary = dlq.Summary(limit)
    for raw in reader.read(topic, dict.fromkeys(partitions), stop):
        letter = dlq.parse(raw)
        if chosen.matches(letter):
            summary.add(letter)
    end = "interrupted" if stop() else reader.end()
    out(dlq.inspect_json(topic, summary, end) if as_json else dlq.format_inspect(topic, summary, end))
    return 0


# ------------------------------------------------------------------------------ redrive


@dataclass
class _Tally:
    selected: int = 0
    sent: int = 0
    unredrivable: int = 0
    passed_over: int = 0  # not selected, before the cursor: this progress group will not offer them again
    failed: str | None = None


def redrive(
    topic: str,
    group: str,
    reader: DeadLetterReader,
    publisher: Republisher | None,
    chosen: dlq.Selection,
    limit: int | None,
    out: Callable[[str], None],
    stop: Callable[[], bool] = lambda: False,
    batch_size: int = BATCH,
) -> int:
    """Dry run without a publisher; with one, send in batches and commit the cursor after each."""
    topics, partitions = _partitions(reader, topic)
    start = reader.committed(topic, partitions)
    tally, rows, batch = _Tally(), [], []
    unselected: dict[int, list[int]] = {}  # DLQ partition -> offsets read but not selected
    for raw in reader.read(topic, start, stop):
        letter = dlq.parse(raw)
        if not chosen.matches(letter):
            unselected.setdefault(letter.at.partition, []).append(letter.at.offset)
            continue
        if not letter.redrivable:
            tally.unredrivable += 1
            continue
        if limit is not None and tally.selected >= limit:
            break
        tally.selected += 1
        rows.append(_row(letter))
        batch.append(letter)
        if publisher is not None and len(batch) >= batch_size:
            if not _send(batch, topics, topic, reader, publisher, tally, unselected):
                break
            batch = []
    if publisher is not None and batch and tally.failed is None:
        _send(batch, topics, topic, reader, publisher, tally, unselected)
    if rows:
        out(dlq.table(("DLQ", "TOPIC", "PARTITION", "OFFSET", "EXCEPTION", "REDRIVE-COUNT"), rows))
    return _report(topic, group, publisher is not None, tally, stop(), out)


def _row(letter: dlq.DeadLetter) -> tuple[str, ...]:
    assert letter.source is not None
    source = letter.source
    return (
        f"{letter.at.partition}:{letter.at.offset}",
        source.topic,
        str(source.partition),
        str(source.offset),
        letter.short_class or "-",
        str(letter.redrive_count + 1),
    )


def _send(
    batch: list[dlq.DeadLetter],
    topics: Mapping[str, Sequence[int]],
    dlq_topic: str,
    reader: DeadLetterReader,
    publisher: Republisher,
    tally: _Tally,
    unselected: dict[int, list[int]],
) -> bool:
    """Send a batch; commit, per DLQ partition, past the records acknowledged before its first
    failure (an acknowledged record after a failure is sent again next run rather than lost)."""
    outgoing = [
        (*dlq.redrive_target(letter, topics), letter.key, letter.value, dlq.redrive_headers(letter)) for letter in batch
    ]
    results = publisher.send(outgoing)
    failed_partitions: set[int] = set()
    acknowledged = []
    for letter, error in zip(batch, results, strict=True):
        if error is not None:
            failed_partitions.add(letter.at.partition)
            tally.failed = tally.failed or f"{letter.source}: {error}"
        elif letter.at.partition not in failed_partitions:
            acknowledged.append(letter)
    moves = dlq.cursor_moves(acknowledged)
    if moves:
        reader.commit(dlq_topic, moves)
    tally.sent += len(acknowledged)
    for partition, cursor in moves.items():
        offsets = unselected.get(partition, [])
        tally.passed_over += sum(1 for o in offsets if o < cursor)
        unselected[partition] = [o for o in offsets if o >= cursor]
    return tally.failed is None


def _report(topic: str, group: str, execute: bool, tally: _Tally, interrupted: bool, out: Callable[[str], None]) -> int:
    note = f"; {tally.unredrivable} selected record(s) cannot be re-driven (truncated or without context headers)"
    note = note if tally.unredrivable else ""
    if not execute:
        out(
            f"dry run: {tally.selected} record(s) of {topic} would be re-driven{note}; nothing sent, "
            f"group {group} not changed; add --execute to send them"
        )
        return 0
    out(f"re-driven {tally.sent} record(s) of {topic}; progress committed in group {group}{note}")
    if tally.passed_over:
        out(
            f"passed over {tally.passed_over} record(s) not selected that lie before re-driven ones: "
            f"group {group} will not offer them again (another --group, or reset-offsets on it, will)"
        )
    if tally.failed:
        out(f"stopped: a record was not acknowledged ({tally.failed}); run again to retry")
        return 1
    if interrupted:
        out("interrupted: the batch in flight was finished; run again to continue")
        return 1
    return 0
