"""Run the pipeline on this machine with kfp's local SubprocessRunner.

Each component runs as a Python subprocess in the current environment
(``use_venv=False``: nothing is pip-installed).  Outputs land under
``<workdir>/pipeline_root``; kfp's local cache under ``<workdir>/pipeline_root/.kfp_cache``.

Resuming: with caching on (the default), the run key — which names the MLflow
parent run — is a hash of everything that defines the run (dataset listing,
configuration, folds, options).  Rerunning the same command after an
interruption therefore serves finished tasks (ingest, features, finished folds)
from the cache and reopens the same MLflow parent run.
"""
from __future__ import annotations

import hashlib
import json
import os
import signal
import uuid
from dataclasses import dataclass
from pathlib import Path

from urbansound.config import Config


@dataclass
class LocalRun:
    run_key: str
    pipeline_root: str
    summary: dict | None
    summary_path: str | None
    parent_run_id: str | None


class Interrupted(KeyboardInterrupt):
    """SIGINT or SIGTERM arrived while the pipeline ran."""


def default_tracking_uri(directory: str | os.PathLike = ".") -> str:
    """``sqlite:///<abs dir>/mlflow.db``: the default store (in the working directory)."""
    return f"sqlite:///{Path(directory).resolve() / 'mlflow.db'}"


def run_key_for(**arguments) -> str:
    """Deterministic key of a run's defining arguments (JSON-serialisable values)."""
    text = json.dumps(arguments, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def run_local(data_root: str | os.PathLike, *, config: Config, workdir: str | os.PathLike,
              test_folds: list[int] = (), tracking_uri: str = "", strict: bool = False,
              beam_args: list[str] = (), dataset_fingerprint: str = "",
              cache: bool = True) -> LocalRun:
    """Execute the whole pipeline locally and return where its results are.

    Raises
    ------
    RuntimeError
        a task failed (its log, printed above by kfp, says why).
    Interrupted
        SIGINT/SIGTERM: the MLflow runs still open are marked KILLED first.
    """
    from kfp import local

    from pipeline.pipeline import create_pipeline

    workdir = Path(workdir).resolve()
    pipeline_root = workdir / "pipeline_root"
    pipeline_root.mkdir(parents=True, exist_ok=True)
    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(pipeline_root),
               raise_on_error=True, enable_caching=cache)
    data_root = str(Path(data_root).resolve())
    arguments = dict(data_root=data_root, config_json=config.to_json(),
                     test_folds=list(test_folds), strict=strict, beam_args=list(beam_args),
                     tracking_uri=tracking_uri, dataset_fingerprint=dataset_fingerprint)
    run_key = run_key_for(**arguments) if cache else uuid.uuid4().hex
    pipeline_fn = create_pipeline(gpu=False, parallelism=1, config=config)
    try:
        with _sigterm_as_interrupt():
            pipeline_fn(run_key=run_key, **arguments)
    except KeyboardInterrupt:
        _terminate_children()
        if tracking_uri:
            from components import tracking

            tracking.finish_runs(tracking_uri, run_key, "KILLED")
        raise Interrupted() from None
    summary_path = _newest(pipeline_root.glob("*/evaluate*/evaluation/summary.json"))
    summary = json.loads(summary_path.read_text()) if summary_path else None
    parent = None
    if tracking_uri:
        from components import tracking

        parent = tracking.find_parent_run(tracking.client(tracking_uri), run_key)
    return LocalRun(run_key, str(pipeline_root), summary,
                    str(summary_path) if summary_path else None, parent)


class _sigterm_as_interrupt:
    """Within the block, SIGTERM raises KeyboardInterrupt like SIGINT does."""

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


def _terminate_children() -> None:
    """SIGTERM every descendant process (the task subprocesses and their Beam workers)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = entry.read_text().rsplit(")", 1)[1].split()
            children.setdefault(int(fields[1]), []).append(int(entry.parent.name))
        except (OSError, IndexError, ValueError):
            continue
    stack, descendants = [os.getpid()], []
    while stack:
        for child in children.get(stack.pop(), []):
            descendants.append(child)
            stack.append(child)
    for pid in descendants:
        try:
            os.kill(pid, signal.SIGTERM)
        except OSError:
            pass


def _newest(paths) -> Path | None:
    paths = list(paths)
    return max(paths, key=lambda p: p.stat().st_mtime) if paths else None
