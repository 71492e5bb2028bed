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

Failures of the store are of two kinds.  A store that cannot be written (disk
full, read-only) stops the task with one line naming the path (exit code 2): the
same command resumes once space is freed.  A tracking *server* that stops
answering mid-run is reported once (a warning), and the run carries on without
MLflow: its own outputs are complete.  :func:`check_store` tells both apart before
a run starts, in seconds.
"""
from __future__ import annotations

import functools
import json
import os
import re
import sys
import tempfile
from pathlib import Path
from urllib.parse import urlparse

from urbansound.config import ConfigError

EXPERIMENT = "urbansound"
RUN_KEY_TAG = "urbansound.run_key"
FOLD_TAG = "fold"
SUPERSEDED_TAG = "urbansound.superseded_by"

PROBE_TIMEOUT_S = 5
"""How long :func:`check_store` waits for a tracking server before calling it unreachable."""
TASK_HTTP_ENV = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2", "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
                 "MLFLOW_HTTP_REQUEST_TIMEOUT": "20"}
"""MLflow's HTTP settings for the tasks of a local run (its defaults retry for ≈ 4 minutes
per call): a server that goes away costs seconds, not minutes.  Values already in the
environment win."""
UNREACHABLE_FILE_ENV = "URBANSOUND_TRACKING_UNREACHABLE_FILE"
"""Where a task notes that the tracking server stopped answering, so that the next
tasks of the same run skip MLflow instead of waiting for it again, and the
warning is printed once per run (set by the local runner)."""
_SCHEMES = {"sqlite", "http", "https", "postgresql", "mysql", "mssql", "databricks"}


class TrackingStoreError(ConfigError):
    """The tracking URI names a store that cannot be used (the message says which and why)."""


def resolve_uri(tracking_uri: str) -> str:
    """The URI to log to: the argument, else $MLFLOW_TRACKING_URI, else "" (off)."""
    return tracking_uri or os.environ.get("MLFLOW_TRACKING_URI", "")


def sqlite_path(tracking_uri: str) -> Path | None:
    """The database file of a ``sqlite:///`` URI (None for other stores)."""
    if tracking_uri.startswith("sqlite:///"):
        return Path(tracking_uri[len("sqlite:///"):].split("?", 1)[0])
    return None


def default_artifact_location(tracking_uri: str) -> str | None:
    """For a sqlite store, ``mlartifacts/`` beside the database file (MLflow would
    otherwise put artifacts under the *current* directory of whichever process logs)."""
    db_path = sqlite_path(tracking_uri)
    if db_path is not None:
        return (db_path.parent / "mlartifacts").resolve().as_uri()
    return None


def store_folder(tracking_uri: str) -> Path | None:
    """The local folder a store writes to (database and artifacts), None if remote."""
    db_path = sqlite_path(tracking_uri)
    return db_path.resolve().parent if db_path is not None else None


