"""docs/types.md against the code: the per-database tables are generated (`type_table`), and the
source-type table names every neutral kind."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from sink.dialects import offline, type_table
from sink.dialects.base import DOC_TYPES
from sink.model import Kind

DOC = Path(__file__).resolve().parents[2] / "docs" / "types.md"
BACKENDS = ("postgresql", "mysql", "sqlite")
REGENERATE = '.venv/bin/python -c "from sink.dialects import type_table; print(type_table({!r}))"'


def section(title: str) -> str:
    text = DOC.read_text(encoding="utf-8")
    start = text.index(f"## {title}")
    end = text.find("\n## ", start + 1)
    return text[start : end if end >= 0 else None]


@pytest.mark.parametrize("backend", BACKENDS)
def test_database_type_table_is_the_generated_one(backend: str) -> None:
    text = DOC.read_text(encoding="utf-8")
    found = re.search(rf"<!-- generated: {backend} -->\n(.*?)<!-- end generated -->", text, re.DOTALL)
    assert found, f"docs/types.md has no generated table for {backend}"
    assert found.group(1) == type_table(backend), f"docs/types.md is stale; regenerate: {REGENERATE.format(backend)}"


def test_source_table_names_every_kind() -> None:
    rows = section("Source types").splitlines()
    kinds = {line.split("|")[1].strip().strip("`") for line in rows if line.startswith("| `")}
    assert kinds == {kind.value for kind in Kind}


def test_database_tables_cover_every_kind() -> None:
    assert {ct.kind for _, ct in DOC_TYPES} == set(Kind)


@pytest.mark.parametrize("backend", BACKENDS)
def test_storage_type_is_stable(backend: str) -> None:
    """What a column reads back as maps to a column that reads back the same: reflecting twice,
    or creating a table from a reflected one, changes nothing."""
    dialect = offline(backend)
    for label, column_type in DOC_TYPES:
        stored = dialect.storage_type(column_type)
        assert dialect.storage_type(stored) == stored, label
