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
import struct
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
    return sorted(
        set(glob.glob(os.path.join(d, f"fold{fold}.tfrecord")))
        | set(glob.glob(os.path.join(d, f"fold{fold}-*.tfrecord")))
    )


# ---------------------------------------------------------------------------
# tf.train.Example in protobuf's wire format, without TensorFlow
# ---------------------------------------------------------------------------
# Importing TensorFlow costs every Beam worker about 7 s and a few hundred MB, only to
# (de)serialise a message of three levels.  The subset written here (bytes and int64
# features) is byte-for-byte what ``tf.train.Example.SerializeToString(deterministic=True)``
# gives (tested against TensorFlow); the reader also accepts TensorFlow's own output
# (packed or unpacked int64 lists, any field order).
#
#   Example  { Features features = 1; }
#   Features { map<string, Feature> feature = 1; }          entries: key = 1, value = 2
#   Feature  { oneof kind { BytesList bytes_list = 1; FloatList float_list = 2;
#                           Int64List int64_list = 3; } }
#   BytesList { repeated bytes value = 1; }   Int64List { repeated int64 value = 1 [packed]; }

_LEN, _VARINT, _I64, _I32 = 2, 0, 1, 5


def _varint(value: int) -> bytes:
    """Protobuf base-128 varint of a non-negative integer < 2**64."""
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _head(number: int, size: int) -> bytes:
    """Tag and length of a length-delimited field of ``size`` payload bytes."""
    return _varint(number << 3 | _LEN) + _varint(size)


def _field(number: int, payload: bytes) -> bytes:
    """A length-delimited field: tag, length, payload."""
    return _head(number, len(payload)) + payload


def _feature(key: str, value) -> list[bytes]:
    """One ``feature`` map entry as chunks whose concatenation is the entry.  A bytes
    value is a chunk of its own, never copied into nested fields (a clip's samples are
    hundreds of KB: four nested copies per record cost ingest seconds per thousand clips)."""
    if isinstance(value, (bytes, str)):
        raw = value.encode() if isinstance(value, str) else value
        value_head = _head(1, len(raw))  # BytesList.value
        feature = [_head(1, len(value_head) + len(raw)), value_head, raw]  # Feature.bytes_list
    else:
        number = int(value)
        if not -(2**63) <= number < 2**63:  # the same check protobuf makes, naming the field
            raise ValueError(f"{key} {number} does not fit a 64-bit integer")
        packed = _varint(number % 2**64)  # two's complement, 10 bytes if < 0
        feature = [_field(3, _field(1, packed))]  # int64_list { value: [n] }
    feature_size = sum(map(len, feature))
    key_field = _field(1, key.encode())
    value_head = _head(2, feature_size)
    entry_size = len(key_field) + len(value_head) + feature_size
    return [_head(1, entry_size), key_field, value_head, *feature]


def _example(features: dict) -> bytes:
    """Serialise ``{name: bytes | str | int}`` as a ``tf.train.Example``; map entries in
    key order (deterministic: the same example is the same bytes in every process)."""
    chunks = [chunk for key in sorted(features) for chunk in _feature(key, features[key])]
    return b"".join([_head(1, sum(map(len, chunks))), *chunks])


def _read_varint(data, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(data):
            raise ValueError("truncated protobuf varint")
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise ValueError("protobuf varint longer than 10 bytes")


def _fields(data):
    """Yield ``(field number, wire type, value)`` of one message: a memoryview for
    length-delimited fields, an int for varints; fixed-width fields are skipped."""
    pos, end = 0, len(data)
    while pos < end:
        tag, pos = _read_varint(data, pos)
        number, wire = tag >> 3, tag & 7
        if wire == _VARINT:
            value, pos = _read_varint(data, pos)
        elif wire == _LEN:
            size, pos = _read_varint(data, pos)
            if pos + size > end:
                raise ValueError("truncated protobuf field")
            value, pos = data[pos : pos + size], pos + size
        elif wire in (_I64, _I32):
            pos += 8 if wire == _I64 else 4
            continue
        else:
            raise ValueError(f"unsupported protobuf wire type {wire}")
        yield number, wire, value


def _first_value(feature):
    """The first value of a Feature message: bytes, int, or None (float or empty lists)."""
    for kind, _, payload in _fields(feature):
        if kind == 1:  # bytes_list
            for number, _, value in _fields(payload):
                if number == 1:
                    return bytes(value)
        elif kind == 3:  # int64_list
            for number, wire, value in _fields(payload):
                if number != 1:
                    continue
                if wire == _LEN:  # packed
                    if not len(value):
                        continue
                    value, _ = _read_varint(value, 0)
                return value - 2**64 if value >= 2**63 else value
    return None


def _parse(serialized: bytes) -> dict:
    """``{name: first value}`` of a serialised ``tf.train.Example`` (bytes or int values).

    Raises ValueError when the bytes are not a well-formed message."""
    data = memoryview(serialized)
    out = {}
    for number, _, features in _fields(data):
        if number != 1:
            continue
        for entry_number, _, entry in _fields(features):
            if entry_number != 1:
                continue
            key, feature = None, b""
            for part, _, value in _fields(entry):
                if part == 1:
                    key = bytes(value).decode()
                elif part == 2:
                    feature = value
            value = _first_value(feature)
            if key is not None and value is not None:
                out[key] = value
    return out


def encode_waveform(
    y: np.ndarray,
    *,
    sample_rate: int,
    label: int,
    fold: int,
    fs_id: int,
    salience: int,
    file_name: str,
    class_name: str,
) -> bytes:
    """Serialise one decoded clip (y: float32 [shape=(n,)], at ``sample_rate`` Hz).

    Raises ValueError naming the field when an integer does not fit 64 bits."""
    return _example(
        {
            "waveform": np.asarray(y, dtype="<f4").tobytes(),
            "sample_rate": sample_rate,
            "label": label,
            "fold": fold,
            "fs_id": fs_id,
            "salience": salience,
            "file_name": file_name,
            "class_name": class_name,
        }
    )


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
        waveform=np.frombuffer(d["waveform"], dtype="<f4").copy(),
        sample_rate=int(d["sample_rate"]),
        label=int(d["label"]),
        fold=int(d["fold"]),
        fs_id=int(d["fs_id"]),
        salience=int(d["salience"]),
        file_name=d["file_name"].decode(),
        class_name=d["class_name"].decode(),
    )


