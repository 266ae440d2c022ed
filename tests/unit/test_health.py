"""sink/health.py: the verdicts behind /livez and /readyz, the gauges, and the watched source."""

from __future__ import annotations

from typing import Any

from prometheus_client import generate_latest

from sink.adapters.http import metrics_registry
from sink.health import Health, WatchedSource


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _health(clock: Clock) -> Health:
    return Health(clock, heartbeat_timeout_s=60, retry_unready_s=30)


def test_alive_while_starting_then_only_while_the_loop_beats() -> None:
    clock = Clock()
    health = _health(clock)
    clock.now += 500
    assert health.liveness().ok and health.liveness().reason.startswith("starting")
    health.beat()
    clock.now += 60
    assert health.liveness().ok
    clock.now += 1
    verdict = health.liveness()
    assert not verdict.ok and verdict.reason == "no heartbeat from the loop for 61 s (limit 60 s)"
    health.beat()
    assert health.liveness().ok


def test_ready_only_with_partitions_and_not_retrying_past_the_threshold() -> None:
    clock = Clock()
    health = _health(clock)
    health.beat()
    assert health.readiness().as_json() == {"status": "fail", "reason": "no partitions assigned"}
    health.assigned([("orders", 0), ("orders", 1)])
    assert health.readiness().as_json() == {"status": "ok", "reason": "2 partition(s) assigned"}
    health.retrying(why="a database outage")
    clock.now += 29
    health.beat()
    assert health.readiness().ok, "a short retry keeps the sink ready"
    clock.now += 1
    health.beat()
    assert health.readiness().as_json() == {"status": "fail", "reason": "retrying a database outage for 30 s"}
    health.recovered()
    assert health.readiness().ok
    health.revoked([("orders", 0)])
    assert health.readiness().reason == "1 partition(s) assigned"
    health.revoked([("orders", 1)])
    assert not health.readiness().ok


def test_retrying_keeps_the_earliest_start_and_stopping_is_unready() -> None:
    clock = Clock()
    health = _health(clock)
    health.beat()
    health.assigned([("t", 0)])
    health.retrying(since=clock.now - 40, why="first")
    health.retrying(why="second")  # still the same retry loop
    assert health.readiness().reason == "retrying first for 40 s"
    health.recovered()
    health.stopping()
    assert health.readiness().as_json() == {"status": "fail", "reason": "stopping"}
    assert health.liveness().ok


def test_a_dead_loop_is_neither_live_nor_ready() -> None:
    clock = Clock()
    health = _health(clock)
    health.beat()
    health.assigned([("t", 0)])
    clock.now += 120
    assert not health.readiness().ok and health.readiness().reason.startswith("no heartbeat")


def test_gauges_and_their_exposition() -> None:
    clock = Clock()
    health = _health(clock)
    health.beat()
    health.assigned([("t", 0), ("t", 1), ("t", 2)])
    clock.now += 2
    health.retrying(since=clock.now - 5)
    assert health.gauges() == {
        "up": 1.0,
        "live": 1.0,
        "ready": 1.0,
        "partitions_assigned": 3.0,
        "heartbeat_age_seconds": 2.0,
        "retrying": 1.0,
        "retry_seconds": 5.0,
    }
    text = generate_latest(metrics_registry(health, "orders")).decode()
    assert 'sink_partitions_assigned{sink="orders"} 3.0' in text
    assert 'sink_retry_seconds{sink="orders"} 5.0' in text
    assert "# TYPE sink_ready gauge" in text
    assert "process_cpu_seconds_total" in text and "python_info" in text


class FakeSource:
    def __init__(self) -> None:
        self.calls: list[str] = []
        self.callbacks: tuple[Any, Any] | None = None

    def subscribe(self, on_assign: Any, on_revoke: Any) -> None:
        self.callbacks = (on_assign, on_revoke)

    def poll(self, max_records: int, timeout: float) -> list[str]:
        self.calls.append(f"poll {max_records} {timeout}")
        return ["record"]

    def pause(self) -> None:
        self.calls.append("pause")

    def resume(self) -> None:
        self.calls.append("resume")

    def lag(self) -> int:
        return 7


def test_the_watched_source_reports_beats_and_assignments_and_leaves_pauses_to_the_worker() -> None:
    clock = Clock()
    health = _health(clock)
    fake = FakeSource()
    source = WatchedSource(fake, health)
    seen: list[tuple[str, list[tuple[str, int]], int]] = []
    source.subscribe(
        lambda ps: seen.append(("assign", ps, len(health.partitions))),
        lambda ps: seen.append(("revoke", ps, len(health.partitions))),
    )
    assert fake.callbacks is not None
    on_assign, on_revoke = fake.callbacks
    assert health.last_beat is None
    assert source.poll(10, 0.5) == ["record"]
    assert health.last_beat == clock.now
    on_assign([("t", 0), ("t", 1)])
    assert seen[-1] == ("assign", [("t", 0), ("t", 1)], 2), "assignment known before the worker's callback runs"
    source.pause()  # a long write or the buffer bound: still ready (an outage is the worker's to say)
    clock.now += 31
    health.beat()
    assert health.retrying_since is None and health.readiness().ok
    source.resume()
    on_revoke([("t", 1)])
    assert seen[-1] == ("revoke", [("t", 1)], 2), "still held while the worker flushes for the revocation"
    assert health.partitions == {("t", 0)}
    assert source.lag() == 7, "everything else passes through"
    assert fake.calls == ["poll 10 0.5", "pause", "resume"]
