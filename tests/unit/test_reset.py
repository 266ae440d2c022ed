"""sink.reset: parsing the scope, spec, CSV plan and duration; new offsets clamped to the log; the
group-must-be-empty rule; the command over a fake OffsetsPort (dry run, execute, exit codes)."""

from __future__ import annotations

import argparse
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from sink.errors import BrokerUnavailable, ResetRefused
from sink.ports import TopicPartition as TP
from sink.reset import (
    GroupState,
    Request,
    Row,
    Spec,
    active_problem,
    add_arguments,
    build_request,
    clamp,
    format_table,
    new_offsets,
    parse_datetime,
    parse_duration,
    parse_plan,
    parse_topic,
    run_command,
    select_partitions,
)

NOW_MS = 1_795_600_000_000


def parse(*argv: str, now_ms: int = NOW_MS) -> Request:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return build_request(parser.parse_args(argv), "sink-orders", now_ms)


# ------------------------------------------------------------------------------ parsing


def test_parse_topic() -> None:
    assert parse_topic("orders") == ("orders", None)
    assert parse_topic("orders:2,0,2") == ("orders", (0, 2))
    for bad in ("orders:", "orders:a", "orders:-1", ":1", "orders:1,,2"):
        with pytest.raises(ResetRefused):
            parse_topic(bad)


@pytest.mark.parametrize(
    ("text", "ms"),
    [
        ("P1D", 86_400_000),
        ("PT15M", 900_000),
        ("P1DT2H30M", (26 * 60 + 30) * 60_000),
        ("PT0.5S", 500),
        ("PT1,25S", 1250),
        ("pt2h", 7_200_000),
        ("P0D", 0),
    ],
)
def test_parse_duration(text: str, ms: int) -> None:
    assert parse_duration(text) == ms


@pytest.mark.parametrize("text", ["", "P", "PT", "P1DT", "1 day", "P1W", "P1Y", "-PT1M", "PT1.S", "P1H"])
def test_parse_duration_refuses(text: str) -> None:
    with pytest.raises(ResetRefused, match="ISO 8601 duration"):
        parse_duration(text)


def test_parse_datetime_without_zone_is_utc() -> None:
    utc = parse_datetime("2026-11-25T10:00:00.000")
    assert utc == 1_795_600_800_000
    assert parse_datetime("2026-11-25T10:00:00Z") == utc
    assert parse_datetime("2026-11-25T12:00:00.000+02:00") == utc
    assert parse_datetime("2026-11-25") == utc - 10 * 3_600_000
    with pytest.raises(ResetRefused, match="not an ISO date-time"):
        parse_datetime("25/11/2026 10:00")


def test_parse_plan() -> None:
    text = "# exported\n\norders,0,5\n orders , 1 , 0 \nrefunds,0,7\n"
    assert parse_plan(text) == {("orders", 0): 5, ("orders", 1): 0, ("refunds", 0): 7}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("orders,0,5\norders,0\n", "line 2: expected topic,partition,offset"),
        ("orders,0,5,9\n", "line 1: expected"),
        ("orders,x,5\n", "line 1: expected"),
        ("orders,0,-1\n", "line 1: expected"),
        (",0,1\n", "line 1: expected"),
        ("orders,0,5\norders,0,6\n", "line 2: orders:0 appears twice"),
        ("# nothing\n", "no topic,partition,offset line"),
    ],
)
def test_parse_plan_refuses(text: str, message: str) -> None:
    with pytest.raises(ResetRefused, match=message):
        parse_plan(text)


def test_build_request() -> None:
    request = parse("--topic", "orders:1", "--topic", "refunds", "--to-offset", "7")
    assert request == Request("sink-orders", (("orders", (1,)), ("refunds", None)), False, Spec("to_offset", 7), False)
    assert parse("--all-topics", "--to-earliest", "--group", "other", "--execute").group == "other"
    assert parse("--all-topics", "--to-earliest", "--execute").execute
    assert not parse("--all-topics", "--to-earliest", "--dry-run").execute
    assert parse("--all-topics", "--shift-by", "-2").spec == Spec("shift_by", offset=-2)
    assert parse("--all-topics", "--by-duration", "PT1M").spec == Spec("by_duration", timestamp_ms=NOW_MS - 60_000)
    assert parse("--all-topics", "--to-datetime", "2026-11-25T10:00:00").spec.timestamp_ms == 1_795_600_800_000


