"""Keras models of the study, by name.

Every model takes a log-mel batch of shape (batch, n_mels, n_frames, 1) in dB
and returns class probabilities of shape (batch, n_classes).  Input scaling is
part of the model: with per-band statistics given, the first layer standardises
each mel band (mean and variance computed on the training folds only), so a
saved model takes raw log-mels, exactly what :mod:`urbansound.features` makes.
"""
from __future__ import annotations

from typing import Callable

import numpy as np

MODEL_NAMES = frozenset({"baseline"})
"""Names accepted by :func:`build_model` (and ``train.model`` in the config)."""


def build_model(name: str, *, input_shape: tuple[int, int, int] = (128, 128, 1),
                n_classes: int = 10, band_mean: np.ndarray | None = None,
                band_variance: np.ndarray | None = None, seed: int | None = None):
    """Build an uncompiled Keras model.

    Parameters
    ----------
    name : one of :data:`MODEL_NAMES`.
    input_shape : (n_mels, n_frames, 1).
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

    builders: dict[str, Callable] = {"baseline": _sb_cnn}
    if name not in builders:
        raise ValueError(f"unknown model {name!r}; known: {sorted(MODEL_NAMES)}")
    if seed is not None:
        keras.utils.set_random_seed(seed)
    inputs = keras.Input(shape=input_shape, name="logmel")
    x = inputs
    if (band_mean is None) != (band_variance is None):
        raise ValueError("give both band_mean and band_variance, or neither")
    if band_mean is not None:
        # axis=1 keeps one mean/variance per mel band (rows of the spectrogram).
        x = keras.layers.Normalization(axis=1, mean=np.asarray(band_mean, np.float32),
                                       variance=np.asarray(band_variance, np.float32),
                                       name="per_band_standardize")(x)
    outputs = builders[name](x, n_classes)
    return keras.Model(inputs, outputs, name=name)


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


def make_optimizer(name: str, learning_rate: float):
    """``"sgd"`` (constant rate, the study's baseline) or ``"adam"``."""
    import keras

    if name == "sgd":
        return keras.optimizers.SGD(learning_rate=learning_rate)
    if name == "adam":
        return keras.optimizers.Adam(learning_rate=learning_rate)
    raise ValueError(f"unknown optimizer {name!r}")


def trainable_parameter_count(model) -> int:
    """Sum of the sizes of the model's trainable weights."""
    return int(sum(np.prod(w.shape) for w in model.trainable_weights))
