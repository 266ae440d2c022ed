"""The Avro peers benchmark's rounds: (c) and (a) run several times, alternating, and each line
reports its median run; every run gets its own table and consumer group."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.avro_peers import Options, Session, median_run  # noqa: E402
from benchmarks.avro_watch import Line  # noqa: E402
from benchmarks.common import Progress  # noqa: E402


def run(seconds: float | None, wrong: str = "", note: str = "") -> Line:
    return Line("a", "sink run (Avro)", 1_000, seconds, cpu=seconds, wrong=wrong, note=note)


def test_the_median_run_by_time_is_kept_and_every_round_named_in_order() -> None:
    runs = [run(0.5), run(0.4, note="batch 10,000"), run(0.25)]

    kept = median_run(runs)

    assert kept is runs[1]
    assert kept.extra["rounds"] == [2_000, 2_500, 4_000]
    assert kept.note == "median of 3 alternating runs (2,000, 2,500, 4,000 records/s); batch 10,000"


def test_with_an_even_number_of_rounds_the_slower_middle_run_is_kept() -> None:
    runs = [run(0.2), run(0.5), run(0.4), run(0.1)]

    assert median_run(runs) is runs[2]


def test_a_wrong_or_failed_round_is_the_line_s_result() -> None:
    runs = [run(0.5), run(0.4, wrong="WRONG: 999 rows"), run(None, wrong="FAILED: boom")]

    assert median_run(runs) is runs[1]


def test_one_round_is_reported_as_it_ran() -> None:
    only = run(0.5, note="batch 10,000")

    kept = median_run([only])

    assert kept is only
    assert kept.note == "batch 10,000"
    assert "rounds" not in kept.extra


def test_each_round_of_a_line_gets_a_table_of_its_own(tmp_path: Path) -> None:
    options = Options(count=10, batches=[10], naive_seconds=1.0, quix=False, sink_env={})
    session = Session(options, "postgresql+psycopg://h/db", tmp_path, Progress(), "b:1", "http://r", (None, "off"))

    first, second, third = session.table("plain"), session.table("plain"), session.table("plain")
    elsewhere = session.table("plain", "sqlite:///x.db")

    assert len({first, second, third}) == 3
    assert second == f"{first}_2" and third == f"{first}_3"
    assert elsewhere == first  # another database: its own names
    assert session.tables["postgresql+psycopg://h/db"] == [first, second, third]


def test_three_rounds_by_default_one_with_quick_unless_asked() -> None:
    from benchmarks.run import parse

    assert parse([]).rounds == 3
    assert parse(["--quick"]).rounds == 1
    assert parse(["--quick", "--rounds", "2"]).rounds == 2
    assert parse(["--rounds", "0"]).rounds == 1
