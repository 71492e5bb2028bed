"""Run the pipeline on this machine with kfp's local SubprocessRunner.

Each component runs as a Python subprocess in the current environment
(``use_venv=False``: nothing is pip-installed).  Outputs land under
``<workdir>/pipeline_root``; MLflow under ``tracking_uri``.
"""
from __future__ import annotations

import json
import os
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


def default_tracking_uri(directory: str | os.PathLike = ".") -> str:
    """``sqlite:///<abs dir>/mlflow.db``: the default store (in the working directory)."""
    return f"sqlite:///{Path(directory).resolve() / 'mlflow.db'}"


def run_local(data_root: str | os.PathLike, *, config: Config, workdir: str | os.PathLike,
              test_folds: list[int] = (), tracking_uri: str = "", strict: bool = False,
              beam_args: list[str] = (), run_key: str | None = None) -> LocalRun:
    """Execute the whole pipeline locally and return where its results are.

    Raises
    ------
    RuntimeError
        a task failed (its log, printed above by kfp, says why).
    """
    from kfp import local

    from pipeline.pipeline import create_pipeline

    workdir = Path(workdir).resolve()
    pipeline_root = workdir / "pipeline_root"
    pipeline_root.mkdir(parents=True, exist_ok=True)
    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(pipeline_root),
               raise_on_error=True)
    run_key = run_key or uuid.uuid4().hex
    pipeline_fn = create_pipeline(gpu=False, parallelism=1, config=config)
    pipeline_fn(data_root=str(Path(data_root).resolve()), config_json=config.to_json(),
                test_folds=list(test_folds), strict=strict, beam_args=list(beam_args),
                tracking_uri=tracking_uri, run_key=run_key)
    summary_path = _newest(pipeline_root.glob("*/evaluate*/evaluation/summary.json"))
    summary = json.loads(summary_path.read_text()) if summary_path else None
    parent = None
    if tracking_uri:
        from components import tracking

        parent = tracking.find_parent_run(tracking.client(tracking_uri), run_key)
    return LocalRun(run_key, str(pipeline_root), summary,
                    str(summary_path) if summary_path else None, parent)


def _newest(paths) -> Path | None:
    paths = list(paths)
    return max(paths, key=lambda p: p.stat().st_mtime) if paths else None
