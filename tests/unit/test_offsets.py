"""OffsetTracker: commit only the contiguous settled prefix of each partition, plus one."""

from __future__ import annotations

from sink.model import Coord
from sink.offsets import OffsetTracker


def c(offset: int, partition: int = 0, topic: str = "t") -> Coord:
    return Coord(topic, partition, offset)


def tracked(*offsets: int, partition: int = 0) -> OffsetTracker:
    tracker = OffsetTracker()
    for offset in offsets:
        tracker.track(c(offset, partition))
    return tracker


def test_nothing_settled_nothing_to_commit() -> None:
    tracker = tracked(0, 1, 2)
    assert tracker.committable() == {}
    assert tracker.unsettled() == 3


def test_contiguous_prefix_only() -> None:
    tracker = tracked(0, 1, 2, 3, 4)
    tracker.settle(c(1))
    tracker.settle(c(3))
    assert tracker.committable() == {}, "offset 0 is not settled: nothing may be committed"
    tracker.settle(c(0))
    assert tracker.committable() == {("t", 0): 2}, "0 and 1 settled, 2 not: commit 2 (the next to read)"
    tracker.settle(c(2))
    assert tracker.committable() == {("t", 0): 4}
    tracker.settle(c(4))
    assert tracker.committable() == {("t", 0): 5}
    assert tracker.unsettled() == 0


def test_gaps_in_offsets_are_fine() -> None:
    # Compacted topics and transaction markers leave holes: only polled offsets count.
    tracker = tracked(10, 13, 20)
    tracker.settle(c(13))
    assert tracker.committable() == {}
    tracker.settle(c(10))
    assert tracker.committable() == {("t", 0): 14}
    tracker.settle(c(20))
    assert tracker.committable() == {("t", 0): 21}


def test_partitions_are_independent() -> None:
    tracker = OffsetTracker()
    for p in (0, 1, 2):
        for offset in range(3):
            tracker.track(c(offset, p))
    tracker.settle(c(0, 0))
    tracker.settle(c(1, 1))
    tracker.settle(c(0, 2))
    tracker.settle(c(1, 2))
    tracker.settle(c(2, 2))
    assert tracker.committable() == {("t", 0): 1, ("t", 2): 3}
    assert tracker.unsettled_in([("t", 0), ("t", 1)]) == 5


def test_topics_are_independent() -> None:
    tracker = OffsetTracker()
    tracker.track(Coord("a", 0, 0))
    tracker.track(Coord("b", 0, 0))
    tracker.settle(Coord("b", 0, 0))
    assert tracker.committable() == {("b", 0): 1}


def test_committed_offsets_are_not_offered_again() -> None:
    tracker = tracked(0, 1, 2)
    tracker.settle(c(0))
    offsets = tracker.committable()
    tracker.mark_committed(offsets)
    assert tracker.committable() == {}
    tracker.settle(c(1))
    assert tracker.committable() == {("t", 0): 2}


def test_forget_drops_revoked_partitions_and_late_settles_are_ignored() -> None:
    tracker = tracked(0, 1)
    tracker.track(c(0, partition=1))
    tracker.forget([("t", 0)])
    tracker.settle(c(0))  # a late outcome for a partition that moved to another member
    tracker.settle(c(0, partition=1))
    assert tracker.committable() == {("t", 1): 1}
    assert tracker.unsettled() == 0


def test_settle_order_does_not_matter() -> None:
    tracker = tracked(*range(100))
    for offset in reversed(range(1, 100)):
        tracker.settle(c(offset))
        assert tracker.committable() == {}
    tracker.settle(c(0))
    assert tracker.committable() == {("t", 0): 100}


def test_settle_all_is_settle_of_each_in_any_order() -> None:
    one, many = OffsetTracker(), OffsetTracker()
    coords = [Coord("t", p, o) for p in (0, 1) for o in range(5)]
    for tracker in (one, many):
        for coord in coords:
            tracker.track(coord)
    settled = [c for c in coords if c.offset != 3] + [Coord("gone", 0, 0)]  # a revoked partition's: ignored
    for coord in reversed(settled):
        one.settle(coord)
    many.settle_all(settled)
    assert many.committable() == one.committable() == {("t", 0): 3, ("t", 1): 3}
    many.settle_all([Coord("t", 0, 3)])
    assert many.committable() == {("t", 0): 5, ("t", 1): 3}
