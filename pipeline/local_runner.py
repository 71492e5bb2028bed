"""Run the pipeline on this machine with kfp's local SubprocessRunner (or its DockerRunner).

Each component runs as a Python subprocess in the current environment
(``use_venv=False``: nothing is pip-installed); with ``docker`` (``run --runner docker``)
each runs in a container of the project image instead, with the dataset, the output
folder and the tracking store mounted at the same paths (:mod:`urbansound.pipeline.containers`).
Outputs land under
``<workdir>/pipeline_root``; kfp's local cache under ``<workdir>/pipeline_root/.kfp_cache``.

One run at a time per output folder: :func:`output_lock` holds an ``fcntl`` lock on
``<workdir>/.urbansound-run.lock`` for as long as the run (or any process of it)
lives; a second run on the same folder is refused with one line.

Resuming: with caching on (the default), the run key — which names the MLflow
parent run — is a hash of everything that decides what kfp's cache serves: the
output folder (the cache lives there), the compiled pipeline (every component's
code, and in every task's environment the digest of the package's sources:
``pipeline.SOURCE_DIGEST_ENV``), the dataset's listing and content (and the other files
the tasks read: noise recordings, the --init-from model), the configuration, folds and
options.  Rerunning the same command after an interruption therefore serves finished
tasks (ingest, features, finished folds) from the cache and reopens the same MLflow
parent run; another output folder or changed code is another run.

kfp records a task in its cache only after the task's process exited with
success and its outputs are written (``kfp.local.orchestrator.task_executor``;
the entry itself is written to a temporary name and renamed), and every run writes
into a new ``urbansound-<timestamp>`` folder: a task killed half-way leaves files
nobody references, never a cache entry.

Each run reads its own results: the child process records the outputs kfp
returns for each task (executed or served from the cache), and the parent reads
the summary from this run's evaluate output, never from a search of the folder.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from urbansound.config import Config, ConfigError

LOCK_FILE = ".urbansound-run.lock"
UNREACHABLE_FILE = ".tracking-unreachable"


@dataclass
class LocalRun:
    run_key: str
    pipeline_root: str
    summary: dict | None
    summary_path: str | None
    parent_run_id: str | None
    warnings: list[str] = field(default_factory=list)
    comparison_dir: str | None = None  # a study's: the comparison task's output folder
    ablation_dirs: list[str] = field(default_factory=list)  # its deformation ablations' folders


class Interrupted(KeyboardInterrupt):
    """SIGINT or SIGTERM arrived while the pipeline ran."""


class PipelineFailed(RuntimeError):
    """A task failed; ``run_key`` names the run (and its MLflow parent)."""

    def __init__(self, message: str, run_key: str, tracking_reachable: bool = True):
        super().__init__(message)
        self.run_key = run_key
        self.tracking_reachable = tracking_reachable


class OutputInUse(ConfigError):
    """Another run holds the output folder."""


def default_tracking_uri(directory: str | os.PathLike = ".") -> str:
    """``sqlite:///<abs dir>/mlflow.db``: the default store (in the working directory)."""
    return f"sqlite:///{Path(directory).resolve() / 'mlflow.db'}"


def local_tracking_uri(given: str = "") -> str:
    """Where a local run or study logs: ``given`` (``--tracking-uri``), else
    $MLFLOW_TRACKING_URI, else :func:`default_tracking_uri` of the working directory."""
    return given or os.environ.get("MLFLOW_TRACKING_URI", "") or default_tracking_uri(".")


def run_key_for(**arguments) -> str:
    """Deterministic key of a run's defining arguments (JSON-serialisable values)."""
    text = json.dumps(arguments, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def _local_pipeline(config: Config, study_json: str = "", **kwargs):
    """The pipeline function the local runner runs: ``run``'s, or a study's
    (:mod:`urbansound.pipeline.study`) when ``study_json`` is given."""
    if study_json:
        from urbansound.pipeline.study import create_study_pipeline
        from urbansound.study import Study

        return create_study_pipeline(
            Study.from_json(study_json), gpu=False, parallelism=1, **kwargs
        )
    from urbansound.pipeline.pipeline import create_pipeline

    return create_pipeline(gpu=False, parallelism=1, config=config, **kwargs)


def pipeline_fingerprint(config: Config, study_json: str = "") -> str:
    """SHA-256 of the compiled local pipeline (components' code, wiring, defaults, the
    package's source digest in every task's environment; a study's configurations): what
    kfp's cache keys on besides the inputs."""
    import tempfile

    from kfp import compiler

    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "pipeline.yaml")
        compiler.Compiler().compile(_local_pipeline(config, study_json), path)
        return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16]


