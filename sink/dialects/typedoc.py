"""The generator of docs/types.md's per-database tables, read from each dialect's type registry:
(representative neutral type, the column it becomes, what that column reads back as).

    .venv/bin/python -m sink.dialects.typedoc [docs/types.md]

rewrites every `<!-- generated: BACKEND -->` section of the file in place;
tests/unit/test_types_doc.py fails when one differs from `type_table(BACKEND)`.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

from ..model import ColumnType, Kind
from . import offline

BACKENDS = ("postgresql", "mysql", "sqlite")

# Representative neutral types for the tables: (label, type). Every kind is one of them.
DOC_TYPES: tuple[tuple[str, ColumnType], ...] = (
    ("int8", ColumnType(Kind.INT8)),
    ("int16", ColumnType(Kind.INT16)),
    ("int32", ColumnType(Kind.INT32)),
    ("int64", ColumnType(Kind.INT64)),
    ("float32", ColumnType(Kind.FLOAT32)),
    ("float64", ColumnType(Kind.FLOAT64)),
    ("boolean", ColumnType(Kind.BOOLEAN)),
    ("string", ColumnType(Kind.STRING)),
    ("string(255)", ColumnType(Kind.STRING, length=255)),
    ("bytes", ColumnType(Kind.BYTES)),
    ("bytes(16) (fixed)", ColumnType(Kind.BYTES, length=16)),
    ("decimal(10,2)", ColumnType(Kind.DECIMAL, precision=10, scale=2)),
    ("decimal(80,10)", ColumnType(Kind.DECIMAL, precision=80, scale=10)),
    ("decimal(40,35)", ColumnType(Kind.DECIMAL, precision=40, scale=35)),
    ("decimal(1200,10)", ColumnType(Kind.DECIMAL, precision=1200, scale=10)),
    ("decimal (variable scale)", ColumnType(Kind.DECIMAL, precision=38)),
    ("date", ColumnType(Kind.DATE)),
    ("time", ColumnType(Kind.TIME)),
    ("time(3)", ColumnType(Kind.TIME, precision=3)),
    ("timestamp", ColumnType(Kind.TIMESTAMP)),
    ("timestamp(3)", ColumnType(Kind.TIMESTAMP, precision=3)),
    ("local_timestamp", ColumnType(Kind.LOCAL_TIMESTAMP)),
    ("local_timestamp(0)", ColumnType(Kind.LOCAL_TIMESTAMP, precision=0)),
    ("uuid", ColumnType(Kind.UUID)),
    ("json", ColumnType(Kind.JSON)),
    ("array<int64>", ColumnType(Kind.ARRAY, item=ColumnType(Kind.INT64))),
    ("array<string>", ColumnType(Kind.ARRAY, item=ColumnType(Kind.STRING))),
)
KEY_STRING = ("string, in the primary key", ColumnType(Kind.STRING))

_SECTION = re.compile(r"(<!-- generated: (\w+) -->\n)(.*?)(<!-- end generated -->)", re.DOTALL)


def type_rows(backend: str) -> list[tuple[str, str, str]]:
    """(neutral type, column type, reads back as) for one database."""
    dialect = offline(backend)
    types = dialect.types

    def sql(ct: ColumnType, key: bool = False) -> str:
        sa_type = types.key_type(ct) if key else types.column_type(ct)
        return str(sa_type.compile(dialect=dialect.sa_dialect))

    rows = [(label, sql(ct), _label(types.storage_type(ct))) for label, ct in DOC_TYPES]
    label, key = KEY_STRING  # reads back as what the key column is (MariaDB/MySQL: bounded)
    rows.append((label, sql(key, key=True), _label(types.neutral_type(types.key_type(key)))))
    return rows


def type_table(backend: str) -> str:
    """The type map of one database as a Markdown table."""
    lines = ["| neutral type | column type | reads back as |", "|---|---|---|"]
    lines += [f"| `{neutral}` | `{sql}` | `{stored}` |" for neutral, sql, stored in type_rows(backend)]
    return "\n".join(lines) + "\n"


def regenerate(text: str) -> str:
    """`text` with every generated section replaced by its database's current table."""
    return _SECTION.sub(lambda m: m.group(1) + type_table(m.group(2)) + m.group(4), text)


def _label(ct: ColumnType) -> str:
    return "decimal" if ct.kind is Kind.DECIMAL and ct.scale is None else str(ct)


def main(argv: list[str]) -> int:
    path = Path(argv[0] if argv else "docs/types.md")
    text = path.read_text(encoding="utf-8")
    new = regenerate(text)
    if new != text:
        path.write_text(new, encoding="utf-8")
    print(f"{path}: {'regenerated' if new != text else 'up to date'}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
