"""TFRecord schemas of the two intermediate datasets, and their readers and writers.

Waveforms (ingest's output), one ``tf.train.Example`` per clip::

    waveform   bytes  float32 little-endian samples at ``sample_rate`` Hz, mono
    sample_rate int   label int   fold int   fs_id int   salience int
    file_name  bytes  class_name bytes

Log-mels (the features stage's output), one example per clip or deformed copy::

    logmel     bytes  float32 little-endian, shape (n_mels, n_frames), dB
    n_mels int  n_frames int  label int  fold int  file_name bytes
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
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()


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


def encode_logmel(logmel: np.ndarray, *, label: int, fold: int, file_name: str,
                  deformation: str = ORIGINAL, salience: int = 0) -> bytes:
    """Serialise one log-mel (float32 [shape=(n_mels, n_frames)], dB); ``salience`` 1
    foreground, 2 background, 0 unknown."""
    n_mels, n_frames = logmel.shape
    return _example({
        "logmel": np.asarray(logmel, dtype="<f4").tobytes(), "n_mels": n_mels,
        "n_frames": n_frames, "label": label, "fold": fold, "file_name": file_name,
        "deformation": deformation, "salience": salience,
    })


@dataclass(frozen=True)
class LogMelRecord:
    logmel: np.ndarray  # float32 [shape=(n_mels, n_frames)], dB
    label: int
    fold: int
    file_name: str
    deformation: str
    salience: int = 0  # 1 foreground, 2 background, 0 unknown (records written before it)


def decode_logmel(serialized: bytes) -> LogMelRecord:
    d = _parse(serialized)
    shape = (int(d["n_mels"]), int(d["n_frames"]))
    return LogMelRecord(
        logmel=np.frombuffer(d["logmel"], dtype="<f4").reshape(shape).copy(), label=int(d["label"]),
        fold=int(d["fold"]), file_name=d["file_name"].decode(),
        deformation=d["deformation"].decode(), salience=int(d.get("salience", 0)))


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
