"""Tests for urbansound.records (TFRecord schemas) and urbansound.training
(fold split, example loading, band statistics, and train_fold end to end on a
tiny synthetic log-mel directory, with the leakage check)."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest

pytest.importorskip("tensorflow")

from urbansound import training, training_input
from urbansound.config import CLASS_NAMES, Config, ConfigError, config_for
from urbansound.folds import FoldSplit, min_folds, split_folds
from urbansound.records import (
    ORIGINAL,
    decode_logmel,
    decode_waveform,
    encode_logmel,
    encode_waveform,
    fold_files,
    iter_records,
    write_records,
)
from urbansound.training import MODEL_FILE, RESULT_FILE, FoldResult, TrainingDiverged, train_fold
from urbansound.training_input import band_statistics, load_examples

# ---------------------------------------------------------------------------
# records: encode / decode
# ---------------------------------------------------------------------------


def test_waveform_round_trip():
    rng = np.random.default_rng(0)
    y = rng.uniform(-1, 1, 1234).astype(np.float32)
    y[:3] = [np.float32(1e-30), -0.0, 1.0]
    raw = encode_waveform(
        y,
        sample_rate=22050,
        label=6,
        fold=10,
        fs_id=123456,
        salience=2,
        file_name="123456-6-0-3.wav",
        class_name="gun_shot",
    )
    rec = decode_waveform(raw)
    assert rec.waveform.dtype == np.float32
    assert rec.waveform.tobytes() == y.tobytes()  # bit-exact, -0.0 and denormals included
    assert (rec.sample_rate, rec.label, rec.fold, rec.fs_id, rec.salience) == (
        22050,
        6,
        10,
        123456,
        2,
    )
    assert (rec.file_name, rec.class_name) == ("123456-6-0-3.wav", "gun_shot")
    assert rec.waveform.flags.writeable  # a copy, not a view of the protobuf bytes


def test_waveform_float64_input_is_stored_as_float32():
    y = np.array([0.1, 0.2, 0.3])
    rec = decode_waveform(
        encode_waveform(
            y,
            sample_rate=8000,
            label=0,
            fold=1,
            fs_id=1,
            salience=1,
            file_name="a.wav",
            class_name="air_conditioner",
        )
    )
    np.testing.assert_array_equal(rec.waveform, y.astype(np.float32))


@pytest.mark.parametrize("shape", [(128, 128), (40, 7), (1, 1)])
@pytest.mark.parametrize("deformation", [ORIGINAL, "pitch_shift_2", "time_stretch_1.23"])
def test_logmel_round_trip(shape, deformation):
    rng = np.random.default_rng(1)
    logmel = rng.uniform(-80, 0, shape).astype(np.float32)
    raw = encode_logmel(
        logmel, label=9, fold=3, file_name="7061-9-0-0.wav", deformation=deformation
    )
    rec = decode_logmel(raw)
    assert rec.logmel.shape == shape and rec.logmel.dtype == np.float32
    assert rec.logmel.tobytes() == logmel.tobytes()
    assert (rec.label, rec.fold, rec.file_name, rec.deformation) == (
        9,
        3,
        "7061-9-0-0.wav",
        deformation,
    )
    assert rec.salience == 0  # not given: unknown
    assert (
        decode_logmel(
            encode_logmel(logmel, label=9, fold=3, file_name="a.wav", salience=2)
        ).salience
        == 2
    )


def test_non_ascii_file_name_round_trips():
    rec = decode_logmel(
        encode_logmel(np.zeros((2, 2), np.float32), label=0, fold=1, file_name="straße-ü.wav")
    )
    assert rec.file_name == "straße-ü.wav"
    assert rec.deformation == ORIGINAL == ""


def test_write_and_iter_records_keep_order(tmp_path):
    raws = [
        encode_logmel(np.full((2, 3), i, np.float32), label=i, fold=1, file_name=f"{i}.wav")
        for i in range(5)
    ]
    path = tmp_path / "fold1.tfrecord"
    assert write_records(path, iter(raws)) == 5
    assert list(iter_records([str(path)])) == raws
    assert write_records(tmp_path / "fold2.tfrecord", []) == 0
    assert list(iter_records([str(tmp_path / "fold2.tfrecord")])) == []


def test_fold_files_matches_shards_of_one_fold_only(tmp_path):
    names = [
        "fold1.tfrecord",
        "fold1-00001-of-00002.tfrecord",
        "fold1-00000-of-00002.tfrecord",
        "fold10.tfrecord",
        "fold10-00000-of-00001.tfrecord",
        "fold11.tfrecord",
        "fold1.txt",
        "xfold1.tfrecord",
    ]
    for name in names:
        (tmp_path / name).write_bytes(b"")
    got = [p.rsplit("/", 1)[-1] for p in fold_files(tmp_path, 1)]
    assert got == [
        "fold1-00000-of-00002.tfrecord",
        "fold1-00001-of-00002.tfrecord",
        "fold1.tfrecord",
    ]
    assert [p.rsplit("/", 1)[-1] for p in fold_files(tmp_path, 10)] == [
        "fold10-00000-of-00001.tfrecord",
        "fold10.tfrecord",
    ]
    assert fold_files(tmp_path, 2) == []


# ---------------------------------------------------------------------------
# split_folds
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 1, 7])
@pytest.mark.parametrize("test_fold", list(range(1, 11)))
def test_split_folds_roles(test_fold, seed):
    split = split_folds(test_fold, range(1, 11), seed=seed)
    assert split.test_fold == test_fold
    assert split.validation_fold != test_fold
    assert split.validation_fold in range(1, 11)
    assert test_fold not in split.train_folds and split.validation_fold not in split.train_folds
    assert sorted(split.train_folds + (test_fold, split.validation_fold)) == list(range(1, 11))
    assert list(split.train_folds) == sorted(split.train_folds)
    assert split_folds(test_fold, list(reversed(range(1, 11))), seed=seed) == split  # deterministic


def test_split_folds_matches_seeded_choice():
    # the documented rule: random.Random("<seed>:<test fold>").choice(other folds, sorted)
    split = split_folds(4, [1, 2, 3, 4, 5], seed=3)
    assert split.validation_fold == random.Random("3:4").choice([1, 2, 3, 5])


def test_split_folds_validation_varies_with_seed():
    for test_fold in range(1, 11):
        validations = {
            split_folds(test_fold, range(1, 11), seed=s).validation_fold for s in range(20)
        }
        assert len(validations) >= 3, (test_fold, validations)
    per_fold = [split_folds(k, range(1, 11), seed=0).validation_fold for k in range(1, 11)]
    assert len(set(per_fold)) > 1  # not the same validation fold for every test fold


def test_split_folds_three_folds():
    split = split_folds(2, [3, 1, 2, 2], seed=0)
    assert {split.validation_fold, *split.train_folds} == {1, 3}
    assert len(split.train_folds) == 1


@pytest.mark.parametrize(
    "test_fold, available, match",
    [
        (1, [1, 2], r"need at least 3 folds \(test, validation, training\); have \[1, 2\]"),
        (1, [1, 1, 2], r"need at least 3 folds"),
        (4, [1, 2, 3], r"test fold 4 is not among the folds present \[1, 2, 3\]"),
        (1, [], r"test fold 1 is not among the folds present \[\]"),
    ],
)
def test_split_folds_errors(test_fold, available, match):
    with pytest.raises(ValueError, match=match):
        split_folds(test_fold, available, seed=0)


def test_split_folds_without_validation_trains_every_other_fold():
    split = split_folds(3, [5, 1, 3, 2], seed=7, validation="none")
    assert split == FoldSplit(3, None, (1, 2, 5))
    assert split_folds(1, [1, 2], seed=0, validation="none").train_folds == (2,)
    assert (min_folds("fold"), min_folds("none")) == (3, 2)
    with pytest.raises(ValueError, match=r"need at least 2 folds \(test, training\); have \[1\]"):
        split_folds(1, [1], seed=0, validation="none")


def test_band_statistics_refuse_non_finite_examples():
    x = np.zeros((3, 4, 5, 1), np.float32)
    x[1, 2, 3, 0] = np.nan
    x[2, 0, 0, 0] = np.inf
    with pytest.raises(ValueError, match=r"2 training example\(s\) hold non-finite log-mel values"):
        band_statistics(x)


# ---------------------------------------------------------------------------
# band_statistics
# ---------------------------------------------------------------------------


def test_band_statistics_on_a_grid():
    n, bands, frames = 2, 3, 4
    i = np.arange(bands)[None, :, None]
    x = (10.0 * i + np.arange(n)[:, None, None] + np.arange(frames)[None, None, :])[..., None]
    mean, variance = band_statistics(x.astype(np.float32))
    assert mean.shape == (bands,) and variance.shape == (bands,)
    assert mean.dtype == np.float32 and variance.dtype == np.float32
    np.testing.assert_allclose(mean, [2.0, 12.0, 22.0])  # 10 i + mean(n) 0.5 + mean(t) 1.5
    np.testing.assert_allclose(variance, [1.5, 1.5, 1.5])  # var(n) 0.25 + var(t) 1.25


def test_band_statistics_constant_band_gets_a_variance_floor():
    x = np.zeros((3, 2, 5, 1), np.float32)
    x[:, 1, :, 0] = np.arange(5)
    mean, variance = band_statistics(x)
    np.testing.assert_allclose(mean, [0.0, 2.0])
    np.testing.assert_allclose(variance, [1e-6, 2.0], rtol=1e-6)


# ---------------------------------------------------------------------------
# A tiny log-mel directory: 3 folds, two separable patterns, some deformed copies
# ---------------------------------------------------------------------------

N_MELS = N_FRAMES = 128
# fold -> (originals, deformed copies); all different, so a leaked fold shows in the counts
LAYOUT = {1: (20, 3), 2: (18, 5), 3: (16, 7)}
DEFORMATIONS = ("pitch_shift_2", "time_stretch_1.23")


def pattern(label: int, rng: np.random.Generator) -> np.ndarray:
    """Class 0 loud in the low bands, class 1 loud in the high bands, plus noise."""
    x = rng.normal(-60.0, 3.0, (N_MELS, N_FRAMES))
    rows = slice(0, N_MELS // 2) if label == 0 else slice(N_MELS // 2, N_MELS)
    x[rows] += 45.0
    return np.clip(x, -80.0, 0.0).astype(np.float32)


def file_name(fold: int, i: int) -> str:
    return f"{100 * fold + i}-{i % 2}-0-0.wav"


def write_feature_dir(root) -> dict:
    """Write fold<k> shards; return {fold: {"originals": [...names], "deformed": [(name, d), ...]}}."""
    rng = np.random.default_rng(42)
    written = {}
    for fold, (n_orig, n_def) in LAYOUT.items():
        examples, originals, deformed = [], [], []
        for i in range(n_orig):
            label, name = i % 2, file_name(fold, i)
            x = pattern(label, rng)
            examples.append(encode_logmel(x, label=label, fold=fold, file_name=name))
            originals.append(name)
            if i < n_def:
                d = DEFORMATIONS[i % 2]
                examples.append(
                    encode_logmel(
                        np.clip(x + 1.0, -80, 0),
                        label=label,
                        fold=fold,
                        file_name=name,
                        deformation=d,
                    )
                )
                deformed.append((name, d))
        random.Random(fold).shuffle(examples)  # shard order must not matter
        half = len(examples) // 2
        write_records(root / f"fold{fold}-00001-of-00002.tfrecord", examples[:half])
        write_records(root / f"fold{fold}-00000-of-00002.tfrecord", examples[half:])
        written[fold] = {"originals": originals, "deformed": deformed}
    return written


@pytest.fixture(scope="module")
def feature_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("logmels")
    return root, write_feature_dir(root)


@pytest.mark.parametrize("folds", [[1], [2, 3], [3, 1, 2]])
def test_load_examples_originals_only(feature_dir, folds):
    root, written = feature_dir
    ex = load_examples(root, folds, include_deformed=False)
    names = [n for f in folds for n in written[f]["originals"]]
    assert len(ex) == len(names)
    assert ex.file_names == sorted(names)
    assert set(ex.deformations) == {ORIGINAL}
    assert ex.x.shape == (len(names), N_MELS, N_FRAMES, 1) and ex.x.dtype == np.float32
    assert ex.y.dtype == np.int64
    # label follows its example through the sort: names end in "-<label>-0-0.wav"
    assert ex.y.tolist() == [int(n.split("-")[1]) for n in ex.file_names]


def test_load_examples_with_deformed(feature_dir):
    root, written = feature_dir
    ex = load_examples(root, [1, 2], include_deformed=True)
    expected = sorted(
        [(n, ORIGINAL) for f in (1, 2) for n in written[f]["originals"]]
        + [pair for f in (1, 2) for pair in written[f]["deformed"]]
    )
    assert list(zip(ex.file_names, ex.deformations)) == expected
    assert len(ex) == 20 + 3 + 18 + 5
    # a deformed copy sits right after its original, and differs from it (+1 dB here)
    k = ex.deformations.index("pitch_shift_2")
    assert ex.file_names[k - 1] == ex.file_names[k] and ex.deformations[k - 1] == ORIGINAL
    assert not np.array_equal(ex.x[k], ex.x[k - 1])


def test_load_examples_is_independent_of_shard_order(feature_dir, tmp_path):
    root, _ = feature_dir
    # the same records of fold 3 in one shard, reversed
    raws = list(iter_records(fold_files(root, 3)))
    write_records(tmp_path / "fold3.tfrecord", reversed(raws))
    a = load_examples(root, [3], include_deformed=True)
    b = load_examples(tmp_path, [3], include_deformed=True)
    assert a.file_names == b.file_names and a.deformations == b.deformations
    np.testing.assert_array_equal(a.x, b.x)
    np.testing.assert_array_equal(a.y, b.y)


def test_load_examples_missing_fold(feature_dir):
    root, _ = feature_dir
    with pytest.raises(FileNotFoundError, match="no log-mel records for fold 4"):
        load_examples(root, [1, 4], include_deformed=False)


def test_load_examples_no_folds(feature_dir):
    ex = load_examples(feature_dir[0], [], include_deformed=True)
    assert len(ex) == 0 and ex.x.shape[0] == 0 and ex.file_names == []


# train.deformed_copies="draw": every epoch one version of each training clip


def test_draw_groups_a_clip_with_its_deformed_copies_and_windows():
    from urbansound.training_input import Examples, window_groups

    names = ["a.wav", "a.wav", "a.wav", "b.wav", "b.wav"]
    deformations = [ORIGINAL, "pitch_shift_2", "window@0.500s", ORIGINAL, "drc_radio"]
    examples = Examples(
        np.zeros((5, 2, 2, 1), np.float32), np.zeros(5, np.int64), names, deformations
    )
    assert [g.tolist() for g in window_groups(examples, whole_clips=True)] == [[0, 1, 2], [3, 4]]
    # without it a deformed copy is a clip of its own (random windows only)
    assert [g.tolist() for g in window_groups(examples)] == [[0, 2], [1], [3], [4]]


def test_deformed_copies_must_be_all_or_draw():
    with pytest.raises(ConfigError, match=r"train\.deformed_copies must be 'all' or 'draw'"):
        Config().override(**{"train.deformed_copies": "some"})
    drawn = config_for("sb-cnn").override(**{"train.deformed_copies": "draw"})
    assert drawn.train.augments_batches  # one-hot batches from AugmentedBatches
    assert not config_for("sb-cnn").train.augments_batches


def test_every_copy_trained_keeps_the_class_balance_of_a_per_class_policy():
    """A policy that gives class 0 two copies per clip and class 1 none: class 1's
    originals repeat so each clip counts three examples per epoch, as before the policy."""
    from urbansound.training_input import (
        AugmentedBatches,
        Examples,
        copies_per_clip,
        original_repeats,
        unit_repeats,
    )

    names = ["a", "a", "a", "b", "b", "b", "c", "d"]
    versions = [ORIGINAL, "pitch_shift_2", "time_stretch_1.23"] * 2 + [ORIGINAL, ORIGINAL]
    labels = np.array([0, 0, 0, 0, 0, 0, 1, 1])
    assert copies_per_clip(names, versions) == {"a": 2, "b": 2, "c": 0, "d": 0}
    assert original_repeats({"a": 2, "b": 2, "c": 0, "d": 0}) == {"a": 1, "b": 1, "c": 3, "d": 3}
    assert original_repeats({"a": 20, "b": 20}) == {"a": 1, "b": 1}  # the study's uniform set
    x = np.arange(8, dtype=np.float32).reshape(8, 1, 1, 1)
    examples = Examples(x, labels, names, versions)
    examples.repeats = unit_repeats(examples)
    assert examples.repeats.tolist() == [1, 1, 1, 1, 1, 1, 3, 3]
    assert examples.epoch_size == 12
    config = SMALL.override(**{"train.batch_size": 4})
    arguments = examples.fit_arguments(config, seed=0, n_classes=2, one_hot=False)
    batches = arguments["x"]  # the unaugmented path too: Keras' shuffle would not repeat
    assert len(batches) == 3
    seen = np.concatenate([batches[i][0].ravel() for i in range(len(batches))])
    seen_labels = np.concatenate([batches[i][1] for i in range(len(batches))])
    assert np.bincount(seen_labels.astype(int)).tolist() == [6, 6]  # 1:1, as the clips
    assert sorted(seen.tolist()) == [0, 1, 2, 3, 4, 5, 6, 6, 6, 7, 7, 7]
    assert seen_labels.dtype.kind == "i"  # integer targets for the sparse loss
    # with random windows a group repeats, each time drawing one of its rows
    groups = [np.array([0, 6]), np.array([1]), np.array([7])]
    order = AugmentedBatches(
        x, np.eye(2)[labels], config, seed=0, groups=groups, repeats=np.array([4, 1, 2])
    ).order
    assert len(order) == 7 and sorted(set(order.tolist())) <= [0, 1, 6, 7]
    assert np.isin(order, [0, 6]).sum() == 4 and (order == 7).sum() == 2
    # a uniform set needs no balancing: nothing changes for the study
    uniform = Examples(x[:6], labels[:6], names[:6], versions[:6])
    assert unit_repeats(uniform) is None


def test_streamed_and_in_memory_epochs_repeat_the_same_originals(feature_dir):
    from urbansound.training_input import StreamedExamples, training_set

    root, written = feature_dir
    memory = training_set(root, [2, 3], SMALL.override(**{"train.input": "memory"}))
    streamed = StreamedExamples(root, [2, 3], kind="logmel", input_shape=(128, 128, 1))
    originals = sum(len(written[f]["originals"]) for f in (2, 3))  # 34
    copies = sum(len(written[f]["deformed"]) for f in (2, 3))  # 12, one per clip
    # the 22 clips without a copy repeat their original once
    assert memory.epoch_size == streamed.epoch_size == originals + copies + (originals - copies)
    config = SMALL.override(**{"train.batch_size": 8})
    labels = np.concatenate(
        [
            y
            for _, y in streamed.batches(
                config, seed=0, n_classes=10, one_hot=False
            ).as_numpy_iterator()
        ]
    )
    assert len(labels) == 68
    assert np.bincount(labels).tolist() == np.bincount(np.repeat(memory.y, memory.repeats)).tolist()


def test_an_epoch_draws_one_version_of_every_training_clip(feature_dir):
    from urbansound.training_input import AugmentedBatches, training_set

    root, written = feature_dir
    config = SMALL.override(
        **{"train.deformed_copies": "draw", "train.input": "memory", "train.batch_size": 8}
    )
    train = training_set(root, [2, 3], config)
    originals = len(written[2]["originals"]) + len(written[3]["originals"])  # 34
    copies = len(written[2]["deformed"]) + len(written[3]["deformed"])  # 12
    assert len(train) == originals + copies and train.epoch_size == originals
    # each group is one clip: its original and its copies, nothing of another clip
    assert sorted(len(g) for g in train.groups).count(2) == copies
    for group in train.groups:
        assert len({train.file_names[r] for r in group}) == 1

    def epochs(seed, n=10):
        batches = AugmentedBatches(
            train.x, np.eye(10)[train.y], config, seed=seed, groups=train.groups
        )
        drawn = []
        for _ in range(n):
            assert len(batches) == -(-originals // 8)  # 5 steps, not 6 (46 rows)
            drawn.append(batches.order.copy())
            batches.on_epoch_end()
        return drawn

    drawn = epochs(seed=1)
    for rows in drawn:  # one row of every clip per epoch
        assert sorted(train.file_names[r] for r in rows) == sorted(set(train.file_names))
    picked = [train.deformations[r] for rows in drawn for r in rows]
    # over 10 epochs both originals and copies are drawn (a copy-holding clip: 1 in 2 each)
    assert ORIGINAL in picked and set(picked) - {ORIGINAL} == set(DEFORMATIONS)
    assert all((a == b).all() for a, b in zip(drawn, epochs(seed=1)))


@pytest.mark.parametrize("share", [0.0, 0.5, 1.0])
def test_original_share_is_how_often_an_epoch_takes_the_original(feature_dir, share):
    from urbansound.training_input import AugmentedBatches, training_set

    root, written = feature_dir
    config = SMALL.override(
        **{
            "train.deformed_copies": "draw",
            "train.original_share": share,
            "train.input": "memory",
        }
    )
    train = training_set(root, [2, 3], config)
    batches = AugmentedBatches(
        train.x,
        np.eye(10)[train.y],
        config,
        seed=0,
        groups=train.groups,
        versions=train.deformations,
    )
    with_copies = {name for f in (2, 3) for name, _ in written[f]["deformed"]}  # 12 clips
    took_original = []
    for _ in range(50):
        rows = batches.order
        assert sorted(train.file_names[r] for r in rows) == sorted(set(train.file_names))
        took_original += [
            train.deformations[r] == ORIGINAL for r in rows if train.file_names[r] in with_copies
        ]
        # a clip without copies trains its original whatever the share
        assert all(
            train.deformations[r] == ORIGINAL
            for r in rows
            if train.file_names[r] not in with_copies
        )
        batches.on_epoch_end()
    # 600 draws: the share within 0.06 (about 3 standard deviations at 0.5)
    assert np.mean(took_original) == pytest.approx(share, abs=0.06)


def test_original_share_needs_drawn_copies():
    with pytest.raises(ConfigError, match=r"original_share needs train\.deformed_copies=draw"):
        config_for("sb-cnn").override(**{"train.original_share": 0.5})
    with pytest.raises(ConfigError, match=r"original_share must be a probability"):
        config_for("sb-cnn").override(
            **{"train.deformed_copies": "draw", "train.original_share": 1.5}
        )


@pytest.mark.parametrize("share", [None, 0.8])
def test_streamed_draw_keeps_one_version_of_each_clip_per_epoch_in_expectation(feature_dir, share):
    from urbansound.training_input import StreamedExamples, keep_probabilities

    root, written = feature_dir
    stream = StreamedExamples(
        root, [2, 3], kind="logmel", input_shape=(128, 128, 1), draw=True, original_share=share
    )
    originals = len(written[2]["originals"]) + len(written[3]["originals"])  # 34 clips
    copies = len(written[2]["deformed"]) + len(written[3]["deformed"])  # 12, one per clip
    assert len(stream) == originals + copies and stream.epoch_size == originals

    epochs = 60
    drawn = list(stream._drawn(seed=7, with_names=True).take(originals * epochs))
    names = [n.numpy().decode() for _, _, n, _ in drawn]
    versions = [d.numpy().decode() for _, _, _, d in drawn]
    with_copies = {name for f in (2, 3) for name, _ in written[f]["deformed"]}
    # clips without copies: always the original, about once per epoch
    assert all(v == ORIGINAL for n, v in zip(names, versions) if n not in with_copies)
    # clips with one copy: the original with keep_probabilities' share of their draws
    p_original, p_copy = keep_probabilities(1, share)
    expected = p_original / (p_original + p_copy)
    took = [v == ORIGINAL for n, v in zip(names, versions) if n in with_copies]
    assert np.mean(took) == pytest.approx(expected, abs=0.07)
    # every clip is drawn, and as often as any other within chance
    counts = np.array([names.count(n) for n in sorted(set(names))])
    assert len(counts) == originals and counts.min() > epochs * 0.5
    # deterministic under the seed
    again = [n.numpy().decode() for _, _, n, _ in stream._drawn(seed=7, with_names=True).take(50)]
    assert again == names[:50]


def test_train_fold_streams_drawn_copies(feature_dir, tmp_path):
    root, written = feature_dir
    config = SMALL.override(
        **{"train.deformed_copies": "draw", "train.input": "stream", "train.validation": "none"}
    )
    result = train_fold(root, TEST_FOLD, [1, 2, 3], config=config, out_dir=tmp_path)
    assert result.n_train == sum(len(written[f]["originals"]) for f in (2, 3))
    assert result.test_accuracy >= 0.9  # two bands-apart patterns


def test_train_fold_with_drawn_copies_never_draws_from_the_test_fold(feature_dir, tmp_path):
    root, written = feature_dir
    config = SMALL.override(
        **{"train.deformed_copies": "draw", "train.input": "memory", "train.validation": "none"}
    )
    result = train_fold(root, TEST_FOLD, [1, 2, 3], config=config, out_dir=tmp_path)
    # folds 2 and 3 train, one version of each of their clips an epoch (n_train counts an
    # epoch's examples); fold 1 tests on its originals only
    assert result.n_train == sum(len(written[f]["originals"]) for f in (2, 3))
    assert result.n_test == len(written[TEST_FOLD]["originals"])
    assert result.test_accuracy >= 0.9  # two bands-apart patterns


# ---------------------------------------------------------------------------
# train_fold end to end
# ---------------------------------------------------------------------------

TEST_FOLD = 1
SMALL = config_for("sb-cnn").override(
    **{"train.epochs": 2, "train.batch_size": 8, "train.patience": 2, "train.seed": 0}
)


@pytest.fixture(scope="module")
def trained(feature_dir, tmp_path_factory):
    """One train_fold run, with load_examples spied on to see exactly what each role read."""
    root, written = feature_dir
    calls = []

    def spy(directory, folds, *, include_deformed, include_windows=False):
        ex = load_examples(
            directory, folds, include_deformed=include_deformed, include_windows=include_windows
        )
        calls.append((list(folds), include_deformed, list(zip(ex.file_names, ex.deformations))))
        return ex

    mp = pytest.MonkeyPatch()
    mp.setattr(training, "load_examples", spy)  # validation and test
    mp.setattr(training_input, "load_examples", spy)  # training (training_set)
    try:
        out = tmp_path_factory.mktemp("fold_out")
        result = train_fold(root, TEST_FOLD, [1, 2, 3], config=SMALL, out_dir=out)
    finally:
        mp.undo()
    return result, out, calls, written, root


def test_train_fold_result_is_consistent(trained):
    result, _, _, written, _ = trained
    assert isinstance(result, FoldResult)
    n_test = len(written[TEST_FOLD]["originals"])
    assert result.test_fold == TEST_FOLD
    assert result.n_test == n_test == len(result.y_true) == len(result.y_pred)
    cm = np.asarray(result.confusion_matrix)
    assert cm.shape == (10, 10) and cm.sum() == n_test
    np.testing.assert_array_equal(cm, training.confusion_matrix(result.y_true, result.y_pred, 10))
    correct = np.mean(np.array(result.y_true) == np.array(result.y_pred))
    assert result.test_accuracy == pytest.approx(correct, abs=1e-6)
    assert result.parameters == 241_434
    # two bands-apart patterns: two epochs of SGD separate them (1.0 on seeds 0, 1, 2 here)
    assert result.test_accuracy >= 0.9
    assert result.epochs_run == 2 and 1 <= result.best_epoch <= 2
    assert set(result.history) >= {"accuracy", "loss", "val_accuracy", "val_loss"}
    assert all(len(v) == 2 for v in result.history.values())
    assert result.class_names == list(CLASS_NAMES)
    # the test fold's true labels in sorted-file order
    assert result.y_true == [int(n.split("-")[1]) for n in sorted(written[TEST_FOLD]["originals"])]
    assert set(result.y_pred) <= set(range(10))


def test_train_fold_never_trains_on_test_or_validation_clips(trained):
    result, _, calls, written, _ = trained
    split = split_folds(TEST_FOLD, [1, 2, 3], seed=0)
    assert (result.validation_fold, tuple(result.train_folds)) == (
        split.validation_fold,
        split.train_folds,
    )
    (train_fold_,) = result.train_folds
    orig, deformed = LAYOUT[train_fold_]
    # an epoch of the training fold: its originals, their copies, and the originals of the
    # clips without a copy once more (each clip counts as many examples: original_repeats)
    assert result.n_train == orig + deformed + (orig - deformed)
    assert result.n_validation == LAYOUT[result.validation_fold][0]  # originals only
    assert result.n_test == LAYOUT[TEST_FOLD][0]  # originals only

    roles = {tuple(folds): (inc, items) for folds, inc, items in calls}
    assert len(calls) == 3
    train_inc, train_items = roles[tuple(result.train_folds)]
    val_inc, val_items = roles[(result.validation_fold,)]
    test_inc, test_items = roles[(TEST_FOLD,)]
    assert (train_inc, val_inc, test_inc) == (True, False, False)
    held_out = set(written[TEST_FOLD]["originals"]) | set(
        written[result.validation_fold]["originals"]
    )
    assert not {name for name, _ in train_items} & held_out
    assert all(d == ORIGINAL for _, d in val_items + test_items)


def test_train_fold_writes_model_and_result(trained):
    import keras

    result, out, _, _, root = trained
    assert FoldResult.from_json((out / RESULT_FILE).read_text()) == result
    # for predict: the configuration trained with, its class names filled in from the data
    assert Config.from_json((out / training.CONFIG_FILE).read_text()) == SMALL.override(
        **{"data.class_names": tuple(CLASS_NAMES)}
    )
    assert json.loads((out / RESULT_FILE).read_text())["n_test"] == result.n_test
    model = keras.models.load_model(out / MODEL_FILE)
    test = load_examples(root, [TEST_FOLD], include_deformed=False)
    y_pred = model.predict(test.x, verbose=0).argmax(axis=1)
    assert y_pred.tolist() == result.y_pred  # the saved model takes raw log-mels
    layer = model.get_layer("per_band_standardize")
    train_stats = band_statistics(load_examples(root, result.train_folds, include_deformed=True).x)
    np.testing.assert_allclose(np.ravel(layer.mean), train_stats[0], rtol=1e-6)


def test_train_fold_is_deterministic(trained, feature_dir, tmp_path):
    result = trained[0]
    again = train_fold(feature_dir[0], TEST_FOLD, [1, 2, 3], config=SMALL, out_dir=tmp_path)
    assert again.test_accuracy == result.test_accuracy
    assert again.y_pred == result.y_pred
    assert again.history == result.history


def test_train_fold_without_validation_fold(feature_dir, tmp_path):
    """urbannet's recipe: no validation fold, a fixed one-cycle schedule on every other fold."""
    root, _ = feature_dir
    config = config_for("urbannet", "quick").override(**{"train.batch_size": 8})
    result = train_fold(root, TEST_FOLD, [1, 2, 3], config=config, out_dir=tmp_path)
    assert result.validation_fold is None and result.n_validation == 0
    assert result.train_folds == [2, 3]
    assert result.n_train == sum(2 * LAYOUT[f][0] for f in (2, 3))  # copies + repeated originals
    assert set(result.history) == {"accuracy", "loss"}
    assert result.epochs_run == result.best_epoch == 2  # the last epoch's model is kept
    assert result.parameters == 669_106


