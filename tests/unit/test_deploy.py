"""Issue 9: the image, docker-compose.yml, the Kubernetes manifests and the example env files are
valid and agree with each other and with the sink's settings. No Docker engine or cluster here:
the compose file is checked against the Compose Specification's JSON schema (as vendored by the
PyPI package check-jsonschema), core Kubernetes kinds against Kubernetes' own JSON schemas (the
PyPI package kubernetes-validate), KEDA's ScaledObject by its structure; every SINK_* they use
goes through the sink's own validation (load_settings + the librdkafka/registry client checks).
"""

from __future__ import annotations

import json
import re
import shlex
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from sink.checks import validate_clients
from sink.config import FILE_SECRETS, PASSTHROUGH, Settings, known_variables, load_settings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
K8S = ROOT / "deploy" / "kubernetes"
DOCKERFILE = ROOT / "Dockerfile"
EXAMPLES = sorted((ROOT / "config").glob("*.env"))
DB_URL_SECRET = ROOT / "deploy" / "compose" / "secrets" / "SINK_DATABASE_URL"


def _compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text())


def _manifests() -> dict[str, dict[str, Any]]:
    """kind -> the manifest of that kind (one of each here)."""
    found: dict[str, dict[str, Any]] = {}
    for path in sorted(K8S.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            assert doc["kind"] not in found, f"two {doc['kind']} manifests"
            found[doc["kind"]] = doc
    return found


def _validated(settings: Settings) -> Settings:
    validate_clients(settings)  # librdkafka and registry client properties, offline
    return settings


def _secrets_dir(tmp_path: Path, url: str) -> Path:
    directory = tmp_path / "secrets"
    directory.mkdir(exist_ok=True)
    (directory / "SINK_DATABASE_URL").write_text(url)
    return directory


def _sink_names(mapping: dict[str, Any]) -> set[str]:
    return {name for name in mapping if name.upper().startswith("SINK_")}


def _is_known(name: str) -> bool:
    upper = name.upper()
    group, sep, prop = upper.removeprefix("SINK_").partition("__")
    return upper in known_variables() or bool(sep and prop and group.lower() in PASSTHROUGH)


# ------------------------------------------------------------------------------ example env files


def test_the_examples_are_the_documented_set_and_one_is_exactly_once() -> None:
    names = {path.name for path in EXAMPLES}
    expected = {"postgres-avro.env", "mariadb-json.env", "sqlite-dev.env", "example.env", "quickstart.env"}
    assert expected | {"postgres-exactly-once.env"} <= names
    readme = (ROOT / "config" / "README.md").read_text()
    for name in names:
        assert f"[`{name}`]({name})" in readme, f"config/README.md does not list {name}"
    texts = {name: (ROOT / "config" / name).read_text().upper() for name in names}
    exactly_once = [name for name, text in texts.items() if "DELIVERY_GUARANTEE=EXACTLY_ONCE" in text]
    assert exactly_once == ["postgres-exactly-once.env"]


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_every_example_env_file_passes_the_sinks_validation(path: Path, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)  # sqlite-dev.env's relative dev.db lands here
    environ: dict[str, str] = {"SINK_SECRETS_DIR": ""}
    if path.name == "quickstart.env":  # `make quickstart` gives these in the environment
        environ |= {"SINK_BOOTSTRAP_SERVERS": "127.0.0.1:9092", "SINK_DATABASE_URL": f"sqlite:///{tmp_path}/q.db"}
    text = path.read_text()
    if "SINK_DATABASE_URL=" not in text and "SINK_DATABASE_URL_FILE=" not in text:  # from the secrets directory
        environ["SINK_SECRETS_DIR"] = str(_secrets_dir(tmp_path, DB_URL_SECRET.read_text()))
    settings = _validated(load_settings([path], environ=environ))
    assert settings.topics or settings.topics_regex
    if settings.errors_tolerance == "all" and "dlq" in path.name:
        assert settings.errors_deadletterqueue_topic_name


def test_the_mariadb_and_sqlite_examples_target_their_databases() -> None:
    mariadb = load_settings([ROOT / "config" / "mariadb-json.env"], environ={"SINK_SECRETS_DIR": ""})
    assert mariadb.database_url.get_secret_value().startswith("mysql+pymysql://")
    assert mariadb.value_format == "json" and mariadb.topics_regex == r"events\..*"
    sqlite = load_settings([ROOT / "config" / "sqlite-dev.env"], environ={"SINK_SECRETS_DIR": ""})
    assert sqlite.database_url.get_secret_value().startswith("sqlite:///")
    postgres = ROOT / "config" / "postgres-avro.env"
    assert "SINK_DATABASE_URL" not in {line.split("=")[0] for line in postgres.read_text().splitlines()}


# ------------------------------------------------------------------------------ docker-compose.yml


def test_compose_file_validates_against_the_compose_specification() -> None:
    schema_text = (resources.files("check_jsonschema") / "builtin_schemas" / "vendor" / "compose-spec.json").read_text(
        encoding="utf-8"
    )
    schema = json.loads(schema_text)
    assert schema.get("title") == "Compose Specification"
    validator_class = jsonschema.validators.validator_for(schema)
    validator_class.check_schema(schema)
    errors = sorted(validator_class(schema).iter_errors(_compose()), key=lambda e: list(e.absolute_path))
    assert not errors, "\n".join(f"{list(e.absolute_path)}: {e.message}" for e in errors)
    bad = dict(_compose(), services={"sink": {"image": "x", "restart_policy": "always"}})
    assert list(validator_class(schema).iter_errors(bad)), "the schema catches an unknown service key"


def test_compose_has_the_promised_services_with_pinned_images() -> None:
    services = _compose()["services"]
    assert set(services) == {"kafka", "kafka-init", "schema-registry", "postgres", "producer", "sink"}
    images = {name: service.get("image", "") for name, service in services.items()}
    assert images["kafka"].startswith("apache/kafka:") and images["kafka-init"] == images["kafka"]
    assert images["schema-registry"].startswith("confluentinc/cp-schema-registry:")
    assert images["postgres"].startswith("postgres:")
    assert images["producer"].startswith("python:3.11")
    for name, image in images.items():
        assert not image.endswith(":latest") and ":" in image, f"{name}: pin the image tag ({image!r})"
    assert services["sink"]["build"]["dockerfile"] == "Dockerfile"
    kafka_env = services["kafka"]["environment"]
    assert "broker" in kafka_env["KAFKA_PROCESS_ROLES"] and "controller" in kafka_env["KAFKA_PROCESS_ROLES"]
    assert "KAFKA_ZOOKEEPER_CONNECT" not in kafka_env, "KRaft: no ZooKeeper"
    for name, service in services.items():
        for dependency in service.get("depends_on", {}):
            assert dependency in services, f"{name} depends on unknown service {dependency}"
    published = [port.split(":")[0] for service in services.values() for port in service.get("ports", [])]
    assert len(published) == len(set(published)), f"a host port is published twice: {published}"


def _compose_sink_settings(tmp_path: Path) -> tuple[Settings, dict[str, Any]]:
    compose = _compose()
    sink = compose["services"]["sink"]
    env_files = [ROOT / name for name in sink["env_file"]]
    secrets = {entry["target"]: ROOT / compose["secrets"][entry["source"]]["file"] for entry in sink["secrets"]}
    directory = tmp_path / "run-secrets"  # what Compose mounts at /run/secrets
    directory.mkdir()
    for target, source in secrets.items():
        assert source.is_file(), f"compose secret file {source} is missing"
        (directory / target).write_text(source.read_text())
    environ = {key: str(value) for key, value in (sink.get("environment") or {}).items()}
    return _validated(load_settings(env_files, environ={**environ, "SINK_SECRETS_DIR": str(directory)})), compose


def test_compose_sink_configuration_is_valid_and_agrees_with_the_other_services(tmp_path: Path) -> None:
    settings, compose = _compose_sink_settings(tmp_path)
    services = compose["services"]
    sink = services["sink"]
    for path in sink["env_file"]:
        text = (ROOT / path).read_text()
        assert "$" not in text, f"{path}: Compose would interpolate `$` in an env_file"
        assert all(_is_known(name) for name in _sink_names(dict(line.split("=", 1) for line in _lines(text))))
    for target in (entry["target"] for entry in sink["secrets"]):
        assert target.lower().removeprefix("sink_") in FILE_SECRETS, f"{target} is not a secret setting"

    # broker: the sink and the producer use the broker's advertised in-network listener
    advertised = services["kafka"]["environment"]["KAFKA_ADVERTISED_LISTENERS"]
    assert f"PLAINTEXT://{settings.bootstrap_servers}" in advertised.split(",")
    assert services["producer"]["environment"]["BOOTSTRAP_SERVERS"] == settings.bootstrap_servers
    # topics: kafka-init creates the sink's topic and its dead-letter topic
    created = _created_topics(services["kafka-init"])
    assert set(settings.topics) | {settings.errors_deadletterqueue_topic_name} <= set(created)
    assert services["producer"]["environment"]["TOPIC"] in settings.topics
    # registry: the service name and its listener port
    assert settings.schema_registry_url == "http://schema-registry:8081"
    assert services["producer"]["environment"]["SCHEMA_REGISTRY_URL"] == settings.schema_registry_url
    assert services["schema-registry"]["environment"]["SCHEMA_REGISTRY_LISTENERS"].endswith(":8081")
    # database: host, database, user and password of the postgres service
    url = settings.database_url.get_secret_value()
    pg = services["postgres"]["environment"]
    password = (ROOT / compose["secrets"]["postgres-password"]["file"]).read_text().strip()
    assert url == f"postgresql+psycopg://{pg['POSTGRES_USER']}:{password}@postgres:5432/{pg['POSTGRES_DB']}"
    assert pg["POSTGRES_PASSWORD_FILE"] == "/run/secrets/postgres-password"
    # HTTP: the published port reaches SINK_HTTP_PORT, where the image's HEALTHCHECK looks
    assert [port.split(":")[1] for port in sink["ports"]] == [str(settings.http_port)]
    assert _dockerfile_env()["SINK_HTTP_PORT"] == str(settings.http_port)
    # shutdown: Compose waits longer than the sink's final flush before SIGKILL
    assert _seconds(sink["stop_grace_period"]) > settings.shutdown_timeout_ms / 1000
    producer_mount = services["producer"]["volumes"][0].split(":")[0]
    assert (ROOT / producer_mount).is_file()


def _lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]


