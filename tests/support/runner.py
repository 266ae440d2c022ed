"""Run the sink in-process for integration tests: `build_worker(settings)` on a thread.

The worker is the real one (real consumer group, real database); only the process boundary is
missing, so a test can wait for committed offsets and stop the worker as SIGTERM would.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from sink.cli import build_worker
from sink.config import Settings, load_settings
from sink.worker import Worker
from tests.support.kafka import SESSION_TIMEOUT_MS, committed_offsets, wait_for


def sink_env(bootstrap: str, database_url: str, topics: str, group: str, **extra: Any) -> dict[str, str]:
    """A complete SINK_* environment; `extra` keys are names without the prefix (insert_mode=...)."""
    env = {
        "SINK_BOOTSTRAP_SERVERS": bootstrap,
        "SINK_DATABASE_URL": database_url,
        "SINK_TOPICS": topics,
        "SINK_GROUP_ID": group,
        "SINK_CONSUMER__SESSION_TIMEOUT_MS": str(SESSION_TIMEOUT_MS),
        "SINK_AUTO_CREATE": "true",
        "SINK_BATCH_MAX_WAIT_MS": "100",
    }
    env.update({f"SINK_{key.upper()}": str(value) for key, value in extra.items()})
    return env


@dataclass
class RunningSink:
    worker: Worker
    settings: Settings
    thread: threading.Thread
    result: dict[str, Any] = field(default_factory=dict)

    @property
    def exit_code(self) -> int | None:
        return self.result.get("code")

    def wait_committed(self, topic: str, ends: Mapping[int, int], timeout: float = 60.0) -> None:
        """Wait until the group committed `ends[partition]` (the offset after the last record) on each
        partition: every record up to there has settled in the database."""
        group = self.settings.effective_group_id
        bootstrap = self.settings.bootstrap_servers

        def done() -> bool:
            if not self.thread.is_alive():
                raise AssertionError(f"the worker stopped early with exit code {self.exit_code}: {self.result}")
            committed = committed_offsets(bootstrap, group, topic, list(ends))
            return all((committed.get(p) or 0) >= end for p, end in ends.items())

        wait_for(done, timeout, interval=0.25, message=f"group {group} did not commit {dict(ends)} on {topic}")

    def stop(self, timeout: float = 30.0) -> int | None:
        self.worker.stop()
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "the worker did not stop"
        return self.exit_code


@contextmanager
def running_sink(env: Mapping[str, str], expect_exit: int | None = 0) -> Iterator[RunningSink]:
    """Build the worker from `env` exactly as `sink run` does and run it on a thread; on exit stop it
    (flush, commit, leave the group) and check its exit code."""
    settings = load_settings([], environ=env)
    worker, closeables = build_worker(settings)
    result: dict[str, Any] = {}

    def main() -> None:
        try:
            result["code"] = worker.run()
        except BaseException as exc:  # surfaces in the test, not only in the thread's stderr
            result["error"] = exc
            raise

    thread = threading.Thread(target=main, name="sink-worker", daemon=True)
    running = RunningSink(worker, settings, thread, result)
    thread.start()
    try:
        yield running
    finally:
        running.stop()
        for closeable in closeables:
            (getattr(closeable, "close", None) or closeable.dispose)()
    assert "error" not in result, f"the worker raised {result.get('error')!r}"
    if expect_exit is not None:
        assert running.exit_code == expect_exit
