"""The exception tree. Three kinds of failure, three reactions:

    SinkError
      RecordError            a bad record: dead-letter it (errors.tolerance=all) or stop (none)
        DecodeError            bytes that the configured format cannot read
        MappingError           a decoded record that cannot become a row (missing key, bad type)
        RecordRejected         the database refused the row (SQLSTATE class 22 data, 23 integrity,
                               or a value the driver cannot send)
        SchemaRefused          the record needs a table change the sink will not make (the
                               SchemaEvolutionRefused of one record: an unsafe type change, a
                               name the database cannot hold, too many columns)
      RetriableError         the world is down: pause, keep polling, back off, retry; never dead-letter
        DatabaseUnavailable    SQLSTATE 08*, 40001, 40P01, 53*, 57P01, lost connections
        BrokerUnavailable      Kafka cannot be reached
        RegistryUnavailable    the Schema Registry does not answer
      FatalError             an operator is needed: stop without committing, exit non-zero
        ConfigError            bad or contradictory configuration (exit code 2)
        SchemaEvolutionRefused a schema change the sink will not apply on its own (the writer turns
                               it into SchemaRefused record errors for the records that need it)
        DeadLetterUnavailable  the dead-letter or report topic cannot be written
        DeadLetterFlood        too many bad records in a row or in the window: stop, not drain
        ResetRefused           `sink reset-offsets` cannot do what was asked (exit code 2)
      SchemaNotFound         a schema (or one it references) the registry lacks; also a LookupError,
                             as the SchemaSource port promises: the format makes it a DecodeError
      Fenced                 exactly-once: another worker owns these partitions now (the offsets
                             table's epoch moved); not a failure: roll back, drop their work, go on

Adapters classify at the edge by code (SQLSTATE, KafkaError.code()), never by message text.
"""

from __future__ import annotations

from .model import Coord, Stage


class SinkError(Exception):
    """Base of every error the sink raises on purpose."""


class RecordError(SinkError):
    stage: Stage = Stage.TASK_PUT

    def __init__(
        self, message: str, *, stage: Stage | None = None, coord: Coord | None = None, detail: str | None = None
    ) -> None:
        super().__init__(f"{message}: {detail}" if detail else message)
        if stage is not None:
            self.stage = stage
        self.coord = coord
        self._safe = message

    @property
    def safe_reason(self) -> str:
        """The reason without record values, for logs: the sink's own words, never `detail` (a
        library's message, which may quote the value it choked on)."""
        return self._safe


class DecodeError(RecordError):
    stage = Stage.VALUE_CONVERTER


class MappingError(RecordError):
    stage = Stage.TRANSFORMATION


class RecordRejected(RecordError):
    """The database refused a row, with its own reason: `sqlstate` (PostgreSQL), `code` (the
    database's code and condition name, e.g. "SQLSTATE 23514 check_violation", "MySQL 1062
    ER_DUP_ENTRY", "SQLITE_CONSTRAINT_CHECK"), `constraint` and `column` where the database names them.
    The message is the database's own and may quote values; `safe_reason` never does."""

    def __init__(
        self,
        message: str,
        *,
        sqlstate: str | None = None,
        coord: Coord | None = None,
        code: str | None = None,
        constraint: str | None = None,
        column: str | None = None,
    ) -> None:
        super().__init__(message, stage=Stage.TASK_PUT, coord=coord)
        self.sqlstate = sqlstate
        self.code = code or (f"SQLSTATE {sqlstate}" if sqlstate else None)
        self.constraint = constraint
        self.column = column

    def for_record(self, coord: Coord) -> RecordRejected:
        """The same rejection, attributed to one record (a batch failure bisected down to it)."""
        return RecordRejected(
            str(self),
            sqlstate=self.sqlstate,
            coord=coord,
            code=self.code,
            constraint=self.constraint,
            column=self.column,
        )

    @property
    def safe_reason(self) -> str:
        parts = [f"rejected by the database ({self.code or 'no code'})"]
        if self.constraint:
            parts.append(f"constraint {self.constraint}")
        if self.column:
            parts.append(f"column {self.column}")
        return "; ".join(parts)


class RetriableError(SinkError):
    pass


class DatabaseUnavailable(RetriableError):
    def __init__(self, message: str, *, sqlstate: str | None = None) -> None:
        super().__init__(message)
        self.sqlstate = sqlstate


class BrokerUnavailable(RetriableError):
    pass


class RegistryUnavailable(RetriableError):
    pass


class FatalError(SinkError):
    exit_code: int = 1


class ConfigError(FatalError):
    exit_code = 2


class SchemaEvolutionRefused(FatalError):
    """`fix`: DDL that would let the records in (e.g. the ALTER TABLE to run by hand), if known."""

    def __init__(self, message: str, *, fix: object = None) -> None:
        super().__init__(message)
        self.fix = fix


class SchemaRefused(RecordError):
    """One record needs a table change the sink will not make; the message names the table, the
    column, the types and the fix (never a value)."""


class DeadLetterUnavailable(FatalError):
    pass


class DeadLetterFlood(FatalError):
    """Too many bad records: stop instead of draining a broken topic into the dead-letter queue."""


class SchemaNotFound(SinkError, LookupError):
    """A schema (or, with `reference` set to its name, a schema it references) the registry lacks."""

    def __init__(self, message: str, reference: str | None = None) -> None:
        super().__init__(message)
        self.reference = reference


class ResetRefused(FatalError):
    """`sink reset-offsets` cannot be carried out as asked: a bad argument, an unknown topic or
    partition, a group that still has members. Exit code 2, one line, nothing changed."""

    exit_code = 2


class RecordStop(FatalError):
    """A record error with errors.tolerance=none: stop at this record, commit nothing past it.
    `reason` defaults to the error's value-free `safe_reason` (what the exit line shows)."""

    def __init__(self, coord: Coord, error: RecordError, reason: str | None = None) -> None:
        super().__init__(f"record {coord} failed at {error.stage}: {reason or error.safe_reason}")
        self.coord = coord
        self.error = error


class Fenced(SinkError):
    """Exactly-once: the offsets table refused this worker's compare-and-set for `partitions` (their
    epoch moved: another worker claimed them). The transaction is rolled back and the worker drops
    what it holds of them, as on a revocation; not a record error, not an outage, not fatal."""

    def __init__(self, partitions: frozenset[tuple[str, int]]) -> None:
        names = ", ".join(f"{t}/{p}" for t, p in sorted(partitions))
        super().__init__(f"partitions {names} are owned by another worker now (offsets table epoch moved)")
        self.partitions = partitions
