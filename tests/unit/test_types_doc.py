"""docs/types.md against the code: the per-database tables are generated from the dialects' type
registries (`sink.dialects.typedoc`), and the source-type table names every neutral kind."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from sink.dialects import offline
from sink.dialects.typedoc import DOC_TYPES, regenerate, type_table
from sink.model import Kind

DOC = Path(__file__).resolve().parents[2] / "docs" / "types.md"
BACKENDS = ("postgresql", "mysql", "sqlite")
REGENERATE = ".venv/bin/python -m sink.dialects.typedoc"


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
    assert found.group(1) == type_table(backend), f"docs/types.md is stale; regenerate: {REGENERATE}"


def test_the_generator_leaves_a_current_file_byte_for_byte_and_fixes_a_stale_one() -> None:
    text = DOC.read_text(encoding="utf-8")
    assert regenerate(text) == text
    stale = text.replace("| `int64` | `BIGINT` | `int64` |", "| `int64` | `INTEGER` | `int32` |")
    assert stale != text
    assert regenerate(stale) == text


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
