"""Choose a training recipe by validation only: leave-one-fold-out over the given folds of
a features folder, several seeds per candidate, mean ± std, and the time per fold.

    .venv/bin/python bench/recipe_search.py --features DIR [--folds 1,2] [--seeds 0,1,2]
        [--candidate NAME=key=value,key=value ...] [--out bench/results/recipe_search.jsonl]

``DIR`` is the output of ``urbansound features`` (e.g. on the real dev tree as WAV).  Each
validation fold in ``--folds`` is held out in turn while every other fold of ``DIR``
trains (the held-back test folds of a study are not in ``DIR`` at all); a candidate is the
default configuration with ``--set``-style overrides.  Every finished (candidate, seed,
fold) is appended to the JSONL file at once, so an interrupted search resumes where it
stopped (finished ones are skipped).  The table printed at the end is the mean ± std over
seeds of the mean over folds, with the mean wall time of one fold's training.

``--train-fraction F`` (0 < F ≤ 1) trains on that share of the training folds' clips, drawn
per class with the seed (a clip's windows and deformed copies go with it; the validation
fold stays whole): a learning curve, to ask how much more data would help.

``--table-only`` without ``--candidate`` prints every candidate the file holds; with
``--probabilities-dir`` the table also scores each candidate's seed ensemble (the mean of
its seeds' probabilities) per fold.  Candidates may name the experimental models of
:data:`EXPERIMENTAL_MODELS` (``train.model=urbannet-deep``, ``urbannet-fullres``,
``urbannet-maxpool``, ``urbannet-per-band``), which
the library does not register, and the search-only options of :data:`SEARCH_OPTIONS`
(label smoothing, spectral pitch shift and time stretch, SGD momentum).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from unittest import mock

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

DEFAULT_CANDIDATES = {"default": ""}


def _urbannet_fullres(x, n_classes: int):
    """urbannet without its strided stem: four blocks at 128, 64, 32 and 16, pooled to 8×8
    (4× the compute per example).  Measured as a candidate, not adopted."""
    from urbansound.models import _urbannet

    return _urbannet(x, n_classes, stem=False)


def _urbannet_maxpool(x, n_classes: int):
    """urbannet with 2×2 max pooling after each block instead of average pooling (a short
    event keeps its peak).  Measured as a candidate, not adopted."""
    from urbansound.models import _urbannet

    return _urbannet(x, n_classes, pooling="max")


def _urbannet_per_band(x, n_classes: int):
    """urbannet whose head pools over time only and keeps its 4 frequency bands apart
    (models._per_band_head).  Measured as a candidate."""
    from urbansound.models import _urbannet

    return _urbannet(x, n_classes, head="per_band")


def _urbannet_deep(x, n_classes: int):
    """urbannet without its stem and one block deeper: five blocks of 16, 32, 64, 128 and
    256 filters at 128, 64, 32, 16 and 8 (full resolution first, as a VGG; pooled to
    4×4), ≈ 1.9× urbannet's multiply-adds per example (≈ 3.5× its time per training in
    the search).  Measured as a candidate, not adopted."""
    from urbansound.models import _urbannet

    return _urbannet(x, n_classes, widths=(16, 32, 64, 128, 256), stem=False)


EXPERIMENTAL_MODELS = {
    "urbannet-deep": _urbannet_deep,
    "urbannet-fullres": _urbannet_fullres,
    "urbannet-maxpool": _urbannet_maxpool,
    "urbannet-per-band": _urbannet_per_band,
}
"""Model bodies only this search registers (with urbannet's recipe), by name."""


def register_experimental_models() -> None:
    import dataclasses

    from urbansound import models

    for name, body in EXPERIMENTAL_MODELS.items():
        models.MODELS.setdefault(
            name, dataclasses.replace(models.MODELS["urbannet"], name=name, body=body)
        )


def parse_candidate(text: str) -> tuple[str, str]:
    """``name=key=value,key=value`` -> (name, "key=value,key=value")."""
    name, _, overrides = text.partition("=")
    if not name:
        raise argparse.ArgumentTypeError(f"--candidate needs NAME=KEY=VALUE,...: {text!r}")
    return name, overrides


SEARCH_OPTIONS = {
    "search.label_smoothing": float,
    "search.freq_shift": int,
    "search.time_stretch": float,
    "search.momentum": float,
    "search.recording_balance": float,
}
"""Overrides only this search knows (experiments the configuration has no key for):
``search.label_smoothing=0.1`` trains on the categorical cross-entropy with that label
smoothing (Keras' ``label_smoothing``); ``search.freq_shift=K`` and
``search.time_stretch=R`` deform each training log-mel before the configured in-batch
augmentation (:func:`spectral_deform`): a cheap stand-in for muda's pitch shift and time
stretch; ``search.momentum=M`` with ``train.optimizer=sgd`` trains with Nesterov momentum M
and the recipe's weight decay (the library's ``sgd`` is the study's plain SGD);
``search.recording_balance=P`` draws each epoch's rows with probability ∝ (slices of the
row's recording) ** -P (:func:`recording_draw_probabilities`), so a long recording weighs
less."""


def spectral_deform(
    x: np.ndarray,
    rng: np.random.Generator,
    *,
    freq_shift: int = 0,
    time_stretch: float = 0.0,
    fill: np.ndarray | None = None,
) -> np.ndarray:
    """Pitch shift and time stretch approximated on log-mels, per example.

    x : float32 [shape=(b, n_mels, n_frames, 1)] dB log-mels.
    time_stretch : each example is resampled along time by a rate drawn log-uniformly in
        [1 / (1 + R), 1 + R] (linear interpolation; a faster clip wraps around, as the
        time shift's roll does).
    freq_shift : each example moves by a whole number of mel bands drawn in [-K, K] (above
        ≈ 1 kHz, 2 bands of 128 up to 11 kHz are about a semitone); the bands it uncovers
        read ``fill`` [shape=(n_mels,)] dB (the per-band mean), else the example's minimum.

    Returns a new array of x's shape.
    """
    x = np.array(x, np.float32, copy=True)
    b, n_mels, n_frames, _ = x.shape
    frames = np.arange(n_frames, dtype=np.float64)
    for i in range(b):
        image = x[i, :, :, 0]
        if time_stretch > 0:
            rate = float(np.exp(rng.uniform(-np.log1p(time_stretch), np.log1p(time_stretch))))
            source = (frames * rate) % n_frames
            low = np.floor(source).astype(np.int64)
            high = (low + 1) % n_frames
            weight = (source - low).astype(np.float32)
            image = image[:, low] * (1 - weight) + image[:, high] * weight
        if freq_shift > 0:
            shift = int(rng.integers(-freq_shift, freq_shift + 1))
            column = (
                np.asarray(fill, np.float32)
                if fill is not None
                else np.full(n_mels, image.min(), np.float32)
            )
            image = np.roll(image, shift, axis=0)
            if shift > 0:
                image[:shift] = column[:shift, None]
            elif shift < 0:
                image[shift:] = column[shift:, None]
        x[i, :, :, 0] = image
    return x


def parse_overrides(overrides: str) -> tuple[dict, dict]:
    """``"key=value,..."`` -> (configuration overrides, :data:`SEARCH_OPTIONS` values)."""
    values: dict = {}
    search: dict = {}
    for pair in filter(None, overrides.split(",")):
        key, _, text = pair.partition("=")
        if key in SEARCH_OPTIONS:
            search[key] = SEARCH_OPTIONS[key](text)
            continue
        try:  # as --set reads a value: JSON when it parses, else the string
            values[key] = json.loads(text)
        except json.JSONDecodeError:
            values[key] = text
    return values, search


@contextlib.contextmanager
def search_options_applied(search: dict):
    """The search options in force for the duration: label smoothing patched into
    ``keras.Model.compile`` (the training compiles a categorical cross-entropy when it
    augments its batches), the spectral deformations into
    ``training_input.augment_batch``, SGD momentum into ``models.make_optimizer``, the
    recording-balanced draw into ``training_input.Examples.fit_arguments``; all restored
    afterwards."""
    with contextlib.ExitStack() as stack:
        stack.enter_context(_label_smoothing_applied(search.get("search.label_smoothing")))
        stack.enter_context(_momentum_applied(search.get("search.momentum")))
        stack.enter_context(_recording_balance_applied(search.get("search.recording_balance")))
        stack.enter_context(
            _spectral_deform_applied(
                search.get("search.freq_shift", 0), search.get("search.time_stretch", 0.0)
            )
        )
        yield


@contextlib.contextmanager
def _spectral_deform_applied(freq_shift: int, time_stretch: float):
    if not freq_shift and not time_stretch:
        yield
        return
    from urbansound import training_input

    original = training_input.augment_batch

    def augment_batch(x, y, rng, **kwargs):
        if x.ndim == 4:  # log-mels; a waveform passes unchanged
            x = spectral_deform(
                x, rng, freq_shift=freq_shift, time_stretch=time_stretch, fill=kwargs.get("fill")
            )
        return original(x, y, rng, **kwargs)

    with mock.patch.object(training_input, "augment_batch", augment_batch):
        yield


@contextlib.contextmanager
def _momentum_applied(momentum: float | None):
    if not momentum:
        yield
        return
    from urbansound import models

    def make_optimizer(name, learning_rate, weight_decay=0.0):
        if name != "sgd":
            raise SystemExit(f"search.momentum needs train.optimizer=sgd, not {name}")
        import keras

        return keras.optimizers.SGD(
            learning_rate=learning_rate,
            momentum=momentum,
            nesterov=True,
            weight_decay=weight_decay or None,
        )

    with mock.patch.object(models, "make_optimizer", make_optimizer):
        yield


def recording_of(file_name) -> str:
    """The recording a clip was cut from: UrbanSound8K names a slice
    [fsID]-[class]-[occurrence]-[slice].wav, and the fsID is its recording.  A fold keeps
    all the slices of a recording, and they share their mistakes."""
    return Path(str(file_name)).name.split("-")[0]


def recording_draw_probabilities(file_names: Sequence[str], power: float) -> np.ndarray:
    """The probability [shape=(n,)] of drawing each training row, ∝ (slices of its
    recording) ** -power (:func:`recording_of`); they sum to 1.

    One long recording can give a class 70 nearly identical slices.  power 0: every row
    alike (the usual epoch); 1: every recording alike, whatever its length; 0.5 between."""
    recordings = [recording_of(name) for name in file_names]
    _, index, counts = np.unique(recordings, return_inverse=True, return_counts=True)
    weights = counts[index].astype(np.float64) ** -power
    return weights / weights.sum()


@contextlib.contextmanager
def _recording_balance_applied(power: float | None):
    """Each training epoch draws as many rows as there are, with replacement, with
    :func:`recording_draw_probabilities`, instead of a permutation of every row."""
    if power is None:
        yield
        return
    from urbansound import training_input

    original = training_input.Examples.fit_arguments

    def fit_arguments(self, config, **kwargs):
        arguments = original(self, config, **kwargs)
        batches = arguments.get("x")
        if self.groups is not None or self.repeats is not None or not hasattr(batches, "_draw"):
            raise SystemExit(
                "search.recording_balance needs augmented in-memory batches of whole clips "
                "(no window groups, deformed copies or repeats)"
            )
        probabilities = recording_draw_probabilities(self.file_names, power)

        def draw() -> np.ndarray:
            return batches.rng.choice(len(probabilities), size=len(probabilities), p=probabilities)

        batches._draw = draw  # on_epoch_end draws the next epoch with it
        batches.order = draw()
        return arguments

    with mock.patch.object(training_input.Examples, "fit_arguments", fit_arguments):
        yield


@contextlib.contextmanager
def _label_smoothing_applied(smoothing: float | None):
    if not smoothing:
        yield
        return
    import keras

    original = keras.Model.compile

    def compile(self, *args, loss=None, **kwargs):
        if loss != "categorical_crossentropy":
            raise SystemExit(f"search.label_smoothing needs one-hot targets; the loss is {loss}")
        loss = keras.losses.CategoricalCrossentropy(label_smoothing=smoothing)
        return original(self, *args, loss=loss, **kwargs)

    with mock.patch.object(keras.Model, "compile", compile):
        yield


def config_of(overrides: str, seed: int):
    from urbansound.config import Config

    values, _ = parse_overrides(overrides)
    values["train.seed"] = seed
    # one model per (candidate, seed) row, whatever the recipe's ensemble: the seed
    # ensemble is scored afterwards from the kept probabilities
    values.setdefault("train.ensemble", 1)
    return Config().override(**values).validated()


def done_keys(path: Path) -> set[tuple[str, str, int, int, float]]:
    if not path.exists():
        return set()
    keys = set()
    for line in path.read_text().splitlines():
        row = json.loads(line)
        keys.add(
            (
                row["candidate"],
                row["overrides"],
                row["seed"],
                row["validation_fold"],
                row.get("train_fraction", 1.0),
            )
        )
    return keys


def clip_subset(file_names, labels, fraction: float, seed: int) -> np.ndarray:
    """Boolean mask [shape=(n,)] of the rows whose clip (file name) is kept: of each class,
    ``round(fraction × its clips)`` clips (at least one), drawn with ``seed``.  Every row of
    a kept clip is kept (its windows and deformed copies)."""
    file_names = np.asarray(file_names)
    labels = np.asarray(labels)
    kept: set[str] = set()
    rng = np.random.default_rng(seed)
    for label in np.unique(labels):
        clips = sorted(set(file_names[labels == label].tolist()))
        count = max(1, round(fraction * len(clips)))
        kept.update(rng.choice(clips, size=count, replace=False).tolist())
    return np.isin(file_names, sorted(kept))


@contextlib.contextmanager
def training_subset(training, fraction: float, seed: int):
    """With ``fraction`` < 1, ``training`` (the :mod:`urbansound.training` module) builds
    its training set with :func:`clip_subset` of the training examples (in memory only)
    for the duration."""
    if fraction >= 1:
        yield
        return
    import dataclasses

    from urbansound import training_input

    original = training.training_set

    def training_set(feature_dir, folds, config):
        examples = original(feature_dir, folds, config)
        if not isinstance(examples, training_input.Examples):
            raise SystemExit(
                "--train-fraction needs the training set in memory: train.input=memory"
            )
        mask = clip_subset(examples.file_names, examples.y, fraction, seed)
        rows = np.flatnonzero(mask)
        subset = dataclasses.replace(
            examples,
            x=examples.x[rows],
            y=examples.y[rows],
            file_names=[examples.file_names[i] for i in rows],
            deformations=[examples.deformations[i] for i in rows],
            salience=[examples.salience[i] for i in rows] if examples.salience else [],
            groups=None,
        )
        if examples.groups is not None:
            subset.groups = training_input.window_groups(
                subset, whole_clips=config.train.deformed_copies == "draw"
            )
        return subset

    training.training_set = training_set
    try:
        yield
    finally:
        training.training_set = original


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--features", type=Path, help="an `urbansound features` output (not for --table-only)"
    )
    parser.add_argument("--folds", default="1,2", help="validation folds, held out in turn")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--candidate", action="append", type=parse_candidate, default=[])
    parser.add_argument(
        "--out", type=Path, default=Path(__file__).parent / "results" / "recipe_search.jsonl"
    )
    parser.add_argument(
        "--train-fraction",
        type=float,
        default=1.0,
        help="train on this share of the training folds' clips (per class, drawn with the "
        "seed; the validation fold stays whole): a point of a learning curve",
    )
    parser.add_argument("--table-only", action="store_true", help="print the table and stop")
    parser.add_argument(
        "--pool",
        metavar="NAME,NAME",
        help="with --probabilities-dir: print the accuracy of one ensemble of every kept "
        "model of these candidates, per validation fold, and the share of clips no model "
        "got right; then stop",
    )
    parser.add_argument(
        "--probabilities-dir",
        type=Path,
        help="also keep each run's held-out class probabilities here (one .npz per "
        "candidate, seed and fold), so an ensemble over seeds can be scored afterwards",
    )
    args = parser.parse_args(argv)
    if args.pool:
        if args.probabilities_dir is None:
            parser.error("--pool needs --probabilities-dir")
        folds = [int(f) for f in args.folds.split(",")]
        print(pool_table(args.probabilities_dir, args.pool.split(","), folds))
        return 0
    if args.table_only:
        candidates = dict(args.candidate) or recorded_candidates(args.out)
        print(table(args.out, candidates, args.probabilities_dir))
        return 0
    if args.features is None:
        parser.error("--features is required unless --table-only")
    if not 0 < args.train_fraction <= 1:
        parser.error(f"--train-fraction must be in (0, 1], not {args.train_fraction}")
    candidates = dict(args.candidate) or DEFAULT_CANDIDATES
    folds = [int(f) for f in args.folds.split(",")]
    seeds = [int(s) for s in args.seeds.split(",")]
    manifest = json.loads((args.features / "manifest.json").read_text())
    available = sorted(int(f) for f in manifest["folds"])
    args.out.parent.mkdir(parents=True, exist_ok=True)
    finished = done_keys(args.out)
    for name in candidates:
        other = {key[4] for key in finished if key[0] == name} - {args.train_fraction}
        if other:  # the table groups rows by name: two fractions under one name would mix
            parser.error(
                f"candidate {name!r} is recorded with --train-fraction {sorted(other)} in "
                f"{args.out}; name this fraction's candidate differently"
            )
    from urbansound import training

    register_experimental_models()

    for name, overrides in candidates.items():
        search = parse_overrides(overrides)[1]
        for seed in seeds:
            for fold in folds:
                if (name, overrides, seed, fold, args.train_fraction) in finished:
                    continue
                config = config_of(overrides, seed)
                started = time.perf_counter()
                with (
                    tempfile.TemporaryDirectory() as tmp,
                    search_options_applied(search),
                    training_subset(training, args.train_fraction, seed),
                ):
                    result = training.train_fold(
                        args.features, fold, available, config=config, out_dir=tmp
                    )
                row = {
                    "candidate": name,
                    "overrides": overrides,
                    "seed": seed,
                    "validation_fold": fold,
                    "train_folds": result.train_folds,
                    "accuracy": result.test_accuracy,
                    "n_train": result.n_train,
                    "train_fraction": args.train_fraction,
                    # 0: the features hold originals only; 20: the study's deformation set
                    "deformed_copies_per_clip": len(manifest.get("deformations") or []),
                    "n_held_out": result.n_test,
                    "final_train_accuracy": (result.history.get("accuracy") or [None])[-1],
                    "seconds": round(time.perf_counter() - started, 1),
                    "machine": os.uname().nodename,
                    "cpus": os.cpu_count(),
                }
                if args.probabilities_dir:
                    args.probabilities_dir.mkdir(parents=True, exist_ok=True)
                    np.savez_compressed(
                        args.probabilities_dir / f"{name}-seed{seed}-fold{fold}.npz",
                        probabilities=np.asarray(result.probabilities, np.float32),
                        y_true=np.asarray(result.y_true),
                        file_names=np.asarray(result.file_names),
                    )
                with args.out.open("a") as fh:
                    fh.write(json.dumps(row) + "\n")
                print(
                    f"{name} seed {seed} fold {fold}: {row['accuracy']:.3f} "
                    f"({row['seconds']:.0f} s)",
                    flush=True,
                )
    print(table(args.out, candidates, args.probabilities_dir))
    return 0


