"""The Avro peers dataset (issue 7): pure helpers, no Kafka, no database.

N records (N even) with K = N/2 distinct ids: record i carries id = i % K, so records 0..K-1 insert
every id and records K..N-1 update each of them once (half the records are updates). Every
version of an id goes to partition id % PARTITIONS, so the last record of each partition is the
last version of its id, and a consumer that keeps per-partition order has reached the final state
once those few rows are visible. The final version of id is record id + K.

Ten fields: long id, two strings, int (`seq` = i, the version), two doubles, boolean,
timestamp-millis, timestamp-micros and a ~40-character string (`note`, which names i).

The checksum of a table is (rows, sum(seq), sum(md5 prefix of note)), computed in SQL (PostgreSQL,
MariaDB) or in Python from the rows read back (SQLite, `checksum_of`): it only matches when every
id holds its last version.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import struct
from collections.abc import Iterable, Iterator
from typing import Any

import fastavro

PARTITIONS = 4
BASE_TIME = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
CITIES = ("Lisbon", "Porto", "Braga", "Faro", "Coimbra", "Aveiro", "Evora")

VALUE_SCHEMA: dict[str, Any] = {
    "type": "record",
    "name": "Order",
    "namespace": "bench",
    "fields": [
        {"name": "id", "type": "long"},
        {"name": "name", "type": "string"},
        {"name": "city", "type": "string"},
        {"name": "seq", "type": "int"},
        {"name": "price", "type": "double"},
        {"name": "score", "type": "double"},
        {"name": "active", "type": "boolean"},
        {"name": "created_at", "type": {"type": "long", "logicalType": "timestamp-millis"}},
        {"name": "updated_at", "type": {"type": "long", "logicalType": "timestamp-micros"}},
        {"name": "note", "type": "string"},
    ],
}
COLUMNS = tuple(f["name"] for f in VALUE_SCHEMA["fields"])
PARSED_SCHEMA = fastavro.parse_schema(VALUE_SCHEMA)


def even(count: int) -> int:
    """The dataset size actually used for a requested count (even, at least 2)."""
    return max(2, count - count % 2)


def distinct(count: int) -> int:
    return even(count) // 2


def note(i: int) -> str:
    return f"note of record {i:010d} for the benchmark"  # 41 characters


def values(i: int, count: int) -> dict[str, Any]:
    """Record i of a dataset of `count` records, as Python values (what fastavro decodes)."""
    key = i % distinct(count)
    return {
        "id": key,
        "name": f"customer-{i % 9973:05d}",
        "city": CITIES[i % len(CITIES)],
        "seq": i,
        "price": (i % 100_000) / 100,
        "score": i * 0.37 + 0.25,
        "active": i % 3 != 0,
        "created_at": BASE_TIME + dt.timedelta(milliseconds=key * 7),
        "updated_at": BASE_TIME + dt.timedelta(seconds=i, microseconds=i % 1_000_000),
        "note": note(i),
    }


def row(i: int, count: int) -> tuple[Any, ...]:
    """Record i as a tuple in COLUMNS order (the "pre-decoded" row of the limit line)."""
    v = values(i, count)
    return tuple(v[c] for c in COLUMNS)


def partition_of(key: int) -> int:
    return key % PARTITIONS


def key_bytes(key: int) -> bytes:
    return str(key).encode()


def avro_value(schema_id: int, i: int, count: int) -> bytes:
    """Confluent wire format: magic byte 0, 4-byte big-endian schema id, Avro binary."""
    body = io.BytesIO()
    body.write(b"\x00" + struct.pack(">I", schema_id))
    fastavro.schemaless_writer(body, PARSED_SCHEMA, values(i, count))
    return body.getvalue()


def json_value(i: int, count: int) -> bytes:
    """Plain JSON of the same record (timestamps as ISO 8601 text)."""
    v = values(i, count)
    v["created_at"] = v["created_at"].isoformat()
    v["updated_at"] = v["updated_at"].isoformat()
    return json.dumps(v, separators=(",", ":")).encode()


def messages(count: int) -> Iterator[tuple[int, int, bytes]]:
    """(i, partition, key) of every record, in production order."""
    keys = distinct(count)
    for i in range(even(count)):
        key = i % keys
        yield i, partition_of(key), key_bytes(key)


def note_hash(text: str) -> int:
    """The per-row checksum term; SQL: ('x' || left(md5(note), 8))::bit(32)::bigint."""
    return int(hashlib.md5(text.encode()).hexdigest()[:8], 16)


CHECKSUM_SQL = (
    "SELECT count(*), coalesce(sum(seq), 0)::bigint, "
    "coalesce(sum(('x' || left(md5(note), 8))::bit(32)::bigint), 0)::bigint FROM {}"
)
# MariaDB: the same terms; SUM of an unsigned is a DECIMAL (exact)
MARIADB_CHECKSUM_SQL = (
    "SELECT count(*), coalesce(sum(seq), 0), "
    "coalesce(sum(CAST(CONV(LEFT(MD5(note), 8), 16, 10) AS UNSIGNED)), 0) FROM {}"
)


def checksum_of(rows: Iterable[tuple[int, str]]) -> tuple[int, int, int]:
    """(rows, sum(seq), sum(note_hash)) of (seq, note) pairs read back from a table: the checksum
    computed in Python, for a database without md5 (SQLite)."""
    count = seqs = notes = 0
    for seq, text in rows:
        count += 1
        seqs += seq
        notes += note_hash(text)
    return count, seqs, notes


def expected_checksum(count: int, applied: int | None = None) -> tuple[int, int, int]:
    """(rows, sum(seq), sum(note_hash)) once the first `applied` records (default all) are written:
    each id holds the last of its records among them (record id, or id + K once that was applied)."""
    keys = distinct(count)
    applied = even(count) if applied is None else applied
    finals = [key + keys if key + keys < applied else key for key in range(min(applied, keys))]
    return len(finals), sum(finals), sum(note_hash(note(i)) for i in finals)


def last_per_partition(count: int) -> dict[int, int]:
    """{id: seq} of the last record of each partition (the probe of the final state)."""
    keys = distinct(count)
    last: dict[int, int] = {}
    for key in range(max(0, keys - PARTITIONS), keys):
        last[key] = key + keys
    return last
