"""The trained model of a fold run, logged to MLflow as ``model`` (``runs:/<run>/model``)."""
from __future__ import annotations

from components.tracking_store import client


def log_model(tracking_uri: str, run_id: str, model_path: str) -> None:
    """Log the Keras model at ``model_path`` to the run as ``model`` (mlflow.keras, with
    a signature of its (1, n_mels, n_frames, 1) dB input and its probabilities)."""
    import keras
    import mlflow
    import numpy as np
    from mlflow.models import infer_signature

    client(tracking_uri)  # the process's tracking URI, for mlflow.start_run
    model = keras.models.load_model(model_path)
    example = np.zeros((1, *model.input_shape[1:]), np.float32)  # (1, n_mels, n_frames, 1) dB
    signature = infer_signature(example, model.predict(example, verbose=0))
    with mlflow.start_run(run_id=run_id):
        # Explicit requirements: inferring them would load the model in a subprocess.
        mlflow.keras.log_model(model, name="model", signature=signature,
                               pip_requirements=_model_requirements())


def _model_requirements() -> list[str]:
    from importlib.metadata import version

    return [f"{name}=={version(name)}" for name in ("tensorflow", "keras", "numpy")]
