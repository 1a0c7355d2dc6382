"""Offline validation of the deploy files: the image, the compose stack and the Helm chart.

These machines have no Docker engine and no Kubernetes, so nothing here builds, starts or
applies anything. Instead:

- Dockerfile: parsed with dockerfile-parse; checked for pinned base images, a non-root
  numeric user, exec-form entrypoint behind tini with STOPSIGNAL SIGTERM, the package
  installed from the lock, and a build context (.dockerignore) that contains what the
  COPY lines need and nothing private.
- compose: validated against the Compose Specification's JSON Schema (vendored by the
  check-jsonschema package), plus `docker compose config` when a compose client is
  installed; then checked against the service itself (roles, settings names, the Kafka
  version of deploy/kafka/pom.xml, the Redis settings of deploy/redis/redis.conf.in).
- Helm chart: rendered by a real `helm` (built from the Go module proxy by `make helm`),
  linted, and every rendered object validated against the Kubernetes JSON schemas shipped
  in the kubernetes-validate package (strict: unknown fields fail), for the oldest
  Kubernetes the chart supports and the newest schema set available. KEDA's ScaledObject
  is a CRD with no schema there; it is checked against the schema below.

The cross-checks tie the files to the code: a renamed setting, role, topic or consumer
group fails here rather than in a cluster.
"""

from __future__ import annotations

import hashlib
import importlib.resources
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml
from dockerfile_parse import DockerfileParser
from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from pydantic import BaseModel

from dnc.cli import ROLES
from dnc.settings import Settings, Topics

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "deploy/docker/Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
CONSTRAINTS = ROOT / "deploy/docker/constraints.txt"
COMPOSE = ROOT / "deploy/compose/compose.yaml"
DEV_ENV = ROOT / "deploy/compose/dev.env"
CHART = ROOT / "deploy/helm/dnc"
CI_VALUES = CHART / "ci/offline-values.yaml"
REDIS_CONF = ROOT / "deploy/redis/redis.conf.in"
KAFKA_POM = ROOT / "deploy/kafka/pom.xml"

CONSUMER_ROLES = ("ingest", "listwriter", "gate")
# What each consumer role reads (the topics its consumer group subscribes to).
ROLE_TOPICS = {
    "ingest": ("inbound_messages", "url_unsubscribes", "journey_actions", "delivery_reports"),
    "listwriter": ("commands",),
    "gate": ("outbound",),
}
# The deadline dnc.runtime adds on top of shutdown_deadline_s for role.stop().
RUNTIME_STOP_ALLOWANCE_S = 5

SECRET_NAME = re.compile(r"(KEYS|SECRET|PASSWORD|TOKEN)$|(^|_)(KEY|SECRET|PASSWORD|TOKEN)_")


# --- shared helpers --------------------------------------------------------------------------


