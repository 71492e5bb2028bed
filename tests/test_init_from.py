"""train.init_from: fine-tuning from a model trained before (layers copied by name, the
per-band statistics the new data's, the softmax new when the class count differs)."""

from __future__ import annotations

import argparse
import json

import numpy as np
import pytest
from conftest import write_band_features

pytest.importorskip("tensorflow")

from urbansound.config import Config, ConfigError, config_for
from urbansound.models import build_model
from urbansound.training import (
    CONFIG_FILE,
    MODEL_FILE,
    RESULT_FILE,
    load_init_model,
    train_fold,
    transfer_weights,
)

N_MELS, N_FRAMES = 128, 128
CONV = ("conv1", "conv2", "conv3", "dense1")


def _improved(n_classes: int, seed: int, offset: float = 0.0, name: str = "improved"):
    return build_model(
        name,
        input_shape=(N_MELS, N_FRAMES, 1),
        n_classes=n_classes,
        band_mean=np.full(N_MELS, -40.0 + offset, np.float32),
        band_variance=np.full(N_MELS, 100.0 + offset, np.float32),
        seed=seed,
    )


def _weights(model, name):
    return model.get_layer(name).get_weights()


def _equal(a, b) -> bool:
    return len(a) == len(b) and all(np.array_equal(x, y) for x, y in zip(a, b))


def test_other_class_count_copies_features_and_replaces_softmax():
    source, target = _improved(10, seed=1), _improved(3, seed=2, offset=5.0)
    fresh_head = _weights(target, "probabilities")
    report = transfer_weights(target, source, source_name="src/model.keras")
    for name in CONV:
        assert _equal(_weights(target, name), _weights(source, name)), name
    assert report.copied == list(CONV)
    assert report.head == "probabilities" and report.head_action == "replaced"
    assert _equal(_weights(target, "probabilities"), fresh_head)
    assert _weights(target, "probabilities")[0].shape == (64, 3)
    # the new data's standardisation, not the source's
    mean = np.asarray(target.get_layer("per_band_standardize").mean).ravel()
    np.testing.assert_array_equal(mean, np.full(N_MELS, -35.0, np.float32))
    assert report.summary() == (
        "initialised from src/model.keras: 4 layers copied, last layer 'probabilities' replaced"
    )


def test_same_class_count_copies_softmax_too():
    source, target = _improved(10, seed=1), _improved(10, seed=2)
    report = transfer_weights(target, source)
    assert report.head_action == "copied" and report.copied == [*CONV, "probabilities"]
    assert _equal(_weights(target, "probabilities"), _weights(source, "probabilities"))


def test_nested_frame_network_of_conv1d_matches_inside():
    source = build_model("conv1d", input_shape=(32000, 1), n_classes=10, seed=1)
    target = build_model("conv1d", input_shape=(32000, 1), n_classes=3, seed=2)
    report = transfer_weights(target, source, freeze_features=True)
    assert report.head == "frame_probabilities" and report.head_action == "replaced"
    assert report.copied == [
        "conv1",
        "bn1",
        "conv2",
        "bn2",
        "conv3",
        "bn3",
        "conv4",
        "bn4",
        "dense1",
        "dense2",
    ]
    inner = target.get_layer("per_frame").layer
    src_inner = source.get_layer("per_frame").layer
    assert _equal(
        inner.get_layer("conv4").get_weights(), src_inner.get_layer("conv4").get_weights()
    )
    # the softmax only
    assert [tuple(w.shape) for w in target.trainable_weights] == [(64, 3), (3,)]


def test_another_architecture_or_input_is_refused_in_one_line():
    with pytest.raises(ConfigError, match=r"^a/model.keras: another architecture") as err:
        transfer_weights(
            _improved(10, seed=2), _improved(10, seed=1, name="sb-cnn"), source_name="a/model.keras"
        )
    assert "\n" not in str(err.value)
    other_shape = build_model("improved", input_shape=(160, N_FRAMES, 1), n_classes=10, seed=1)
    with pytest.raises(ConfigError, match=r"^b: takes logmel input of shape \(160, 128, 1\)"):
        transfer_weights(_improved(10, seed=2), other_shape, source_name="b")


