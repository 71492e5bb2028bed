"""Where ``urbansound predict`` gets its model: a local file or folder, or an MLflow URI.

A local source is a ``model.keras`` file, or a folder holding exactly one (a train
task's output folder, or any folder above it with a single fold model).  It carries
no configuration, so :class:`~urbansound.config.Config` defaults apply.

An MLflow source is ``runs:/<run id>/model``, ``models:/<model id>`` (MLflow 3's
logged models), ``models:/<name>@<alias>`` or ``models:/<name>/<version>``.  The
fold runs the pipeline logs carry the whole configuration as params
(``audio.pad_mode``, ``features.n_mels``, ...; see ``components/runs.py``), so
the model is used with the configuration it was trained with.  mlflow is imported
only here and only for such a URI.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from components.runs import config_from_params  # noqa: F401 - also this module's API
from urbansound.config import Config, ConfigError
from urbansound.training import CONFIG_FILE
from urbansound.training import MODEL_FILE

MLFLOW_SCHEMES = ("runs:/", "models:/")


class ModelSourceError(ConfigError):
    """The model cannot be found or loaded (``str()``: ``"<source>: <reason>"``, one line)."""


@dataclass
class LoadedModel:
    """A Keras model and how to feed it.

    model : keras.Model taking (batch, n_mels, n_frames, 1) dB log-mels.
    config : the configuration it was trained with, or Config() defaults.
    source : the argument as given.  config_source : where ``config`` came from.
    """

    model: object
    config: Config
    source: str
    config_source: str


def is_mlflow_uri(source: str) -> bool:
    return source.startswith(MLFLOW_SCHEMES)


def find_local_model(source: str | os.PathLike) -> Path:
    """The ``model.keras`` file that ``source`` names (itself, or the one file of that
    name under a folder).  Raises :class:`ModelSourceError`."""
    path = Path(source)
    if path.is_file():
        return path
    if path.is_dir():
        found = sorted(path.rglob(MODEL_FILE))
        if len(found) == 1:
            return found[0]
        if not found:
            raise ModelSourceError(f"{source}: no {MODEL_FILE} in this folder")
        names = ", ".join(str(p.relative_to(path)) for p in found[:3])
        raise ModelSourceError(f"{source}: {len(found)} {MODEL_FILE} files in this folder "
                               f"({names}{', ...' if len(found) > 3 else ''}); name one")
    raise ModelSourceError(f"{source}: no such model file or folder, and not an MLflow URI "
                           f"(runs:/<run>/model, models:/<id>, models:/<name>@<alias>)")


def load_model(source: str, *, tracking_uri: str = "") -> LoadedModel:
    """Load the model ``source`` names, with its configuration where it has one.

    Raises
    ------
    ModelSourceError
        one line naming the source and the reason.
    """
    if is_mlflow_uri(source):
        return _load_mlflow(source, tracking_uri)
    path = find_local_model(source)
    try:
        import keras

        model = keras.models.load_model(path, compile=False)
    except Exception as exc:  # noqa: BLE001 - any failure of the file is the user's input
        raise ModelSourceError(f"{path}: not a loadable Keras model ({_first_line(exc)})") from None
    beside = path.parent / CONFIG_FILE
    if beside.is_file():  # train_fold writes the configuration next to the model
        return LoadedModel(model, Config.from_json(beside.read_text()), source, str(beside))
    return LoadedModel(model, Config(), source, f"defaults (no {CONFIG_FILE} beside the model)")


def _load_mlflow(source: str, tracking_uri: str) -> LoadedModel:
    from components.tracking_store import sqlite_path

    uri = tracking_uri or os.environ.get("MLFLOW_TRACKING_URI", "")
    if not uri:
        from pipeline.local_runner import default_tracking_uri

        uri = default_tracking_uri(".")
    db = sqlite_path(uri)
    if db is not None and not db.is_file():  # MLflow would create an empty store there
        raise ModelSourceError(f"{source}: no MLflow store at {db} (give --tracking-uri)")
    import logging

    import mlflow

    logging.getLogger("mlflow").setLevel(logging.ERROR)
    mlflow.set_tracking_uri(uri)
    try:
        info = mlflow.models.get_model_info(source)
    except Exception as exc:  # noqa: BLE001 - MlflowException, OSError: not found
        raise ModelSourceError(f"{source}: not found in {uri} ({_first_line(exc)})") from None
    if "keras" not in (info.flavors or {}):
        raise ModelSourceError(f"{source}: not a Keras model (flavors: "
                               f"{', '.join(sorted(info.flavors or {}))})")
    try:
        model = mlflow.keras.load_model(source)
    except Exception as exc:  # noqa: BLE001
        raise ModelSourceError(f"{source}: cannot load the model ({_first_line(exc)})") from None
    config, where = Config(), "defaults (the model's run has no configuration params)"
    if info.run_id:
        try:
            params = mlflow.MlflowClient(uri).get_run(info.run_id).data.params
        except Exception as exc:  # noqa: BLE001 - a deleted run, say: defaults, and say so
            where = f"defaults (run {info.run_id} could not be read: {_first_line(exc)})"
        else:
            if any(k.startswith(("audio.", "features.")) for k in params):
                try:
                    config = config_from_params(params)
                except ConfigError as exc:
                    raise ModelSourceError(f"{source}: run {info.run_id}: {exc}") from None
                where = f"the params of run {info.run_id}"
    return LoadedModel(model, config, source, where)


def _first_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text[:200] + ("…" if len(text) > 200 else "")
