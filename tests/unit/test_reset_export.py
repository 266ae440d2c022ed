"""`sink reset-offsets --export`: the plan as kafka-consumer-groups' CSV on stdout (the notice on
stderr), read back by `--from-file` into the same plan."""

from __future__ import annotations

from pathlib import Path

import pytest

from sink.reset import Row, Spec, format_csv, parse_plan
from tests.unit.test_reset import FakePort, command, parse


def test_format_csv_lists_the_partitions_that_get_an_offset() -> None:
    rows = [Row(("orders", 0), 4, 0), Row(("orders", 1), None, 12), Row(("refunds", 0), 3, None)]
    assert format_csv(rows) == "orders,0,0\norders,1,12"
    assert parse_plan(format_csv(rows)) == {("orders", 0): 0, ("orders", 1): 12}


def test_export_prints_only_csv_and_changes_nothing(capsys: pytest.CaptureFixture[str]) -> None:
    port = FakePort()
    code, lines = command(port, "--all-topics", "--shift-by", "-1", "--export")
    assert code == 0
    assert lines == ["orders,0,3", "orders,1,0"]
    assert capsys.readouterr().err.startswith("dry run: group sink-orders not changed")
    assert port.altered == []


def test_export_with_execute_applies_and_round_trips_through_from_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    port = FakePort()
    code, lines = command(port, "--all-topics", "--to-latest", "--export", "--execute")
    assert code == 0 and port.altered == [("sink-orders", {("orders", 0): 5, ("orders", 1): 5})]
    assert "offsets of 2 partition(s) reset" in capsys.readouterr().err
    plan = tmp_path / "plan.csv"
    plan.write_text("\n".join(lines) + "\n")
    assert parse("--from-file", str(plan)).spec == Spec("from_file", plan={("orders", 0): 5, ("orders", 1): 5})
    again = FakePort()
    assert command(again, "--from-file", str(plan), "--execute")[0] == 0
    assert again.altered == port.altered
