"""Tests for urbansound.augment: the study's muda deformations on a 440 Hz tone.

Time stretch and pitch shift need the ``rubberband`` binary, dynamic range
compression needs ``sox``; the tests are skipped (not failed) where one is missing.
"""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from conftest import tone

from urbansound.augment import AugmentError, deform, make_deformer, synthesize_noise
from urbansound.config import Config
from urbansound.deformations import (
    BUILTIN_NOISES,
    DEFORMATION_NAMES,
    DEFORMATION_SETS,
    SALAMON_BELLO_DEFORMATIONS,
    STUDY_DEFORMATIONS,
    binary_needed,
    deformations_for,
    parse_per_class,
)

SR = 22050
N = SR  # one second
BINARY = {name: binary_needed(name) for name in DEFORMATION_NAMES}


def peak_frequency(y: np.ndarray, sr: int = SR) -> float:
    spectrum = np.abs(np.fft.rfft(y * np.hanning(len(y))))
    k = int(np.argmax(spectrum[1:-1])) + 1
    a, b, c = np.log(spectrum[k - 1 : k + 2] + 1e-12)
    return (k + 0.5 * (a - c) / (a - 2 * b + c)) * sr / len(y)


def needs_binary(name: str):
    return pytest.mark.skipif(
        BINARY[name] is not None and shutil.which(BINARY[name]) is None,
        reason=f"{name} needs the {BINARY[name]} binary",
    )


@pytest.fixture(scope="module")
def deformed():
    """Each deformation applied once (PitchShift's first call may compile numba code)."""
    cache = {}

    def get(name):
        if name not in cache:
            cache[name] = deform(
                tone(440.0, 1.0), SR, make_deformer(name), name=name, key="tone.wav"
            )
        return cache[name]

    return get


def test_names_and_sets():
    assert STUDY_DEFORMATIONS == (
        "time_stretch_1.23",
        "pitch_shift_2",
        "drc_film_standard",
        "background_noise_workers",
    )
    assert len(SALAMON_BELLO_DEFORMATIONS) == 20 == len(DEFORMATION_NAMES)
    assert set(SALAMON_BELLO_DEFORMATIONS) == DEFORMATION_NAMES
    assert {n for n in DEFORMATION_NAMES if n.startswith("time_stretch_")} == {
        "time_stretch_0.81",
        "time_stretch_0.93",
        "time_stretch_1.07",
        "time_stretch_1.23",
    }
    assert {n for n in DEFORMATION_NAMES if n.startswith("pitch_shift_")} == {
        f"pitch_shift_{v}" for v in ("-2", "-1", "1", "2", "-3.5", "-2.5", "2.5", "3.5")
    }
    assert {n for n in DEFORMATION_NAMES if n.startswith("drc_")} == {
        "drc_music_standard",
        "drc_film_standard",
        "drc_speech",
        "drc_radio",
    }
    assert DEFORMATION_SETS == {
        "study": STUDY_DEFORMATIONS,
        "salamon-bello": SALAMON_BELLO_DEFORMATIONS,
    }
    # the configuration accepts exactly these names
    assert (
        Config().override(**{"augment.deformations": STUDY_DEFORMATIONS}).augment.deformations
        == STUDY_DEFORMATIONS
    )


@pytest.mark.parametrize("name", sorted(DEFORMATION_NAMES))
def test_every_deformation_runs(deformed, name):
    if BINARY[name] is not None and shutil.which(BINARY[name]) is None:
        pytest.skip(f"needs {BINARY[name]}")
    y = deformed(name)
    assert y.dtype == np.float32 and y.ndim == 1
    assert np.all(np.isfinite(y))
    assert 0.01 < np.abs(y).max() <= 1.0
    assert not (len(y) == N and np.allclose(y, tone(440.0, 1.0), atol=1e-3))  # something changed


