"""bench/recipe_search.py's bookkeeping: the table of a results file (mean ± std over seeds
of the mean over validation folds), every recorded candidate with ``--table-only``, and the
seed ensemble's accuracy from the kept probabilities.  No training here."""

from __future__ import annotations

import itertools
import json
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
import recipe_search

ROOT = Path(__file__).resolve().parents[1]


def write_rows(path: Path, rows: list[tuple[str, str, int, int, float]]) -> None:
    path.write_text(
        "".join(
            json.dumps(
                {
                    "candidate": name,
                    "overrides": overrides,
                    "seed": seed,
                    "validation_fold": fold,
                    "accuracy": accuracy,
                    "seconds": 100.0,
                }
            )
            + "\n"
            for name, overrides, seed, fold, accuracy in rows
        )
    )


def test_the_table_is_mean_and_std_over_seeds_of_the_mean_over_folds(tmp_path):
    results = tmp_path / "r.jsonl"
    write_rows(
        results,
        [
            ("a", "train.epochs=3", 0, 1, 0.60),
            ("a", "train.epochs=3", 0, 2, 0.70),  # seed 0: 0.65
            ("a", "train.epochs=3", 1, 1, 0.50),
            ("a", "train.epochs=3", 1, 2, 0.60),  # seed 1: 0.55
            ("b", "", 0, 1, 0.9),
        ],
    )
    assert recipe_search.recorded_candidates(results) == {"a": "train.epochs=3", "b": ""}
    table = recipe_search.table(results, recipe_search.recorded_candidates(results))
    row_a = next(line for line in table.splitlines() if line.startswith("| a |"))
    # std of (0.65, 0.55) with n - 1: 0.0707
    # no n_train recorded: the training clips column says so
    assert row_a.endswith("| 0.650, 0.550 | 0.600 ± 0.071 | 1: 0.550, 2: 0.650 | 100 | – |")


def test_the_table_gives_the_mean_training_clips_of_a_candidate(tmp_path):
    results = tmp_path / "r.jsonl"
    results.write_text(
        "".join(
            json.dumps(
                {
                    "candidate": "half",
                    "overrides": "",
                    "seed": 0,
                    "validation_fold": fold,
                    "accuracy": 0.5,
                    "seconds": 10.0,
                    "n_train": n,
                    "train_fraction": 0.5,
                }
            )
            + "\n"
            for fold, n in ((1, 500), (2, 497))
        )
    )
    table = recipe_search.table(results, {"half": ""})
    assert table.splitlines()[2].endswith("| 10 | 498 |")  # (500 + 497) / 2, rounded


def test_the_seed_ensemble_is_the_argmax_of_the_mean_probability(tmp_path):
    names = np.array(["x.wav", "y.wav", "z.wav"])
    y_true = np.array([0, 1, 1])
    # seed 0 gets x and y right, seed 1 x and z; their mean gets all three
    for seed, probabilities in enumerate(
        ([[0.9, 0.1], [0.1, 0.9], [0.55, 0.45]], [[0.6, 0.4], [0.7, 0.3], [0.2, 0.8]])
    ):
        np.savez(
            tmp_path / f"cand-seed{seed}-fold1.npz",
            probabilities=np.array(probabilities, np.float32),
            y_true=y_true,
            file_names=names,
        )
    accuracy, members = recipe_search.ensemble_accuracy(tmp_path, "cand", 1)
    assert (accuracy, members) == (pytest.approx(1.0), 2)
    assert recipe_search.ensemble_accuracy(tmp_path, "cand", 2) is None