def test_config_json_beside_source_names_its_model(tmp_path):
    _improved(10, seed=1).save(tmp_path / MODEL_FILE)
    (tmp_path / CONFIG_FILE).write_text(config_for("sb-cnn").to_json())
    with pytest.raises(
        ConfigError,
        match=r"model.keras: trained as model 'sb-cnn'.*"
        r"this run trains 'improved'",
    ):
        load_init_model(tmp_path / MODEL_FILE, config_for("improved", "quick"))
    with pytest.raises(ConfigError, match=r"nowhere.keras: train.init_from names no model file"):
        load_init_model(tmp_path / "nowhere.keras", config_for("improved", "quick"))


def test_freeze_features_config_needs_init_from():
    with pytest.raises(ConfigError, match="train.freeze_features needs train.init_from"):
        config_for("improved", "quick").override(**{"train.freeze_features": True})


def _target_config(source_path, **extra) -> Config:
    return config_for("improved", "quick").override(
        **{
            "train.epochs": 1,
            "train.batch_size": 8,
            "train.validation": "none",
            "data.class_names": ["low", "high", "other"],
            "train.init_from": str(source_path),
            **extra,
        }
    )


def test_freeze_features_trains_only_the_last_layer(tmp_path):
    features = tmp_path / "features"
    features.mkdir()
    write_band_features(features, per_fold=8, seed=3)
    source = _improved(10, seed=1)
    (tmp_path / "src").mkdir()
    source.save(tmp_path / "src" / MODEL_FILE)
    config = _target_config(tmp_path / "src" / MODEL_FILE, **{"train.freeze_features": True})
    import keras

    start = {}

    class HeadAtStart(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            start.update({layer.name: layer.get_weights() for layer in self.model.layers})

    result = train_fold(
        features, 3, [1, 2, 3], config=config, out_dir=tmp_path / "out", callbacks=[HeadAtStart()]
    )
    tuned = keras.models.load_model(tmp_path / "out" / MODEL_FILE, compile=False)
    for name in CONV:  # copied before training, and frozen: still the source's after an epoch
        assert _equal(start[name], _weights(source, name)), name
        assert _equal(_weights(tuned, name), _weights(source, name)), name
    assert _weights(tuned, "probabilities")[0].shape == (64, 3)
    assert not _equal(_weights(tuned, "probabilities"), start["probabilities"])
    saved = json.loads((tmp_path / "out" / RESULT_FILE).read_text())["initialised_from"]
    assert saved["head_action"] == "replaced" and saved["copied"] == list(CONV)
    assert saved["frozen"] == 4 and result.initialised_from == saved


def test_without_freezing_the_features_train_too(tmp_path):
    features = tmp_path / "features"
    features.mkdir()
    write_band_features(features, per_fold=8, seed=3)
    source = _improved(10, seed=1)
    source.save(tmp_path / MODEL_FILE)
    train_fold(
        features,
        3,
        [1, 2, 3],
        config=_target_config(tmp_path / MODEL_FILE),
        out_dir=tmp_path / "out",
    )
    import keras

    tuned = keras.models.load_model(tmp_path / "out" / MODEL_FILE, compile=False)
    assert not _equal(_weights(tuned, "conv1"), _weights(source, "conv1"))


def test_cli_resolves_a_local_fold_folder(tmp_path):
    from urbansound.pipeline.commands.options import config_from_args
    from urbansound.pipeline.commands.resolve import resolve_init_from

    fold = tmp_path / "runs" / "fold-1"
    fold.mkdir(parents=True)
    _improved(10, seed=1).save(fold / MODEL_FILE)
    (fold / CONFIG_FILE).write_text(config_for("improved").to_json())
    args = argparse.Namespace(
        model="improved",
        profile="quick",
        init_from=str(tmp_path / "runs"),
        freeze_features=True,
        settings=[],
    )
    config = resolve_init_from(config_from_args(args, demo=False), args, tmp_path / "out")
    assert config.train.init_from == str((fold / MODEL_FILE).resolve())
    assert config.train.freeze_features
    args.model = "urbannet"
    with pytest.raises(ConfigError, match="trained as model 'improved'.*trains 'urbannet'"):
        resolve_init_from(config_from_args(args, demo=False), args, tmp_path / "out")
    # submit: an MLflow URI is refused, a path only the pods see is passed on as given
    args.model, args.init_from = "improved", "runs:/abc/model"
    with pytest.raises(
        ConfigError, match="^runs:/abc/model: submit takes --init-from as a model.keras path"
    ):
        resolve_init_from(config_from_args(args, demo=False), args, None)
    args.init_from = "/mnt/models/model.keras"
    assert (
        resolve_init_from(config_from_args(args, demo=False), args, None).train.init_from
        == "/mnt/models/model.keras"
    )