@needs_binary("time_stretch_1.23")
def test_time_stretch_shortens_and_keeps_pitch(deformed):
    y = deformed("time_stretch_1.23")
    assert len(y) == pytest.approx(N / 1.23, abs=5)  # 17,927 samples
    assert peak_frequency(y) == pytest.approx(440.0, abs=2.0)


@needs_binary("pitch_shift_2")
def test_pitch_shift_moves_the_peak_two_semitones(deformed):
    y = deformed("pitch_shift_2")
    assert len(y) == N
    assert peak_frequency(y) == pytest.approx(440.0 * 2 ** (2 / 12), abs=2.0)  # 493.9 Hz


@needs_binary("drc_film_standard")
def test_drc_keeps_length_and_pitch(deformed):
    y = deformed("drc_film_standard")
    assert len(y) == N
    assert peak_frequency(y) == pytest.approx(440.0, abs=2.0)


@needs_binary("time_stretch_1.23")
def test_deform_is_deterministic(deformed):
    again = deform(
        tone(440.0, 1.0), SR, make_deformer("time_stretch_1.23"), name="time_stretch_1.23"
    )
    np.testing.assert_array_equal(again, deformed("time_stretch_1.23"))


def test_unknown_deformation():
    with pytest.raises(
        ValueError, match=r"unknown deformation 'reverb'; known: \['background_noise_crowd'"
    ):
        make_deformer("reverb")


class _Failing:
    def transform(self, jam):
        raise RuntimeError("rubberband exited with status 1")
        yield jam  # pragma: no cover


class _NaN:
    def transform(self, jam):
        jam.sandbox.muda._audio["y"] = np.full(10, np.nan, np.float32)
        yield jam


def test_deformer_failure_becomes_augment_error():
    with pytest.raises(AugmentError, match=r"deformation pitch_shift_2 failed: rubberband exited"):
        deform(tone(440.0, 1.0), SR, _Failing(), name="pitch_shift_2")


def test_non_finite_output_is_an_augment_error():
    with pytest.raises(AugmentError, match=r"deformation drc_film_standard produced non-finite"):
        deform(tone(440.0, 1.0), SR, _NaN(), name="drc_film_standard")


@pytest.mark.parametrize(
    "name, factor", [("time_stretch_0.81", 1 / 0.81), ("time_stretch_1.07", 1 / 1.07)]
)
@needs_binary("time_stretch_1.23")
def test_every_stretch_changes_length_by_its_rate(name, factor):
    y = deform(tone(440.0, 1.0), SR, make_deformer(name), name=name)
    assert len(y) == pytest.approx(N * factor, abs=5)
    assert peak_frequency(y) == pytest.approx(440.0, abs=2.0)


@pytest.mark.parametrize("semitones", [-3.5, -1, 2.5])
@needs_binary("pitch_shift_2")
def test_every_shift_moves_the_peak(semitones):
    name = f"pitch_shift_{semitones:g}"
    y = deform(tone(440.0, 1.0), SR, make_deformer(name), name=name)
    assert len(y) == N
    assert peak_frequency(y) == pytest.approx(440.0 * 2 ** (semitones / 12), abs=2.5)