def check_store(tracking_uri: str, timeout_s: float = PROBE_TIMEOUT_S) -> None:
    """Check that a run could log to ``tracking_uri``, in seconds.

    A sqlite store's folder must be writable and its file, if any, a database;
    a server must answer MLflow's API within ``timeout_s`` (no retries).  A new
    sqlite store is created here (with MLflow's schema).

    Raises
    ------
    TrackingStoreError
        ``"<uri>: <reason>"``, one line.
    """
    scheme = urlparse(tracking_uri).scheme.split("+", 1)[0].lower()
    if scheme in ("", "file"):
        if os.environ.get("MLFLOW_ALLOW_FILE_STORE", "").lower() not in ("1", "true"):
            raise TrackingStoreError(
                f"{tracking_uri}: not a tracking store URI (a plain path means MLflow's file "
                f"store, which MLflow 3 no longer supports); use sqlite:///PATH/mlflow.db or "
                f"http://HOST:PORT")
    elif scheme not in _SCHEMES:
        raise TrackingStoreError(
            f"{tracking_uri}: unsupported scheme {scheme + '://'!r}; use sqlite:///PATH/mlflow.db, "
            f"http(s)://HOST:PORT or a database URI (postgresql://, mysql://, mssql://)")
    if scheme == "sqlite":
        _check_sqlite_file(tracking_uri)
    saved = {k: os.environ.get(k) for k in ("MLFLOW_HTTP_REQUEST_MAX_RETRIES",
                                            "MLFLOW_HTTP_REQUEST_TIMEOUT")}
    os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] = "0"
    os.environ["MLFLOW_HTTP_REQUEST_TIMEOUT"] = str(max(1, int(timeout_s)))
    import logging

    import mlflow  # noqa: F401 - configures its loggers on import: quiet them after that

    mlflow_logger = logging.getLogger("mlflow")
    level = mlflow_logger.level
    mlflow_logger.setLevel(max(level, logging.WARNING))  # "Creating initial MLflow database tables"
    try:
        client(tracking_uri).search_experiments(max_results=1)
    except Exception as exc:
        if scheme in ("http", "https") and _unreachable_error(exc):
            raise TrackingStoreError(f"{tracking_uri}: tracking server unreachable "
                                     f"({_short_reason(exc)})") from None
        described = _storage_error(exc, tracking_uri)
        raise TrackingStoreError(f"{tracking_uri}: {described or _short_reason(exc)}") from None
    finally:
        mlflow_logger.setLevel(level)
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _check_sqlite_file(tracking_uri: str) -> None:
    import sqlite3

    db_path = sqlite_path(tracking_uri)
    if db_path is None or str(db_path) in ("", ":memory:"):
        raise TrackingStoreError(f"{tracking_uri}: an in-memory sqlite store cannot be shared by "
                                 f"the pipeline's tasks; use sqlite:///PATH/mlflow.db")
    folder = db_path.parent
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise TrackingStoreError(f"{tracking_uri}: {existing} is not a folder")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".write-test", dir=folder)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise TrackingStoreError(f"{tracking_uri}: cannot write in {folder} "
                                 f"({exc.strerror or exc})") from None
    if db_path.exists() or db_path.is_symlink():
        if not db_path.is_file():
            raise TrackingStoreError(f"{tracking_uri}: {db_path} is not a file")
        try:
            with open(db_path, "rb+"):
                pass
            con = sqlite3.connect(f"file:{db_path}?mode=rw", uri=True, timeout=10)
            try:
                con.execute("SELECT count(*) FROM sqlite_master").fetchone()
            finally:
                con.close()
        except OSError as exc:
            raise TrackingStoreError(f"{tracking_uri}: cannot open {db_path} for writing "
                                     f"({exc.strerror or exc})") from None
        except sqlite3.Error as exc:
            raise TrackingStoreError(f"{tracking_uri}: {db_path} is not a usable sqlite "
                                     f"database ({exc})") from None


