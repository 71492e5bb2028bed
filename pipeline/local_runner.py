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
import subprocess
import sys
import time
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

    The pipeline runs in a child process with its own process group, so that an
    interruption stops every task at once: kfp's local orchestrator would
    otherwise finish the queued ParallelFor tasks before letting go.

    Raises
    ------
    RuntimeError
        a task failed (its log says why).
    Interrupted
        SIGINT/SIGTERM: every task is stopped and the MLflow runs still open are
        marked KILLED.
    """
    workdir = Path(workdir).resolve()
    pipeline_root = workdir / "pipeline_root"
    pipeline_root.mkdir(parents=True, exist_ok=True)
    arguments = dict(data_root=str(Path(data_root).resolve()), config_json=config.to_json(),
                     test_folds=list(test_folds), strict=strict, beam_args=list(beam_args),
                     tracking_uri=tracking_uri, dataset_fingerprint=dataset_fingerprint)
    run_key = run_key_for(**arguments) if cache else uuid.uuid4().hex
    spec_path = pipeline_root / f".run-{run_key}.json"
    spec_path.write_text(json.dumps({"arguments": arguments, "run_key": run_key,
                                     "pipeline_root": str(pipeline_root), "cache": cache}))
    child = subprocess.Popen([sys.executable, "-m", "pipeline.local_runner", str(spec_path)],
                             start_new_session=True)
    try:
        with _signals_raise_interrupt():
            returncode = child.wait()
    except KeyboardInterrupt:
        _stop_group(child)
        if tracking_uri:
            from components import tracking

            tracking.finish_runs(tracking_uri, run_key, "KILLED")
        raise Interrupted() from None
    outcome = json.loads(spec_path.read_text()).get("outcome", {})
    if returncode != 0:
        raise RuntimeError(outcome.get("error") or f"the pipeline process exited with {returncode}")
    summary_path = _newest(pipeline_root.glob("*/evaluate*/evaluation/summary.json"))
    summary = json.loads(summary_path.read_text()) if summary_path else None
    parent = None
    if tracking_uri:
        from components import tracking

        parent = tracking.find_parent_run(tracking.client(tracking_uri), run_key)
    return LocalRun(run_key, str(pipeline_root), summary,
                    str(summary_path) if summary_path else None, parent)


def _execute(spec_path: str) -> int:
    """Child process: run the pipeline with kfp's local runner; record the outcome."""
    import logging

    from kfp import local

    from pipeline.pipeline import create_pipeline

    # kfp reports cache hits on the root logger at INFO: make them visible in the log.
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    spec = json.loads(Path(spec_path).read_text())
    arguments = spec["arguments"]
    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=spec["pipeline_root"],
               raise_on_error=True, enable_caching=spec["cache"])
    pipeline_fn = create_pipeline(gpu=False, parallelism=1,
                                  config=Config.from_json(arguments["config_json"]))
    try:
        pipeline_fn(run_key=spec["run_key"], **arguments)
        spec["outcome"] = {"ok": True}
        code = 0
    except RuntimeError as exc:  # a task failed; kfp already printed its log
        spec["outcome"] = {"ok": False, "error": str(exc)}
        code = 1
    Path(spec_path).write_text(json.dumps(spec))
    return code


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


def _newest(paths) -> Path | None:
    paths = list(paths)
    return max(paths, key=lambda p: p.stat().st_mtime) if paths else None


if __name__ == "__main__":
    sys.exit(_execute(sys.argv[1]))
