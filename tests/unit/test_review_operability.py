"""Review: the lag gauges while consumption is paused, and the KEDA ScaledObject against the
sink's own pause (no sockets: a fake source and the shipped manifest)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from sink.adapters.http import metrics_registry
from sink.health import Health, WatchedSource

SCALED_OBJECT = Path(__file__).resolve().parents[2] / "deploy" / "kubernetes" / "scaledobject.yaml"


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class StaleWhilePaused:
    """A source whose lag comes from watermarks cached from fetches, as KafkaSource's: a paused
    partition is not fetched, so the end of the log it knows stops where the pause found it."""

    def __init__(self) -> None:
        self.end, self.position, self.paused = 10, 10, False
        self.cached_end = 10

    def subscribe(self, on_assign: Any, on_revoke: Any) -> None:
        self.on_assign = on_assign

    def poll(self, max_records: int, timeout: float) -> list[Any]:
        if not self.paused:
            self.cached_end = self.end  # a fetch refreshes the cached watermark
        return []

    def pause(self) -> None:
        self.paused = True

    def resume(self) -> None:
        self.paused = False

    def lag(self) -> int:
        return self.cached_end - self.position

    def lag_by_partition(self) -> dict[tuple[str, int], int]:
        return {("t", 0): self.cached_end - self.position}


def lag_samples(health: Health) -> dict[str, float]:
    registry = metrics_registry(health, "s")
    return {
        f"{m.name}{dict(s.labels)}": s.value
        for m in registry.collect()
        if m.name in ("sink_consumer_lag", "sink_partition_lag")
        for s in m.samples
    }


def test_lag_is_absent_while_paused_not_the_cached_value_from_before_the_pause() -> None:
    clock = Clock()
    health = Health(clock, 60, 30)
    inner = StaleWhilePaused()
    source = WatchedSource(inner, health)
    source.subscribe(lambda partitions: None, lambda partitions: None)
    source.poll(1, 0)
    assert lag_samples(health) == {
        "sink_consumer_lag{'sink': 's'}": 0,
        "sink_partition_lag{'sink': 's', 'topic': 't', 'partition': '0'}": 0,
    }
    source.pause()  # an outage or a long write
    inner.end += 500  # produced meanwhile: 500 records behind
    clock.now += 1.5
    source.poll(1, 0)  # a short pause (a write of a second or two): the reading of just before goes on
    assert lag_samples(health)["sink_consumer_lag{'sink': 's'}"] == 0
    for _ in range(4):
        clock.now += 1.5
        source.poll(1, 0)
    stale = lag_samples(health)
    assert stale == {}, f"a paused source's cached end of log is no lag reading: {stale}"
    source.resume()
    source.poll(1, 0)  # the first poll after the pause reads the lag again
    assert lag_samples(health)["sink_consumer_lag{'sink': 's'}"] == 500


def test_keda_does_not_scale_out_on_partitions_the_sink_paused() -> None:
    """KEDA's Kafka scaler counts the group's committed lag; while the sink pauses for an outage
    its offsets stand still and the lag grows, so KEDA would add replicas (each a rebalance that
    drops what the members read) up to the partition count, for a database that is down.
    `excludePersistentLag` leaves out partitions whose committed offset did not move since the
    previous polling cycle; the sink commits every second while it makes progress, far more
    often than the polling interval, so only a stalled partition is left out."""
    (doc,) = yaml.safe_load_all(SCALED_OBJECT.read_text())
    spec = doc["spec"]
    (trigger,) = spec["triggers"]
    metadata = trigger["metadata"]
    assert metadata.get("excludePersistentLag", "false") == "true"
    assert spec["pollingInterval"] >= 5, "at least a few of the sink's 1 s commits between two readings"
    assert spec["minReplicaCount"] >= 1, "never scaled to zero: a paused group could not wake it"
