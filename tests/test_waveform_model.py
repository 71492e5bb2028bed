"""The waveform path: a model that declares ``input_kind="waveform"`` (conv1d) gets the
clip at 16 kHz from the one feature function, through the Beam stage, training and
prediction, and the conv1d model frames, standardises and averages as documented."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import tone

pytest.importorskip("tensorflow")

from urbansound.config import Config, ConfigError, config_for
from urbansound.features import input_shape, model_input, waveform_to_logmel
from urbansound.records import decode_features, encode_features, encode_logmel
from urbansound.training_input import augment_batch

SR = 22050
CONV1D = config_for("conv1d")


def peak_hz(y: np.ndarray, sr: int) -> float:
    spectrum = np.abs(np.fft.rfft(y * np.hanning(len(y))))
    return float(np.fft.rfftfreq(len(y), 1 / sr)[spectrum.argmax()])


# ---------------------------------------------------------------------------
# configuration and features
# ---------------------------------------------------------------------------


def test_input_kind_comes_from_the_model_registry():
    assert Config().input_kind == "logmel"
    assert CONV1D.input_kind == "waveform"
    assert input_shape(Config()) == (128, 128, 1)
    assert input_shape(CONV1D) == (48000, 1)  # 3 s at 16 kHz


def test_spec_augment_is_refused_for_a_waveform_model():
    with pytest.raises(ConfigError, match="spec_augment.*conv1d.*waveform"):
        CONV1D.override(**{"train.spec_augment": 2})


def test_waveform_input_is_the_clip_at_16_khz_with_its_pitch_and_level():
    y = tone(1000.0, 3.0, amplitude=0.3)
    x = model_input(y, CONV1D)
    assert x.shape == (48000,) and x.dtype == np.float32
    assert abs(peak_hz(x, 16000) - 1000.0) < 1.0
    # resampling keeps the level: RMS of a 0.3 sine is 0.3 / sqrt(2)
    assert np.sqrt(np.mean(x[1000:-1000] ** 2)) == pytest.approx(0.3 / np.sqrt(2), rel=0.01)


def test_waveform_input_fixes_the_length_as_the_logmel_does():
    short = tone(500.0, 1.0, amplitude=0.3)
    looped = model_input(short, CONV1D)
    zeros = model_input(short, CONV1D.override(**{"audio.pad_mode": "zeros"}))
    assert looped.shape == zeros.shape == (48000,)
    # loop: the second second repeats the first; zeros: silence after 1 s
    np.testing.assert_allclose(
        looped[16000 + 200 : 32000 - 200], looped[200 : 16000 - 200], atol=2e-3
    )
    assert np.abs(zeros[16100:]).max() < 1e-3 and np.abs(zeros[:15900]).max() > 0.25


def test_model_input_of_a_logmel_model_is_the_logmel():
    y = tone(440.0, 3.0, amplitude=0.3)
    np.testing.assert_array_equal(model_input(y, Config()), waveform_to_logmel(y, Config()))


def test_non_finite_waveform_is_refused():
    from urbansound.features import FeatureError

    y = tone(440.0, 3.0, amplitude=0.3)
    y[10] = np.nan
    with pytest.raises(FeatureError, match="1 NaN or infinite"):
        model_input(y, CONV1D)


# ---------------------------------------------------------------------------
# records
# ---------------------------------------------------------------------------


def test_waveform_feature_record_round_trips():
    x = np.linspace(-1, 1, 48000, dtype=np.float32)
    rec = decode_features(
        encode_features(
            x,
            kind="waveform",
            label=3,
            fold=2,
            file_name="a.wav",
            deformation="pitch_shift_2",
            salience=2,
            sample_rate=16000,
        )
    )
    assert rec.kind == "waveform" and rec.label == 3 and rec.fold == 2 and rec.salience == 2
    assert rec.deformation == "pitch_shift_2"
    np.testing.assert_array_equal(rec.values, x)
    with pytest.raises(ValueError, match="a.wav: a waveform record has no log-mel"):
        _ = rec.logmel


def test_logmel_records_read_as_logmel_kind():
    S = np.full((4, 5), -20.0, np.float32)
    rec = decode_features(encode_logmel(S, label=1, fold=1, file_name="b.wav"))
    assert rec.kind == "logmel" and rec.values.shape == (4, 5)
    np.testing.assert_array_equal(rec.logmel, S)


def test_unknown_record_kind_is_refused():
    with pytest.raises(ValueError, match="unknown input kind 'mfcc'"):
        encode_features(np.zeros(3), kind="mfcc", label=0, fold=1, file_name="c.wav")


# ---------------------------------------------------------------------------
# in-training augmentation of waveforms
# ---------------------------------------------------------------------------


def test_time_shift_rolls_each_waveform_along_time():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(4, 100, 1)).astype(np.float32)
    y = np.eye(10, dtype=np.float32)[[0, 1, 2, 3]]
    out, labels = augment_batch(x, y, np.random.default_rng(5), time_shift=True)
    shifts = np.random.default_rng(5).integers(0, 100, size=4)
    for i, shift in enumerate(shifts):
        np.testing.assert_array_equal(out[i], np.roll(x[i], int(shift), axis=0))
    np.testing.assert_array_equal(labels, y)


def test_mixup_of_waveforms_mixes_samples_and_labels_alike():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(6, 50, 1)).astype(np.float32)
    y = np.eye(10, dtype=np.float32)[np.arange(6)]
    out, labels = augment_batch(x, y, np.random.default_rng(2), mixup_alpha=0.4)
    assert out.shape == x.shape
    for i in range(6):
        lam = labels[i, i]  # example i keeps the larger weight of its own label
        assert lam >= 0.5
        partner = int(np.argmax(np.where(np.arange(10) == i, -1, labels[i])))
        if lam < 1:
            np.testing.assert_allclose(out[i], lam * x[i] + (1 - lam) * x[partner], atol=1e-5)


def test_spec_augment_of_waveforms_is_an_error():
    with pytest.raises(ValueError, match="spec_augment masks log-mels"):
        augment_batch(
            np.zeros((2, 100, 1), np.float32),
            np.eye(10)[[0, 1]],
            np.random.default_rng(0),
            spec_augment=1,
        )


# ---------------------------------------------------------------------------
# the conv1d model
# ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def conv1d():
    from urbansound.models import build_model

    return build_model("conv1d", seed=0)


def test_conv1d_shapes_and_parameters(conv1d):
    from urbansound.models import trainable_parameter_count

    assert conv1d.input_shape == (None, 48000, 1)
    assert conv1d.output_shape == (None, 10)
    assert conv1d.inputs[0].name == "waveform"
    # four convolutions (16·64 + 32·16·32 + 64·32·16 + 128·64·8, no bias), 4 BN γβ,
    # dense 1024→128→64→10
    conv = 16 * 64 + 32 * 16 * 32 + 64 * 32 * 16 + 128 * 64 * 8
    bn = 2 * (16 + 32 + 64 + 128)
    dense = 1024 * 128 + 128 + 128 * 64 + 64 + 64 * 10 + 10
    assert trainable_parameter_count(conv1d) == conv + bn + dense == 256_298


def test_conv1d_frames_are_one_second_overlapping_by_half(conv1d):
    import keras

    framer = keras.Model(conv1d.inputs[0], conv1d.get_layer("frames_1ch").output)
    ramp = np.arange(48000, dtype=np.float32)[None, :, None]
    frames = np.asarray(framer(ramp))
    assert frames.shape == (1, 5, 16000, 1)
    for i in range(5):
        np.testing.assert_array_equal(frames[0, i, :, 0], np.arange(i * 8000, i * 8000 + 16000))


def test_conv1d_ignores_the_recording_level(conv1d):
    x = model_input(
        tone(700.0, 3.0, amplitude=0.3)
        + 0.05 * np.random.default_rng(0).normal(size=66150).astype(np.float32),
        CONV1D,
    )[None, :, None]
    quiet = np.asarray(conv1d(x * 0.01, training=False))
    loud = np.asarray(conv1d(x, training=False))
    np.testing.assert_allclose(quiet, loud, atol=1e-4)
    assert quiet.sum() == pytest.approx(1.0, abs=1e-5)


def test_conv1d_is_the_mean_of_its_frame_predictions(conv1d):
    import keras

    per_frame = keras.Model(conv1d.inputs[0], conv1d.get_layer("per_frame").output)
    x = np.random.default_rng(3).normal(size=(2, 48000, 1)).astype(np.float32)
    frames = np.asarray(per_frame(x, training=False))
    assert frames.shape == (2, 5, 10)
    np.testing.assert_allclose(
        np.asarray(conv1d(x, training=False)), frames.mean(axis=1), atol=1e-6
    )


def test_conv1d_needs_one_frame():
    from urbansound.models import build_model

    with pytest.raises(ValueError, match="conv1d needs at least 16000 samples"):
        build_model("conv1d", input_shape=(12000, 1))


# ---------------------------------------------------------------------------
# the pipeline delivers waveforms: features stage → training → predict
# ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def waveform_run(tmp_path_factory):
    from urbansound.beam_features import run_features
    from urbansound.demo_data import write_demo_dataset
    from urbansound.ingest import ingest
    from urbansound.training import train_fold

    root = tmp_path_factory.mktemp("conv1d")
    write_demo_dataset(root / "data", folds=(1, 2, 3), clips_per_class=1, seed=4)
    config = config_for("conv1d", "quick").override(**{"train.epochs": 1, "train.batch_size": 8})
    ingest(root / "data", root / "wave", config=config)
    manifest = run_features(
        root / "wave", root / "feat", config=config, beam_args=["--runner=FnApiRunner"]
    )
    result = train_fold(root / "feat", 1, [1, 2, 3], config=config, out_dir=root / "fold1")
    return root, config, manifest, result


def test_features_stage_writes_waveforms_for_a_waveform_model(waveform_run):
    from urbansound.records import fold_files, iter_records

    root, _config, manifest, _ = waveform_run
    assert manifest["input_kind"] == "waveform" and manifest["input_shape"] == [48000, 1]
    records = [decode_features(r) for r in iter_records(fold_files(root / "feat", 2))]
    assert records and {r.kind for r in records} == {"waveform"}
    assert {r.values.shape for r in records} == {(48000,)}


def test_training_a_waveform_model_end_to_end(waveform_run):
    import keras

    root, _config, _, result = waveform_run
    assert result.n_test == 10 and result.train_folds == [2, 3]
    assert result.parameters == 256_298
    model = keras.models.load_model(root / "fold1" / "model.keras")
    assert model.input_shape == (None, 48000, 1)


def test_predict_feeds_a_waveform_model_the_training_features(waveform_run):
    import keras

    from urbansound.predict import check_model_input, keras_classifier, predict_file

    root, config, _, _ = waveform_run
    model = keras.models.load_model(root / "fold1" / "model.keras")
    check_model_input(model, config)
    with pytest.raises(ValueError, match=r"not the \(batch, 128, 128, 1\) log-mels"):
        check_model_input(model, Config())
    clip = next((root / "data" / "audio" / "fold1").iterdir())
    prediction = predict_file(clip, keras_classifier(model), config=config)
    assert prediction.window_probabilities.shape == (1, 10)  # demo clips are <= 3 s
    from urbansound.audio import load_audio

    expected = model.predict(
        model_input(load_audio(clip, sample_rate=SR), config)[None, :, None], verbose=0
    )[0]
    np.testing.assert_allclose(prediction.probabilities, expected, atol=1e-5)
