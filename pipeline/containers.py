"""``urbansound run --runner docker``: every task in the project image, with kfp's DockerRunner.

kfp's ``local.DockerRunner`` starts one container per task through the Docker API (Docker's
daemon, or podman's Docker-compatible service) and bind-mounts the pipeline root at the same
path. Everything else a task reads or writes is mounted here, at the same path as on this
machine, so that the arguments the pipeline passes (absolute paths) mean the same inside:

- the dataset, read-only (and ``augment.noise_dir``, ``train.init_from`` when they are files
  here);
- the output folder (``--out``), read-write: the pipeline root, the content-digest and
  deformation caches, the unreachable-server marker;
- MLflow: a ``sqlite:///`` store's folder (the database, its lock and ``mlartifacts/``),
  read-write. SQLite's locks work across the containers: they share this kernel and the
  file. The containers then run with no network at all (``network_mode="none"``): nothing
  a task does can reach outside. A tracking *server* (``http(s)://``, a database URI) is
  reached over the host's network instead (``network_mode="host"``), so ``127.0.0.1:5000``
  means the same inside as here.

Tasks run as this user (``uid:gid``), so what they write is the user's, not root's; ``HOME``
is ``/tmp`` for a user the image does not know. ``URBANSOUND_IMAGE_ID`` (the image's id) is
in every task's environment: kfp's cache keys on the environment, so a rebuilt image under
the same tag reruns the tasks instead of serving another image's results.

Everything a set-up can get wrong is checked before anything runs (:func:`check_docker`),
each as one line naming what is missing and how to fix it: no Docker API (no daemon, no
podman service), the image not there, a container of it that cannot start, the ``docker``
package missing.  Two faults of kfp 2.17's DockerRunner are worked around here
(:func:`docker_runner`): the image's entrypoint in front of each task's command, and a
failed task counted as a success when its container was removed before its exit code was
read.

This module's top level imports only the standard library: ``docker/build.sh`` runs it as a
script (``python3 pipeline/containers.py source-digest .``) to label the image with the
digest of the code it was built from.
"""

from __future__ import annotations

import hashlib
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SOURCE_DIGEST_LABEL = "org.urbansound.source-digest"
"""The image label docker/build.sh sets to :func:`source_digest` of the tree it built."""
IMAGE_ID_ENV = "URBANSOUND_IMAGE_ID"
DEFAULT_SOCKETS = (
    "/var/run/docker.sock",  # Docker
    "/run/podman/podman.sock",  # podman's service as root
)
PODMAN_HINT = (
    "start Docker, or podman's Docker-compatible service: "
    "podman system service --time=0 unix:///run/podman/podman.sock & "
    "export DOCKER_HOST=unix:///run/podman/podman.sock (docs/cluster.md, 'Before the cluster')"
)
_PACKAGE_FOLDERS = (
    ("urbansound", "urbansound"),
    ("urbansound/components", "components"),
    ("urbansound/pipeline", "pipeline"),
)


