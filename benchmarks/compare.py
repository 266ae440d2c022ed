"""Compare checkouts of the sink, end to end, in alternating rounds against the plain consumer.

    .venv/bin/python benchmarks/compare.py [--records N] [--rounds R] TREE [TREE ...]
    .venv/bin/python benchmarks/compare.py --records 300000 ../main ../mine ../mine@SINK_BATCH_SIZE=30000

A TREE is a source checkout of this repository; `TREE@NAME=VALUE` adds a setting to its `sink run`.
On one topic (the avro section's dataset, produced once), each round runs (c), the plain consumer,
then `sink run` from each tree, with the same broker, registry, final-state probe and median run
(`Session.alternating`) as `run.py --only avro`. It prints every run and then, per line, its
median run's rate, that rate's ratio to (c)'s, its CPU seconds and every round's rate. One run
of a line varies by several percent on two shared cores; a difference between trees smaller than
the spread of their rounds is noise.
"""

from __future__ import annotations

import argparse
import functools
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if not __package__:  # run as a script: import `benchmarks.*` from the repository root
    sys.path[0] = str(ROOT)

from benchmarks import avro_db  # noqa: E402
from benchmarks.avro_kafka import create_topic, produce, register  # noqa: E402
from benchmarks.avro_peers import Options, Session, _avro  # noqa: E402
from benchmarks.avro_watch import Line  # noqa: E402
from benchmarks.common import POSTGRES_URL, Progress  # noqa: E402


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("trees", nargs="+", metavar="TREE[@NAME=VALUE...]", help="source checkouts to compare")
    parser.add_argument("--records", type=int, default=300_000, help="records in the topic (default 300,000)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds, each (c) then every tree (default 3)")
    return parser.parse_args(argv)


def tree_and_settings(spec: str) -> tuple[Path, dict[str, str]]:
    """`TREE@NAME=VALUE@...` as the checkout and its extra settings."""
    tree, *settings = spec.split("@")
    return Path(tree).resolve(), dict(setting.split("=", 1) for setting in settings)


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    from sink.adapters.embedded_broker import EmbeddedBroker
    from tests.support.registry import RegistryServer

    workdir = Path(tempfile.mkdtemp(prefix="sink-compare-"))
    progress = Progress()
    progress.line(f"compare     work dir {workdir} (kept: the sinks' logs and env files)")
    options = Options(args.records, [50_000], 0, quix=False, sink_env={}, rounds=max(1, args.rounds))
    broker = EmbeddedBroker(log_path=workdir / "tansu.log").start()
    registry = RegistryServer().start()
    session = Session(options, POSTGRES_URL, workdir, progress, broker.bootstrap_servers, registry.url, (None, ""))
    try:
        topic = session.topics[""]
        with progress.step(f"compare     produce {session.count:,} Avro records to {topic}"):
            create_topic(session.bootstrap, topic)
            schema_id = register(session.registry_url, f"{topic}-value")
            produce(session.bootstrap, topic, session.count, functools.partial(_avro, schema_id, session.count))
        measures = [("(c) plain consumer", session.plain_line)]
        for spec in args.trees:
            tree, settings = tree_and_settings(spec)
            measures.append(
                (spec, functools.partial(session.sink_line, "a", spec, "", "avro", tree=tree, settings=settings))
            )
        session.alternating(measures)
        print(summary([name for name, _ in measures], session.lines))
    finally:
        registry.stop()
        broker.stop()
        for target, tables in session.tables.items():
            avro_db.drop(target, tables)
    return 0


def summary(names: list[str], lines: list[Line]) -> str:
    """Per line (its median run): the rate, its ratio to the first line's (the plain consumer),
    CPU, and every round's rate."""
    base = lines[0].rate or 0
    out = [f"\n{'line':<50} {'median/s':>10} {'vs (c)':>7} {'CPU s':>6}  rounds (records/s)"]
    for name, line in zip(names, lines, strict=True):
        rate = line.rate or 0
        rounds = ", ".join(f"{r:,}" for r in line.extra.get("rounds", [round(rate)]))
        ratio = rate / base if base else 0
        out.append(f"{name:<50} {rate:>10,.0f} {ratio:>6.3f}x {line.cpu or 0:>6.1f}  {rounds} {line.wrong}".rstrip())
    return "\n".join(out)


if __name__ == "__main__":
    sys.exit(main())
