"""Edge export: a trained Keras model as a TensorFlow Lite flatbuffer, with its front end.

:func:`export_tflite` converts the model (float32, or full-integer int8 after
post-training quantisation on a representative set of real model inputs) and writes,
beside ``<name>.tflite``, ``<name>.json``: what an edge device needs to reproduce the
front end (the whole :class:`~urbansound.config.Config`, the window length and
sample rate), the class names, and the input and output tensors (shape, dtype, and
for int8 the quantisation ``scale`` / ``zero_point``: ``q = round(x / scale) +
zero_point``, ``x = (q - zero_point) * scale``).

The conversion goes through a SavedModel (``keras.Model.export``) and
``tf.lite.TFLiteConverter.from_saved_model``: with Keras 3 ``from_keras_model``
does the same export internally but prints every captured variable.

:class:`TFLiteModel` runs a ``.tflite`` file on a batch of model inputs (the
arrays :func:`urbansound.predict.model_input_batch` makes) and returns float
probabilities, quantising int8 inputs and dequantising int8 outputs; it is a
:data:`urbansound.predict.Classifier`.

TensorFlow is imported inside the functions; nothing happens at import.
"""

from __future__ import annotations

import json
import os
import tempfile
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from urbansound.audio import AudioError
from urbansound.config import Config, ConfigError
from urbansound.features import FeatureError
from urbansound.predict import (
    DEFAULT_HOP_SECONDS,
    find_audio_files,
    hop_samples,
    model_input_batch,
    stream_audio,
)
from urbansound.windows import iter_windows

FORMATS = ("tflite",)
MAX_CALIBRATION_WINDOWS = 200
"""Representative inputs for int8 calibration: TensorFlow's guidance is a few hundred;
more costs conversion time (one float inference each) for no measurable change."""
WINDOWS_PER_FILE = 4
"""At most this many windows (evenly spread) from one calibration file, so that one long
recording does not make up the whole representative set."""
DEMO_CALIBRATION_CLIPS_PER_CLASS = 8


class ExportError(ConfigError):
    """The export cannot be made (``str()`` is one line naming the input and the reason)."""


@dataclass
class Calibration:
    """Representative model inputs for int8 quantisation.

    inputs : np.ndarray float32 [shape=(n, *input_shape)], real windows' model inputs.
    source : what they came from, in words (for the output and ``model.json``).
    files : how many recordings.
    """

    inputs: np.ndarray
    source: str
    files: int


@dataclass
class ExportResult:
    """What :func:`export_tflite` wrote: ``tflite_path`` (``size_bytes``), ``json_path``
    and its content ``metadata``."""

    tflite_path: Path
    json_path: Path
    size_bytes: int
    metadata: dict = field(repr=False)


# ---------------------------------------------------------------------------
# calibration data
# ---------------------------------------------------------------------------


def _spread(n: int, k: int) -> np.ndarray:
    """``min(n, k)`` indices evenly spread over ``range(n)``, first and last included."""
    if n <= k:
        return np.arange(n)
    return np.unique(np.round(np.linspace(0, n - 1, k)).astype(int))