def default_docker_image() -> str:
    """``urbansound:<version>-cpu``: docker/build.sh's CPU image of this version."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return f"urbansound:{version('urbansound')}-cpu"
    except PackageNotFoundError:
        return "urbansound:latest"


def source_digest(root: str | os.PathLike | None = None) -> str:
    """SHA-256 (16 hex digits) of the package's Python files, each under the name it has
    once installed (``urbansound/components/train.py``): the same for a checkout (``root``:
    the repository) and for the installed package (``root`` None: where it is imported
    from, editable or not)."""
    if root is not None:
        folders = [(name, Path(root) / folder) for name, folder in _PACKAGE_FOLDERS]
    else:
        import importlib

        folders = [
            (name, Path(importlib.import_module(name.replace("/", ".")).__file__ or "").parent)
            for name, _ in _PACKAGE_FOLDERS
        ]
    nested = {"components", "pipeline"}  # installed: inside urbansound/, digested on their own
    files: dict[str, Path] = {}
    for name, folder in folders:
        for path in folder.rglob("*.py"):
            relative = path.relative_to(folder)
            if "__pycache__" in relative.parts:
                continue
            if name == "urbansound" and relative.parts[0] in nested and len(relative.parts) > 1:
                continue
            files[f"{name}/{relative.as_posix()}"] = path
    digest = hashlib.sha256()
    for name in sorted(files):
        digest.update(name.encode() + b"\0" + files[name].read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def _docker() -> Any:
    """The ``docker`` SDK (by name: type checkers run from the repository root, where the
    ``docker/`` folder of build files would stand for it)."""
    import importlib

    return importlib.import_module("docker")


class DockerSetupError(Exception):
    """``--runner docker`` cannot work here: the message is one line, what and how to fix."""


@dataclass(frozen=True)
class DockerSetup:
    """What :func:`check_docker` found: the Docker API to use, the image as the engine names
    it (the reference kfp looks up), its id, and whether it was built from this code."""

    docker_host: str
    image: str
    image_id: str
    size_bytes: int
    source_digest: str  # the image's label ("" when built without docker/build.sh)
    warnings: list[str] = field(default_factory=list)


def docker_host() -> str:
    """``$DOCKER_HOST``, else the first Docker API socket that exists here (Docker's, then
    podman's as root, then podman's for this user); "" when there is none."""
    if os.environ.get("DOCKER_HOST"):
        return os.environ["DOCKER_HOST"]
    candidates = list(DEFAULT_SOCKETS)
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime:
        candidates.append(os.path.join(runtime, "podman", "podman.sock"))
    for path in candidates:
        if os.path.exists(path):
            return f"unix://{path}"
    return ""


def check_docker(image: str, *, timeout_s: float = 10.0, probe: bool = True) -> DockerSetup:
    """The Docker API answers and has ``image``, and (``probe``) a container of it starts;
    in seconds, before anything runs.

    Raises
    ------
    DockerSetupError
        one line: no ``docker`` package, no socket, an API that does not answer, the
        image missing (with the command that builds it), an engine that cannot start a
        container (its reason: e.g. a runtime that may not set the open-files limit).
    """
    try:
        docker = _docker()
        from docker.errors import DockerException, NotFound
    except ImportError:
        raise DockerSetupError(
            "--runner docker: the Python package 'docker' is not installed here "
            "(pip install -r requirements.txt)"
        ) from None
    host = docker_host()
    if not host:
        raise DockerSetupError(
            f"--runner docker: no Docker API here (no $DOCKER_HOST, none of "
            f"{', '.join(DEFAULT_SOCKETS)}); {PODMAN_HINT}"
        )
    try:
        client = docker.DockerClient(base_url=host, timeout=int(timeout_s))
        client.ping()
    except DockerException as exc:
        raise DockerSetupError(
            f"--runner docker: the Docker API at {host} does not answer "
            f"({_api_error(host, exc)}); {PODMAN_HINT}"
        ) from None
    try:
        try:
            found = client.images.get(image)
        except NotFound:  # ImageNotFound, or podman's wording of it
            raise DockerSetupError(
                f"--runner docker: image {image} not found at {host}; build it with "
                f"docker/build.sh (on a machine without a registry: docker/make-base.sh, then "
                f"BASE=localhost/urbansound-base:bookworm VARIANTS=cpu docker/build.sh), "
                f"or name another with --image"
            ) from None
        except DockerException as exc:
            raise DockerSetupError(f"--runner docker: image {image}: {_short(str(exc))}") from None
        if probe:
            _probe(client, image)
        labels = (found.attrs.get("Config") or {}).get("Labels") or {}
        setup = DockerSetup(
            docker_host=host,
            image=_reference(image, list(found.tags)),
            image_id=found.id,
            size_bytes=int(found.attrs.get("Size") or 0),
            source_digest=labels.get(SOURCE_DIGEST_LABEL, ""),
        )
    finally:
        client.close()
    here = source_digest()
    if setup.source_digest and setup.source_digest != here:
        setup.warnings.append(
            f"image {setup.image} was built from other code than this checkout's (its "
            f"{SOURCE_DIGEST_LABEL} {setup.source_digest}, here {here}): the tasks run the "
            f"image's library; rebuild it with docker/build.sh to run this code"
        )
    elif not setup.source_digest:
        setup.warnings.append(
            f"image {setup.image} has no {SOURCE_DIGEST_LABEL} label (not built by "
            f"docker/build.sh): whether it holds this checkout's code is unknown"
        )
    return setup


def _probe(client, image: str) -> None:
    """``true`` in a container of ``image``, as the tasks' containers start (≈ 1 s); the
    container is removed, also when it could not start."""
    from docker.errors import DockerException

    container = None
    try:
        container = client.containers.create(
            image, command=["true"], entrypoint=["/usr/bin/env"], network_mode="none"
        )
        container.start()
        status = int(container.wait(timeout=60)["StatusCode"])
        if status != 0:
            raise DockerSetupError(
                f"--runner docker: a container of {image} exits with {status} on `true`; "
                f"see docs/cluster.md, 'Before the cluster'"
            )
    except DockerException as exc:
        reason = getattr(exc, "explanation", None) or str(exc)
        raise DockerSetupError(
            f"--runner docker: no container of {image} starts ({_short(str(reason))}); "
            f"see docs/cluster.md, 'Before the cluster'"
        ) from None
    finally:
        if container is not None:
            try:
                container.remove(force=True)
            except DockerException:
                pass


def _reference(image: str, tags: list[str]) -> str:
    """The tag kfp's DockerRunner will find: it compares the reference with the engine's
    own list of tags, and podman lists ``urbansound:0.1.0-cpu`` as
    ``localhost/urbansound:0.1.0-cpu`` (kfp would otherwise try to pull it)."""
    wanted = image if ":" in image.rsplit("/", 1)[-1] else f"{image}:latest"
    for tag in tags:
        if tag == wanted:
            return tag
    for tag in tags:
        if tag.endswith("/" + wanted) or tag == f"docker.io/{wanted}":
            return tag
    return tags[0] if tags else wanted


def _api_error(host: str, exc: Exception) -> str:
    """Why the Docker API at ``host`` did not answer, in a few words."""
    text = str(exc)
    if host.startswith("unix://") and not os.path.exists(host[len("unix://") :]):
        return "no such socket"
    for markers, reason in (
        (
            ("permissionerror", "permission denied"),
            "permission denied: a user of the docker group, or root",
        ),
        (("connectionrefused", "connection refused"), "connection refused: nothing listens there"),
        (("filenotfounderror",), "no such socket"),
        (("timed out", "timeout"), "timed out"),
    ):
        if any(marker in text.lower() for marker in markers):
            return reason
    return _short(text.splitlines()[0] if text else type(exc).__name__)


def _short(text: str, limit: int = 200) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def runner_spec(
    setup: DockerSetup,
    *,
    out: Path,
    data: Path,
    tracking_uri: str,
    extra_inputs: tuple[str, ...] = (),
) -> dict:
    """What every task's container gets besides the pipeline root (kfp's own mount), the
    image and the command, as JSON (it travels to the pipeline's process): mounts
    (``[path inside, path here, read_only]``: the path the tasks are given, and the real
    folder behind it), user, network, environment.

    The pipeline passes ``out`` and ``data`` resolved (no symbolic links); the tracking
    store and ``extra_inputs`` (``augment.noise_dir``, ``train.init_from``) as given, so they
    are mounted where they are named (absolute: :func:`absolute_paths`)."""
    from urbansound.components.tracking_store import sqlite_path

    mounts: dict[str, tuple[str, bool]] = {}  # inside -> (here, read-only)

    def mount(path: Path, read_only: bool, *, resolve: bool) -> None:
        inside = str(path.resolve()) if resolve else os.path.abspath(path)
        before = mounts.get(inside, ("", True))[1]
        mounts[inside] = (str(path.resolve()), before and read_only)

    mount(out, False, resolve=True)
    mount(data, True, resolve=True)
    for extra in extra_inputs:
        if extra and "://" not in extra and Path(extra).exists():
            folder = Path(extra) if Path(extra).is_dir() else Path(extra).parent
            mount(folder, True, resolve=False)
    db = sqlite_path(tracking_uri)
    if db is not None:
        mount(db.parent, False, resolve=False)
    env = {IMAGE_ID_ENV: setup.image_id}
    for key, value in os.environ.items():  # credentials and settings of a tracking server
        if key.startswith("MLFLOW_"):
            env[key] = value
    uid, gid = os.getuid(), os.getgid()
    if uid != 0:  # a user the image does not know: no home of its own
        env["HOME"] = "/tmp"
    return {
        "docker_host": setup.docker_host,
        "image": setup.image,
        "image_id": setup.image_id,
        "mounts": sorted([inside, here, ro] for inside, (here, ro) in mounts.items()),
        "user": f"{uid}:{gid}",
        "network_mode": "none" if db is not None else "host",
        "environment": env,
    }


def absolute_paths(config, tracking_uri: str):
    """``(config, tracking_uri)`` with a relative ``sqlite:///`` store and a relative
    ``augment.noise_dir`` made absolute: the tasks' working directory in a container is
    the image's, not this one."""
    from urbansound.components.tracking_store import sqlite_path

    db = sqlite_path(tracking_uri)
    if db is not None and not db.is_absolute():
        query = tracking_uri.partition("?")[1:]
        tracking_uri = f"sqlite:///{os.path.abspath(db)}" + "".join(query)
    noise = config.augment.noise_dir
    if noise and "://" not in noise and not os.path.isabs(noise):
        config = config.override(**{"augment.noise_dir": os.path.abspath(noise)})
    return config, tracking_uri


RUN_LABEL = "org.urbansound.invocation"


def docker_runner(spec: dict, environment: dict[str, str], invocation: str):
    """kfp's ``local.DockerRunner`` for :func:`runner_spec`'s ``spec``, every container
    labelled with ``invocation`` (:func:`stop_containers`).

    Two things of kfp 2.17's DockerRunner are set right here. It gives a task's command as
    the container's *arguments*, after the image's ``ENTRYPOINT`` (``urbansound``, for
    ``docker run IMAGE ...``), where a cluster replaces the entrypoint: the entrypoint is
    ``/usr/bin/env`` here, so the command runs as it does on a cluster. And it starts
    containers with ``auto_remove`` and reads their exit code after their logs: a
    container already gone by then (a task that fails in its first second, often with
    podman) counts as a *success*; :func:`run_container` replaces its
    ``run_docker_container`` for this process."""
    from docker.types import Mount
    from kfp import local
    from kfp.local import docker_task_handler

    os.environ["DOCKER_HOST"] = spec["docker_host"]  # kfp's handler: docker.from_env()
    docker_task_handler.run_docker_container = run_container
    return local.DockerRunner(
        entrypoint=["/usr/bin/env"],
        mounts=[
            Mount(target=inside, source=here, type="bind", read_only=read_only)
            for inside, here, read_only in spec["mounts"]
        ],
        user=spec["user"],
        network_mode=spec["network_mode"],
        environment={**spec["environment"], **environment},
        labels={RUN_LABEL: invocation},
    )


def run_container(client, image: str, command: list[str], volumes: dict, **run_args) -> int:
    """A task's container, its output printed line by line, its exit code; removed after.
    Never pulls: the image was found before the run started (:func:`check_docker`)."""
    run_args.pop("auto_remove", None)
    container = client.containers.run(
        image=image,
        command=command,
        detach=True,
        stdout=True,
        stderr=True,
        volumes=volumes,
        auto_remove=False,
        **run_args,
    )
    print(f"container {container.short_id} of {image}", flush=True)
    try:
        pending = b""
        for chunk in container.logs(stream=True, follow=True):
            lines = (pending + chunk).split(b"\n")
            pending = lines.pop()
            for line in lines:
                print(line.decode(errors="replace"), flush=True)
        if pending:
            print(pending.decode(errors="replace"), flush=True)
        return int(container.wait()["StatusCode"])
    finally:
        try:
            container.remove(force=True)
        except Exception:  # already gone (an interruption removed it)
            pass


def stop_containers(spec: dict, invocation: str) -> int:
    """Stop and remove the containers of one invocation; how many.  Best effort: an
    engine that went away stops nothing."""
    try:
        client = _docker().DockerClient(base_url=spec["docker_host"], timeout=30)
        try:
            found = client.containers.list(all=True, filters={"label": f"{RUN_LABEL}={invocation}"})
            for container in found:
                container.remove(force=True)
            return len(found)
        finally:
            client.close()
    except Exception:
        return 0


def describe(setup: DockerSetup) -> str:
    """One line: the image, its size and where it runs."""
    size = f", {setup.size_bytes / 1e9:.2f} GB" if setup.size_bytes else ""
    short_id = setup.image_id.removeprefix("sha256:")[:12]
    return f"runner: docker, image {setup.image} ({short_id}{size}) via {setup.docker_host}"


if __name__ == "__main__":  # docker/build.sh: python3 pipeline/containers.py source-digest ROOT
    if len(sys.argv) == 3 and sys.argv[1] == "source-digest":
        print(source_digest(sys.argv[2]))
        sys.exit(0)
    print("usage: containers.py source-digest REPOSITORY_ROOT", file=sys.stderr)
    sys.exit(2)