def test_build_request_refuses(tmp_path: Path) -> None:
    with pytest.raises(ResetRefused, match="say which partitions"):
        parse("--to-earliest")
    with pytest.raises(ResetRefused, match="--to-offset: must be 0 or more"):
        parse("--all-topics", "--to-offset", "-1")
    plan = tmp_path / "plan.csv"
    plan.write_text("orders,0,1\n")
    assert parse("--from-file", str(plan)).spec == Spec("from_file", plan={("orders", 0): 1})
    with pytest.raises(ResetRefused, match="--from-file names its own partitions"):
        parse("--from-file", str(plan), "--all-topics")
    with pytest.raises(ResetRefused, match="--from-file: cannot read"):
        parse("--from-file", str(tmp_path / "missing.csv"))


@pytest.mark.parametrize(
    "argv",
    [
        ("--all-topics",),  # no spec
        ("--all-topics", "--to-earliest", "--to-latest"),
        ("--all-topics", "--topic", "t", "--to-earliest"),
        ("--all-topics", "--to-earliest", "--execute", "--dry-run"),
    ],
)
def test_argument_combinations_argparse_refuses(argv: tuple[str, ...]) -> None:
    with pytest.raises(SystemExit) as exit_:
        parse(*argv)
    assert exit_.value.code == 2


# ------------------------------------------------------------------------------ partitions

AVAILABLE = {"orders": (0, 1, 2), "refunds": (0,), "orders_eu": (0, 1), "__consumer_offsets": (0,)}


def request(
    topics: Sequence[tuple[str, tuple[int, ...] | None]] = (), all_topics: bool = False, **spec: object
) -> Request:
    return Request("g", tuple(topics), all_topics, Spec(**spec) if spec else Spec("to_earliest"), False)  # type: ignore[arg-type]


def test_select_partitions_by_topic() -> None:
    assert select_partitions(request([("refunds", None), ("orders", (2,))]), (), None, AVAILABLE) == [
        ("orders", 2),
        ("refunds", 0),
    ]
    assert select_partitions(request([("orders", (0,)), ("orders", (2,))]), (), None, AVAILABLE) == [
        ("orders", 0),
        ("orders", 2),
    ]
    whole = [("orders", 0), ("orders", 1), ("orders", 2)]
    assert select_partitions(request([("orders", (1,)), ("orders", None)]), (), None, AVAILABLE) == whole
    assert select_partitions(request([("orders", None), ("orders", (1,))]), (), None, AVAILABLE) == whole


def test_select_partitions_all_topics() -> None:
    assert select_partitions(request(all_topics=True), ("refunds",), None, AVAILABLE) == [("refunds", 0)]
    # SINK_TOPICS_REGEX: anchored at the start like the sink's subscription; internal topics left out
    assert select_partitions(request(all_topics=True), (), "orders.*", AVAILABLE) == [
        ("orders", 0),
        ("orders", 1),
        ("orders", 2),
        ("orders_eu", 0),
        ("orders_eu", 1),
    ]
    with pytest.raises(ResetRefused, match="matches no topic"):
        select_partitions(request(all_topics=True), (), "_eu", AVAILABLE)  # would match orders_eu unanchored
    with pytest.raises(ResetRefused, match="matches no topic"):
        select_partitions(request(all_topics=True), (), "__.*", AVAILABLE)
    with pytest.raises(ResetRefused, match="topic 'missing' does not exist"):
        select_partitions(request(all_topics=True), ("orders", "missing"), None, AVAILABLE)


def test_select_partitions_from_the_plan() -> None:
    req = request(kind="from_file", plan={("orders", 1): 5, ("refunds", 0): 0})
    assert select_partitions(req, ("ignored",), None, AVAILABLE) == [("orders", 1), ("refunds", 0)]
    with pytest.raises(ResetRefused, match="topic 'orders' has no partition 3"):
        select_partitions(request(kind="from_file", plan={("orders", 3): 5}), (), None, AVAILABLE)


def test_unknown_topic_or_partition_is_refused() -> None:
    with pytest.raises(ResetRefused, match="topic 'nope' does not exist"):
        select_partitions(request([("nope", None)]), (), None, AVAILABLE)
    with pytest.raises(ResetRefused, match=r"topic 'orders' has no partition 5 \(partitions 0-2\)"):
        select_partitions(request([("orders", (1, 5))]), (), None, AVAILABLE)


