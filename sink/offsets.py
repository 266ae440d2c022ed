"""Settled-offset tracking: commit only up to the highest contiguous settled record per partition.

Every polled record is tracked; it is *settled* when its transaction committed or the dead-letter
producer acknowledged it. The committable offset of a partition is (last settled offset of the
unbroken run from the oldest tracked record) + 1, Kafka's "next offset to read".
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field

from .model import Coord

TopicPartition = tuple[str, int]


@dataclass(slots=True)
class _Partition:
    polled: deque[int] = field(default_factory=deque)  # in poll order, which is offset order
    settled: set[int] = field(default_factory=set)
    next_commit: int | None = None  # offset to commit (last contiguous settled + 1)
    committed: int | None = None


class OffsetTracker:
    def __init__(self) -> None:
        self._partitions: dict[TopicPartition, _Partition] = {}

    def track(self, coord: Coord) -> None:
        state = self._partitions.get((coord.topic, coord.partition))
        if state is None:
            state = self._partitions[(coord.topic, coord.partition)] = _Partition()
        state.polled.append(coord.offset)

    def settle(self, coord: Coord) -> None:
        state = self._partitions.get((coord.topic, coord.partition))
        if state is None:  # partition revoked meanwhile: the new owner re-reads it
            return
        state.settled.add(coord.offset)
        while state.polled and state.polled[0] in state.settled:
            offset = state.polled.popleft()
            state.settled.discard(offset)
            state.next_commit = offset + 1

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

    def unsettled(self) -> int:
        return sum(len(s.polled) for s in self._partitions.values())

    def unsettled_in(self, partitions: Iterable[TopicPartition]) -> int:
        return sum(len(self._partitions[tp].polled) for tp in partitions if tp in self._partitions)