class _StrictLoader(yaml.SafeLoader):
    """YAML loader that refuses duplicate keys: Kubernetes' strict decoding rejects them
    and PyYAML would silently keep the last one. Merge keys (`<<`) may be overridden."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=True)  # type: ignore[no-untyped-call]
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r}", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep)


def load_yaml(text: str) -> Any:
    return yaml.load(text, Loader=_StrictLoader)


def load_all_yaml(text: str) -> list[Any]:
    return [d for d in yaml.load_all(text, Loader=_StrictLoader) if d]


def is_setting(env_name: str) -> bool:
    """True if DNC_<A>__<B> names a field of dnc.settings.Settings (nested with __)."""
    if not env_name.startswith("DNC_"):
        return False
    parts = env_name.removeprefix("DNC_").lower().split("__")
    model: Any = Settings
    for i, part in enumerate(parts):
        fields = model.model_fields
        if part not in fields:
            return False
        annotation = fields[part].annotation
        last = i == len(parts) - 1
        if not last:
            if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
                return False
            model = annotation
    return True


def test_is_setting_knows_the_settings() -> None:
    assert is_setting("DNC_KAFKA_BOOTSTRAP")
    assert is_setting("DNC_API__KEYS")
    assert is_setting("DNC_TOPIC_LAYOUT__LIST_PARTITIONS")
    assert not is_setting("DNC_API_KEYS")  # single underscore: not the nested field
    assert not is_setting("DNC_API__NOPE")
    assert not is_setting("DNC_KAFKA_BOOTSTRAP__X")
    assert not is_setting("KAFKA_BOOTSTRAP")


def pinned_image(ref: str) -> bool:
    """A tag with a full version number (x.y.z…), optionally a digest; never `latest`."""
    return bool(re.fullmatch(r"[\w.\-/]+:\d+\.\d+\.\d+[\w.\-]*(@sha256:[0-9a-f]{64})?", ref))


def shutdown_deadline() -> float:
    return float(Settings.model_fields["shutdown_deadline_s"].default)


def kafka_version() -> str:
    match = re.search(r"<kafka.version>([^<]+)</kafka.version>", KAFKA_POM.read_text())
    assert match, "deploy/kafka/pom.xml names no kafka.version"
    return match.group(1)


def redis_index_settings() -> dict[str, str]:
    """The settings of deploy/redis/redis.conf.in that belong to the index, not to how the
    local stack runs the process (paths, ports, daemonising)."""
    local_only = {"bind", "port", "protected-mode", "daemonize", "pidfile", "logfile", "dir"}
    out: dict[str, str] = {}
    for raw in REDIS_CONF.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        name, _, value = line.partition(" ")
        if name not in local_only:
            out[name] = value.strip().strip('"')
    return out


# --- Dockerfile --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def dockerfile() -> DockerfileParser:
    return DockerfileParser(fileobj=io.BytesIO(DOCKERFILE.read_bytes()))


def _stages(parser: DockerfileParser) -> list[list[dict[str, Any]]]:
    stages: list[list[dict[str, Any]]] = []
    for instr in parser.structure:
        if instr["instruction"] == "FROM":
            stages.append([])
        if stages:
            stages[-1].append(instr)
    return stages


def _global_args(parser: DockerfileParser) -> dict[str, str]:
    args: dict[str, str] = {}
    for instr in parser.structure:
        if instr["instruction"] == "FROM":
            break
        if instr["instruction"] == "ARG" and "=" in instr["value"]:
            name, _, value = instr["value"].partition("=")
            args[name.strip()] = value.strip().strip('"')
    return args


def _final(parser: DockerfileParser) -> list[dict[str, Any]]:
    return _stages(parser)[-1]


def _values(stage: list[dict[str, Any]], instruction: str) -> list[str]:
    return [i["value"] for i in stage if i["instruction"] == instruction]


def test_dockerfile_base_images_are_pinned(dockerfile: DockerfileParser) -> None:
    args = _global_args(dockerfile)
    stage_names = set()
    for instr in dockerfile.structure:
        if instr["instruction"] != "FROM":
            continue
        image, *rest = instr["value"].split()
        image = re.sub(r"\$\{?(\w+)\}?", lambda m: args.get(m.group(1), m.group(0)), image)
        if image not in stage_names:
            assert pinned_image(image), f"base image {image!r} is not pinned to a version"
        if len(rest) == 2 and rest[0].upper() == "AS":
            stage_names.add(rest[1])


def test_dockerfile_runs_as_a_fixed_non_root_user(dockerfile: DockerfileParser) -> None:
    users = _values(_final(dockerfile), "USER")
    assert users, "the final stage must set USER"
    uid, _, gid = users[-1].partition(":")
    # Numeric, so Kubernetes' runAsNonRoot can check it without /etc/passwd.
    assert uid.isdigit() and int(uid) > 0, users[-1]
    assert not gid or (gid.isdigit() and int(gid) > 0)
    chart = load_yaml((CHART / "values.yaml").read_text())
    assert chart["podSecurityContext"]["runAsUser"] == int(uid)
    assert chart["podSecurityContext"]["runAsNonRoot"] is True


def test_dockerfile_lets_sigterm_reach_python(dockerfile: DockerfileParser) -> None:
    final = _final(dockerfile)
    assert _values(final, "STOPSIGNAL") == ["SIGTERM"]
    (entrypoint,) = _values(final, "ENTRYPOINT")
    # Exec form: a shell form would run `/bin/sh -c`, which does not forward SIGTERM.
    argv = json.loads(entrypoint)
    assert isinstance(argv, list)
    assert Path(argv[0]).name == "tini", "an init that forwards signals must be PID 1"
    assert argv[1:] == ["--", "dnc"], argv
    # tini comes from a pinned Debian package version.
    tini = [v for v in _values(final, "ARG") if v.startswith("TINI_VERSION=")]
    assert tini
    assert re.fullmatch(r"TINI_VERSION=\d[\w.+~-]*", tini[0])
    assert any('"tini=${TINI_VERSION}"' in v for v in _values(final, "RUN"))


def _stage(parser: DockerfileParser, name: str) -> list[dict[str, Any]]:
    for stage in _stages(parser):
        if stage[0]["value"].split()[-1] == name:
            return stage
    raise AssertionError(f"the Dockerfile has no stage {name!r}")


def test_dockerfile_installs_the_package_from_the_lock(dockerfile: DockerfileParser) -> None:
    build, final = _stage(dockerfile, "build"), _final(dockerfile)
    copies = " ".join(_values(build, "COPY"))
    runs = " ".join(_values(build, "RUN"))
    assert "deploy/docker/constraints.txt" in copies
    assert "pyproject.toml" in copies
    assert "services" in copies
    assert "-r /src/constraints.txt" in runs
    assert "--no-deps /src" in runs
    assert "pip check" in runs
    assert any(v.startswith("--from=build /opt/dnc") for v in _values(final, "COPY"))
    env = " ".join(_values(final, "ENV"))
    assert "/opt/dnc/bin" in env
    # Inside a container the API must listen on every interface.
    assert "DNC_API__HOST=0.0.0.0" in env
    assert _values(final, "EXPOSE") == ["8080"]


def test_the_image_has_the_compiled_gate_check(dockerfile: DockerfileParser) -> None:
    """The gate in the image runs the compiled check: a stage builds the wheel from the
    committed crate (its lock), the build stage installs it and fails if it cannot import
    it, and the build context holds the crate's sources but not a local target dir."""
    hotpath, build = _stage(dockerfile, "hotpath"), _stage(dockerfile, "build")
    assert "native/hotpath /src/hotpath" in _values(hotpath, "COPY")
    assert any("pip wheel" in v and "/src/hotpath" in v for v in _values(hotpath, "RUN"))
    assert "--from=hotpath /wheels /wheels" in _values(build, "COPY")
    installs = " ".join(_values(build, "RUN"))
    assert "/wheels/dnc_hotpath-*.whl" in installs
    assert "import dnc_hotpath" in installs
    assert "locked = true" in (ROOT / "native/hotpath/pyproject.toml").read_text()
    assert (ROOT / "native/hotpath/Cargo.lock").is_file()
    assert in_build_context("native/hotpath/src/lib.rs")
    assert in_build_context("native/hotpath/Cargo.lock")
    assert not in_build_context("native/hotpath/target/release/libdnc_hotpath.so")


