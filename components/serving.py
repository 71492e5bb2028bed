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

A plain list of paths (or a Series, or a table whose one column is named ``0``, as
pandas names a list's) is taken as the ``path`` column when it reaches this class; served
through MLflow's pyfunc, the signature drops such a column first, and the call is refused
saying so (send a ``path`` column).

A row that cannot be used (no such file, silent audio, both or neither of path and
waveform, a ``sample_rate`` that is not a whole number of Hz in 1,000..768,000, a waveform
longer than :data:`urbansound.audio.MAX_SECONDS`) fails the whole call with one line naming
the row and the reason (HTTP 400 when served).  One call classifies at most
:data:`urbansound.predict.MAX_REQUEST_WINDOWS` windows, all rows together: a row that would
go beyond is refused, naming it, before its audio is decoded or resampled.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

# not mlflow.pyfunc.PythonModel: mypy reads mlflow.pyfunc as mlflow's LazyLoader attribute
from mlflow.pyfunc import PythonModel

KERAS_ARTIFACT = "keras_model"
CONFIG_ARTIFACT = "config"
CLASSES_ARTIFACT = "class_names"
HOP_PARAM = "hop_s"
INPUT_COLUMNS = ("path", "waveform", "sample_rate")
LEADING_OUTPUT_COLUMNS = ("class", "probability", "duration_s", "windows")


class AudioClassifier(PythonModel):
    """Raw audio → class probabilities with a trained fold model (see the module docstring).

    After :meth:`load_context`: ``keras_model`` (the Keras model), ``config``
    (:class:`urbansound.config.Config`) and ``class_names`` (tuple of str).
    """

    def load_context(self, context) -> None:
        import keras

        from urbansound.config import Config
        from urbansound.predict import check_model_input, keras_classifier

        self.config = Config.from_file(context.artifacts[CONFIG_ARTIFACT])
        self.class_names = tuple(json.loads(Path(context.artifacts[CLASSES_ARTIFACT]).read_text()))
        self.keras_model = keras.models.load_model(context.artifacts[KERAS_ARTIFACT], compile=False)
        check_model_input(self.keras_model, self.config, "logged model")
        self._classify = keras_classifier(self.keras_model)

    def predict(self, context, model_input, params=None):
        """model_input: a DataFrame (or dict / list of dicts) with the columns of
        :data:`INPUT_COLUMNS`; returns a DataFrame, one row per input row."""
        import pandas as pd

        from urbansound.predict import DEFAULT_HOP_SECONDS

        hop = (params or {}).get(HOP_PARAM)
        try:
            hop = DEFAULT_HOP_SECONDS if hop is None else float(hop)  # checked per row, as --hop
        except (TypeError, ValueError):
            raise _bad_input(
                None, f"param {HOP_PARAM} must be a number of seconds, not {hop!r}"
            ) from None
        rows = []
        used = 0  # windows classified so far in this call
        for i, row in enumerate(_records(model_input)):
            probabilities, duration_s, windows = self.classify_row(row, hop, i, used)
            used += windows
            best = int(np.argmax(probabilities))
            rows.append(
                {
                    "class": self.class_names[best],
                    "probability": float(probabilities[best]),
                    "duration_s": duration_s,
                    "windows": windows,
                }
                | {name: float(p) for name, p in zip(self.class_names, probabilities)}
            )
        return pd.DataFrame(rows, columns=[*LEADING_OUTPUT_COLUMNS, *self.class_names])

    def classify_row(
        self, row: dict, hop_s: float, index: int = 0, used: int = 0
    ) -> tuple[np.ndarray, float, int]:
        """(probabilities [shape=(n_classes,)] float64, duration in seconds, windows) of one
        input row, after ``used`` windows of the same call (the cap is
        :data:`urbansound.predict.MAX_REQUEST_WINDOWS`).  Raises MlflowException
        (INVALID_PARAMETER_VALUE) naming the row."""
        from urbansound.audio import AudioError, check_duration, prepare_waveform, resampled_length
        from urbansound.features import FeatureError
        from urbansound.predict import (
            MAX_REQUEST_WINDOWS,
            aggregate,
            check_window_budget,
            file_windows,
            hop_samples,
            predict_file,
            predict_waveform_blocks,
        )
        from urbansound.windows import count_windows

        path, waveform, rate = (_value(row.get(k)) for k in INPUT_COLUMNS)
        config = self.config
        try:
            if (path is None) == (waveform is None):
                raise ValueError(
                    "give either 'path' or 'waveform' (with 'sample_rate'), "
                    "not " + ("both" if path is not None else "neither")
                )
            hop = hop_samples(hop_s, config)
            if path is not None:
                # from the header, before decoding; the cap holds while decoding too
                check_window_budget(file_windows(str(path), config, hop_s), used)
                found = predict_file(
                    str(path),
                    self._classify,
                    config=config,
                    hop_seconds=hop_s,
                    class_names=self.class_names,
                    max_windows=MAX_REQUEST_WINDOWS - used,
                )
                return found.probabilities, float(found.duration_s), len(found.starts_s)
            if rate is None:
                raise ValueError("'waveform' needs 'sample_rate' (Hz)")
            rate = _sample_rate(rate)
            if isinstance(waveform, (str, bytes)) or not hasattr(waveform, "__len__"):
                raise ValueError(
                    f"'waveform' must be a list of samples, not {type(waveform).__name__}"
                )
            # held whole: ingest's length limits, then the windows it would give, before
            # the samples are converted or resampled
            check_duration("waveform", len(waveform) / rate)
            check_window_budget(
                count_windows(
                    resampled_length(len(waveform), rate, config.audio.sample_rate),
                    window=config.audio.clip_samples,
                    hop=hop,
                ),
                used,
            )
            samples = np.asarray(waveform, np.float32)  # ValueError when ragged
            if samples.ndim not in (1, 2):
                raise ValueError(
                    f"'waveform' must be a list of samples (or of one list per "
                    f"sample, for channels), not {samples.ndim}-dimensional"
                )
            # ingest's validation, mix-down and resampling (soxr_hq) of decoded samples
            y = prepare_waveform(
                samples, rate, sample_rate=config.audio.sample_rate, source="waveform"
            )
            _, _, window_probabilities = predict_waveform_blocks(
                [y],
                self._classify,
                config=config,
                hop_seconds=hop_s,
                max_windows=MAX_REQUEST_WINDOWS - used,
            )
            if window_probabilities.shape[1] != len(self.class_names):
                raise ValueError(
                    f"the model has {window_probabilities.shape[1]} outputs, not "
                    f"the {len(self.class_names)} classes"
                )
            return (
                aggregate(window_probabilities),
                y.size / config.audio.sample_rate,
                int(window_probabilities.shape[0]),
            )
        except AudioError as exc:
            raise _bad_input(index, f"{exc.path}: {exc.reason}") from None
        except (ValueError, TypeError, ArithmeticError, FeatureError) as exc:
            # ArithmeticError: an overflow from a value no check foresaw is still the row's
            raise _bad_input(index, str(exc) or type(exc).__name__) from None


def _sample_rate(rate) -> int:
    """A row's ``sample_rate`` as whole Hz; ValueError unless it is a finite whole number in
    :data:`urbansound.audio.MIN_RATE`..:data:`~urbansound.audio.MAX_RATE` (the rates ingest,
    predict and listen accept)."""
    from urbansound.audio import MAX_RATE, MIN_RATE

    try:
        hz = float(rate)
    except (TypeError, ValueError):
        hz = math.nan
    if not (math.isfinite(hz) and hz == int(hz) and MIN_RATE <= hz <= MAX_RATE):
        raise ValueError(
            f"'sample_rate' must be a whole number of Hz in "
            f"{MIN_RATE:,}..{MAX_RATE:,}, not {str(rate)[:40]!r}"
        )
    return int(hz)


def _is_path_list(model_input) -> bool:
    """A plain list (tuple, Series, 1-D array) of strings, or a table whose one column is a
    list's (named 0) of strings: paths."""
    import pandas as pd

    if isinstance(model_input, pd.DataFrame):
        if list(model_input.columns) not in ([0], ["0"]):
            return False
        model_input = model_input.iloc[:, 0]
    if isinstance(model_input, (list, tuple, pd.Series, np.ndarray)):
        return (
            len(model_input) > 0
            and np.ndim(model_input) == 1
            and all(isinstance(v, str) for v in model_input)
        )
    return False


def _records(model_input) -> list[dict]:
    """The input rows as dicts, from a DataFrame, a dict of columns or of one row, a list
    of row dicts, or a plain list of paths (:func:`_is_path_list`)."""
    import pandas as pd

    if _is_path_list(model_input):
        values = model_input.iloc[:, 0] if isinstance(model_input, pd.DataFrame) else model_input
        return [{"path": v} for v in values]
    if isinstance(model_input, pd.DataFrame):
        if not set(INPUT_COLUMNS) & set(model_input.columns):
            # MLflow's signature drops every other column (a list of paths arrives as a
            # column named 0) and warns: an empty answer would look like a result
            raise _bad_input(
                None,
                f"no 'path' or 'waveform' column in the input (columns: "
                f"{[str(c) for c in model_input.columns][:5]}); a served "
                f"model drops the columns its signature does not name (a "
                f"misspelt one, or the column 0 a plain list of paths "
                f"becomes): send a 'path' column, e.g. "
                f'{{"dataframe_split": {{"columns": ["path"], '
                f'"data": [["street.wav"]]}}}}',
            )
        return model_input.to_dict(orient="records")
    if isinstance(model_input, dict):
        if any(
            isinstance(v, (list, tuple, np.ndarray))
            and len(v)
            and isinstance(v[0], (list, tuple, np.ndarray, str))
            for v in model_input.values()
        ):
            return pd.DataFrame(model_input).to_dict(orient="records")  # columns
        return [model_input]  # one row (a waveform is one list of numbers)
    if isinstance(model_input, (list, tuple)) and all(isinstance(r, dict) for r in model_input):
        return list(model_input)
    raise _bad_input(
        None,
        f"expected a table with a 'path' or a 'waveform' and 'sample_rate' "
        f"column, got {type(model_input).__name__}",
    )


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
