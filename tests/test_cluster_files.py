"""Static checks of the cluster files (no Docker engine runs here): the Dockerfile,
docker/build.sh (run against a stand-in `docker`), docker/compose.yaml."""

import ast
import fnmatch
import importlib.metadata
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
DOCKERFILE = ROOT / "Dockerfile"
COMPOSE = ROOT / "docker" / "compose.yaml"
BUILD_SH = ROOT / "docker" / "build.sh"


# ---------------------------------------------------------------- Dockerfile ----------


def parse_dockerfile(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) in order: comments dropped, `\\` continuations joined
    (a comment line inside a continuation is dropped, as Docker does)."""
    out, pending = [], ""
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("#") or (not line and not pending):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line, pending = pending + line, ""
        if line.strip():
            word, _, rest = line.strip().partition(" ")
            out.append((word.upper(), rest.strip()))
    assert not pending, "the Dockerfile ends inside a continuation"
    return out


def _args(instructions, name):
    return [a for i, a in instructions if i == name]


def _arg_defaults(instructions):
    out = {}
    for a in _args(instructions, "ARG"):
        key, _, value = a.partition("=")
        out[key] = value
    return out


@pytest.fixture(scope="module")
def docker_instructions():
    return parse_dockerfile(DOCKERFILE.read_text())


def test_parser_joins_continuations_and_drops_comments():
    parsed = parse_dockerfile('# c\nARG A=1\nRUN a \\\n# inside\n && b\n\nCMD ["x"]\n')
    assert parsed == [("ARG", "A=1"), ("RUN", "a  && b"), ("CMD", '["x"]')]


def test_from_is_one_python_311_base_chosen_by_a_build_argument(docker_instructions):
    names = [i for i, _ in docker_instructions]
    froms = _args(docker_instructions, "FROM")
    assert len(froms) == 1
    ref = re.fullmatch(r"\$\{?(\w+)\}?", froms[0])
    assert ref, f"FROM {froms[0]} is not a build argument"
    # An ARG used in FROM must be declared before it.
    before = docker_instructions[: names.index("FROM")]
    defaults = _arg_defaults(before)
    base = defaults[ref.group(1)]
    image, _, tag = base.rpartition(":")
    assert image == "python" and tag.startswith("3.11-") and tag != "latest", base


def test_tensorflow_extra_only_adds_cuda_wheels_to_the_pinned_tensorflow(docker_instructions):
    """The RUN that installs the requirements is executed by sh with a stand-in pip: the
    CPU build installs requirements.txt alone, the GPU build adds tensorflow[and-cuda]
    (same pin, from the file), and muda goes in with --no-deps."""
    run = next(a for a in _args(docker_instructions, "RUN") if "-r requirements.txt" in a)
    script = 'pip() { echo "pip $*"; }; ' + run
    for extras, expected in [("", []), ("and-cuda", ["tensorflow[and-cuda]"])]:
        env = dict(os.environ, TF_EXTRAS=extras)
        out = subprocess.run(
            ["sh", "-c", script], env=env, capture_output=True, text=True, check=True
        ).stdout.splitlines()
        assert out[0].split() == ["pip", "install", "-r", "requirements.txt"] + expected
        assert out[1].split() == ["pip", "install", "--no-deps", "muda==0.4.1"]
    # The default is the CPU build; the extra exists for the pinned tensorflow.
    assert _arg_defaults(docker_instructions)["TF_EXTRAS"] == ""
    extras = importlib.metadata.metadata("tensorflow").get_all("Provides-Extra")
    assert "and-cuda" in extras


def test_the_requirements_installed_are_the_repositorys(docker_instructions):
    copies = [shlex.split(a) for a in _args(docker_instructions, "COPY")]
    assert ["requirements.txt", "."] in copies
    pins = (ROOT / "requirements.txt").read_text()
    assert not re.search(r"^muda", pins, re.M), "muda must not be in requirements.txt (--no-deps)"
    assert re.search(r"^psycopg\[binary\]==", pins, re.M)  # the compose file's MLflow server
    assert re.search(r"^kfp-kubernetes==", pins, re.M)


def _dockerignore_patterns():
    path = ROOT / ".dockerignore"
    lines = path.read_text().splitlines() if path.exists() else []
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def test_every_copy_source_exists_and_is_not_ignored(docker_instructions):
    ignored = _dockerignore_patterns()
    for arguments in _args(docker_instructions, "COPY"):
        parts = [p for p in shlex.split(arguments) if not p.startswith("--")]
        for source in parts[:-1]:
            assert (ROOT / source).exists(), f"COPY {source}: not in the repository"
            hit = [p for p in ignored if fnmatch.fnmatch(source, p.lstrip("/"))]
            assert not hit, f"COPY {source} is excluded by .dockerignore {hit}"
    assert ".venv" in ignored  # a 3 GB context otherwise


def test_every_package_setup_py_installs_is_copied_before_the_install(docker_instructions):
    copied = set()
    for name, arguments in docker_instructions:
        if name == "COPY":
            copied.update(shlex.split(arguments)[:-1])
        if name == "RUN" and "pip install --no-deps ." in arguments:
            break
    else:
        pytest.fail("the package is never installed (pip install --no-deps .)")
    setup_py = (ROOT / "setup.py").read_text()
    library = re.findall(r'"(\w+)"', re.search(r"include=\[(.*?)\]", setup_py, re.S).group(1))
    mapped = re.search(r"SUBPACKAGE_FOLDERS = (\{.*?\})", setup_py, re.S).group(1)
    folders = set(library) | set(ast.literal_eval(mapped).values())
    assert folders == {"urbansound", "pipeline", "components"}
    # setup.py reads README.md and requirements.txt; pyproject.toml names the build backend
    assert {"setup.py", "README.md", "pyproject.toml"} <= copied
    assert folders <= copied, folders - copied


def test_apt_installs_what_muda_and_soundfile_need(docker_instructions):
    apt = next(a for a in _args(docker_instructions, "RUN") if "apt-get install" in a)
    words = apt.split()
    for package in ("rubberband-cli", "sox", "libsndfile1"):
        assert package in words, package
    assert "--no-install-recommends" in words and "rm -rf /var/lib/apt/lists/*" in apt


def test_entrypoint_is_exec_form_and_kfp_gives_every_executor_its_own_command(
    docker_instructions, tmp_path
):
    """KFP replaces the image's ENTRYPOINT with each component's command: the image's own
    (for `docker run IMAGE ...`) must not matter to the pipeline."""
    (entrypoint,) = _args(docker_instructions, "ENTRYPOINT")
    assert json.loads(entrypoint) == ["urbansound"]
    from urbansound.pipeline.kubeflow_runner import compile_pipeline

    spec = yaml.safe_load(Path(compile_pipeline(tmp_path / "p.yaml", image="img:1")).read_text())
    for name, executor in spec["deploymentSpec"]["executors"].items():
        assert executor["container"]["command"], name


# ---------------------------------------------------------------- build.sh ------------


def test_build_script_builds_and_tags_both_variants(tmp_path):
    """docker/build.sh run against a stand-in `docker` that records its arguments."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = tmp_path / "calls"
    fake = bin_dir / "docker"
    fake.write_text(f'#!/bin/sh\necho "$*" >> {log}\n')
    fake.chmod(0o755)
    env = dict(os.environ, PATH=f"{bin_dir}:{os.environ['PATH']}", PUSH="1")
    subprocess.run(
        ["bash", str(BUILD_SH), "registry.example.com/team/urbansound"],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    # (it first asks `docker info` whether a daemon answers, and whether it is podman's)
    calls = [c for c in log.read_text().splitlines() if c.split()[0] in ("build", "push")]
    label = f"--build-arg SOURCE_DIGEST={_source_digest()}"
    assert calls == [
        f"build --build-arg TF_EXTRAS= {label} -t registry.example.com/team/urbansound:0.1.0-cpu .",
        f"build --build-arg TF_EXTRAS=and-cuda {label} -t registry.example.com/team/urbansound:0.1.0-gpu .",
        "push registry.example.com/team/urbansound:0.1.0-cpu",
        "push registry.example.com/team/urbansound:0.1.0-gpu",
    ]
    log.unlink()
    env.pop("PUSH")
    subprocess.run(
        ["bash", str(BUILD_SH), "localhost:5001/us:dev"], env=env, check=True, capture_output=True
    )
    assert [c.split()[-2] for c in log.read_text().splitlines() if c.startswith("build")] == [
        "localhost:5001/us:dev-cpu",
        "localhost:5001/us:dev-gpu",
    ]


def _source_digest() -> str:
    from urbansound.pipeline.containers import source_digest

    return source_digest(ROOT)


def test_build_script_uses_podman_without_docker_with_a_base_and_the_hosts_ca(tmp_path):
    """No docker on PATH: podman builds (the same Dockerfile), with BASE as a build argument,
    the host's CA bundle mounted for pip (PIP_CERT), the variants asked for only."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = tmp_path / "calls"
    fake = bin_dir / "podman"
    fake.write_text(f'#!/bin/sh\necho "$*" >> {log}\n')
    fake.chmod(0o755)
    ca = tmp_path / "ca.crt"
    ca.write_text("-----BEGIN CERTIFICATE-----\n")
    # the tools the script uses, and no docker
    tools = tmp_path / "tools"
    tools.mkdir()
    for name in ("sed", "dirname", "grep", "cat"):
        found = shutil.which(name)
        assert found, name
        (tools / name).symlink_to(found)
    (tools / "python3").write_text(f'#!/bin/sh\nexec {sys.executable} "$@"\n')
    (tools / "python3").chmod(0o755)
    env = dict(
        os.environ,
        PATH=f"{bin_dir}:{tools}",
        VARIANTS="cpu",
        BASE="localhost/urbansound-base:bookworm",
        HOST_CA_BUNDLE=str(ca),
    )
    done = subprocess.run(
        [shutil.which("bash"), str(BUILD_SH)], env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().endswith("built urbansound:0.1.0-cpu with podman")
    (call,) = log.read_text().splitlines()
    assert call == (
        "build --build-arg TF_EXTRAS= --build-arg BASE=localhost/urbansound-base:bookworm "
        f"--build-arg SOURCE_DIGEST={_source_digest()} --network host "
        f"--volume {ca}:/etc/ssl/host-ca.crt:ro --build-arg PIP_CERT=/etc/ssl/host-ca.crt "
        "-t urbansound:0.1.0-cpu ."
    )
    env["VARIANTS"] = "tpu"
    done = subprocess.run(
        [shutil.which("bash"), str(BUILD_SH)], env=env, capture_output=True, text=True
    )
    assert done.returncode == 2 and "unknown variant 'tpu'" in done.stderr
    env["PATH"] = str(tools)  # neither docker nor podman
    done = subprocess.run(
        [shutil.which("bash"), str(BUILD_SH)], env=env, capture_output=True, text=True
    )
    assert done.returncode == 2 and "neither docker nor podman" in done.stderr


def test_layers_put_the_pins_first_and_the_code_last(docker_instructions):
    """A code change rebuilds only the package's own layers (seconds): the requirements are
    installed before any code is copied, the source digest label comes after the install,
    and no task runs in the folder of the sources (``python3 -m`` puts the working directory
    first on sys.path, where urbansound/ would hide the installed package)."""
    names = [(i, a) for i, a in docker_instructions]
    index = {key: n for n, key in reversed(list(enumerate(names)))}
    pins = next(n for n, (i, a) in enumerate(names) if i == "RUN" and "-r requirements.txt" in a)
    code = [n for n, (i, a) in enumerate(names) if i == "COPY" and "requirements.txt" not in a]
    install = next(n for n, (i, a) in enumerate(names) if i == "RUN" and "--no-deps ." in a)
    assert pins < min(code) and max(code) < install
    assert names[install][1].index("--no-build-isolation")  # no download: the venv's setuptools
    label = next(n for n, (i, a) in enumerate(names) if i == "LABEL" and "source-digest" in a)
    assert install < label and index[("ARG", "SOURCE_DIGEST=")] > install
    cert = index[("ARG", "PIP_CERT=")]
    assert cert < pins
    workdirs = [a for i, a in names if i == "WORKDIR"]
    source_dir = workdirs[workdirs.index(next(w for w in workdirs if "src" in w))]
    assert workdirs[-1] != source_dir
    # the venv is on PATH: KFP's `python3 -m kfp.dsl.executor_main` is the venv's
    env = " ".join(a for i, a in names if i == "ENV")
    assert "PATH=/opt/venv/bin:$PATH" in env


# ---------------------------------------------------------------- compose.yaml --------

_VAR = re.compile(r"\$\$|\$\{(\w+)(?::?-([^}]*))?\}|\$(\w+)")


def interpolate(value, env):
    """Compose's variable substitution: ${VAR}, ${VAR:-default}, ${VAR-default}, $$."""
    if isinstance(value, dict):
        return {k: interpolate(v, env) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, env) for v in value]
    if not isinstance(value, str):
        return value

    def sub(m):
        if m.group(0) == "$$":
            return "$"
        name = m.group(1) or m.group(3)
        if name in env and env[name] != "":
            return env[name]
        assert m.group(2) is not None, f"${name} has no default: compose would warn"
        return m.group(2)

    return _VAR.sub(sub, value)


