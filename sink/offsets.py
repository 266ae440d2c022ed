"""Settled-offset tracking: commit only up to the highest contiguous settled record per partition.

Every polled record is tracked; it is *settled* when its transaction committed or the dead-letter
producer acknowledged it. The committable offset of a partition is (last settled offset of the
unbroken run from the oldest tracked record) + 1, Kafka's "next offset to read".
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from itertools import groupby, repeat, takewhile
from operator import itemgetter

from .errors import Fenced
from .model import Coord, Settled
from .ports import OffsetStore, Position, TopicPartition, Transaction

_PARTITION_OF, _OFFSET_OF = itemgetter(0, 1), itemgetter(2)  # of a Coord (topic, partition, offset)


@dataclass(slots=True)
class _Partition:
    polled: deque[int] = field(default_factory=deque)  # in poll order, which is offset order
    settled: set[int] = field(default_factory=set)
    next_commit: int | None = None  # offset to commit (last contiguous settled + 1)
    committed: int | None = None

    def advance(self) -> None:
        """Move the commit point over the settled run at the head of what was polled (found by
        C-level passes: after a batch commits, the run is the batch's thousands of records)."""
        polled, settled = self.polled, self.settled
        if not polled or polled[0] not in settled:
            return
        run = list(takewhile(settled.__contains__, polled))
        if len(run) == len(polled):
            polled.clear()
        else:
            popleft = polled.popleft
            for _ in repeat(None, len(run)):
                popleft()
        settled.difference_update(run)
        self.next_commit = run[-1] + 1


class OffsetTracker:
    def __init__(self) -> None:
        self._partitions: dict[TopicPartition, _Partition] = {}

    def track(self, coord: Coord) -> None:
        state = self._partitions.get((coord.topic, coord.partition))
        if state is None:
            state = self._partitions[(coord.topic, coord.partition)] = _Partition()
        state.polled.append(coord.offset)

    def track_all(self, coords: Iterable[Coord]) -> None:
        """`track` each of `coords`, in order, a partition's run at a time (C-level passes)."""
        partitions = self._partitions
        for tp, run in groupby(coords, _PARTITION_OF):
            state = partitions.get(tp)
            if state is None:
                state = partitions[tp] = _Partition()
            state.polled.extend(map(_OFFSET_OF, run))

    def tracks(self, coord: Coord) -> bool:
        """Whether the record's partition is still tracked (assigned, not forgotten since)."""
        return (coord.topic, coord.partition) in self._partitions

    def settle(self, coord: Coord) -> None:
        state = self._partitions.get((coord.topic, coord.partition))
        if state is None:  # partition revoked meanwhile: the new owner re-reads it
            return
        state.settled.add(coord.offset)
        state.advance()

    def settle_all(self, coords: Iterable[Coord]) -> None:
        """`settle` each of `coords` (what one transaction committed), each partition's settled run
        advanced once at the end instead of once per record. A poll gives each partition's records
        in runs (a fetch each), and a run is settled by C-level passes, not a Python step per record."""
        partitions = self._partitions
        touched: dict[TopicPartition, _Partition] = {}
        for tp, run in groupby(coords, _PARTITION_OF):
            state = partitions.get(tp)
            if state is not None:  # None: partition revoked meanwhile, the new owner re-reads it
                state.settled.update(map(_OFFSET_OF, run))
                touched[tp] = state
        for state in touched.values():
            state.advance()

    def committable(self) -> dict[TopicPartition, int]:
        """Offsets that moved since the last commit."""
        return {
            tp: s.next_commit
            for tp, s in self._partitions.items()
            if s.next_commit is not None and s.next_commit != s.committed
        }

    def mark_committed(self, offsets: dict[TopicPartition, int]) -> None:
        for tp, offset in offsets.items():
            if tp in self._partitions:
                self._partitions[tp].committed = offset

    def forget(self, partitions: Iterable[TopicPartition]) -> None:
        for tp in partitions:
            self._partitions.pop(tp, None)

    def prefixes(self) -> dict[TopicPartition, int]:
        """The settled prefix (next offset to read) of every partition that has one."""
        return {tp: s.next_commit for tp, s in self._partitions.items() if s.next_commit is not None}

    def snapshot(self, partitions: Iterable[TopicPartition]) -> Snapshot:
        """What is settled of `partitions` now (exactly-once: a batch's transactions compute the
        positions they write from it; records that settle later only lengthen the real prefix)."""
        parts = {}
        for tp in partitions:
            s = self._partitions.get(tp)
            if s is not None:
                parts[tp] = (s.next_commit, tuple(s.polled), frozenset(s.settled))
        return Snapshot(parts)

    def unsettled(self) -> int:
        return sum(len(s.polled) for s in self._partitions.values())

    def unsettled_in(self, partitions: Iterable[TopicPartition]) -> int:
        return sum(len(self._partitions[tp].polled) for tp in partitions if tp in self._partitions)


@dataclass(frozen=True, slots=True)
class Snapshot:
    """Per partition: (settled prefix, offsets polled from the oldest unsettled on, settled among them)."""

    parts: Mapping[TopicPartition, tuple[int | None, tuple[int, ...], frozenset[int]]]

    def prefix(self, tp: TopicPartition, also: set[int] | frozenset[int] = frozenset()) -> int | None:
        """The settled prefix of `tp` if the offsets `also` were settled too (None: nothing settled)."""
        state = self.parts.get(tp)
        if state is None:
            return None
        position, polled, settled = state
        for offset in polled:
            if offset not in settled and offset not in also:
                break
            position = offset + 1
        return position


# ------------------------------------------------------------------------------ exactly-once


class Ledger:
    """Exactly-once bookkeeping of one worker: the epoch it claimed per partition and the next
    offset the table holds (as far as this worker wrote it). Epochs are read on the writer thread
    and changed on the loop's (assignment, revocation): single dict operations."""

    def __init__(self, store: OffsetStore) -> None:
        self.store = store
        self.epochs: dict[TopicPartition, int] = {}
        self.written: dict[TopicPartition, int | None] = {}

    def claim(self, partitions: list[TopicPartition]) -> dict[TopicPartition, int]:
        """Claim `partitions` (bump their epochs); return where to start reading those whose table
        row holds a position (the others start at the group's committed offset, or auto.offset.reset)."""
        if not partitions:
            return {}
        claimed = self.store.claim(sorted(partitions))
        start: dict[TopicPartition, int] = {}
        for tp, (next_offset, epoch) in claimed.items():
            self.epochs[tp] = epoch
            self.written[tp] = next_offset
            if next_offset is not None:
                start[tp] = next_offset
        return start

    def forget(self, partitions: Iterable[TopicPartition]) -> None:
        for tp in partitions:
            self.epochs.pop(tp, None)
            self.written.pop(tp, None)

    def for_batch(self, snapshot: Snapshot) -> BatchPositions:
        return BatchPositions(self, snapshot)

    def catch_up(self, prefixes: Mapping[TopicPartition, int]) -> None:
        """Write, in one transaction of their own, the positions that moved with no row written
        (dead-lettered or skipped records); raises Fenced for partitions another worker took."""
        moved = {
            tp: (offset, self.epochs[tp])
            for tp, offset in prefixes.items()
            if tp in self.epochs and self.written.get(tp) != offset
        }
        if not moved:
            return
        with self.store.transaction() as tx:
            fenced = self.store.advance(tx, moved)
            if fenced:
                raise Fenced(fenced)
        for tp, (offset, _epoch) in moved.items():
            self.written[tp] = offset


class BatchPositions:
    """The positions the transactions of one batch write with their rows (the transactions hook,
    `transactions.CommitHook`). Each writes, for every partition it has rows of, the settled prefix
    as it will be once this transaction's outcomes (and those of the batch's earlier transactions)
    are settled: computed from a snapshot of the tracker taken on the loop's thread when the batch
    was handed to the writer. A rejected record is not settled by the commit (it waits for its
    dead-letter acknowledgement), so the position stops before it."""

    def __init__(self, ledger: Ledger, snapshot: Snapshot) -> None:
        self.ledger = ledger
        self.snapshot = snapshot
        self._settled: dict[TopicPartition, set[int]] = {}  # by the batch's committed transactions
        self._proposed: dict[TopicPartition, tuple[int | None, set[int]]] = {}

    def before_commit(self, tx: Transaction, pending: Settled) -> None:
        touched: dict[TopicPartition, set[int]] = {}
        for c in pending.coords(failed=False):
            touched.setdefault((c.topic, c.partition), set()).add(c.offset)
        if not touched:  # no row written: nothing to fence, nothing new settled
            self._proposed = {}
            return
        epochs = self.ledger.epochs
        lost = frozenset(tp for tp in touched if tp not in epochs)
        if lost:
            raise Fenced(lost)
        positions: dict[TopicPartition, Position] = {}
        proposed: dict[TopicPartition, tuple[int | None, set[int]]] = {}
        for tp, offsets in touched.items():
            also = offsets | self._settled.get(tp, set())
            prefix = self.snapshot.prefix(tp, also)
            positions[tp] = (prefix, epochs[tp])
            proposed[tp] = (prefix, offsets)
        fenced = self.ledger.store.advance(tx, positions)
        if fenced:
            raise Fenced(fenced)
        self._proposed = proposed

    def after_commit(self) -> None:
        written = self.ledger.written
        for tp, (prefix, offsets) in self._proposed.items():
            self._settled.setdefault(tp, set()).update(offsets)
            if prefix is not None and tp in written:
                written[tp] = prefix
        self._proposed = {}
