"""`sink reset-offsets` under exactly-once, with fakes: the dry run shows the group's offsets and
the offsets table's positions and changes neither; `--execute` resets the table (first) and the
group; shifts start from the table's position where it has one."""

from __future__ import annotations

import argparse
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import pytest

from sink.errors import BrokerUnavailable
from sink.ports import TopicPartition as TP
from sink.reset import add_arguments, run_command
from tests.unit.test_reset import NOW_MS, FakePort


@dataclass
class FakeTable:
    held: dict[TP, int | None] = field(default_factory=lambda: {("orders", 0): 3})
    resets: list[dict[TP, int]] = field(default_factory=list)
    opened: list[str] = field(default_factory=list)

    def positions(self, partitions: Sequence[TP]) -> dict[TP, int | None]:
        return {tp: self.held.get(tp) for tp in partitions}

    def reset(self, offsets: Mapping[TP, int]) -> None:
        self.resets.append(dict(offsets))
        self.held.update(offsets)


def command(port: FakePort, table: FakeTable, *argv: str) -> tuple[int, list[str]]:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    out: list[str] = []

    def open_table(group: str) -> FakeTable:
        table.opened.append(group)
        return table

    code = run_command(
        parser.parse_args(argv),
        "sink-orders",
        ("orders",),
        None,
        lambda: port,
        out.append,
        lambda: NOW_MS,
        exactly_once=True,
        table=open_table,
    )
    return code, "\n".join(out).splitlines()


def test_the_dry_run_shows_the_group_and_the_table_and_changes_neither() -> None:
    port, table = FakePort(), FakeTable()
    code, lines = command(port, table, "--all-topics", "--to-earliest")
    assert code == 0
    assert lines == [
        "TOPIC   PARTITION  CURRENT-OFFSET  TABLE-OFFSET  NEW-OFFSET",
        "orders  0          4               3             0",
        "orders  1          1               -             0",
        "dry run: group sink-orders not changed nor the offsets table; add --execute to apply these offsets",
    ]
    assert port.altered == [] and table.resets == []


def test_execute_resets_the_table_and_the_group() -> None:
    port, table = FakePort(), FakeTable()
    code, lines = command(port, table, "--all-topics", "--to-earliest", "--execute", "--group", "other")
    assert code == 0
    assert table.opened == ["other"]
    assert table.resets == [{("orders", 0): 0, ("orders", 1): 0}]
    assert port.altered == [("other", {("orders", 0): 0, ("orders", 1): 0})]
    assert lines[-2:] == [
        "offsets table: positions of 2 partition(s) of group other reset",
        "group other: offsets of 2 partition(s) reset",
    ]


def test_shift_by_starts_from_the_tables_position_else_the_groups() -> None:
    port, table = FakePort(), FakeTable()  # partition 0: group 4, table 3; partition 1: group 1, no row
    code, _ = command(port, table, "--all-topics", "--shift-by", "1", "--execute")
    assert code == 0
    assert table.resets == [{("orders", 0): 4, ("orders", 1): 2}]


def test_a_group_that_cannot_be_altered_after_the_table_was_reset_says_so(
    capsys: pytest.CaptureFixture[str],
) -> None:
    class Failing(FakePort):
        def alter(self, group: str, offsets: Mapping[TP, int]) -> None:
            raise BrokerUnavailable("altering the offsets: broker did not answer")

    port, table = Failing(), FakeTable()
    code, _ = command(port, table, "--all-topics", "--to-earliest", "--execute")
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and len(err) == 1
    assert "the offsets table was reset" in err[0] and "broker did not answer" in err[0]
    assert table.resets == [{("orders", 0): 0, ("orders", 1): 0}]


def test_an_active_group_is_refused_before_the_table_is_touched() -> None:
    from sink.reset import GroupState

    port, table = FakePort(state=GroupState("STABLE", 2)), FakeTable()
    code, _ = command(port, table, "--all-topics", "--to-earliest", "--execute")
    assert code == 2 and table.resets == [] and port.altered == []
