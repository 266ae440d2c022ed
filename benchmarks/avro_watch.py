"""Run one line of the avro peers section as a process and time it from its start until its table
holds the exact final state of the dataset (see avro_peers for the method); peak RSS (VmHWM) and
CPU seconds (utime+stime) come from /proc/<pid>: CPU when the final state was seen, RSS sampled
until SIGTERM."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import avro_data
from .avro_db import POSTGRESQL, Watcher, kind

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
VERIFY_GRACE_S = 15.0


@dataclass
class Line:
    key: str  # a, b, c, d, e, json, a/4, a/2; a/mariadb, b/mariadb, a/sqlite, b/sqlite
    label: str
    count: int  # records the line stands for
    seconds: float | None  # None: not measured
    cpu: float | None = None
    rss_mb: float | None = None
    wrong: str = ""
    note: str = ""
    extra: dict[str, Any] = field(default_factory=dict)
    database: str = POSTGRESQL  # where its table is: its (b) is that database's limit line

    @property
    def rate(self) -> float | None:
        return self.count / self.seconds if self.seconds else None


def proc_stats(pid: int) -> tuple[float, float]:
    """(peak RSS in MB from VmHWM, CPU seconds utime+stime) of a live process; (0, 0) if gone."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0, 0.0
    hwm = next((int(line.split()[1]) for line in status.splitlines() if line.startswith("VmHWM:")), 0)
    return hwm / 1024, _cpu_seconds(stat)


def _cpu_seconds(stat: str) -> float:
    """utime+stime of a process's or thread's `/proc/.../stat` line, in seconds."""
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def thread_cpu(pid: int) -> dict[str, float]:
    """CPU seconds (utime+stime) of a live process's threads, summed by thread name; {} if gone.
    librdkafka names its threads rdk:main, rdk:broker<n>...; Python 3.11 names none of its own,
    so the loop and the writer thread are counted together under the process's name."""
    totals: dict[str, float] = {}
    try:
        tasks = list(Path(f"/proc/{pid}/task").iterdir())
    except OSError:
        return totals
    for task in tasks:
        try:
            name = (task / "comm").read_text().strip()
            stat = (task / "stat").read_text()
        except OSError:
            continue
        if name.startswith("rdk:"):  # rdk:broker1, rdk:broker-1 ... -> rdk:broker
            name = "rdk:" + name[4:].rstrip("0123456789/-")
        totals[name] = totals.get(name, 0.0) + _cpu_seconds(stat)
    return totals


def run_line(
    key: str,
    label: str,
    command: list[str],
    log_path: Path,
    url: str,
    table: str,
    count: int,
    env: dict[str, str] | None = None,
    py_spy: Path | None = None,
    copies: int = 1,
) -> Line:
    """Start `command` (`copies` processes of it, one consumer group: logs `log_path`, then
    `<stem>.2.log`...), wait until `table` (in the database at SQLAlchemy `url`) holds the final
    state of a `count` dataset, stop them. CPU and peak RSS are the processes' sums. With `py_spy`,
    py-spy samples the first process (CPU only, 100 Hz) into that file (raw stacks)."""
    probe = avro_data.last_per_partition(count)
    expected = avro_data.expected_checksum(count)
    timeout = 120 + count / 1000
    environment = {k: v for k, v in os.environ.items() if not k.upper().startswith("SINK_")}
    environment.update(env or {})
    line = Line(key, label, avro_data.even(count), None, database=kind(url))
    logs = [log_path, *(log_path.with_suffix(f".{n}.log") for n in range(2, copies + 1))]
    with contextlib.ExitStack() as stack, Watcher(url) as watcher:
        files = [stack.enter_context(open(path, "wb")) for path in logs]
        started = time.perf_counter()
        processes = [
            subprocess.Popen(
                command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=environment, cwd=ROOT
            )
            for log in files
        ]
        spy = None
        if py_spy is not None:
            spy_command = [str(BIN / "py-spy"), "record", "--format", "raw", "--rate", "100", "--nonblocking"]
            spy_command += ["-o", str(py_spy), "--pid", str(processes[0].pid)]
            spy = subprocess.Popen(spy_command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            rss, cpu = 0.0, 0.0
            while True:
                now = time.perf_counter() - started
                for process in processes:
                    if process.poll() is not None:
                        raise RuntimeError(f"{label} exited early with code {process.returncode}")
                sampled_rss, sampled_cpu = _stats(processes)
                rss, cpu = max(rss, sampled_rss), sampled_cpu or cpu
                if now > timeout:
                    line.seconds, line.wrong = now, f"WRONG: not at the final state after {timeout:.0f} s"
                    break
                if watcher.last_versions(table, list(probe)) == probe:
                    line.seconds = now
                    sampled_rss, sampled_cpu = _stats(processes)  # at the moment it was done
                    line.extra["threads"] = _threads(processes)
                    rss, cpu = max(rss, sampled_rss), sampled_cpu or cpu
                    _verify(line, watcher, table, expected, started)
                    break
                time.sleep(0.1)
            line.rss_mb, line.cpu = max(rss, _stats(processes)[0]), cpu
            for process in processes:
                process.send_signal(signal.SIGTERM)
            for process in processes:
                _stop(process, line)
            if spy is not None:
                spy.wait(timeout=60)
            return line
        except BaseException as exc:
            for process in processes:  # all killed first: a wait that times out leaves none running
                process.kill()
            for process in processes:
                process.wait(timeout=10)
            if spy is not None:
                spy.kill()
                spy.wait(timeout=10)
            tails = [_tail(path) for path in logs]
            raise RuntimeError("\n".join([str(exc), *tails])) from exc


def _tail(path: Path) -> str:
    lines = path.read_text(errors="replace").splitlines()[-15:]
    return "\n".join([f"--- {path} (last lines) ---", *lines])


def _stats(processes: list[subprocess.Popen[bytes]]) -> tuple[float, float]:
    """(peak RSS, CPU seconds) summed over the processes (see proc_stats)."""
    stats = [proc_stats(process.pid) for process in processes]
    return sum(rss for rss, _ in stats), sum(cpu for _, cpu in stats)


def _threads(processes: list[subprocess.Popen[bytes]]) -> dict[str, float]:
    totals: dict[str, float] = {}
    for process in processes:
        for name, seconds in thread_cpu(process.pid).items():
            totals[name] = totals.get(name, 0.0) + seconds
    return totals


def _stop(process: subprocess.Popen[bytes], line: Line) -> None:
    """Wait for a process sent SIGTERM; kill it after 30 s. Notes on `line` what went wrong."""
    try:
        code = process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        code = process.wait(timeout=10)
        line.note = f"{line.note}; did not stop on SIGTERM within 30 s".lstrip("; ")
    if code not in (0, -signal.SIGTERM):
        line.note = f"{line.note}; exit code {code}".lstrip("; ")


def _verify(line: Line, watcher: Watcher, table: str, expected: tuple[int, int, int], started: float) -> None:
    """The exact check once the probe saw the last records; a late match moves the time."""
    deadline = time.perf_counter() + VERIFY_GRACE_S
    while True:
        found = watcher.checksum(table)
        if found == expected:
            return
        if time.perf_counter() > deadline:
            line.wrong = f"WRONG: (rows, sum seq, sum hash) = {found}, expected {expected}"
            return
        time.sleep(1.0)
        line.seconds = time.perf_counter() - started
