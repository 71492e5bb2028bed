"""Training input: the examples a model trains on, in memory or streamed, behind one interface.

:class:`Examples` holds some folds' model inputs as arrays (exact order by file name);
:class:`StreamedExamples` reads the training folds' shards with ``tf.data`` on every pass
(files interleaved, records parsed in the graph, shuffled in a bounded buffer, batched,
augmented, prefetched), so memory stays at the buffer's size whatever the data's: with the
study's 20 deformations a fold trains on ≈ 165k log-mels (≈ 10 GB as float32), more than a
laptop holds.  Both answer ``len``, ``input_shape``, ``band_statistics()``,
``count_originals()`` and ``fit_arguments()``, so training never asks which it has.

The streamed per-band statistics come from one streaming pass (float64 sums), equal to
:func:`band_statistics` on the same examples up to rounding.  ``train.input`` picks the
path (:func:`training_set`): ``"memory"``, ``"stream"``, or ``"auto"`` (stream when the
training examples would take more than :data:`AUTO_STREAM_BYTES`).
In-training augmentation of a batch (:func:`augment_batch`) serves both.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from urbansound.config import Config
from urbansound.records import ORIGINAL, decode_features, fold_files, is_window, iter_records

AUTO_STREAM_BYTES = 2 * 1024**3
"""``train.input="auto"`` streams a training set larger than this (2 GiB of float32)."""
SHUFFLE_BUFFER = 4096
"""Examples held for shuffling: 256 MB of 128×128 log-mels."""


@dataclass
class Examples:
    """Model inputs of some folds: x float32 [shape=(n, n_mels, n_frames, 1)] dB log-mels,
    or [shape=(n, n_samples, 1)] waveforms; y int [shape=(n,)]."""

    x: np.ndarray
    y: np.ndarray
    file_names: list[str]
    deformations: list[str]
    salience: list[int] = field(default_factory=list)  # 1 foreground, 2 background, 0 unknown
    # train.random_windows: the rows of each training clip's windows (its first window and
    # the later ones); train.deformed_copies="draw": of each clip's original and deformed
    # copies.  An epoch then draws one row per group.  None: every row, every epoch.
    groups: list[np.ndarray] | None = None
    # train.deformed_copies="all" with clips of unequal copy counts (a per-class policy):
    # how often each epoch unit (group, else row) trains per epoch (original_repeats)
    repeats: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.y)

    @property
    def epoch_size(self) -> int:
        """Examples one training epoch sees: one per group with window groups, else all;
        each as often as ``repeats`` says."""
        if self.repeats is not None:
            return int(self.repeats.sum())
        return len(self.groups) if self.groups is not None else len(self.y)

    @property
    def input_shape(self) -> tuple[int, ...]:
        """One example's shape with its channel axis, e.g. (128, 128, 1)."""
        return tuple(self.x.shape[1:])

    def band_statistics(self) -> tuple[np.ndarray, np.ndarray]:
        """Per-band mean [shape=(n_mels,)] dB and variance dB² (:func:`band_statistics`)."""
        return band_statistics(self.x)

    def count_originals(self) -> int:
        """Examples that are original clips (not deformed copies)."""
        return sum(d == ORIGINAL for d in self.deformations)

    def fit_arguments(
        self,
        config: Config,
        *,
        seed: int,
        n_classes: int,
        one_hot: bool,
        fill: np.ndarray | None = None,
    ) -> dict:
        """Keyword arguments of ``keras.Model.fit`` that feed these examples: augmented
        batches of one-hot targets (:class:`AugmentedBatches`) when ``one_hot``, else the
        arrays, shuffled by Keras (or, with ``repeats``, shuffled batches of the repeated
        rows and integer targets, without augmentation)."""
        if one_hot or self.repeats is not None:
            targets = np.eye(n_classes, dtype=np.float32)[self.y] if one_hot else self.y
            return dict(
                x=AugmentedBatches(
                    self.x,
                    targets,
                    config,
                    seed=seed,
                    fill=fill,
                    groups=self.groups,
                    versions=self.deformations,
                    repeats=self.repeats,
                    augment=one_hot,
                )
            )
        return dict(x=self.x, y=self.y, batch_size=config.train.batch_size, shuffle=True)


