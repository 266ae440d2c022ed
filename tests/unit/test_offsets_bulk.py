"""OffsetTracker's bulk settling (`settle_all`, `advance` by C-level passes) against the per-record
rule it replaced, kept here as the reference: the same commit points, prefixes, snapshots and
counts after any interleaving of tracking, settling and forgetting."""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Iterable

import pytest

from sink.model import Coord
from sink.offsets import OffsetTracker
from sink.ports import TopicPartition


class ReferenceTracker:
    """The per-record rule: settle each offset, then pop the settled head of what was polled."""

    def __init__(self) -> None:
        self.polled: dict[TopicPartition, deque[int]] = {}
        self.settled: dict[TopicPartition, set[int]] = {}
        self.next_commit: dict[TopicPartition, int] = {}

    def track(self, coord: Coord) -> None:
        tp = (coord.topic, coord.partition)
        self.polled.setdefault(tp, deque()).append(coord.offset)
        self.settled.setdefault(tp, set())

    def settle_all(self, coords: Iterable[Coord]) -> None:
        """Every offset settled first, then each partition's head popped once."""
        touched = set()
        for coord in coords:
            tp = (coord.topic, coord.partition)
            if tp in self.polled:
                self.settled[tp].add(coord.offset)
                touched.add(tp)
        for tp in touched:
            self._advance(tp)

    def settle(self, coord: Coord) -> None:
        self.settle_all([coord])

    def _advance(self, tp: TopicPartition) -> None:
        polled, settled = self.polled[tp], self.settled[tp]
        while polled and polled[0] in settled:
            offset = polled.popleft()
            settled.discard(offset)
            self.next_commit[tp] = offset + 1

    def forget(self, tp: TopicPartition) -> None:
        self.polled.pop(tp, None)
        self.settled.pop(tp, None)
        self.next_commit.pop(tp, None)


def same_state(tracker: OffsetTracker, reference: ReferenceTracker) -> None:
    assert tracker.prefixes() == reference.next_commit
    assert tracker.unsettled() == sum(len(p) for p in reference.polled.values())
    snapshot = tracker.snapshot(reference.polled)
    for tp, polled in reference.polled.items():
        prefix, kept, settled = snapshot.parts[tp]
        assert (prefix, kept, settled) == (
            reference.next_commit.get(tp),
            tuple(polled),
            frozenset(reference.settled[tp]),
        )


@pytest.mark.parametrize("seed", range(40))
def test_bulk_settling_moves_every_commit_point_as_settling_one_by_one_does(seed: int) -> None:
    rng = random.Random(seed)
    tracker, reference = OffsetTracker(), ReferenceTracker()
    partitions = [("t", p) for p in range(rng.randint(1, 4))] + ([("u", 0)] if rng.random() < 0.3 else [])
    next_offset = dict.fromkeys(partitions, 0)
    unsettled: list[Coord] = []
    for _ in range(rng.randint(20, 80)):
        action = rng.random()
        if action < 0.45:  # a poll: offsets rise per partition, with gaps (compaction, markers)
            for _ in range(rng.randint(1, 40)):
                tp = rng.choice(partitions)
                next_offset[tp] += rng.choice((1, 1, 1, 2, 7))
                coord = Coord(tp[0], tp[1], next_offset[tp])
                tracker.track(coord)
                reference.track(coord)
                unsettled.append(coord)
        elif action < 0.9 and unsettled:  # a transaction commits some of them, in any order
            rng.shuffle(unsettled)
            count = rng.randint(1, len(unsettled))
            done, unsettled = unsettled[:count], unsettled[count:]
            if rng.random() < 0.2:
                done = done + rng.sample(done, min(3, len(done)))  # one settled twice: no harm
            if rng.random() < 0.5:
                tracker.settle_all(iter(done))  # a generator, as Settled.coords gives them
                reference.settle_all(done)
            else:
                for coord in done:
                    tracker.settle(coord)
                    reference.settle(coord)
        elif partitions:  # a revocation: the partition is forgotten, its records left to the new owner
            tp = rng.choice(partitions)
            tracker.forget([tp])
            reference.forget(tp)
            unsettled = [c for c in unsettled if (c.topic, c.partition) != tp]
        same_state(tracker, reference)
    tracker.settle_all(unsettled)
    reference.settle_all(unsettled)
    same_state(tracker, reference)
    assert tracker.unsettled() == 0


def test_one_batch_of_several_partitions_commits_each_partitions_own_run() -> None:
    tracker = OffsetTracker()
    coords = [Coord("t", p, o) for o in range(100) for p in range(4)]
    for coord in coords:
        tracker.track(coord)
    tracker.settle_all(c for c in coords if not (c.partition == 2 and c.offset == 50))
    assert tracker.committable() == {("t", 0): 100, ("t", 1): 100, ("t", 2): 50, ("t", 3): 100}
    assert tracker.unsettled() == 50
    tracker.settle_all([Coord("t", 2, 50)])
    assert tracker.committable()[("t", 2)] == 100
    assert tracker.unsettled() == 0


def test_settling_nothing_or_a_forgotten_partition_changes_nothing() -> None:
    tracker = OffsetTracker()
    tracker.track(Coord("t", 0, 5))
    tracker.settle_all([])
    tracker.settle_all([Coord("t", 9, 5)])
    assert tracker.committable() == {}
    assert tracker.unsettled() == 1