def _created_topics(service: dict[str, Any]) -> dict[str, int]:
    words = shlex.split(" ".join(service["command"]))
    topics: dict[str, int] = {}
    for i, word in enumerate(words):
        if word == "--topic":
            topics[words[i + 1]] = int(words[words.index("--partitions", i) + 1])
    return topics


def _seconds(duration: str) -> float:
    value, unit = re.fullmatch(r"(\d+)(ms|s|m)", duration).groups()  # type: ignore[union-attr]
    return int(value) * {"ms": 0.001, "s": 1, "m": 60}[unit]


# ------------------------------------------------------------------------------ Dockerfile


def _dockerfile() -> list[str]:
    """Instructions with their continuation lines joined, comments dropped."""
    joined, current = [], ""
    for line in DOCKERFILE.read_text().splitlines():
        if line.lstrip().startswith("#") or not line.strip():
            continue
        current += line.rstrip("\\").strip() + " "
        if not line.endswith("\\"):
            joined.append(current.strip())
            current = ""
    return joined


def _dockerfile_env() -> dict[str, str]:
    env: dict[str, str] = {}
    for instruction in _dockerfile():
        if instruction.startswith("ENV "):
            env.update(dict(word.split("=", 1) for word in shlex.split(instruction[4:])))
    return env