# ------------------------------------------------------------------------------ group state


@pytest.mark.parametrize(("state", "members"), [("EMPTY", 0), ("DEAD", 0), ("Empty", 0)])
def test_an_empty_or_dead_group_may_be_reset(state: str, members: int) -> None:
    assert active_problem("g", GroupState(state, members)) is None


@pytest.mark.parametrize(
    ("state", "members"),
    [
        ("STABLE", 1),
        ("STABLE", 0),  # Tansu: a stable group whose DescribeGroups lists no members
        ("PREPARING_REBALANCE", 2),
        ("COMPLETING_REBALANCE", 1),
        ("UNKNOWN", 0),
        ("EMPTY", 1),  # members win over a state that says otherwise
    ],
)
def test_a_group_with_members_is_refused(state: str, members: int) -> None:
    problem = active_problem("sink-orders", GroupState(state, members))
    assert problem is not None
    assert problem.startswith(f"group sink-orders is active (state {state}")
    assert "stop every sink of this group" in problem


# ------------------------------------------------------------------------------ new offsets

TPS: list[TP] = [("t", 0), ("t", 1), ("t", 2)]
CURRENT: dict[TP, int | None] = {("t", 0): 4, ("t", 1): None, ("t", 2): 12}
EARLIEST = {("t", 0): 2, ("t", 1): 0, ("t", 2): 10}  # partition 0 and 2: old records deleted by retention
LATEST = {("t", 0): 10, ("t", 1): 3, ("t", 2): 15}


def news(
    spec: Spec, at_time: Mapping[TP, int | None] | None = None, current: Mapping[TP, int | None] = CURRENT
) -> list:
    return [row.new for row in new_offsets(spec, TPS, current, EARLIEST, LATEST, at_time)]


def test_clamp() -> None:
    assert [clamp(o, 2, 10) for o in (0, 2, 5, 10, 11)] == [2, 2, 5, 10, 10]


def test_to_earliest_latest_and_offset() -> None:
    assert news(Spec("to_earliest")) == [2, 0, 10]
    assert news(Spec("to_latest")) == [10, 3, 15]
    assert news(Spec("to_offset", offset=5)) == [5, 3, 10]  # clamped into [earliest, latest] per partition
    rows = new_offsets(Spec("to_earliest"), TPS, CURRENT, EARLIEST, LATEST)
    assert rows[0] == Row(("t", 0), 4, 2)


def test_shift_by_is_clamped_and_needs_a_committed_offset() -> None:
    committed = {("t", 0): 4, ("t", 1): 1, ("t", 2): 12}
    assert news(Spec("shift_by", offset=-3), current=committed) == [2, 0, 10]
    assert news(Spec("shift_by", offset=2), current=committed) == [6, 3, 14]
    with pytest.raises(ResetRefused, match="t:1 has no committed offset to shift from"):
        news(Spec("shift_by", offset=1))


def test_time_specs_take_the_first_offset_at_that_time_or_the_end() -> None:
    at_time: dict[TP, int | None] = {("t", 0): 7, ("t", 1): None, ("t", 2): -1}
    assert news(Spec("to_datetime", timestamp_ms=1), at_time) == [7, 3, 15]
    assert news(Spec("by_duration", timestamp_ms=1), at_time) == [7, 3, 15]


def test_to_current_keeps_the_committed_offset_and_leaves_uncommitted_partitions_alone() -> None:
    assert news(Spec("to_current")) == [4, None, 12]
    assert news(Spec("to_current"), current={("t", 0): 0, ("t", 1): 9, ("t", 2): 12}) == [2, 3, 12]


def test_from_file_is_clamped_too() -> None:
    plan = {("t", 0): 0, ("t", 1): 2, ("t", 2): 99}
    assert news(Spec("from_file", plan=plan)) == [2, 2, 15]


def test_format_table() -> None:
    rows = [Row(("orders", 0), 4, 0), Row(("orders_long_name", 11), None, 1234), Row(("o", 1), 5, None)]
    assert format_table(rows).splitlines() == [
        "TOPIC             PARTITION  CURRENT-OFFSET  NEW-OFFSET",
        "orders            0          4               0",
        "orders_long_name  11         -               1234",
        "o                 1          5               -",
    ]