@pytest.fixture(scope="module")
def compose_raw():
    return yaml.safe_load(COMPOSE.read_text())


@pytest.fixture(scope="module")
def compose(compose_raw):
    return interpolate(compose_raw, {})


def _flags(command):
    out = {}
    for item in command:
        key, _, value = item.partition("=")
        out[key] = value
    return out


def test_services_and_images_are_pinned(compose):
    services = compose["services"]
    assert set(services) == {"postgres", "mlflow"}
    for name, service in services.items():
        image = service["image"]
        repo, _, tag = image.rpartition(":")
        assert repo and "/" not in tag and tag not in ("", "latest"), f"{name}: {image}"
    # The MLflow server is the project image, built from the repository's Dockerfile.
    build = services["mlflow"]["build"]
    assert (COMPOSE.parent / build["context"] / build["dockerfile"]).resolve() == DOCKERFILE
    assert services["mlflow"]["entrypoint"] == ["mlflow", "server"]


def test_depends_on_names_services_with_healthchecks(compose):
    services = compose["services"]
    for name, service in services.items():
        check = service.get("healthcheck")
        assert check and check["test"][0] in ("CMD", "CMD-SHELL"), f"{name}: no healthcheck"
        depends = service.get("depends_on", {})
        for other, condition in (
            depends.items() if isinstance(depends, dict) else ((d, {}) for d in depends)
        ):
            assert other in services, f"{name} depends on unknown {other}"
            if condition.get("condition") == "service_healthy":
                assert services[other].get("healthcheck"), other
    assert compose["services"]["mlflow"]["depends_on"]["postgres"]["condition"] == "service_healthy"