def healthcheck_command() -> list[str]:
    """The exec-form command of the image's HEALTHCHECK (the e2e test runs it against a sink)."""
    line = next(i for i in _dockerfile() if i.startswith("HEALTHCHECK "))
    return json.loads(line[line.index("CMD ") + 4 :])


def test_dockerfile_is_multi_stage_slim_non_root_with_entrypoint_cmd_and_healthcheck() -> None:
    instructions = _dockerfile()
    args = dict(i[4:].split("=", 1) for i in instructions if i.startswith("ARG "))
    stages = [i.split()[1:] for i in instructions if i.startswith("FROM ")]
    assert len(stages) >= 2 and all(len(s) == 3 and s[1].upper() == "AS" for s in stages), stages
    for image, _, _ in stages:
        resolved = args.get(image.strip("${}"), image) if image.startswith("$") else image
        assert re.fullmatch(r"python:3\.11-slim(-\w+)?", resolved), resolved
    runtime = instructions[instructions.index(next(i for i in instructions if i.endswith("AS runtime"))) :]
    assert 'ENTRYPOINT ["sink"]' in runtime and 'CMD ["run"]' in runtime
    user = next(i for i in runtime if i.startswith("USER ")).split()[1].split(":")[0]
    assert user not in ("0", "root"), "the image runs as a non-root user"
    assert any(i.startswith("COPY --from=build ") for i in runtime), "the runtime stage copies the build's venv"
    assert not any(i.startswith(("RUN pip", "RUN /opt/sink/bin/pip")) for i in runtime), "nothing built at runtime"
    installs = " ".join(i for i in instructions if "pip install" in i)
    assert "pip install ." in installs and "[dev]" not in installs, "runtime dependencies only"
    port = _dockerfile_env()["SINK_HTTP_PORT"]
    assert f"EXPOSE {port}" in runtime
    command = " ".join(healthcheck_command())
    assert "/livez" in command and "SINK_HTTP_PORT" in command and f"or '{port}'" in command
    assert load_settings(
        [],
        environ={
            "SINK_BOOTSTRAP_SERVERS": "k:9092",
            "SINK_TOPICS": "t",
            "SINK_DATABASE_URL": "sqlite:///x.db",
            "SINK_SECRETS_DIR": "",
            **_dockerfile_env(),
        },
    ).http_port == int(port), "the image's ENV is valid"


