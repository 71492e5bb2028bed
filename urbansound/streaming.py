"""Training input streamed from the feature records, never the whole training set in RAM.

With the study's 20 deformations a fold trains on ≈ 165k log-mels (≈ 10 GB as float32):
more than a laptop holds.  :class:`StreamedExamples` reads the training folds' shards with
``tf.data`` (files interleaved, records parsed in the graph, shuffled in a bounded buffer,
batched, augmented, prefetched), so memory stays at the buffer's size whatever the data's.

The per-band statistics come from one streaming pass (float64 sums), equal to
:func:`urbansound.training.band_statistics` on the same examples up to rounding.
``train.input`` picks the path: ``"memory"`` (arrays, exact order by file name),
``"stream"``, or ``"auto"`` (stream when the training examples would take more than
:data:`AUTO_STREAM_BYTES`).
"""
from __future__ import annotations

import os
from typing import Sequence

import numpy as np

from urbansound.records import fold_files

AUTO_STREAM_BYTES = 2 * 1024 ** 3
"""``train.input="auto"`` streams a training set larger than this (2 GiB of float32)."""
SHUFFLE_BUFFER = 4096
"""Examples held for shuffling: 256 MB of 128×128 log-mels."""


def _parse_spec(kind: str):
    import tensorflow as tf

    values = "samples" if kind == "waveform" else "logmel"
    return values, {values: tf.io.FixedLenFeature([], tf.string),
                    "label": tf.io.FixedLenFeature([], tf.int64),
                    "deformation": tf.io.FixedLenFeature([], tf.string, default_value="")}


def record_dataset(paths: Sequence[str], *, kind: str, input_shape: tuple[int, ...],
                   include_deformed: bool):
    """``tf.data.Dataset`` of (x float32 [shape=input_shape], label int64) from feature
    shards: files interleaved (deterministic order), originals and (with
    ``include_deformed``) deformed copies; test-time windows never."""
    import tensorflow as tf

    values, spec = _parse_spec(kind)

    def parse(raw):
        ex = tf.io.parse_single_example(raw, spec)
        x = tf.reshape(tf.io.decode_raw(ex[values], tf.float32, little_endian=True), input_shape)
        return x, ex["label"], ex["deformation"]

    def wanted(x, label, deformation):
        if include_deformed:
            return tf.logical_not(tf.strings.regex_full_match(deformation, "window@.*"))
        return tf.equal(deformation, "")

    files = tf.data.Dataset.from_tensor_slices(sorted(paths))
    return (files.interleave(tf.data.TFRecordDataset, cycle_length=min(4, len(paths)) or 1,
                             num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
            .map(parse, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
            .filter(wanted)
            .map(lambda x, label, deformation: (x, label)))


class StreamedExamples:
    """The training examples of some folds, read from their shards on every pass.

    Parameters
    ----------
    feature_dir : the features stage's output.
    folds : the training folds.
    kind : ``"logmel"`` or ``"waveform"``; input_shape : one example's shape with its
        channel axis, e.g. (128, 128, 1).
    """

    def __init__(self, feature_dir: str | os.PathLike, folds: Sequence[int], *, kind: str,
                 input_shape: tuple[int, ...], include_deformed: bool = True):
        self.paths = []
        for fold in folds:
            found = fold_files(feature_dir, fold)
            if not found:
                raise FileNotFoundError(f"{feature_dir}: no log-mel records for fold {fold}")
            self.paths += found
        self.kind = kind
        self.input_shape = tuple(input_shape)
        self.include_deformed = include_deformed
        self._count: int | None = None
        self._stats = None

    def dataset(self):
        """Unbatched (x, label) in file order."""
        return record_dataset(self.paths, kind=self.kind, input_shape=self.input_shape,
                              include_deformed=self.include_deformed)

    def scan(self) -> None:
        """One pass: the example count and the per-band sums (log-mels)."""
        n = 0
        sums = sumsq = None
        bad = 0
        for x, _ in self.dataset().batch(512).as_numpy_iterator():
            n += len(x)
            if self.kind != "logmel":
                continue
            x64 = x[..., 0].astype(np.float64)  # (b, n_mels, n_frames)
            finite = np.isfinite(x64).all(axis=(1, 2))
            bad += int((~finite).sum())
            if bad:
                continue
            s, q = x64.sum(axis=(0, 2)), (x64 ** 2).sum(axis=(0, 2))
            sums = s if sums is None else sums + s
            sumsq = q if sumsq is None else sumsq + q
        if bad:
            raise ValueError(f"{bad} training example(s) hold non-finite log-mel values")
        self._count = n
        if sums is not None:
            frames = n * self.input_shape[1]
            mean = sums / frames
            variance = np.maximum(sumsq / frames - mean ** 2, 1e-6)
            self._stats = (mean.astype(np.float32), variance.astype(np.float32))

    def __len__(self) -> int:
        if self._count is None:
            self.scan()
        return self._count

    def band_statistics(self) -> tuple[np.ndarray, np.ndarray]:
        """Per-band mean [shape=(n_mels,)] dB and variance dB² of the training log-mels."""
        if self.kind != "logmel":
            raise ValueError("band statistics are for log-mel inputs")
        if self._stats is None:
            self.scan()
        return self._stats

    def batches(self, config, *, seed: int, n_classes: int, one_hot: bool,
                fill: np.ndarray | None = None, shuffle_buffer: int = SHUFFLE_BUFFER):
        """Shuffled (seeded, reshuffled each epoch), batched, augmented (as
        :func:`urbansound.training.augment_batch`), prefetched training batches."""
        import tensorflow as tf

        from urbansound.training import augment_batch

        t = config.train
        # the count is known from the scan: Keras then knows an epoch's steps
        ds = self.dataset().apply(tf.data.experimental.assert_cardinality(len(self)))
        ds = ds.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
        ds = ds.batch(t.batch_size)
        if one_hot:
            rng = np.random.default_rng(seed)

            def augment(x, label):
                y = np.eye(n_classes, dtype=np.float32)[label]
                return augment_batch(x, y, rng, mixup_alpha=t.mixup_alpha,
                                     spec_augment=t.spec_augment, time_shift=t.time_shift,
                                     fill=fill)

            def tf_augment(x, label):
                x2, y2 = tf.numpy_function(augment, [x, label], [tf.float32, tf.float32],
                                           stateful=True)
                x2.set_shape(x.shape)
                y2.set_shape([None, n_classes])
                return x2, y2

            ds = ds.map(tf_augment)  # sequential: the generator's draws stay in order
        return ds.prefetch(tf.data.AUTOTUNE)


def should_stream(feature_dir: str | os.PathLike, folds: Sequence[int], setting: str,
                  input_shape: tuple[int, ...]) -> bool:
    """``train.input``: ``"stream"``/``"memory"`` as said; ``"auto"`` streams when the
    manifest's example counts of ``folds`` times the example size exceed
    :data:`AUTO_STREAM_BYTES`."""
    if setting != "auto":
        return setting == "stream"
    import json

    path = os.path.join(os.fspath(feature_dir), "manifest.json")
    try:
        with open(path, encoding="utf-8") as fh:
            counts = json.load(fh)["folds"]
        n = sum(sum(v for k, v in counts[str(f)].items() if k != "windows") for f in folds)
    except (OSError, ValueError, KeyError, TypeError):
        return False  # no manifest (a hand-made feature folder): the arrays, as before
    return n * int(np.prod(input_shape)) * 4 > AUTO_STREAM_BYTES
