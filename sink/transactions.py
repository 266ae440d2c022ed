"""The store port the writer talks through, and the transactions of one batch.

`Store`/`Transaction` are implemented by `sink.adapters.db` (and by the in-memory fakes of the
tests); `BatchTransactions` is how the writer spreads one batch over as many transactions as
isolating its rejected rows needs, announcing outcomes only once their transaction committed.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from contextlib import ExitStack

from .model import Outcome, Row, Settled
from .ports import CommitHook, OnCommit, Store, Transaction


class BatchTransactions:
    """The transactions of one batch: one, unless isolating rejected rows needs more savepoints
    than one transaction should hold; then what is settled is committed and a new one begins.
    Outcomes are announced (`committed`) only when their transaction committed."""

    def __init__(self, store: Store, max_savepoints: int, committed: OnCommit, hook: CommitHook | None = None) -> None:
        self.store = store
        self.hook = hook
        self.max_savepoints = max_savepoints
        self.committed = committed
        self._stack = ExitStack()
        self._tx: Transaction | None = None
        self._savepoints = 0
        self._pending = Settled()

    def __enter__(self) -> BatchTransactions:
        return self

    def __exit__(self, exc_type: object, exc: BaseException | None, tb: object) -> None:
        if exc is None:
            try:
                self._commit()
            except BaseException as failure:  # the hook refused (Fenced) or the commit failed: roll back
                self._stack.__exit__(type(failure), failure, failure.__traceback__)
                raise
        else:
            self._stack.__exit__(type(exc), exc, exc.__traceback__)  # roll back; the error goes on

    def current(self) -> Transaction:
        if self._tx is None:
            self._tx = self._stack.enter_context(self.store.transaction())
        return self._tx

    def settle(self, outcomes: Iterable[Outcome]) -> None:
        self._pending.add(outcomes)

    def settle_written(self, table: str, operation: str, rows: Sequence[Row]) -> None:
        """Rows written whole by `operation` (their Outcomes are made only if read)."""
        self._pending.add_written(table, operation, rows)

    def savepoint_taken(self) -> None:
        self._savepoints += 1
        if self._savepoints >= self.max_savepoints:
            self._commit()

    def _commit(self) -> None:
        hook = self.hook
        if hook is not None and self._tx is not None:
            hook.before_commit(self._tx, self._pending)
        self._stack.close()  # commits the open transaction, if any
        if hook is not None:
            hook.after_commit()
        self._tx, self._savepoints = None, 0
        pending, self._pending = self._pending, Settled()
        if pending:
            self.committed(pending)
