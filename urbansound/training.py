"""Stage 3, train: one Keras model per test fold on the official folds.

For test fold k the validation fold is drawn (seeded) from the other folds
present, and every remaining fold trains (:func:`urbansound.folds.split_folds`).  The
test and validation folds contribute original audio only; deformed copies come from
training folds only.  Per-band standardisation statistics come from the training
examples only.  The examples, in memory or streamed, are :mod:`urbansound.training_input`'s.
Callers (the KFP component) add their own Keras callbacks, e.g. for tracking.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from urbansound.config import CLASS_NAMES, Config, ConfigError
from urbansound.folds import split_folds
from urbansound.metrics import confusion_matrix
from urbansound.training_input import Examples, load_examples, training_set

MODEL_FILE = "model.keras"
RESULT_FILE = "fold_result.json"
CONFIG_FILE = "config.json"
"""Written beside the model: the configuration it was trained with (predict reads it)."""


class TrainingDiverged(ValueError):
    """The loss became NaN or infinite (a learning rate far too high, for instance)."""


def _stop_on_non_finite_loss():
    """A Keras callback raising :class:`TrainingDiverged` at the first non-finite batch loss
    (Keras' own TerminateOnNaN stops silently, leaving a chance-level model)."""
    import keras

    class StopOnNonFiniteLoss(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            loss = (logs or {}).get("loss")
            if loss is not None and not np.isfinite(float(loss)):
                raise TrainingDiverged(
                    f"training diverged: the loss became {float(loss)} at batch {batch + 1}; "
                    f"lower train.learning_rate"
                )

    return StopOnNonFiniteLoss()


@dataclass
class FoldResult:
    """Everything one fold's training produced (written as ``fold_result.json``)."""

    test_fold: int
    validation_fold: int | None
    train_folds: list[int]
    test_accuracy: float
    test_loss: float
    y_true: list[int]
    y_pred: list[int]
    confusion_matrix: list[list[int]]
    history: dict[str, list[float]]
    best_epoch: int
    epochs_run: int
    n_train: int  # examples one epoch trains (one per clip with drawn copies)
    n_validation: int
    n_test: int
    parameters: int
    class_names: list[str] = field(default_factory=lambda: list(CLASS_NAMES))
    salience: list[int] = field(default_factory=list)  # of each test example, as y_true
    seeds: list[int] = field(default_factory=list)  # one model per seed; > 1: an ensemble
    member_accuracies: list[float] = field(default_factory=list)  # each seed's model alone
    test_windows: int = 0  # windows classified for the n_test clips (> n_test: averaged)
    # train.init_from: what was copied ({} when trained from scratch; see TransferReport)
    initialised_from: dict = field(default_factory=dict)
    # per test clip, in the order of y_true (empty in results written before they were kept):
    file_names: list[str] = field(default_factory=list)  # as the records name the clip
    # class probabilities [shape=(n_test, n_classes)], 0..1, rounded to 6 decimals: the
    # mean over the seeds' models and the clip's windows, whose argmax is y_pred
    probabilities: list[list[float]] = field(default_factory=list)
    # per validation clip (original audio of the validation fold, a training fold of this
    # test fold's split; empty without one, or in results written before they were kept):
    # the true and predicted labels of the kept model, which the deformation ablation
    # reads instead of the test fold's (urbansound.ablation)
    validation_y_true: list[int] = field(default_factory=list)
    validation_y_pred: list[int] = field(default_factory=list)

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> FoldResult:
        """Read ``to_json``'s text; fields added since (file names, probabilities) may be
        absent and keep their empty default."""
        return cls(**json.loads(text))


STANDARDIZE_LAYER = "per_band_standardize"
"""Never copied from a source model: the new training folds' statistics standardise."""


@dataclass
class TransferReport:
    """What :func:`transfer_weights` did: ``copied`` layer names, ``skipped`` as
    ``"<layer>: <reason>"``, the output layer ``head`` and whether it was ``"copied"`` or
    ``"replaced"`` (freshly initialised: another class count), ``frozen`` layer count."""

    source: str
    copied: list[str]
    skipped: list[str]
    head: str
    head_action: str
    frozen: int = 0

    def summary(self) -> str:
        return (
            f"initialised from {self.source}: {len(self.copied)} layers copied, last layer "
            f"{self.head!r} {self.head_action}"
            + (f", {self.frozen} layers frozen" if self.frozen else "")
        )


def _leaf_layers(model) -> list:
    """The layers of ``model`` in order, with nested models (conv1d's frame network, inside
    a TimeDistributed) replaced by their own layers, so that layers match by name inside."""
    import keras

    out = []
    for layer in model.layers:
        inner = getattr(layer, "layer", layer)  # TimeDistributed wraps its layer
        if isinstance(inner, keras.Model):
            out += _leaf_layers(inner)[1:]  # its own input layer holds nothing
        else:
            out.append(layer)
    return out


def _head_layer(layers):
    """The last layer that holds weights: the softmax Dense (``probabilities``)."""
    for layer in reversed(layers):
        if layer.weights:
            return layer
    raise ValueError("the model has no layer with weights")


def transfer_weights(
    target, source, *, freeze_features: bool = False, source_name: str = "the source model"
) -> TransferReport:
    """Copy ``source``'s weights into ``target`` layer by layer, by layer name, where every
    weight shape matches; in place, before compiling.

    The per-band standardisation layer is never copied (``target`` keeps the statistics of
    its own training folds); the output layer is copied when its shapes match (same class
    count) and otherwise left freshly initialised.  ``freeze_features``: every layer but
    the output layer gets ``trainable=False`` (batch normalisation then runs in inference
    mode, its statistics frozen too).

    Raises
    ------
    ConfigError
        one line naming ``source_name``: another input (kind or shape), or another
        architecture (no layer in common besides the input, or none whose shapes match).
    """
    if source.name != target.name:  # build_model names each model after its registry entry
        raise ConfigError(
            f"{source_name}: another architecture (model {source.name!r}, this "
            f"run trains {target.name!r}); cannot start from it"
        )
    source_input, target_input = source.layers[0], target.layers[0]
    s_shape, t_shape = tuple(source.inputs[0].shape[1:]), tuple(target.inputs[0].shape[1:])
    if source_input.name != target_input.name or s_shape != t_shape:
        raise ConfigError(
            f"{source_name}: takes {source_input.name} input of shape {s_shape}; "
            f"this model takes {target_input.name} {t_shape}"
        )
    target_layers = _leaf_layers(target)
    head = _head_layer(target_layers)
    by_name = {layer.name: layer for layer in _leaf_layers(source)}
    copied, skipped = [], []
    common = 0
    for layer in target_layers[1:]:
        if not layer.weights or layer.name == STANDARDIZE_LAYER:
            continue
        other = by_name.get(layer.name)
        if other is None:
            skipped.append(f"{layer.name}: not in the source")
            continue
        common += 1
        mine, theirs = layer.get_weights(), other.get_weights()
        if len(mine) != len(theirs) or any(a.shape != b.shape for a, b in zip(mine, theirs)):
            skipped.append(
                f"{layer.name}: shapes {[w.shape for w in theirs]} != {[w.shape for w in mine]}"
            )
            continue
        layer.set_weights(theirs)
        copied.append(layer.name)
    features = [name for name in copied if name != head.name]
    if not common or not features:
        raise ConfigError(
            f"{source_name}: another architecture ({source.name!r}: "
            f"{'no layer' if not common else 'no layer of matching shapes'} in "
            f"common with {target.name!r} besides the input); cannot start from it"
        )
    frozen = 0
    if freeze_features:
        for layer in target_layers:
            if layer is not head and layer.trainable and layer.weights:
                layer.trainable = False
                frozen += 1
    return TransferReport(
        source_name,
        copied,
        skipped,
        head.name,
        "copied" if head.name in copied else "replaced",
        frozen,
    )


def check_init_source(path: str | os.PathLike, config: Config) -> Path:
    """``path`` if it is a file whose ``config.json`` (when one is beside it) names
    ``config``'s ``train.model``; :class:`ConfigError` naming ``path`` otherwise (cheap:
    the CLI checks before any task starts)."""
    from urbansound.files import keras_file_problem

    path = Path(path)
    problem = keras_file_problem(path)
    if problem and problem.startswith("no such file"):
        raise ConfigError(f"{path}: train.init_from names no model file")
    if problem:
        raise ConfigError(f"{path}: {problem}")
    beside = path.parent / CONFIG_FILE
    if beside.is_file():
        try:
            trained_as = json.loads(beside.read_text()).get("train", {}).get("model")
        except (json.JSONDecodeError, AttributeError):
            trained_as = None
        if trained_as and trained_as != config.train.model:
            raise ConfigError(
                f"{path}: trained as model {trained_as!r} (its {CONFIG_FILE}); "
                f"this run trains {config.train.model!r}: give --model "
                f"{trained_as} or another source"
            )
    return path


def check_init_model(path: str | os.PathLike, config: Config) -> None:
    """Load the model at ``path`` and check it can start ``config``'s model: the same
    architecture and input (what :func:`transfer_weights` refuses), against a freshly
    built model; a few seconds, so that ``run`` refuses it before any task starts rather
    than inside the first training task.  Raises :class:`ConfigError` naming ``path``."""
    from urbansound.features import input_shape
    from urbansound.models import build_model

    source = load_init_model(path, config)
    target = build_model(
        config.train.model, input_shape=input_shape(config), n_classes=len(config.class_names)
    )
    transfer_weights(target, source, source_name=str(path))


def load_init_model(path: str | os.PathLike, config: Config):
    """The Keras model at ``path`` (a ``model.keras``), checked against ``config``: its
    ``config.json`` beside it, when there is one, must name the same ``train.model``.

    Raises
    ------
    ConfigError
        one line naming ``path``: missing, not loadable, or trained as another model.
    """
    import keras

    path = check_init_source(path, config)
    try:
        return keras.models.load_model(path, compile=False)
    except Exception as exc:
        reason = " ".join(str(exc).split())[:200] or type(exc).__name__
        raise ConfigError(f"{path}: not a loadable Keras model ({reason})") from None


def _fit_one(
    config: Config,
    train,
    validation: Examples | None,
    stats,
    seed: int,
    callbacks: Sequence,
    verbose: int,
    reports: list | None = None,
):
    """Build, compile and fit one model from ``seed``; return (model, history dict).

    ``train``: either kind of :mod:`urbansound.training_input` (arrays or streamed).
    With ``train.precision`` resolving to mixed precision, a mixed copy trains and its
    weights come back into the float32 model returned (:mod:`urbansound.precision`)."""
    import keras

    from urbansound.models import build_model, learning_rate_schedule, make_optimizer
    from urbansound.precision import mixed_copy, resolve_precision

    t = config.train
    keras.utils.set_random_seed(seed)
    model = build_model(
        t.model,
        input_shape=train.input_shape,
        n_classes=len(config.class_names),
        band_mean=stats[0],
        band_variance=stats[1],
        seed=seed,
    )
    if t.init_from:  # fine-tuning: start from a trained model's weights (before compile)
        report = transfer_weights(
            model,
            load_init_model(t.init_from, config),
            freeze_features=t.freeze_features,
            source_name=t.init_from,
        )
        logging.getLogger(__name__).info("%s", report.summary())
        if reports is not None:
            reports.append(report)
    float_model = model
    precision = resolve_precision(t.precision)
    if precision != "float32":
        try:
            model = mixed_copy(model, precision)
        except ValueError as exc:  # a nested model (conv1d): float32, said once
            logging.getLogger(__name__).warning("training in float32: %s", exc)
    if verbose:
        trained_in = precision if model is not float_model else "float32"
        print(f"training in {trained_in} (train.precision={t.precision})")
    steps = t.epochs * -(-train.epoch_size // t.batch_size)
    augmenting = t.augments_batches
    n_classes = len(config.class_names)
    # mixup needs soft targets, so in-training augmentation trains on one-hot labels
    model.compile(
        optimizer=make_optimizer(
            t.optimizer, learning_rate_schedule(t.schedule, t.learning_rate, steps), t.weight_decay
        ),
        loss="categorical_crossentropy" if augmenting else "sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    guards = [_stop_on_non_finite_loss()]
    if validation is not None:
        guards.append(
            keras.callbacks.EarlyStopping(
                monitor="val_accuracy", mode="max", patience=t.patience, restore_best_weights=True
            )
        )
    targets = (lambda y: np.eye(n_classes, dtype=np.float32)[y]) if augmenting else (lambda y: y)
    fit_data = train.fit_arguments(
        config, seed=seed, n_classes=n_classes, one_hot=augmenting, fill=stats[0]
    )
    history = model.fit(
        **fit_data,
        epochs=t.epochs,
        verbose=verbose,
        validation_data=((validation.x, targets(validation.y)) if validation is not None else None),
        callbacks=[*guards, *callbacks],
    )
    if model is not float_model:
        float_model.set_weights(model.get_weights())  # weights are float32 in both
    return float_model, history.history


def input_statistics(train, config: Config) -> tuple:
    """(band mean, band variance) of the training log-mels for the model's standardisation
    layer, or (None, None): waveform models standardise each frame inside the model."""
    if config.train.normalize != "per_band" or config.input_kind != "logmel":
        return None, None
    return train.band_statistics()


def mean_per_clip(
    probabilities: np.ndarray, file_names: Sequence[str]
) -> tuple[np.ndarray, np.ndarray]:
    """Average the window probabilities of each clip (test-time averaging).

    probabilities : [shape=(n_windows, n_classes)]; file_names : [n_windows], a clip's
        windows consecutive (as :func:`load_examples` orders them).

    Returns
    -------
    (clip_probabilities [shape=(n_clips, n_classes)], first_row [shape=(n_clips,)]): the
        mean over each clip's windows, and the row of each clip's first window.
    """
    names = np.asarray(file_names, dtype=object)
    starts = np.r_[True, names[1:] != names[:-1]] if len(names) else np.zeros(0, bool)
    clip = np.cumsum(starts) - 1
    first_row = np.flatnonzero(starts)
    sums = np.zeros((len(first_row), probabilities.shape[1]), np.float64)
    np.add.at(sums, clip, probabilities)
    counts = np.bincount(clip, minlength=len(first_row))
    return (sums / counts[:, None]).astype(np.float32), first_row


def average_models(members: Sequence, *, name: str):
    """One Keras model whose output is the mean of ``members``' probabilities (same input):
    an ensemble that saves, loads and serves like a single model (plain Keras layers)."""
    import keras

    first = members[0].inputs[0]
    inputs = keras.Input(shape=tuple(first.shape[1:]), name=first.name)
    outputs = [
        keras.Model(m.inputs[0], m.outputs[0], name=f"member{i + 1}")(inputs)
        for i, m in enumerate(members)
    ]
    return keras.Model(
        inputs, keras.layers.Average(name="mean_probability")(outputs), name=f"{name}_ensemble"
    )


def train_fold(
    feature_dir: str | os.PathLike,
    test_fold: int,
    available_folds: Sequence[int],
    *,
    config: Config,
    out_dir: str | os.PathLike,
    callbacks: Sequence = (),
    verbose: int = 0,
) -> FoldResult:
    """Train and evaluate one model with ``test_fold`` held out.

    With ``train.seeds`` (e.g. ``(1, 2, 3)``) or ``train.ensemble`` > 1 (its
    :attr:`~urbansound.config.TrainConfig.member_seeds`) one model is trained per seed on the same
    split and they are evaluated as an ensemble (mean of probabilities; each member's
    own accuracy is kept in ``member_accuracies``).  The validation fold is always
    drawn with ``train.seed``.

    Writes ``model.keras`` (the model, or the ensemble as one model, with its input
    standardisation; takes raw log-mels), ``config.json`` and ``fold_result.json`` to
    ``out_dir``.

    Returns
    -------
    FoldResult with test accuracy, predictions, confusion matrix and history.
    """
    import tensorflow as tf

    from urbansound.manifest import with_class_names
    from urbansound.models import trainable_parameter_count

    # the data's classes (ingest's manifest, copied by the features') unless config names them
    config = with_class_names(config, feature_dir)
    t = config.train
    split = split_folds(test_fold, available_folds, seed=t.seed, validation=t.validation)
    if verbose:
        print(
            f"test fold {test_fold}: validation fold {split.validation_fold or 'none'}, "
            f"training folds {list(split.train_folds)}",
            flush=True,
        )
    train = training_set(feature_dir, split.train_folds, config)
    validation = (
        load_examples(feature_dir, [split.validation_fold], include_deformed=False)
        if split.validation_fold is not None
        else None
    )
    # with features.window_hop_s > 0 a long test clip is classified by the mean of its windows
    test = load_examples(
        feature_dir,
        [test_fold],
        include_deformed=False,
        include_windows=config.features.window_hop_s > 0,
    )
    for name, part in (("training", train), ("validation", validation), ("test", test)):
        if part is not None and len(part) == 0:
            raise ValueError(f"no {name} examples for test fold {test_fold} ({split})")

    tf.config.experimental.enable_op_determinism()
    stats = input_statistics(train, config)
    seeds = t.member_seeds
    members, histories, member_probabilities, validation_probabilities = [], [], [], []
    transfers: list[TransferReport] = []
    for member_seed in seeds:
        seed = (member_seed * 1000 + test_fold) % 2**32  # one stream per fold; numpy: < 2**32
        model, history = _fit_one(
            config, train, validation, stats, seed, callbacks, verbose, transfers
        )
        members.append(model)
        histories.append({k: [float(v) for v in values] for k, values in history.items()})
        clip_probabilities, first_row = mean_per_clip(
            model.predict(test.x, batch_size=256, verbose=0), test.file_names
        )
        member_probabilities.append(clip_probabilities)
        if validation is not None:
            validation_probabilities.append(model.predict(validation.x, batch_size=256, verbose=0))
    probabilities = np.mean(member_probabilities, axis=0)
    y_true = test.y[first_row]
    y_pred = probabilities.argmax(axis=1)
    test_accuracy = float(np.mean(y_pred == y_true))
    test_loss = float(
        -np.mean(np.log(np.maximum(probabilities[np.arange(len(y_true)), y_true], 1e-12)))
    )
    model = members[0] if len(members) == 1 else average_models(members, name=t.model)

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model.save(out / MODEL_FILE)
    (out / CONFIG_FILE).write_text(config.to_json())
    hist = histories[0]
    result = FoldResult(
        test_fold=test_fold,
        validation_fold=split.validation_fold,
        train_folds=list(split.train_folds),
        test_accuracy=float(test_accuracy),
        test_loss=float(test_loss),
        y_true=y_true.tolist(),
        y_pred=y_pred.tolist(),
        confusion_matrix=confusion_matrix(y_true, y_pred, len(config.class_names)).tolist(),
        class_names=list(config.class_names),
        history=hist,
        # without a validation fold the model kept is the last epoch's
        best_epoch=(
            int(np.argmax(hist["val_accuracy"])) + 1
            if validation is not None
            else len(hist["loss"])
        ),
        epochs_run=len(hist["loss"]),
        n_train=train.epoch_size,
        n_validation=len(validation) if validation is not None else 0,
        n_test=len(y_true),
        parameters=trainable_parameter_count(members[0]),
        salience=[test.salience[i] for i in first_row],
        seeds=list(seeds),
        member_accuracies=[
            float(np.mean(p.argmax(axis=1) == y_true)) for p in member_probabilities
        ],
        test_windows=len(test),
        initialised_from=asdict(transfers[0]) if transfers else {},
        file_names=[test.file_names[i] for i in first_row],
        probabilities=np.round(probabilities.astype(np.float64), 6).tolist(),
        validation_y_true=validation.y.tolist() if validation is not None else [],
        validation_y_pred=(
            np.mean(validation_probabilities, axis=0).argmax(axis=1).tolist()
            if validation is not None
            else []
        ),
    )
    (out / RESULT_FILE).write_text(result.to_json())
    return result


FINAL_RESULT_FILE = "final_result.json"
"""Written by :func:`train_final` beside its model (no test fold, so no accuracy)."""


def train_final(
    feature_dir: str | os.PathLike,
    folds: Sequence[int],
    *,
    config: Config,
    out_dir: str | os.PathLike,
    callbacks: Sequence = (),
    verbose: int = 0,
) -> dict:
    """Train one model on every fold in ``folds`` (no test or validation fold), for
    ``config.train.epochs`` epochs: the model to deploy once cross-validation has chosen
    the settings.  It has no accuracy of its own; the cross-validated run's is its
    expected accuracy.  ``train.validation`` is ignored (there is no fold to stop on): the
    caller sets the epochs (e.g. the median best epoch of the cross-validated folds).
    With ``train.seeds`` or ``train.ensemble`` > 1 one model per seed, saved as their average
    (:func:`average_models`).

    Writes ``model.keras`` (takes raw log-mels or waveforms, standardisation inside),
    ``config.json`` and ``final_result.json`` to ``out_dir``.

    Returns
    -------
    dict (as ``final_result.json``): n_train (examples one epoch trains, deformed copies and
    balancing repeats included), n_clips (original clips), folds, epochs, seeds, history (of
    the first seed: loss and accuracy per epoch), parameters, class_names.

    Raises
    ------
    ValueError
        no fold given, or the folds hold no examples.
    FileNotFoundError
        a fold has no feature records.
    """
    import tensorflow as tf

    from urbansound.manifest import with_class_names
    from urbansound.models import trainable_parameter_count

    folds = sorted({int(f) for f in folds})
    if not folds:
        raise ValueError("train_final needs at least one fold")
    config = with_class_names(config, feature_dir)
    t = config.train
    train = training_set(feature_dir, folds, config)
    n_clips = train.count_originals()
    if len(train) == 0:
        raise ValueError(f"{feature_dir}: no training examples in folds {folds}")
    tf.config.experimental.enable_op_determinism()
    stats = input_statistics(train, config)
    seeds = t.member_seeds
    members, histories = [], []
    transfers: list[TransferReport] = []
    for member_seed in seeds:
        # fold "0": a stream of its own, not any cross-validation fold's
        model, history = _fit_one(
            config, train, None, stats, (member_seed * 1000) % 2**32, callbacks, verbose, transfers
        )
        members.append(model)
        histories.append({k: [float(v) for v in values] for k, values in history.items()})
    model = members[0] if len(members) == 1 else average_models(members, name=t.model)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model.save(out / MODEL_FILE)
    (out / CONFIG_FILE).write_text(config.to_json())
    result = {
        "folds": folds,
        "n_train": train.epoch_size,
        "n_clips": int(n_clips),
        "epochs": len(histories[0]["loss"]),
        "seeds": list(seeds),
        "history": histories[0],
        "parameters": trainable_parameter_count(members[0]),
        "class_names": list(config.class_names),
        "initialised_from": asdict(transfers[0]) if transfers else {},
    }
    (out / FINAL_RESULT_FILE).write_text(json.dumps(result))
    return result
