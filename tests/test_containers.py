"""The project image built for real, and the pipeline run in it with kfp's DockerRunner
(`urbansound run --runner docker`), compared with the subprocess runner on the same data.

The end-to-end test (marked e2e) makes the base image from Debian's packages where it is
missing (docker/make-base.sh: debootstrap, root), builds the CPU image with docker/build.sh
(podman, or docker where its daemon answers; the engine's layer cache makes an unchanged
tree a rebuild of seconds), then runs `--profile quick --folds 1` on a 90-clip built-in
dataset with both runners and compares what they wrote: the records of ingest and features
byte for byte, the fold accuracies, every prediction and the model's weights. It uses a
Docker API that answers (Docker's, or podman's service) or starts podman's own service on a
socket of its own. Where containers cannot be built or started here (no podman, no root for
the base, a kernel or configuration that refuses them) it is skipped with one line naming
the reason, except under CI (CI=true), where that is a failure: `make test-deps` installs
podman, runc, debootstrap and uidmap and writes the containers.conf line they need.

Two more end-to-end tests use that image: the cluster's pipeline (no retries unless asked)
on an empty dataset folder stops after one ingest container exiting 2 with its message (two
with one retry); and docker/compose.yaml started with podman-compose (PostgreSQL from
docker/postgres.Dockerfile on the same base) with a run in containers logging to it, read
back over REST and in PostgreSQL.

The other tests need no container engine: the checks before a run (no Docker API, the image
missing) against a stand-in Docker API on a unix socket, the mounts, user, network and
environment every task's container gets, and the image's source digest.
"""

import hashlib
import json
import os
import shutil
import socketserver
import subprocess
import sys
import threading
import time
import urllib.request
import zipfile
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import ClassVar

import pytest

from urbansound.config import ConfigError

ROOT = Path(__file__).resolve().parents[1]
BASE_IMAGE = os.environ.get("URBANSOUND_TEST_BASE", "localhost/urbansound-base:bookworm")
TEST_IMAGE = "urbansound-test:e2e"  # docker/build.sh tags urbansound-test:e2e-cpu


def _unavailable(reason: str):
    """Skip here; under CI, where `make test-deps` installs podman, fail instead."""
    if os.environ.get("CI"):
        pytest.fail(f"containers: {reason}")
    pytest.skip(f"containers: {reason}")


# ------------------------------------------------ a stand-in Docker API (no engine) ----