def test_a_pooled_ensemble_averages_every_model_of_the_named_candidates(tmp_path, capsys):
    # UrbanSound8K's names: w and x are slices of recording 7, y and z of recording 9
    names = np.array(["7-0-0-0.wav", "7-0-0-1.wav", "9-1-0-0.wav", "9-1-0-1.wav"])
    y_true = np.array([0, 0, 1, 1])
    models = {  # w: nobody right; x, y: two of three right; z: only c right
        "a-seed0": [[0.4, 0.6], [0.9, 0.1], [0.2, 0.8], [0.8, 0.2]],
        "a-seed1": [[0.3, 0.7], [0.8, 0.2], [0.6, 0.4], [0.9, 0.1]],
        "c-seed0": [[0.2, 0.8], [0.3, 0.7], [0.1, 0.9], [0.45, 0.55]],
        "other-seed0": [[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.0, 1.0]],  # not named
    }
    for model, probabilities in models.items():
        np.savez(
            tmp_path / f"{model}-fold1.npz",
            probabilities=np.array(probabilities, np.float32),
            y_true=y_true,
            file_names=names,
        )
    pooled = recipe_search.pooled_ensemble(tmp_path, ["a", "c"], 1)
    # the mean gets x (0.667 vs 0.333) and y (0.3 vs 0.7) right, w and z wrong
    assert pooled == {
        "accuracy": 0.5,
        "members": 3,
        "never_right": 0.25,
        "never_right_clips": 1,
        "worst_recording": "7",
        "worst_recording_never_right": 1,
        "worst_recording_clips": 2,
    }
    assert recipe_search.pooled_ensemble(tmp_path, ["c"], 1) is None  # one model
    assert (
        recipe_search.main(
            ["--pool", "a,c", "--probabilities-dir", str(tmp_path), "--folds", "1,2"]
        )
        == 0
    )
    printed = capsys.readouterr().out.splitlines()
    assert "| 1 | 3 | 0.500 | 0.250 (1) | 7: 1 of its 2 slices |" in printed
    assert "| 2 | fewer than 2 | – | – | – |" in printed
    assert printed[-1] == "| mean | | 0.500 | 0.250 | |"
    with pytest.raises(SystemExit):
        recipe_search.main(["--pool", "a,c"])


def test_table_only_needs_no_features_and_lists_every_candidate(tmp_path, capsys):
    results = tmp_path / "r.jsonl"
    write_rows(results, [("first", "", 0, 1, 0.5), ("second", "train.seed=1", 0, 1, 0.25)])
    assert recipe_search.main(["--table-only", "--out", str(results)]) == 0
    printed = capsys.readouterr().out
    assert "| first | 0.500 |" in printed and "| second | 0.250 |" in printed


def test_a_search_without_features_is_refused_by_the_parser(tmp_path):
    with pytest.raises(SystemExit) as raised:
        recipe_search.main(["--out", str(tmp_path / "r.jsonl")])
    assert raised.value.code == 2


def test_the_committed_search_names_how_to_rerun_every_candidate():
    """Every row of bench/results/recipe_search.jsonl parses to a valid configuration, the
    experimental model included, so the README's table is reproducible from its overrides."""
    pytest.importorskip("keras")
    from urbansound import models

    recipe_search.register_experimental_models()
    try:
        for name, overrides in recipe_search.recorded_candidates(
            ROOT / "bench" / "results" / "recipe_search.jsonl"
        ).items():
            config = recipe_search.config_of(overrides, seed=0)
            # one model per row: the rows were recorded when the default trained one
            assert (config.train.seed, config.train.ensemble) == (0, 1), name
    finally:
        for extra in recipe_search.EXPERIMENTAL_MODELS:
            models.MODELS.pop(extra, None)


def test_a_training_fraction_keeps_that_share_of_each_class_with_every_row_of_a_kept_clip():
    # class 0: clips a..f (6), class 1: clips g..j (4); clip "a" has 3 rows (windows/copies)
    names = ["a", "a", "a", "b", "c", "d", "e", "f", "g", "h", "i", "j"]
    labels = [0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1]
    mask = recipe_search.clip_subset(names, labels, 0.5, seed=0)
    kept = np.asarray(names)[mask]
    kept_clips = set(kept.tolist())
    assert len(kept_clips & set("abcdef")) == 3 and len(kept_clips & set("ghij")) == 2
    for clip in kept_clips:  # a kept clip keeps all its rows
        assert (kept == clip).sum() == names.count(clip)
    assert (recipe_search.clip_subset(names, labels, 0.5, seed=0) == mask).all()
    draws = {tuple(recipe_search.clip_subset(names, labels, 0.5, seed=s)) for s in range(10)}
    assert len(draws) > 1  # the seed draws another subset
    assert recipe_search.clip_subset(names, labels, 1.0, seed=3).all()
    # a class is never emptied: round(0.1 × 4) = 0 -> 1 clip
    small = recipe_search.clip_subset(names, labels, 0.1, seed=0)
    assert set(np.asarray(labels)[small].tolist()) == {0, 1}


def test_a_fraction_already_recorded_under_the_name_is_refused(tmp_path, capsys):
    results = tmp_path / "r.jsonl"
    write_rows(results, [("a", "", 0, 1, 0.6)])  # no train_fraction: the whole set
    features = tmp_path / "features"
    features.mkdir()
    (features / "manifest.json").write_text(json.dumps({"folds": [1, 2, 3]}))
    with pytest.raises(SystemExit):
        recipe_search.main(
            [
                "--features",
                str(features),
                "--candidate",
                "a=",
                "--train-fraction",
                "0.5",
                "--out",
                str(results),
            ]
        )
    assert "recorded with --train-fraction [1.0]" in capsys.readouterr().err


