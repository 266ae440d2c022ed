"""Exactly-once: the offsets table and its statements, for every database.

`(group_id, topic, partition, next_offset, epoch, updated_at)`, primary key (group_id, topic,
partition). Identifiers are SQLAlchemy objects (quoted by the dialect: `partition` is a reserved
word on MariaDB), every value is a bound parameter. `next_offset` NULL: the sink has not written a
position yet (start at the group's committed offset, then auto.offset.reset).
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.dialects import mysql, postgresql, sqlite
from sqlalchemy.sql.expression import Executable

from .base import Dialect


@dataclass(frozen=True, slots=True)
class OffsetStatements:
    """Binds: `g` group, `t` topic, `p` partition; `e` the epoch claimed; `n` the next offset."""

    table: sa.Table
    insert_missing: Executable  # the partition's row, next_offset NULL and epoch 0, unless it exists
    bump: Executable  # epoch + 1 (takes the row's lock until the claim commits)
    read: Executable  # (next_offset, epoch), locking the row where the database can
    advance: Executable  # compare-and-set: next_offset = :n where the epoch is still :e
    keep: Executable  # the same compare-and-set, leaving next_offset as it is
    rows: Executable  # (topic, partition, next_offset, epoch) of group :g
    reset: Executable  # reset-offsets: next_offset = :n and epoch + 1 (fences the owner), unconditionally


def offsets_table(name: str) -> sa.Table:
    return sa.Table(
        name,
        sa.MetaData(),
        sa.Column("group_id", sa.String(255), primary_key=True),
        sa.Column("topic", sa.String(255), primary_key=True),
        sa.Column("partition", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("next_offset", sa.BigInteger, nullable=True),
        sa.Column("epoch", sa.BigInteger, nullable=False),
        sa.Column("updated_at", sa.DateTime, nullable=True),
    )


def offset_statements(dialect: Dialect, name: str) -> OffsetStatements:
    table = offsets_table(name)
    c = table.c
    row = sa.and_(c.group_id == sa.bindparam("g"), c.topic == sa.bindparam("t"), c.partition == sa.bindparam("p"))
    values: dict[str, object] = {
        "group_id": sa.bindparam("g"),
        "topic": sa.bindparam("t"),
        "partition": sa.bindparam("p"),
        "next_offset": None,
        "epoch": 0,
        "updated_at": sa.func.current_timestamp(),
    }
    insert_missing: Executable
    if dialect.name == "postgresql":
        insert_missing = postgresql.insert(table).values(values).on_conflict_do_nothing()
    elif dialect.name == "sqlite":
        insert_missing = sqlite.insert(table).values(values).on_conflict_do_nothing()
    else:  # MariaDB/MySQL
        insert_missing = mysql.insert(table).values(values).prefix_with("IGNORE")
    now = sa.func.current_timestamp()
    fenced = sa.and_(row, c.epoch == sa.bindparam("e"))
    return OffsetStatements(
        table,
        insert_missing,
        sa.update(table).where(row).values(epoch=c.epoch + 1, updated_at=now),
        sa.select(c.next_offset, c.epoch).where(row).with_for_update(),
        # `epoch = epoch` keeps the row's lock semantics obvious on every database; MariaDB's
        # rowcount counts matched rows (SQLAlchemy connects with CLIENT.FOUND_ROWS).
        sa.update(table).where(fenced).values(next_offset=sa.bindparam("n"), epoch=c.epoch, updated_at=now),
        sa.update(table).where(fenced).values(next_offset=c.next_offset, epoch=c.epoch, updated_at=now),
        sa.select(c.topic, c.partition, c.next_offset, c.epoch).where(c.group_id == sa.bindparam("g")),
        sa.update(table).where(row).values(next_offset=sa.bindparam("n"), epoch=c.epoch + 1, updated_at=now),
    )


__all__ = ["OffsetStatements", "offset_statements", "offsets_table"]