def calibration_inputs(
    paths: Sequence[str | os.PathLike],
    config: Config,
    *,
    max_windows: int = MAX_CALIBRATION_WINDOWS,
    windows_per_file: int = WINDOWS_PER_FILE,
    hop_seconds: float = DEFAULT_HOP_SECONDS,
    source: str = "",
) -> Calibration:
    """Model inputs of real windows from audio files or folders (searched recursively),
    decoded and windowed as ``urbansound predict`` does.

    Up to ``windows_per_file`` windows per file (evenly spread over it) and
    ``max_windows`` in all (files evenly spread when there are more).

    Raises
    ------
    AudioError
        a file named (or found) cannot be used: one line naming it.
    ExportError
        no audio file among ``paths``.
    """
    files = find_audio_files(paths)
    if not files:
        raise ExportError(f"{', '.join(map(str, paths))}: no audio files for calibration")
    per_file = max(1, min(windows_per_file, -(-max_windows // len(files))))
    files = [files[i] for i in _spread(len(files), max_windows)]
    hop = hop_samples(hop_seconds, config)
    a = config.audio
    windows: list[np.ndarray] = []  # model inputs, one array per file
    for path in files:
        # every stride-th window, the stride doubling whenever more than 2 * per_file are
        # kept: an hour-long file never holds more than that many windows in memory
        kept, stride = [], 1
        for i, (_, _, w) in enumerate(
            iter_windows(
                stream_audio(path, sample_rate=a.sample_rate),
                window=a.clip_samples,
                hop=hop,
                pad_mode=a.pad_mode,
            )
        ):
            if i % stride == 0:
                kept.append(w)
                if len(kept) > 2 * per_file:
                    kept, stride = kept[::2], stride * 2
        picked = [kept[i] for i in _spread(len(kept), per_file)]
        try:
            windows.append(model_input_batch(picked, config))
        except FeatureError as exc:
            raise AudioError(path, str(exc)) from None
    x = np.concatenate(windows)[:max_windows]
    named = ", ".join(map(str, paths[:2])) + (
        f" and {len(paths) - 2} more" if len(paths) > 2 else ""
    )
    return Calibration(x, source or f"{len(files)} file(s) from {named}", len(files))


def demo_calibration_inputs(
    config: Config,
    *,
    max_windows: int = MAX_CALIBRATION_WINDOWS,
    clips_per_class: int | None = None,
) -> Calibration:
    """Calibration inputs from the built-in synthetic dataset (one fold written to a
    temporary folder, removed afterwards): for a try-out; a model meant for real sounds
    should be calibrated on recordings like them.  ``clips_per_class`` defaults to
    :data:`DEMO_CALIBRATION_CLIPS_PER_CLASS`."""
    from urbansound.demo_data import write_demo_dataset

    if clips_per_class is None:
        clips_per_class = DEMO_CALIBRATION_CLIPS_PER_CLASS

    with tempfile.TemporaryDirectory(prefix="urbansound-calibration-") as tmp:
        write_demo_dataset(tmp, folds=(1,), clips_per_class=clips_per_class)
        cal = calibration_inputs([Path(tmp) / "audio"], config, max_windows=max_windows)
    cal.source = f"the built-in demo data ({cal.files} synthetic clips)"
    return cal


# ---------------------------------------------------------------------------
# conversion
# ---------------------------------------------------------------------------


def _quiet_tf():
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    tf.get_logger().setLevel("ERROR")
    return tf


def convert_to_tflite(model, *, int8: bool = False, calibration: np.ndarray | None = None) -> bytes:
    """The ``.tflite`` flatbuffer of a Keras model.

    Parameters
    ----------
    model : keras.Model, one input, one output.
    int8 : full-integer post-training quantisation: int8 weights, activations, input
        and output (for integer-only accelerators and microcontrollers).
    calibration : np.ndarray float32 [shape=(n, *model input shape)], required with
        ``int8``: real inputs from which activation ranges are measured.

    Raises
    ------
    ExportError
        ``int8`` without calibration inputs, or the converter refused the model.
    """
    if int8 and (calibration is None or len(calibration) == 0):
        raise ExportError("int8 quantisation needs calibration inputs")
    tf = _quiet_tf()
    with tempfile.TemporaryDirectory(prefix="urbansound-export-") as tmp:
        saved = Path(tmp) / "saved_model"
        model.export(str(saved), format="tf_saved_model", verbose=False)
        converter = tf.lite.TFLiteConverter.from_saved_model(str(saved))
        if int8:
            data = np.asarray(calibration, np.float32)

            def representative():
                for i in range(len(data)):
                    yield [data[i : i + 1]]

            converter.optimizations = [tf.lite.Optimize.DEFAULT]
            converter.representative_dataset = representative
            converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
            converter.inference_input_type = tf.int8
            converter.inference_output_type = tf.int8
        try:
            return bytes(converter.convert())
        except Exception as exc:
            text = " ".join(str(exc).split())[:300]
            raise ExportError(f"the TFLite converter refused the model ({text})") from None


def _tensor_info(detail: dict) -> dict:
    scale, zero_point = detail["quantization"]
    info = {
        "name": detail["name"],
        "shape": [int(v) for v in detail["shape_signature"]],
        "dtype": np.dtype(detail["dtype"]).name,
    }
    if np.issubdtype(np.dtype(detail["dtype"]), np.integer):
        info.update(scale=float(scale), zero_point=int(zero_point))
    return info


TFLITE_IDENTIFIER = b"TFL3"
"""The flatbuffer file identifier of a ``.tflite`` file (bytes 4..8)."""


def export_paths(out: str | os.PathLike, *, int8: bool = False) -> tuple[Path, Path]:
    """``(tflite, json)``: the two files :func:`export_tflite` writes for ``out`` (a file,
    or an existing folder: ``model.tflite`` / ``model_int8.tflite`` inside it)."""
    out = Path(out)
    if out.is_dir():
        out = out / ("model_int8.tflite" if int8 else "model.tflite")
    return out, out.with_suffix(".json")


def _written_by_export(path: Path) -> bool:
    """True for a file an earlier export wrote (it may be replaced): a TFLite flatbuffer,
    or a JSON object with this module's ``format`` and ``class_names``."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(8)
            if head[4:8] == TFLITE_IDENTIFIER:
                return True
            if path.stat().st_size > 10 << 20:
                return False
            fh.seek(0)
            meta = json.loads(fh.read().decode("utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(meta, dict) and meta.get("format") in FORMATS and "class_names" in meta


def check_export_outputs(
    tflite: Path, json_path: Path, inputs: Sequence[tuple[str, str | os.PathLike]] = ()
) -> None:
    """Refuse, before anything is written, an export that would write over one of its
    ``inputs`` (the model, its ``config.json``, calibration files), write both files to
    one path (``-o edge.json``), or replace a file an earlier export did not write
    (:class:`urbansound.outputs.OutputError`, one line)."""
    from urbansound.outputs import check_outputs

    check_outputs(
        [("the .tflite file", tflite), ("its .json metadata", json_path)],
        inputs,
        ours=_written_by_export,
        command="urbansound export",
        hint="choose another -o (a name ending in .tflite)",
    )


def export_tflite(
    model,
    config: Config,
    out: str | os.PathLike,
    *,
    int8: bool = False,
    calibration: Calibration | None = None,
    source: str = "",
    class_names: Sequence[str] | None = None,
) -> ExportResult:
    """Convert ``model`` and write ``out`` (a ``.tflite`` file) and, beside it, the same
    name with ``.json``: the metadata an edge device needs.

    ``out`` that is an existing folder gets ``model.tflite`` (``model_int8.tflite``
    with ``int8``) inside it.  Nothing is written when ``out`` and its ``.json`` are one
    path or either exists and is not an earlier export's (:func:`check_export_outputs`).  ``config`` is the configuration the model was trained
    with (its front end); ``calibration`` is required with ``int8``.

    Metadata keys: ``format``, ``quantization`` (``"float32"`` / ``"int8"``),
    ``source``, ``class_names``, ``input_kind`` (``"logmel"`` or ``"waveform"``: which
    of :func:`urbansound.features.model_input`'s front ends), ``input`` and ``output`` (``name``, ``shape`` with -1
    for the batch, ``dtype``, and for integer tensors ``scale`` and ``zero_point``),
    ``window`` (``sample_rate`` Hz, ``samples``, ``seconds``, ``default_hop_s``),
    ``config`` (the whole configuration as ``Config.to_dict``), ``calibration``
    (int8: ``source``, ``files``, ``windows``), ``size_bytes``, ``tensorflow``.
    """
    out, json_path = export_paths(out, int8=int8)
    if not out.parent.is_dir():
        raise ExportError(f"{out}: the folder {out.parent} does not exist")
    check_export_outputs(out, json_path)
    if int8 and calibration is None:
        raise ExportError("int8 quantisation needs calibration inputs")
    blob = convert_to_tflite(
        model, int8=int8, calibration=calibration.inputs if calibration else None
    )
    tflite = TFLiteModel(blob)
    a = config.audio
    names = list(class_names or config.class_names)
    n_out = int(tflite.output_detail["shape_signature"][-1])
    if n_out != len(names):
        raise ExportError(
            f"the model has {n_out} outputs, not the {len(names)} classes "
            f"({', '.join(names[:3])}, ...)"
        )
    meta = {
        "format": "tflite",
        "quantization": "int8" if int8 else "float32",
        "source": source,
        "class_names": names,
        "input_kind": config.input_kind,
        "input": _tensor_info(tflite.input_detail),
        "output": _tensor_info(tflite.output_detail),
        "window": {
            "sample_rate": a.sample_rate,
            "samples": a.clip_samples,
            "seconds": a.clip_seconds,
            "default_hop_s": DEFAULT_HOP_SECONDS,
        },
        "config": config.to_dict(),
        "size_bytes": len(blob),
        "tensorflow": _quiet_tf().__version__,
    }
    if int8:
        assert calibration is not None  # int8 without calibration was refused above
        meta["calibration"] = {
            "source": calibration.source,
            "files": calibration.files,
            "windows": int(len(calibration.inputs)),
        }
    try:
        out.write_bytes(blob)
        json_path.write_text(json.dumps(meta, indent=2) + "\n")
    except OSError as exc:
        raise ExportError(f"{out}: cannot write ({exc.strerror or exc})") from None
    return ExportResult(out, json_path, len(blob), meta)


# ---------------------------------------------------------------------------
# running a .tflite file
# ---------------------------------------------------------------------------


class TFLiteModel:
    """A ``.tflite`` classifier: ``model(x)`` → probabilities.

    Parameters
    ----------
    source : a ``.tflite`` path or its bytes.
    num_threads : interpreter threads (None: TensorFlow's default).

    ``__call__(x)``: x float32 [shape=(n, *input shape)] model inputs (dB log-mels or
    waveforms, as the Keras model took them); returns float32 [shape=(n, n_classes)].
    An int8 model's input is quantised here (``round(x / scale) + zero_point``, clipped
    to int8) and its output dequantised, so callers never see integers.
    """

    def __init__(self, source: str | os.PathLike | bytes, *, num_threads: int | None = None):
        tf = _quiet_tf()
        kwargs = (
            {"model_content": source}
            if isinstance(source, (bytes, bytearray))
            else {"model_path": str(source)}
        )
        with warnings.catch_warnings():  # "tf.lite.Interpreter is deprecated": still in 2.21
            warnings.simplefilter("ignore")
            self._interp = tf.lite.Interpreter(num_threads=num_threads, **kwargs)
        self.input_detail = self._interp.get_input_details()[0]
        self.output_detail = self._interp.get_output_details()[0]
        self._batch = None

    @property
    def input_dtype(self) -> np.dtype:
        return np.dtype(self.input_detail["dtype"])

    def __call__(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, np.float32)
        want = tuple(int(v) for v in self.input_detail["shape_signature"][1:])
        if x.shape[1:] != want:
            raise ValueError(
                f"input of shape {x.shape}; this model takes (n, {', '.join(map(str, want))})"
            )
        if x.shape[0] == 0:
            return np.zeros((0, int(self.output_detail["shape_signature"][-1])), np.float32)
        i, o = self.input_detail["index"], self.output_detail["index"]
        if self._batch != x.shape[0]:
            self._interp.resize_tensor_input(i, [x.shape[0], *want])
            self._interp.allocate_tensors()
            self._batch = x.shape[0]
        dtype = self.input_dtype
        if np.issubdtype(dtype, np.integer):
            scale, zero_point = self.input_detail["quantization"]
            lim = np.iinfo(dtype)
            x = np.clip(np.round(x / scale) + zero_point, lim.min, lim.max).astype(dtype)
        self._interp.set_tensor(i, x)
        self._interp.invoke()
        y = self._interp.get_tensor(o)
        if np.issubdtype(y.dtype, np.integer):
            scale, zero_point = self.output_detail["quantization"]
            y = (y.astype(np.float32) - zero_point) * scale
        return np.asarray(y, np.float32)


def agreement(p_reference: np.ndarray, p_other: np.ndarray) -> dict:
    """How two models' probabilities [shape=(n, n_classes)] on the same inputs agree:
    ``top1`` (share of rows with the same most probable class, 0..1), ``max_abs_diff``
    and ``mean_abs_diff`` (of the probabilities), ``n``."""
    a, b = np.asarray(p_reference, np.float64), np.asarray(p_other, np.float64)
    if a.shape != b.shape or a.ndim != 2 or not len(a):
        raise ValueError(f"need two (n, n_classes) arrays of one shape, got {a.shape}, {b.shape}")
    diff = np.abs(a - b)
    return {
        "n": int(len(a)),
        "top1": float(np.mean(a.argmax(1) == b.argmax(1))),
        "max_abs_diff": float(diff.max()),
        "mean_abs_diff": float(diff.mean()),
    }


def batched(classify, x: np.ndarray, batch_size: int = 32) -> np.ndarray:
    """``classify`` over ``x`` in batches of ``batch_size``: [shape=(n, n_classes)]."""
    parts: Iterable[np.ndarray] = (
        np.asarray(classify(x[i : i + batch_size]), np.float32)
        for i in range(0, len(x), batch_size)
    )
    return np.concatenate(list(parts))