def test_search_options_are_not_configuration_keys_and_smooth_the_labels_while_applied():
    keras = pytest.importorskip("keras")
    values, search = recipe_search.parse_overrides(
        "train.epochs=3,search.label_smoothing=0.1,train.model=urbannet"
    )
    assert values == {"train.epochs": 3, "train.model": "urbannet"}
    assert search == {"search.label_smoothing": 0.1}
    assert recipe_search.config_of("train.epochs=3,search.label_smoothing=0.1", 0).train.epochs == 3

    def compiled_loss():
        model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, activation="softmax")])
        model.compile(optimizer="sgd", loss="categorical_crossentropy")
        return model.loss

    with recipe_search.search_options_applied(search):
        smoothed = compiled_loss()
    assert isinstance(smoothed, keras.losses.CategoricalCrossentropy)
    assert smoothed.get_config()["label_smoothing"] == pytest.approx(0.1)
    assert compiled_loss() == "categorical_crossentropy"  # restored afterwards


def test_spectral_deform_shifts_bands_and_stretches_time_within_its_bounds():
    rng = np.random.default_rng(0)
    n_mels, n_frames = 128, 128
    tone = np.full((1, n_mels, n_frames, 1), -80.0, np.float32)
    tone[0, 40, :, 0] = 0.0  # a steady tone in band 40
    fill = np.arange(n_mels, dtype=np.float32) - 200.0  # every band's fill is recognisable
    shifts = set()
    for _ in range(60):
        out = recipe_search.spectral_deform(tone, rng, freq_shift=4, fill=fill)
        band = int(np.argmax(out[0, :, 64, 0]))
        shifts.add(band - 40)
        shift = band - 40
        if shift > 0:  # the bands it uncovered read the fill, column by column
            np.testing.assert_array_equal(out[0, :shift, 7, 0], fill[:shift])
        elif shift < 0:
            np.testing.assert_array_equal(out[0, shift:, 7, 0], fill[shift:])
    assert shifts == set(range(-4, 5))
    assert tone[0, 40, 0, 0] == 0.0 and tone[0, 39, 0, 0] == -80.0  # input untouched

    ramp = np.broadcast_to(np.arange(n_frames, dtype=np.float32), (1, n_mels, n_frames))[..., None]
    rates = []
    for _ in range(60):
        out = recipe_search.spectral_deform(ramp, rng, time_stretch=0.2)
        rates.append(float(out[0, 0, 1, 0]))  # frame 1 reads source frame 1 × rate
        np.testing.assert_allclose(out[0, 0, :20, 0], np.arange(20) * rates[-1], rtol=1e-5)
    assert 1 / 1.2 <= min(rates) < 0.9 and 1.1 < max(rates) <= 1.2


def test_spectral_deform_is_applied_to_training_batches_only_while_in_force():
    from urbansound import training_input

    original = training_input.augment_batch
    x = np.zeros((2, 16, 16, 1), np.float32)
    x[:, 8, :, 0] = 1.0
    y = np.eye(2, dtype=np.float32)
    _, search = recipe_search.parse_overrides("search.freq_shift=3,search.time_stretch=0.1")
    assert search == {"search.freq_shift": 3, "search.time_stretch": 0.1}
    with recipe_search.search_options_applied(search):
        assert training_input.augment_batch is not original
        moved = {
            int(
                np.argmax(
                    training_input.augment_batch(x, y, np.random.default_rng(s))[0][0, :, 0, 0]
                )
            )
            for s in range(20)
        }
    assert training_input.augment_batch is original  # restored afterwards
    assert moved - {8} and moved <= set(range(5, 12))


