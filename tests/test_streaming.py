"""Streamed training input (train.input=stream): the same examples and statistics as the
in-memory path, bounded memory, deterministic under a seed."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import write_band_features

pytest.importorskip("tensorflow")

from urbansound import training_input
from urbansound.config import ConfigError, config_for
from urbansound.records import encode_logmel, write_records
from urbansound.training import train_fold
from urbansound.training_input import (
    StreamedExamples,
    band_statistics,
    load_examples,
    record_dataset,
    should_stream,
)

N_MELS, N_FRAMES = 128, 128


@pytest.fixture(scope="module")
def features(tmp_path_factory):
    root = tmp_path_factory.mktemp("stream")
    write_band_features(
        root, per_fold=24, seed=7, deformed=6, windows=True, shards=2, manifest=True
    )
    return root


def _sorted_pairs(x, y):
    order = np.lexsort((x.reshape(len(x), -1).sum(axis=1), y))
    return x[order], y[order]


def test_streamed_examples_are_the_in_memory_ones(features):
    memory = load_examples(features, [2, 3], include_deformed=True)
    streamed = StreamedExamples(features, [2, 3], kind="logmel", input_shape=(128, 128, 1))
    xs, ys = zip(*streamed.dataset().as_numpy_iterator())
    x, y = _sorted_pairs(np.stack(xs), np.array(ys))
    mx, my = _sorted_pairs(memory.x, memory.y)
    assert len(streamed) == len(memory) == 2 * (24 + 6)  # windows are never training examples
    # originals counted by the same scan: deformed copies and windows are not originals
    assert streamed.count_originals() == memory.count_originals() == 2 * 24
    np.testing.assert_array_equal(y, my)
    np.testing.assert_array_equal(x, mx)


def test_originals_only_and_no_windows(features):
    ds = record_dataset(
        sorted(str(p) for p in features.glob("fold1-*.tfrecord")),
        kind="logmel",
        input_shape=(128, 128, 1),
        include_deformed=False,
    )
    assert sum(1 for _ in ds) == 24


def test_streamed_band_statistics_equal_the_arrays(features):
    memory = load_examples(features, [2, 3], include_deformed=True)
    mean, variance = band_statistics(memory.x)
    s_mean, s_variance = StreamedExamples(
        features, [2, 3], kind="logmel", input_shape=(128, 128, 1)
    ).band_statistics()
    np.testing.assert_allclose(s_mean, mean, rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(s_variance, variance, rtol=1e-4, atol=1e-3)
    assert mean[0] > mean[-1] - 50  # a real spectrum-shaped statistic, not zeros


def test_streamed_statistics_refuse_non_finite_examples(tmp_path):
    bad = np.zeros((N_MELS, N_FRAMES), np.float32)
    bad[3, 4] = np.nan
    write_records(
        tmp_path / "fold1.tfrecord", [encode_logmel(bad, label=0, fold=1, file_name="bad.wav")]
    )
    with pytest.raises(ValueError, match="1 training example"):
        StreamedExamples(tmp_path, [1], kind="logmel", input_shape=(128, 128, 1)).band_statistics()


def test_batches_are_seeded_and_augmented(features):
    config = config_for("urbannet").override(**{"train.batch_size": 8, "train.mixup_alpha": 0.4})
    streamed = StreamedExamples(features, [2], kind="logmel", input_shape=(128, 128, 1))

    def first_epoch(seed):
        return [
            (x.copy(), y.copy())
            for x, y in streamed.batches(
                config, seed=seed, n_classes=10, one_hot=True
            ).as_numpy_iterator()
        ]

    a, b, c = first_epoch(3), first_epoch(3), first_epoch(4)
    # 24 originals, 6 of them with a copy: the 18 without one train their original twice
    assert streamed.epoch_size == 24 + 6 + 18
    assert [x.shape for x, _ in a] == [(8, 128, 128, 1)] * 6
    assert all(y.shape[1] == 10 and np.allclose(y.sum(axis=1), 1) for _, y in a)
    assert any(((y > 0) & (y < 1)).any() for _, y in a)  # mixup makes soft targets
    for (xa, ya), (xb, yb) in zip(a, b):
        np.testing.assert_array_equal(xa, xb)
        np.testing.assert_array_equal(ya, yb)
    assert not all(np.array_equal(xa, xc) for (xa, _), (xc, _) in zip(a, c))


def test_auto_streams_only_a_large_training_set(features, monkeypatch):
    assert should_stream(features, [2, 3], "stream", (128, 128, 1))
    assert not should_stream(features, [2, 3], "memory", (128, 128, 1))
    assert not should_stream(features, [2, 3], "auto", (128, 128, 1))  # 60 examples: 3.9 MB
    monkeypatch.setattr(training_input, "AUTO_STREAM_BYTES", 60 * 128 * 128 * 4 - 1)
    assert should_stream(features, [2, 3], "auto", (128, 128, 1))
    assert not should_stream(features, [2], "auto", (128, 128, 1))  # 30 examples


def test_input_setting_is_checked():
    with pytest.raises(ConfigError, match="train.input must be"):
        config_for("urbannet").override(**{"train.input": "disk"})


def test_train_fold_streams_and_is_deterministic(features, tmp_path):
    config = config_for("improved", "quick").override(
        **{
            "train.input": "stream",
            "train.epochs": 3,
            "train.batch_size": 8,
            "train.validation": "none",
        }
    )
    a = train_fold(features, 1, [1, 2, 3], config=config, out_dir=tmp_path / "a")
    b = train_fold(features, 1, [1, 2, 3], config=config, out_dir=tmp_path / "b")
    memory = train_fold(
        features,
        1,
        [1, 2, 3],
        config=config.override(**{"train.input": "memory"}),
        out_dir=tmp_path / "m",
    )
    # an epoch per fold: 24 originals, 6 copies, the 18 originals without a copy repeated
    assert a.n_train == memory.n_train == 2 * (24 + 6 + 18) and a.n_test == 24
    assert a.history == b.history and a.y_pred == b.y_pred
    assert len(a.history["loss"]) == 3 and a.history["loss"][-1] < a.history["loss"][0]
    assert a.test_accuracy >= 0.9  # the bands separate the classes: both paths learn it
    assert memory.test_accuracy >= 0.9