def test_diverging_loss_stops_the_fold_with_one_line(feature_dir, tmp_path):
    root, _ = feature_dir
    config = SMALL.override(**{"train.learning_rate": 1e30})
    with pytest.raises(
        TrainingDiverged,
        match=r"training diverged: the loss became (nan|inf) at "
        r"batch \d+; lower train.learning_rate",
    ):
        train_fold(root, TEST_FOLD, [1, 2, 3], config=config, out_dir=tmp_path)
    assert not (tmp_path / MODEL_FILE).exists()  # nothing half-trained is left as a result


# ---------------------------------------------------------------------------
# In-training augmentation (mixup, SpecAugment masks, time shift)
# ---------------------------------------------------------------------------


def _batch(b=6, n_mels=16, n_frames=32, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.uniform(-80, 0, (b, n_mels, n_frames, 1)).astype(np.float32)
    y = np.eye(10, dtype=np.float32)[rng.integers(0, 10, b)]
    return x, y


def test_augment_batch_time_shift_is_a_roll_of_each_example():
    x, y = _batch()
    out, labels = training_input.augment_batch(x, y, np.random.default_rng(3), time_shift=True)
    assert out.shape == x.shape and out.dtype == np.float32
    np.testing.assert_array_equal(labels, y)
    for i in range(len(x)):  # every example is its own roll: same values, same per-band sums
        assert any(np.array_equal(out[i], np.roll(x[i], s, axis=1)) for s in range(x.shape[2]))


def test_augment_batch_masks_are_filled_with_the_band_mean():
    x, y = _batch()
    fill = np.linspace(-70, -10, 16).astype(np.float32)
    out, _ = training_input.augment_batch(x, y, np.random.default_rng(1), spec_augment=2, fill=fill)
    changed = out != x
    assert changed.any()
    # every changed cell now holds its band's fill value
    bands = np.nonzero(changed)[1]
    np.testing.assert_allclose(out[changed], fill[bands])
    # masks are at most 1/8 of an axis wide: at most 2 * (2 + 4) rows/columns per example
    for i in range(len(x)):
        full_rows = np.all(out[i, :, :, 0] == fill[:, None], axis=1).sum()
        assert full_rows <= 2 * (16 // 8)


def test_augment_batch_mixup_mixes_labels_with_the_same_weights():
    x, y = _batch(b=8)
    out, labels = training_input.augment_batch(x, y, np.random.default_rng(2), mixup_alpha=0.4)
    np.testing.assert_allclose(labels.sum(axis=1), 1.0, rtol=1e-6)
    assert np.all(labels.max(axis=1) >= 0.5 - 1e-6)  # the example stays the larger part
    assert not np.array_equal(out, x)
    # each output lies between its own example and another one of the batch
    assert out.min() >= x.min() - 1e-4 and out.max() <= x.max() + 1e-4


def test_augment_batch_is_seeded_and_leaves_its_inputs_alone():
    x, y = _batch()
    x0, y0 = x.copy(), y.copy()
    kwargs = dict(mixup_alpha=0.3, spec_augment=2, time_shift=True)
    a = training_input.augment_batch(x, y, np.random.default_rng(5), **kwargs)
    b = training_input.augment_batch(x, y, np.random.default_rng(5), **kwargs)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    np.testing.assert_array_equal(x, x0)
    np.testing.assert_array_equal(y, y0)


def test_train_fold_with_in_training_augmentation(feature_dir, tmp_path):
    root, _ = feature_dir
    config = SMALL.override(
        **{"train.mixup_alpha": 0.3, "train.spec_augment": 2, "train.time_shift": True}
    )
    result = train_fold(root, TEST_FOLD, [1, 2, 3], config=config, out_dir=tmp_path / "a")
    again = train_fold(root, TEST_FOLD, [1, 2, 3], config=config, out_dir=tmp_path / "b")
    assert result.epochs_run == 2 and result.n_test == len(result.y_pred)
    assert 0.0 <= result.test_accuracy <= 1.0 and np.isfinite(result.test_loss)
    assert again.y_pred == result.y_pred and again.history == result.history  # seeded


# ---------------------------------------------------------------------------
# Several seeds: an ensemble per fold
# ---------------------------------------------------------------------------


def test_train_fold_with_seeds_is_an_ensemble_of_its_members(feature_dir, tmp_path, trained):
    import keras

    root, _ = feature_dir
    config = SMALL.override(**{"train.seeds": (0, 1)})
    result = train_fold(root, TEST_FOLD, [1, 2, 3], config=config, out_dir=tmp_path)
    assert result.seeds == [0, 1] and len(result.member_accuracies) == 2
    # the first member is the single-seed model: same split, same seed, same predictions
    single = trained[0]
    assert result.member_accuracies[0] == pytest.approx(single.test_accuracy)
    assert result.validation_fold == single.validation_fold
    # the saved model is one Keras model averaging both members' probabilities
    model = keras.models.load_model(tmp_path / MODEL_FILE, safe_mode=True)
    assert [layer.name for layer in model.layers][-3:] == ["member1", "member2", "mean_probability"]
    test = load_examples(root, [TEST_FOLD], include_deformed=False)
    p = model.predict(test.x, verbose=0)
    members = [model.get_layer(f"member{i}").predict(test.x, verbose=0) for i in (1, 2)]
    np.testing.assert_allclose(p, np.mean(members, axis=0), rtol=1e-5, atol=1e-6)
    assert p.argmax(axis=1).tolist() == result.y_pred


def test_train_ensemble_trains_consecutive_seeds_from_seed_times_its_size(feature_dir, tmp_path):
    root, _ = feature_dir
    config = SMALL.override(**{"train.ensemble": 2, "train.seed": 3})
    assert config.train.member_seeds == (6, 7)
    result = train_fold(root, TEST_FOLD, [1, 2, 3], config=config, out_dir=tmp_path)
    assert result.seeds == [6, 7] and len(result.member_accuracies) == 2
    # the validation fold is still drawn with train.seed: the same split as seed 3 alone
    assert (
        result.validation_fold
        == split_folds(
            TEST_FOLD, [1, 2, 3], seed=3, validation=config.train.validation
        ).validation_fold
    )


def test_ensemble_summary_says_which_numbers_it_gives(tmp_path):
    from urbansound.evaluation import evaluate_folds, format_summary

    result = FoldResult(
        test_fold=3,
        validation_fold=None,
        train_folds=[1, 2],
        test_accuracy=0.75,
        test_loss=0.5,
        y_true=[0, 1, 1, 0],
        y_pred=[0, 1, 1, 1],
        confusion_matrix=training.confusion_matrix([0, 1, 1, 0], [0, 1, 1, 1], 10).tolist(),
        history={"loss": [1.0]},
        best_epoch=1,
        epochs_run=1,
        n_train=8,
        n_validation=0,
        n_test=4,
        parameters=1,
        seeds=[1, 2, 3],
        member_accuracies=[0.5, 0.75, 0.5],
    )
    summary = evaluate_folds([result], tmp_path, plots=False)
    assert summary["ensemble"] == {"3": {"seeds": [1, 2, 3], "member_accuracies": [0.5, 0.75, 0.5]}}
    lines = format_summary(summary).splitlines()
    assert lines[0] == "fold  accuracy  (ensemble of seeds; each seed alone)"
    assert lines[1] == "   3     75.0%  (50.0% / 75.0% / 50.0%)"
