"""The avro peers section's three databases, by SQLAlchemy URL: PostgreSQL (every line), MariaDB and
SQLite (the sink and its limit). For each: the table a hand-written line creates (the column types
`sink run` itself creates for the dataset, so the comparison is fair), the final-state watch (the
last versions of a few ids, the exact checksum) and the drops at the end.

Talks to each database through its plain driver (psycopg, PyMySQL, sqlite3), never through `sink`.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any

from sqlalchemy.engine import make_url

from . import avro_data

POSTGRESQL, MARIADB, SQLITE = "postgresql", "mariadb", "sqlite"
NAMES = {POSTGRESQL: "PostgreSQL", MARIADB: "MariaDB", SQLITE: "SQLite"}

# What `sink run` creates for the dataset's Avro schema (auto-create, record_value id), read back
# with SHOW CREATE TABLE / sqlite_master: every field is required in the schema, so NOT NULL;
# MariaDB's unbounded strings are LONGTEXT, instants DATETIME(n) holding UTC with their type's
# fractional digits (3 for timestamp-millis, 6 for timestamp-micros), booleans BOOL
# (tinyint(1)), in the database's default charset (utf8mb4); SQLite's id is a BIGINT primary key
# (not the rowid alias INTEGER PRIMARY KEY would be), instants naive UTC text.
MARIADB_TYPES = (
    "bigint(20) NOT NULL",
    "longtext NOT NULL",
    "longtext NOT NULL",
    "int(11) NOT NULL",
    "double NOT NULL",
    "double NOT NULL",
    "tinyint(1) NOT NULL",
    "datetime(3) NOT NULL",
    "datetime(6) NOT NULL",
    "longtext NOT NULL",
)
SQLITE_TYPES = (
    "BIGINT NOT NULL",
    "TEXT NOT NULL",
    "TEXT NOT NULL",
    "INTEGER NOT NULL",
    "DOUBLE NOT NULL",
    "DOUBLE NOT NULL",
    "BOOLEAN NOT NULL",
    "TIMESTAMP NOT NULL",
    "TIMESTAMP NOT NULL",
    "TEXT NOT NULL",
)


def kind(url: str) -> str:
    backend = make_url(url).get_backend_name()
    return MARIADB if backend in ("mysql", "mariadb") else backend


def conninfo(url: str) -> str:
    """libpq conninfo (a postgresql:// URL) of a SQLAlchemy PostgreSQL URL."""
    return url.replace("+psycopg", "")


def sqlite_path(url: str) -> str:
    return make_url(url).database or ""


def mariadb_connect(url: str, autocommit: bool) -> Any:
    import pymysql

    parts = make_url(url)
    return pymysql.connect(
        host=parts.host or "127.0.0.1",
        port=parts.port or 3306,
        user=parts.username or "root",
        password=parts.password or "",
        database=parts.database,
        charset="utf8mb4",
        autocommit=autocommit,
    )


def sqlite_connect(url: str) -> sqlite3.Connection:
    """Autocommit (no transaction left open between statements); waits for a writer's lock."""
    return sqlite3.connect(sqlite_path(url), isolation_level=None, timeout=30)


def quote(database: str, name: str) -> str:
    return f"`{name}`" if database == MARIADB else f'"{name}"'


def create_table(url: str, table: str) -> None:
    """DROP and CREATE `table` (id the primary key) with the types the sink creates."""
    database = kind(url)
    if database == POSTGRESQL:
        from . import pg_merge

        pg_merge.create_table(conninfo(url), table)
        return
    types = MARIADB_TYPES if database == MARIADB else SQLITE_TYPES
    columns = ", ".join(f"{quote(database, c)} {t}" for c, t in zip(avro_data.COLUMNS, types, strict=True))
    drop = f"DROP TABLE IF EXISTS {quote(database, table)}"
    create = f"CREATE TABLE {quote(database, table)} ({columns}, PRIMARY KEY ({quote(database, 'id')}))"
    _execute(url, [drop, create])


def drop(url: str, tables: Sequence[str]) -> None:
    database = kind(url)
    _execute(url, [f"DROP TABLE IF EXISTS {quote(database, name)}" for name in tables])


def columns(url: str, table: str) -> list[tuple[str, str, bool, bool]]:
    """(name, declared type, nullable, in the primary key) of each column of `table`, in order."""
    database = kind(url)
    if database == SQLITE:
        with sqlite_connect(url) as conn:
            info = conn.execute(f"PRAGMA table_info({quote(SQLITE, table)})").fetchall()
        conn.close()
        return [(name, kind_, not notnull, bool(pk)) for _, name, kind_, notnull, _, pk in info]
    query = (
        "SELECT c.column_name, {type}, c.is_nullable = 'YES', {key} FROM information_schema.columns c "
        "WHERE c.table_schema = {schema} AND c.table_name = %s ORDER BY c.ordinal_position"
    )
    if database == MARIADB:
        query = query.format(type="c.column_type", key="c.column_key = 'PRI'", schema="database()")
    else:
        key = (
            "EXISTS (SELECT 1 FROM information_schema.key_column_usage k JOIN information_schema.table_constraints t "
            "USING (constraint_schema, constraint_name) WHERE t.constraint_type = 'PRIMARY KEY' "
            "AND k.table_name = c.table_name AND k.column_name = c.column_name AND k.table_schema = c.table_schema)"
        )
        query = query.format(type="c.data_type", key=key, schema="current_schema()")
    with Watcher(url) as watcher:
        return [(str(n), str(t), bool(nullable), bool(pk)) for n, t, nullable, pk in watcher._fetch(query, [table])]


def _execute(url: str, statements: list[str]) -> None:
    database = kind(url)
    if database == POSTGRESQL:
        import psycopg

        with psycopg.connect(conninfo(url), autocommit=True) as conn:
            for statement in statements:
                conn.execute(statement.encode())
    elif database == MARIADB:
        conn = mariadb_connect(url, autocommit=True)
        try:
            with conn.cursor() as cursor:
                for statement in statements:
                    cursor.execute(statement)
        finally:
            conn.close()
    else:
        with sqlite_connect(url) as conn:
            for statement in statements:
                conn.execute(statement)
        conn.close()


class Watcher:
    """One autocommit connection that reads a table's state while a line writes it: the last
    versions of a few ids (the cheap progress probe) and the exact checksum of the final state."""

    def __init__(self, url: str) -> None:
        self.database = kind(url)
        if self.database == POSTGRESQL:
            import psycopg

            self.conn: Any = psycopg.connect(conninfo(url), autocommit=True)
            self.missing: tuple[type[Exception], ...] = (psycopg.errors.UndefinedTable, psycopg.errors.UndefinedColumn)
        elif self.database == MARIADB:
            import pymysql

            self.conn = mariadb_connect(url, autocommit=True)
            self.missing = (pymysql.err.ProgrammingError, pymysql.err.OperationalError)  # see _absent
        else:
            self.conn = sqlite_connect(url)
            self.missing = (sqlite3.OperationalError,)  # see _absent

    def __enter__(self) -> Watcher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.conn.close()

    def _absent(self, exc: Exception) -> bool:
        """The table or a column is not there yet (the line has not created it); any other error
        (a lost connection, a lock never released) is raised."""
        if self.database == MARIADB:
            return bool(exc.args) and exc.args[0] in (1146, 1054)  # ER_NO_SUCH_TABLE, ER_BAD_FIELD_ERROR
        if self.database == SQLITE:
            return str(exc).startswith(("no such table", "no such column"))
        return True

    def _fetch(self, statement: str, parameters: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        if self.database == MARIADB:
            with self.conn.cursor() as cursor:
                cursor.execute(statement, parameters or None)
                return list(cursor.fetchall())
        if self.database == POSTGRESQL:
            return list(self.conn.execute(statement.encode(), parameters or None).fetchall())
        return list(self.conn.execute(statement, parameters).fetchall())

    def last_versions(self, table: str, ids: Sequence[int]) -> dict[int, int]:
        """{id: seq} of those ids present in `table` ({} while the table or its columns are missing)."""
        marker = "?" if self.database == SQLITE else "%s"
        statement = f"SELECT id, seq FROM {quote(self.database, table)} WHERE id IN ({', '.join(marker for _ in ids)})"
        try:
            return {int(i): int(s) for i, s in self._fetch(statement, list(ids))}
        except self.missing as exc:
            if not self._absent(exc):
                raise
            return {}

    def checksum(self, table: str) -> tuple[int, int, int] | None:
        """(rows, sum(seq), sum(note_hash)) of `table`; None while it does not exist."""
        name = quote(self.database, table)
        try:
            if self.database == SQLITE:
                return avro_data.checksum_of(self.conn.execute(f"SELECT seq, note FROM {name}"))
            query = avro_data.MARIADB_CHECKSUM_SQL if self.database == MARIADB else avro_data.CHECKSUM_SQL
            found = self._fetch(query.format(name))
        except self.missing as exc:
            if not self._absent(exc):
                raise
            return None
        return (int(found[0][0]), int(found[0][1]), int(found[0][2])) if found else None
