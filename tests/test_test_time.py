"""Test-time averaging over 3 s windows (features.window_hop_s): the features stage writes
a long clip's later windows, training never sees them, and a test clip is classified by
the mean of its windows' probabilities, as predict classifies a recording."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("tensorflow")

from urbansound.config import Config, ConfigError, config_for
from urbansound.records import (
    ORIGINAL,
    decode_features,
    encode_waveform,
    fold_files,
    is_window,
    iter_records,
    window_name,
    write_records,
)
from urbansound.training import mean_per_clip
from urbansound.training_input import load_examples

SR = 22050


def test_window_names():
    assert window_name(1.5) == "window@1.500s" and is_window("window@1.500s")
    assert not is_window(ORIGINAL) and not is_window("pitch_shift_2")


def test_window_hop_is_checked():
    with pytest.raises(ConfigError, match="window_hop_s must be 0"):
        Config().override(**{"features.window_hop_s": 3.5})
    with pytest.raises(ConfigError, match="window_hop_s must be 0"):
        Config().override(**{"features.window_hop_s": -1.0})


def test_mean_per_clip_averages_consecutive_windows():
    p = np.array([[1, 0], [0, 1], [0.5, 0.5], [0.2, 0.8], [0.6, 0.4]], np.float32)
    names = ["a.wav", "a.wav", "b.wav", "c.wav", "c.wav"]
    clip, first = mean_per_clip(p, names)
    np.testing.assert_allclose(clip, [[0.5, 0.5], [0.5, 0.5], [0.4, 0.6]], atol=1e-6)
    assert first.tolist() == [0, 2, 3]
    clip, first = mean_per_clip(np.zeros((0, 2), np.float32), [])
    assert clip.shape == (0, 2) and first.shape == (0,)


def chirp_clip(seconds: float, label: int) -> np.ndarray:
    """A tone whose pitch rises with time, so every window of the clip differs."""
    t = np.arange(int(seconds * SR)) / SR
    f = 300.0 * (label + 1) + 200.0 * t
    return (0.3 * np.sin(2 * np.pi * np.cumsum(f) / SR)).astype(np.float32)


@pytest.fixture(scope="module")
def windowed(tmp_path_factory):
    """Waveform records of 3 folds (4 s clips, plus one 2 s clip in fold 1) through the
    features stage with a 0.5 s window hop."""
    from urbansound.beam_features import run_features

    root = tmp_path_factory.mktemp("tta")
    wave = root / "wave"
    wave.mkdir()
    folds = {}
    for fold in (1, 2, 3):
        raws = []
        for i in range(4):
            label = i % 2
            seconds = 2.0 if (fold, i) == (1, 3) else 4.0
            raws.append(
                encode_waveform(
                    chirp_clip(seconds, label),
                    sample_rate=SR,
                    label=label,
                    fold=fold,
                    fs_id=100 * fold + i,
                    salience=1 + i % 2,
                    file_name=f"{100 * fold + i}-{label}-0-0.wav",
                    class_name="air_conditioner" if label == 0 else "car_horn",
                )
            )
        write_records(wave / f"fold{fold}.tfrecord", raws)
        folds[str(fold)] = len(raws)
    (wave / "manifest.json").write_text(json.dumps({"folds": folds, "dataset_hash": "x"}))
    config = config_for("improved", "quick").override(
        **{"features.window_hop_s": 0.5, "train.epochs": 1, "train.batch_size": 4}
    )
    manifest = run_features(wave, root / "feat", config=config, beam_args=["--runner=FnApiRunner"])
    return root, config, manifest


def test_features_stage_writes_the_windows_predict_would_classify(windowed):
    root, _config, manifest = windowed
    starts = {}
    for raw in iter_records(fold_files(root / "feat", 1)):
        rec = decode_features(raw)
        starts.setdefault(rec.file_name, []).append(rec.deformation)
    # 4 s clip, 3 s windows, hop 0.5 s: starts 0, 0.5, 1.0; the 2 s clip has one window
    assert sorted(starts["100-0-0-0.wav"]) == ["", "window@0.500s", "window@1.000s"]
    assert starts["103-1-0-0.wav"] == [""]
    assert manifest["folds"]["1"] == {"original": 4, "windows": 6}


def test_a_window_is_the_logmel_of_those_seconds(windowed):
    from urbansound.features import model_input

    root, config, _ = windowed
    recs = {
        decode_features(r).deformation: decode_features(r)
        for r in iter_records(fold_files(root / "feat", 2))
        if decode_features(r).file_name == "201-1-0-0.wav"
    }
    y = chirp_clip(4.0, 1)
    start = int(0.5 * SR)
    np.testing.assert_array_equal(
        recs["window@0.500s"].values,
        model_input(y[start : start + config.audio.clip_samples], config),
    )
    np.testing.assert_array_equal(recs[""].values, model_input(y, config))


def test_training_never_loads_the_windows(windowed):
    root, _, _ = windowed
    train = load_examples(root / "feat", [2, 3], include_deformed=True)
    assert len(train) == 8 and set(train.deformations) == {ORIGINAL}
    test = load_examples(root / "feat", [1], include_deformed=False, include_windows=True)
    assert len(test) == 10 and sum(map(is_window, test.deformations)) == 6
    # a clip's windows follow its first window
    assert test.file_names[:3] == ["100-0-0-0.wav"] * 3 and test.deformations[0] == ORIGINAL


def test_a_test_clip_is_classified_by_the_mean_of_its_windows(windowed, tmp_path):
    import keras

    from urbansound.training import train_fold

    root, config, _ = windowed
    result = train_fold(root / "feat", 1, [1, 2, 3], config=config, out_dir=tmp_path)
    assert result.n_test == 4 and result.test_windows == 10
    assert len(result.y_true) == 4 and result.y_true == [0, 1, 0, 1]
    assert result.salience == [1, 2, 1, 2]
    model = keras.models.load_model(tmp_path / "model.keras")
    test = load_examples(root / "feat", [1], include_deformed=False, include_windows=True)
    p = model.predict(test.x, verbose=0)
    expected = [p[0:3].mean(0), p[3:6].mean(0), p[6:9].mean(0), p[9]]
    assert result.y_pred == [int(np.argmax(e)) for e in expected]
    assert result.test_accuracy == np.mean(np.array(result.y_pred) == [0, 1, 0, 1])


def test_the_summary_says_which_test_time_method(tmp_path):
    from urbansound.evaluation import evaluate_folds, format_summary
    from urbansound.training import FoldResult

    def result(fold, windows):
        return FoldResult(
            test_fold=fold,
            validation_fold=None,
            train_folds=[3 - fold],
            test_accuracy=0.5,
            test_loss=1.0,
            y_true=[0, 1],
            y_pred=[0, 0],
            confusion_matrix=[[1, 0] + [0] * 8, [1, 0] + [0] * 8] + [[0] * 10] * 8,
            history={"loss": [1.0]},
            best_epoch=1,
            epochs_run=1,
            n_train=2,
            n_validation=0,
            n_test=2,
            parameters=1,
            test_windows=windows,
        )

    plain = evaluate_folds([result(1, 2), result(2, 0)], tmp_path / "a", plots=False)
    assert plain["test_time"] == {
        "clips": 4,
        "windows": 4,
        "method": "one window per clip (its first audio.clip_seconds)",
    }
    averaged = evaluate_folds([result(1, 5), result(2, 3)], tmp_path / "b", plots=False)
    assert averaged["test_time"]["windows"] == 8
    assert "test-time averaging: 8 windows of 4 clips" in format_summary(averaged)
    assert "test-time" not in format_summary(plain)


# train.random_windows: each epoch trains on one window of every clip, drawn at random


def test_random_windows_need_the_windows():
    with pytest.raises(ConfigError, match=r"random_windows needs features\.window_hop_s > 0"):
        Config().override(**{"train.random_windows": True})
    config = Config().override(**{"train.random_windows": True, "features.window_hop_s": 0.5})
    assert config.train.augments_batches  # one-hot batches from AugmentedBatches


def test_window_groups_put_a_clips_windows_together_and_each_deformed_copy_alone():
    from urbansound.training_input import Examples, window_groups

    names = ["a.wav", "a.wav", "a.wav", "a.wav", "b.wav"]
    deformations = [ORIGINAL, "pitch_shift_2", "window@0.500s", "window@1.000s", ORIGINAL]
    examples = Examples(
        np.zeros((5, 2, 2, 1), np.float32), np.zeros(5, np.int64), names, deformations
    )
    assert [g.tolist() for g in window_groups(examples)] == [[0, 2, 3], [1], [4]]


def test_an_epoch_draws_one_window_of_each_clip_seeded(windowed):
    from urbansound.training_input import AugmentedBatches, window_groups

    root, config, _ = windowed
    config = config.override(**{"train.random_windows": True, "train.batch_size": 4})
    train = load_examples(root / "feat", [1, 2], include_deformed=True, include_windows=True)
    groups = window_groups(train)
    # fold 1: 4 clips, 6 later windows (its 2 s clip has none); fold 2: 4 clips, 8
    assert len(train) == 8 + 6 + 8 and len(groups) == 8

    def epochs(seed, n=12):
        batches = AugmentedBatches(train.x, np.eye(2)[train.y], config, seed=seed, groups=groups)
        drawn = []
        for _ in range(n):
            assert len(batches) == 2  # 8 clips in batches of 4, not 22 rows
            drawn.append(batches.order.copy())
            batches.on_epoch_end()
        return drawn

    drawn = epochs(seed=3)
    for rows in drawn:  # exactly one row of every clip per epoch
        assert sorted(int(np.flatnonzero([r in g for g in groups])[0]) for r in rows) == list(
            range(8)
        )
    # over 12 epochs every window of a 4 s clip is drawn (chance of missing one < 1 %)
    first_clip = set(groups[0].tolist())
    assert first_clip == {int(r) for rows in drawn for r in rows if r in first_clip}
    assert all((a == b).all() for a, b in zip(drawn, epochs(seed=3)))
    assert any((a != b).any() for a, b in zip(drawn, epochs(seed=4)))


def test_train_fold_with_random_windows_counts_clips_not_windows(windowed, tmp_path):
    from urbansound.training import train_fold

    root, config, _ = windowed
    config = config.override(**{"train.random_windows": True, "train.validation": "none"})
    result = train_fold(root / "feat", 1, [1, 2, 3], config=config, out_dir=tmp_path)
    # folds 2 and 3: 8 clips (their 12 later windows are drawn from, not added)
    assert result.n_train == 8 and result.n_test == 4 and result.test_windows == 10
