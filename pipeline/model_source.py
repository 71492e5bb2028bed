"""Where ``urbansound predict`` gets its model: a local file or folder, or an MLflow URI.

A local source is a ``model.keras`` file, or a folder holding exactly one (a train
task's output folder, or any folder above it with a single fold model).  It carries
no configuration, so :class:`~urbansound.config.Config` defaults apply.

An MLflow source is ``runs:/<run id>/model``, ``models:/<model id>`` (MLflow 3's
logged models), ``models:/<name>@<alias>`` or ``models:/<name>/<version>``.  A fold
run's model is the pyfunc of :mod:`urbansound.components.model_logging`; its Keras file and its
``config.json`` artifacts are used here, so ``urbansound predict`` and the served model
compute the same thing.  Fold runs also carry the whole configuration as params
(``audio.pad_mode``, ``features.n_mels``, ...; see ``components/runs.py``): the model is
used with the configuration it was trained with (and runs logged before the pyfunc, whose
model is a plain ``mlflow.keras`` one, still load).  mlflow is imported only here and
only for such a URI.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from urbansound.components.runs import config_from_params  # noqa: F401 - also this module's API
from urbansound.config import Config, ConfigError
from urbansound.training import CONFIG_FILE, MODEL_FILE

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
    from urbansound.files import keras_file_problem

    path = Path(source)
    if path.is_dir():
        found = sorted(path.rglob(MODEL_FILE))
        if len(found) == 1:
            return found[0]
        if not found:
            raise ModelSourceError(f"{source}: no {MODEL_FILE} in this folder")
        names = ", ".join(str(p.relative_to(path)) for p in found[:3])
        raise ModelSourceError(
            f"{source}: {len(found)} {MODEL_FILE} files in this folder "
            f"({names}{', ...' if len(found) > 3 else ''}); name one"
        )
    problem = keras_file_problem(path)
    if problem is None:
        return path
    if problem.startswith("no such file"):
        raise ModelSourceError(
            f"{source}: no such model file or folder, and not an MLflow URI "
            f"(runs:/<run>/model, models:/<id>, models:/<name>@<alias>)"
        )
    raise ModelSourceError(f"{source}: {problem}")  # a FIFO, a device, a text file


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
    beside = path.parent / CONFIG_FILE
    config, where = Config(), f"defaults (no {CONFIG_FILE} beside the model)"
    if os.path.lexists(beside):  # train_fold writes the configuration next to the model
        # read before the model (seconds sooner); its errors name the file
        config, where = Config.from_file(beside), str(beside)
    try:
        import keras

        model = keras.models.load_model(path, compile=False)
    except Exception as exc:
        raise ModelSourceError(f"{path}: not a loadable Keras model ({_first_line(exc)})") from None
    return LoadedModel(model, config, source, where)


def mlflow_store(source: str, tracking_uri: str = "") -> str:
    """The tracking URI an MLflow ``source`` is looked up in: ``tracking_uri``, else
    $MLFLOW_TRACKING_URI, else ``sqlite:///./mlflow.db``; made the process's current one.

    Raises ModelSourceError when it is a sqlite file that does not exist (MLflow would
    create an empty store there)."""
    from urbansound.components.tracking_store import missing_store

    uri = tracking_uri or os.environ.get("MLFLOW_TRACKING_URI", "")
    if not uri:
        from urbansound.pipeline.local_runner import default_tracking_uri

        uri = default_tracking_uri(".")
    db = missing_store(uri)
    if db is not None:
        raise ModelSourceError(f"{source}: no MLflow store at {db} (give --tracking-uri)")
    import logging

    import mlflow

    logging.getLogger("mlflow").setLevel(logging.ERROR)
    # no download progress bars on the terminal of a command that prints results
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    mlflow.set_tracking_uri(uri)
    return uri


def _load_mlflow(source: str, tracking_uri: str) -> LoadedModel:
    """A pyfunc logged by :mod:`urbansound.components.model_logging` (its Keras file and config.json
    artifacts), or a plain ``mlflow.keras`` model (runs logged before the pyfunc)."""
    uri = mlflow_store(source, tracking_uri)
    import mlflow

    try:
        info = mlflow.models.get_model_info(source)
    except Exception as exc:
        raise ModelSourceError(f"{source}: not found in {uri} ({_first_line(exc)})") from None
    flavors = info.flavors or {}
    logged_config = None
    if "keras" in flavors:
        try:
            model = mlflow.keras.load_model(source)
        except Exception as exc:
            raise ModelSourceError(
                f"{source}: cannot load the model ({_first_line(exc)})"
            ) from None
    elif _audio_pyfunc_artifacts(flavors):
        model, logged_config = _load_pyfunc_artifacts(source, _audio_pyfunc_artifacts(flavors))
    else:
        raise ModelSourceError(
            f"{source}: not an urbansound model (flavors: {', '.join(sorted(flavors))})"
        )
    config, where = _run_config(source, uri, info.run_id)
    if logged_config is not None and (config is None or config != logged_config):
        # the model's own config.json is what serving uses: predict uses the same
        differs = f"; it differs from the params of run {info.run_id}" if config else ""
        config, where = logged_config, f"the {CONFIG_FILE} logged with the model{differs}"
    if config is None:
        config = Config()
    return LoadedModel(model, config, source, where)


def _audio_pyfunc_artifacts(flavors: dict) -> dict[str, str]:
    """The artifact paths (inside the model) of a pyfunc logged by
    :mod:`urbansound.components.model_logging`, {} for any other model."""
    from urbansound.components.serving import CONFIG_ARTIFACT, KERAS_ARTIFACT

    artifacts = (flavors.get("python_function") or {}).get("artifacts") or {}
    if KERAS_ARTIFACT not in artifacts or CONFIG_ARTIFACT not in artifacts:
        return {}
    return {key: value["path"] for key, value in artifacts.items()}


def _load_pyfunc_artifacts(source: str, paths: dict[str, str]):
    """(Keras model, Config) from the pyfunc's artifacts, read directly: loading the pyfunc
    itself would put the model's copy of the code first on sys.path of this process."""
    import tempfile

    import keras
    import mlflow

    from urbansound.components.serving import CONFIG_ARTIFACT, KERAS_ARTIFACT

    with tempfile.TemporaryDirectory() as tmp:
        try:
            local = Path(mlflow.artifacts.download_artifacts(artifact_uri=source, dst_path=tmp))
            model = keras.models.load_model(local / paths[KERAS_ARTIFACT], compile=False)
            config = Config.from_json((local / paths[CONFIG_ARTIFACT]).read_text())
        except ConfigError as exc:
            raise ModelSourceError(f"{source}: its {CONFIG_FILE}: {exc}") from None
        except Exception as exc:
            raise ModelSourceError(
                f"{source}: cannot load the model ({_first_line(exc)})"
            ) from None
    return model, config


def _run_config(source: str, uri: str, run_id: str | None) -> tuple[Config | None, str]:
    """The configuration the model's run logged (its config.json, else its params; None
    if it has neither) and where it came from, in words."""
    where = "defaults (the model's run has no configuration params)"
    if not run_id:
        return None, where
    import mlflow

    try:
        params = mlflow.MlflowClient(uri).get_run(run_id).data.params
    except Exception as exc:
        return None, f"defaults (run {run_id} could not be read: {_first_line(exc)})"
    from urbansound.components.runs import run_config

    if not any(k.startswith(("audio.", "features.")) for k in params):
        return None, where
    try:
        return run_config(mlflow.MlflowClient(uri), run_id, params)
    except ConfigError as exc:
        raise ModelSourceError(f"{source}: run {run_id}: {exc}") from None


def _first_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text[:200] + ("…" if len(text) > 200 else "")
