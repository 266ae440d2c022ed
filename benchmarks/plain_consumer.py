"""Line (c) of the Avro peers section: the plain single-process consumer a person would write by
hand. confluent-kafka consumer, Confluent wire format decoded with fastavro `schemaless_reader`
(writer schema fetched once per id from the registry), rows upserted with pg_merge.Merger
(binary COPY + INSERT … SELECT DISTINCT ON … ON CONFLICT), offsets committed synchronously after
each database commit. A batch is written when it holds BATCH rows or when a poll comes back empty,
and when partitions are revoked (several of these processes in one group, line (cx2): what it
holds is written and committed before its partitions move, and a commit the rebalance refuses is
skipped; the new owner reads those records again, and the upsert takes them again). No
dead-lettering, no schema mapping, no evolution, no bad-row isolation: a floor, not a product.

    python benchmarks/plain_consumer.py BOOTSTRAP TOPIC GROUP REGISTRY_URL CONNINFO TABLE BATCH
"""

from __future__ import annotations

import io
import json
import signal
import sys
import urllib.request
from pathlib import Path
from typing import Any

if not __package__:  # run as a script: import `benchmarks.*` from the repository root
    sys.path[0] = str(Path(__file__).resolve().parents[1])

import fastavro
import psycopg
from confluent_kafka import Consumer, KafkaException, TopicPartition

from benchmarks.pg_merge import COLUMNS, Merger


def main(bootstrap: str, topic: str, group: str, registry: str, conninfo: str, table: str, batch: int) -> int:
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": group,
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "session.timeout.ms": 6000,
        }
    )
    stopping = False

    def stop(_signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    schemas: dict[int, Any] = {}

    def schema(schema_id: int) -> Any:
        if schema_id not in schemas:
            with urllib.request.urlopen(f"{registry}/schemas/ids/{schema_id}", timeout=10) as answer:
                schemas[schema_id] = fastavro.parse_schema(json.loads(json.loads(answer.read())["schema"]))
        return schemas[schema_id]

    rows: list[tuple[Any, ...]] = []
    positions: dict[int, int] = {}
    with psycopg.connect(conninfo) as conn:
        merger = Merger(conn, table)

        def flush() -> None:
            if rows:
                merger.write(rows)
                rows.clear()
            if positions:
                offsets = [TopicPartition(topic, p, o) for p, o in positions.items()]
                positions.clear()
                try:
                    consumer.commit(offsets=offsets, asynchronous=False)
                except KafkaException:  # the group is rebalancing: the new owner reads them again
                    pass

        consumer.subscribe([topic], on_revoke=lambda _consumer, _partitions: flush())

        reader = fastavro.schemaless_reader
        while not stopping:
            messages = consumer.consume(num_messages=5000, timeout=0.2)
            for message in messages:
                if message.error() is not None:
                    continue
                value = message.value()
                record = reader(io.BytesIO(value[5:]), schema(int.from_bytes(value[1:5], "big")), None)
                rows.append(tuple(record[c] for c in COLUMNS))
                positions[message.partition()] = message.offset() + 1
            if len(rows) >= batch or not messages:
                flush()
        flush()
    consumer.close()
    return 0


if __name__ == "__main__":
    a = sys.argv[1:8]
    sys.exit(main(a[0], a[1], a[2], a[3], a[4], a[5], int(a[6])))
