"""Tests for urbansound.models: the SB-CNN baseline, its input standardisation,
saving and loading, seeding."""
from __future__ import annotations

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from urbansound.models import (MODEL_NAMES, build_model, make_optimizer,  # noqa: E402
                               trainable_parameter_count)

N_MELS = 128
BAND_MEAN = np.linspace(-60.0, -20.0, N_MELS).astype(np.float32)
BAND_VARIANCE = np.linspace(4.0, 100.0, N_MELS).astype(np.float32)


def batch(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.normal(-40.0, 12.0, size=(n, N_MELS, 128, 1)).astype(np.float32)


@pytest.fixture(scope="module")
def plain():
    return build_model("baseline", seed=1)


@pytest.fixture(scope="module")
def standardized():
    return build_model("baseline", band_mean=BAND_MEAN, band_variance=BAND_VARIANCE, seed=1)


def weights(model) -> list[np.ndarray]:
    return [np.asarray(w) for w in model.trainable_weights]


# ---------------------------------------------------------------------------
# Architecture
# ---------------------------------------------------------------------------

def test_model_names():
    assert MODEL_NAMES == frozenset({"baseline"})


@pytest.mark.parametrize("which", ["plain", "standardized"])
def test_baseline_has_the_study_parameter_count(request, which):
    model = request.getfixturevalue(which)
    assert trainable_parameter_count(model) == 241_434
    assert model.name == "baseline"


def test_parameter_count_by_layer(plain):
    counts = {layer.name: layer.count_params() for layer in plain.layers if layer.count_params()}
    assert counts == {
        "conv1": 5 * 5 * 1 * 24 + 24,      # 624
        "conv2": 5 * 5 * 24 * 48 + 48,     # 28,848
        "conv3": 5 * 5 * 48 * 48 + 48,     # 57,648
        "dense1": 2 * 25 * 48 * 64 + 64,   # flatten of (2, 25, 48) = 2,400 -> 153,664
        "probabilities": 64 * 10 + 10,     # 650
    }
    assert sum(counts.values()) == 241_434


def test_layer_shapes(plain):
    shapes = {layer.name: tuple(layer.output.shape[1:]) for layer in plain.layers}
    assert shapes["conv1"] == (124, 124, 24)
    assert shapes["pool1"] == (31, 62, 24)
    assert shapes["conv2"] == (27, 58, 48)
    assert shapes["pool2"] == (6, 29, 48)
    assert shapes["conv3"] == (2, 25, 48)
    assert shapes["flatten"] == (2400,)
    assert shapes["probabilities"] == (10,)


def test_n_classes_changes_only_the_last_layer():
    model = build_model("baseline", n_classes=5, seed=0)
    assert trainable_parameter_count(model) == 241_434 - 650 + (64 * 5 + 5)
    assert model.output.shape[1:] == (5,)


def test_standardisation_layer_is_not_trainable(standardized, plain):
    names = [layer.name for layer in standardized.layers]
    assert names[1] == "per_band_standardize"
    assert "per_band_standardize" not in [layer.name for layer in plain.layers]
    layer = standardized.get_layer("per_band_standardize")
    assert trainable_parameter_count(standardized) == trainable_parameter_count(plain)
    assert not layer.trainable_weights


# ---------------------------------------------------------------------------
# Behaviour
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("n", [1, 4])
@pytest.mark.parametrize("which", ["plain", "standardized"])
def test_output_is_a_probability_distribution(request, which, n):
    model = request.getfixturevalue(which)
    p = np.asarray(model(batch(n), training=False))
    assert p.shape == (n, 10)
    assert np.all(p >= 0)
    np.testing.assert_allclose(p.sum(axis=1), 1.0, atol=1e-5)


def test_standardisation_maps_band_mean_to_zero_and_one_std_to_one(standardized):
    sub = keras.Model(standardized.input, standardized.get_layer("per_band_standardize").output)
    at_mean = np.broadcast_to(BAND_MEAN[None, :, None, None], (2, N_MELS, 128, 1))
    out = np.asarray(sub(at_mean))
    assert out.shape == (2, N_MELS, 128, 1)
    np.testing.assert_allclose(out, 0.0, atol=1e-5)
    one_up = at_mean + np.sqrt(BAND_VARIANCE)[None, :, None, None]
    np.testing.assert_allclose(np.asarray(sub(one_up)), 1.0, atol=1e-5)
    # per band (rows), not per frame: a value of -40 dB maps differently in each band
    flat = np.full((1, N_MELS, 128, 1), -40.0, np.float32)
    z = np.asarray(sub(flat))[0, :, 0, 0]
    np.testing.assert_allclose(z, (-40.0 - BAND_MEAN) / np.sqrt(BAND_VARIANCE), rtol=1e-4, atol=1e-5)


def test_save_and_load_give_identical_predictions(standardized, tmp_path):
    path = tmp_path / "model.keras"
    standardized.save(path)
    loaded = keras.models.load_model(path)
    x = batch(3, seed=5)
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), standardized.predict(x, verbose=0))
    assert trainable_parameter_count(loaded) == 241_434
    # the standardisation travels with the model: it takes raw dB log-mels
    layer = loaded.get_layer("per_band_standardize")
    np.testing.assert_allclose(np.ravel(layer.mean), BAND_MEAN, rtol=1e-6)


def test_same_seed_same_weights_different_seed_different(plain):
    again = build_model("baseline", seed=1)
    for a, b in zip(weights(plain), weights(again)):
        np.testing.assert_array_equal(a, b)
    other = build_model("baseline", seed=2)
    kernels = [(a, b) for a, b in zip(weights(plain), weights(other)) if a.ndim > 1]
    assert len(kernels) == 5
    assert all(not np.array_equal(a, b) for a, b in kernels)


def test_seed_does_not_depend_on_band_statistics(plain, standardized):
    for a, b in zip(weights(plain), weights(standardized)):
        np.testing.assert_array_equal(a, b)


# ---------------------------------------------------------------------------
# Errors and optimisers
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["resnet", "Baseline", ""])
def test_unknown_model_raises(name):
    with pytest.raises(ValueError, match=rf"unknown model {name!r}; known: \['baseline'\]"):
        build_model(name)


@pytest.mark.parametrize("mean, variance", [(BAND_MEAN, None), (None, BAND_VARIANCE)])
def test_band_statistics_both_or_neither(mean, variance):
    with pytest.raises(ValueError, match="give both band_mean and band_variance, or neither"):
        build_model("baseline", band_mean=mean, band_variance=variance)


@pytest.mark.parametrize("name, cls, lr", [("sgd", "SGD", 0.01), ("adam", "Adam", 0.001)])
def test_make_optimizer(name, cls, lr):
    opt = make_optimizer(name, lr)
    assert type(opt).__name__ == cls
    assert float(opt.learning_rate) == pytest.approx(lr)


def test_make_optimizer_unknown():
    with pytest.raises(ValueError, match="unknown optimizer 'rmsprop'"):
        make_optimizer("rmsprop", 0.01)
