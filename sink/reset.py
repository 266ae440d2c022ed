"""`sink reset-offsets`: move the sink's consumer group, in the words of
`kafka-consumer-groups --reset-offsets`.

Pure: this module parses the scope (`--topic t[:0,1]`, `--all-topics`), the spec (`--to-earliest`,
`--to-offset N`, `--shift-by N`, `--to-datetime`, `--by-duration`, `--from-file` ...), computes the
new offsets from the committed, earliest and latest ones, clamps them into [earliest, latest] and
prints the table. The broker is reached only through an `OffsetsPort`
(`sink.adapters.offsets_admin.OffsetsAdmin` in production, a fake in the unit tests).

    plan:    scope + topic metadata  -> partitions
             group state             -> refuse while the group has members
             committed/earliest/latest/offsets-for-time + spec -> [Row(tp, current, new)]
    execute: alter the group's committed offsets (only with --execute; a dry run changes nothing)

Under exactly-once the sink starts from the offsets table in the target database, not from the
group: a `PositionsPort` (`sink.adapters.db.SqlOffsets`) shows the table's positions beside the
group's, `--shift-by`/`--to-current` start from the table's position where it has one, and
`--execute` writes the new positions into the table first (one transaction, each partition's epoch
bumped, which fences a worker still writing), then moves the group as without exactly-once.
"""

from __future__ import annotations

import argparse
import re
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import FrameType
from typing import Protocol

from .errors import ConfigError, FatalError, ResetRefused, SinkError
from .ports import TopicPartition

SPECS = ("to_earliest", "to_latest", "to_offset", "shift_by", "to_datetime", "by_duration", "to_current", "from_file")
INACTIVE_STATES = ("EMPTY", "DEAD")


@dataclass(frozen=True)
class GroupState:
    state: str  # ConsumerGroupState name: EMPTY, DEAD, STABLE, PREPARING_REBALANCE, ...
    members: int


class OffsetsPort(Protocol):
    def topics(self) -> dict[str, tuple[int, ...]]: ...
    def group_state(self, group: str) -> GroupState: ...
    def committed(self, group: str, partitions: Sequence[TopicPartition]) -> dict[TopicPartition, int | None]: ...
    def earliest(self, partitions: Sequence[TopicPartition]) -> dict[TopicPartition, int]: ...
    def latest(self, partitions: Sequence[TopicPartition]) -> dict[TopicPartition, int]: ...
    def offsets_for_time(
        self, partitions: Sequence[TopicPartition], timestamp_ms: int
    ) -> dict[TopicPartition, int | None]: ...
    def alter(self, group: str, offsets: Mapping[TopicPartition, int]) -> None: ...


class PositionsPort(Protocol):
    """Exactly-once: the group's rows in the offsets table of the target database."""

    def positions(self, partitions: Sequence[TopicPartition]) -> dict[TopicPartition, int | None]:
        """The next offset the table holds per partition (None: no row, or no position yet);
        changes nothing (no table is created)."""
        ...

    def reset(self, offsets: Mapping[TopicPartition, int]) -> None:
        """One transaction: each partition's next offset set (its row created when missing) and
        its epoch bumped, so a worker that still holds the partition is refused its next write."""
        ...


@dataclass(frozen=True)
class Spec:
    kind: str  # one of SPECS
    offset: int | None = None  # to_offset, shift_by
    timestamp_ms: int | None = None  # to_datetime, by_duration (resolved against "now")
    plan: Mapping[TopicPartition, int] | None = None  # from_file


@dataclass(frozen=True)
class Request:
    group: str
    topics: tuple[tuple[str, tuple[int, ...] | None], ...]  # --topic: (name, partitions or None = all)
    all_topics: bool
    spec: Spec
    execute: bool
    export: bool = False  # the plan as CSV on stdout (kafka-consumer-groups --export), the notice on stderr


@dataclass(frozen=True)
class Row:
    tp: TopicPartition
    current: int | None
    new: int | None  # None: left as it is (--to-current without a committed offset)
    table: int | None = None  # exactly-once: the position in the offsets table (None: none there)


