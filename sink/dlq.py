"""`sink dlq inspect` and `sink dlq redrive`, the pure part: what a dead-lettered record says,
which records a command selects, where the re-drive cursor moves, when the end of the topic is
reached, and the table, summary and JSON a person or a script reads.

No I/O here: the dead-letter topic is read and the source topics written through the ports at
the bottom (`sink.adapters.dlq` in production, fakes in the unit tests).

    inspect: read every DLQ record from the beginning -> first N rows + counts per reason
    redrive: read from the progress group's cursor -> selected records -> produce to their source
             topic/partition (key, value, headers minus __connect.errors.*, count header + 1)
             -> acknowledged -> cursor committed past the last acknowledged one, per DLQ partition
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from .deadletter import PREFIX, TRUNCATED
from .model import Coord, RawRecord

REDRIVE_COUNT = "__sink.redrive.count"
MESSAGE_WIDTH = 60
Headers = list[tuple[str, bytes | None]]


@dataclass(frozen=True)
class DeadLetter:
    """One record of the dead-letter topic: where it sits there (`at`), the original record's
    key, value and headers, and what the `__connect.errors.*` headers say about its failure."""

    at: Coord  # in the dead-letter topic
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes | None], ...]
    source: Coord | None  # None: written without context headers, the origin is unknown
    stage: str
    exception_class: str
    message: str
    truncated: bool  # dead-lettered without key/value/headers (too large): re-read it from the source

    @property
    def short_class(self) -> str:
        return self.exception_class.rsplit(".", 1)[-1]

    @property
    def redrivable(self) -> bool:
        return self.source is not None and not self.truncated

    @property
    def redrive_count(self) -> int:
        return redrive_count(self.headers)


def parse(raw: RawRecord) -> DeadLetter:
    context = {name[len(PREFIX) :]: _text(value) for name, value in raw.headers if name.startswith(PREFIX)}
    source = None
    try:
        source = Coord(context["topic"], int(context["partition"]), int(context["offset"]))
    except (KeyError, ValueError):
        pass
    return DeadLetter(
        at=raw.coord,
        key=raw.key,
        value=raw.value,
        headers=tuple(raw.headers),
        source=source,
        stage=context.get("stage", ""),
        exception_class=context.get("exception.class.name", ""),
        message=context.get("exception.message", ""),
        truncated=any(name == TRUNCATED for name, _ in raw.headers),
    )


def _text(value: bytes | None) -> str:
    return "" if value is None else value.decode("utf-8", "replace")


def redrive_count(headers: Iterable[tuple[str, bytes | None]]) -> int:
    """How often the record was re-driven before (the last count header; 0 without one)."""
    count = 0
    for name, value in headers:
        if name == REDRIVE_COUNT:
            try:
                count = int(_text(value))
            except ValueError:
                count = 0
    return count


def redrive_headers(letter: DeadLetter) -> Headers:
    """The original headers, without `__connect.errors.*` and any earlier count, plus the new count."""
    kept = [(n, v) for n, v in letter.headers if not n.startswith(PREFIX) and n != REDRIVE_COUNT]
    return [*kept, (REDRIVE_COUNT, str(letter.redrive_count + 1).encode())]


# ------------------------------------------------------------------------------ selection


@dataclass(frozen=True)
class Selection:
    """`--topic T[:P,P]`, `--error-class C`, `--from-offset N --to-offset M` (source offsets,
    inclusive). An empty selection takes every record."""

    topic: str | None = None
    partitions: tuple[int, ...] | None = None
    error_class: str | None = None
    from_offset: int | None = None
    to_offset: int | None = None

    def problem(self) -> str | None:
        """Why the selection is refused (one line), or None."""
        ranged = self.from_offset is not None or self.to_offset is not None
        if ranged and self.topic is None:
            return "--from-offset/--to-offset are offsets of a source topic: give it with --topic"
        if any(o is not None and o < 0 for o in (self.from_offset, self.to_offset)):
            return "--from-offset/--to-offset: 0 or more"
        if self.from_offset is not None and self.to_offset is not None and self.from_offset > self.to_offset:
            return f"--from-offset {self.from_offset} is past --to-offset {self.to_offset}"
        return None

    def matches(self, letter: DeadLetter) -> bool:
        """`--error-class` matches the full class name or its last part (`RecordRejected`)."""
        if self.error_class is not None and self.error_class not in (letter.exception_class, letter.short_class):
            return False
        if self.topic is None:
            return True
        source = letter.source
        if source is None or source.topic != self.topic:
            return False
        if self.partitions is not None and source.partition not in self.partitions:
            return False
        if self.from_offset is not None and source.offset < self.from_offset:
            return False
        return self.to_offset is None or source.offset <= self.to_offset


# ------------------------------------------------------------------------------ the end of the topic


@dataclass
class EndOfTopic:
    """Decides when a read has reached the end of the dead-letter topic without trusting
    ListOffsets: every partition has reported end-of-partition (from a fetch's high watermark)
    since its last record and nothing came for `grace_s`; or, whatever the partitions reported,
    nothing came for `idle_s` (a broker that never reports the end, a slow one)."""

    partitions: frozenset[int]
    started: float
    idle_s: float = 5.0
    grace_s: float = 0.5
    _at_end: set[int] = field(default_factory=set)
    _last: float | None = None

    def record(self, partition: int, now: float) -> None:
        self._at_end.discard(partition)
        self._last = now

    def end_of_partition(self, partition: int, now: float) -> None:
        self._at_end.add(partition)

    def reached(self, now: float) -> bool:
        return self.why(now) is not None

    def why(self, now: float) -> str | None:
        """How the end was decided (for the output), or None while it is not reached."""
        quiet = now - (self._last if self._last is not None else self.started)
        if not self.partitions:
            return "the topic has no partition"
        if self._at_end >= self.partitions and quiet >= self.grace_s:
            return "read to the end of every partition"
        if quiet >= self.idle_s:
            return f"no new record for {self.idle_s:g} s"
        return None


# ------------------------------------------------------------------------------ the re-drive cursor


def cursor_moves(acknowledged: Iterable[DeadLetter]) -> dict[int, int]:
    """Per DLQ partition, the offset to commit: just past the last acknowledged re-drive. Records
    before it that were not selected are passed over for good by this progress group."""
    moves: dict[int, int] = {}
    for letter in acknowledged:
        moves[letter.at.partition] = max(moves.get(letter.at.partition, 0), letter.at.offset + 1)
    return moves


# ------------------------------------------------------------------------------ summary and output


@dataclass
class Summary:
    """Counts per reason over every record read, and the first `limit` records for the table."""

    limit: int
    total: int = 0
    rows: list[DeadLetter] = field(default_factory=list)
    reasons: Counter[tuple[str, str, str]] = field(default_factory=Counter)

    def add(self, letter: DeadLetter) -> None:
        self.total += 1
        self.reasons[(letter.stage, letter.exception_class, letter.message)] += 1
        if len(self.rows) < self.limit:
            self.rows.append(letter)


def cut(text: str, width: int = MESSAGE_WIDTH) -> str:
    """One line of at most `width` characters (`...` where it was cut)."""
    line = " ".join(text.split())
    return line if len(line) <= width else line[: width - 3] + "..."


def table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    lines = [tuple(header), *(tuple(r) for r in rows)]
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip() for line in lines)


RECORD_HEADER = ("DLQ", "TOPIC", "PARTITION", "OFFSET", "STAGE", "EXCEPTION", "MESSAGE")


def record_row(letter: DeadLetter) -> tuple[str, ...]:
    source = letter.source
    note = " [truncated: re-read it from the source]" if letter.truncated else ""
    return (
        f"{letter.at.partition}:{letter.at.offset}",
        source.topic if source else "-",
        str(source.partition) if source else "-",
        str(source.offset) if source else "-",
        letter.stage or "-",
        letter.short_class or "-",
        cut(letter.message) + note if letter.message else "-" + note,
    )


def format_inspect(topic: str, summary: Summary, end: str) -> str:
    parts = [f"dead-letter topic {topic}: {summary.total} record(s) ({end})"]
    if summary.rows:
        parts += ["", table(RECORD_HEADER, (record_row(r) for r in summary.rows))]
        if summary.total > len(summary.rows):
            parts.append(f"... {summary.total - len(summary.rows)} more (--limit N shows more)")
    if summary.reasons:
        parts += ["", "counts per reason:"]
        reasons = sorted(summary.reasons.items(), key=lambda item: (-item[1], item[0]))
        parts.append(
            table(
                ("COUNT", "STAGE", "EXCEPTION", "REASON"),
                ((str(n), s or "-", c.rsplit(".", 1)[-1] or "-", cut(m) or "-") for (s, c, m), n in reasons),
            )
        )
    return "\n".join(parts)


def letter_json(letter: DeadLetter) -> dict[str, object]:
    source = letter.source
    return {
        "dlq_partition": letter.at.partition,
        "dlq_offset": letter.at.offset,
        "topic": source.topic if source else None,
        "partition": source.partition if source else None,
        "offset": source.offset if source else None,
        "stage": letter.stage or None,
        "exception_class": letter.exception_class or None,
        "message": letter.message,
        "truncated": letter.truncated,
        "redrive_count": letter.redrive_count,
    }


def inspect_json(topic: str, summary: Summary, end: str) -> str:
    reasons = sorted(summary.reasons.items(), key=lambda item: (-item[1], item[0]))
    return json.dumps(
        {
            "topic": topic,
            "total": summary.total,
            "end": end,
            "records": [letter_json(r) for r in summary.rows],
            "reasons": [
                {"stage": s or None, "exception_class": c or None, "message": m, "count": n} for (s, c, m), n in reasons
            ],
        },
        ensure_ascii=False,
    )


def redrive_target(letter: DeadLetter, partitions: Mapping[str, Sequence[int]]) -> tuple[str, int | None]:
    """The source topic, and its original partition when the topic still has it (None: by key)."""
    assert letter.source is not None
    topic, partition = letter.source.topic, letter.source.partition
    return topic, partition if partition in partitions.get(topic, ()) else None
