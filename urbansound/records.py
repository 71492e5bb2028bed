"""TFRecord schemas of the two intermediate datasets, and their readers and writers.

Waveforms (ingest's output), one ``tf.train.Example`` per clip::

    waveform   bytes  float32 little-endian samples at ``sample_rate`` Hz, mono
    sample_rate int   label int   fold int   fs_id int   salience int
    file_name  bytes  class_name bytes

Model inputs (the features stage's output), one example per clip or deformed copy,
of the kind the model declares (``kind``; absent in records written before it: log-mel)::

    kind       bytes  "logmel" or "waveform"
    logmel     bytes  float32 little-endian, shape (n_mels, n_frames), dB     (log-mel)
    n_mels int  n_frames int                                                (log-mel)
    samples    bytes  float32 little-endian, shape (n_samples,)             (waveform)
    n_samples int  sample_rate int                                          (waveform)
    label int  fold int  file_name bytes
    deformation bytes  ("" for the original audio)  salience int (1 fore-, 2 background)

Files are ``<dir>/fold<k>*.tfrecord`` (one or more shards per fold).
"""
from __future__ import annotations

import glob
import os
from dataclasses import dataclass

import numpy as np

ORIGINAL = ""
"""``deformation`` value of an undeformed clip."""
WINDOW_PREFIX = "window@"
"""``deformation`` of a later window of an original clip (test-time averaging,
``features.window_hop_s``): ``window@1.500s`` starts 1.5 s into the clip."""


def window_name(start_s: float) -> str:
    """The ``deformation`` value of the window starting ``start_s`` seconds into its clip."""
    return f"{WINDOW_PREFIX}{start_s:.3f}s"


def is_window(deformation: str) -> bool:
    """True for a test-time window record, not a deformed copy."""
    return deformation.startswith(WINDOW_PREFIX)


def fold_files(directory: str | os.PathLike, fold: int) -> list[str]:
    """Sorted shard paths of one fold in a record directory (``fold<k>.tfrecord``,
    ``fold<k>-00000-of-00002.tfrecord``, ...)."""
    d = os.fspath(directory)
    return sorted(set(glob.glob(os.path.join(d, f"fold{fold}.tfrecord")))
                  | set(glob.glob(os.path.join(d, f"fold{fold}-*.tfrecord"))))


def _example(features: dict) -> bytes:
    import tensorflow as tf

    feature = {}
    for key, value in features.items():
        if isinstance(value, (bytes, str)):
            raw = value.encode() if isinstance(value, str) else value
            feature[key] = tf.train.Feature(bytes_list=tf.train.BytesList(value=[raw]))
        else:
            number = int(value)
            if not -2 ** 63 <= number < 2 ** 63:  # protobuf's own error names no field
                raise ValueError(f"{key} {number} does not fit a 64-bit integer")
            feature[key] = tf.train.Feature(int64_list=tf.train.Int64List(value=[number]))
    # deterministic: map fields in key order, so the same example is the same bytes in every
    # process (the default order follows a per-process hash seed)
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString(
        deterministic=True)


def _parse(serialized: bytes) -> dict:
    import tensorflow as tf

    example = tf.train.Example.FromString(serialized)
    out = {}
    for key, feature in example.features.feature.items():
        kind = feature.WhichOneof("kind")
        out[key] = feature.bytes_list.value[0] if kind == "bytes_list" else feature.int64_list.value[0]
    return out


def encode_waveform(y: np.ndarray, *, sample_rate: int, label: int, fold: int, fs_id: int,
                    salience: int, file_name: str, class_name: str) -> bytes:
    """Serialise one decoded clip (y: float32 [shape=(n,)], at ``sample_rate`` Hz).

    Raises ValueError naming the field when an integer does not fit 64 bits."""
    return _example({
        "waveform": np.asarray(y, dtype="<f4").tobytes(), "sample_rate": sample_rate,
        "label": label, "fold": fold, "fs_id": fs_id, "salience": salience,
        "file_name": file_name, "class_name": class_name,
    })


@dataclass(frozen=True)
class WaveformRecord:
    """A decoded clip read back from ingest's TFRecords."""

    waveform: np.ndarray  # float32 [shape=(n,)]
    sample_rate: int
    label: int
    fold: int
    fs_id: int
    salience: int
    file_name: str
    class_name: str