# ------------------------------------------------------------------------------ arguments


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The reset-offsets options, beside `--env-file` (added by the caller like for `run`)."""
    parser.add_argument("--group", help="consumer group (default: the sink's, SINK_GROUP_ID or sink-<SINK_NAME>)")
    scope = parser.add_mutually_exclusive_group()
    scope.add_argument("--topic", action="append", metavar="TOPIC[:P,P]", help="topic, or some of its partitions")
    scope.add_argument("--all-topics", action="store_true", help="the sink's SINK_TOPICS (or SINK_TOPICS_REGEX)")
    spec = parser.add_mutually_exclusive_group(required=True)
    spec.add_argument("--to-earliest", action="store_true", help="the first offset still in the log")
    spec.add_argument("--to-latest", action="store_true", help="the end of the log (skip everything there)")
    spec.add_argument("--to-offset", type=int, metavar="N", help="offset N (clamped to the log)")
    spec.add_argument("--shift-by", type=int, metavar="N", help="committed offset + N (N may be negative)")
    spec.add_argument("--to-datetime", metavar="ISO", help="first record at or after 2026-11-25T10:00:00.000 (UTC)")
    spec.add_argument("--by-duration", metavar="PnDTnHnMnS", help="first record at or after now minus the duration")
    spec.add_argument("--to-current", action="store_true", help="the committed offset (clamped to the log)")
    spec.add_argument("--from-file", metavar="CSV", help="lines topic,partition,offset")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--dry-run", action="store_true", help="show the new offsets, change nothing (default)")
    mode.add_argument("--execute", action="store_true", help="apply the new offsets")
    parser.add_argument(
        "--export", action="store_true", help="print the plan as CSV lines topic,partition,offset (for --from-file)"
    )


def build_request(args: argparse.Namespace, default_group: str, now_ms: int) -> Request:
    """Turn parsed arguments into a Request; every problem is one ResetRefused line."""
    kind = next(name for name in SPECS if getattr(args, name) not in (None, False))
    value = getattr(args, kind)
    spec = Spec(kind)
    if kind == "to_offset":
        if value < 0:
            raise ResetRefused(f"--to-offset: must be 0 or more (got {value})")
        spec = Spec(kind, offset=value)
    elif kind == "shift_by":
        spec = Spec(kind, offset=value)
    elif kind == "to_datetime":
        spec = Spec(kind, timestamp_ms=parse_datetime(value))
    elif kind == "by_duration":
        spec = Spec(kind, timestamp_ms=now_ms - parse_duration(value))
    elif kind == "from_file":
        try:
            text = Path(value).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ResetRefused(f"--from-file: cannot read {value}: {getattr(exc, 'strerror', None) or exc}") from None
        spec = Spec(kind, plan=parse_plan(text))
    topics = tuple(parse_topic(arg) for arg in args.topic or ())
    if kind == "from_file" and (topics or args.all_topics):
        raise ResetRefused("--from-file names its own partitions: drop --topic/--all-topics")
    if kind != "from_file" and not topics and not args.all_topics:
        raise ResetRefused("say which partitions: --topic TOPIC[:P,P] (repeatable) or --all-topics")
    return Request(
        args.group or default_group, topics, args.all_topics, spec, bool(args.execute), bool(getattr(args, "export", 0))
    )


def parse_topic(arg: str) -> tuple[str, tuple[int, ...] | None]:
    """`orders` -> ("orders", None); `orders:0,2` -> ("orders", (0, 2))."""
    name, sep, numbers = arg.partition(":")
    if not name:
        raise ResetRefused(f"--topic {arg!r}: no topic name")
    if not sep:
        return name, None
    try:
        partitions = tuple(sorted({int(n) for n in numbers.split(",")}))
    except ValueError:
        raise ResetRefused(f"--topic {arg!r}: partitions are comma-separated numbers, e.g. {name}:0,1") from None
    if any(p < 0 for p in partitions):
        raise ResetRefused(f"--topic {arg!r}: partitions are 0 or more")
    return name, partitions


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def parse_datetime(text: str) -> int:
    """ISO 8601 date-time -> ms since the epoch; without a zone it is UTC (as Kafka's Utils.getDateTime)."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ResetRefused(f"--to-datetime {text!r}: not an ISO date-time, e.g. 2026-11-25T10:00:00.000") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return -((_EPOCH - moment) // timedelta(milliseconds=1))  # exact (no float), rounded up: at or after


_DURATION = re.compile(
    r"P(?:(?P<d>\d+)D)?(?:T(?:(?P<h>\d+)H)?(?:(?P<m>\d+)M)?(?:(?P<s>\d+(?:[.,]\d{1,9})?)S)?)?", re.IGNORECASE
)


def parse_duration(text: str) -> int:
    """ISO 8601 duration `PnDTnHnMn.nS` (java.time.Duration's form, no sign) -> milliseconds."""
    match = _DURATION.fullmatch(text.strip())
    if not match or not any(match.groupdict().values()) or text.strip().upper().endswith("T"):
        raise ResetRefused(f"--by-duration {text!r}: not an ISO 8601 duration like P1DT2H30M or PT15M")
    days, hours, minutes = (int(match[k] or 0) for k in "dhm")
    seconds = float((match["s"] or "0").replace(",", "."))
    return round((((days * 24 + hours) * 60 + minutes) * 60 + seconds) * 1000)


def parse_plan(text: str) -> dict[TopicPartition, int]:
    """CSV `topic,partition,offset` per line (blank lines and # comments ignored)."""
    plan: dict[TopicPartition, int] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        cells = [cell.strip() for cell in line.split(",")]
        try:
            topic, partition, offset = cells[0], int(cells[1]), int(cells[2])
            if len(cells) != 3 or not topic or partition < 0 or offset < 0:
                raise ValueError
        except (ValueError, IndexError):
            raise ResetRefused(f"--from-file line {number}: expected topic,partition,offset (got {line!r})") from None
        if (topic, partition) in plan:
            raise ResetRefused(f"--from-file line {number}: {topic}:{partition} appears twice")
        plan[(topic, partition)] = offset
    if not plan:
        raise ResetRefused("--from-file: no topic,partition,offset line")
    return plan


# ------------------------------------------------------------------------------ planning


def select_partitions(
    request: Request, sink_topics: Sequence[str], sink_regex: str | None, available: Mapping[str, Iterable[int]]
) -> list[TopicPartition]:
    """The partitions the request names, checked against the broker's metadata."""
    if request.spec.plan is not None:
        wanted: dict[str, set[int] | None] = {}
        for topic, partition in request.spec.plan:
            wanted.setdefault(topic, set()).add(partition)  # type: ignore[union-attr]
    elif request.all_topics:
        if sink_topics:
            names = list(sink_topics)
        else:
            assert sink_regex is not None
            names = sorted(t for t in available if re.match(sink_regex, t) and not t.startswith("__"))
            if not names:
                raise ResetRefused(f"SINK_TOPICS_REGEX {sink_regex!r} matches no topic on the broker")
        wanted = dict.fromkeys(names)
    else:
        wanted = {}
        for topic, partitions in request.topics:
            if partitions is None or (topic in wanted and wanted[topic] is None):
                wanted[topic] = None
            else:
                wanted.setdefault(topic, set()).update(partitions)  # type: ignore[union-attr]
    selected: list[TopicPartition] = []
    for topic, chosen in wanted.items():
        if topic not in available:
            raise ResetRefused(f"topic {topic!r} does not exist")
        existing = set(available[topic])
        unknown = sorted(set(chosen or ()) - existing)
        if unknown:
            raise ResetRefused(f"topic {topic!r} has no partition {unknown[0]} (partitions 0-{max(existing)})")
        selected += [(topic, p) for p in sorted(existing if chosen is None else chosen)]
    return sorted(selected)


def active_problem(group: str, state: GroupState) -> str | None:
    """Why the group cannot be reset now (kafka-consumer-groups' rule: EMPTY or DEAD only), or None."""
    if state.state.upper() in INACTIVE_STATES and state.members == 0:
        return None
    members = f", {state.members} member(s)" if state.members else ""
    return (
        f"group {group} is active (state {state.state}{members}): stop every sink of this group "
        "first, offsets can only be reset while the group is empty"
    )


def new_offsets(
    spec: Spec,
    partitions: Sequence[TopicPartition],
    current: Mapping[TopicPartition, int | None],
    earliest: Mapping[TopicPartition, int],
    latest: Mapping[TopicPartition, int],
    at_time: Mapping[TopicPartition, int | None] | None = None,
) -> list[Row]:
    """One Row per partition; every new offset is clamped into [earliest, latest]."""
    rows = []
    for tp in partitions:
        now, low, high = current.get(tp), earliest[tp], latest[tp]
        target: int | None
        if spec.kind == "to_earliest":
            target = low
        elif spec.kind == "to_latest":
            target = high
        elif spec.kind == "to_offset":
            target = spec.offset
        elif spec.kind == "shift_by":
            if now is None:
                raise ResetRefused(
                    f"{tp[0]}:{tp[1]} has no committed offset to shift from; use --to-offset or --to-earliest"
                )
            target = now + (spec.offset or 0)
        elif spec.kind in ("to_datetime", "by_duration"):
            found = (at_time or {}).get(tp)
            target = high if found is None or found < 0 else found  # nothing at or after that time: the end
        elif spec.kind == "to_current":
            target = now  # nothing committed: leave it so (the sink starts at auto.offset.reset)
        elif spec.kind == "from_file":
            assert spec.plan is not None
            target = spec.plan[tp]
        else:
            raise ValueError(f"unknown spec {spec.kind}")
        rows.append(Row(tp, now, None if target is None else clamp(target, low, high)))
    return rows


def clamp(offset: int, earliest: int, latest: int) -> int:
    return max(earliest, min(latest, offset))


def format_table(rows: Sequence[Row], table_column: bool = False) -> str:
    """Like kafka-consumer-groups: aligned columns, `-` where there is no offset. With
    `table_column` (exactly-once), the offsets table's position too."""
    lines: list[tuple[str, ...]]
    if table_column:
        lines = [("TOPIC", "PARTITION", "CURRENT-OFFSET", "TABLE-OFFSET", "NEW-OFFSET")]
        lines += [(r.tp[0], str(r.tp[1]), _show(r.current), _show(r.table), _show(r.new)) for r in rows]
    else:
        lines = [("TOPIC", "PARTITION", "CURRENT-OFFSET", "NEW-OFFSET")]
        lines += [(r.tp[0], str(r.tp[1]), _show(r.current), _show(r.new)) for r in rows]
    widths = [max(len(line[i]) for line in lines) for i in range(len(lines[0]))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip() for line in lines)


def format_csv(rows: Sequence[Row]) -> str:
    """The plan as `kafka-consumer-groups --reset-offsets --export` writes it for one group:
    `topic,partition,offset` lines, no header; partitions left as they are are not listed."""
    return "\n".join(f"{r.tp[0]},{r.tp[1]},{r.new}" for r in rows if r.new is not None)


def _show(offset: int | None) -> str:
    return "-" if offset is None else str(offset)


# ------------------------------------------------------------------------------ the command


def plan(
    request: Request,
    sink_topics: Sequence[str],
    sink_regex: str | None,
    port: OffsetsPort,
    table: PositionsPort | None = None,
) -> list[Row]:
    partitions = select_partitions(request, sink_topics, sink_regex, port.topics())
    problem = active_problem(request.group, port.group_state(request.group))
    if problem:
        raise ResetRefused(problem)
    committed = port.committed(request.group, partitions)
    earliest, latest = port.earliest(partitions), port.latest(partitions)
    at_time = None
    if request.spec.timestamp_ms is not None:
        at_time = port.offsets_for_time(partitions, request.spec.timestamp_ms)
    if table is None:
        return new_offsets(request.spec, partitions, committed, earliest, latest, at_time)
    # Exactly-once: the sink starts where the table says (else at the group's committed offset),
    # so a shift or "current" starts from there; the CURRENT-OFFSET column stays the group's.
    positions = table.positions(partitions)
    start = {tp: positions.get(tp) if positions.get(tp) is not None else committed.get(tp) for tp in partitions}
    rows = new_offsets(request.spec, partitions, start, earliest, latest, at_time)
    return [Row(r.tp, committed.get(r.tp), r.new, positions.get(r.tp)) for r in rows]


def reset_offsets(
    request: Request,
    sink_topics: Sequence[str],
    sink_regex: str | None,
    port: OffsetsPort,
    out: Callable[[str], None],
    table: PositionsPort | None = None,
) -> int:
    rows = plan(request, sink_topics, sink_regex, port, table)
    notice = out
    if request.export:
        out(format_csv(rows))
        notice = _stderr  # stdout stays a file --from-file reads
    else:
        out(format_table(rows, table_column=table is not None))
    changes = {row.tp: row.new for row in rows if row.new is not None}
    also = " nor the offsets table" if table is not None else ""
    if not request.execute:
        notice(f"dry run: group {request.group} not changed{also}; add --execute to apply these offsets")
        return 0
    if changes and table is not None:
        with _signals_held() as held:  # an interruption must not leave the group behind the table
            table.reset(changes)  # first: it is where the next worker starts
            notice(f"offsets table: positions of {len(changes)} partition(s) of group {request.group} reset")
            try:
                port.alter(request.group, changes)
            except SinkError as exc:
                raise SinkError(
                    f"the offsets table was reset (the sink starts there) but the group's offsets were not: {exc}; "
                    "`--to-current --execute` moves the group to the table's positions"
                ) from None
        if held:
            _stderr(f"interrupted (signal {held[0]}): finished moving the offsets table and the group first")
    elif changes:
        port.alter(request.group, changes)
    notice(f"group {request.group}: offsets of {len(changes)} partition(s) reset")
    return 0


EXACTLY_ONCE_REFUSAL = (
    "--execute is refused under SINK_DELIVERY_GUARANTEE=exactly_once: the sink starts from the offsets "
    "table (SINK_OFFSETS_TABLE_NAME), not the group; stop the sink and set next_offset in that table instead"
)


@contextmanager
def _signals_held() -> Iterator[list[int]]:
    """SIGINT and SIGTERM wait (their numbers collected) until the block is done, on the main
    thread; a second one goes through (a database lock may keep the block waiting)."""
    held: list[int] = []
    if threading.current_thread() is not threading.main_thread():
        yield held
        return

    def restore() -> None:
        for signum, handler in previous.items():
            signal.signal(signum, signal.SIG_DFL if handler is None else handler)

    def hold(signum: int, _frame: FrameType | None) -> None:
        held.append(signum)
        if len(held) == 1:
            _stderr("sink: reset-offsets: finishing the offsets table and the group first (again to stop now)")
            return
        restore()
        signal.raise_signal(signum)

    previous = {signum: signal.signal(signum, hold) for signum in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield held
    finally:
        restore()


def _stderr(line: str) -> None:
    print(line, file=sys.stderr)


def run_command(
    args: argparse.Namespace,
    default_group: str,
    sink_topics: Sequence[str],
    sink_regex: str | None,
    connect: Callable[[], OffsetsPort],
    out: Callable[[str], None] = print,
    now_ms: Callable[[], int] = lambda: int(time.time() * 1000),
    exactly_once: bool = False,
    table: Callable[[str], PositionsPort] | None = None,
) -> int:
    """`sink reset-offsets`: 0 done (or dry run), 2 refused (one line), 1 the broker or the
    database failed (one line). Under exactly-once the positions in the offsets table win over the
    group's: `table(group)` opens that group's rows, shown and reset with the group's offsets;
    without it `--execute` is refused (moving only the group would do nothing)."""
    try:
        request = build_request(args, default_group, now_ms())
        if exactly_once and request.execute and table is None:
            raise ConfigError(EXACTLY_ONCE_REFUSAL)
        positions = table(request.group) if exactly_once and table is not None else None
        return reset_offsets(request, sink_topics, sink_regex, connect(), out, positions)
    except SinkError as exc:
        print(f"sink: reset-offsets: {exc}", file=sys.stderr)
        return exc.exit_code if isinstance(exc, FatalError) else 1
