"""Line (d) of the Avro peers section: Quix Streams' own PostgreSQLSink, run with the Python of the
benchmark's separate Quix venv (see avro_peers.quix_python). Values are decoded by Quix's
AvroDeserializer through the registry; the sink upserts on the primary key `id`
(`upsert_on_primary_key=True`) and creates its own table. `include_metadata=False` so that it
writes the same ten columns as the other lines (no `__key`/`timestamp` columns). Everything else
is Quix's default (commit/checkpoint interval 5 s, the sink writes each checkpoint's batch).
Runs until SIGTERM.

    quix-venv/bin/python benchmarks/quix_consumer.py BOOTSTRAP TOPIC GROUP REGISTRY_URL HOST PORT DB USER TABLE
"""

from __future__ import annotations

import sys

from quixstreams import Application
from quixstreams.models.serializers.avro import AvroDeserializer
from quixstreams.models.serializers.schema_registry import SchemaRegistryClientConfig
from quixstreams.sinks.community.postgresql import PostgreSQLSink


def main(
    bootstrap: str, topic: str, group: str, registry: str, host: str, port: str, db: str, user: str, table: str
) -> None:
    app = Application(
        broker_address=bootstrap,
        consumer_group=group,
        auto_offset_reset="earliest",
        auto_create_topics=False,
        consumer_extra_config={"session.timeout.ms": 6000},
        loglevel="WARNING",
    )
    source = app.topic(
        topic,
        key_deserializer="bytes",
        value_deserializer=AvroDeserializer(schema_registry_client_config=SchemaRegistryClientConfig(url=registry)),
    )
    sink = PostgreSQLSink(
        host=host,
        port=int(port),
        dbname=db,
        user=user,
        password="",
        table_name=table,
        primary_key_columns="id",
        upsert_on_primary_key=True,
        include_metadata=False,
    )
    app.dataframe(source).sink(sink)
    app.run()


if __name__ == "__main__":
    main(*sys.argv[1:10])