class _FakeDocker(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True
    images: ClassVar[dict] = {}


class _FakeDockerHandler(BaseHTTPRequestHandler):
    """``/version``, ``/_ping`` and ``/images/NAME/json``: what :func:`check_docker` asks."""

    def address_string(self):  # a unix socket has no peer address
        return "local"

    def log_message(self, *args):
        pass

    def _send(self, status: int, payload) -> None:
        body = json.dumps(payload).encode() if not isinstance(payload, bytes) else payload
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        path = self.path.split("?")[0]
        if path.endswith("/_ping"):
            return self._send(200, b"OK")
        if path.endswith("/version"):  # the client's first question: which API version
            return self._send(200, {"ApiVersion": "1.41", "Version": "4.3.1"})
        if "/images/" in path and path.endswith("/json"):
            from urllib.parse import unquote

            name = unquote(path.split("/images/", 1)[1][: -len("/json")])
            for attrs in self.server.images.values():  # type: ignore[attr-defined]
                if name in attrs["RepoTags"] or f"localhost/{name}" in attrs["RepoTags"]:
                    return self._send(200, attrs)
            return self._send(404, {"message": f"{name}: image not known"})
        return self._send(404, {"message": "not here"})


@pytest.fixture
def fake_docker(tmp_path, monkeypatch):
    """A stand-in Docker API on a unix socket, as podman answers: it knows
    ``localhost/urbansound:0.1.0-cpu`` under that name only."""
    sock = tmp_path / "docker.sock"
    server = _FakeDocker(str(sock), _FakeDockerHandler)
    from urbansound.pipeline.containers import SOURCE_DIGEST_LABEL, source_digest

    server.images = {
        "cpu": {
            "Id": "sha256:" + "ab" * 32,
            "RepoTags": ["localhost/urbansound:0.1.0-cpu"],
            "RepoDigests": [],
            "Size": 3_690_000_000,
            "Config": {"Labels": {SOURCE_DIGEST_LABEL: source_digest()}},
        }
    }
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setenv("DOCKER_HOST", f"unix://{sock}")
    yield server
    server.shutdown()
    server.server_close()


def test_no_docker_api_is_one_line_naming_the_socket_and_the_fix(tmp_path, monkeypatch):
    from urbansound.pipeline import preflight

    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/none.sock")
    with pytest.raises(ConfigError) as caught:
        preflight.check_runner("docker", None)
    message = str(caught.value)
    assert "\n" not in message
    assert f"the Docker API at unix://{tmp_path}/none.sock does not answer (no such socket)" in (
        message
    )
    assert "podman system service" in message and "DOCKER_HOST" in message


def test_no_socket_anywhere_names_where_it_looked(monkeypatch):
    from urbansound.pipeline import containers

    monkeypatch.delenv("DOCKER_HOST", raising=False)
    monkeypatch.setenv("XDG_RUNTIME_DIR", "/nonexistent-runtime-dir")
    monkeypatch.setattr(containers, "DEFAULT_SOCKETS", ("/nonexistent/docker.sock",))
    with pytest.raises(containers.DockerSetupError, match=r"no Docker API here .*docker\.sock"):
        containers.check_docker("urbansound:0.1.0-cpu")


def test_a_missing_image_is_refused_with_how_to_build_it(fake_docker):
    from urbansound.pipeline import preflight

    with pytest.raises(ConfigError) as caught:
        preflight.check_runner("docker", "urbansound:9.9-cpu", probe=False)
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith("--runner docker: image urbansound:9.9-cpu not found at unix://")
    assert "docker/build.sh" in message and "docker/make-base.sh" in message


def test_the_image_is_named_as_the_engine_lists_it(fake_docker):
    """podman lists a local image as localhost/NAME:TAG; kfp's DockerRunner compares the
    reference with that list and would otherwise try to pull it."""
    from urbansound.pipeline import preflight

    setup = preflight.check_runner(
        "docker", None, probe=False
    )  # default: docker/build.sh's CPU tag
    assert setup.image == "localhost/urbansound:0.1.0-cpu"
    assert setup.image_id == "sha256:" + "ab" * 32
    assert setup.warnings == []  # built from this code
    fake_docker.images["cpu"]["Config"]["Labels"] = {}
    (warning,) = preflight.check_runner("docker", "urbansound:0.1.0-cpu", probe=False).warnings
    assert "no org.urbansound.source-digest label" in warning
    fake_docker.images["cpu"]["Config"]["Labels"] = {"org.urbansound.source-digest": "0" * 16}
    (warning,) = preflight.check_runner("docker", "urbansound:0.1.0-cpu", probe=False).warnings
    assert "built from other code than this checkout's" in warning


def test_image_only_with_the_docker_runner_and_checked_as_a_reference():
    from urbansound.pipeline import preflight

    with pytest.raises(ConfigError, match="--image: only with --runner docker"):
        preflight.check_runner("subprocess", "urbansound:0.1.0-cpu")
    assert preflight.check_runner("subprocess", None) is None
    with pytest.raises(ConfigError, match="not an image reference"):
        preflight.check_runner("docker", "Not An Image")


def test_run_refuses_a_bad_docker_setup_before_anything_is_written(tmp_path, monkeypatch):
    from urbansound.pipeline.cli import main

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/none.sock")
    out = tmp_path / "out"
    assert main(["run", "--runner", "docker", "--out", str(out)]) == 2
    assert not out.exists() and not (tmp_path / "mlflow.db").exists()


def test_every_task_gets_the_data_read_only_and_the_outputs_and_store_read_write(tmp_path):
    from urbansound.pipeline.containers import IMAGE_ID_ENV, DockerSetup, runner_spec

    setup = DockerSetup("unix:///x.sock", "localhost/u:1-cpu", "sha256:" + "cd" * 32, 0, "")
    data, out, store, noise = (tmp_path / n for n in ("data", "out", "store", "noise"))
    for folder in (data, out, store, noise):
        folder.mkdir()
    spec = runner_spec(
        setup,
        out=out,
        data=data,
        tracking_uri=f"sqlite:///{store}/mlflow.db",
        extra_inputs=(str(noise), "", "runs:/abc/model"),
    )
    assert {inside: (here, ro) for inside, here, ro in spec["mounts"]} == {
        str(data): (str(data), True),
        str(noise): (str(noise), True),
        str(out): (str(out), False),
        str(store): (str(store), False),
    }
    assert spec["network_mode"] == "none"  # a sqlite store: nothing to reach
    assert spec["user"] == f"{os.getuid()}:{os.getgid()}"
    assert spec["environment"][IMAGE_ID_ENV] == setup.image_id  # kfp's cache keys on it
    json.dumps(spec)  # it travels to the pipeline's process as JSON
    server = runner_spec(setup, out=out, data=data, tracking_uri="http://127.0.0.1:5000")
    assert server["network_mode"] == "host"  # 127.0.0.1:5000 means the same inside
    assert [mount[0] for mount in server["mounts"]] == sorted([str(data), str(out)])
    # demo data inside the output folder: read-only inside the read-write mount
    inside = runner_spec(setup, out=out, data=out / "demo-data", tracking_uri="")
    assert [str(out / "demo-data"), str(out / "demo-data"), True] in inside["mounts"]
    # a store named through a symbolic link: mounted where it is named, from where it is
    (tmp_path / "link").symlink_to(store)
    linked = runner_spec(setup, out=out, data=data, tracking_uri=f"sqlite:///{tmp_path}/link/m.db")
    assert [str(tmp_path / "link"), str(store), False] in linked["mounts"]


def test_relative_store_and_noise_paths_are_made_absolute(tmp_path, monkeypatch):
    """A task's working directory in a container is the image's: relative paths would name
    other files there."""
    from urbansound.config import Config
    from urbansound.pipeline.containers import absolute_paths

    monkeypatch.chdir(tmp_path)
    config = Config().override(**{"augment.noise_dir": "noises"})
    config, uri = absolute_paths(config, "sqlite:///runs/mlflow.db")
    assert uri == f"sqlite:///{tmp_path}/runs/mlflow.db"
    assert config.augment.noise_dir == str(tmp_path / "noises")
    same = absolute_paths(config, "http://127.0.0.1:5000")
    assert same == (config, "http://127.0.0.1:5000")


def test_the_source_digest_is_the_same_for_the_checkout_and_the_installed_package(tmp_path):
    from urbansound.pipeline.containers import source_digest

    assert source_digest(ROOT) == source_digest()
    copy = tmp_path / "tree"
    for folder in ("urbansound", "components", "pipeline"):
        shutil.copytree(ROOT / folder, copy / folder, ignore=shutil.ignore_patterns("__pycache__"))
    assert source_digest(copy) == source_digest(ROOT)
    (copy / "components" / "train.py").write_text("# changed\n")
    assert source_digest(copy) != source_digest(ROOT)
    # docker/build.sh runs the module as a script with any python3 (standard library only)
    done = subprocess.run(
        [
            sys.executable,
            "-I",
            str(ROOT / "pipeline" / "containers.py"),
            "source-digest",
            str(ROOT),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert done.stdout.strip() == source_digest(ROOT)


# ------------------------------------------------ end to end: build and run ------------


def _tail(text: str, lines: int = 3) -> str:
    return " | ".join(line.strip() for line in text.strip().splitlines()[-lines:])


def _answers(host: str) -> bool:
    try:
        import docker

        client = docker.DockerClient(base_url=host, timeout=5)
        try:
            return bool(client.ping())
        finally:
            client.close()
    except Exception:
        return False


def _engine(host: str) -> str:
    """The build tool whose images the Docker API at ``host`` sees: podman for podman's
    service, docker for Docker's daemon."""
    import docker

    client = docker.DockerClient(base_url=host, timeout=10)
    try:
        components = client.version().get("Components") or []
    finally:
        client.close()
    if any("podman" in str(c.get("Name", "")).lower() for c in components):
        return "podman"
    if shutil.which("docker"):
        return "docker"
    _unavailable(f"the Docker API at {host} is Docker's, and there is no docker command here")
    raise AssertionError("unreachable")


@pytest.fixture(scope="module")
def timings():
    found: dict[str, float] = {}
    yield found
    print("\ncontainers: " + ", ".join(f"{k} {v:.0f} s" for k, v in found.items()))


@pytest.fixture(scope="module")
def docker_api(tmp_path_factory):
    """A Docker API that answers: $DOCKER_HOST or a standard socket, else podman's own
    service, started here on a socket of its own and stopped after the tests."""
    from urbansound.pipeline.containers import docker_host

    host = docker_host()
    if host and _answers(host):
        yield host
        return
    if not shutil.which("podman"):
        _unavailable(
            f"no Docker API answers ({host or 'no socket'}) and podman is not installed "
            f"(Debian: apt-get install podman runc uidmap debootstrap; `make test-deps` does)"
        )
    folder = tmp_path_factory.mktemp("podman")
    sock, log = folder / "podman.sock", folder / "service.log"
    with open(log, "w") as fh:
        service = subprocess.Popen(
            ["podman", "system", "service", "--time=0", f"unix://{sock}"],
            stdout=fh,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    host = f"unix://{sock}"
    try:
        deadline = time.monotonic() + 60
        while not _answers(host):
            if service.poll() is not None or time.monotonic() > deadline:
                _unavailable(
                    f"podman's Docker API service did not answer: {_tail(log.read_text())}"
                )
            time.sleep(0.5)
        yield host
    finally:
        service.terminate()
        try:
            service.wait(timeout=15)
        except subprocess.TimeoutExpired:
            service.kill()
            service.wait()


@pytest.fixture(scope="module")
def built_image(docker_api, timings):
    """The CPU image of this tree, as docker/build.sh builds it on the project's own base
    (made here once if missing; the engine's cache keeps it and the layers)."""
    engine = _engine(docker_api)
    exists = subprocess.run([engine, "image", "inspect", BASE_IMAGE], capture_output=True)
    if exists.returncode != 0:
        if BASE_IMAGE != "localhost/urbansound-base:bookworm":
            _unavailable(f"base image {BASE_IMAGE} (URBANSOUND_TEST_BASE) is not here")
        if os.geteuid() != 0:
            _unavailable(f"base image {BASE_IMAGE} is missing and docker/make-base.sh needs root")
        if not shutil.which("debootstrap"):
            _unavailable(f"base image {BASE_IMAGE} is missing and debootstrap is not installed")
        started = time.monotonic()
        made = subprocess.run(
            ["bash", str(ROOT / "docker" / "make-base.sh"), BASE_IMAGE],
            capture_output=True,
            text=True,
            timeout=1200,
            env=dict(os.environ, ENGINE=engine),
        )
        if made.returncode != 0:
            _unavailable(f"docker/make-base.sh failed: {_tail(made.stdout + made.stderr)}")
        timings["base image"] = time.monotonic() - started
    probe = subprocess.run(
        [engine, "run", "--rm", "--network", "none", BASE_IMAGE, "true"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    if probe.returncode != 0:
        _unavailable(f"{engine} cannot start a container here: {_tail(probe.stderr, 1)}")
    started = time.monotonic()
    build = subprocess.run(
        ["bash", str(ROOT / "docker" / "build.sh"), TEST_IMAGE],
        capture_output=True,
        text=True,
        timeout=3600,
        env=dict(os.environ, ENGINE=engine, VARIANTS="cpu", BASE=BASE_IMAGE),
    )
    timings["image build"] = time.monotonic() - started
    assert build.returncode == 0, build.stdout[-3000:] + build.stderr[-3000:]
    return f"{TEST_IMAGE}-cpu"


def _run(runner: str, data: Path, out: Path, store: Path, host: str, image: str):
    argv = [sys.executable, "-m", "urbansound.pipeline.cli", "run", "--data", str(data)]
    argv += ["--profile", "quick", "--folds", "1", "--seed", "3", "--out", str(out)]
    argv += ["--tracking-uri", f"sqlite:///{store}"]
    if runner == "docker":
        argv += ["--runner", "docker", "--image", image]
    started = time.monotonic()
    done = subprocess.run(
        argv,
        capture_output=True,
        text=True,
        timeout=1800,
        env=dict(os.environ, DOCKER_HOST=host),
        cwd=out.parent,
    )
    elapsed = time.monotonic() - started
    log = out / "run.log"
    assert done.returncode == 0, (
        done.stdout[-2000:]
        + done.stderr[-2000:]
        + (log.read_text()[-4000:] if log.exists() else "")
    )
    (run_dir,) = (out / "pipeline_root").glob("urbansound-*")
    return run_dir, done.stdout, elapsed


def _files(run_dir: Path) -> dict[str, str]:
    """SHA-256 of every file a run wrote, by path inside its run folder; the files that
    name their own run (executor outputs, the summary's paths) and the Keras archive (it
    holds the time it was saved) are compared on their own."""
    skip = {"executor_output.json", "summary.json", "model.keras"}
    return {
        str(p.relative_to(run_dir)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(run_dir.rglob("*"))
        if p.is_file() and p.name not in skip
    }


@pytest.mark.e2e
def test_the_pipeline_in_containers_writes_what_the_subprocess_runner_writes(
    built_image, docker_api, tmp_path, timings
):
    from urbansound.demo_data import write_demo_dataset

    data = tmp_path / "data"
    write_demo_dataset(data, folds=(1, 2, 3), clips_per_class=3, seed=1)
    store = tmp_path / "mlflow.db"
    here, _, here_s = _run(
        "subprocess", data, tmp_path / "out-subprocess", store, docker_api, built_image
    )
    inside, inside_out, inside_s = _run(
        "docker", data, tmp_path / "out-docker", store, docker_api, built_image
    )
    timings["subprocess run"], timings["docker run"] = here_s, inside_s

    # every task ran in a container of the image (podman names it localhost/...)
    (line,) = [ln for ln in inside_out.splitlines() if ln.startswith("runner: docker, image ")]
    reference = line.split()[3]
    assert reference.endswith(built_image), line
    log = (tmp_path / "out-docker" / "run.log").read_text()
    # mlflow-start, ingest, features, train, evaluate, mlflow-finish
    assert log.count(f" of {reference}\n") == 6, log[-3000:]
    assert "warning: image" not in inside_out  # built from this checkout's code

    # the same records, predictions, figures and reports, byte for byte
    ours, theirs = _files(here), _files(inside)
    assert ours.keys() == theirs.keys()
    assert [k for k in ours if ours[k] != theirs[k]] == []
    assert any(k.startswith("features-component/features/fold") for k in ours)

    # the same fold accuracy and the same weights (TensorFlow's deterministic ops, one seed)
    summaries = [
        json.loads(next(d.glob("evaluate*/evaluation/summary.json")).read_text())
        for d in (here, inside)
    ]
    assert summaries[0]["folds"] == summaries[1]["folds"] and list(summaries[0]["folds"]) == ["1"]

    def weights(run_dir: Path) -> bytes:
        (model,) = run_dir.glob("for-loop-*/train-component/model/model.keras")
        return zipfile.ZipFile(model).read("model.weights.h5")

    assert weights(here) == weights(inside)

    # MLflow, from inside the containers: the parent run finished, the fold logged its accuracy
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{store}")
    (experiment,) = [e for e in client.search_experiments() if e.name == "urbansound"]
    runs = client.search_runs([experiment.experiment_id])
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    folds = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    assert len(parents) == 2 and {r.info.status for r in parents} == {"FINISHED"}
    assert len({r.data.metrics["test_accuracy"] for r in folds}) == 1


# The cluster's pipeline (create_pipeline with ClusterOptions, as compile and submit build
# it) under the DockerRunner, on a dataset folder that is empty: ingest stops on bad input.
# kfp's local runner honours a task's retry policy as a cluster does; every container's
# exit code is printed (EXIT n).
_BAD_INPUT_RUN = """
import sys
from pathlib import Path

from kfp import local
from kfp.local import docker_task_handler

from urbansound.pipeline import containers
from urbansound.pipeline.pipeline import ClusterOptions, create_pipeline

image, out, data, retries = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3]), int(sys.argv[4])
setup = containers.check_docker(image, probe=False)
spec = containers.runner_spec(setup, out=out, data=data, tracking_uri="")
runner = containers.docker_runner(spec, {}, "retry-test")
inner = docker_task_handler.run_docker_container


def recording(*args, **kwargs):
    code = inner(*args, **kwargs)
    print(f"EXIT {code}", flush=True)
    return code


docker_task_handler.run_docker_container = recording
local.init(runner=runner, pipeline_root=str(out / "root"), raise_on_error=False)
cluster = ClusterOptions(retries=retries, retry_backoff="0s") if retries else ClusterOptions()
create_pipeline(image=setup.image, cluster=cluster)(data_root=str(data))
"""


@pytest.mark.e2e
def test_bad_input_on_the_cluster_pipeline_fails_once_with_its_message(
    built_image, docker_api, tmp_path
):
    """The package compile and submit send (no retries by default) stops at the first
    failure of a task on bad input: one ingest container, exit code 2, one message line.
    With --retries 1 the same input fails twice: kfp cannot tell it from a transient
    failure."""
    data = tmp_path / "empty-dataset"
    data.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    env["DOCKER_HOST"] = docker_api
    attempts = {}
    for retries in (0, 1):
        out = tmp_path / f"out-{retries}"
        out.mkdir()
        done = subprocess.run(
            [sys.executable, "-c", _BAD_INPUT_RUN, built_image, str(out), str(data), str(retries)],
            capture_output=True,
            text=True,
            timeout=600,
            env=env,
        )
        log = done.stdout + done.stderr
        lines = [ln.strip() for ln in log.splitlines()]  # kfp indents a task's log
        errors = [ln for ln in lines if ln.startswith("urbansound ingest: error: ")]
        # mlflow-start, the ingest attempts, mlflow-finish (the exit handler)
        codes = [int(ln.split()[1]) for ln in lines if ln.startswith("EXIT ")]
        assert codes == [0] + [2] * (retries + 1) + [0], log[-4000:]
        assert len(errors) == retries + 1 and str(data) in errors[0], log[-4000:]
        assert "Task 'train-component'" not in log  # nothing after ingest ran
        attempts[retries] = len(errors)
    assert attempts == {0: 1, 1: 2}


# ------------------------------------- the team's tracking server, docker/compose.yaml ----

POSTGRES_IMAGE = "localhost/urbansound-postgres:15"


@pytest.fixture(scope="module")
def compose_server(built_image, docker_api, tmp_path_factory):
    """docker/compose.yaml started with podman-compose: PostgreSQL (Debian's, built from
    docker/postgres.Dockerfile on the base image) and the MLflow server in the image under
    test, on a free port; stopped and its volumes removed after."""
    from conftest import free_port

    if _engine(docker_api) != "podman":
        _unavailable(f"the Docker API at {docker_api} is Docker's: this test uses podman-compose")
    if not shutil.which("podman-compose"):
        _unavailable(
            "podman-compose is not installed (Debian: apt-get install podman-compose "
            "golang-github-containernetworking-plugin-dnsname; `make test-deps` does)"
        )
    built = subprocess.run(
        ["podman", "build", "--network", "host", "-f", str(ROOT / "docker/postgres.Dockerfile")]
        + ["--build-arg", f"BASE={BASE_IMAGE}", "-t", POSTGRES_IMAGE, str(ROOT / "docker")],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert built.returncode == 0, built.stdout[-2000:] + built.stderr[-2000:]
    port, project = free_port(), f"urbansound-test-{os.getpid()}"
    env = dict(
        os.environ,
        POSTGRES_IMAGE=POSTGRES_IMAGE,
        URBANSOUND_IMAGE=built_image,
        MLFLOW_PORT=str(port),
        MLFLOW_DB_PASSWORD="team-secret",
        DOCKER_HOST=docker_api,
    )
    compose = ["podman-compose", "-p", project, "-f", str(ROOT / "docker/compose.yaml")]
    log = tmp_path_factory.mktemp("compose") / "compose.log"
    with open(log, "w") as fh:
        up = subprocess.run([*compose, "up", "-d"], stdout=fh, stderr=fh, env=env, timeout=300)
    base = f"http://127.0.0.1:{port}"
    try:
        assert up.returncode == 0, log.read_text()[-3000:]
        deadline = time.monotonic() + 180  # first start: initdb, then MLflow's schema
        while True:
            try:
                with urllib.request.urlopen(f"{base}/health", timeout=5) as answer:
                    if answer.read() == b"OK":
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                server = subprocess.run(
                    ["podman", "logs", f"{project}_mlflow_1"], capture_output=True, text=True
                )
                pytest.fail(f"compose's MLflow server did not answer: {server.stderr[-2000:]}")
            time.sleep(1)
        # the healthchecks as an engine with a scheduler would run them
        for service in ("postgres", "mlflow"):
            check = subprocess.run(["podman", "healthcheck", "run", f"{project}_{service}_1"])
            assert check.returncode == 0, service
        yield base, project
    finally:
        subprocess.run(
            [*compose, "down", "-v"], capture_output=True, env=env, timeout=300, check=False
        )
        # podman-compose 1.0.3 leaves the project's network behind
        subprocess.run(["podman", "network", "rm", f"{project}_default"], capture_output=True)


@pytest.mark.e2e
def test_a_run_in_containers_logs_to_the_compose_server(
    compose_server, built_image, docker_api, tmp_path
):
    """`run --runner docker` with the compose file's MLflow server (PostgreSQL, served
    artifacts) as its tracking URI; the runs read back through the server's REST API and
    seen in PostgreSQL's own table."""
    from test_postgres import _get, _runs

    from urbansound.demo_data import write_demo_dataset

    base, project = compose_server
    data = tmp_path / "data"
    write_demo_dataset(data, folds=(1, 2, 3), clips_per_class=3, seed=1)
    argv = [sys.executable, "-m", "urbansound.pipeline.cli", "run", "--runner", "docker"]
    argv += ["--image", built_image, "--data", str(data), "--profile", "quick", "--folds", "1"]
    argv += ["--tracking-uri", base, "--out", str(tmp_path / "out")]
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    env["DOCKER_HOST"] = docker_api
    done = subprocess.run(argv, capture_output=True, text=True, timeout=1800, env=env, cwd=tmp_path)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]

    _, runs = _runs(base)
    (parent,) = [r for r in runs if "mlflow.parentRunId" not in r["data"]["tags"]]
    (fold,) = [r for r in runs if "mlflow.parentRunId" in r["data"]["tags"]]
    assert parent["info"]["status"] == fold["info"]["status"] == "FINISHED"
    assert parent["data"]["metrics"]["clips_accepted"] == 90
    assert parent["data"]["metrics"]["accuracy_mean"] == pytest.approx(
        fold["data"]["metrics"]["test_accuracy"]
    )
    # artifacts through the server into its volume (mlflow-artifacts:/, no storage access)
    assert parent["info"]["artifact_uri"].startswith("mlflow-artifacts:/")
    summary = _get(base, "/get-artifact", run_id=parent["info"]["run_id"], path="summary.json")
    assert summary["mean"] == pytest.approx(parent["data"]["metrics"]["accuracy_mean"])
    rows = subprocess.run(
        ["podman", "exec", f"{project}_postgres_1", "psql", "-U", "mlflow", "-d", "mlflow"]
        + ["-Atc", "SELECT run_uuid, status FROM runs ORDER BY start_time"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert rows == [f"{r['info']['run_id']}|FINISHED" for r in (parent, fold)]
