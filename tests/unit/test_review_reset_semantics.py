"""Review of `sink reset-offsets` against `kafka-consumer-groups --reset-offsets` (Apache Kafka's
tools GroupOffsetsResetter / ConsumerGroupCommand, clients Utils.getDateTime): the date-time forms
Kafka accepts, and, under exactly-once, the offsets table and the group moved together even when
the command is interrupted between the two."""

from __future__ import annotations

import argparse
import signal
from collections.abc import Iterator, Mapping

import pytest

from sink.ports import TopicPartition as TP
from sink.reset import add_arguments, parse_datetime, run_command
from tests.unit.test_reset import NOW_MS, FakePort
from tests.unit.test_reset_exactly_once import FakeTable

# ------------------------------------------------------------------------------ --to-datetime

UTC_MS = 1_605_027_098_198  # 2020-11-10T16:51:38.198Z


@pytest.mark.parametrize(
    ("text", "ms"),
    [
        # The five forms Utils.getDateTime documents; without a zone Kafka appends "Z" (UTC).
        ("2020-11-10T16:51:38.198", UTC_MS),
        ("2020-11-10T16:51:38.198+0800", UTC_MS - 8 * 3_600_000),
        ("2020-11-10T16:51:38.198+08", UTC_MS - 8 * 3_600_000),
        ("2020-11-10T16:51:38.198+08:00", UTC_MS - 8 * 3_600_000),
        ("2020-11-10T16:51:38.198-05:00", UTC_MS + 5 * 3_600_000),
        ("2020-11-10T16:51:38.198Z", UTC_MS),
    ],
)
def test_to_datetime_takes_the_forms_kafka_takes(text: str, ms: int) -> None:
    assert parse_datetime(text) == ms


# ------------------------------------------------------------------------------ exactly-once, interrupted


def _command(port: FakePort, table: FakeTable, *argv: str) -> tuple[int | None, list[str]]:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    out: list[str] = []
    try:
        code: int | None = run_command(
            parser.parse_args(argv),
            "sink-orders",
            ("orders",),
            None,
            lambda: port,
            out.append,
            lambda: NOW_MS,
            exactly_once=True,
            table=lambda group: table,
        )
    except KeyboardInterrupt:
        code = None  # Ctrl-C went through: the command stopped where it was
    return code, out


class InterruptedTable(FakeTable):
    """The table's transaction commits, then the operator presses Ctrl-C (or the job is stopped)."""

    def __init__(self, signum: int) -> None:
        super().__init__()
        self.signum = signum

    def reset(self, offsets: Mapping[TP, int]) -> None:
        super().reset(offsets)
        signal.raise_signal(self.signum)


def test_an_interrupt_after_the_table_was_reset_still_moves_the_group() -> None:
    port, table = FakePort(), InterruptedTable(signal.SIGINT)
    handler = signal.getsignal(signal.SIGINT)
    code, _ = _command(port, table, "--all-topics", "--to-earliest", "--execute")
    assert signal.getsignal(signal.SIGINT) is handler, "the command's signal handling must not outlive it"
    assert table.resets == [{("orders", 0): 0, ("orders", 1): 0}]
    # Kafka's tool moves the group in one request; here the table moved, so the group must too,
    # else the group (lag, a later --shift-by without exactly-once) says something the sink ignores.
    assert port.altered == [("sink-orders", {("orders", 0): 0, ("orders", 1): 0})], (
        "interrupted between the two: the offsets table was reset but the group was not"
    )
    assert code == 0


def test_a_group_left_behind_the_table_is_told_how_to_catch_up(capsys: pytest.CaptureFixture[str]) -> None:
    from sink.errors import BrokerUnavailable

    class Failing(FakePort):
        def alter(self, group: str, offsets: Mapping[TP, int]) -> None:
            raise BrokerUnavailable("altering the offsets: broker did not answer")

    code, _ = _command(Failing(), FakeTable(), "--all-topics", "--shift-by", "-1", "--execute")
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and len(err) == 1, err
    # Running the same --shift-by again would shift the table a second time: the way back is
    # --to-current, which under exactly-once takes the table's positions to both.
    assert "--to-current --execute" in err[0], err[0]


@pytest.mark.parametrize(
    ("text", "ms"),
    [
        ("2004-10-28T21:16:28.949", 1_098_998_188_949),
        ("2004-10-28T21:16:28.949+00:00", 1_098_998_188_949),
        ("1987-03-14T01:02:03.221Z", 542_682_123_221),
    ],
)
def test_to_datetime_is_the_exact_millisecond(text: str, ms: int) -> None:
    # Kafka's SimpleDateFormat gives the exact millisecond; one less would also pick a record
    # stamped 1 ms before the time asked (ListOffsets answers the first offset at or after it).
    assert parse_datetime(text) == ms


@pytest.fixture
def python_sigint() -> Iterator[None]:
    """Python's own SIGINT handler (KeyboardInterrupt) for the test: an earlier test of this process
    may have left `sink run`'s handler installed (the signal handler of `cli.run`)."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


@pytest.mark.usefixtures("python_sigint")
def test_a_second_interrupt_goes_through() -> None:
    class TwiceInterrupted(InterruptedTable):
        def reset(self, offsets: Mapping[TP, int]) -> None:
            super().reset(offsets)
            signal.raise_signal(self.signum)  # a database lock held it: the operator insists

    port, table = FakePort(), TwiceInterrupted(signal.SIGINT)
    handler = signal.getsignal(signal.SIGINT)
    code, _ = _command(port, table, "--all-topics", "--to-earliest", "--execute")
    assert code is None, "the second Ctrl-C stops the command"
    assert signal.getsignal(signal.SIGINT) is handler