def test_the_experimental_models_build_with_urbannets_weights_and_pool_as_named():
    pytest.importorskip("keras")
    from urbansound import models

    recipe_search.register_experimental_models()
    try:
        counts = {
            name: models.trainable_parameter_count(
                models.build_model(name, input_shape=(128, 128, 1))
            )
            for name in (
                "urbannet",
                "urbannet-maxpool",
                "urbannet-fullres",
                "urbannet-per-band",
                "urbannet-deep",
            )
        }
        deep = models.build_model("urbannet-deep", input_shape=(128, 128, 1))
        per_band = models.build_model("urbannet-per-band", input_shape=(128, 128, 1))
        pools = {
            type(layer).__name__
            for layer in models.build_model("urbannet-maxpool", input_shape=(128, 128, 1)).layers
            if layer.name.endswith("_pool")
        }
    finally:
        for extra in recipe_search.EXPERIMENTAL_MODELS:
            models.MODELS.pop(extra, None)
    # pooling has no weights: max pooling keeps urbannet's count; no stem: one conv fewer
    assert counts["urbannet-maxpool"] == counts["urbannet"]
    assert counts["urbannet-fullres"] < counts["urbannet"]
    assert pools == {"MaxPooling2D"}
    # the per-band head keeps the 4 frequency bands apart: 4 bands × (mean, max) × 192
    # channels into the softmax, where urbannet's head sees (mean, max) × 192
    assert per_band.get_layer("bands").output.shape[1:] == (4 * 2 * 192,)
    assert counts["urbannet-per-band"] - counts["urbannet"] == (4 * 2 * 192 - 2 * 192) * 10
    # the deep variant: no stem, its first block at full resolution, five blocks pooled to 4×4
    assert deep.get_layer("block1a_conv").output.shape[1:] == (128, 128, 16)
    assert deep.get_layer("block5_pool").output.shape[1:] == (4, 4, 256)
    assert "stem_conv" not in {layer.name for layer in deep.layers}
    # its weights: 3×3 convs (no bias) with batch norm's 2 trainable weights per channel,
    # then the softmax on (mean, max) × 256
    widths = [1, 16, 16, 32, 32, 64, 64, 128, 128, 256, 256]
    convs = sum(9 * a * b + 2 * b for a, b in itertools.pairwise(widths))
    assert counts["urbannet-deep"] == convs + (2 * 256 + 1) * 10


def test_momentum_gives_sgd_nesterov_momentum_and_the_recipes_weight_decay_while_applied():
    keras = pytest.importorskip("keras")
    from urbansound import models

    _, search = recipe_search.parse_overrides("train.optimizer=sgd,search.momentum=0.9")
    assert search == {"search.momentum": 0.9}
    with recipe_search.search_options_applied(search):
        sgd = models.make_optimizer("sgd", 0.05, weight_decay=5e-4)
        with pytest.raises(SystemExit, match="needs train.optimizer=sgd"):
            models.make_optimizer("adamw", 0.05, weight_decay=5e-4)
    assert isinstance(sgd, keras.optimizers.SGD)
    config = sgd.get_config()
    assert config["momentum"] == pytest.approx(0.9) and config["nesterov"] is True
    assert config["weight_decay"] == pytest.approx(5e-4)
    plain = models.make_optimizer("sgd", 0.05).get_config()  # restored afterwards
    assert plain["momentum"] == 0.0 and plain["nesterov"] is False


def test_recording_balance_weighs_each_recording_by_its_slices_to_the_minus_power():
    # recording 1 has 3 slices, recording 2 one
    names = ["1-7-0-1.wav", "1-7-0-2.wav", "/x/1-7-0-3.wav", "2-0-0-1.wav"]
    uniform = recipe_search.recording_draw_probabilities(names, 0.0)
    np.testing.assert_allclose(uniform, [0.25] * 4)
    balanced = recipe_search.recording_draw_probabilities(names, 1.0)
    np.testing.assert_allclose(balanced, [1 / 6, 1 / 6, 1 / 6, 1 / 2])  # half per recording
    root = recipe_search.recording_draw_probabilities(names, 0.5)
    w = 3**-0.5
    np.testing.assert_allclose(root, np.array([w, w, w, 1.0]) / (3 * w + 1))


def test_recording_balance_draws_each_epoch_by_recording_while_applied():
    pytest.importorskip("keras")
    from urbansound import training_input
    from urbansound.config import Config

    # 9 slices of recording 1 (class 0) and one of recording 2 (class 1)
    names = [f"1-0-0-{i}.wav" for i in range(9)] + ["2-1-0-0.wav"]
    examples = training_input.Examples(
        x=np.zeros((10, 8, 8, 1), np.float32),
        y=np.array([0] * 9 + [1]),
        file_names=names,
        deformations=[training_input.ORIGINAL] * 10,
    )
    config = Config().override(**{"train.batch_size": 10}).validated()
    _, search = recipe_search.parse_overrides("search.recording_balance=1")
    assert search == {"search.recording_balance": 1.0}
    with recipe_search.search_options_applied(search):
        batches = examples.fit_arguments(config, seed=0, n_classes=2, one_hot=True)["x"]
        drawn = []
        for _ in range(200):
            drawn.extend(batches.order.tolist())
            batches.on_epoch_end()
    # the lone slice of recording 2 is half of every draw, not a tenth
    assert len(batches.order) == 10
    assert np.mean(np.array(drawn) == 9) == pytest.approx(0.5, abs=0.03)
    plain = examples.fit_arguments(config, seed=0, n_classes=2, one_hot=True)["x"]
    assert sorted(plain.order.tolist()) == list(range(10))  # restored: a permutation
