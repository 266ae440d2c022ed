"""Drive `sink run --env-file FILE` as a subprocess, as a user (or a container runtime) would."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.kafka import committed_offsets, wait_for
from tests.support.runner import sink_env

SINK = Path(sys.executable).with_name("sink")


def write_env(path: Path, bootstrap: str, database_url: str, topics: str, group: str, **extra: str | int) -> Path:
    """`sink_env`'s variables as an env file at `path`."""
    lines = sink_env(bootstrap, database_url, topics, group, **extra)
    path.write_text("".join(f"{key}={value}\n" for key, value in lines.items()))
    return path


def _clean_environ() -> dict[str, str]:
    """The test runner's environment without SINK_* variables (they would win over the env file)."""
    return {k: v for k, v in os.environ.items() if not k.upper().startswith("SINK_")}


@dataclass
class SinkProcess:
    process: subprocess.Popen[bytes]
    stderr_path: Path
    stdout_path: Path

    @property
    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    @property
    def stdout(self) -> str:
        return self.stdout_path.read_text(errors="replace")

    def wait(self, timeout: float) -> int:
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"sink still running after {timeout:g}s; stderr:\n{self.stderr[-3000:]}") from None

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)


class SinkRunner:
    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.started: list[SinkProcess] = []

    def start(self, *env_files: Path) -> SinkProcess:
        n = len(self.started)
        stderr_path, stdout_path = self.tmp_path / f"sink-{n}.err", self.tmp_path / f"sink-{n}.out"
        args = [str(SINK), "run"]
        for env_file in env_files:
            args += ["--env-file", str(env_file)]
        with open(stderr_path, "wb") as err, open(stdout_path, "wb") as out:
            process = subprocess.Popen(args, stdout=out, stderr=err, stdin=subprocess.DEVNULL, env=_clean_environ())
        sink = SinkProcess(process, stderr_path, stdout_path)
        self.started.append(sink)
        return sink

    def run(self, *env_files: Path, timeout: float = 60.0) -> SinkProcess:
        sink = self.start(*env_files)
        sink.wait(timeout)
        return sink

    def run_until_committed(
        self, env_file: Path, bootstrap: str, group: str, topic: str, ends: Mapping[int, int], timeout: float = 90.0
    ) -> SinkProcess:
        """Start the sink, wait until `group` committed `ends[partition]` (the offset after the last
        record) on each partition of `topic`, stop it with SIGTERM and check it exited 0."""
        sink = self.start(env_file)
        try:
            wait_for(
                lambda: all(
                    (committed_offsets(bootstrap, group, topic, list(ends)).get(p) or 0) >= end
                    for p, end in ends.items()
                ),
                timeout,
                interval=0.3,
                message=f"the sink did not commit {dict(ends)} on {topic}",
            )
        finally:
            sink.process.send_signal(signal.SIGTERM)
        assert sink.wait(20) == 0, sink.stderr[-3000:]
        return sink


@pytest.fixture
def sink_runner(tmp_path: Path) -> Iterator[SinkRunner]:
    runner = SinkRunner(tmp_path)
    yield runner
    for sink in runner.started:  # never leave a sink behind, even when a test failed
        sink.kill()