def decode_waveform(serialized: bytes) -> WaveformRecord:
    d = _parse(serialized)
    return WaveformRecord(
        waveform=np.frombuffer(d["waveform"], dtype="<f4").copy(), sample_rate=int(d["sample_rate"]),
        label=int(d["label"]), fold=int(d["fold"]), fs_id=int(d["fs_id"]),
        salience=int(d["salience"]), file_name=d["file_name"].decode(),
        class_name=d["class_name"].decode())


INPUT_KINDS = ("logmel", "waveform")


def encode_features(values: np.ndarray, *, kind: str, label: int, fold: int, file_name: str,
                    deformation: str = ORIGINAL, salience: int = 0,
                    sample_rate: int = 0) -> bytes:
    """Serialise one model input: a log-mel (float32 [shape=(n_mels, n_frames)], dB) or a
    waveform (float32 [shape=(n_samples,)] at ``sample_rate`` Hz); ``salience`` 1
    foreground, 2 background, 0 unknown."""
    common = {"kind": kind, "label": label, "fold": fold, "file_name": file_name,
              "deformation": deformation, "salience": salience}
    data = np.asarray(values, dtype="<f4")
    if kind == "logmel":
        n_mels, n_frames = data.shape
        return _example({"logmel": data.tobytes(), "n_mels": n_mels, "n_frames": n_frames,
                         **common})
    if kind == "waveform":
        (n_samples,) = data.shape
        return _example({"samples": data.tobytes(), "n_samples": n_samples,
                         "sample_rate": sample_rate, **common})
    raise ValueError(f"unknown input kind {kind!r}; known: {', '.join(INPUT_KINDS)}")


def encode_logmel(logmel: np.ndarray, *, label: int, fold: int, file_name: str,
                  deformation: str = ORIGINAL, salience: int = 0) -> bytes:
    """Serialise one log-mel (float32 [shape=(n_mels, n_frames)], dB)."""
    return encode_features(logmel, kind="logmel", label=label, fold=fold, file_name=file_name,
                           deformation=deformation, salience=salience)


@dataclass(frozen=True)
class FeatureRecord:
    """One model input read back: ``values`` is float32 [shape=(n_mels, n_frames)] dB
    for ``kind == "logmel"``, [shape=(n_samples,)] for ``"waveform"``."""

    values: np.ndarray
    label: int
    fold: int
    file_name: str
    deformation: str
    salience: int = 0  # 1 foreground, 2 background, 0 unknown (records written before it)
    kind: str = "logmel"

    @property
    def logmel(self) -> np.ndarray:
        """The log-mel (float32 [shape=(n_mels, n_frames)], dB) of a log-mel record."""
        if self.kind != "logmel":
            raise ValueError(f"{self.file_name}: a {self.kind} record has no log-mel")
        return self.values


LogMelRecord = FeatureRecord  # the name of records written before waveform inputs


def decode_features(serialized: bytes) -> FeatureRecord:
    """Parse an example written by :func:`encode_features` (or :func:`encode_logmel`)."""
    d = _parse(serialized)
    kind = d["kind"].decode() if "kind" in d else "logmel"
    if kind == "waveform":
        values = np.frombuffer(d["samples"], dtype="<f4").reshape(int(d["n_samples"])).copy()
    else:
        shape = (int(d["n_mels"]), int(d["n_frames"]))
        values = np.frombuffer(d["logmel"], dtype="<f4").reshape(shape).copy()
    return FeatureRecord(
        values=values, label=int(d["label"]), fold=int(d["fold"]),
        file_name=d["file_name"].decode(), deformation=d["deformation"].decode(),
        salience=int(d.get("salience", 0)), kind=kind)


decode_logmel = decode_features


def iter_records(paths: list[str]):
    """Yield the raw serialized records of TFRecord files, in file order."""
    import tensorflow as tf

    for path in paths:
        for raw in tf.data.TFRecordDataset(path).as_numpy_iterator():
            yield raw


def write_records(path: str | os.PathLike, serialized) -> int:
    """Write an iterable of serialized examples to one TFRecord file; return the count."""
    import tensorflow as tf

    count = 0
    with tf.io.TFRecordWriter(os.fspath(path)) as writer:
        for raw in serialized:
            writer.write(raw)
            count += 1
    return count