def _short_reason(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    errno_text = re.search(r"\[Errno -?\d+\] ([^'\")\]]+)", text)
    if errno_text:
        return errno_text.group(1).strip()
    if "timed out" in text.lower():
        return f"no answer within {os.environ.get('MLFLOW_HTTP_REQUEST_TIMEOUT', '?')} s"
    text = re.sub(r"\s*See https?://\S+", "", text)
    return (text[:200] + "…") if len(text) > 200 else (text or type(exc).__name__)


_UNREACHABLE_TEXT = re.compile(
    r"(Max retries exceeded|Failed to establish a new connection|Connection refused|"
    r"Connection aborted|Connection reset|RemoteDisconnected|Read timed out|timed out|"
    r"Name or service not known|failed with error code 50[234])", re.IGNORECASE)


def _unreachable_error(exc: BaseException) -> bool:
    try:
        import requests

        network = (requests.exceptions.ConnectionError, requests.exceptions.Timeout)
    except ImportError:  # pragma: no cover - requests comes with mlflow
        network = ()
    item, seen = exc, set()
    while item is not None and id(item) not in seen:
        seen.add(id(item))
        if (network and isinstance(item, network)) or _UNREACHABLE_TEXT.search(str(item)):
            return True
        item = item.__cause__ or item.__context__
    return False


def _storage_error(exc: BaseException, tracking_uri: str) -> str | None:
    from components.errors import storage_error

    db_path = sqlite_path(tracking_uri)
    return storage_error(exc, default_path=str(db_path) if db_path else "")


_broken: set[str] = set()  # stores this process found full/unwritable: no more calls


def _unreachable_marker() -> Path | None:
    path = os.environ.get(UNREACHABLE_FILE_ENV)
    return Path(path) if path else None


def tracking_unavailable(tracking_uri: str) -> bool:
    """True once this run found the store unusable (later calls are skipped)."""
    marker = _unreachable_marker()
    return tracking_uri in _broken or bool(marker and marker.exists())


def _report_unreachable(tracking_uri: str, exc: BaseException) -> None:
    _broken.add(tracking_uri)
    marker = _unreachable_marker()
    first = True
    if marker is not None:
        try:
            with open(marker, "x") as fh:
                fh.write(f"{tracking_uri}: {_short_reason(exc)}\n")
        except FileExistsError:
            first = False
        except OSError:
            pass
    if first:
        print(f"warning: MLflow tracking server {tracking_uri} stopped answering "
              f"({_short_reason(exc)}); the run goes on without MLflow and keeps its own "
              f"outputs", file=sys.stderr, flush=True)


def _guarded(tracking_uri: str, call, default=None):
    """Run ``call()`` against the store: an unreachable server is reported once and
    ``default`` returned; a full or read-only store ends the task with one line
    (exit code 2); anything else propagates."""
    if tracking_unavailable(tracking_uri):
        return default
    try:
        return call()
    except Exception as exc:
        if urlparse(tracking_uri).scheme in ("http", "https") and _unreachable_error(exc):
            _report_unreachable(tracking_uri, exc)
            return default
        described = _storage_error(exc, tracking_uri)
        if described is None:
            raise
        _broken.add(tracking_uri)
        from components.errors import USER_ERROR_EXIT

        print(f"urbansound tracking: error: cannot write {described} (MLflow store "
              f"{tracking_uri})", file=sys.stderr, flush=True)
        raise SystemExit(USER_ERROR_EXIT) from None


def _tolerant(default=None):
    """Decorator: :func:`_guarded` around a function whose first argument is the URI."""
    def wrap(fn):
        @functools.wraps(fn)
        def inner(tracking_uri, *args, **kwargs):
            return _guarded(tracking_uri, lambda: fn(tracking_uri, *args, **kwargs), default)
        return inner
    return wrap


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
    with open(str(sqlite_path(tracking_uri)) + ".lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            mlflow_client = MlflowClient(tracking_uri=tracking_uri)
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
    _initialised.add(tracking_uri)
    return mlflow_client


EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
EXPERIMENT_KIND = "custom_model_development"
"""MLflow 3's UI opens an experiment with this tag on its model-training view (runs
table), not on the GenAI overview (traces, token usage)."""


def experiment_id(mlflow_client, tracking_uri: str, name: str = EXPERIMENT) -> str:
    """Get or create the experiment, tagged as model development (tolerates a concurrent
    creator)."""
    found = mlflow_client.get_experiment_by_name(name)
    if found is not None:
        if found.tags.get(EXPERIMENT_KIND_TAG) != EXPERIMENT_KIND:
            mlflow_client.set_experiment_tag(found.experiment_id, EXPERIMENT_KIND_TAG,
                                             EXPERIMENT_KIND)
        return found.experiment_id
    try:
        return mlflow_client.create_experiment(
            name, artifact_location=default_artifact_location(tracking_uri),
            tags={EXPERIMENT_KIND_TAG: EXPERIMENT_KIND})
    except Exception:  # another run created it in between
        found = mlflow_client.get_experiment_by_name(name)
        if found is None:
            raise
        return found.experiment_id


def parent_run_name(config, data_root: str) -> str:
    """What a pipeline run is, as its MLflow name: ``urbannet · no augmentation · UrbanSound8K``
    (model, deformations or their set, the data folder), not MLflow's random words."""
    from urbansound.augment import DEFORMATION_SETS

    deformations = config.augment.all_deformations()
    named = [name for name, members in DEFORMATION_SETS.items() if members == deformations]
    augmentation = (named[0] if named else "+".join(deformations)) if deformations \
        else "no augmentation"
    seeds = f" · {len(config.train.seeds)} seeds" if len(config.train.seeds) > 1 else ""
    data = os.path.basename(os.path.normpath(data_root)) or data_root
    return f"{config.train.model} · {augmentation}{seeds} · {data}"


@_tolerant(default="")
def start_parent_run(tracking_uri: str, run_key: str, params: dict, run_name: str = "") -> str:
    """Create the pipeline's parent run (status RUNNING); return its id ("" if the
    server is unreachable).

    The run key names one pipeline run (output folder, configuration, data, code).
    A parent with the same key that was interrupted or failed is reopened (a
    resumed run), and fold runs it left RUNNING are marked KILLED (only one
    process runs a key at a time: the output folder is locked).  A FINISHED
    parent is never reopened: its id is returned unchanged, and as every task of
    a finished run comes from kfp's cache, nothing is logged to it again.
    """
    c = client(tracking_uri)
    existing = _find_parent(c, run_key)
    if existing is not None:
        run_id = existing.info.run_id
        if existing.info.status == "FINISHED":
            print(f"MLflow parent run {run_id} finished earlier; it is not reopened")
            return run_id
        _close_children(c, existing, "KILLED", statuses=("RUNNING",))
        c.update_run(run_id, status="RUNNING")
        return run_id
    run = c.create_run(experiment_id(c, tracking_uri), run_name=run_name or None,
                       tags={RUN_KEY_TAG: run_key})
    log_params(c, run.info.run_id, params)
    return run.info.run_id


def _find_parent(mlflow_client, run_key: str):
    exp = mlflow_client.get_experiment_by_name(EXPERIMENT)
    if exp is None:
        return None
    runs = mlflow_client.search_runs([exp.experiment_id],
                                     filter_string=f"tags.`{RUN_KEY_TAG}` = '{run_key}'",
                                     max_results=1)
    return runs[0] if runs else None


def find_parent_run(mlflow_client, run_key: str) -> str | None:
    found = _find_parent(mlflow_client, run_key)
    return found.info.run_id if found is not None else None


def parent_run_status(tracking_uri: str, run_key: str) -> tuple[str, str] | None:
    """(run id, status) of the parent run with this key, None if there is none."""
    found = _find_parent(client(tracking_uri), run_key)
    return (found.info.run_id, found.info.status) if found is not None else None


def log_params(mlflow_client, run_id: str, params: dict) -> None:
    from mlflow.entities import Param

    logged = mlflow_client.get_run(run_id).data.params
    items = [Param(str(k), json.dumps(v) if isinstance(v, (list, dict)) else str(v))
             for k, v in sorted(params.items())]
    items = [p for p in items if logged.get(p.key) != p.value]  # a resumed run: no repeats
    for start in range(0, len(items), 100):  # log_batch takes at most 100 params
        mlflow_client.log_batch(run_id, params=items[start:start + 100])


def _log_metric_once(mlflow_client, run_id: str, key: str, value: float, logged: dict) -> None:
    """Log a metric unless the run already has that value (a resumed task)."""
    if key in logged and abs(float(logged[key]) - float(value)) <= 1e-12:
        return
    mlflow_client.log_metric(run_id, key, value)


def _close_children(mlflow_client, parent, status: str, statuses=("RUNNING",)) -> None:
    for child in mlflow_client.search_runs(
            [parent.info.experiment_id],
            filter_string=f"tags.mlflow.parentRunId = '{parent.info.run_id}'"):
        if child.info.status in statuses:
            mlflow_client.set_terminated(child.info.run_id, status)


@_tolerant(default=None)
def finish_runs(tracking_uri: str, run_key: str, status: str) -> str | None:
    """End the parent run and any nested run still RUNNING with ``status``
    (FINISHED, FAILED or KILLED).  Returns the parent id, None if there is none."""
    c = client(tracking_uri)
    parent = _find_parent(c, run_key)
    if parent is None:
        return None
    _close_children(c, parent, status)
    if c.get_run(parent.info.run_id).info.status == "RUNNING":
        c.set_terminated(parent.info.run_id, status)
    return parent.info.run_id


@_tolerant(default=None)
def end_run(tracking_uri: str, run_id: str, status: str) -> None:
    """Mark one run ``status`` (e.g. a fold run that failed)."""
    client(tracking_uri).set_terminated(run_id, status)


@_tolerant(default="")
def start_fold_run(tracking_uri: str, parent_run_id: str, fold: int, params: dict) -> str:
    """Create the nested run of one test fold; return its id ("" if the server is
    unreachable).

    A fold run of the same parent and fold that an earlier attempt left RUNNING
    is marked KILLED; one that FINISHED (the task was stopped after logging but
    before kfp recorded it) is superseded by the new one (tagged and deleted), so
    each fold appears once.
    """
    c = client(tracking_uri)
    exp = c.get_run(parent_run_id).info.experiment_id
    earlier = c.search_runs([exp], filter_string=f"tags.mlflow.parentRunId = '{parent_run_id}' "
                                                 f"and tags.{FOLD_TAG} = '{fold}'")
    run = c.create_run(exp, run_name=f"fold-{fold}", tags={
        "mlflow.parentRunId": parent_run_id, FOLD_TAG: str(fold)})
    for old in earlier:
        if old.info.status == "RUNNING":
            c.set_terminated(old.info.run_id, "KILLED")
        elif old.info.status == "FINISHED":
            c.set_tag(old.info.run_id, SUPERSEDED_TAG, run.info.run_id)
            c.delete_run(old.info.run_id)
    log_params(c, run.info.run_id, params)
    return run.info.run_id


def epoch_logger(tracking_uri: str, run_id: str):
    """A Keras callback logging every epoch's metrics (loss, accuracy, val_*) to a run."""
    import keras
    from mlflow.entities import Metric

    class _EpochLogger(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            import time

            now = int(time.time() * 1000)
            metrics = [Metric(k, float(v), now, epoch) for k, v in (logs or {}).items()]
            _guarded(tracking_uri, lambda: client(tracking_uri).log_batch(run_id,
                                                                          metrics=metrics))

    return _EpochLogger()


@_tolerant(default=None)
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


@_tolerant(default=None)
def log_summary(tracking_uri: str, parent_run_id: str, summary: dict, eval_dir: str) -> None:
    """Summary metrics and evaluation files on the parent run (a value it already has
    is not logged again)."""
    c = client(tracking_uri)
    logged = c.get_run(parent_run_id).data.metrics
    for key in ("mean", "median", "std"):
        _log_metric_once(c, parent_run_id, f"accuracy_{key}", summary[key], logged)
    for name, value in (summary.get("per_class") or {}).items():
        if value is not None:
            _log_metric_once(c, parent_run_id, f"accuracy_class_{name}", value, logged)
    for name, value in (summary.get("by_salience") or {}).items():
        _log_metric_once(c, parent_run_id, f"accuracy_{name}", value["accuracy"], logged)
    for name in sorted(os.listdir(eval_dir)):
        c.log_artifact(parent_run_id, os.path.join(eval_dir, name))


@_tolerant(default=None)
def log_ingest(tracking_uri: str, parent_run_id: str, dataset_hash: str, accepted: int,
               rejected: int, report_path: str, data_root: str = "") -> None:
    """Ingest's numbers on the parent run, and the data as an MLflow dataset input (name,
    digest, clip count), so that the runs table's Dataset column says what it trained on."""
    from mlflow.entities import Dataset, DatasetInput, InputTag

    c = client(tracking_uri)
    log_params(c, parent_run_id, {"dataset_hash": dataset_hash})
    if data_root and not c.get_run(parent_run_id).inputs.dataset_inputs:
        dataset = Dataset(name=os.path.basename(os.path.normpath(data_root)) or data_root,
                          digest=dataset_hash[:16], source_type="local",
                          source=json.dumps({"uri": data_root}),
                          profile=json.dumps({"clips": accepted, "rejected": rejected}))
        c.log_inputs(parent_run_id, datasets=[DatasetInput(
            dataset, tags=[InputTag("mlflow.data.context", "training")])])
    logged = c.get_run(parent_run_id).data.metrics
    _log_metric_once(c, parent_run_id, "clips_accepted", accepted, logged)
    _log_metric_once(c, parent_run_id, "clips_rejected", rejected, logged)
    c.log_artifact(parent_run_id, report_path)


def _model_requirements() -> list[str]:
    from importlib.metadata import version

    return [f"{name}=={version(name)}" for name in ("tensorflow", "keras", "numpy")]