@pytest.mark.parametrize("preset", ["drc_music_standard", "drc_speech", "drc_radio"])
@needs_binary("drc_film_standard")
def test_every_drc_preset_changes_the_level_not_the_pitch(preset):
    quiet = (0.1 * tone(440.0, 1.0)).astype(np.float32)  # compression raises a quiet tone
    y = deform(quiet, SR, make_deformer(preset), name=preset)
    assert len(y) == N
    assert peak_frequency(y) == pytest.approx(440.0, abs=2.0)
    rms_in, rms_out = np.sqrt(np.mean(quiet**2)), np.sqrt(np.mean(y[SR // 4 :] ** 2))
    assert abs(20 * np.log10(rms_out / rms_in)) > 1.0  # the level moved by more than 1 dB


# ---------------------------------------------------------------------------
# Background noise
# ---------------------------------------------------------------------------


def band_energy(y, lo, hi, sr=SR):
    spectrum = np.abs(np.fft.rfft(y)) ** 2
    f = np.fft.rfftfreq(len(y), 1 / sr)
    return spectrum[(f >= lo) & (f < hi)].sum() / spectrum.sum()


def test_builtin_noises_have_their_spectra():
    noises = {k: synthesize_noise(k, SR, seconds=4.0) for k in BUILTIN_NOISES}
    for y in noises.values():
        assert y.dtype == np.float32 and len(y) == 4 * SR
        assert np.abs(y).max() == pytest.approx(0.5, abs=1e-6) and np.all(np.isfinite(y))
    assert band_energy(noises["traffic"], 0, 200) > 0.8  # brown: a low rumble
    assert band_energy(noises["crowd"], 300, 3000) > 0.95  # the voice band
    assert band_energy(noises["hum"], 45, 55) > 0.3  # 50 Hz mains
    np.testing.assert_array_equal(synthesize_noise("crowd", SR, 4.0), noises["crowd"])
    with pytest.raises(ValueError, match="unknown built-in noise 'rain'"):
        synthesize_noise("rain")


def test_background_noise_mixes_within_the_weights_and_is_seeded_per_clip(deformed):
    y = deformed("background_noise_workers")
    assert len(y) == N and np.all(np.isfinite(y))
    # muda normalises the clip to peak 1, then mixes (1 - w) * clip + w * noise, w in 0.1-0.5:
    # the tone's share of the output is between 0.5 and 0.9 of its normalised amplitude
    clip = tone(440.0, 1.0) / np.abs(tone(440.0, 1.0)).max()
    w = 1 - float(np.dot(y, clip) / np.dot(clip, clip))
    assert 0.1 - 0.05 <= w <= 0.5 + 0.05
    again = deform(
        tone(440.0, 1.0),
        SR,
        make_deformer("background_noise_workers"),
        name="background_noise_workers",
        key="tone.wav",
    )
    np.testing.assert_array_equal(again, y)  # the same clip always gets the same copy
    other = deform(
        tone(440.0, 1.0),
        SR,
        make_deformer("background_noise_workers"),
        name="background_noise_workers",
        key="another.wav",
    )
    assert not np.array_equal(other, y)


def test_noise_dir_of_the_users_recordings(tmp_path):
    import soundfile as sf

    hum = (0.3 * np.sin(2 * np.pi * 60 * np.arange(3 * SR) / SR)).astype(np.float32)
    sf.write(tmp_path / "a-hum60.wav", hum, SR)
    deformer = make_deformer("background_noise_traffic", noise_dir=str(tmp_path))
    assert deformer.files == [str(tmp_path / "a-hum60.wav")]  # one file: every source uses it
    y = deform(tone(440.0, 1.0), SR, deformer, name="background_noise_traffic", key="k")
    assert band_energy(y, 55, 65) > 0.01  # the user's 60 Hz hum is in the mix
    with pytest.raises(ValueError, match="augment.noise_dir holds no audio file"):
        make_deformer("background_noise_traffic", noise_dir=str(tmp_path / "empty"))


# ---------------------------------------------------------------------------
# Per-class choice
# ---------------------------------------------------------------------------


def test_deformations_per_class():
    per_class = ("gun_shot=pitch_shift_2,drc_radio", "siren=")
    default = ("time_stretch_1.23", "pitch_shift_2")
    assert deformations_for("gun_shot", default, per_class) == ("pitch_shift_2", "drc_radio")
    assert deformations_for("siren", default, per_class) == ()
    assert deformations_for("dog_bark", default, per_class) == default
    config = Config().override(**{"augment.deformations": default, "augment.per_class": per_class})
    assert config.augment.all_deformations() == ("time_stretch_1.23", "pitch_shift_2", "drc_radio")


@pytest.mark.parametrize(
    "entry, match",
    [
        ("gunshot=pitch_shift_2", "must read '<class>=<deformation>,...'"),
        ("gun_shot", "must read"),
        ("gun_shot=reverb", r"unknown deformation\(s\) \['reverb'\]"),
    ],
)
def test_bad_per_class_entries(entry, match):
    from urbansound.config import CLASS_NAMES, ConfigError

    with pytest.raises(ValueError, match=match):
        parse_per_class((entry,), CLASS_NAMES)
    with pytest.raises(ConfigError, match=match):
        Config().override(**{"augment.per_class": (entry,)})
    with pytest.raises(ValueError, match="names 'siren' twice"):
        parse_per_class(("siren=", "siren=drc_radio"), CLASS_NAMES)


# ---------------------------------------------------------------------------
# No leak: only the folds that train are deformed
# ---------------------------------------------------------------------------


def test_folds_to_augment_are_the_training_folds_only():
    from urbansound.folds import folds_to_augment, split_folds

    present = [1, 2, 3, 4, 5]
    chosen = folds_to_augment([1], present, seed=0, validation="fold")
    split = split_folds(1, present, seed=0)
    assert chosen == sorted(split.train_folds)
    assert 1 not in chosen and split.validation_fold not in chosen
    assert folds_to_augment([1], present, seed=0, validation="none") == [2, 3, 4, 5]
    # every fold tested: every fold trains some other fold's model, so each is deformed once
    assert folds_to_augment(present, present, seed=0, validation="fold") == present


@needs_binary("drc_film_standard")
def test_features_stage_never_deforms_a_test_or_validation_clip(tmp_path):
    from urbansound.beam_features import run_features
    from urbansound.demo_data import write_demo_dataset
    from urbansound.folds import folds_to_augment, split_folds
    from urbansound.ingest import ingest
    from urbansound.records import decode_logmel, fold_files, iter_records

    write_demo_dataset(tmp_path / "data", folds=(1, 2, 3, 4), clips_per_class=1, seed=2)
    config = Config().override(
        **{"augment.deformations": ("drc_film_standard",), "train.validation": "fold"}
    )
    ingest(tmp_path / "data", tmp_path / "wave", config=config)
    deform = folds_to_augment([1], [1, 2, 3, 4], seed=0, validation="fold")
    manifest = run_features(
        tmp_path / "wave",
        tmp_path / "feat",
        config=config,
        beam_args=["--runner=FnApiRunner"],
        deform_folds=deform,
    )
    held_out = {1, split_folds(1, [1, 2, 3, 4], seed=0).validation_fold}
    assert manifest["deformed_folds"] == deform and not held_out & set(deform)
    for fold in (1, 2, 3, 4):
        kinds = {
            decode_logmel(r).deformation for r in iter_records(fold_files(tmp_path / "feat", fold))
        }
        assert kinds == ({""} if fold in held_out else {"", "drc_film_standard"}), fold


@needs_binary("pitch_shift_2")
@pytest.mark.parametrize("name", ["pitch_shift_2", "pitch_shift_-3.5"])
def test_pitch_shift_without_the_tuning_estimate_gives_muda_s_own_samples(name, monkeypatch):
    """deform skips muda's per-call tuning estimate (it only renames key and chord
    annotations, and a packed clip has none): the samples are exactly muda's own, and the
    estimate is not called."""
    import jams
    import librosa
    import muda

    y = tone(330.0, 1.0) + 0.1 * tone(1000.0, 1.0)
    deformer = make_deformer(name)
    jam = muda.jam_pack(jams.JAMS(), _audio=dict(y=y, sr=SR))
    jam.file_metadata.duration = N / SR
    theirs = next(iter(deformer.transform(jam))).sandbox.muda._audio["y"]

    calls = []
    real = librosa.estimate_tuning
    monkeypatch.setattr(
        librosa, "estimate_tuning", lambda *a, **k: calls.append(1) or real(*a, **k)
    )
    ours = deform(y, SR, deformer, name=name, key="tone.wav")
    assert calls == []
    np.testing.assert_array_equal(ours, np.asarray(theirs, dtype=np.float32))
