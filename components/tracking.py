"""MLflow bookkeeping for the pipeline's components (the only module that imports mlflow).

Layout of one pipeline run in MLflow (experiment ``urbansound``):

- a parent run, tagged ``urbansound.run_key=<key>``, with the whole configuration
  as params, the ingest report, and at the end ``accuracy_mean/median/std`` and
  ``summary.json``, ``confusion_matrix.json``, ``confusion_matrix.png``;
- one nested run per test fold (tags ``fold=<k>``, ``mlflow.parentRunId``) with
  per-epoch ``loss, accuracy, val_loss, val_accuracy``, ``test_accuracy``, the
  fold's confusion matrix and the trained Keras model.

An empty tracking URI means ``MLFLOW_TRACKING_URI`` from the environment, and
tracking is off where that is unset too (KFP's own metrics still carry the numbers).
"""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

EXPERIMENT = "urbansound"
RUN_KEY_TAG = "urbansound.run_key"
FOLD_TAG = "fold"


def resolve_uri(tracking_uri: str) -> str:
    """The URI to log to: the argument, else $MLFLOW_TRACKING_URI, else "" (off)."""
    return tracking_uri or os.environ.get("MLFLOW_TRACKING_URI", "")


def default_artifact_location(tracking_uri: str) -> str | None:
    """For a sqlite store, ``mlartifacts/`` beside the database file (MLflow would
    otherwise put artifacts under the *current* directory of whichever process logs)."""
    if tracking_uri.startswith("sqlite:///"):
        db_path = Path(tracking_uri[len("sqlite:///"):])
        return (db_path.parent / "mlartifacts").resolve().as_uri()
    return None


_initialised: set[str] = set()


