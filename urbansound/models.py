"""Keras models, by name: the one registry of what a model is and how it trains.

Every model declares its input (``ModelSpec.input_kind``) and returns class
probabilities of shape (batch, n_classes).  A log-mel model takes a batch of shape
(batch, n_mels, n_frames, 1) in dB; a waveform model (``conv1d``) takes (batch,
n_samples, 1) at ``features.waveform_rate``.  Input scaling is part of the model:
with per-band statistics given, a log-mel model's first layer standardises each mel
band (mean and variance computed on the training folds only); a waveform model
standardises each of its frames.  So a saved model takes exactly what
:func:`urbansound.features.model_input` makes.

:data:`MODELS` maps a name to a :class:`ModelSpec`: its builder, the input it
needs and its default training recipe (optimiser, schedule, epochs, protocol).
Configuration validation, the CLI and ``urbansound models`` all read it, so a new
model is one entry here.  Models are plain Keras 3 layers only (no TensorFlow-only
layers), so they load on any Keras backend and convert to TFLite.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class ModelSpec:
    """A model and its default training recipe.

    name : registry key (``train.model``).
    summary : one line for ``urbansound models``.
    body : ``body(x, n_classes) -> probabilities``; ``x`` is the input tensor:
        (batch, n_mels, n_frames, 1) standardised log-mels, or (batch, n_samples, 1).
    input_kind : what the pipeline must deliver: ``"logmel"`` (128×128 dB) or
        ``"waveform"`` (the clip at ``features.waveform_rate``, see
        :func:`urbansound.features.model_input`).
    optimizer, learning_rate, weight_decay : the optimiser (``sgd``, ``adam``, ``adamw``).
    schedule : ``"constant"`` or ``"one_cycle"`` (linear warm-up over the first
        10 % of steps to ``learning_rate``, then cosine decay to 0).
    epochs, patience : training length; early stopping on validation accuracy
        (best weights restored) when ``validation == "fold"``.
    validation : ``"fold"``: one non-test fold, drawn with the seed, is held out
        for early stopping (the study's protocol); ``"none"``: a fixed schedule,
        every non-test fold trains, nothing is chosen on held-out data.
    batch_size : examples per step.
    mixup_alpha, spec_augment, time_shift : in-training augmentation of the log-mels
        (:func:`urbansound.training_input.augment_batch`); 0 / False: none.
    window_hop_s, random_windows : the features' windows every ``window_hop_s`` seconds
        (0: one window, the clip's first 3 s, as the study); a test clip is then the mean
        of its windows, and with ``random_windows`` every training epoch draws one
        window of each clip (``features.window_hop_s``, ``train.random_windows``).
    deformed_copies : ``train.deformed_copies``: ``"all"`` trains every deformed copy of
        the augmentation set every epoch; ``"draw"`` one version of each clip per epoch.
    original_share : ``train.original_share``: with ``"draw"``, the probability of the
        original (None: every version equally likely).
    precision : ``train.precision`` (``"auto"``: bfloat16 compute where the CPU has it).
    ensemble : ``train.ensemble``: models trained per fold from consecutive seeds, evaluated
        and saved as the mean of their probabilities (1: one model).
    study : True for the study's own models (SEED.md).
    """

    name: str
    summary: str
    body: Callable
    input_kind: str = "logmel"
    optimizer: str = "adam"
    learning_rate: float = 1e-3
    weight_decay: float = 0.0
    schedule: str = "constant"
    epochs: int = 50
    patience: int = 15
    validation: str = "fold"
    batch_size: int = 32
    mixup_alpha: float = 0.0
    spec_augment: int = 0
    time_shift: bool = False
    window_hop_s: float = 0.0
    random_windows: bool = False
    deformed_copies: str = "all"
    original_share: float | None = None
    precision: str = "float32"
    ensemble: int = 1
    study: bool = False


def _sb_cnn(x, n_classes: int):
    """Salamon & Bello 2017 (SB-CNN) as the study built it: 241,434 parameters on 128×128."""
    from keras import layers

    # (batch, 128 mel, 128 frames, 1) -> conv 5x5 valid -> pool 4 along mel, 2 along time
    x = layers.Conv2D(24, (5, 5), padding="valid", name="conv1")(x)
    x = layers.MaxPooling2D((4, 2), name="pool1")(x)
    x = layers.Activation("relu", name="relu1")(x)
    x = layers.Conv2D(48, (5, 5), padding="valid", name="conv2")(x)
    x = layers.MaxPooling2D((4, 2), name="pool2")(x)
    x = layers.Activation("relu", name="relu2")(x)
    x = layers.Conv2D(48, (5, 5), padding="valid", name="conv3")(x)
    x = layers.Activation("relu", name="relu3")(x)
    x = layers.Flatten(name="flatten")(x)
    x = layers.Dropout(0.5, name="dropout1")(x)
    x = layers.Dense(64, activation="relu", name="dense1")(x)
    x = layers.Dropout(0.5, name="dropout2")(x)
    return layers.Dense(n_classes, activation="softmax", name="probabilities")(x)


def _improved(x, n_classes: int):
    """After Mushtaq & Su 2020 as the study describes it (exact layers not given there):
    square 4×4 pooling instead of SB-CNN's 4×2, 16 filters in the second conv layer
    instead of 48, dropout only before the last layer.  33,949 parameters on 128×128
    (the study reports 33,634)."""
    from keras import layers

    x = layers.Conv2D(24, (5, 5), activation="relu", name="conv1")(x)  # 124×124×24
    x = layers.MaxPooling2D((4, 4), name="pool1")(x)  # 31×31
    x = layers.Conv2D(16, (5, 5), activation="relu", name="conv2")(x)  # 27×27×16
    x = layers.MaxPooling2D((4, 4), name="pool2")(x)  # 6×6
    x = layers.Conv2D(35, (5, 5), activation="relu", name="conv3")(x)  # 2×2×35
    x = layers.Flatten(name="flatten")(x)
    x = layers.Dense(64, activation="relu", name="dense1")(x)
    x = layers.Dropout(0.5, name="dropout")(x)
    return layers.Dense(n_classes, activation="softmax", name="probabilities")(x)


def _conv_bn_relu(x, filters: int, name: str, strides=(1, 1)):
    from keras import layers

    # No conv bias: batch normalisation's shift replaces it.
    x = layers.Conv2D(
        filters, (3, 3), strides=strides, padding="same", use_bias=False, name=f"{name}_conv"
    )(x)
    # momentum 0.9 (PyTorch's 0.1): with Keras' 0.99 the moving statistics of a short run
    # (the demo data's 225 steps) still carry the initial 0/1 and inference falls to chance
    x = layers.BatchNormalization(momentum=0.9, name=f"{name}_bn")(x)
    return layers.Activation("relu", name=f"{name}_relu")(x)


def _urbannet(
    x,
    n_classes: int,
    widths=(24, 48, 96, 192),
    *,
    stem: bool = True,
    pooling: str = "average",
    head: str = "mean_max",
):
    """urbansound's own default: a batch-normalised VGG-style CNN, cheap enough for a CPU.

    A strided stem halves both axes at once (128×128 → 64×64), where a VGG's
    full-resolution first block would cost most of the compute; then four blocks of
    two 3×3 conv + BN + ReLU, each followed by 2×2 average pooling (64 → 4).  The
    remaining 4×4 map is summarised by its mean and its max, then dropout, softmax.
    ``stem=False``, ``pooling="max"`` and ``head="per_band"`` are the variants the recipe
    search measured (bench/recipe_search.py), not registered.
    """
    from keras import layers

    pool = {"average": layers.AveragePooling2D, "max": layers.MaxPooling2D}[pooling]
    if stem:
        x = _conv_bn_relu(x, widths[0], "stem", strides=(2, 2))  # 64×64
    for i, filters in enumerate(widths, start=1):
        x = _conv_bn_relu(x, filters, f"block{i}a")
        x = _conv_bn_relu(x, filters, f"block{i}b")
        x = pool((2, 2), name=f"block{i}_pool")(x)  # 32, 16, 8, 4
    return {"mean_max": _mean_max_head, "per_band": _per_band_head}[head](x, n_classes)


def _mean_max_head(x, n_classes: int):
    """urbannet's head: the last feature map (batch, h, w, channels) summarised by its mean
    (a sound that fills the clip) and its max (a short event), dropout 0.3, softmax.
    Pooling layers rather than a Lambda keep the model serialisable."""
    from keras import layers

    x = layers.Concatenate(name="mean_max")(
        [
            layers.GlobalAveragePooling2D(name="global_mean")(x),
            layers.GlobalMaxPooling2D(name="global_max")(x),
        ]
    )
    x = layers.Dropout(0.3, name="dropout")(x)
    return layers.Dense(n_classes, activation="softmax", name="probabilities")(x)


def _per_band_head(x, n_classes: int):
    """A head that keeps the frequency axis: the last feature map (batch, bands, frames,
    channels) is summarised by its mean and its max over time only, per band, so the
    softmax sees where in frequency each feature fired (steady noises such as air
    conditioners and engines differ mostly there).  (batch, bands · 2 · channels) into
    dropout 0.3 and softmax."""
    from keras import layers

    frames = int(x.shape[2])
    x = layers.Concatenate(name="mean_max_per_band")(
        [
            layers.AveragePooling2D((1, frames), name="time_mean")(x),
            layers.MaxPooling2D((1, frames), name="time_max")(x),
        ]
    )
    x = layers.Flatten(name="bands")(x)
    x = layers.Dropout(0.3, name="dropout")(x)
    return layers.Dense(n_classes, activation="softmax", name="probabilities")(x)


def _urbannet_large(x, n_classes: int):
    """urbannet with twice the widths (32-64-128-256 after a 32-wide stem) for GPUs."""
    return _urbannet(x, n_classes, widths=(32, 64, 128, 256))


CONV1D_FRAME = 16000
"""Samples per frame of ``conv1d``: 1 s at 16 kHz, as Abdoli et al. 2019."""


def _conv1d_frame_network(frame: int, n_classes: int):
    """Abdoli et al. 2019's 1D CNN on one frame: (batch, frame, 1) → (batch, n_classes).

    Each frame is standardised first (zero mean, unit variance over its samples; no
    learned scale), so the level of a recording does not matter, then four strided
    convolutions with batch normalisation (kernels 64, 32, 16, 8; the first two followed
    by 8× max pooling) and two dense layers.
    """
    import keras
    from keras import layers

    inputs = keras.Input(shape=(frame, 1), name="frame")
    # epsilon far below the variance of quiet audio (1e-6 at -60 dBFS): Keras' 1e-3 would
    # shrink every quiet frame towards zero
    x = layers.LayerNormalization(
        axis=(1, 2), center=False, scale=False, epsilon=1e-10, name="frame_standardize"
    )(inputs)
    for i, (filters, kernel, pool) in enumerate(
        ((16, 64, 8), (32, 32, 8), (64, 16, 0), (128, 8, 0)), start=1
    ):
        x = layers.Conv1D(filters, kernel, strides=2, use_bias=False, name=f"conv{i}")(x)
        x = layers.BatchNormalization(momentum=0.9, name=f"bn{i}")(x)
        x = layers.Activation("relu", name=f"relu{i}")(x)
        if pool:
            x = layers.MaxPooling1D(pool, name=f"pool{i}")(x)
    x = layers.Flatten(name="flatten")(x)
    x = layers.Dense(128, activation="relu", name="dense1")(x)
    x = layers.Dropout(0.5, name="dropout1")(x)
    x = layers.Dense(64, activation="relu", name="dense2")(x)
    x = layers.Dropout(0.25, name="dropout2")(x)
    outputs = layers.Dense(n_classes, activation="softmax", name="frame_probabilities")(x)
    return keras.Model(inputs, outputs, name="frame_network")


def _conv1d(x, n_classes: int, frame: int = CONV1D_FRAME):
    """End-to-end 1D CNN on the raw waveform after Abdoli et al. 2019.

    The clip (batch, n_samples, 1) is cut into frames of ``frame`` samples overlapping
    by half (3 s at 16 kHz: 5 frames of 1 s), the frame network classifies each, and the
    clip's probabilities are the mean over its frames.  Framing is done with reshapes
    and crops (no custom layer), so the model stays plain Keras.
    """
    from keras import layers

    half = frame // 2
    n_samples = int(x.shape[1])
    n_halves = n_samples // half
    if n_halves < 2:
        raise ValueError(f"conv1d needs at least {frame} samples per clip; got {n_samples}")
    if n_samples > n_halves * half:  # drop the tail that does not fill a half frame
        x = layers.Cropping1D((0, n_samples - n_halves * half), name="trim")(x)
    halves = layers.Reshape((n_halves, half), name="half_frames")(x)
    # frame i = halves i and i + 1 side by side: 50 % overlap
    frames = layers.Concatenate(axis=-1, name="frames")(
        [
            layers.Cropping1D((0, 1), name="first_halves")(halves),
            layers.Cropping1D((1, 0), name="second_halves")(halves),
        ]
    )
    frames = layers.Reshape((n_halves - 1, frame, 1), name="frames_1ch")(frames)
    per_frame = layers.TimeDistributed(_conv1d_frame_network(frame, n_classes), name="per_frame")(
        frames
    )
    return layers.GlobalAveragePooling1D(name="probabilities")(per_frame)


MODELS: dict[str, ModelSpec] = {
    spec.name: spec
    for spec in (
        ModelSpec(
            "urbannet",
            "batch-normalised VGG-style CNN, strided stem, mean+max over time "
            "(default; AdamW, one-cycle, fixed 40 epochs, mixup + SpecAugment + time shift, "
            "an ensemble of 3 seeds)",
            _urbannet,
            optimizer="adamw",
            learning_rate=2e-3,
            weight_decay=5e-4,
            schedule="one_cycle",
            epochs=40,
            patience=15,
            validation="none",
            batch_size=32,
            # chosen on validation folds only (bench/results/recipe_search.jsonl): 0.599 →
            # 0.649 mean over 3 seeds; bfloat16 compute: the same accuracy, 10-40 % less time
            # per step where the CPU has it (bench/results/train_speed.json)
            mixup_alpha=0.2,
            spec_augment=2,
            time_shift=True,
            precision="auto",
            # three models from consecutive seeds, averaged: +0.011 / +0.012 on the two
            # validation folds over the mean of the same seeds alone (+0.014 to +0.029 for the
            # other recipes searched), 3× the training time (17.6 min a fold of 1,881 clips here)
            ensemble=3,
        ),
        ModelSpec(
            "urbannet-large",
            "urbannet with twice the widths, for a GPU",
            _urbannet_large,
            optimizer="adamw",
            learning_rate=2e-3,
            weight_decay=5e-4,
            schedule="one_cycle",
            epochs=60,
            patience=15,
            validation="none",
            batch_size=32,
            mixup_alpha=0.2,
            spec_augment=2,
            time_shift=True,
            precision="auto",
        ),
        ModelSpec(
            "sb-cnn",
            "the study's baseline after Salamon & Bello 2017 (SGD 0.01, 50 epochs, early stopping)",
            _sb_cnn,
            optimizer="sgd",
            learning_rate=0.01,
            epochs=50,
            patience=15,
            study=True,
        ),
        ModelSpec(
            "improved",
            "the study's improved CNN after Mushtaq & Su 2020 (Adam, 100 epochs, early stopping)",
            _improved,
            optimizer="adam",
            learning_rate=1e-3,
            epochs=100,
            patience=15,
            study=True,
        ),
        ModelSpec(
            "conv1d",
            "end-to-end 1D CNN on the raw 16 kHz waveform after Abdoli et al. "
            "2019 (1 s frames, 50 % overlap, mean of frame predictions)",
            _conv1d,
            input_kind="waveform",
            optimizer="adamw",
            learning_rate=1e-3,
            weight_decay=1e-3,
            schedule="one_cycle",
            epochs=40,
            patience=15,
            validation="none",
            batch_size=32,
            time_shift=True,
            study=True,
        ),
    )
}
"""Every model by name; the first is the default of ``urbansound run``."""

DEFAULT_MODEL = next(iter(MODELS))
MODEL_NAMES = frozenset(MODELS)
"""Names accepted by :func:`build_model` (and ``train.model`` in the config)."""
OPTIMIZERS = ("sgd", "adam", "adamw")
SCHEDULES = ("constant", "one_cycle")


def get_spec(name: str) -> ModelSpec:
    """The registry entry of ``name``; ``ValueError`` naming the known models otherwise."""
    try:
        return MODELS[name]
    except KeyError:
        raise ValueError(f"unknown model {name!r}; known: {', '.join(MODELS)}") from None


def build_model(
    name: str,
    *,
    input_shape: tuple[int, ...] | None = None,
    n_classes: int = 10,
    band_mean: np.ndarray | None = None,
    band_variance: np.ndarray | None = None,
    seed: int | None = None,
):
    """Build an uncompiled Keras model.

    Parameters
    ----------
    name : one of :data:`MODEL_NAMES`.
    input_shape : (n_mels, n_frames, 1) for a log-mel model (default (128, 128, 1)),
        (n_samples, 1) for a waveform model (default (48000, 1): 3 s at 16 kHz).
    n_classes : size of the softmax.
    band_mean, band_variance : np.ndarray [shape=(n_mels,)] per-band statistics
        in dB and dB²; both or neither.  With them, a non-trainable
        standardisation layer comes first.
    seed : seeds weight initialisation (and dropout) when given.

    Returns
    -------
    keras.Model
    """
    import keras

    spec = get_spec(name)
    if seed is not None:
        keras.utils.set_random_seed(seed)
    if input_shape is None:
        input_shape = (48000, 1) if spec.input_kind == "waveform" else (128, 128, 1)
    inputs = keras.Input(shape=tuple(input_shape), name=spec.input_kind)
    x = inputs
    if (band_mean is None) != (band_variance is None):
        raise ValueError("give both band_mean and band_variance, or neither")
    if band_mean is not None:
        # axis=1 keeps one mean/variance per mel band (rows of the spectrogram).
        x = keras.layers.Normalization(
            axis=1,
            mean=np.asarray(band_mean, np.float32),
            variance=np.asarray(band_variance, np.float32),
            name="per_band_standardize",
        )(x)
    outputs = spec.body(x, n_classes)
    return keras.Model(inputs, outputs, name=name)


def learning_rate_schedule(schedule: str, learning_rate: float, total_steps: int):
    """The learning rate as a Keras schedule (or a float for ``"constant"``).

    ``"one_cycle"``: linear warm-up from ``learning_rate / 25`` over the first 10 %
    of ``total_steps``, then cosine decay to 0 at ``total_steps``.
    """
    import keras

    if schedule == "constant":
        return learning_rate
    if schedule == "one_cycle":
        warmup = max(1, int(0.1 * total_steps))
        return keras.optimizers.schedules.CosineDecay(
            initial_learning_rate=learning_rate / 25,
            decay_steps=max(1, total_steps - warmup),
            warmup_target=learning_rate,
            warmup_steps=warmup,
            alpha=0.0,
        )
    raise ValueError(f"unknown schedule {schedule!r}; known: {', '.join(SCHEDULES)}")


def make_optimizer(name: str, learning_rate, weight_decay: float = 0.0):
    """``"sgd"`` (the study's baseline), ``"adam"`` or ``"adamw"`` (decoupled weight decay).

    ``learning_rate`` is a float or a Keras schedule.
    """
    import keras

    if name == "sgd":
        return keras.optimizers.SGD(learning_rate=learning_rate)
    if name == "adam":
        return keras.optimizers.Adam(learning_rate=learning_rate)
    if name == "adamw":
        return keras.optimizers.AdamW(learning_rate=learning_rate, weight_decay=weight_decay)
    raise ValueError(f"unknown optimizer {name!r}; known: {', '.join(OPTIMIZERS)}")


def trainable_parameter_count(model) -> int:
    """Sum of the sizes of the model's trainable weights."""
    return int(sum(np.prod(w.shape) for w in model.trainable_weights))