# ------------------------------------------------------------------------------ the command


@dataclass
class FakePort:
    state: GroupState = field(default_factory=lambda: GroupState("EMPTY", 0))
    current: dict[TP, int | None] = field(default_factory=lambda: {("orders", 0): 4, ("orders", 1): 1})
    altered: list[tuple[str, dict[TP, int]]] = field(default_factory=list)
    asked_time: list[int] = field(default_factory=list)
    down: bool = False

    def topics(self) -> dict[str, tuple[int, ...]]:
        if self.down:
            raise BrokerUnavailable("topic metadata: broker 127.0.0.1:1 did not answer: transport failure")
        return {"orders": (0, 1)}

    def group_state(self, group: str) -> GroupState:
        return self.state

    def committed(self, group: str, partitions: Sequence[TP]) -> dict[TP, int | None]:
        return {tp: self.current.get(tp) for tp in partitions}

    def earliest(self, partitions: Sequence[TP]) -> dict[TP, int]:
        return dict.fromkeys(partitions, 0)

    def latest(self, partitions: Sequence[TP]) -> dict[TP, int]:
        return dict.fromkeys(partitions, 5)

    def offsets_for_time(self, partitions: Sequence[TP], timestamp_ms: int) -> dict[TP, int | None]:
        self.asked_time.append(timestamp_ms)
        return dict.fromkeys(partitions, 3)

    def alter(self, group: str, offsets: Mapping[TP, int]) -> None:
        self.altered.append((group, dict(offsets)))


def command(port: FakePort, *argv: str) -> tuple[int, list[str]]:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    out: list[str] = []
    code = run_command(
        parser.parse_args(argv), "sink-orders", ("orders",), None, lambda: port, out.append, lambda: NOW_MS
    )
    return code, "\n".join(out).splitlines()


def test_dry_run_changes_nothing() -> None:
    port = FakePort()
    code, lines = command(port, "--all-topics", "--to-earliest")
    assert code == 0
    assert lines[1:] == [
        "orders  0          4               0",
        "orders  1          1               0",
        "dry run: group sink-orders not changed; add --execute to apply these offsets",
    ]
    assert port.altered == []


def test_execute_alters_the_group() -> None:
    port = FakePort(current={("orders", 0): 4})
    code, lines = command(port, "--topic", "orders", "--to-current", "--execute", "--group", "other")
    assert code == 0
    assert port.altered == [("other", {("orders", 0): 4})]  # partition 1 has nothing committed: left alone
    assert lines[-1] == "group other: offsets of 1 partition(s) reset"


def test_by_duration_asks_for_now_minus_the_duration() -> None:
    port = FakePort()
    code, _ = command(port, "--topic", "orders:1", "--by-duration", "PT1H", "--execute")
    assert code == 0
    assert port.asked_time == [NOW_MS - 3_600_000]
    assert port.altered == [("sink-orders", {("orders", 1): 3})]


def test_active_group_is_refused_with_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    port = FakePort(state=GroupState("STABLE", 1))
    code, lines = command(port, "--all-topics", "--to-earliest", "--execute")
    assert (code, lines, port.altered) == (2, [], [])
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith("sink: reset-offsets: group sink-orders is active (state STABLE")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (("--topic", "refunds", "--to-earliest"), "topic 'refunds' does not exist"),
        (("--topic", "orders:2", "--to-earliest"), "topic 'orders' has no partition 2"),
        (("--all-topics", "--to-datetime", "yesterday"), "not an ISO date-time"),
    ],
)
def test_refusals_are_one_line_exit_2(capsys: pytest.CaptureFixture[str], argv: tuple[str, ...], message: str) -> None:
    port = FakePort()
    code, _ = command(port, *argv, "--execute")
    err = capsys.readouterr().err.splitlines()
    assert code == 2 and len(err) == 1 and message in err[0], err
    assert port.altered == []


def test_unreachable_broker_is_exit_1(capsys: pytest.CaptureFixture[str]) -> None:
    code, _ = command(FakePort(down=True), "--all-topics", "--to-earliest")
    err = capsys.readouterr().err.splitlines()
    assert code == 1 and len(err) == 1 and "did not answer" in err[0]
