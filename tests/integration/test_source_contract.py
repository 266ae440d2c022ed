"""One contract suite for the `Source` port (sink/ports.py), run against the in-memory `FakeSource` the
unit tests drive the worker with and against the real `KafkaSource` on the broker, so the fake cannot
drift from what the worker really meets (Arroyo runs one suite against its local and Kafka backends).

What the port promises, and so what is checked here: `poll` returns at most `max_records` records,
each once and in offset order per partition, with the key, value, headers and timestamp produced,
after `on_assign` heard of their partitions; `commit` is synchronous and says it committed; `pause`
stops records coming while polling goes on (also of partitions assigned during the pause), and
`resume` goes on exactly where they stopped; `start_at` is asked after `on_assign` and the
partitions it names start there; `lag` is None or exact; `close` revokes every partition assigned.

A backend is driven through what a test can do to a consumer from outside: produce records, let the
group assign or move partitions, read the group's committed offsets. For the fake, that is its
script (the group's steps and the polls' records); for Kafka, the broker and a second group member.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Protocol

import pytest

from sink.adapters.kafka import KafkaSource, consumer_config
from sink.model import Coord, RawRecord
from sink.ports import Source, TopicPartition
from tests.support.fakes import Clock, FakeSource
from tests.support.kafka import SESSION_TIMEOUT_MS, committed_offsets, create_topic, produce, wait_for

pytestmark = pytest.mark.integration

PARTITIONS = 2
TIMESTAMP_MS = 1_700_000_000_000

Assignments = Callable[[list[TopicPartition]], Mapping[TopicPartition, int]]


@dataclass
class Group:
    """What a member heard from the group, in order: ("assign"|"revoke"|"start_at", partitions)."""

    events: list[tuple[str, list[TopicPartition]]] = field(default_factory=list)

    def on_assign(self, partitions: list[TopicPartition]) -> None:
        self.events.append(("assign", sorted(partitions)))

    def on_revoke(self, partitions: list[TopicPartition]) -> None:
        self.events.append(("revoke", sorted(partitions)))

    def assigned(self) -> set[TopicPartition]:
        held: set[TopicPartition] = set()
        for kind, partitions in self.events:
            if kind == "assign":
                held |= set(partitions)
            elif kind == "revoke":
                held -= set(partitions)
        return held


class Backend(Protocol):
    topic: str
    patience: float  # how long records may take to arrive
    knows_lag: bool  # whether lag() is ever known (the port allows None throughout)

    def member(self) -> Source: ...
    def subscribe(self, source: Source, group: Group, start_at: Assignments | None = None) -> None: ...
    def produce(self, partition: int, count: int) -> list[RawRecord]: ...
    def committed(self) -> dict[TopicPartition, int | None]: ...
    def another_member_joins(self, source: Source, group: Group) -> None: ...
    def the_other_member_leaves(self, source: Source, group: Group) -> None: ...


def record(topic: str, partition: int, offset: int) -> RawRecord:
    """The n-th record of a partition as the contract tests produce it."""
    headers = (("n", str(offset).encode()),)
    key, value = f"k{partition}-{offset}".encode(), f"v{partition}-{offset}".encode()
    return RawRecord(Coord(topic, partition, offset), key, value, headers, TIMESTAMP_MS + offset)


class FakeBackend:
    """The fake alone in its group: every partition is assigned to it at the first poll."""

    patience = 0.2
    knows_lag = False

    def __init__(self, topic: str) -> None:
        self.topic = topic
        self.source = FakeSource(Clock())
        self.ends = dict.fromkeys(range(PARTITIONS), 0)

    def member(self) -> Source:
        return self.source

    def subscribe(self, source: Source, group: Group, start_at: Assignments | None = None) -> None:
        source.subscribe(group.on_assign, group.on_revoke, start_at=start_at)
        self.source.script.insert(0, self.source.assign(self.partitions()))

    def partitions(self) -> list[TopicPartition]:
        return [(self.topic, p) for p in range(PARTITIONS)]

    def produce(self, partition: int, count: int) -> list[RawRecord]:
        start = self.ends[partition]
        self.ends[partition] += count
        records = [record(self.topic, partition, offset) for offset in range(start, start + count)]
        self.source.script.append(list(records))
        return records

    def committed(self) -> dict[TopicPartition, int | None]:
        return {tp: self.source.committed.get(tp) for tp in self.partitions()}

    def another_member_joins(self, source: Source, group: Group) -> None:
        """An eager rebalance takes everything back and gives the first partition back."""
        self.source.script += [self.source.revoke(self.partitions()), self.source.assign(self.partitions()[:1])]
        assert source.poll(100, 0.1) == []

    def the_other_member_leaves(self, source: Source, group: Group) -> None:
        """(While paused) an eager rebalance takes the partition back and gives both."""
        self.source.while_paused += [self.source.revoke(self.partitions()[:1]), self.source.assign(self.partitions())]
        assert source.poll(100, 0.1) == []


class KafkaBackend:
    patience = 20.0
    knows_lag = True

    def __init__(self, bootstrap: str, topic: str) -> None:
        self.bootstrap, self.topic, self.group_id = bootstrap, topic, f"{topic}_group"
        create_topic(bootstrap, topic, PARTITIONS)
        self.ends = dict.fromkeys(range(PARTITIONS), 0)
        self.members: list[KafkaSource] = []

    def member(self) -> KafkaSource:
        config = consumer_config(self.bootstrap, self.group_id, {"session.timeout.ms": str(SESSION_TIMEOUT_MS)})
        source = KafkaSource(config, (self.topic,), None)
        self.members.append(source)
        return source

    def subscribe(self, source: Source, group: Group, start_at: Assignments | None = None) -> None:
        source.subscribe(group.on_assign, group.on_revoke, start_at=start_at)

    def produce(self, partition: int, count: int) -> list[RawRecord]:
        start = self.ends[partition]
        self.ends[partition] += count
        records = [record(self.topic, partition, offset) for offset in range(start, start + count)]
        produce(
            self.bootstrap,
            self.topic,
            [
                {
                    "partition": partition,
                    "key": r.key,
                    "value": r.value,
                    "headers": list(r.headers),
                    "timestamp": r.timestamp,
                }
                for r in records
            ],
        )
        return records

    def committed(self) -> dict[TopicPartition, int | None]:
        offsets = committed_offsets(self.bootstrap, self.group_id, self.topic, PARTITIONS)
        return {(self.topic, p): offset for p, offset in offsets.items()}

    def another_member_joins(self, source: Source, group: Group) -> None:
        """A second member joins (paused: it takes no record); `source` polls until it holds one
        partition."""
        self.newcomer, newcomer_group = self.member(), Group()
        self.newcomer.subscribe(newcomer_group.on_assign, newcomer_group.on_revoke)
        self.newcomer.pause()

        def moved() -> bool:
            self.newcomer.poll(100, 0.05)
            assert source.poll(100, 0.05) == [], "records before anything was produced"
            return len(group.assigned()) == 1 and len(newcomer_group.assigned()) == 1

        wait_for(moved, 30, interval=0, message="the second member did not join")

    def the_other_member_leaves(self, source: Source, group: Group) -> None:
        """The second member leaves; `source` (paused) polls, as long as the worker's polls wait,
        until it holds both partitions, and nothing may come meanwhile."""
        self.newcomer.close()

        def moved() -> bool:
            polled = source.poll(100, 0.5)
            assert polled == [], f"paused, yet polled {[r.coord for r in polled]}"
            return len(group.assigned()) == PARTITIONS

        wait_for(moved, 30, interval=0, message="the partition of the member that left was not given")

    def close(self) -> None:
        for source in self.members:
            source.close()


@pytest.fixture(params=["fake", "kafka"])
def backend(request: pytest.FixtureRequest, unique_name: str) -> Iterator[Backend]:
    if request.param == "fake":
        yield FakeBackend(unique_name)
        return
    kafka = KafkaBackend(request.getfixturevalue("bootstrap_servers"), unique_name)
    yield kafka
    kafka.close()


def poll_until(
    backend: Backend, source: Source, count: int, max_records: int = 100, *, sizes: list[int] | None = None
) -> list[RawRecord]:
    """Poll until `count` records came (or the backend's patience ran out); `sizes` hears each poll's size."""
    records: list[RawRecord] = []
    deadline = time.monotonic() + backend.patience
    while len(records) < count and time.monotonic() < deadline:
        polled = source.poll(max_records, 0.1)
        if sizes is not None:
            sizes.append(len(polled))
        records += polled
    return records


def poll_for(backend: Backend, source: Source, seconds: float) -> list[RawRecord]:
    """Everything polled during `seconds` (at least three polls; the fake has nothing to wait for)."""
    records: list[RawRecord] = []
    deadline, polls = time.monotonic() + min(seconds, backend.patience), 0
    while polls < 3 or time.monotonic() < deadline:
        records += source.poll(100, 0.1)
        polls += 1
    return records


def by_partition(records: list[RawRecord]) -> dict[int, list[int]]:
    offsets: dict[int, list[int]] = {}
    for r in records:
        offsets.setdefault(r.coord.partition, []).append(r.coord.offset)
    return offsets


def joined(backend: Backend, group: Group, source: Source) -> None:
    """Until the group assigned something (on Kafka, the first join of a group takes seconds)."""

    def assigned() -> bool:
        assert source.poll(100, 0.1) == [], "records before any was to come"
        return bool(group.assigned())

    wait_for(assigned, backend.patience, interval=0, message="nothing assigned")


# ------------------------------------------------------------------------------ poll


def test_poll_hands_out_every_record_once_in_offset_order_per_partition_at_most_max_records(backend: Backend) -> None:
    source, group = backend.member(), Group()
    produced = backend.produce(0, 7) + backend.produce(1, 5)
    backend.subscribe(source, group)
    sizes: list[int] = []
    records = poll_until(backend, source, len(produced), max_records=3, sizes=sizes)
    assert max(sizes) <= 3, f"a poll returned more than max_records: {sizes}"
    assert by_partition(records) == {0: list(range(7)), 1: list(range(5))}
    assert sorted(records, key=lambda r: (r.coord.partition, r.coord.offset)) == produced, "key, value, headers, time"
    assert group.events[0] == ("assign", [(backend.topic, 0), (backend.topic, 1)]), "assigned before any record"
    assert poll_for(backend, source, 0.5) == [], "nothing twice"


def test_close_revokes_every_assigned_partition_also_those_nothing_came_from(backend: Backend) -> None:
    source, group = backend.member(), Group()
    backend.produce(0, 2)
    backend.subscribe(source, group)
    assert by_partition(poll_until(backend, source, 2)) == {0: [0, 1]}
    source.close()
    assert group.events[-1] == ("revoke", [(backend.topic, 0), (backend.topic, 1)])


# ------------------------------------------------------------------------------ commit


def test_commit_is_synchronous_and_says_it_committed(backend: Backend) -> None:
    source, group = backend.member(), Group()
    backend.produce(0, 4)
    backend.produce(1, 2)
    backend.subscribe(source, group)
    assert len(poll_until(backend, source, 6)) == 6
    assert source.commit({(backend.topic, 0): 4, (backend.topic, 1): 1}) is True
    assert backend.committed() == {(backend.topic, 0): 4, (backend.topic, 1): 1}, "committed when commit returned"
    assert source.commit({(backend.topic, 1): 2}) is True
    assert backend.committed() == {(backend.topic, 0): 4, (backend.topic, 1): 2}, (
        "a partition left out keeps its offset"
    )


# ------------------------------------------------------------------------------ pause and resume


def test_pause_holds_records_back_and_resume_goes_on_where_they_stopped(backend: Backend) -> None:
    source, group = backend.member(), Group()
    backend.produce(0, 6)
    backend.subscribe(source, group)
    before = poll_until(backend, source, 1, max_records=2)
    source.pause()
    backend.produce(0, 3)
    backend.produce(1, 3)
    assert poll_for(backend, source, 1.5) == [], "polled while paused"
    source.resume()
    after = poll_until(backend, source, 12 - len(before))
    assert by_partition(before + after) == {0: list(range(9)), 1: list(range(3))}, "no gap, nothing twice"


def test_a_partition_assigned_during_a_pause_stays_paused_until_resume(backend: Backend) -> None:
    """A partition this member never held before its pause is given to it during the pause (the
    other member left). Under exactly-once: `start_at` names every partition's position, so that
    fetching starts at once, with no committed offset to look up first; and that position holds
    though the partition is paused as soon as it is assigned (offset 1, not the log's start:
    librdkafka once lost an assigned offset to a pause that followed it, librdkafka#2190)."""
    source, group = backend.member(), Group()
    backend.produce(0, 1)
    backend.produce(1, 1)
    backend.subscribe(source, group, start_at=lambda partitions: dict.fromkeys(partitions, 1))
    joined(backend, group, source)
    assert poll_for(backend, source, 0.5) == [], "polled below where start_at started"
    backend.another_member_joins(source, group)
    source.pause()
    backend.produce(0, 3)
    backend.produce(1, 3)
    backend.the_other_member_leaves(source, group)  # asserts that nothing is polled meanwhile
    assert poll_for(backend, source, 1.5) == [], "polled while paused"
    source.resume()
    assert by_partition(poll_until(backend, source, 6)) == {0: [1, 2, 3], 1: [1, 2, 3]}


# ------------------------------------------------------------------------------ start_at (exactly-once)


def test_start_at_is_asked_after_on_assign_and_the_partitions_it_names_start_there(backend: Backend) -> None:
    source, group = backend.member(), Group()
    backend.produce(0, 5)
    backend.produce(1, 5)

    def start_at(partitions: list[TopicPartition]) -> dict[TopicPartition, int]:
        group.events.append(("start_at", sorted(partitions)))
        return {(backend.topic, 0): 3}

    backend.subscribe(source, group, start_at=start_at)
    records = poll_until(backend, source, 7)
    assert by_partition(records) == {0: [3, 4], 1: [0, 1, 2, 3, 4]}, "partition 1 from its committed offset (none)"
    both = [(backend.topic, 0), (backend.topic, 1)]
    assert group.events[:2] == [("assign", both), ("start_at", both)]


# ------------------------------------------------------------------------------ lag


def test_lag_is_none_or_exact(backend: Backend) -> None:
    source, group = backend.member(), Group()
    assert source.lag() is None, "not in the group yet: unknown, not 0"
    backend.produce(0, 4)
    backend.produce(1, 4)
    backend.subscribe(source, group)
    seen: list[RawRecord] = []
    while len(by_partition(seen)) < PARTITIONS:  # a record of each partition, one poll at a time
        polled = poll_until(backend, source, 1, max_records=1)
        assert polled, f"no more records after {[r.coord for r in seen]}"
        seen += polled

    def exact_or_unknown() -> bool:
        lag = source.lag()
        assert lag in (None, 8 - len(seen)), f"lag {lag} with {len(seen)} of 8 records polled"
        return lag is not None or not backend.knows_lag

    wait_for(exact_or_unknown, backend.patience, interval=0.05, message="lag never known")
    seen += poll_until(backend, source, 8 - len(seen))
    assert len(seen) == 8
    wait_for(lambda: source.lag() in ((0,) if backend.knows_lag else (0, None)), backend.patience)
