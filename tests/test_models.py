"""Tests for urbansound.models: the registry, the study's SB-CNN and improved CNN, the
default urbannet, input standardisation, saving and loading, seeding, optimisers, schedules."""

from __future__ import annotations

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from urbansound.models import (  # noqa: E402 (after the skip when keras is missing)
    DEFAULT_MODEL,
    MODEL_NAMES,
    MODELS,
    build_model,
    get_spec,
    learning_rate_schedule,
    make_optimizer,
    trainable_parameter_count,
)

N_MELS = 128
BAND_MEAN = np.linspace(-60.0, -20.0, N_MELS).astype(np.float32)
BAND_VARIANCE = np.linspace(4.0, 100.0, N_MELS).astype(np.float32)


def batch(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.normal(-40.0, 12.0, size=(n, N_MELS, 128, 1)).astype(np.float32)


@pytest.fixture(scope="module")
def plain():
    return build_model("sb-cnn", seed=1)


@pytest.fixture(scope="module")
def standardized():
    return build_model("sb-cnn", band_mean=BAND_MEAN, band_variance=BAND_VARIANCE, seed=1)


def weights(model) -> list[np.ndarray]:
    return [np.asarray(w) for w in model.trainable_weights]


# ---------------------------------------------------------------------------
# Architecture
# ---------------------------------------------------------------------------


def test_model_names_and_default():
    assert list(MODELS) == ["urbannet", "urbannet-large", "sb-cnn", "improved", "conv1d"]
    assert MODEL_NAMES == frozenset(MODELS) and DEFAULT_MODEL == "urbannet"
    assert [name for name, spec in MODELS.items() if spec.study] == ["sb-cnn", "improved", "conv1d"]
    assert {name: spec.input_kind for name, spec in MODELS.items()} == {
        "urbannet": "logmel",
        "urbannet-large": "logmel",
        "sb-cnn": "logmel",
        "improved": "logmel",
        "conv1d": "waveform",
    }


@pytest.mark.parametrize("which", ["plain", "standardized"])
def test_baseline_has_the_study_parameter_count(request, which):
    model = request.getfixturevalue(which)
    assert trainable_parameter_count(model) == 241_434
    assert model.name == "sb-cnn"


def test_parameter_count_by_layer(plain):
    counts = {layer.name: layer.count_params() for layer in plain.layers if layer.count_params()}
    assert counts == {
        "conv1": 5 * 5 * 1 * 24 + 24,  # 624
        "conv2": 5 * 5 * 24 * 48 + 48,  # 28,848
        "conv3": 5 * 5 * 48 * 48 + 48,  # 57,648
        "dense1": 2 * 25 * 48 * 64 + 64,  # flatten of (2, 25, 48) = 2,400 -> 153,664
        "probabilities": 64 * 10 + 10,  # 650
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
    model = build_model("sb-cnn", n_classes=5, seed=0)
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
    np.testing.assert_allclose(
        z, (-40.0 - BAND_MEAN) / np.sqrt(BAND_VARIANCE), rtol=1e-4, atol=1e-5
    )


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
    again = build_model("sb-cnn", seed=1)
    for a, b in zip(weights(plain), weights(again)):
        np.testing.assert_array_equal(a, b)
    other = build_model("sb-cnn", seed=2)
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
    with pytest.raises(
        ValueError,
        match=rf"unknown model {name!r}; known: urbannet, urbannet-large, sb-cnn, improved",
    ):
        build_model(name)


@pytest.mark.parametrize("mean, variance", [(BAND_MEAN, None), (None, BAND_VARIANCE)])
def test_band_statistics_both_or_neither(mean, variance):
    with pytest.raises(ValueError, match="give both band_mean and band_variance, or neither"):
        build_model("sb-cnn", band_mean=mean, band_variance=variance)


@pytest.mark.parametrize(
    "name, cls, lr", [("sgd", "SGD", 0.01), ("adam", "Adam", 0.001), ("adamw", "AdamW", 0.002)]
)
def test_make_optimizer(name, cls, lr):
    opt = make_optimizer(name, lr)
    assert type(opt).__name__ == cls
    assert float(opt.learning_rate) == pytest.approx(lr)


def test_make_optimizer_unknown():
    with pytest.raises(ValueError, match="unknown optimizer 'rmsprop'"):
        make_optimizer("rmsprop", 0.01)


def test_adamw_carries_its_weight_decay():
    assert float(make_optimizer("adamw", 0.002, 5e-4).weight_decay) == pytest.approx(5e-4)


# ---------------------------------------------------------------------------
# The other models of the registry
# ---------------------------------------------------------------------------


def test_improved_is_the_study_size_and_shape():
    model = build_model("improved", seed=0)
    # the study reports 33,634 without giving the layers; this reading has 33,949
    assert trainable_parameter_count(model) == 33_949
    counts = {layer.name: layer.count_params() for layer in model.layers if layer.count_params()}
    assert counts == {
        "conv1": 624,
        "conv2": 5 * 5 * 24 * 16 + 16,
        "conv3": 5 * 5 * 16 * 35 + 35,
        "dense1": 2 * 2 * 35 * 64 + 64,
        "probabilities": 650,
    }
    # dropout only before the last layer
    assert [layer.name for layer in model.layers if "dropout" in layer.name] == ["dropout"]
    assert model.layers[-2].name == "dropout"


@pytest.mark.parametrize("name, params", [("urbannet", 669_106), ("urbannet-large", 1_187_050)])
def test_urbannet_parameter_counts_and_output(name, params):
    model = build_model(name, band_mean=BAND_MEAN, band_variance=BAND_VARIANCE, seed=0)
    assert trainable_parameter_count(model) == params
    p = np.asarray(model(batch(2), training=False))
    assert p.shape == (2, 10)
    np.testing.assert_allclose(p.sum(axis=1), 1.0, atol=1e-5)


def test_urbannet_feature_map_shapes():
    model = build_model("urbannet", seed=0)
    shapes = {layer.name: tuple(layer.output.shape[1:]) for layer in model.layers}
    assert shapes["stem_relu"] == (64, 64, 24)  # strided stem: both axes halved
    assert shapes["block1_pool"] == (32, 32, 24)
    assert shapes["block4_pool"] == (4, 4, 192)
    assert shapes["mean_max"] == (384,)


def test_urbannet_saves_and_loads_safely(tmp_path):
    """Plain Keras layers only: loads with safe_mode (no Lambda, no custom objects)."""
    model = build_model("urbannet", band_mean=BAND_MEAN, band_variance=BAND_VARIANCE, seed=3)
    model.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras", safe_mode=True)
    x = batch(2, seed=9)
    np.testing.assert_allclose(
        loaded.predict(x, verbose=0), model.predict(x, verbose=0), rtol=1e-5, atol=1e-6
    )


def test_every_spec_has_a_valid_recipe():
    for name, spec in MODELS.items():
        assert get_spec(name) is spec
        assert spec.input_kind in ("logmel", "waveform")
        assert spec.optimizer in ("sgd", "adam", "adamw") and spec.learning_rate > 0
        assert spec.validation in ("fold", "none") and spec.epochs >= 1
    # the study's recipes (SEED.md)
    assert (
        MODELS["sb-cnn"].optimizer,
        MODELS["sb-cnn"].learning_rate,
        MODELS["sb-cnn"].epochs,
        MODELS["sb-cnn"].patience,
    ) == ("sgd", 0.01, 50, 15)
    assert (MODELS["improved"].optimizer, MODELS["improved"].epochs) == ("adam", 100)


def test_one_cycle_schedule_warms_up_then_decays_to_zero():
    schedule = learning_rate_schedule("one_cycle", 2e-3, 100)
    lr = [float(schedule(step)) for step in (0, 5, 10, 55, 100)]
    assert lr[0] == pytest.approx(2e-3 / 25)
    assert lr[0] < lr[1] < lr[2] == pytest.approx(2e-3)  # warm-up: the first 10 % of steps
    assert lr[2] > lr[3] > lr[4] and lr[4] == pytest.approx(0.0, abs=1e-9)
    assert learning_rate_schedule("constant", 0.01, 100) == 0.01
    with pytest.raises(ValueError, match="unknown schedule 'step'"):
        learning_rate_schedule("step", 0.01, 10)


def test_urbannet_batch_norm_statistics_settle_within_a_short_run():
    """momentum 0.9: after 50 updates the moving mean holds < 1 % of its initial 0
    (Keras' default 0.99 would still hold 60 %, and a short run infers at chance)."""
    model = build_model("urbannet", seed=0)
    bn = [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]
    assert len(bn) == 9 and all(layer.momentum == pytest.approx(0.9) for layer in bn)
