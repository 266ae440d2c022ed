"""What the sink is doing, read at scrape time: the numbers behind `/metrics` and `/status.json`.

Pure core. `read(health)` gathers, from the Health object and the worker attached to it
(`Health.attach`, or the WatchedSource), the worker's running totals (`Counters`), its optional
`stats` (`sink.metrics.Stats`, fed per batch and per event once wired), the offsets committed per
partition and the consumer's lag. Whatever is not there yet is None or empty: a metric that is
not known is absent, never a made-up 0. `document(...)` turns a reading into the JSON of the
status page. Nothing here ever holds a record's key or value; a failure's reason is what the
router recorded (value-free unless errors.log.include.messages is on).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from .health import Health
from .metrics import History, Stats

COUNTERS = ("records_in", "rows_written", "rows_deleted", "batches", "dead_lettered", "failed", "commits")
SECRET_NAME = re.compile(r"pass|pwd|secret|token|credential|jaas|private|key\.password", re.IGNORECASE)
MASK = "***"


@dataclass(frozen=True, slots=True)
class Reading:
    counters: dict[str, int] | None  # None: no worker attached yet
    stats: Stats | None  # None: the per-batch hooks are not wired
    stale: int | None  # records an older version than the table's (SINK_UPSERT_VERSION_FIELD); None: no writer
    lag: int | None  # records behind the end of the log, all assigned partitions; None: unknown
    lag_by_partition: dict[tuple[str, int], int] | None
    committed: dict[Any, int]
    insert_mode: str | None
    include_messages: bool
    partitions: frozenset[Any] = field(default_factory=frozenset)


def read(health: Health) -> Reading:
    worker = health.watched
    counters = getattr(worker, "counters", None)
    writer_rules = getattr(getattr(worker, "writer", None), "rules", None)
    routing_rules = getattr(getattr(worker, "router", None), "rules", None)
    stats = getattr(worker, "stats", None)
    return Reading(
        counters=None if counters is None else {name: int(getattr(counters, name, 0)) for name in COUNTERS},
        stats=stats if isinstance(stats, Stats) else None,
        stale=getattr(getattr(worker, "writer", None), "stale_records", None),
        lag=health.lag,
        lag_by_partition=None if health.lag_by_partition is None else dict(health.lag_by_partition),
        committed=dict(health.committed_offsets),
        insert_mode=getattr(writer_rules, "insert_mode", None),
        include_messages=bool(getattr(routing_rules, "log_messages", False)),
        partitions=health.partitions,
    )


def document(
    health: Health,
    reading: Reading,
    sink_name: str,
    history: History | None,
    config: Mapping[str, Any],
    now: float,
) -> dict[str, Any]:
    """The status page's JSON. `now` is wall-clock time (time.time()) for the page's clock."""
    stats = reading.stats
    live, ready = health.liveness(), health.readiness()
    since = health.retrying_since
    lag = reading.lag_by_partition or {}
    partitions = sorted(set(reading.partitions) | set(reading.committed), key=_order)
    return {
        "sink": sink_name,
        "time": now,
        "uptime_seconds": health.clock() - health.started_at,
        "live": live.as_json(),
        "ready": ready.as_json(),
        "counters": reading.counters,
        "skipped": None if stats is None else stats.skipped_records,
        "reported": None if stats is None else stats.reported_records,
        "lag": reading.lag,
        "partitions": [
            {
                "topic": tp[0],
                "partition": tp[1],
                "assigned": tp in reading.partitions,
                "committed": reading.committed.get(tp),
                "lag": lag.get(tp),
            }
            for tp in partitions
            if isinstance(tp, tuple) and len(tp) == 2
        ],
        "tables": None if stats is None else _tables(stats),
        "failures": None if stats is None else _failures(stats),
        "retry": {
            "retrying": since is not None,
            "reason": health.retry_reason,
            "seconds": 0.0 if since is None else health.clock() - since,
            "retries": health.retries,
            "seconds_total": health.retry_seconds_total,
        },
        "rebalances": {"assigned": health.assignments, "revoked": health.revocations},
        "throughput": [] if history is None else history.rates(),
        "include_messages": reading.include_messages,
        "config": dict(config),
    }


def _order(tp: Any) -> tuple[str, int]:
    return (str(tp[0]), int(tp[1])) if isinstance(tp, tuple) and len(tp) == 2 else (str(tp), 0)


def _tables(stats: Stats) -> list[dict[str, Any]]:
    return [
        {
            "table": name,
            "rows": t.rows,
            "batches": t.batches,
            "seconds": t.seconds,
            "mean_batch_seconds": t.seconds / t.batches if t.batches else None,
        }
        for name, t in sorted(stats.table_view().items())
    ]


def _failures(stats: Stats) -> dict[str, Any]:
    by_reason = [
        {"topic": topic, "stage": stage, "error_class": error_class, "dead_lettered": dead, "records": n}
        for (topic, stage, error_class, dead), n in sorted(stats.failure_counts().items(), key=lambda kv: -kv[1])
    ]
    return {"by_reason": by_reason, "latest": [f.as_json() for f in reversed(stats.latest_failures())]}


# ---------------------------------------------------------------------------- configuration


def settings_summary(settings: Any) -> dict[str, Any]:
    """Every setting of a pydantic `Settings`, secrets masked: the database URL through its own
    `safe_database_url()`, any `SecretStr` as ***, the client property maps with every value
    masked (a `sasl.jaas.config` carries a password under an innocent name), URL passwords."""
    out: dict[str, Any] = {}
    for name in type(settings).model_fields:
        value = getattr(settings, name)
        if name == "database_url":
            out[name] = settings.safe_database_url()
        elif isinstance(value, Mapping):
            out[name] = {key: MASK for key in sorted(value)}
        elif hasattr(value, "get_secret_value") or SECRET_NAME.search(name):
            out[name] = MASK if value is not None else None
        elif isinstance(value, str) and "://" in value:
            out[name] = mask_url(value)
        else:
            out[name] = _plain(value)
    return out


def rules_summary(worker: Any) -> dict[str, Any]:
    """Without the settings: the worker's rule objects (plain dataclasses, no credentials in them)."""
    out: dict[str, Any] = {}
    owners = {"loop": worker, "write": getattr(worker, "writer", None), "errors": getattr(worker, "router", None)}
    for prefix, owner in owners.items():
        rules = getattr(owner, "rules", None)
        if rules is not None and dataclasses.is_dataclass(rules):
            for f in dataclasses.fields(rules):
                out[f"{prefix}.{f.name}"] = _plain(getattr(rules, f.name))
    return out


def mask_url(url: str) -> str:
    """`scheme://user:***@host/...`: the password of a URL's userinfo masked; of each URL of a
    comma-separated list (SINK_SCHEMA_REGISTRY_URL may name several)."""
    return ",".join(map(_mask_one_url, url.split(",")))


def _mask_one_url(url: str) -> str:
    try:
        parts = urlsplit(url)
        if parts.password is None:
            return url
        host = parts.netloc.rsplit("@", 1)[1]
        return urlunsplit(parts._replace(netloc=f"{parts.username}:{MASK}@{host}"))
    except ValueError:
        return MASK


def _plain(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, tuple | list | frozenset | set):
        return [_plain(v) for v in value]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    return str(value)