def recorded_candidates(path: Path) -> dict[str, str]:
    """Every (candidate, overrides) of a results file, in the order first recorded."""
    found: dict[str, str] = {}
    for line in path.read_text().splitlines() if path.exists() else []:
        row = json.loads(line)
        found.setdefault(row["candidate"], row["overrides"])
    return found


def ensemble_accuracy(probabilities_dir: Path, name: str, fold: int) -> tuple[float, int] | None:
    """Accuracy on held-out ``fold`` of the mean of the candidate's seeds' probabilities, and
    how many seeds; None without two or more seeds' files."""
    pooled = pooled_ensemble(probabilities_dir, [name], fold)
    return None if pooled is None else (pooled["accuracy"], pooled["members"])


def pooled_ensemble(probabilities_dir: Path, names: Sequence[str], fold: int) -> dict | None:
    """Every kept model of the candidates ``names`` on held-out ``fold``, pooled: the
    accuracy of the mean of their class probabilities, how many models, and the share of the
    fold's clips that no model classified right (what no average of them can recover).
    None without two or more models."""
    paths = sorted(
        path for name in names for path in probabilities_dir.glob(f"{name}-seed*-fold{fold}.npz")
    )
    if len(paths) < 2:
        return None
    runs = [np.load(path) for path in paths]
    for run in runs[1:]:  # the same clips in the same order, or the mean means nothing
        assert (run["file_names"] == runs[0]["file_names"]).all(), paths
    y_true = runs[0]["y_true"]
    mean = np.mean([run["probabilities"] for run in runs], axis=0)
    right = np.array([run["probabilities"].argmax(axis=1) == y_true for run in runs])
    never_right = ~right.any(axis=0)
    recordings = np.array([recording_of(name) for name in runs[0]["file_names"]])
    worst, in_worst = "", 0
    if never_right.any():
        missed, counts = np.unique(recordings[never_right], return_counts=True)
        worst, in_worst = str(missed[counts.argmax()]), int(counts.max())
    return {
        "accuracy": float((mean.argmax(axis=1) == y_true).mean()),
        "members": len(runs),
        "never_right": float(never_right.mean()),
        "never_right_clips": int(never_right.sum()),
        "worst_recording": worst,
        "worst_recording_never_right": in_worst,
        "worst_recording_clips": int((recordings == worst).sum()) if worst else 0,
    }


