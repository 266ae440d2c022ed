"""docs/types.md names every Connect/Debezium logical type the formats read (sink.formats.logical)."""

from __future__ import annotations

from pathlib import Path

import pytest

from sink.formats.logical import LOGICAL

DOC = Path(__file__).resolve().parents[2] / "docs" / "types.md"


@pytest.mark.parametrize("name", sorted(LOGICAL))
def test_every_logical_type_is_in_the_source_table(name: str) -> None:
    start = DOC.read_text(encoding="utf-8").index("## Source types")
    table = DOC.read_text(encoding="utf-8")[start : DOC.read_text(encoding="utf-8").index("\n## ", start + 1)]
    short = name.rsplit(".", 1)[1]
    # A full name, or its last part after a full name of the same package on that row.
    rows = [line for line in table.splitlines() if f"`{name}`" in line or f"`{short}`" in line]
    assert rows, f"docs/types.md's source table does not name {name}"
