"""The ports: every interface through which the core meets the outside world, each with its contract.

The core (the loop, the two halves of the work, the stages) talks only to these; the adapters in
`sink/adapters/` implement them over Kafka, SQLAlchemy/psycopg/PyMySQL and the Schema Registry, and
the tests implement them in memory (`tests/support/fakes.py`). Nothing here does I/O.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from typing import Any, Protocol, runtime_checkable

from .deadletter import Headers
from .model import ColumnType, Payload, RawRecord, Settled, TableSpec
from .plan import Plan
from .schema import Evolution

TopicPartition = tuple[str, int]
SchemaRef = int | str  # a schema id (magic byte 0) or a schema GUID as text (magic byte 1)
OnCommit = Callable[[Settled], None]  # hears the outcomes of each transaction that committed


# ------------------------------------------------------------------------------ Kafka


class Source(Protocol):
    """The consumer (`sink.adapters.kafka.KafkaSource`): a group member with manual commits. `poll`
    returns what is held now (waiting up to `timeout` only when nothing is), in offset order per
    partition; `commit` is synchronous and raises a RetriableError the worker tries again, or a
    FatalError for a refusal that cannot pass (an ACL missing on the group or topic); `pause`
    stops fetching from every assigned partition, those assigned during the pause included, while
    polling goes on (the member stays in the group); `lag` is None when unknown, never a guess."""

    def subscribe(
        self,
        on_assign: Callable[[list[TopicPartition]], None],
        on_revoke: Callable[[list[TopicPartition]], None],
        *,
        start_at: Callable[[list[TopicPartition]], Mapping[TopicPartition, int]] | None = None,
    ) -> None:
        """`start_at` (exactly-once): asked on each assignment, after `on_assign`, where the
        assigned partitions start; the partitions it names are read from that offset."""
        ...

    def poll(self, max_records: int, timeout: float) -> list[RawRecord]: ...
    def commit(self, offsets: Mapping[TopicPartition, int]) -> bool:
        """True when committed; False when skipped because the group is rebalancing."""
        ...

    def pause(self) -> None: ...
    def resume(self) -> None: ...
    def lag(self) -> int | None: ...
    def close(self) -> None: ...


class MessageTooLarge(Exception):
    """What a Publisher passes to `on_done` when a record exceeds the producer's or the topic's
    size limit (the router then sends it again, truncated)."""


class Publisher(Protocol):
    """An idempotent producer with acks=all. `on_done(None)` means acknowledged; a record over the
    size limit gets `on_done(MessageTooLarge(...))`."""

    def publish(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        headers: Headers,
        timestamp: int | None,
        on_done: Callable[[Exception | None], None],
    ) -> None: ...

    def flush(self) -> None:
        """Wait until everything published was acknowledged or failed (callbacks called)."""
        ...


# ------------------------------------------------------------------------------ decoding


class Decoder(Protocol):
    """One format (`sink.formats.*`): bytes -> Payload(data, shape, schema id). Never raises anything
    but DecodeError for bad bytes, RetriableError when the registry is away, or a FatalError."""

    def decode(self, data: bytes, header: bytes | None = None) -> Payload:
        """Decode one key or value; raise DecodeError for bytes this format cannot read. `header`:
        the value of the record's `__key_schema_id` (for a key) or `__value_schema_id` header (see
        `schema_id_headers`), which carries the framing when a serializer put it there; the
        registry formats read it, the others ignore it."""
        ...


BodyReader = Callable[[bytes], Any]  # a framed body (magic byte 0 and a schema id) -> its value


@runtime_checkable
class ReadsBodies(Protocol):
    """A registry format that can read the bodies of a schema it has already seen without a Payload
    (`formats.avro`): the per-record shortcut of `pipeline.Preparer`."""

    def body_reader(self, schema_id: SchemaRef) -> BodyReader | None:
        """What `decode` does to a body framed with magic byte 0 and this id, the value alone,
        raising on anything `decode` would report (its caller then decodes it the usual way); None
        while the schema is not known yet."""
        ...

    def body_fields(self, schema_id: SchemaRef) -> tuple[str, ...] | None:
        """The names every value the body reader of this id returns holds, in order, when the
        schema fixes them (a record); None otherwise."""
        ...


@runtime_checkable
class ChecksKeys(Protocol):
    """A format that can tell whether bytes decode without decoding them into a Payload
    (`formats.string`): how `pipeline.Preparer`'s lanes check a key they do not map."""

    def validator(self) -> Callable[[bytes], object]:
        """A callable that raises exactly when `decode` would."""
        ...