def test_dockerfile_bakes_in_no_secret(dockerfile: DockerfileParser) -> None:
    for instr in dockerfile.structure:
        if instr["instruction"] in {"ENV", "ARG"}:
            for assignment in re.findall(r"(\w+)=", instr["value"]):
                assert not SECRET_NAME.search(assignment), f"{assignment} in the image"
    text = DOCKERFILE.read_text()
    assert "DNC_API__KEYS=" not in text
    assert "DNC_API__UNSUBSCRIBE_KEYS=" not in text


def _dockerignore_rules() -> list[tuple[bool, re.Pattern[str]]]:
    """(.dockerignore) → [(include?, regex)], with Docker's pattern syntax: `*` and `?` stay
    within one path segment, `**` spans segments, `!` re-includes, the last match wins."""
    rules = []
    for raw in DOCKERIGNORE.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        include = line.startswith("!")
        pattern = line.removeprefix("!").strip("/")
        regex = ""
        i = 0
        while i < len(pattern):
            if pattern.startswith("**", i):
                regex += ".*"
                i += 2
            elif pattern[i] == "*":
                regex += "[^/]*"
                i += 1
            elif pattern[i] == "?":
                regex += "[^/]"
                i += 1
            else:
                regex += re.escape(pattern[i])
                i += 1
        rules.append((include, re.compile(regex)))
    return rules


def in_build_context(path: str) -> bool:
    parts = path.strip("/").split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    included = True
    for include, regex in _dockerignore_rules():
        if any(regex.fullmatch(p) for p in prefixes):
            included = include
    return included


def test_dockerignore_keeps_what_the_build_copies_and_nothing_private(
    dockerfile: DockerfileParser,
) -> None:
    for instr in dockerfile.structure:
        if instr["instruction"] != "COPY" or instr["value"].startswith("--from"):
            continue
        *sources, _dest = instr["value"].split()
        for source in sources:
            assert (ROOT / source).exists(), f"COPY {source}: no such path"
            assert in_build_context(source), f"COPY {source} is excluded by .dockerignore"
    assert in_build_context("services/dnc/lua/apply.lua")
    for private in (
        ".venv/bin/python",
        ".local/redis/redis.conf",
        ".git/config",
        "tests/unit/test_deploy_files.py",
        "deploy/compose/dev.env",
        "services/dnc/__pycache__/cli.cpython-311.pyc",
    ):
        assert not in_build_context(private), f"{private} would be sent to the image build"


def _runtime_requirements() -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    env = {**default_environment(), "sys_platform": "linux", "platform_system": "Linux"}
    reqs = [Requirement(r) for r in project["dependencies"]]
    return [r for r in reqs if r.marker is None or r.marker.evaluate(env)]


def _constraints() -> dict[str, str]:
    pins: dict[str, str] = {}
    for raw in CONSTRAINTS.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        name, sep, version = line.partition("==")
        assert sep, f"{line!r}: the lock pins exact versions only"
        pins[canonicalize_name(name)] = version
    return pins


def test_image_lock_satisfies_pyproject() -> None:
    pins = _constraints()
    for req in _runtime_requirements():
        name = canonicalize_name(req.name)
        assert name in pins, f"{req.name} is a dependency but not in {CONSTRAINTS.name}"
        assert req.specifier.contains(pins[name], prereleases=True), (
            f"{req.name}=={pins[name]} does not satisfy pyproject's {req.specifier}; "
            "regenerate with deploy/docker/freeze_constraints.py"
        )
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    dev = {canonicalize_name(Requirement(r).name) for r in project["optional-dependencies"]["dev"]}
    runtime = {canonicalize_name(r.name) for r in _runtime_requirements()}
    assert not (dev - runtime) & set(pins), "development tools must not ship in the image"


# --- compose -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data = load_yaml(COMPOSE.read_text())
    assert isinstance(data, dict)
    return data


def _compose_spec_schema() -> dict[str, Any]:
    vendor = importlib.resources.files("check_jsonschema.builtin_schemas.vendor")
    schema: dict[str, Any] = json.loads(vendor.joinpath("compose-spec.json").read_text())
    return schema


def test_compose_file_matches_the_compose_specification(compose: dict[str, Any]) -> None:
    schema = _compose_spec_schema()
    validator_cls = jsonschema.validators.validator_for(schema)
    errors = sorted(validator_cls(schema).iter_errors(compose), key=lambda e: list(e.path))
    assert not errors, "\n".join(f"{list(e.path)}: {e.message}" for e in errors)