def test_dockerignore_keeps_the_context_small_and_secret_free() -> None:
    ignored = set(_lines((ROOT / ".dockerignore").read_text()))
    assert {".git", ".venv", "tests", "benchmarks", "**/*.env"} <= ignored
    assert not ({"sink", "pyproject.toml", "README.md"} & ignored), "the build needs these"


# ------------------------------------------------------------------------------ Kubernetes


@pytest.mark.parametrize("kind", ["ConfigMap", "Secret", "Deployment", "Service"])
def test_core_manifests_validate_against_kubernetes_schemas(kind: str) -> None:
    manifest = _manifests()[kind]
    kubernetes_validate.validate(manifest, kubernetes_validate.latest_version(), strict=True)


def test_kubernetes_validation_catches_a_broken_manifest() -> None:
    broken = json.loads(json.dumps(_manifests()["Deployment"]))
    broken["spec"]["template"]["spec"]["containers"][0]["livenessProbe"]["httpGet"]["pathh"] = "/livez"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, kubernetes_validate.latest_version(), strict=True)


def _k8s_settings() -> tuple[Settings, dict[str, dict[str, Any]]]:
    manifests = _manifests()
    environ = {**manifests["ConfigMap"]["data"], **manifests["Secret"]["stringData"], "SINK_SECRETS_DIR": ""}
    container = manifests["Deployment"]["spec"]["template"]["spec"]["containers"][0]
    environ |= {item["name"]: item["value"] for item in container.get("env", [])}
    return _validated(load_settings([], environ=environ)), manifests