def pool_table(probabilities_dir: Path, names: Sequence[str], folds: Sequence[int]) -> str:
    """The --pool report: one line per validation fold, then their mean."""
    lines = [
        "| validation fold | models | pooled ensemble | clips no model got right "
        "| the recording with most of them |",
        "|---|---|---|---|---|",
    ]
    pooled = {fold: pooled_ensemble(probabilities_dir, names, fold) for fold in folds}
    for fold, result in pooled.items():
        if result is None:
            lines.append(f"| {fold} | fewer than 2 | – | – | – |")
        else:
            worst = (
                f"{result['worst_recording']}: {result['worst_recording_never_right']} of its "
                f"{result['worst_recording_clips']} slices"
                if result["worst_recording"]
                else "–"
            )
            lines.append(
                f"| {fold} | {result['members']} | {result['accuracy']:.3f} "
                f"| {result['never_right']:.3f} ({result['never_right_clips']}) | {worst} |"
            )
    scored = [r for r in pooled.values() if r is not None]
    if scored:
        lines.append(
            f"| mean | | {statistics.mean(r['accuracy'] for r in scored):.3f} "
            f"| {statistics.mean(r['never_right'] for r in scored):.3f} | |"
        )
    return "\n".join(lines)


def per_seed_accuracy(rows: list[dict]) -> dict[int, float]:
    """Each seed's accuracy, the mean over the validation folds, for the seeds that finished
    every validation fold of ``rows`` (one candidate's), in the order first recorded."""
    folds = {r["validation_fold"] for r in rows}
    by_seed: dict[int, list[float]] = {}
    for r in rows:
        by_seed.setdefault(r["seed"], []).append(r["accuracy"])
    return {seed: statistics.mean(v) for seed, v in by_seed.items() if len(v) == len(folds)}


