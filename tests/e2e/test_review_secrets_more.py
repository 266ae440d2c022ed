"""Review: credentials with URL-special characters never reach an output of `sink run` or `sink check`.

A password typed into a URL without percent-encoding its `@`, `/`, `?` or `#` splits the URL in
unexpected places: part of the password lands in the host (SQLAlchemy takes the first `@` as the
end of the password) or in the port (urlsplit stops the authority at the first `/`, `?`, `#`).
Either way the pieces must never be printed: the sink refuses such a URL at start-up with one
line naming the variable (exit 2), and never quotes it.
"""

from __future__ import annotations

import contextlib
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

from tests.e2e.conftest import SINK, SinkRunner, _clean_environ, write_env
from tests.support.kafka import create_topic, produce, wait_for
from tests.support.registry import RegistryServer

pytestmark = pytest.mark.e2e

# Each password is planted as two halves around the special character: neither may appear.
PART1, PART2 = "RvwPartOne4471", "RvwPartTwo9902"


def _run(command: str, env_file: Path, timeout: float = 30) -> tuple[int | None, str]:
    """Run `sink <command>`; a command still running after `timeout` is killed (returncode None)."""
    process = subprocess.Popen(
        [str(SINK), command, "--env-file", str(env_file)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
        env=_clean_environ(),
    )
    try:
        out, err = process.communicate(timeout=timeout)
        return process.returncode, out + err
    except subprocess.TimeoutExpired:
        process.kill()
        out, err = process.communicate(timeout=10)
        return None, out + err


def _assert_clean(what: str, text: str) -> None:
    for planted in (PART1, PART2):
        assert planted not in text, f"{planted!r} (a piece of the password) leaked in {what}:\n{text[-3000:]}"


@pytest.mark.parametrize(
    ("first", "special"),
    # a numeric first half reads as a port; a fullwidth '#' makes urlsplit quote the whole netloc
    [(PART1, "/"), (PART1, "?"), (PART1, "#"), ("4471", "/"), (PART1, "\uff03")],
)
@pytest.mark.parametrize("command", ["run", "check"])
def test_registry_url_with_an_unencoded_special_character_in_the_password(
    command: str, first: str, special: str, bootstrap_servers: str, pg_url: str, tmp_path: Path
) -> None:
    registry = f"http://reg-user:{first}{special}{PART2}@127.0.0.1:1"
    env = write_env(
        tmp_path / "sink.env",
        bootstrap_servers,
        pg_url,
        "t",
        "review-secrets",
        key_format="avro",
        value_format="json",
    )
    # quoted: python-dotenv would take an unquoted ` #...` for a comment
    with env.open("a") as file:
        file.write(f"SINK_SCHEMA_REGISTRY_URL='{registry}'\n")
    code, output = _run(command, env)
    _assert_clean(f"sink {command}", output)
    assert code == 2, output[-3000:]
    assert output.startswith("sink: configuration error: SINK_SCHEMA_REGISTRY_URL:"), output
    assert output.count("\n") == 1, output


@pytest.mark.parametrize("command", ["run", "check"])
def test_database_url_with_an_unencoded_at_sign_in_the_password(
    command: str, bootstrap_servers: str, tmp_path: Path
) -> None:
    # SQLAlchemy ends the password at the first `@`: the host becomes `RvwPartTwo9902@127.0.0.1`.
    database_url = f"postgresql+psycopg://postgres:{PART1}@{PART2}@127.0.0.1:5432/test"
    env = write_env(tmp_path / "sink.env", bootstrap_servers, database_url, "t", "review-secrets")
    code, output = _run(command, env, timeout=15)
    _assert_clean(f"sink {command}", output)
    assert code == 2, output[-3000:]
    assert output.startswith("sink: configuration error: SINK_DATABASE_URL:"), output
    assert output.count("\n") == 1, output


@pytest.mark.parametrize("command", ["run", "check"])
def test_mariadb_password_outside_latin1_is_refused_without_its_characters(
    command: str, bootstrap_servers: str, tmp_path: Path
) -> None:
    # PyMySQL encodes the password as Latin-1: its UnicodeEncodeError quotes the character and its
    # position (a raw traceback from `sink run`, the FAIL line of `sink check`).
    database_url = f"mysql+pymysql://root:{PART1}\u03a9{PART2}@127.0.0.1:3306/test"
    env = write_env(tmp_path / "sink.env", bootstrap_servers, database_url, "t", "review-secrets")
    code, output = _run(command, env, timeout=20)
    _assert_clean(f"sink {command}", output)
    for piece in ("\u03a9", "\\u03a9", "Traceback"):
        assert piece not in output, f"{piece!r} in sink {command}'s output:\n{output[-3000:]}"
    assert code == 2, output[-3000:]
    assert output.startswith("sink: configuration error: SINK_DATABASE_URL:"), output
    assert output.count("\n") == 1, output


REG_SECRET = "RvwRegPw-6604m"


def _silent_listener() -> socket.socket:
    """A TCP port that accepts connections (kernel backlog) and never answers: a registry that times out."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    return listener


@pytest.mark.parametrize("carrier", ["url", "user_info"])
@pytest.mark.parametrize("failure", ["401", "503", "timeout"])
def test_guard_registry_failures_never_print_its_credentials(
    failure: str,
    carrier: str,
    bootstrap_servers: str,
    pg_url: str,
    unique_name: str,
    tmp_path: Path,
    sink_runner: SinkRunner,
) -> None:
    """Guard (passes on the current code): a registry that refuses the credentials, fails with 503
    or never answers, with the password in the URL or in ..._BASIC_AUTH_USER_INFO: `sink check`
    and `sink run` (DEBUG, JSON lines, a record that needs the schema) never print it."""
    with contextlib.ExitStack() as stack:
        if failure == "timeout":
            listener = stack.enter_context(_silent_listener())
            base = f"http://127.0.0.1:{listener.getsockname()[1]}"
        else:
            server = stack.enter_context(RegistryServer(basic_auth=("reg-user", "the-right-one")))
            server.available = failure != "503"
            base = server.url
        scheme, rest = base.split("://", 1)
        auth = (
            {"schema_registry_url": f"{scheme}://reg-user:{REG_SECRET}@{rest}"}
            if carrier == "url"
            else {"schema_registry_url": base, "schema_registry__basic_auth_user_info": f"reg-user:{REG_SECRET}"}
        )
        create_topic(bootstrap_servers, unique_name)
        produce(bootstrap_servers, unique_name, [{"key": "1", "value": b"\x00\x00\x00\x00\x07\x02"}])
        env = write_env(
            tmp_path / "sink.env",
            bootstrap_servers,
            pg_url,
            unique_name,
            unique_name,
            value_format="avro",
            schema_registry__timeout="1",
            log_level="DEBUG",
            log_format="json",
            **auth,
        )
        code, checked = _run("check", env)
        assert code == 1 and "FAIL  schema registry" in checked, checked
        assert REG_SECRET not in checked, checked

        sink = sink_runner.start(env)
        wait_for(
            lambda: sink.process.poll() is not None or "schema" in sink.stderr.lower(),
            30,
            message="the sink never spoke of the registry",
        )
        time.sleep(1.0)
        sink.process.send_signal(signal.SIGTERM)
        sink.wait(30)
        said = sink.stderr + sink.stdout
        assert "schema registry" in said.lower(), said[-3000:]
        assert REG_SECRET not in said, said[-3000:]


def test_guard_mariadb_refusing_the_password_never_prints_it(bootstrap_servers: str, tmp_path: Path) -> None:
    """Guard (passes on the current code): MariaDB's 1045 for a wrong password, `sink run` and `sink check`."""
    database_url = f"mysql+pymysql://root:{PART1}@127.0.0.1:3306/test"
    env = write_env(tmp_path / "sink.env", bootstrap_servers, database_url, "t", "review-secrets", log_level="DEBUG")
    code, output = _run("run", env)
    assert code == 2 and "1045" in output, output
    _assert_clean("sink run", output)
    code, output = _run("check", env)
    assert code == 1 and "FAIL  database" in output and "1045" in output, output
    _assert_clean("sink check", output)


def test_guard_reset_offsets_and_dlq_inspect_never_print_planted_credentials(
    bootstrap_servers: str, pg_url: str, unique_name: str, tmp_path: Path
) -> None:
    """Guard (passes on the current code): `sink reset-offsets` under exactly_once (which opens the
    database) dry run and --execute, and `sink dlq inspect` (table and --json), with a database
    password in the URL's userinfo and query and SASL passwords, at DEBUG in JSON lines."""
    topic, dlq = unique_name, f"{unique_name}_dlq"
    for name in (topic, dlq):
        create_topic(bootstrap_servers, name)
    produce(bootstrap_servers, topic, [{"key": "1", "value": '{"id": 1}'}])
    produce(bootstrap_servers, dlq, [{"key": "1", "value": "x", "headers": {"__connect.errors.stage": "x"}}])
    scheme, rest = pg_url.split("://", 1)
    user, host = rest.split("@", 1)
    database_url = f"{scheme}://{user}:{PART1}@{host}?password={PART2}"  # trust: any password connects
    env = write_env(
        tmp_path / "sink.env",
        bootstrap_servers,
        database_url,
        topic,
        unique_name,
        delivery_guarantee="exactly_once",
        errors_deadletterqueue_topic_name=dlq,
        consumer__sasl_password=PART1,
        producer__sasl_password=PART2,
        log_level="DEBUG",
        log_format="json",
    )
    commands = [
        ["reset-offsets", "--all-topics", "--to-earliest"],
        ["reset-offsets", "--all-topics", "--to-earliest", "--execute"],
        ["dlq", "inspect", "--idle-ms", "2000"],
        ["dlq", "inspect", "--idle-ms", "2000", "--json"],
    ]
    for args in commands:
        done = subprocess.run(
            [str(SINK), *args, "--env-file", str(env)],
            capture_output=True,
            text=True,
            timeout=60,
            env=_clean_environ(),
            check=False,
        )
        output = done.stdout + done.stderr
        assert done.returncode == 0, output[-3000:]
        assert topic in output, output[-3000:]
        _assert_clean(" ".join(args), output)


@pytest.mark.parametrize("mechanism", ["PLAIN", "SCRAM-SHA-256"])
def test_guard_sasl_password_never_in_librdkafka_lines(
    mechanism: str, bootstrap_servers: str, pg_url: str, unique_name: str, tmp_path: Path, sink_runner: SinkRunner
) -> None:
    """Guard (passes on the current code): SASL against a broker that does not speak it, with every
    librdkafka debug context on and DEBUG logs: librdkafka's lines (security, protocol, conf,
    errors) come through sink.librdkafka without the password, for `sink run` and `sink check`."""
    create_topic(bootstrap_servers, unique_name)
    env = write_env(
        tmp_path / "sink.env",
        bootstrap_servers,
        pg_url,
        unique_name,
        unique_name,
        consumer__security_protocol="SASL_PLAINTEXT",
        consumer__sasl_mechanism=mechanism,
        consumer__sasl_username="sasl-user",
        consumer__sasl_password=PART1,
        consumer__debug="all",
        producer__sasl_password=PART2,
        errors_deadletterqueue_topic_name=f"{unique_name}_dlq",
        errors_tolerance="all",
        log_level="DEBUG",
    )
    code, checked = _run("check", env)
    assert code == 1 and "FAIL  broker" in checked, checked[-3000:]
    _assert_clean("sink check", checked)
    sink = sink_runner.start(env)
    wait_for(lambda: "sasl" in sink.stderr.lower(), 30, message="librdkafka never spoke of SASL")
    time.sleep(2.0)
    sink.process.send_signal(signal.SIGTERM)
    sink.wait(30)
    assert "sink.librdkafka" in sink.stderr, sink.stderr[-3000:]
    _assert_clean("sink run", sink.stderr + sink.stdout)
