"""The logged model as MLflow serves it: raw audio in, class probabilities out.

:class:`AudioClassifier` is an ``mlflow.pyfunc.PythonModel`` carrying three artifacts:
the fold's Keras file (:data:`KERAS_ARTIFACT`), the configuration it was trained with
(:data:`CONFIG_ARTIFACT`, the train task's ``config.json``) and the class names
(:data:`CLASSES_ARTIFACT`).  Its input is one row per recording, either

- ``path``: an audio file readable where the model runs (any format ingest reads), or
- ``waveform`` (samples, float, mono, amplitude in [-1, 1]) and ``sample_rate`` (Hz),

and it computes the model's input with prediction's own functions
(:func:`urbansound.predict.predict_file`, :func:`~urbansound.predict.predict_waveform_blocks`):
the same decoding, resampling and front end as ``urbansound predict`` and as training, and
a recording longer than one window is cut into windows every ``hop_s`` seconds (param,
default 1.5) whose probabilities are averaged.  The output has one row per input row:
``class``, ``probability`` (of that class), ``duration_s``, ``windows``, then one column per
class name with its probability.

A row that cannot be used (no such file, silent audio, both or neither of path and
waveform) fails the whole call with one line naming the row and the reason (HTTP 400
when served).
"""
from __future__ import annotations

import json
from pathlib import Path

import mlflow.pyfunc
import numpy as np

KERAS_ARTIFACT = "keras_model"
CONFIG_ARTIFACT = "config"
CLASSES_ARTIFACT = "class_names"
HOP_PARAM = "hop_s"
INPUT_COLUMNS = ("path", "waveform", "sample_rate")
LEADING_OUTPUT_COLUMNS = ("class", "probability", "duration_s", "windows")


class AudioClassifier(mlflow.pyfunc.PythonModel):
    """Raw audio → class probabilities with a trained fold model (see the module docstring).

    After :meth:`load_context`: ``keras_model`` (the Keras model), ``config``
    (:class:`urbansound.config.Config`) and ``class_names`` (tuple of str).
    """

    def load_context(self, context) -> None:
        import keras

        from urbansound.config import Config
        from urbansound.predict import check_model_input, keras_classifier

        self.config = Config.from_json(Path(context.artifacts[CONFIG_ARTIFACT]).read_text())
        self.class_names = tuple(json.loads(Path(context.artifacts[CLASSES_ARTIFACT]).read_text()))
        self.keras_model = keras.models.load_model(context.artifacts[KERAS_ARTIFACT],
                                                   compile=False)
        check_model_input(self.keras_model, self.config, "logged model")
        self._classify = keras_classifier(self.keras_model)

    def predict(self, context, model_input, params=None):
        """model_input: a DataFrame (or dict / list of dicts) with the columns of
        :data:`INPUT_COLUMNS`; returns a DataFrame, one row per input row."""
        import pandas as pd

        from urbansound.predict import DEFAULT_HOP_SECONDS

        hop = (params or {}).get(HOP_PARAM)
        hop = DEFAULT_HOP_SECONDS if hop is None else float(hop)  # checked per row, as --hop
        rows = []
        for i, row in enumerate(_records(model_input)):
            probabilities, duration_s, windows = self.classify_row(row, hop, i)
            best = int(np.argmax(probabilities))
            rows.append({"class": self.class_names[best],
                         "probability": float(probabilities[best]),
                         "duration_s": duration_s, "windows": windows}
                        | {name: float(p) for name, p in zip(self.class_names, probabilities)})
        return pd.DataFrame(rows, columns=[*LEADING_OUTPUT_COLUMNS, *self.class_names])

    def classify_row(self, row: dict, hop_s: float, index: int = 0
                     ) -> tuple[np.ndarray, float, int]:
        """(probabilities [shape=(n_classes,)] float64, duration in seconds, windows) of one
        input row.  Raises MlflowException (INVALID_PARAMETER_VALUE) naming the row."""
        from urbansound.audio import AudioError, prepare_waveform
        from urbansound.features import FeatureError
        from urbansound.predict import aggregate, predict_file, predict_waveform_blocks

        path, waveform, rate = (_value(row.get(k)) for k in INPUT_COLUMNS)
        config = self.config
        try:
            if (path is None) == (waveform is None):
                raise ValueError("give either 'path' or 'waveform' (with 'sample_rate'), "
                                 "not " + ("both" if path is not None else "neither"))
            if path is not None:
                found = predict_file(str(path), self._classify, config=config,
                                     hop_seconds=hop_s, class_names=self.class_names)
                return found.probabilities, float(found.duration_s), len(found.starts_s)
            if rate is None:
                raise ValueError("'waveform' needs 'sample_rate' (Hz)")
            if float(rate) != int(rate) or int(rate) <= 0:
                raise ValueError(f"'sample_rate' must be a positive whole number of Hz, "
                                 f"not {rate!r}")
            # ingest's validation, mix-down and resampling (soxr_hq) of decoded samples
            y = prepare_waveform(np.asarray(waveform, np.float32), int(rate),
                                 sample_rate=config.audio.sample_rate, source="waveform")
            _, _, window_probabilities = predict_waveform_blocks(
                [y], self._classify, config=config, hop_seconds=hop_s)
            if window_probabilities.shape[1] != len(self.class_names):
                raise ValueError(f"the model has {window_probabilities.shape[1]} outputs, not "
                                 f"the {len(self.class_names)} classes")
            return (aggregate(window_probabilities), y.size / config.audio.sample_rate,
                    int(window_probabilities.shape[0]))
        except AudioError as exc:
            raise _bad_input(index, f"{exc.path}: {exc.reason}") from None
        except (ValueError, TypeError, FeatureError) as exc:
            raise _bad_input(index, str(exc)) from None


def _records(model_input) -> list[dict]:
    """The input rows as dicts, from a DataFrame, a dict of columns or of one row, or a
    list of row dicts."""
    import pandas as pd

    if isinstance(model_input, pd.DataFrame):
        return model_input.to_dict(orient="records")
    if isinstance(model_input, dict):
        if any(isinstance(v, (list, tuple, np.ndarray)) and len(v) and
               isinstance(v[0], (list, tuple, np.ndarray, str)) for v in model_input.values()):
            return pd.DataFrame(model_input).to_dict(orient="records")  # columns
        return [model_input]  # one row (a waveform is one list of numbers)
    if isinstance(model_input, (list, tuple)) and all(isinstance(r, dict) for r in model_input):
        return list(model_input)
    raise _bad_input(None, f"expected a table with a 'path' or a 'waveform' and 'sample_rate' "
                           f"column, got {type(model_input).__name__}")


def _value(value):
    """None for a missing cell (None, NaN, pd.NA), else the value."""
    import pandas as pd

    if value is None or (np.ndim(value) == 0 and pd.isna(value)):
        return None
    return value


def _bad_input(index, reason: str):
    from mlflow.exceptions import MlflowException
    from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE

    where = f"input row {index}: " if index is not None else ""
    return MlflowException(f"{where}{reason}", error_code=INVALID_PARAMETER_VALUE)