def load_examples(
    feature_dir: str | os.PathLike,
    folds: Sequence[int],
    *,
    include_deformed: bool,
    include_windows: bool = False,
) -> Examples:
    """Read the model-input examples (log-mels or waveforms) of ``folds``, sorted by (file
    name, deformation) so the order (and so training under a seed) does not depend on how
    Beam sharded the files.  ``include_windows``: also the later windows of long clips
    (test-time averaging; they follow their clip's first window in this order)."""
    items = []
    for fold in folds:
        paths = fold_files(feature_dir, fold)
        if not paths:
            raise FileNotFoundError(f"{feature_dir}: no log-mel records for fold {fold}")
        for raw in iter_records(paths):
            rec = decode_features(raw)
            window = is_window(rec.deformation)
            if (
                rec.deformation == ORIGINAL
                or (window and include_windows)
                or (include_deformed and not window)
            ):
                items.append((rec.file_name, rec.deformation, rec.label, rec.values, rec.salience))
    items.sort(key=lambda item: (item[0], item[1]))
    if not items:
        return Examples(np.zeros((0, 0, 0, 1), np.float32), np.zeros(0, np.int64), [], [])
    x = np.stack([item[3] for item in items])[..., None]
    y = np.array([item[2] for item in items], dtype=np.int64)
    return Examples(x, y, [i[0] for i in items], [i[1] for i in items], [i[4] for i in items])


def window_groups(examples: Examples, *, whole_clips: bool = False) -> list[np.ndarray]:
    """The rows of ``examples`` grouped by what one epoch draws from: an original clip's
    first window with its later windows (``window@…`` records) form one group; each
    deformed copy is a group of its own (the features stage windows originals only).
    ``whole_clips`` (``train.deformed_copies="draw"``): every row of a clip, its windows
    and its deformed copies, is one group.

    Returns a list of int64 arrays [shape=(k,)], in order of each group's first row."""
    groups: dict[tuple[str, str], list[int]] = {}
    for row, (name, deformation) in enumerate(zip(examples.file_names, examples.deformations)):
        if whole_clips:
            key = (name, "")
        else:
            key = (name, ORIGINAL if is_window(deformation) else deformation)
        groups.setdefault(key, []).append(row)
    return [np.asarray(rows, np.int64) for rows in groups.values()]


def copies_per_clip(file_names: Sequence[str], deformations: Sequence[str]) -> dict[str, int]:
    """Each clip's deformed copies among the rows (originals and windows are not copies)."""
    copies: dict[str, int] = {}
    for name, deformation in zip(file_names, deformations):
        copy = deformation != ORIGINAL and not is_window(deformation)
        copies[name] = copies.get(name, 0) + copy
    return copies


def original_repeats(copies: dict[str, int]) -> dict[str, int]:
    """How often each clip's original trains per epoch with ``train.deformed_copies="all"``,
    so that every clip counts 1 + (the most copies any clip has) examples: a clip with all
    the copies trains its original once, a clip of a class a per-class policy leaves
    unaugmented repeats its original 1 + max copies times.  Without this, a policy that
    gives some classes 20 copies and others none trains the latter 21× less (their recall
    collapsed on the dev clips: docs/study.md).  With equal copy counts every value is 1."""
    most = max(copies.values(), default=0)
    return {name: 1 + most - n for name, n in copies.items()}


