"""The end-to-end ceiling: a bare confluent-kafka group consumer that decodes nothing and writes
nowhere, but joins the group, consumes and commits every second exactly like `sink run` does.

    python benchmarks/bare_consumer.py BOOTSTRAP TOPIC GROUP     (runs until SIGTERM)
"""

from __future__ import annotations

import signal
import sys
import time

from confluent_kafka import Consumer, TopicPartition

COMMIT_INTERVAL_S = 1.0
MAX_RECORDS = 3000


def main(bootstrap: str, topic: str, group: str) -> int:
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": group,
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
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
    consumer.subscribe([topic])
    positions: dict[int, int] = {}
    committed: dict[int, int] = {}
    last_commit = time.monotonic()

    def commit() -> None:
        pending = {p: o for p, o in positions.items() if committed.get(p) != o}
        if pending:
            consumer.commit(offsets=[TopicPartition(topic, p, o) for p, o in pending.items()], asynchronous=False)
            committed.update(pending)

    while not stopping:
        for message in consumer.consume(num_messages=MAX_RECORDS, timeout=0.1):
            if message.error() is None:
                positions[message.partition()] = message.offset() + 1
        if time.monotonic() - last_commit >= COMMIT_INTERVAL_S:
            commit()
            last_commit = time.monotonic()
    commit()
    consumer.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:4]))