class SchemaSource(Protocol):
    """Writer schemas by id or GUID (Confluent wire format), implemented by `sink.adapters.registry`.

    Every method raises `LookupError` for a schema the registry does not have (the format turns it
    into a DecodeError naming the id; its `reference` attribute, if set, names the missing
    referenced schema), `ValueError` for one it cannot turn into what was asked, and
    `RegistryUnavailable` when the registry does not answer (an outage, never a record error).
    """

    def schema(self, ref: SchemaRef) -> tuple[str, str, list[dict[str, Any]]]:
        """(schema type: AVRO|PROTOBUF|JSON, schema text, references) of a schema id or GUID"""
        ...

    def reference(self, subject: str, version: int) -> tuple[str, str, list[dict[str, Any]]]:
        """A referenced schema (subject + version from a `references` entry), as `schema()`."""
        ...

    def protobuf_file(self, ref: SchemaRef) -> Any:
        """The `google.protobuf` FileDescriptor of a Protobuf schema, its imports resolved."""
        ...


# ------------------------------------------------------------------------------ the database


class Transaction(Protocol):
    """One database transaction of the store (`sink.adapters.db.SqlTransaction`); SQL stays in the
    dialects. Errors are classified by code: RecordRejected (the rows), DatabaseUnavailable (an
    outage), FatalError (anything else)."""

    def savepoint(self) -> AbstractContextManager[None]:
        """Roll back to the savepoint (and raise RecordRejected) when a statement inside fails."""
        ...

    def truncate(self, spec: TableSpec) -> None:
        """Remove every row of table `spec` in this transaction (rolled back with it)."""
        ...

    def apply(self, spec: TableSpec, plan: Plan, mode: str) -> dict[int, str]:
        """Run the plan's deletes, then its writes (insert/upsert/update by `mode`) into table
        `spec`; return operation names by unit index where the database told which (insert vs
        update); raise RecordRejected for data/integrity errors, including a value the driver
        cannot send."""
        ...


class Store(Protocol):
    """The target database (`sink.adapters.db.SqlStore`): tables as neutral specs, the DDL to create
    or evolve them, and transactions; `storage_type` is what a column type becomes there."""

    def table(self, name: str, schema: str | None = None) -> TableSpec | None:
        """Table `name` of `schema` (None: the connection's default) as it exists; None when it
        does not (nor its schema)."""
        ...

    def storage_type(self, column_type: ColumnType) -> ColumnType: ...
    def create_table(self, spec: TableSpec) -> None: ...
    def alter_table(self, existing: TableSpec, evolution: Evolution) -> None: ...
    def transaction(self) -> AbstractContextManager[Transaction]: ...

    def ddl_text(self, existing: TableSpec | None, wanted: TableSpec, evolution: Evolution | None) -> str:
        """The DDL that would create `wanted` (no `existing`) or apply `evolution`, as SQL text for a
        person to read and run."""
        ...


class CommitHook(Protocol):
    """Exactly-once (`offsets.BatchPositions`): `before_commit` runs in each transaction of a batch
    that is about to commit, with the outcomes it settles, and writes their positions (raising
    `Fenced` rolls the transaction back); `after_commit` runs once it committed."""

    def before_commit(self, tx: Transaction, pending: Settled) -> None: ...
    def after_commit(self) -> None: ...


# ------------------------------------------------------------------------------ exactly-once


Position = tuple[int | None, int]  # (next offset to read, or None: leave it as it is; epoch)


class OffsetStore(Protocol):
    """Exactly-once: the offsets table in the target database (`sink.adapters.db.SqlOffsets`).

    `claim` runs one transaction: the partitions' rows are inserted when missing (next offset NULL),
    their epoch bumped and (next offset, new epoch) read, which fences any earlier owner.
    `advance` runs inside a transaction of the store: per partition, a compare-and-set of its next
    offset on the epoch this worker claimed; it returns the partitions whose epoch moved (nothing
    was updated for them: the caller rolls the transaction back)."""

    def claim(self, partitions: list[TopicPartition]) -> dict[TopicPartition, Position]: ...
    def advance(self, tx: Transaction, positions: Mapping[TopicPartition, Position]) -> frozenset[TopicPartition]: ...
    def transaction(self) -> AbstractContextManager[Transaction]: ...