def resume_key(
    arguments: dict,
    pipeline_root: str | os.PathLike,
    config: Config,
    runner: str = "",
    study_json: str = "",
) -> str:
    """The run key of a cached run: what kfp's cache keys on (the pipeline's code,
    the arguments) and where the cache lives (the output folder); ``runner``: where the
    tasks run when not here (``docker:IMAGE@ID``: another image is another run)."""
    extra = {"runner": runner} if runner else {}
    return run_key_for(
        **arguments,
        **extra,
        pipeline_root=str(Path(pipeline_root).resolve()),
        pipeline=pipeline_fingerprint(config, study_json)
        if study_json
        else pipeline_fingerprint(config),
    )


@contextlib.contextmanager
def output_lock(workdir: str | os.PathLike):
    """Hold the output folder for one run; yield the lock's file descriptor.

    Raises
    ------
    OutputInUse
        another run (or a process of it) holds the folder: one line, with its pid.
    """
    import fcntl

    workdir = Path(workdir)
    path = workdir / LOCK_FILE
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 200, 0).decode(errors="replace").strip() or "another process"
        os.close(fd)
        raise OutputInUse(
            f"{workdir}: in use by another 'urbansound run' ({holder}); wait for "
            f"it to finish or choose another --out"
        ) from None
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()}, since {time.strftime('%H:%M:%S')}".encode(), 0)
    except OSError:  # a full disk: the lock itself still holds
        pass
    try:
        yield fd
    finally:
        os.close(fd)