INPUT_KINDS = ("logmel", "waveform")


def encode_features(
    values: np.ndarray,
    *,
    kind: str,
    label: int,
    fold: int,
    file_name: str,
    deformation: str = ORIGINAL,
    salience: int = 0,
    sample_rate: int = 0,
) -> bytes:
    """Serialise one model input: a log-mel (float32 [shape=(n_mels, n_frames)], dB) or a
    waveform (float32 [shape=(n_samples,)] at ``sample_rate`` Hz); ``salience`` 1
    foreground, 2 background, 0 unknown."""
    common = {
        "kind": kind,
        "label": label,
        "fold": fold,
        "file_name": file_name,
        "deformation": deformation,
        "salience": salience,
    }
    data = np.asarray(values, dtype="<f4")
    if kind == "logmel":
        n_mels, n_frames = data.shape
        return _example(
            {"logmel": data.tobytes(), "n_mels": n_mels, "n_frames": n_frames, **common}
        )
    if kind == "waveform":
        (n_samples,) = data.shape
        return _example(
            {
                "samples": data.tobytes(),
                "n_samples": n_samples,
                "sample_rate": sample_rate,
                **common,
            }
        )
    raise ValueError(f"unknown input kind {kind!r}; known: {', '.join(INPUT_KINDS)}")


def encode_logmel(
    logmel: np.ndarray,
    *,
    label: int,
    fold: int,
    file_name: str,
    deformation: str = ORIGINAL,
    salience: int = 0,
) -> bytes:
    """Serialise one log-mel (float32 [shape=(n_mels, n_frames)], dB)."""
    return encode_features(
        logmel,
        kind="logmel",
        label=label,
        fold=fold,
        file_name=file_name,
        deformation=deformation,
        salience=salience,
    )


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
    values: np.ndarray
    if kind == "waveform":
        values = np.frombuffer(d["samples"], dtype="<f4").reshape(int(d["n_samples"])).copy()
    else:
        shape = (int(d["n_mels"]), int(d["n_frames"]))
        values = np.frombuffer(d["logmel"], dtype="<f4").reshape(shape).copy()
    return FeatureRecord(
        values=values,
        label=int(d["label"]),
        fold=int(d["fold"]),
        file_name=d["file_name"].decode(),
        deformation=d["deformation"].decode(),
        salience=int(d.get("salience", 0)),
        kind=kind,
    )


decode_logmel = decode_features


# ---------------------------------------------------------------------------
# TFRecord framing, without TensorFlow
# ---------------------------------------------------------------------------


def masked_crc(data: bytes) -> int:
    """TFRecord's checksum: CRC-32C, rotated right by 15 bits, plus a constant."""
    import google_crc32c

    crc = google_crc32c.value(data)
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def write_tfrecord(fh, data: bytes) -> None:
    """Append one record to an open binary file in TFRecord framing (length, masked
    CRC-32C of the length, data, masked CRC-32C of the data)."""
    length = struct.pack("<Q", len(data))
    fh.write(length + struct.pack("<I", masked_crc(length)))
    fh.write(data)  # not concatenated: a record can be hundreds of KB
    fh.write(struct.pack("<I", masked_crc(data)))


def iter_records(paths: list[str]):
    """Yield the raw serialized records of TFRecord files, in file order."""
    import tensorflow as tf

    for path in paths:
        yield from tf.data.TFRecordDataset(path).as_numpy_iterator()


def write_records(path: str | os.PathLike, serialized) -> int:
    """Write an iterable of serialized examples to one TFRecord file; return the count."""
    import tensorflow as tf

    count = 0
    with tf.io.TFRecordWriter(os.fspath(path)) as writer:
        for raw in serialized:
            writer.write(raw)
            count += 1
    return count