def band_statistics(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and variance of each mel band over examples and frames.

    x : [shape=(n, n_mels, n_frames, 1)] → two arrays [shape=(n_mels,)] in dB and dB².

    Raises
    ------
    ValueError
        ``x`` holds a non-finite value: one bad example would make every statistic NaN
        and the fold train at chance.
    """
    x64 = x[..., 0].astype(np.float64)
    if not np.isfinite(x64).all():
        raise ValueError(
            f"{int((~np.isfinite(x64).all(axis=(1, 2))).sum())} training "
            f"example(s) hold non-finite log-mel values"
        )
    mean = x64.mean(axis=(0, 2))
    variance = x64.var(axis=(0, 2))
    return mean.astype(np.float32), np.maximum(variance, 1e-6).astype(np.float32)


def augment_batch(
    x: np.ndarray,
    y: np.ndarray,
    rng: np.random.Generator,
    *,
    mixup_alpha: float = 0.0,
    spec_augment: int = 0,
    time_shift: bool = False,
    fill: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """In-training augmentation of one batch of log-mels (training batches only).

    x : float32 [shape=(b, n_mels, n_frames, 1)] dB log-mels, or [shape=(b, n_samples, 1)]
        waveforms (time shift and mixup only); y : one-hot [shape=(b, n_classes)].
    time_shift : roll each example by a random number of frames (or samples) along time
        (a sound may start anywhere).
    spec_augment : log-mels only: that many frequency masks and as many time masks per example, each up to
        1/8 of its axis wide (SpecAugment), filled with ``fill`` (the per-band mean,
        [shape=(n_mels,)] dB, so that the standardised input reads 0 there) or the example's
        minimum.
    mixup_alpha : mix each example with another of the batch, weight ~ Beta(α, α), labels too.

    Returns new arrays; the inputs are not modified.
    """
    x = x.copy()
    y = y.astype(np.float32, copy=True)
    b: int = x.shape[0]
    time_axis = x.ndim - 2  # frames of (b, n_mels, n_frames, 1), samples of (b, n, 1)
    if time_shift:
        for i, shift in enumerate(rng.integers(0, x.shape[time_axis], size=b)):
            x[i] = np.roll(x[i], int(shift), axis=time_axis - 1)
    if spec_augment > 0 and x.ndim != 4:
        raise ValueError(f"spec_augment masks log-mels (b, n_mels, n_frames, 1); got {x.shape}")
    if spec_augment > 0:
        _, n_mels, n_frames, _ = x.shape
    for i in range(b if spec_augment > 0 else 0):
        column = (
            np.asarray(fill, np.float32)[:, None]
            if fill is not None
            else np.full((n_mels, 1), x[i, ..., 0].min(), np.float32)
        )
        for _ in range(spec_augment):
            width = int(rng.integers(0, n_mels // 8 + 1))
            start = int(rng.integers(0, n_mels - width + 1))
            x[i, start : start + width, :, 0] = column[start : start + width]
            width = int(rng.integers(0, n_frames // 8 + 1))
            start = int(rng.integers(0, n_frames - width + 1))
            x[i, :, start : start + width, 0] = column
    if mixup_alpha > 0:
        lam = rng.beta(mixup_alpha, mixup_alpha, size=b).astype(np.float32)
        lam = np.maximum(lam, 1 - lam)  # the first example stays the larger part
        partner = rng.permutation(b)
        weight = lam.reshape(b, *[1] * (x.ndim - 1))
        x = weight * x + (1 - weight) * x[partner]
        y = lam[:, None] * y + (1 - lam[:, None]) * y[partner]
    return x.astype(np.float32), y


def AugmentedBatches(
    x: np.ndarray,
    y: np.ndarray,
    config: Config,
    *,
    seed: int,
    fill: np.ndarray | None = None,
    groups: list[np.ndarray] | None = None,
    versions: Sequence[str] | None = None,
    repeats: np.ndarray | None = None,
    augment: bool = True,
):
    """A Keras ``PyDataset`` of shuffled, augmented training batches (:func:`augment_batch`),
    reshuffled every epoch from ``seed``: the same seed gives the same batches.

    groups : with ``train.random_windows``, the rows of each clip's windows
        (:func:`window_groups`): every epoch takes one row per group, drawn at random, so
        the model sees a random 3 s window of each 4 s clip (a random crop on the
        features' window grid); with ``train.deformed_copies="draw"`` a group also holds
        the clip's deformed copies.
    versions : each row's deformation name (``Examples.deformations``), which
        ``train.original_share`` needs to tell a clip's original from its copies.
    repeats : int [shape=(units,)]: how often each unit (group, else row) trains per epoch
        (:func:`original_repeats`); a repeated group draws its row anew each time.
    augment : False: the rows as they are (integer targets, no :func:`augment_batch`)."""
    import keras

    t = config.train
    units = len(groups) if groups is not None else len(x)
    if repeats is not None and len(repeats) != units:
        raise ValueError(f"repeats: {len(repeats)} values for {units} epoch units")
    unit_order = np.repeat(np.arange(units), repeats) if repeats is not None else None
    n_per_epoch = len(unit_order) if unit_order is not None else units
    share = t.original_share
    split_groups = None
    if groups is not None and share is not None:
        if versions is None:
            raise ValueError("train.original_share needs each row's version (versions=)")
        copy = np.array([v != ORIGINAL and not is_window(v) for v in versions])
        split_groups = [(g[~copy[g]], g[copy[g]]) for g in groups]

    class _Batches(keras.utils.PyDataset):
        def __init__(self):
            super().__init__()
            self.rng = np.random.default_rng(seed)
            self.order = self._draw()

        def _draw(self) -> np.ndarray:
            if groups is None:
                if unit_order is not None:
                    return unit_order[self.rng.permutation(len(unit_order))]
                return self.rng.permutation(len(x))
            if split_groups is not None and share is not None:
                return self._draw_with_original_share(split_groups, share)
            drawn = unit_order if unit_order is not None else np.arange(units)
            picks = self.rng.random(len(drawn))
            rows = np.array(
                [groups[u][int(p * len(groups[u]))] for u, p in zip(drawn, picks)], np.int64
            )
            return rows[self.rng.permutation(len(rows))]

        def _draw_with_original_share(self, split, share: float) -> np.ndarray:
            # each clip: its original (or one of its windows) with probability share, else
            # one of its copies; a clip without copies always trains its original
            take_original = self.rng.random(len(split)) < share
            picks = self.rng.random(len(split))
            chosen = []
            for (own, copies), original, pick in zip(split, take_original, picks):
                pool = own if original or len(copies) == 0 else copies
                chosen.append(pool[int(pick * len(pool))])
            rows = np.asarray(chosen, np.int64)
            return rows[self.rng.permutation(len(rows))]

        def __len__(self):
            return -(-n_per_epoch // t.batch_size)

        def __getitem__(self, index):
            rows = self.order[index * t.batch_size : (index + 1) * t.batch_size]
            if not augment:
                return x[rows], y[rows]
            return augment_batch(
                x[rows],
                y[rows],
                self.rng,
                mixup_alpha=t.mixup_alpha,
                spec_augment=t.spec_augment,
                time_shift=t.time_shift,
                fill=fill,
            )

        def on_epoch_end(self):
            self.order = self._draw()

    return _Batches()


def _parse_spec(kind: str):
    import tensorflow as tf

    values = "samples" if kind == "waveform" else "logmel"
    return values, {
        values: tf.io.FixedLenFeature([], tf.string),
        "label": tf.io.FixedLenFeature([], tf.int64),
        "deformation": tf.io.FixedLenFeature([], tf.string, default_value=""),
        "file_name": tf.io.FixedLenFeature([], tf.string, default_value=""),
    }


def record_dataset(
    paths: Sequence[str],
    *,
    kind: str,
    input_shape: tuple[int, ...],
    include_deformed: bool,
    with_names: bool = False,
):
    """``tf.data.Dataset`` of (x float32 [shape=input_shape], label int64) from feature
    shards: files interleaved (deterministic order), originals and (with
    ``include_deformed``) deformed copies; test-time windows never.  ``with_names``: also
    each example's file name and deformation (strings; "" for an original)."""
    import tensorflow as tf

    values, spec = _parse_spec(kind)

    def parse(raw):
        ex = tf.io.parse_single_example(raw, spec)
        x = tf.reshape(tf.io.decode_raw(ex[values], tf.float32, little_endian=True), input_shape)
        return x, ex["label"], ex["file_name"], ex["deformation"]

    def wanted(x, label, file_name, deformation):
        if include_deformed:
            return tf.logical_not(tf.strings.regex_full_match(deformation, "window@.*"))
        return tf.equal(deformation, "")

    files = tf.data.Dataset.from_tensor_slices(sorted(paths))
    ds = (
        files.interleave(
            tf.data.TFRecordDataset,
            cycle_length=min(4, len(paths)) or 1,
            num_parallel_calls=tf.data.AUTOTUNE,
            deterministic=True,
        )
        .map(parse, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        .filter(wanted)
    )
    if with_names:
        return ds
    return ds.map(lambda x, label, file_name, deformation: (x, label))


def keep_probabilities(copies: int, original_share: float | None) -> tuple[float, float]:
    """(original, each copy): the probability that one epoch of streamed, drawn training
    keeps a clip's original and each of its ``copies`` deformed copies, so that an epoch
    holds one version of every clip in expectation (``train.deformed_copies="draw"``).
    ``original_share`` None: every version equally likely."""
    if copies == 0:
        return 1.0, 0.0
    if original_share is None:
        return 1.0 / (1 + copies), 1.0 / (1 + copies)
    return original_share, (1.0 - original_share) / copies


class StreamedExamples:
    """The training examples of some folds, read from their shards on every pass.

    Parameters
    ----------
    feature_dir : the features stage's output.
    folds : the training folds.
    kind : ``"logmel"`` or ``"waveform"``; input_shape : one example's shape with its
        channel axis, e.g. (128, 128, 1).
    draw, original_share : ``train.deformed_copies="draw"`` and ``train.original_share``:
        every epoch keeps each record with the probability of :func:`keep_probabilities`
        (seeded), so an epoch holds one version of each clip in expectation and costs what
        unaugmented training costs (the copies are still read, not trained on).
    """

    def __init__(
        self,
        feature_dir: str | os.PathLike,
        folds: Sequence[int],
        *,
        kind: str,
        input_shape: tuple[int, ...],
        include_deformed: bool = True,
        draw: bool = False,
        original_share: float | None = None,
    ):
        self.feature_dir, self.folds = feature_dir, tuple(folds)
        self.paths = []
        for fold in folds:
            found = fold_files(feature_dir, fold)
            if not found:
                raise FileNotFoundError(f"{feature_dir}: no log-mel records for fold {fold}")
            self.paths += found
        self.kind = kind
        self.input_shape = tuple(input_shape)
        self.include_deformed = include_deformed
        self.draw, self.original_share = draw, original_share
        self._count: int | None = None
        self._originals: int | None = None
        self._stats: tuple[np.ndarray, np.ndarray] | None = None
        self._copies: dict[str, int] = {}  # file name -> its deformed copies
        self._repeats: dict[str, int] = {}  # file name -> its original's repeats (not draw)

    def dataset(self, *, with_names: bool = False):
        """Unbatched (x, label) in file order (and file name, deformation)."""
        return record_dataset(
            self.paths,
            kind=self.kind,
            input_shape=self.input_shape,
            include_deformed=self.include_deformed,
            with_names=with_names,
        )

    def scan(self) -> None:
        """One pass: the example count, the originals' count, each clip's copies and the
        per-band sums (log-mels)."""
        n = originals = 0
        sums: np.ndarray | None = None
        sumsq: np.ndarray | None = None
        bad = 0
        copies: dict[str, int] = {}
        for x, _, names, deformations in (
            self.dataset(with_names=True).batch(512).as_numpy_iterator()
        ):
            n += len(x)
            originals += int(np.count_nonzero(deformations == b""))
            # each clip's copies: a drawn epoch's probabilities, an "all" epoch's repeats
            for name, deformation in zip(names, deformations):
                key = name.decode()
                copies[key] = copies.get(key, 0) + (deformation != b"")
            if self.kind != "logmel":
                continue
            x64 = x[..., 0].astype(np.float64)  # (b, n_mels, n_frames)
            finite = np.isfinite(x64).all(axis=(1, 2))
            bad += int((~finite).sum())
            if bad:
                continue
            s, q = x64.sum(axis=(0, 2)), (x64**2).sum(axis=(0, 2))
            sums = s if sums is None else sums + s
            sumsq = q if sumsq is None else sumsq + q
        if bad:
            raise ValueError(f"{bad} training example(s) hold non-finite log-mel values")
        self._count, self._originals = n, originals
        self._copies = copies
        self._repeats = original_repeats(copies)
        if sums is not None:
            assert sumsq is not None  # summed together
            frames = n * self.input_shape[1]
            mean = sums / frames
            variance = np.maximum(sumsq / frames - mean**2, 1e-6)
            self._stats = (mean.astype(np.float32), variance.astype(np.float32))

    def __len__(self) -> int:
        if self._count is None:
            self.scan()
        assert self._count is not None  # scan() counts
        return self._count

    @property
    def epoch_size(self) -> int:
        """Examples one training epoch sees: all of them (each clip's original repeated as
        :func:`original_repeats` says), or with ``draw`` one per clip."""
        n = len(self)  # scans once
        if self.draw:
            return len(self._copies)
        return n + sum(r - 1 for r in self._repeats.values())

    def _repeats_needed(self) -> bool:
        len(self)  # scans once
        return any(r > 1 for r in self._repeats.values())

    def band_statistics(self) -> tuple[np.ndarray, np.ndarray] | None:
        """Per-band mean [shape=(n_mels,)] dB and variance dB² of the training log-mels
        (None when the records hold no example)."""
        if self.kind != "logmel":
            raise ValueError("band statistics are for log-mel inputs")
        if self._stats is None:
            self.scan()
        return self._stats

    def batches(
        self,
        config,
        *,
        seed: int,
        n_classes: int,
        one_hot: bool,
        fill: np.ndarray | None = None,
        shuffle_buffer: int = SHUFFLE_BUFFER,
    ):
        """Shuffled (seeded, reshuffled each epoch), batched, augmented (as
        :func:`augment_batch`), prefetched training batches."""
        import tensorflow as tf

        t = config.train
        if self.draw:
            ds = self._drawn(seed)  # endless; fit_arguments says an epoch's steps
        else:
            ds = self._repeated() if self._repeats_needed() else self.dataset()
            # the count is known from the scan: Keras then knows an epoch's steps
            ds = ds.apply(tf.data.experimental.assert_cardinality(self.epoch_size))
        ds = ds.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
        ds = ds.batch(t.batch_size)
        if one_hot:
            rng = np.random.default_rng(seed)

            def augment(x, label):
                y = np.eye(n_classes, dtype=np.float32)[label]
                return augment_batch(
                    x,
                    y,
                    rng,
                    mixup_alpha=t.mixup_alpha,
                    spec_augment=t.spec_augment,
                    time_shift=t.time_shift,
                    fill=fill,
                )

            def tf_augment(x, label):
                x2, y2 = tf.numpy_function(
                    augment, [x, label], [tf.float32, tf.float32], stateful=True
                )
                x2.set_shape(x.shape)
                y2.set_shape([None, n_classes])
                return x2, y2

            ds = ds.map(tf_augment)  # sequential: the generator's draws stay in order
        return ds.prefetch(tf.data.AUTOTUNE)

    def _repeated(self):
        """(x, label) in file order, each original as often as :func:`original_repeats`
        says (the shuffle buffer spreads the repeats)."""
        import tensorflow as tf

        repeats = self._repeats
        names = sorted(repeats)
        table = tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(
                tf.constant(names, tf.string),
                tf.constant([repeats[n] for n in names], tf.int64),
            ),
            default_value=1,
        )

        def repeated(x, label, file_name, deformation):
            times = tf.where(tf.equal(deformation, ""), table.lookup(file_name), 1)
            return tf.data.Dataset.from_tensors((x, label)).repeat(times)

        return self.dataset(with_names=True).flat_map(repeated)

    def _drawn(self, seed: int, *, with_names: bool = False):
        """The records repeated without end, each kept with its :func:`keep_probabilities`
        from a stateless draw on (seed, position in the stream): deterministic under a seed,
        different every epoch.  Elements (x, label) (and file name, deformation)."""
        import tensorflow as tf

        len(self)  # the scan finds each clip's copies
        names = sorted(self._copies) or [""]
        p_original, p_copy = zip(
            *(keep_probabilities(self._copies.get(n, 0), self.original_share) for n in names)
        )

        def table(values):  # file name -> probability (a clip the scan did not see: 1)
            return tf.lookup.StaticHashTable(
                tf.lookup.KeyValueTensorInitializer(
                    tf.constant(names, tf.string), tf.constant(values, tf.float32)
                ),
                default_value=1.0,
            )

        original_table, copy_table = table(p_original), table(p_copy)

        def keep(index, example):
            _, _, file_name, deformation = example
            p = tf.where(
                tf.equal(deformation, ""),
                original_table.lookup(file_name),
                copy_table.lookup(file_name),
            )
            u = tf.random.stateless_uniform([], seed=tf.stack([tf.constant(seed, tf.int64), index]))
            return u < p

        return (
            self.dataset(with_names=True)
            .repeat()
            .enumerate()
            .filter(keep)
            .map(lambda index, example: example if with_names else (example[0], example[1]))
        )

    def count_originals(self) -> int:
        """Examples that are original clips, counted by the scan (loading the originals
        would undo the streaming)."""
        len(self)  # scans once
        assert self._originals is not None  # scan() counts
        return self._originals

    def fit_arguments(
        self, config, *, seed: int, n_classes: int, one_hot: bool, fill: np.ndarray | None = None
    ) -> dict:
        """Keyword arguments of ``keras.Model.fit``: the shuffled batches of :meth:`batches`
        (Keras must not shuffle a dataset)."""
        arguments = dict(
            x=self.batches(config, seed=seed, n_classes=n_classes, one_hot=one_hot, fill=fill),
            shuffle=False,
        )
        if self.draw:  # an endless stream: an epoch is one batch per batch_size clips
            arguments["steps_per_epoch"] = -(-self.epoch_size // config.train.batch_size)
        return arguments


def should_stream(
    feature_dir: str | os.PathLike, folds: Sequence[int], setting: str, input_shape: tuple[int, ...]
) -> bool:
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


def training_set(feature_dir: str | os.PathLike, folds: Sequence[int], config: Config):
    """The training examples of ``folds`` (originals and deformed copies): arrays
    (:class:`Examples`), or :class:`StreamedExamples` when ``train.input`` says to stream
    (:func:`should_stream`): either way the same interface (``len``, ``input_shape``,
    ``band_statistics()``, ``count_originals()``, ``fit_arguments()``)."""
    from urbansound.features import input_shape as model_input_shape

    shape = model_input_shape(config)
    random_windows = config.train.random_windows
    draw_copies = config.train.deformed_copies == "draw"
    if should_stream(feature_dir, folds, config.train.input, shape):
        import logging

        log = logging.getLogger(__name__)
        if random_windows:
            log.warning(
                "train.random_windows: streamed training input reads each clip's first "
                "window only (random windows need the examples in memory: train.input=memory)"
            )
        return StreamedExamples(
            feature_dir,
            folds,
            kind=config.input_kind,
            input_shape=shape,
            draw=draw_copies,
            original_share=config.train.original_share,
        )
    examples = load_examples(
        feature_dir, folds, include_deformed=True, include_windows=random_windows
    )
    if random_windows or draw_copies:
        examples.groups = window_groups(examples, whole_clips=draw_copies)
    if not draw_copies:
        examples.repeats = unit_repeats(examples)
    return examples


def unit_repeats(examples: Examples) -> np.ndarray | None:
    """With every copy trained (``train.deformed_copies="all"``): how often each epoch
    unit (group, else row) of ``examples`` trains, its original repeated as
    :func:`original_repeats` says; None when every clip has as many copies (nothing to
    balance)."""
    repeats = original_repeats(copies_per_clip(examples.file_names, examples.deformations))
    if all(r == 1 for r in repeats.values()):
        return None
    per_row = np.array(
        [
            repeats[name] if deformation == ORIGINAL else 1
            for name, deformation in zip(examples.file_names, examples.deformations)
        ],
        np.int64,
    )
    if examples.groups is None:
        return per_row
    # a random-windows group is an original with its windows, or one copy
    return np.array([per_row[g].max() for g in examples.groups], np.int64)