def run_local(
    data_root: str | os.PathLike,
    *,
    config: Config,
    workdir: str | os.PathLike,
    test_folds: Sequence[int] = (),
    tracking_uri: str = "",
    strict: bool = False,
    beam_args: Sequence[str] = (),
    dataset_fingerprint: str = "",
    digest_cache: str | os.PathLike = "",
    cache: bool = True,
    lock_fd: int | None = None,
    docker: dict | None = None,
    study_json: str = "",
) -> LocalRun:
    """Execute the whole pipeline locally and return where its results are.

    The pipeline runs in a child process with its own process group, so that an
    interruption stops every task at once: kfp's local orchestrator would
    otherwise finish the queued ParallelFor tasks before letting go.  The child
    stops its whole group if this process dies (even by SIGKILL), and keeps the
    output folder's lock (``lock_fd``) while it lives.

    ``digest_cache``: the file where the clips' content digests were remembered while
    ``dataset_fingerprint`` was computed; ingest reads it instead of hashing again.

    ``docker``: run every task in a container with kfp's DockerRunner, as
    :func:`urbansound.pipeline.containers.runner_spec` describes (None: subprocesses here).
    An interruption also stops this run's containers (the engine runs them, not this
    process group).

    ``study_json``: run a study's pipeline (:meth:`urbansound.study.Study.to_json`; its
    configurations replace ``config``, which then only names the default of nothing);
    ``comparison_dir`` of the result is its comparison's folder, ``ablation_dirs`` its
    deformation ablations' (``study deformations``).

    Raises
    ------
    PipelineFailed
        a task failed (its log says why).
    Interrupted
        SIGINT/SIGTERM: every task is stopped and the MLflow runs still open are
        marked KILLED.
    """
    from urbansound.components import runs, tracking_store

    workdir = Path(workdir).resolve()
    pipeline_root = workdir / "pipeline_root"
    pipeline_root.mkdir(parents=True, exist_ok=True)
    arguments = dict(
        data_root=str(Path(data_root).resolve()),
        **({} if study_json else {"config_json": config.to_json()}),
        test_folds=[int(f) for f in test_folds],
        strict=strict,
        beam_args=list(beam_args),
        tracking_uri=tracking_uri,
        dataset_fingerprint=dataset_fingerprint,
        digest_cache=os.fspath(digest_cache),
    )
    runner = f"docker:{docker['image']}@{docker['image_id']}" if docker else ""
    run_key = (
        resume_key(arguments, pipeline_root, config, runner, study_json)
        if cache
        else uuid.uuid4().hex
    )
    unreachable = pipeline_root / f"{UNREACHABLE_FILE}-{run_key}"
    unreachable.unlink(missing_ok=True)
    for key, value in tracking_store.TASK_HTTP_ENV.items():  # the tasks inherit this environment
        os.environ.setdefault(key, value)
    spec = {
        "arguments": arguments,
        "run_key": run_key,
        "pipeline_root": str(pipeline_root),
        "cache": cache,
        "parent_pid": os.getpid(),
        "unreachable_file": str(unreachable),
        "docker": docker,
        "invocation": uuid.uuid4().hex,
        "study": study_json,
    }
    outcome_read, outcome_write = os.pipe()
    keep = [outcome_write] + ([lock_fd] if lock_fd is not None else [])
    child = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "urbansound.pipeline.local_runner",
            json.dumps(spec),
            str(outcome_write),
        ],
        start_new_session=True,
        pass_fds=keep,
    )
    os.close(outcome_write)
    try:
        with _signals_raise_interrupt():
            returncode = child.wait()
    except KeyboardInterrupt:
        _stop_group(child)
        if docker:
            from urbansound.pipeline.containers import stop_containers

            stop_containers(docker, spec["invocation"])
        os.close(outcome_read)
        if tracking_uri and not unreachable.exists():
            runs.finish_runs(tracking_uri, run_key, "KILLED")
        raise Interrupted() from None
    with os.fdopen(outcome_read, "rb") as fh:
        raw = fh.read()
    try:
        outcome = json.loads(raw) if raw else {}
    except ValueError:
        outcome = {}
    warnings = []
    if unreachable.exists():
        warnings.append(
            f"MLflow tracking server {tracking_uri} stopped answering during the run "
            f"({unreachable.read_text().strip().split(': ', 1)[-1]}); what it missed "
            f"is in {pipeline_root}"
        )
    if returncode != 0 or not outcome.get("ok"):
        raise PipelineFailed(
            outcome.get("error") or f"the pipeline process exited with {returncode}",
            run_key,
            tracking_reachable=not unreachable.exists(),
        )
    summary_path = outcome.get("evaluation")
    summary_path = os.path.join(summary_path, "summary.json") if summary_path else None
    summary = None
    if summary_path and os.path.exists(summary_path):
        summary = json.loads(Path(summary_path).read_text())
    parent = None
    if tracking_uri and not unreachable.exists():
        try:
            found = runs.parent_run_status(tracking_uri, run_key)
            parent = found[0] if found else None
        except Exception as exc:  # the run itself is complete; say what is missing
            warnings.append(f"could not read the MLflow parent run at {tracking_uri} ({exc})")
    return LocalRun(
        run_key,
        str(pipeline_root),
        summary,
        summary_path,
        parent,
        warnings,
        comparison_dir=outcome.get("comparison"),
        ablation_dirs=outcome.get("ablations") or [],
    )


def _execute(spec_json: str, outcome_fd: int) -> int:
    """Child process: run the pipeline with kfp's local runner; report the outcome
    (``{"ok", "error", "evaluation"}`` as JSON) on ``outcome_fd``."""
    import logging

    spec = json.loads(spec_json)
    _die_with_parent(spec["parent_pid"])
    from urbansound.components.tracking_store import UNREACHABLE_FILE_ENV

    os.environ[UNREACHABLE_FILE_ENV] = spec["unreachable_file"]

    from kfp import local

    # kfp reports cache hits on the root logger at INFO: make them visible in the log.
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    arguments = spec["arguments"]
    docker = spec.get("docker")
    if docker:
        from urbansound.components.tracking_store import TASK_HTTP_ENV
        from urbansound.pipeline.containers import docker_runner

        # what the subprocesses inherit from this process, given to the containers
        environment = {key: os.environ.get(key, value) for key, value in TASK_HTTP_ENV.items()}
        environment[UNREACHABLE_FILE_ENV] = spec["unreachable_file"]
        runner = docker_runner(docker, environment, spec["invocation"])
    else:
        runner = local.SubprocessRunner(use_venv=False)
    local.init(
        runner=runner,
        pipeline_root=spec["pipeline_root"],
        raise_on_error=True,
        enable_caching=spec["cache"],
    )
    image = {"image": docker["image"]} if docker else {}
    study_json = spec.get("study") or ""
    config = Config() if study_json else Config.from_json(arguments["config_json"])
    pipeline_fn = _local_pipeline(config, study_json, **image)
    recorded = _record_task_outputs()
    root = Path(spec["pipeline_root"])
    before = {p.name for p in root.iterdir()} if root.is_dir() else set()
    try:
        pipeline_fn(run_key=spec["run_key"], **arguments)
        outcome: dict[str, object] = {"ok": True}
    except RuntimeError as exc:  # a task failed; kfp already printed its log
        outcome = {"ok": False, "error": str(exc)}
    outcome["evaluation"] = _evaluation_dir(recorded, root, before)
    outcome["comparison"] = _output_path(recorded, "compare-study", "comparison")
    outcome["ablations"] = [
        getattr(a, "path", None) or a.uri
        for name, outputs in sorted(recorded.items())
        if name.startswith("deformation-policy") and (a := (outputs or {}).get("ablation"))
    ]
    with os.fdopen(outcome_fd, "w") as fh:
        fh.write(json.dumps(outcome))
    return 0 if outcome["ok"] else 1


