"""The sink's HTTP endpoints (`SINK_HTTP_PORT`): `/metrics`, `/livez`, `/readyz`.

A stdlib `ThreadingHTTPServer` on a daemon thread; `/metrics` is prometheus-client's exposition of
a registry of our own (process and platform collectors, plus gauges read from `Health` at scrape
time); `/livez` and `/readyz` answer 200 or 503 with a short JSON body saying why.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import CollectorRegistry, PlatformCollector, ProcessCollector
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import Collector

from ..errors import ConfigError
from ..health import Health, Verdict

log = logging.getLogger("sink.http")

GAUGES = {
    "up": "1 while the sink process runs.",
    "live": "1 while /livez answers 200 (the worker loop's heartbeat is recent).",
    "ready": "1 while /readyz answers 200 (partitions assigned, not retrying past the threshold).",
    "partitions_assigned": "Partitions this member holds.",
    "heartbeat_age_seconds": "Seconds since the worker loop's last heartbeat (since start-up before the first).",
    "retrying": "1 while an outage is being retried (consumption paused).",
    "retry_seconds": "Seconds the current retry has lasted (0 when not retrying).",
}


class HealthCollector(Collector):
    """`sink_<gauge>{sink="<SINK_NAME>"}` from the Health object, computed at each scrape."""

    def __init__(self, health: Health, sink_name: str) -> None:
        self.health = health
        self.sink_name = sink_name

    def collect(self) -> Iterator[GaugeMetricFamily]:
        values = self.health.gauges()
        for name, text in GAUGES.items():
            family = GaugeMetricFamily(f"sink_{name}", text, labels=["sink"])
            family.add_metric([self.sink_name], values[name])
            yield family


def metrics_registry(health: Health, sink_name: str) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=True)
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    registry.register(HealthCollector(health, sink_name))
    return registry


class HttpServer:
    """Serve until `close()`; the thread is a daemon, so a forgotten server never holds the exit."""

    def __init__(self, host: str, port: int, health: Health, registry: CollectorRegistry) -> None:
        handler = type("Handler", (_Handler,), {"health": health, "registry": registry})
        try:
            self._server = ThreadingHTTPServer((host, port), handler)
        except OSError as exc:
            raise ConfigError(
                f"SINK_HTTP_PORT: cannot listen on {host}:{port} ({exc.strerror or exc}); "
                "choose a free port, or 0 / unset for no HTTP server"
            ) from None
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, name="sink-http", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def serve(host: str, port: int | None, health: Health, sink_name: str) -> HttpServer | None:
    """Start the endpoints on host:port; None when the port is unset or 0 (no server)."""
    if not port:
        return None
    server = HttpServer(host, port, health, metrics_registry(health, sink_name))
    log.info("serving /metrics, /livez and /readyz on %s:%d", host, server.port)
    return server


class _Handler(BaseHTTPRequestHandler):
    health: Health
    registry: CollectorRegistry
    server_version = "kafka-sql-sink"
    sys_version = ""

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        if path == "/metrics":
            encoder, content_type = choose_encoder(self.headers.get("Accept", ""))
            self._send(200, content_type, encoder(self.registry))
        elif path == "/livez":
            self._verdict(self.health.liveness())
        elif path == "/readyz":
            self._verdict(self.health.readiness())
        else:
            self._send(404, "text/plain; charset=utf-8", b"not found: try /metrics, /livez or /readyz\n")

    def do_HEAD(self) -> None:
        self.do_GET()

    def _verdict(self, verdict: Verdict) -> None:
        body = json.dumps(verdict.as_json()).encode() + b"\n"
        self._send(200 if verdict.ok else 503, "application/json", body)

    def _send(self, status: int, content_type: str, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:  # probes every few seconds: keep them out of the log
        log.debug("%s %s", self.address_string(), format % args)
