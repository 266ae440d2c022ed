"""sink.dlq and sink.dlq_commands: what a dead-lettered record says, selection, re-drive headers,
the end of a topic, the cursor, the table/summary/JSON, and both commands over in-memory ports."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field

import pytest

from sink import dlq
from sink.deadletter import PREFIX, TRUNCATED
from sink.dlq_commands import DlqRefused, Outgoing, add_arguments, inspect, redrive, selection
from sink.model import Coord, RawRecord

DLQ = "orders_dlq"


def dead(
    partition: int,
    offset: int,
    source: tuple[str, int, int] | None = ("orders", 0, 7),
    cls: str = "sink.errors.RecordRejected",
    message: str = "rejected by the database (SQLSTATE 23514 check_violation)",
    stage: str = "TASK_PUT",
    extra: Sequence[tuple[str, bytes | None]] = (),
) -> RawRecord:
    headers: list[tuple[str, bytes | None]] = [("trace", b"t-1"), *extra]
    if source is not None:
        context = {"topic": source[0], "partition": str(source[1]), "offset": str(source[2])}
        context |= {"stage": stage, "exception.class.name": cls, "exception.message": message}
        headers += [(PREFIX + k, v.encode()) for k, v in context.items()]
    return RawRecord(Coord(DLQ, partition, offset), b"k%d" % offset, b"v%d" % offset, tuple(headers), 1)


# ------------------------------------------------------------------------------ records


def test_parse_reads_the_context_headers() -> None:
    letter = dlq.parse(dead(1, 4, ("orders", 2, 9)))
    assert letter.at == Coord(DLQ, 1, 4)
    assert letter.source == Coord("orders", 2, 9)
    assert (letter.stage, letter.short_class, letter.redrivable) == ("TASK_PUT", "RecordRejected", True)
    assert letter.redrive_count == 0


def test_records_without_context_or_truncated_cannot_be_re_driven() -> None:
    bare = dlq.parse(dead(0, 0, source=None))
    assert bare.source is None and not bare.redrivable
    cut_off = dlq.parse(dead(0, 1, extra=[(TRUNCATED, b'{"value": 9000000}')]))
    assert cut_off.truncated and not cut_off.redrivable
    assert "truncated" in dlq.record_row(cut_off)[-1]


def test_redrive_headers_drop_the_context_and_count_up() -> None:
    letter = dlq.parse(dead(0, 0, extra=[(dlq.REDRIVE_COUNT, b"2")]))
    assert letter.redrive_count == 2
    assert dlq.redrive_headers(letter) == [("trace", b"t-1"), (dlq.REDRIVE_COUNT, b"3")]
    assert dlq.redrive_headers(dlq.parse(dead(0, 0))) == [("trace", b"t-1"), (dlq.REDRIVE_COUNT, b"1")]
    assert dlq.redrive_count([(dlq.REDRIVE_COUNT, b"junk")]) == 0


def test_redrive_target_keeps_the_partition_the_topic_still_has() -> None:
    letter = dlq.parse(dead(0, 0, ("orders", 3, 1)))
    assert dlq.redrive_target(letter, {"orders": (0, 1, 2, 3)}) == ("orders", 3)
    assert dlq.redrive_target(letter, {"orders": (0, 1)}) == ("orders", None)


# ------------------------------------------------------------------------------ selection


def test_selection_by_topic_partition_class_and_source_offsets() -> None:
    a = dlq.parse(dead(0, 0, ("orders", 0, 5), cls="sink.errors.SchemaRefused"))
    b = dlq.parse(dead(0, 1, ("orders", 1, 5)))
    c = dlq.parse(dead(0, 2, ("refunds", 0, 5)))
    assert all(dlq.Selection().matches(x) for x in (a, b, c))
    assert [dlq.Selection(error_class="SchemaRefused").matches(x) for x in (a, b, c)] == [True, False, False]
    assert dlq.Selection(error_class="sink.errors.SchemaRefused").matches(a)
    assert [dlq.Selection("orders").matches(x) for x in (a, b, c)] == [True, True, False]
    assert [dlq.Selection("orders", (1,)).matches(x) for x in (a, b, c)] == [False, True, False]
    assert dlq.Selection("orders", from_offset=5, to_offset=5).matches(a)
    assert not dlq.Selection("orders", from_offset=6).matches(a)
    assert not dlq.Selection("orders", to_offset=4).matches(a)
    assert not dlq.Selection("orders").matches(dlq.parse(dead(0, 3, source=None)))


def parse_args(*argv: str, redrive: bool = True) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_arguments(parser, redrive)
    return parser.parse_args(argv)


@pytest.mark.parametrize(
    ("argv", "problem"),
    [
        (("--from-offset", "1"), "give it with --topic"),
        (("--topic", "t", "--from-offset", "5", "--to-offset", "4"), "past --to-offset"),
        (("--topic", "t", "--to-offset", "-1"), "0 or more"),
        (("--topic", "t:x"), "comma-separated"),
        (("--limit", "-1"), "--limit"),
        (("--batch-size", "0"), "--batch-size"),
        (("--idle-ms", "10"), "--idle-ms"),
    ],
)
def test_bad_options_are_refused(argv: tuple[str, ...], problem: str) -> None:
    with pytest.raises(DlqRefused, match=problem):
        selection(parse_args(*argv))


def test_options_become_a_selection() -> None:
    chosen = selection(parse_args("--topic", "orders:1,0", "--error-class", "X", "--from-offset", "2"))
    assert chosen == dlq.Selection("orders", (0, 1), "X", 2, None)


# ------------------------------------------------------------------------------ end of topic, cursor


def test_end_of_topic_needs_every_partition_at_its_end_and_a_short_quiet() -> None:
    end = dlq.EndOfTopic(frozenset({0, 1}), started=0.0, idle_s=5.0, grace_s=0.5)
    end.record(0, 1.0)
    end.end_of_partition(0, 1.1)
    assert not end.reached(2.0), "partition 1 has not reported its end"
    end.end_of_partition(1, 2.0)
    assert not end.reached(1.3) and end.reached(1.6)
    end.record(1, 2.0)  # a record after the end: not at the end any more
    assert not end.reached(2.6)
    assert end.why(7.0) == "no new record for 5 s", "a broker that never says so: the quiet period decides"
    end.end_of_partition(1, 2.1)
    assert end.why(2.6) == "read to the end of every partition"
    assert dlq.EndOfTopic(frozenset(), 0.0).reached(0.0)


def test_cursor_moves_past_the_last_acknowledged_record_per_partition() -> None:
    letters = [dlq.parse(dead(p, o)) for p, o in ((0, 3), (1, 9), (0, 7), (0, 5))]
    assert dlq.cursor_moves(letters) == {0: 8, 1: 10}
    assert dlq.cursor_moves([]) == {}


# ------------------------------------------------------------------------------ output


def test_cut_keeps_one_short_line() -> None:
    assert dlq.cut("a\nb   c") == "a b c"
    assert dlq.cut("x" * 100, 10) == "xxxxxxx..."


def test_summary_counts_every_record_and_lists_the_first_ones() -> None:
    summary = dlq.Summary(limit=2)
    for offset in range(3):
        summary.add(dlq.parse(dead(0, offset)))
    summary.add(dlq.parse(dead(0, 3, cls="sink.errors.DecodeError", stage="VALUE_CONVERTER", message="bad")))
    assert summary.total == 4 and len(summary.rows) == 2
    text = dlq.format_inspect(DLQ, summary, "read to the end of every partition")
    lines = text.splitlines()
    assert lines[0] == f"dead-letter topic {DLQ}: 4 record(s) (read to the end of every partition)"
    assert lines[2].split() == ["DLQ", "TOPIC", "PARTITION", "OFFSET", "STAGE", "EXCEPTION", "MESSAGE"]
    assert lines[3].split()[:6] == ["0:0", "orders", "0", "7", "TASK_PUT", "RecordRejected"]
    assert "... 2 more (--limit N shows more)" in lines
    counts = lines[lines.index("counts per reason:") + 2 :]
    assert [line.split()[:3] for line in counts] == [
        ["3", "TASK_PUT", "RecordRejected"],
        ["1", "VALUE_CONVERTER", "DecodeError"],
    ]
    document = json.loads(dlq.inspect_json(DLQ, summary, "x"))
    assert document["total"] == 4 and len(document["records"]) == 2
    assert document["records"][0]["exception_class"] == "sink.errors.RecordRejected"
    assert [r["count"] for r in document["reasons"]] == [3, 1]


# ------------------------------------------------------------------------------ the commands over fakes


@dataclass
class FakeReader:
    records: list[RawRecord]
    topics_: dict[str, tuple[int, ...]] = field(default_factory=lambda: {DLQ: (0, 1), "orders": (0, 1)})
    cursor: dict[int, int] = field(default_factory=dict)
    commits: list[dict[int, int]] = field(default_factory=list)

    def topics(self) -> dict[str, tuple[int, ...]]:
        return self.topics_

    def committed(self, topic: str, partitions: Sequence[int]) -> dict[int, int | None]:
        return {p: self.cursor.get(p) for p in partitions}

    def read(self, topic: str, start: Mapping[int, int | None], stop: Callable[[], bool]) -> Iterator[RawRecord]:
        for raw in self.records:
            if raw.coord.offset < (start.get(raw.coord.partition) or 0):
                continue
            if stop():
                return
            yield raw

    def end(self) -> str:
        return "read to the end of every partition"

    def commit(self, topic: str, offsets: Mapping[int, int]) -> None:
        self.cursor.update(offsets)
        self.commits.append(dict(offsets))


@dataclass
class FakePublisher:
    fail: set[bytes] = field(default_factory=set)  # keys whose send fails
    sent: list[Outgoing] = field(default_factory=list)

    def send(self, records: Sequence[Outgoing]) -> list[Exception | None]:
        results: list[Exception | None] = []
        for record in records:
            if record[2] in self.fail:
                results.append(RuntimeError("broker said no"))
            else:
                self.sent.append(record)
                results.append(None)
        return results


def run_redrive(reader: FakeReader, publisher: FakePublisher | None, chosen=dlq.Selection(), **kw):  # type: ignore[no-untyped-def]
    lines: list[str] = []
    code = redrive(DLQ, "g.redrive", reader, publisher, chosen, kw.pop("limit", None), lines.append, **kw)
    return code, lines


def test_inspect_refuses_a_missing_topic_and_reports_the_end() -> None:
    lines: list[str] = []
    with pytest.raises(DlqRefused, match="does not exist"):
        inspect(DLQ, FakeReader([], topics_={}), dlq.Selection(), 10, False, lines.append)
    assert inspect(DLQ, FakeReader([dead(0, 0)]), dlq.Selection(), 10, True, lines.append) == 0
    assert json.loads(lines[0])["end"] == "read to the end of every partition"


def test_dry_run_sends_and_commits_nothing() -> None:
    reader = FakeReader([dead(0, 0), dead(0, 1)])
    code, lines = run_redrive(reader, None)
    assert code == 0 and reader.commits == []
    assert lines[-1].startswith(f"dry run: 2 record(s) of {DLQ} would be re-driven")


def test_execute_sends_in_batches_and_commits_after_each() -> None:
    reader = FakeReader([dead(0, o, ("orders", 1, 10 + o)) for o in range(5)] + [dead(1, 0, ("orders", 0, 3))])
    publisher = FakePublisher()
    code, lines = run_redrive(reader, publisher, batch_size=2)
    assert code == 0
    assert [(t, p, k) for t, p, k, _v, _h in publisher.sent] == [
        ("orders", 1, b"k0"),
        ("orders", 1, b"k1"),
        ("orders", 1, b"k2"),
        ("orders", 1, b"k3"),
        ("orders", 1, b"k4"),
        ("orders", 0, b"k0"),
    ]
    assert publisher.sent[0][4] == [("trace", b"t-1"), (dlq.REDRIVE_COUNT, b"1")]
    assert reader.commits == [{0: 2}, {0: 4}, {0: 5, 1: 1}]
    assert f"re-driven 6 record(s) of {DLQ}; progress committed in group g.redrive" in lines
    code, lines = run_redrive(reader, publisher)  # run again: nothing left
    assert code == 0 and len(publisher.sent) == 6 and "re-driven 0 record(s)" in lines[-1]


def test_a_failed_send_stops_and_keeps_the_failed_record_for_the_next_run() -> None:
    reader = FakeReader([dead(0, 0), dead(0, 1), dead(0, 2), dead(1, 0)])
    publisher = FakePublisher(fail={b"k1"})
    code, lines = run_redrive(reader, publisher)
    assert code == 1 and lines[-1].startswith("stopped: a record was not acknowledged")
    assert reader.cursor == {0: 1, 1: 1}, "partition 0 stops before the failed record; partition 1 moves on"
    publisher.fail.clear()
    assert run_redrive(reader, publisher)[0] == 0
    assert [h[2] for h in publisher.sent] == [b"k0", b"k2", b"k0", b"k1", b"k2"], "k2 twice, k1 once: none lost"


def test_limit_stop_and_records_passed_over() -> None:
    reader = FakeReader([dead(0, 0), dead(0, 1, cls="sink.errors.DecodeError"), dead(0, 2), dead(0, 3)])
    publisher = FakePublisher()
    chosen = dlq.Selection(error_class="RecordRejected")
    code, lines = run_redrive(reader, publisher, chosen, limit=2)
    assert code == 0 and reader.cursor == {0: 3}
    assert any(line.startswith("passed over 1 record(s) not selected") for line in lines)
    stops = iter([False, True])
    code, lines = run_redrive(reader, publisher, chosen, stop=lambda: next(stops, True))
    assert code == 1 and lines[-1].startswith("interrupted")
    assert len(publisher.sent) == 3 and reader.cursor == {0: 4}


def test_records_that_cannot_be_re_driven_are_counted_not_sent() -> None:
    reader = FakeReader([dead(0, 0, source=None), dead(0, 1, extra=[(TRUNCATED, b"{}")]), dead(0, 2)])
    publisher = FakePublisher()
    code, lines = run_redrive(reader, publisher)
    assert code == 0 and len(publisher.sent) == 1
    assert "2 selected record(s) cannot be re-driven" in lines[-1]