@pytest.mark.parametrize("env", [{}, {"MLFLOW_DB_PASSWORD": "s3cret-from-env"}])
def test_backend_uri_points_at_the_postgres_service_with_its_credentials(compose_raw, env):
    compose = interpolate(compose_raw, env)
    services = compose["services"]
    flags = _flags(services["mlflow"]["command"])
    uri = urlsplit(flags["--backend-store-uri"])
    db_env = services["postgres"]["environment"]
    assert uri.scheme == "postgresql"
    assert uri.hostname == "postgres" and uri.hostname in services
    assert uri.port == 5432
    assert uri.username == db_env["POSTGRES_USER"]
    assert uri.password == db_env["POSTGRES_PASSWORD"]
    assert uri.path.lstrip("/") == db_env["POSTGRES_DB"]
    if env:
        assert uri.password == "s3cret-from-env"
    # The driver SQLAlchemy picks for this URI (psycopg 3 for postgresql:// since 2.1) is
    # installed: the server would fail at start otherwise.
    import sqlalchemy

    sqlalchemy.engine.make_url(flags["--backend-store-uri"]).get_dialect().import_dbapi()
    # The healthcheck asks for the same user and database.
    assert f"-U {db_env['POSTGRES_USER']}" in services["postgres"]["healthcheck"]["test"][1]
    assert f"-d {db_env['POSTGRES_DB']}" in services["postgres"]["healthcheck"]["test"][1]