def _record_task_outputs() -> dict:
    """{task name: outputs} of every task of this run, executed or from the cache."""
    recorded: dict = {}
    try:
        from kfp.local.orchestrator import task_executor
    except ImportError:  # another kfp: fall back to this run's own folder
        return recorded
    original = task_executor.execute_single_task

    def recording(*args, **kwargs):
        outputs, task_status = original(*args, **kwargs)
        name = kwargs.get("task_name", args[0] if args else "")
        recorded[name] = outputs
        return outputs, task_status

    task_executor.execute_single_task = recording
    return recorded


def _output_path(recorded: dict, task_prefix: str, output: str) -> str | None:
    """Where the output ``output`` of this run's task named ``task_prefix…`` is."""
    for name, outputs in recorded.items():
        artifact = (outputs or {}).get(output) if name.startswith(task_prefix) else None
        if artifact is not None:
            return getattr(artifact, "path", None) or artifact.uri
    return None


def _evaluation_dir(recorded: dict, root: Path, before: set) -> str | None:
    for name, outputs in recorded.items():
        artifact = (outputs or {}).get("evaluation") if name.startswith("evaluate") else None
        if artifact is not None:
            return getattr(artifact, "path", None) or artifact.uri
    # fallback: the evaluate folder in the run folder this process created
    for run_dir in sorted({p.name for p in root.iterdir()} - before):
        for found in (root / run_dir).glob("evaluate*/evaluation"):
            return str(found)
    return None


def _die_with_parent(parent_pid: int) -> None:
    """Stop this process group (every task and Beam worker) when the CLI that
    started it dies, however it dies (Linux ``PR_SET_PDEATHSIG``)."""

    def stop_group(signum, frame):
        os.killpg(os.getpgrp(), signal.SIGKILL)

    signal.signal(signal.SIGTERM, stop_group)
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # not Linux
        return
    if os.getppid() != parent_pid:  # the parent died before prctl took effect
        stop_group(signal.SIGTERM, None)


class _signals_raise_interrupt:
    """Within the block, SIGTERM raises KeyboardInterrupt as SIGINT does."""

    def __enter__(self):
        def handler(signum, frame):
            raise KeyboardInterrupt()

        try:
            self._previous = signal.signal(signal.SIGTERM, handler)
        except ValueError:  # not the main thread: leave signals alone
            self._previous = None
        return self

    def __exit__(self, *exc):
        if self._previous is not None:
            signal.signal(signal.SIGTERM, self._previous)
        return False


def _stop_group(child: subprocess.Popen, grace_s: float = 10.0) -> None:
    """SIGTERM the child's process group (every task and Beam worker), SIGKILL after a grace."""
    for sig, wait in ((signal.SIGTERM, grace_s), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(child.pid, sig)
        except ProcessLookupError:
            return
        try:
            child.wait(timeout=wait)
            time.sleep(0.5)  # let the group's other members exit too
            os.killpg(child.pid, 0)  # still someone in the group?
        except ProcessLookupError:
            return
        except subprocess.TimeoutExpired:
            continue


if __name__ == "__main__":
    sys.exit(_execute(sys.argv[1], int(sys.argv[2])))
