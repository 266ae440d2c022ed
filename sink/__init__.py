"""kafka-sql-sink: Kafka topics into SQL tables, with Kafka Connect's vocabulary."""

__version__ = "0.1.0"