def test_server_port_is_published_and_probed(compose):
    mlflow = compose["services"]["mlflow"]
    flags = _flags(mlflow["command"])
    port = flags["--port"]
    assert flags["--host"] == "0.0.0.0"  # reachable from outside its container
    assert [p.split(":")[-1] for p in mlflow["ports"]] == [port]
    assert f"127.0.0.1:{port}/health" in " ".join(mlflow["healthcheck"]["test"])
    # The name other containers use is an allowed Host header (MLflow 3 checks it).
    allowed = mlflow["environment"]["MLFLOW_SERVER_ALLOWED_HOSTS"].split(",")
    from mlflow.server.security_utils import is_allowed_host_header

    for host in ("mlflow", f"mlflow:{port}", f"localhost:{port}", f"127.0.0.1:{port}"):
        assert is_allowed_host_header(allowed, host), host
    assert not is_allowed_host_header(allowed, f"evil.example.com:{port}")


def test_artifacts_are_served_from_a_named_volume(compose):
    services, volumes = compose["services"], compose["volumes"]
    flags = _flags(services["mlflow"]["command"])
    assert "--serve-artifacts" in flags
    destination = flags["--artifacts-destination"]
    mounts = dict(v.split(":", 1) for v in services["mlflow"]["volumes"])
    assert destination in mounts.values(), f"{destination} is not a mounted volume"
    for service in services.values():
        for volume in service.get("volumes", []):
            source = volume.split(":", 1)[0]
            assert source in volumes, f"volume {source} not declared"
    assert services["postgres"]["volumes"] == ["postgres-data:/var/lib/postgresql/data"]
