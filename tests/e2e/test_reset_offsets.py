"""`sink reset-offsets --env-file F ...` against a real broker: a dry run changes nothing, --execute
moves the sink's group, scopes and specs as in `kafka-consumer-groups --reset-offsets`, clamped to
the log; errors are one line with exit 2 (request) or 1 (broker).

Records are produced one flush each: Tansu answers ListOffsets(latest) with the last batch's base
offset + 1, which is only the true end of the log when every batch holds one record.
"""

from __future__ import annotations

import json
import signal
import subprocess
from pathlib import Path

import pytest
from confluent_kafka import ConsumerGroupTopicPartitions, TopicPartition
from confluent_kafka.admin import AdminClient

from tests.e2e.conftest import SINK, SinkRunner, _clean_environ, write_env
from tests.support.kafka import committed_offsets, create_topic, produce, wait_for

pytestmark = pytest.mark.e2e


def reset(env: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(SINK), "reset-offsets", "--env-file", str(env), *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=_clean_environ(),
        check=False,
    )


def fill(bootstrap: str, topic: str, partitions: int, count: int) -> None:
    """`count` records in each partition, one produce call (and flush, so one batch) per record."""
    create_topic(bootstrap, topic, partitions)
    for partition in range(partitions):
        for i in range(count):
            produce(bootstrap, topic, [{"partition": partition, "value": json.dumps({"id": i, "p": partition})}])


def commit(bootstrap: str, group: str, topic: str, offsets: dict[int, int]) -> None:
    request = ConsumerGroupTopicPartitions(group, [TopicPartition(topic, p, o) for p, o in offsets.items()])
    admin = AdminClient({"bootstrap.servers": bootstrap})  # kept referenced until the future is done
    result = admin.alter_consumer_group_offsets([request], request_timeout=10)[group].result()
    assert all(tp.error is None for tp in result.topic_partitions), result.topic_partitions


@pytest.fixture
def setup(tmp_path: Path, bootstrap_servers: str, unique_name: str) -> tuple[Path, str, str]:
    """A topic with 2 partitions of 5 records each, the group committed at {0: 3, 1: 4}."""
    topic, group = unique_name, f"{unique_name}-group"
    fill(bootstrap_servers, topic, 2, 5)
    commit(bootstrap_servers, group, topic, {0: 3, 1: 4})
    env = write_env(tmp_path / "sink.env", bootstrap_servers, f"sqlite:///{tmp_path / 'db.sqlite'}", topic, group)
    return env, topic, group


def table(stdout: str) -> dict[tuple[str, int], tuple[str, str]]:
    lines = stdout.splitlines()
    assert lines[0].split() == ["TOPIC", "PARTITION", "CURRENT-OFFSET", "NEW-OFFSET"], stdout
    rows = [line.split() for line in lines[1:] if line and not line.startswith(("dry run", "group "))]
    return {(t, int(p)): (cur, new) for t, p, cur, new in rows}


def test_dry_run_is_the_default_and_changes_nothing(setup: tuple[Path, str, str], bootstrap_servers: str) -> None:
    env, topic, group = setup
    for extra in ((), ("--dry-run",)):
        done = reset(env, "--all-topics", "--to-earliest", *extra)
        assert done.returncode == 0, done.stderr
        assert table(done.stdout) == {(topic, 0): ("3", "0"), (topic, 1): ("4", "0")}
        assert done.stdout.splitlines()[-1].startswith(f"dry run: group {group} not changed")
        assert committed_offsets(bootstrap_servers, group, topic, 2) == {0: 3, 1: 4}


def test_execute_to_earliest_moves_the_group_to_the_start(setup: tuple[Path, str, str], bootstrap_servers: str) -> None:
    env, topic, group = setup
    done = reset(env, "--all-topics", "--to-earliest", "--execute")
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1] == f"group {group}: offsets of 2 partition(s) reset"
    assert committed_offsets(bootstrap_servers, group, topic, 2) == {0: 0, 1: 0}


def test_to_offset_and_to_latest_are_clamped_to_the_log(setup: tuple[Path, str, str], bootstrap_servers: str) -> None:
    env, topic, group = setup
    assert reset(env, "--topic", topic, "--to-offset", "2", "--execute").returncode == 0
    assert committed_offsets(bootstrap_servers, group, topic, 2) == {0: 2, 1: 2}
    done = reset(env, "--topic", topic, "--to-offset", "99", "--execute")
    assert table(done.stdout) == {(topic, 0): ("2", "5"), (topic, 1): ("2", "5")}
    assert committed_offsets(bootstrap_servers, group, topic, 2) == {0: 5, 1: 5}
    assert reset(env, "--topic", topic, "--to-earliest", "--execute").returncode == 0
    assert reset(env, "--topic", topic, "--to-latest", "--execute").returncode == 0
    assert committed_offsets(bootstrap_servers, group, topic, 2) == {0: 5, 1: 5}


def test_shift_by_is_clamped_at_the_start(setup: tuple[Path, str, str], bootstrap_servers: str) -> None:
    env, topic, group = setup
    commit(bootstrap_servers, group, topic, {0: 1, 1: 4})
    done = reset(env, "--all-topics", "--shift-by", "-2", "--execute")
    assert done.returncode == 0, done.stderr
    assert table(done.stdout) == {(topic, 0): ("1", "0"), (topic, 1): ("4", "2")}
    assert committed_offsets(bootstrap_servers, group, topic, 2) == {0: 0, 1: 2}


