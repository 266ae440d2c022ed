"""Compare checkouts of the sink, end to end, in alternating rounds against the plain consumer.

    .venv/bin/python benchmarks/compare.py [--records N] [--rounds R] TREE [TREE ...]
    .venv/bin/python benchmarks/compare.py --records 300000 ../main ../mine ../mine@SINK_BATCH_SIZE=30000

A TREE is a source checkout of this repository; `TREE@NAME=VALUE` adds a setting to its `sink run`.
On one topic (the avro section's dataset, produced once), each round runs (c), the plain consumer,
then `sink run` from each tree, with the same broker, registry and final-state probe as
`run.py --only avro`. It prints every run and then, per tree, the median rate, its ratio to (c)'s
median, and the median CPU seconds. One run of a line varies by several percent on two shared cores;
a difference between trees smaller than the spread of their rounds is noise.
"""

from __future__ import annotations

import argparse
import functools
import statistics
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if not __package__:  # run as a script: import `benchmarks.*` from the repository root
    sys.path[0] = str(ROOT)

from benchmarks import avro_db  # noqa: E402
from benchmarks.avro_kafka import create_topic, produce, register  # noqa: E402
from benchmarks.avro_peers import Options, Session, _avro, sink_env  # noqa: E402
from benchmarks.avro_watch import Line, run_line  # noqa: E402
from benchmarks.common import Progress  # noqa: E402

URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


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
    options = Options(args.records, [50_000], 0, quix=False, sink_env={}, rounds=args.rounds)
    broker = EmbeddedBroker(log_path=workdir / "tansu.log").start()
    registry = RegistryServer().start()
    session = Session(options, URL, workdir, progress, broker.bootstrap_servers, registry.url, (None, ""))
    try:
        topic = session.topics[""]
        with progress.step(f"compare     produce {session.count:,} Avro records to {topic}"):
            create_topic(session.bootstrap, topic)
            schema_id = register(session.registry_url, f"{topic}-value")
            produce(session.bootstrap, topic, session.count, functools.partial(_avro, schema_id, session.count))
        lines: dict[str, Callable[[], Line]] = {"(c) plain consumer": session.plain_line}
        lines.update({spec: functools.partial(sink_line, session, spec) for spec in args.trees})
        runs: dict[str, list[Line]] = {name: [] for name in lines}
        for number in range(1, args.rounds + 1):
            for name, measure in lines.items():
                with progress.step(f"compare     round {number} of {args.rounds}: {name}"):
                    line = measure()
                runs[name].append(line)
                progress.line(f"            -> {line.rate or 0:,.0f} records/s, {line.cpu or 0:.1f} CPU s {line.wrong}")
        print(summary(runs))
    finally:
        registry.stop()
        broker.stop()
        for target, tables in session.tables.items():
            avro_db.drop(target, tables)
    return 0


def sink_line(session: Session, spec: str) -> Line:
    """`sink run` from the checkout of `spec` (its own `sink` package first on the path)."""
    tree, settings = tree_and_settings(spec)
    name = session.table("sink")
    env = sink_env(
        session.workdir / f"{name}.env",
        session.bootstrap,
        session.topics[""],
        f"{name}_g",
        URL,
        name,
        "avro",
        session.registry_url,
        settings,
    )
    command = [sys.executable, "-P", "-m", "sink", "run", "--env-file", str(env)]  # -P: not the cwd's sink
    return run_line(
        "a", spec, command, session.workdir / f"{name}.log", URL, name, session.count, {"PYTHONPATH": str(tree)}
    )


def summary(runs: dict[str, list[Line]]) -> str:
    """Per line: the median rate, its ratio to the first line's (the plain consumer), CPU, every round."""
    base = statistics.median(line.rate or 0 for line in next(iter(runs.values())))
    out = [f"\n{'line':<50} {'median/s':>10} {'vs (c)':>7} {'CPU s':>6}  rounds (records/s)"]
    for name, lines in runs.items():
        rates = [line.rate or 0 for line in lines]
        rate, cpu = statistics.median(rates), statistics.median(line.cpu or 0 for line in lines)
        wrong = "; ".join(sorted({line.wrong for line in lines if line.wrong}))
        ratio = rate / base if base else 0
        rounds = ", ".join(f"{r:,.0f}" for r in rates)
        out.append(f"{name:<50} {rate:>10,.0f} {ratio:>6.3f}x {cpu:>6.1f}  {rounds} {wrong}".rstrip())
    return "\n".join(out)


if __name__ == "__main__":
    sys.exit(main())