def _docker_compose_available() -> bool:
    if shutil.which("docker") is None:
        return False
    try:
        probe = subprocess.run(
            ["docker", "compose", "version"], capture_output=True, timeout=20, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return probe.returncode == 0


def test_docker_compose_config_parses_the_file() -> None:
    """`docker compose config` parses and interpolates without an engine. The docker CLI on
    these machines has no compose plugin; the schema test above covers the file then."""
    if not _docker_compose_available():
        pytest.skip("no `docker compose` client here; validated against the schema instead")
    result = subprocess.run(
        ["docker", "compose", "-f", str(COMPOSE), "config", "--quiet"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr


def _dnc_services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {n: s for n, s in compose["services"].items() if s.get("image") == "dnc:local"}


def test_compose_runs_every_role_from_one_image(compose: dict[str, Any]) -> None:
    dnc = _dnc_services(compose)
    for role in ROLES:
        assert role in dnc, f"no compose service runs `dnc {role}`"
        assert dnc[role]["command"] == [role]
    assert dnc["topics"]["command"] == ["topics", "ensure", "--allow-under-replicated"]
    assert dnc["topics"]["restart"] == "no"
    assert dnc["topics"]["depends_on"]["kafka"]["condition"] == "service_healthy"
    for name, service in dnc.items():
        build = service["build"]
        context = (COMPOSE.parent / build["context"]).resolve()
        assert context == ROOT, f"{name}: build context must be the repository root"
        assert (context / build["dockerfile"]).resolve() == DOCKERFILE
    for role in ROLES:
        deps = dnc[role]["depends_on"]
        assert deps["topics"]["condition"] == "service_completed_successfully"
        assert deps["redis"]["condition"] == "service_healthy"


def test_compose_images_are_pinned_and_match_the_local_stack(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert services["kafka"]["image"] == f"apache/kafka:{kafka_version()}"
    redis_image = services["redis"]["image"]
    assert pinned_image(redis_image)
    assert re.match(r"redis:7\.", redis_image), "the index is written for Redis 7"
    for name, service in services.items():
        if service["image"] != "dnc:local":
            assert pinned_image(service["image"]), f"{name}: {service['image']} is not pinned"


def test_compose_redis_has_the_index_settings(compose: dict[str, Any]) -> None:
    argv = compose["services"]["redis"]["command"]
    assert argv[0] == "redis-server"
    given = dict(zip(argv[1::2], argv[2::2], strict=True))
    for name, value in redis_index_settings().items():
        assert given.get(f"--{name}") == value, f"redis {name} must be {value!r}"


def _env_file(path: Path) -> dict[str, str]:
    out = {}
    for line in path.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, _, value = line.partition("=")
            out[name] = value.strip("'")
    return out


def test_compose_settings_are_real_settings(compose: dict[str, Any]) -> None:
    for name, service in _dnc_services(compose).items():
        env = dict(service["environment"])
        for env_file in service.get("env_file", []):
            env.update(_env_file(COMPOSE.parent / env_file))
        for var in env:
            assert is_setting(var), f"{name}: {var} is not a dnc setting"
        assert env["DNC_KAFKA_BOOTSTRAP"] == "kafka:9092"
        assert env["DNC_REDIS_URL"].startswith("redis://redis:6379/")
    listeners = compose["services"]["kafka"]["environment"]["KAFKA_ADVERTISED_LISTENERS"]
    assert "PLAINTEXT://kafka:9092" in listeners


def test_compose_dev_keys_are_the_public_development_keys() -> None:
    def dev_keys(*args: str) -> Any:
        out = subprocess.run(
            [sys.executable, str(ROOT / "deploy/local/dev_keys.py"), *args],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        return json.loads(out)

    env = _env_file(DEV_ENV)
    assert set(env) == {"DNC_API__KEYS", "DNC_API__UNSUBSCRIBE_KEYS"}
    assert json.loads(env["DNC_API__KEYS"]) == dev_keys()
    assert json.loads(env["DNC_API__UNSUBSCRIBE_KEYS"]) == dev_keys("--unsubscribe")
    # Only hashes of API keys are ever configured.
    assert hashlib.sha256(b"dnc_dev_local_only_key").hexdigest() in env["DNC_API__KEYS"]


def _seconds(duration: str) -> float:
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600}
    total = 0.0
    for number, unit in re.findall(r"(\d+(?:\.\d+)?)(ms|s|m|h)", duration):
        total += float(number) * units[unit]
    return total


def test_compose_stops_roles_gracefully(compose: dict[str, Any]) -> None:
    for name, service in _dnc_services(compose).items():
        deadline = float(service["environment"]["DNC_SHUTDOWN_DEADLINE_S"])
        needed = deadline + RUNTIME_STOP_ALLOWANCE_S
        if name == "api":
            needed += deadline  # the HTTP drain comes first
        assert _seconds(service["stop_grace_period"]) > needed, name


def test_compose_healthchecks(compose: dict[str, Any]) -> None:
    services = compose["services"]
    for name in ("kafka", "redis", *ROLES):
        assert services[name].get("healthcheck"), f"{name} has no healthcheck"
    for role in CONSUMER_ROLES:
        heartbeat = services[role]["environment"]["DNC_HEARTBEAT_FILE"]
        assert heartbeat in " ".join(services[role]["healthcheck"]["test"])
    assert "/readyz" in " ".join(services["api"]["healthcheck"]["test"])
    assert "127.0.0.1:8080:8080" in services["api"]["ports"]


# --- Helm chart -----------------------------------------------------------------------------

KEDA_API = "keda.sh/v1alpha1/ScaledObject"
MIN_KUBE = "1.29"


def _helm() -> str:
    candidates = [os.environ.get("DNC_HELM"), str(ROOT / ".local/bin/helm"), shutil.which("helm")]
    for candidate in candidates:
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return candidate
    pytest.fail("helm is not installed: `make helm` builds it from the Go module proxy")


def helm_template(*args: str, values: Path | None = CI_VALUES) -> subprocess.CompletedProcess[str]:
    cmd = [_helm(), "template", "dnc", str(CHART), "--namespace", "dnc"]
    cmd += ["--kube-version", f"{MIN_KUBE}.0", "--api-versions", KEDA_API]
    if values is not None:
        cmd += ["-f", str(values)]
    return subprocess.run([*cmd, *args], capture_output=True, text=True, timeout=60, check=False)


def render(*args: str) -> list[dict[str, Any]]:
    result = helm_template(*args)
    assert result.returncode == 0, result.stderr
    return load_all_yaml(result.stdout)


def by_kind(docs: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in docs if d["kind"] == kind}


def deployments(docs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """role → Deployment."""
    out = {}
    for d in by_kind(docs, "Deployment").values():
        out[d["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/component"]] = d
    return out


def container(deployment: dict[str, Any]) -> dict[str, Any]:
    (c,) = deployment["spec"]["template"]["spec"]["containers"]
    return c


@pytest.fixture(scope="module")
def rendered() -> list[dict[str, Any]]:
    return render()


def test_helm_lint_is_clean() -> None:
    result = subprocess.run(
        [
            _helm(),
            "lint",
            "--strict",
            str(CHART),
            "-f",
            str(CI_VALUES),
            "--kube-version",
            f"{MIN_KUBE}.0",
            "--set",
            "keda.skipCrdCheck=true",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_chart_has_no_default_secret_image_or_endpoint() -> None:
    result = helm_template(values=None)
    assert result.returncode != 0, "the chart must not render with its defaults alone"
    for required in ("secrets/existingSecret", "image/repository", "kafka/bootstrap"):
        assert required in result.stderr, result.stderr


def test_chart_refuses_misconfigurations() -> None:
    cases = {
        "redis.url=redis://:hunter2@redis:6379/0": "credentials",
        "extraEnv.DNC_API__KEYS=[]": "secret",
        "extraEnv.DNC_APP_ID=other": "set by the chart",
        "gate.autoscaling.maxReplicas=7": "exceeds the partitions",
        "image.tag=latest": "image/tag",
        "gate.replica=3": "replica",
    }
    for setting, message in cases.items():
        result = helm_template("--set", setting)
        assert result.returncode != 0, setting
        assert message in result.stderr, (setting, result.stderr)
    no_keda = subprocess.run(
        [
            _helm(),
            "template",
            "dnc",
            str(CHART),
            "-f",
            str(CI_VALUES),
            "--kube-version",
            f"{MIN_KUBE}.0",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert no_keda.returncode != 0
    assert "install KEDA" in no_keda.stderr


def _kube_versions() -> list[str]:
    return [MIN_KUBE, ".".join(kubernetes_validate.utils.latest_version().split(".")[:2])]


# KEDA's ScaledObject (keda.sh/v1alpha1), the fields this chart may use. Written from KEDA's
# documented API; strict (additionalProperties: false) so a typo fails here, as it would be
# pruned or rejected by the CRD in a cluster. Trigger metadata values must be strings.
SCALED_OBJECT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "additionalProperties": False,
    "properties": {
        "apiVersion": {"const": "keda.sh/v1alpha1"},
        "kind": {"const": "ScaledObject"},
        "metadata": {
            "type": "object",
            "required": ["name"],
            "properties": {
                "name": {"type": "string", "pattern": r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"},
                "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                "annotations": {"type": "object", "additionalProperties": {"type": "string"}},
            },
        },
        "spec": {
            "type": "object",
            "required": ["scaleTargetRef", "triggers"],
            "additionalProperties": False,
            "properties": {
                "scaleTargetRef": {
                    "type": "object",
                    "required": ["name"],
                    "additionalProperties": False,
                    "properties": {
                        "name": {"type": "string"},
                        "apiVersion": {"type": "string"},
                        "kind": {"type": "string"},
                        "envSourceContainerName": {"type": "string"},
                    },
                },
                "pollingInterval": {"type": "integer", "minimum": 1},
                "cooldownPeriod": {"type": "integer", "minimum": 0},
                "initialCooldownPeriod": {"type": "integer", "minimum": 0},
                "idleReplicaCount": {"type": "integer", "minimum": 0},
                "minReplicaCount": {"type": "integer", "minimum": 0},
                "maxReplicaCount": {"type": "integer", "minimum": 1},
                "fallback": {
                    "type": "object",
                    "required": ["failureThreshold", "replicas"],
                    "additionalProperties": False,
                    "properties": {
                        "failureThreshold": {"type": "integer", "minimum": 1},
                        "replicas": {"type": "integer", "minimum": 0},
                        "behavior": {
                            "enum": [
                                "static",
                                "currentReplicas",
                                "currentReplicasIfHigher",
                                "currentReplicasIfLower",
                            ]
                        },
                    },
                },
                "advanced": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {
                        "restoreToOriginalReplicaCount": {"type": "boolean"},
                        "horizontalPodAutoscalerConfig": {
                            "type": "object",
                            "additionalProperties": False,
                            # behavior is checked against autoscaling/v2 separately.
                            "properties": {
                                "name": {"type": "string"},
                                "behavior": {"type": "object"},
                            },
                        },
                        "scalingModifiers": {"type": "object"},
                    },
                },
                "triggers": {
                    "type": "array",
                    "minItems": 1,
                    "items": {
                        "type": "object",
                        "required": ["type", "metadata"],
                        "additionalProperties": False,
                        "properties": {
                            "type": {"type": "string"},
                            "name": {"type": "string"},
                            "metricType": {"enum": ["AverageValue", "Value", "Utilization"]},
                            "useCachedMetrics": {"type": "boolean"},
                            "metadata": {
                                "type": "object",
                                "additionalProperties": {"type": "string"},
                            },
                            "authenticationRef": {
                                "type": "object",
                                "required": ["name"],
                                "additionalProperties": False,
                                "properties": {
                                    "name": {"type": "string"},
                                    "kind": {
                                        "enum": [
                                            "TriggerAuthentication",
                                            "ClusterTriggerAuthentication",
                                        ]
                                    },
                                },
                            },
                        },
                    },
                },
            },
        },
    },
}
# The kafka scaler's parameters (KEDA docs, "Apache Kafka" scaler).
KAFKA_SCALER_KEYS = {
    "bootstrapServers",
    "consumerGroup",
    "topic",
    "lagThreshold",
    "activationLagThreshold",
    "offsetResetPolicy",
    "allowIdleConsumers",
    "excludePersistentLag",
    "scaleToZeroOnInvalidOffset",
    "limitToPartitionsWithLag",
    "partitionLimitation",
    "ensureEvenDistributionOfPartitions",
    "version",
    "sasl",
    "tls",
    "unsafeSsl",
}


def validate_object(doc: dict[str, Any], versions: list[str]) -> None:
    if doc["kind"] == "ScaledObject":
        jsonschema.validate(doc, SCALED_OBJECT_SCHEMA)
        for trigger in doc["spec"]["triggers"]:
            assert trigger["type"] == "kafka"
            unknown = set(trigger["metadata"]) - KAFKA_SCALER_KEYS
            assert not unknown, f"unknown kafka scaler parameters {unknown}"
        behavior = doc["spec"]["advanced"]["horizontalPodAutoscalerConfig"]["behavior"]
        # KEDA passes this to the HPA it creates: validate it as autoscaling/v2.
        doc = {
            "apiVersion": "autoscaling/v2",
            "kind": "HorizontalPodAutoscaler",
            "metadata": {"name": doc["metadata"]["name"]},
            "spec": {
                "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "x"},
                "maxReplicas": doc["spec"]["maxReplicaCount"],
                "behavior": behavior,
            },
        }
    for version in versions:
        try:
            kubernetes_validate.validate(doc, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            where = ".".join(str(p) for p in exc.path)
            pytest.fail(
                f"{doc['kind']}/{doc['metadata']['name']} (k8s {version}): {where}: {exc.message}"
            )


VARIANTS = {
    "ci values": (),
    "long deadline": ("--set", "shutdownDeadlineSeconds=30"),
    "no autoscaling": ("--set", "keda.enabled=false", "--set", "api.autoscaling.enabled=false"),
    "redis url from a secret": (
        "--set",
        "redis.url=",
        "--set",
        "redis.existingSecret=dnc-redis",
        "--set",
        "redis.cluster=true",
        "--set",
        "keda.authenticationRef=kafka-sasl",
    ),
    "postgres view": ("--set", "view.backend=postgres", "--set", "view.postgresSecret=dnc-view"),
}


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_rendered_objects_match_the_kubernetes_schemas(variant: str) -> None:
    docs = render(*VARIANTS[variant])
    versions = _kube_versions()
    kinds = {d["kind"] for d in docs}
    assert {"Deployment", "PodDisruptionBudget", "ConfigMap", "Job", "Service"} <= kinds
    for doc in docs:
        validate_object(doc, versions)


def test_every_role_is_a_deployment_with_probes() -> None:
    rendered = render(*VARIANTS["postgres view"])  # the view writer runs for PostgreSQL only
    deps = deployments(rendered)
    assert set(deps) == set(ROLES)
    config = next(iter(by_kind(rendered, "ConfigMap").values()))["data"]
    chart = load_yaml((CHART / "Chart.yaml").read_text())
    for role, dep in deps.items():
        c = container(dep)
        assert c["args"] == [role]
        assert "command" not in c, "keep the image's entrypoint (tini -- dnc)"
        assert c["image"].endswith(f":{chart['appVersion']}")
        for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
            assert probe in c, f"{role}: no {probe}"
        if role == "api":
            assert c["livenessProbe"]["httpGet"]["path"] == "/healthz"
            assert c["readinessProbe"]["httpGet"]["path"] == "/readyz"
            assert {"name": "http", "containerPort": 8080, "protocol": "TCP"} in c["ports"]
        else:
            interval = int(config["DNC_HEARTBEAT_INTERVAL_S"])
            for probe in ("livenessProbe", "readinessProbe"):
                script = c[probe]["exec"]["command"][-1]
                assert config["DNC_HEARTBEAT_FILE"] in script
                max_age = int(re.search(r"-lt (\d+)", script).group(1))  # type: ignore[union-attr]
                # Several missed beats before a probe fails: one slow batch is not a hang.
                assert max_age >= 3 * interval, (role, probe, max_age)


def test_the_view_writer_runs_with_the_postgres_view_only(rendered: list[dict[str, Any]]) -> None:
    assert "viewwriter" not in deployments(rendered)
    config = next(iter(by_kind(rendered, "ConfigMap").values()))["data"]
    assert config["DNC_VIEW__BACKEND"] == "sqlite"
    docs = render(*VARIANTS["postgres view"])
    config = next(iter(by_kind(docs, "ConfigMap").values()))["data"]
    assert config["DNC_VIEW__BACKEND"] == "postgres"
    assert "DNC_VIEW__POSTGRES_URL" not in config  # a URL may carry a password: a Secret
    for role, dep in deployments(docs).items():
        env = {e["name"]: e for e in container(dep).get("env", [])}
        if role in ("api", "viewwriter"):
            ref = env["DNC_VIEW__POSTGRES_URL"]["valueFrom"]["secretKeyRef"]
            assert ref == {"name": "dnc-view", "key": "DNC_VIEW__POSTGRES_URL"}
        else:
            assert "DNC_VIEW__POSTGRES_URL" not in env, role
    failed = helm_template("--set", "view.backend=postgres")
    assert failed.returncode != 0
    assert "view.postgresSecret" in failed.stderr


def test_probe_script_runs_under_sh(rendered: list[dict[str, Any]], tmp_path: Path) -> None:
    """The exec probe is plain sh + coreutils; run it here against a fresh and a stale file."""
    script = container(deployments(rendered)["gate"])["livenessProbe"]["exec"]["command"]
    assert script[:2] == ["/bin/sh", "-c"]
    beat = tmp_path / "beat"
    body = script[2].replace("/tmp/dnc-heartbeat", str(beat))
    assert subprocess.run(["/bin/sh", "-c", body], check=False).returncode != 0  # missing
    beat.touch()
    assert subprocess.run(["/bin/sh", "-c", body], check=False).returncode == 0  # fresh
    os.utime(beat, (beat.stat().st_atime, beat.stat().st_mtime - 3600))
    assert subprocess.run(["/bin/sh", "-c", body], check=False).returncode != 0  # stale


@pytest.mark.parametrize("deadline", [10, 30])
def test_grace_period_covers_the_shutdown_deadline(deadline: int) -> None:
    docs = render("--set", f"shutdownDeadlineSeconds={deadline}")
    config = next(iter(by_kind(docs, "ConfigMap").values()))["data"]
    assert float(config["DNC_SHUTDOWN_DEADLINE_S"]) == deadline
    margin = load_yaml((CHART / "values.yaml").read_text())["terminationMarginSeconds"]
    assert margin >= 5
    for role, dep in deployments(docs).items():
        pod = dep["spec"]["template"]["spec"]
        grace = pod["terminationGracePeriodSeconds"]
        needed = deadline + RUNTIME_STOP_ALLOWANCE_S
        pre_stop = container(dep).get("lifecycle", {}).get("preStop")
        if role == "api":
            assert pre_stop, "the API needs a preStop so endpoints drain before it stops"
            needed += deadline + int(pre_stop["exec"]["command"][-1])
        # Exactly the time the role may need plus the chart's margin: less risks a SIGKILL
        # mid-commit, much more only slows every rollout and node drain.
        assert grace == needed + margin, (role, grace, needed, margin)


def test_pods_are_locked_down_and_sized(rendered: list[dict[str, Any]]) -> None:
    pods = [d["spec"]["template"] for d in by_kind(rendered, "Deployment").values()]
    pods += [d["spec"]["template"] for d in by_kind(rendered, "Job").values()]
    for pod in pods:
        spec = pod["spec"]
        assert spec["automountServiceAccountToken"] is False
        assert spec["securityContext"]["runAsNonRoot"] is True
        for c in spec["containers"]:
            sc = c["securityContext"]
            assert sc["readOnlyRootFilesystem"] is True
            assert sc["allowPrivilegeEscalation"] is False
            assert sc["capabilities"]["drop"] == ["ALL"]
            for kind in ("requests", "limits"):
                assert {"cpu", "memory"} <= set(c["resources"][kind]), (c["name"], kind)
            assert any(m["mountPath"] == "/tmp" for m in c["volumeMounts"])


def test_settings_come_from_a_configmap_and_secrets_from_a_secret(
    rendered: list[dict[str, Any]],
) -> None:
    assert not by_kind(rendered, "Secret"), "the chart must never ship a Secret"
    (config,) = by_kind(rendered, "ConfigMap").values()
    for var in config["data"]:
        assert is_setting(var), f"ConfigMap: {var} is not a dnc setting"
        assert not SECRET_NAME.search(var), var
    assert config["data"]["DNC_API__PUBLIC_BASE_URL"].startswith("https://")
    secret_vars: dict[str, set[str]] = {}
    for role, dep in deployments(rendered).items():
        c = container(dep)
        assert c["envFrom"] == [{"configMapRef": {"name": config["metadata"]["name"]}}]
        for env in c.get("env", []):
            assert "value" not in env, f"{role}: {env['name']} is inline, not from a Secret"
            assert env["valueFrom"]["secretKeyRef"]["name"] == "dnc-keys"
            secret_vars.setdefault(role, set()).add(env["name"])
    # Least privilege: only the API holds the key hashes; ingest verifies unsubscribe links.
    assert secret_vars == {
        "api": {"DNC_API__KEYS", "DNC_API__UNSUBSCRIBE_KEYS"},
        "ingest": {"DNC_API__UNSUBSCRIBE_KEYS"},
    }


def test_chart_topics_are_the_contract_topics() -> None:
    values = load_yaml((CHART / "values.yaml").read_text())
    assert values["topics"] == Topics().model_dump()
    chart = load_yaml((CHART / "Chart.yaml").read_text())
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert chart["appVersion"] == project["version"]


def test_every_role_has_a_disruption_budget(rendered: list[dict[str, Any]]) -> None:
    pdbs = by_kind(rendered, "PodDisruptionBudget")
    for role, dep in deployments(rendered).items():
        matching = [p for p in pdbs.values() if p["spec"]["selector"] == dep["spec"]["selector"]]
        assert len(matching) == 1, f"{role}: {len(matching)} PodDisruptionBudgets"
        assert matching[0]["spec"]["maxUnavailable"] >= 1  # never blocks a drain for good


def _assert_lag_autoscaling(docs: list[dict[str, Any]], app_id: str, topics: Topics) -> None:
    settings = Settings(app_id=app_id)
    scaled = by_kind(docs, "ScaledObject")
    deps = deployments(docs)
    config = next(iter(by_kind(docs, "ConfigMap").values()))["data"]
    partitions = {
        "ingest": int(config["DNC_TOPIC_LAYOUT__INPUT_PARTITIONS"]),
        "listwriter": int(config["DNC_TOPIC_LAYOUT__LIST_PARTITIONS"]),
        "gate": int(config["DNC_TOPIC_LAYOUT__OUTBOUND_PARTITIONS"]),
    }
    assert len(scaled) == len(CONSUMER_ROLES)
    for role in CONSUMER_ROLES:
        dep = deps[role]
        (so,) = [
            s
            for s in scaled.values()
            if s["spec"]["scaleTargetRef"]["name"] == dep["metadata"]["name"]
        ]
        assert "replicas" not in dep["spec"], f"{role}: replicas would fight the autoscaler"
        spec = so["spec"]
        assert 1 <= spec["minReplicaCount"] <= spec["maxReplicaCount"] <= partitions[role]
        groups = {t["metadata"]["consumerGroup"] for t in spec["triggers"]}
        assert groups == {settings.group_id(role)}
        watched = {t["metadata"]["topic"] for t in spec["triggers"]}
        assert watched == {getattr(topics, name) for name in ROLE_TOPICS[role]}
        for t in spec["triggers"]:
            assert t["metadata"]["bootstrapServers"] == config["DNC_KAFKA_BOOTSTRAP"]
            assert int(t["metadata"]["lagThreshold"]) > 0
            assert t["metadata"]["offsetResetPolicy"] == "earliest"


def test_consumer_roles_scale_on_their_group_lag(rendered: list[dict[str, Any]]) -> None:
    _assert_lag_autoscaling(rendered, "dnc", Topics())


def test_autoscaling_follows_app_id_and_topic_names() -> None:
    docs = render(
        "--set",
        "appId=dnc-eu",
        "--set",
        "topics.outbound=eu.messages.outbound",
        "--set",
        "topics.commands=eu.dnc.commands",
    )
    topics = Topics(outbound="eu.messages.outbound", commands="eu.dnc.commands")
    _assert_lag_autoscaling(docs, "dnc-eu", topics)
    config = next(iter(by_kind(docs, "ConfigMap").values()))["data"]
    assert config["DNC_APP_ID"] == "dnc-eu"
    assert config["DNC_TOPICS__OUTBOUND"] == "eu.messages.outbound"


def test_api_scales_on_cpu(rendered: list[dict[str, Any]]) -> None:
    (hpa,) = by_kind(rendered, "HorizontalPodAutoscaler").values()
    api = deployments(rendered)["api"]
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": api["metadata"]["name"],
    }
    assert "replicas" not in api["spec"]
    (metric,) = hpa["spec"]["metrics"]
    assert metric["resource"]["name"] == "cpu"
    (service,) = by_kind(rendered, "Service").values()
    assert service["spec"]["selector"] == api["spec"]["selector"]["matchLabels"]


def test_without_autoscaling_replicas_are_fixed() -> None:
    docs = render(*VARIANTS["no autoscaling"])
    assert not by_kind(docs, "ScaledObject")
    assert not by_kind(docs, "HorizontalPodAutoscaler")
    for role, dep in deployments(docs).items():
        assert dep["spec"]["replicas"] >= 1, role


def test_topics_job_runs_before_install_and_upgrade(rendered: list[dict[str, Any]]) -> None:
    (job,) = by_kind(rendered, "Job").values()
    hooks = set(job["metadata"]["annotations"]["helm.sh/hook"].split(","))
    assert hooks == {"pre-install", "pre-upgrade"}
    pod = job["spec"]["template"]["spec"]
    assert pod["restartPolicy"] == "Never"
    (c,) = pod["containers"]
    assert c["args"] == ["topics", "ensure"]
    env = {e["name"]: e["value"] for e in c["env"]}
    (config,) = by_kind(rendered, "ConfigMap").values()
    # A hook runs before the ConfigMap exists: it carries the same settings inline.
    assert env == config["data"]
    assert "serviceAccountName" not in pod  # the chart's account does not exist yet either


def test_config_change_rolls_the_pods() -> None:
    def checksums(*args: str) -> set[str]:
        return {
            d["spec"]["template"]["metadata"]["annotations"]["checksum/config"]
            for d in by_kind(render(*args), "Deployment").values()
        }

    before, after = checksums(), checksums("--set", "logLevel=DEBUG")
    assert len(before) == 1
    assert before != after


def test_redis_credentials_stay_in_a_secret() -> None:
    docs = render(*VARIANTS["redis url from a secret"])
    (config,) = by_kind(docs, "ConfigMap").values()
    assert "DNC_REDIS_URL" not in config["data"]
    assert config["data"]["DNC_INDEX__CLUSTER"] == "true"
    for role, dep in deployments(docs).items():
        env = {e["name"]: e for e in container(dep).get("env", [])}
        ref = env["DNC_REDIS_URL"]["valueFrom"]["secretKeyRef"]
        assert ref == {"name": "dnc-redis", "key": "DNC_REDIS_URL"}, role
    for so in by_kind(docs, "ScaledObject").values():
        for trigger in so["spec"]["triggers"]:
            assert trigger["authenticationRef"] == {"name": "kafka-sasl"}


def _walk(obj: Any) -> Iterator[Any]:
    yield obj
    if isinstance(obj, dict):
        for v in obj.values():
            yield from _walk(v)
    elif isinstance(obj, list):
        for v in obj:
            yield from _walk(v)


def test_no_secret_material_in_any_deploy_file(rendered: list[dict[str, Any]]) -> None:
    """No live credential anywhere; the public development keys live in dev.env only."""
    dev_unsubscribe_key = json.loads(_env_file(DEV_ENV)["DNC_API__UNSUBSCRIBE_KEYS"])[0]
    files = [p for p in CHART.rglob("*") if p.is_file()] + [COMPOSE, DOCKERFILE, DOCKERIGNORE]
    for path in files:
        text = path.read_text()
        assert "PRIVATE KEY" not in text, path
        assert not re.search(r"\w+://[^/\s:@]+:[^/\s@]+@", text), f"{path}: credentials in a URL"
        assert dev_unsubscribe_key not in text, f"{path}: development key outside dev.env"
    for value in _walk(rendered):
        assert value != dev_unsubscribe_key