def test_topic_with_partitions_touches_only_those(setup: tuple[Path, str, str], bootstrap_servers: str) -> None:
    env, topic, group = setup
    done = reset(env, "--topic", f"{topic}:1", "--to-earliest", "--execute")
    assert done.returncode == 0, done.stderr
    assert table(done.stdout) == {(topic, 1): ("4", "0")}
    assert committed_offsets(bootstrap_servers, group, topic, 2) == {0: 3, 1: 0}


def test_from_file(setup: tuple[Path, str, str], bootstrap_servers: str, tmp_path: Path) -> None:
    env, topic, group = setup
    plan = tmp_path / "plan.csv"
    plan.write_text(f"# topic,partition,offset\n{topic},0,1\n{topic},1,42\n")
    done = reset(env, "--from-file", str(plan), "--execute")
    assert done.returncode == 0, done.stderr
    assert table(done.stdout) == {(topic, 0): ("3", "1"), (topic, 1): ("4", "5")}
    assert committed_offsets(bootstrap_servers, group, topic, 2) == {0: 1, 1: 5}


def test_group_option_and_time_specs(setup: tuple[Path, str, str], bootstrap_servers: str) -> None:
    env, topic, group = setup
    other = f"{group}-other"
    commit(bootstrap_servers, other, topic, {0: 5, 1: 5})
    # Every record is younger than a day and newer than 2000: both answer the start of the log.
    for spec in (("--by-duration", "P1D"), ("--to-datetime", "2000-01-01T00:00:00.000")):
        done = reset(env, "--group", other, "--topic", topic, *spec)
        assert done.returncode == 0, done.stderr
        assert table(done.stdout) == {(topic, 0): ("5", "0"), (topic, 1): ("5", "0")}
    assert reset(env, "--group", other, "--topic", topic, "--by-duration", "P1D", "--execute").returncode == 0
    assert committed_offsets(bootstrap_servers, other, topic, 2) == {0: 0, 1: 0}
    assert committed_offsets(bootstrap_servers, group, topic, 2) == {0: 3, 1: 4}


def test_all_topics_follows_the_topics_regex(tmp_path: Path, bootstrap_servers: str, unique_name: str) -> None:
    group = f"{unique_name}-group"
    for suffix in ("a", "b"):
        fill(bootstrap_servers, f"{unique_name}_{suffix}", 1, 2)
    create_topic(bootstrap_servers, f"x{unique_name}", 1)  # does not match: the regex is anchored
    env = tmp_path / "regex.env"
    env.write_text(
        f"SINK_BOOTSTRAP_SERVERS={bootstrap_servers}\nSINK_TOPICS_REGEX={unique_name}_.*\n"
        f"SINK_GROUP_ID={group}\nSINK_DATABASE_URL=sqlite:///{tmp_path / 'db.sqlite'}\n"
    )
    done = reset(env, "--all-topics", "--to-latest", "--execute")
    assert done.returncode == 0, done.stderr
    assert table(done.stdout) == {(f"{unique_name}_a", 0): ("-", "2"), (f"{unique_name}_b", 0): ("-", "2")}
    for suffix in ("a", "b"):
        assert committed_offsets(bootstrap_servers, group, f"{unique_name}_{suffix}") == {0: 2}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--topic", "no_such_topic_xyz", "--to-earliest"), "topic 'no_such_topic_xyz' does not exist"),
        (("--topic", "{topic}:7", "--to-earliest"), "has no partition 7"),
        (("--topic", "{topic}", "--by-duration", "1 day"), "--by-duration '1 day': not an ISO 8601 duration"),
        (("--to-earliest",), "say which partitions"),
    ],
)
def test_bad_requests_exit_2_with_one_line(
    setup: tuple[Path, str, str], bootstrap_servers: str, args: tuple[str, ...], message: str
) -> None:
    env, topic, group = setup
    done = reset(env, *(arg.format(topic=topic) for arg in args), "--execute")
    assert done.returncode == 2, done.stdout + done.stderr
    assert len(done.stderr.splitlines()) == 1 and message in done.stderr, done.stderr
    assert committed_offsets(bootstrap_servers, group, topic, 2) == {0: 3, 1: 4}


def test_unreachable_broker_exits_1_with_one_line(tmp_path: Path) -> None:
    env = write_env(tmp_path / "down.env", "127.0.0.1:1", "sqlite:///x.db", "orders", "g")
    done = reset(env, "--all-topics", "--to-earliest")
    assert done.returncode == 1
    assert len(done.stderr.splitlines()) == 1 and "did not answer" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr


def test_refused_while_the_sink_runs(
    setup: tuple[Path, str, str], bootstrap_servers: str, sink_runner: SinkRunner
) -> None:
    env, topic, group = setup
    sink = sink_runner.start(env)
    admin = AdminClient({"bootstrap.servers": bootstrap_servers})

    def state() -> str:
        return admin.describe_consumer_groups([group])[group].result().state.name

    wait_for(lambda: state() == "STABLE", 30, message=f"group {group} never became stable")
    done = reset(env, "--all-topics", "--to-earliest", "--execute")
    assert done.returncode == 2, done.stdout + done.stderr
    assert len(done.stderr.splitlines()) == 1 and f"group {group} is active" in done.stderr, done.stderr

    sink.process.send_signal(signal.SIGTERM)
    assert sink.wait(30) == 0, sink.stderr
    done = reset(env, "--all-topics", "--to-earliest", "--execute")
    assert done.returncode == 0, done.stderr
    assert committed_offsets(bootstrap_servers, group, topic, 2) == {0: 0, 1: 0}