def table(path: Path, candidates: dict[str, str], probabilities_dir: Path | None = None) -> str:
    rows = [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []
    lines = [
        "| candidate | per seed (mean over folds) | mean ± std | per fold | s per fold "
        "| training clips |" + (" seed ensemble per fold (mean) |" if probabilities_dir else ""),
        "|---|---|---|---|---|---|" + ("---|" if probabilities_dir else ""),
    ]
    for name, overrides in candidates.items():
        mine = [r for r in rows if r["candidate"] == name and r["overrides"] == overrides]
        folds = sorted({r["validation_fold"] for r in mine})
        complete = list(per_seed_accuracy(mine).values())
        spread = statistics.stdev(complete) if len(complete) > 1 else float("nan")
        per_fold = ", ".join(
            f"{f}: {statistics.mean(r['accuracy'] for r in mine if r['validation_fold'] == f):.3f}"
            for f in folds
        )
        seconds = statistics.mean(r["seconds"] for r in mine) if mine else float("nan")
        mean = statistics.mean(complete) if complete else float("nan")
        # examples of one epoch (clips; with drawn copies one version each), mean over folds
        clips = [r["n_train"] for r in mine if "n_train" in r]
        clips_text = f"{statistics.mean(clips):.0f}" if clips else "–"
        line = (
            f"| {name} | {', '.join(f'{a:.3f}' for a in complete)} | {mean:.3f} ± {spread:.3f} "
            f"| {per_fold} | {seconds:.0f} | {clips_text} |"
        )
        if probabilities_dir:
            found = {f: ensemble_accuracy(probabilities_dir, name, f) for f in folds}
            scored = {f: e for f, e in found.items() if e is not None}
            line += (
                " "
                + ", ".join(f"{f}: {a:.3f} ({n} seeds)" for f, (a, n) in scored.items())
                + (f" ({statistics.mean(a for a, _ in scored.values()):.3f})" if scored else "–")
                + " |"
            )
        lines.append(line)
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