def test_configmap_and_secret_hold_only_real_settings_and_validate() -> None:
    settings, manifests = _k8s_settings()
    for kind, field in (("ConfigMap", "data"), ("Secret", "stringData")):
        names = set(manifests[kind][field])
        assert names == _sink_names(manifests[kind][field]), f"{kind}: only SINK_* keys"
        assert all(_is_known(name) for name in names), f"{kind}: unknown {sorted(n for n in names if not _is_known(n))}"
    secret_keys = {name.lower().removeprefix("sink_") for name in manifests["Secret"]["stringData"]}
    assert all(k in FILE_SECRETS or k.split("__")[0] in PASSTHROUGH for k in secret_keys), "only secrets in the Secret"
    assert not (
        {k.lower().removeprefix("sink_") for k in manifests["ConfigMap"]["data"]}
        & set(FILE_SECRETS) - {"bootstrap_servers", "schema_registry_url"}
    ), "no database URL in the ConfigMap"
    assert "REPLACE_ME" in settings.database_url.get_secret_value()
    assert "PLACEHOLDER" in (K8S / "secret.yaml").read_text()


def test_deployment_probes_ports_env_and_grace_period_agree_with_the_settings() -> None:
    settings, manifests = _k8s_settings()
    deployment = manifests["Deployment"]
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert (
        deployment["spec"]["selector"]["matchLabels"].items()
        <= deployment["spec"]["template"]["metadata"]["labels"].items()
    )
    refs = {next(iter(ref)): ref[next(iter(ref))]["name"] for ref in container["envFrom"]}
    assert refs == {
        "configMapRef": manifests["ConfigMap"]["metadata"]["name"],
        "secretRef": manifests["Secret"]["metadata"]["name"],
    }
    ports = {port["name"]: port["containerPort"] for port in container["ports"]}
    assert ports == {"http": settings.http_port}
    assert container["livenessProbe"]["httpGet"] == {"path": "/livez", "port": "http"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    annotations = deployment["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/port"] == str(settings.http_port)
    assert annotations["prometheus.io/path"] == "/metrics"
    assert pod["terminationGracePeriodSeconds"] > settings.shutdown_timeout_ms / 1000
    assert container["resources"]["requests"] and container["resources"]["limits"]["memory"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert container["args"] == ["run"]
    service = manifests["Service"]
    assert service["spec"]["selector"] == deployment["spec"]["selector"]["matchLabels"]
    assert service["spec"]["ports"][0]["targetPort"] == "http"


def test_keda_scaled_object_scales_the_deployment_on_the_sinks_group_lag() -> None:
    settings, manifests = _k8s_settings()
    scaled = manifests["ScaledObject"]
    assert scaled["apiVersion"] == "keda.sh/v1alpha1"
    spec = scaled["spec"]
    assert spec["scaleTargetRef"]["name"] == manifests["Deployment"]["metadata"]["name"]
    assert spec["scaleTargetRef"].get("kind", "Deployment") == "Deployment"
    (trigger,) = spec["triggers"]
    assert trigger["type"] == "kafka"
    metadata = trigger["metadata"]
    assert all(isinstance(value, str) for value in metadata.values()), "KEDA trigger metadata values are strings"
    assert metadata["consumerGroup"] == settings.effective_group_id
    assert metadata["topic"] in settings.topics
    assert metadata["bootstrapServers"] == settings.bootstrap_servers
    assert int(metadata["lagThreshold"]) > 0
    assert metadata.get("allowIdleConsumers", "false") == "false"
    partitions = _created_topics(_compose()["services"]["kafka-init"])[metadata["topic"]]
    assert 1 <= spec["minReplicaCount"] <= spec["maxReplicaCount"] == partitions, "max replicas = partitions"


def test_kustomization_lists_every_manifest() -> None:
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    assert kustomization["kind"] == "Kustomization"
    files = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    assert set(kustomization["resources"]) == files


def test_deploy_guide_covers_each_artefact() -> None:
    guide = (ROOT / "deploy" / "README.md").read_text()
    for needle in (
        "docker compose up",
        "Dockerfile",
        "kubectl apply -k deploy/kubernetes",
        "ScaledObject",
        "/livez",
        "/readyz",
        "/metrics",
        "SINK_DATABASE_URL_FILE",
        "terminationGracePeriodSeconds",
    ):
        assert needle in guide, f"deploy/README.md does not mention {needle}"
    assert "deploy/README.md" in (ROOT / "README.md").read_text()
