"""The trained model of a fold run, logged to MLflow as ``model`` (``runs:/<run>/model``).

It is an MLflow pyfunc, :class:`urbansound.components.serving.AudioClassifier`, that takes raw audio
(a file path, or samples and their rate) and returns the class probabilities, so that
``mlflow models serve -m runs:/<run>/model --env-manager local`` serves it as it is.
It carries the Keras file and the configuration as artifacts (``urbansound predict``
uses those: :mod:`urbansound.pipeline.model_source`), a signature with the ``hop_s`` param, an input
example (0.5 s of a synthesised dog bark at 8 kHz), the project's packages it runs
(``urbansound`` and ``components/serving.py``) as code, and pinned requirements.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

from urbansound.components.tracking_store import client

MODEL_NAME = "model"
EXAMPLE_RATE = 8000
EXAMPLE_SECONDS = 0.5
REQUIREMENTS = ("mlflow", "tensorflow", "keras", "numpy", "pandas", "soundfile", "soxr", "librosa")
"""What the pyfunc imports (pinned to the versions installed at logging time)."""


def log_model(
    tracking_uri: str, run_id: str, model_path: str, *, config=None, class_names=None
) -> None:
    """Log the fold model at ``model_path`` (a ``model.keras``) to the run as ``model``.

    config : :class:`urbansound.config.Config` it was trained with; default: the
        ``config.json`` train_fold wrote beside it, else the run's (its config.json
        artifact, else its params).
    class_names : its output classes in order; default ``config.class_names``.
    """
    import mlflow

    from urbansound.components import serving
    from urbansound.components.runs import run_config
    from urbansound.config import Config
    from urbansound.training import CONFIG_FILE

    c = client(tracking_uri)  # also the process's tracking URI, for mlflow.start_run
    if config is None:
        beside = Path(model_path).parent / CONFIG_FILE
        config = Config.from_file(beside) if beside.is_file() else run_config(c, run_id)[0]
    names = list(class_names or config.class_names)
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        (tmp / CONFIG_FILE).write_text(config.to_json())
        (tmp / "class_names.json").write_text(json.dumps(names))
        artifacts = {
            serving.KERAS_ARTIFACT: str(model_path),
            serving.CONFIG_ARTIFACT: str(tmp / CONFIG_FILE),
            serving.CLASSES_ARTIFACT: str(tmp / "class_names.json"),
        }
        with mlflow.start_run(run_id=run_id):
            mlflow.pyfunc.log_model(
                name=MODEL_NAME,
                python_model=serving.AudioClassifier(),
                artifacts=artifacts,
                code_paths=_code_paths(tmp / "code"),
                signature=signature(names),
                input_example=input_example(),
                # explicit: inferring them would load the model in a subprocess
                pip_requirements=requirements(),
            )


def signature(class_names=None):
    """Input: optional columns ``path`` (string), ``waveform`` (array of double) and
    ``sample_rate`` (any: a number of Hz; an integer column with missing values, as a
    table mixing path and waveform rows has, is a float one in pandas, and MLflow converts
    neither way); param ``hop_s`` (double, 1.5); output: ``class``, ``probability``,
    ``duration_s``, ``windows`` and one double column per class."""
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, DataType, ParamSchema, ParamSpec, Schema
    from mlflow.types.schema import AnyType, Array

    from urbansound.components.serving import HOP_PARAM
    from urbansound.config import CLASS_NAMES
    from urbansound.predict import DEFAULT_HOP_SECONDS

    inputs = Schema(
        [
            ColSpec(DataType.string, "path", required=False),
            ColSpec(Array(DataType.double), "waveform", required=False),
            ColSpec(AnyType(), "sample_rate", required=False),
        ]
    )
    outputs = Schema(
        [
            ColSpec(DataType.string, "class"),
            ColSpec(DataType.double, "probability"),
            ColSpec(DataType.double, "duration_s"),
            ColSpec(DataType.long, "windows"),
            *(ColSpec(DataType.double, name) for name in (class_names or CLASS_NAMES)),
        ]
    )
    params = ParamSchema([ParamSpec(HOP_PARAM, DataType.double, DEFAULT_HOP_SECONDS)])
    return ModelSignature(inputs=inputs, outputs=outputs, params=params)


def input_example():
    """One row: :data:`EXAMPLE_SECONDS` of a synthesised dog bark (the built-in data's
    generator, seed 0) at :data:`EXAMPLE_RATE` Hz, samples rounded to 5 decimals (a small
    JSON file)."""
    import numpy as np
    import pandas as pd

    from urbansound.config import CLASS_NAMES
    from urbansound.demo_data import synthesize_clip

    y = synthesize_clip(
        CLASS_NAMES.index("dog_bark"),
        sr=EXAMPLE_RATE,
        duration_s=EXAMPLE_SECONDS,
        rng=np.random.default_rng(0),
    )
    return pd.DataFrame(
        {"waveform": [np.round(y.astype(np.float64), 5).tolist()], "sample_rate": [EXAMPLE_RATE]}
    )


def requirements() -> list[str]:
    from importlib.metadata import version

    return [f"{name}=={version(name)}" for name in REQUIREMENTS]


def _code_paths(folder: Path) -> list[str]:
    """A clean copy of the code the pyfunc imports: the ``urbansound`` library, with
    ``urbansound/components`` holding only its ``__init__`` and ``serving`` (not the KFP
    adapters), as the installed package lays them out."""
    import urbansound

    source = Path(urbansound.__file__).parent
    caches = shutil.ignore_patterns("__pycache__", "*.pyc")

    def ignore(directory, names):
        # an installed (not editable) package has the pipeline and components beside it
        upper = {"pipeline", "components"} if Path(directory) == source else set()
        return caches(directory, names) | (upper & set(names))

    library = folder / "urbansound"
    shutil.copytree(source, library, ignore=ignore)
    (library / "components").mkdir()
    # this module's own folder is the components package's (importing the package to
    # find it would tie this module to every KFP adapter that __init__ names)
    for name in ("__init__.py", "serving.py"):
        shutil.copy(Path(__file__).parent / name, library / "components" / name)
    return [str(library)]