def client(tracking_uri: str):
    """An MlflowClient for the URI (also made the process's current tracking URI).

    A new sqlite store is created under an exclusive file lock: two runs starting
    at once on a fresh database would otherwise both run MLflow's schema
    migrations and one would fail ("duplicate column name").
    """
    import mlflow
    from mlflow.tracking import MlflowClient

    mlflow.set_tracking_uri(tracking_uri)
    if not tracking_uri.startswith("sqlite:///") or tracking_uri in _initialised:
        return MlflowClient(tracking_uri=tracking_uri)
    import fcntl

    # The store (and its schema migration) is built when the client is constructed.
    with open(tracking_uri[len("sqlite:///"):] + ".lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            mlflow_client = MlflowClient(tracking_uri=tracking_uri)
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
    _initialised.add(tracking_uri)
    return mlflow_client


def experiment_id(mlflow_client, tracking_uri: str, name: str = EXPERIMENT) -> str:
    """Get or create the experiment (tolerates a concurrent creator)."""
    found = mlflow_client.get_experiment_by_name(name)
    if found is not None:
        return found.experiment_id
    try:
        return mlflow_client.create_experiment(
            name, artifact_location=default_artifact_location(tracking_uri))
    except Exception:  # another run created it in between
        found = mlflow_client.get_experiment_by_name(name)
        if found is None:
            raise
        return found.experiment_id


def start_parent_run(tracking_uri: str, run_key: str, params: dict, run_name: str = "") -> str:
    """Create the pipeline's parent run (status RUNNING); return its id."""
    c = client(tracking_uri)
    existing = find_parent_run(c, run_key)
    if existing is not None:  # a resumed run (same run key): reopen the same parent
        c.update_run(existing, status="RUNNING")
        return existing
    run = c.create_run(experiment_id(c, tracking_uri), run_name=run_name or None,
                       tags={RUN_KEY_TAG: run_key})
    log_params(c, run.info.run_id, params)
    return run.info.run_id


def find_parent_run(mlflow_client, run_key: str) -> str | None:
    exp = mlflow_client.get_experiment_by_name(EXPERIMENT)
    if exp is None:
        return None
    runs = mlflow_client.search_runs([exp.experiment_id],
                                     filter_string=f"tags.`{RUN_KEY_TAG}` = '{run_key}'",
                                     max_results=1)
    return runs[0].info.run_id if runs else None


def log_params(mlflow_client, run_id: str, params: dict) -> None:
    from mlflow.entities import Param

    items = [Param(str(k), json.dumps(v) if isinstance(v, (list, dict)) else str(v))
             for k, v in sorted(params.items())]
    for start in range(0, len(items), 100):  # log_batch takes at most 100 params
        mlflow_client.log_batch(run_id, params=items[start:start + 100])


def finish_runs(tracking_uri: str, run_key: str, status: str) -> str | None:
    """End the parent run and any nested run still RUNNING with ``status``
    (FINISHED, FAILED or KILLED).  Returns the parent id, None if there is none."""
    c = client(tracking_uri)
    parent = find_parent_run(c, run_key)
    if parent is None:
        return None
    exp = c.get_run(parent).info.experiment_id
    for child in c.search_runs([exp], filter_string=f"tags.mlflow.parentRunId = '{parent}'"):
        if child.info.status == "RUNNING":
            c.set_terminated(child.info.run_id, status)
    if c.get_run(parent).info.status == "RUNNING":
        c.set_terminated(parent, status)
    return parent


def start_fold_run(tracking_uri: str, parent_run_id: str, fold: int, params: dict) -> str:
    """Create the nested run of one test fold; return its id."""
    c = client(tracking_uri)
    exp = c.get_run(parent_run_id).info.experiment_id
    run = c.create_run(exp, run_name=f"fold-{fold}", tags={
        "mlflow.parentRunId": parent_run_id, FOLD_TAG: str(fold)})
    log_params(c, run.info.run_id, params)
    return run.info.run_id


def epoch_logger(tracking_uri: str, run_id: str):
    """A Keras callback logging every epoch's metrics (loss, accuracy, val_*) to a run."""
    import keras
    from mlflow.entities import Metric

    c = client(tracking_uri)

    class _EpochLogger(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            import time

            now = int(time.time() * 1000)
            metrics = [Metric(k, float(v), now, epoch) for k, v in (logs or {}).items()]
            c.log_batch(run_id, metrics=metrics)

    return _EpochLogger()


def log_fold_result(tracking_uri: str, run_id: str, result, model_path: str) -> None:
    """Test metrics, confusion matrix, curves and the model of one fold; ends the run."""
    import keras
    import mlflow

    from urbansound.metrics import plot_confusion_matrix, plot_history

    c = client(tracking_uri)
    c.log_metric(run_id, "test_accuracy", result.test_accuracy)
    c.log_metric(run_id, "test_loss", result.test_loss)
    c.log_metric(run_id, "best_epoch", result.best_epoch)
    for key in ("validation_fold", "n_train", "n_validation", "n_test", "parameters"):
        c.set_tag(run_id, key, str(getattr(result, key)))
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        (tmp / "confusion_matrix.json").write_text(json.dumps(
            {"classes": result.class_names, "counts": result.confusion_matrix}))
        plot_confusion_matrix(result.confusion_matrix, result.class_names,
                              tmp / "confusion_matrix.png", title=f"test fold {result.test_fold}")
        plot_history(result.history, tmp / "curves.png", title=f"test fold {result.test_fold}")
        (tmp / "fold_result.json").write_text(result.to_json())
        for name in ("confusion_matrix.json", "confusion_matrix.png", "curves.png",
                     "fold_result.json"):
            c.log_artifact(run_id, str(tmp / name))
    import numpy as np
    from mlflow.models import infer_signature

    model = keras.models.load_model(model_path)
    example = np.zeros((1, *model.input_shape[1:]), np.float32)  # (1, n_mels, n_frames, 1) dB
    signature = infer_signature(example, model.predict(example, verbose=0))
    with mlflow.start_run(run_id=run_id):
        # Explicit requirements: inferring them would load the model in a subprocess.
        mlflow.keras.log_model(model, name="model", signature=signature,
                               pip_requirements=_model_requirements())
    c.set_terminated(run_id, "FINISHED")


def log_summary(tracking_uri: str, parent_run_id: str, summary: dict, eval_dir: str) -> None:
    """Summary metrics and evaluation files on the parent run."""
    c = client(tracking_uri)
    for key in ("mean", "median", "std"):
        c.log_metric(parent_run_id, f"accuracy_{key}", summary[key])
    for name in sorted(os.listdir(eval_dir)):
        c.log_artifact(parent_run_id, os.path.join(eval_dir, name))


def log_ingest(tracking_uri: str, parent_run_id: str, dataset_hash: str, accepted: int,
               rejected: int, report_path: str) -> None:
    c = client(tracking_uri)
    log_params(c, parent_run_id, {"dataset_hash": dataset_hash})
    c.log_metric(parent_run_id, "clips_accepted", accepted)
    c.log_metric(parent_run_id, "clips_rejected", rejected)
    c.log_artifact(parent_run_id, report_path)


def _model_requirements() -> list[str]:
    from importlib.metadata import version

    return [f"{name}=={version(name)}" for name in ("tensorflow", "keras", "numpy")]
