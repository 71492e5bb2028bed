"""Tests for urbansound.audio (decoding, mono mix-down, resampling, fixed length)
and urbansound.features (the log-mel front end), on synthetic tones and noise."""

from __future__ import annotations

import math

import librosa
import numpy as np
import pytest
import soundfile as sf
from conftest import tone

from urbansound.audio import MIN_SECONDS, AudioError, fix_length, load_audio, prepare_waveform
from urbansound.config import Config
from urbansound.features import log_mel, mel_filterbank, waveform_to_logmel

SR = 22050


def peak_frequency(y: np.ndarray, sr: int) -> float:
    """Frequency of the largest bin of the Hann-windowed spectrum, refined by a parabola."""
    spectrum = np.abs(np.fft.rfft(y * np.hanning(len(y))))
    k = int(np.argmax(spectrum[1:-1])) + 1
    a, b, c = np.log(spectrum[k - 1 : k + 2] + 1e-12)
    offset = 0.5 * (a - c) / (a - 2 * b + c)
    return (k + offset) * sr / len(y)


# ---------------------------------------------------------------------------
# fix_length
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "n, pad_mode, expected",
    [
        (7, "loop", [1, 2, 3, 1, 2, 3, 1]),
        (6, "loop", [1, 2, 3, 1, 2, 3]),
        (4, "loop", [1, 2, 3, 1]),
        (7, "zeros", [1, 2, 3, 0, 0, 0, 0]),
        (3, "loop", [1, 2, 3]),
        (3, "zeros", [1, 2, 3]),
        (2, "loop", [1, 2]),
        (2, "zeros", [1, 2]),
        (1, "loop", [1]),
    ],
)
def test_fix_length_exact_values(n, pad_mode, expected):
    out = fix_length(np.array([1.0, 2.0, 3.0]), n, pad_mode=pad_mode)
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, np.array(expected, dtype=np.float32))


def test_fix_length_returns_a_copy():
    y = np.array([1.0, 2.0, 3.0], dtype=np.float32)
    out = fix_length(y, 3)
    out[0] = 99
    assert y[0] == 1.0


def test_fix_length_default_is_loop():
    np.testing.assert_array_equal(fix_length(np.array([5.0, 6.0]), 5), [5, 6, 5, 6, 5])


@pytest.mark.parametrize(
    "y, pad_mode, match",
    [
        (np.zeros(0), "loop", r"non-empty 1-D waveform, got shape \(0,\)"),
        (np.zeros((2, 3)), "loop", r"non-empty 1-D waveform, got shape \(2, 3\)"),
        (np.ones(3), "reflect", r"pad_mode must be 'loop' or 'zeros', not 'reflect'"),
    ],
)
def test_fix_length_errors(y, pad_mode, match):
    with pytest.raises(ValueError, match=match):
        fix_length(y, 10, pad_mode=pad_mode)


# ---------------------------------------------------------------------------
# prepare_waveform
# ---------------------------------------------------------------------------


def test_prepare_waveform_stereo_is_channel_mean():
    data = np.array([[0.2, 0.4], [-0.5, 0.1], [1.0, 0.0]] * 200, dtype=np.float64)
    y = prepare_waveform(data, SR, sample_rate=SR)
    assert y.dtype == np.float32 and y.shape == (600,)
    np.testing.assert_allclose(y[:3], [0.3, -0.2, 0.5], rtol=1e-6)


def test_prepare_waveform_mono_1d_passes_through_at_same_rate():
    y0 = tone(440, 0.1, SR)
    y = prepare_waveform(y0, SR, sample_rate=SR)
    np.testing.assert_array_equal(y, y0)
    assert y.flags["C_CONTIGUOUS"]


@pytest.mark.parametrize("native", [44100, 8000, 96000, 16000])
def test_prepare_waveform_resamples_tone(native):
    y = prepare_waveform(tone(1000, 1.0, native), native, sample_rate=SR)
    assert len(y) == SR  # exactly one second
    assert peak_frequency(y, SR) == pytest.approx(1000, abs=1.0)


@pytest.mark.parametrize("n, native", [(44101, 44100), (8001, 8000), (30001, 96000)])
def test_prepare_waveform_length_within_one_sample(n, native):
    rng = np.random.default_rng(0)
    y = prepare_waveform(0.1 * rng.standard_normal(n), native, sample_rate=SR)
    assert abs(len(y) - n * SR / native) < 1


def test_prepare_waveform_downmix_then_resample_stereo_tone():
    left = tone(1000, 1.0, 44100)
    stereo = np.stack([left, np.zeros_like(left)], axis=1)  # right channel silent
    y = prepare_waveform(stereo, 44100, sample_rate=SR)
    assert len(y) == SR
    assert peak_frequency(y, SR) == pytest.approx(1000, abs=1.0)
    assert np.abs(y).max() == pytest.approx(0.25, abs=0.01)  # mean of 0.5 and 0


@pytest.mark.parametrize(
    "data, rate, reason",
    [
        (np.array([0.1, np.nan] * 500), SR, "contains NaN or infinite samples"),
        (np.array([0.1, np.inf] * 500), SR, "contains NaN or infinite samples"),
        (np.zeros(0), SR, "no audio samples"),
        (np.zeros((100, 0)), SR, "no audio samples"),
        (np.full(int(SR * 0.01), 0.1), SR, r"too short \(10\.0 ms < 20 ms\)"),
        (np.zeros(SR), SR, r"silent \(every sample is zero\)"),
        (
            np.stack([tone(440, 0.5, SR), -tone(440, 0.5, SR)], axis=1),
            SR,
            "silent",
        ),  # cancels in mono
        (np.full(1000, 0.1), 0, "invalid sample rate 0"),
    ],
)
def test_prepare_waveform_errors(data, rate, reason):
    with pytest.raises(AudioError, match=reason) as info:
        prepare_waveform(data, rate, sample_rate=SR, source="clip-7.wav")
    assert str(info.value).startswith("clip-7.wav: ")
    assert info.value.path == "clip-7.wav"


def test_min_seconds_boundary_is_accepted():
    n = int(math.ceil(MIN_SECONDS * SR))
    assert len(prepare_waveform(np.full(n, 0.1), SR, sample_rate=SR)) == n


# ---------------------------------------------------------------------------
# load_audio: every WAV flavour UrbanSound8K has
# ---------------------------------------------------------------------------

ADPCM_BLOCK_FRAMES = 4089  # the largest IMA ADPCM block libsndfile writes (blockalign 2048, mono)


@pytest.mark.parametrize("native", [8000, 44100, 96000])
@pytest.mark.parametrize("subtype", ["PCM_16", "PCM_24", "PCM_32", "FLOAT", "PCM_U8", "IMA_ADPCM"])
@pytest.mark.parametrize("channels", [1, 2])
def test_load_audio_formats(tmp_path, native, subtype, channels):
    seconds = 0.5
    y = tone(1000, seconds, native)
    data = np.stack([y, y], axis=1) if channels == 2 else y
    path = tmp_path / f"clip_{native}_{subtype}_{channels}.wav"
    sf.write(path, data, native, subtype=subtype)

    out = load_audio(path)
    assert out.dtype == np.float32 and out.ndim == 1
    written = len(y)
    if subtype == "IMA_ADPCM":
        # libsndfile pads the last ADPCM block (2,048 bytes: 4,089 frames mono): the file holds
        # between the written frames and one block more, and decodes to exactly that many.
        frames = sf.info(path).frames
        assert written <= frames < written + ADPCM_BLOCK_FRAMES
        assert abs(len(out) - frames * SR / native) < 1
    else:
        assert len(out) == seconds * SR
    assert peak_frequency(out, SR) == pytest.approx(1000, abs=2.0)
    assert 0.45 < np.abs(out).max() < 0.6


def test_load_audio_other_target_rate(tmp_path):
    path = tmp_path / "a.wav"
    sf.write(path, tone(1000, 1.0, 44100), 44100, subtype="PCM_16")
    out = load_audio(path, sample_rate=16000)
    assert len(out) == 16000
    assert peak_frequency(out, 16000) == pytest.approx(1000, abs=1.0)


def test_load_audio_ignores_extension(tmp_path):
    path = tmp_path / "really_a_wav.mp3"
    sf.write(path, tone(1000, 0.5, 44100), 44100, subtype="PCM_16", format="WAV")
    assert len(load_audio(path)) == SR // 2


def _write(path, data, sr=SR, subtype="FLOAT"):
    sf.write(path, data, sr, subtype=subtype)
    return path


@pytest.mark.parametrize(
    "make, reason",
    [
        (lambda p: p, r"cannot read file"),
        (lambda p: (p.write_bytes(b""), p)[1], r"empty file \(0 bytes\)"),
        (
            lambda p: (p.write_bytes(b"this is not audio at all\n" * 40), p)[1],
            r"not a readable audio file \(",
        ),
        (lambda p: _write(p, np.full(SR, np.nan, dtype=np.float32)), "NaN or infinite"),
        (lambda p: _write(p, np.zeros(SR, dtype=np.float32), subtype="PCM_16"), "silent"),
        (lambda p: _write(p, tone(440, 0.01, SR), subtype="PCM_16"), "too short"),
    ],
    ids=["missing", "empty", "garbage", "nan", "all-zero", "too-short"],
)
def test_load_audio_errors_name_path_and_reason(tmp_path, make, reason):
    path = make(tmp_path / "bad clip.wav")
    with pytest.raises(AudioError, match=reason) as info:
        load_audio(path)
    assert str(path) in str(info.value)
    assert info.value.path == str(path)
    assert str(info.value) == f"{path}: {info.value.reason}"


# ---------------------------------------------------------------------------
# Mel filterbank and log_mel
# ---------------------------------------------------------------------------


def test_mel_filterbank_shape_and_no_empty_filter():
    c = Config()
    f = c.features
    fb = mel_filterbank(c.audio.sample_rate, f.n_fft, f.n_mels, f.fmin, f.fmax)
    assert fb.shape == (128, 513) and fb.dtype == np.float32
    assert np.all(fb.sum(axis=1) > 0), np.flatnonzero(fb.sum(axis=1) == 0)
    assert fb.max() <= 1.0 + 1e-6  # unnormalised (norm=None) triangles peak at 1
    assert not fb.flags.writeable


def test_htk_centres_follow_the_study_formula():
    centres = librosa.mel_frequencies(130, fmin=0, fmax=SR / 2, htk=True)
    mel = 2595 * np.log10(1 + centres / 700)
    np.testing.assert_allclose(np.diff(mel), mel[-1] / 129, rtol=1e-6)  # equally spaced in mel
    assert mel[-1] == pytest.approx(2595 * math.log10(1 + 11025 / 700))


CENTRES = librosa.mel_frequencies(128 + 2, fmin=0, fmax=SR / 2, htk=True)


@pytest.fixture(scope="module")
def features():
    return Config().features


# 200 Hz lies half-way between two band centres (190.2 and 209.8 Hz): left out of the exact test.
@pytest.mark.parametrize(
    "freq", [60, 100, 150, 300, 440, 1000, 1234, 2000, 3000, 5000, 7000, 10000]
)
def test_log_mel_tone_peaks_in_nearest_band(features, freq):
    S = log_mel(tone(freq, 3.0, SR), sample_rate=SR, features=features)
    band = int(np.argmax(S.mean(axis=1)))
    expected = int(np.argmin(np.abs(CENTRES[1:-1] - freq)))  # band i is centred on CENTRES[i + 1]
    assert band == expected
    assert CENTRES[band] < freq < CENTRES[band + 2]  # inside that band's triangle


@pytest.mark.parametrize("freq", np.geomspace(80, 10500, 9).round(1).tolist() + [200.0])
def test_log_mel_tone_peak_band_contains_frequency(features, freq):
    S = log_mel(tone(freq, 3.0, SR), sample_rate=SR, features=features)
    band = int(np.argmax(S.mean(axis=1)))
    assert CENTRES[band] < freq < CENTRES[band + 2]


def test_log_mel_shape_dtype_and_db_range(features):
    S = log_mel(tone(1000, 3.0, SR), sample_rate=SR, features=features)
    assert S.shape == (128, 128) and S.dtype == np.float32
    assert S.max() == 0.0
    assert S.min() >= -80.0
    assert S.min() == -80.0  # a pure tone leaves far-away bands at the floor


def test_log_mel_is_scale_invariant(features):
    y = tone(1000, 3.0, SR) + tone(3000, 3.0, SR, amplitude=0.1)
    a = log_mel(y, sample_rate=SR, features=features)
    b = log_mel(0.01 * y, sample_rate=SR, features=features)
    np.testing.assert_allclose(a, b, atol=1e-3)  # 0 dB is the clip's own peak


def test_log_mel_needs_enough_samples(features):
    with pytest.raises(
        ValueError, match=r"waveform has 66047 samples; 66048 are needed for 128 frames"
    ):
        log_mel(np.ones(66047, np.float32), sample_rate=SR, features=features)


def test_log_mel_frames_are_23ms_hops(features):
    # frame t covers samples [512 t, 512 t + 1024): zeroing samples 0..511 changes frame 0 only
    y = tone(1000, 3.0, SR)
    y2 = y.copy()
    y2[:512] = 0  # zero the first hop: only frame 0 (samples 0..1023) sees it
    a = log_mel(y, sample_rate=SR, features=features)
    b = log_mel(y2, sample_rate=SR, features=features)
    assert not np.array_equal(a[:, 0], b[:, 0])
    np.testing.assert_array_equal(a[:, 1:], b[:, 1:])


# ---------------------------------------------------------------------------
# waveform_to_logmel
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("seconds", [0.05, 1.0, 3.0, 5.0])
@pytest.mark.parametrize("pad_mode", ["loop", "zeros"])
def test_waveform_to_logmel_any_length_gives_128x128(seconds, pad_mode):
    config = Config().override(**{"audio.pad_mode": pad_mode})
    S = waveform_to_logmel(tone(700, seconds, SR), config)
    assert S.shape == (128, 128) and S.dtype == np.float32
    assert S.max() == 0.0 and S.min() >= -80.0


def test_long_clip_keeps_its_first_three_seconds():
    rng = np.random.default_rng(1)
    y = (0.1 * rng.standard_normal(5 * SR)).astype(np.float32)
    np.testing.assert_array_equal(
        waveform_to_logmel(y, Config()), waveform_to_logmel(y[: 3 * SR], Config())
    )


# 43 hops exactly: the looped signal repeats every 43 frames
PERIOD_FRAMES = 43


@pytest.fixture(scope="module")
def short_noise():
    rng = np.random.default_rng(2)
    return (0.2 * rng.standard_normal(PERIOD_FRAMES * 512)).astype(np.float32)


def test_loop_padding_repeats_frames(short_noise):
    S = waveform_to_logmel(short_noise, Config().override(**{"audio.pad_mode": "loop"}))
    later = S[:, PERIOD_FRAMES:]
    assert later.min() > -80.0  # not the silence floor
    np.testing.assert_allclose(later, S[:, : 128 - PERIOD_FRAMES], atol=1e-4)


def test_zeros_padding_gives_the_floor(short_noise):
    S = waveform_to_logmel(short_noise, Config().override(**{"audio.pad_mode": "zeros"}))
    # frames starting at or after the end of the clip see only zeros
    np.testing.assert_array_equal(S[:, PERIOD_FRAMES:], -80.0)
    assert S[:, : PERIOD_FRAMES - 1].min() > -80.0


def test_a_silent_file_is_rejected_before_its_features(tmp_path):
    path = tmp_path / "silent.wav"
    sf.write(path, np.zeros(SR), SR, subtype="PCM_16")
    with pytest.raises(AudioError, match="silent"):
        file_logmel(path, Config())


def test_features_are_deterministic():
    rng = np.random.default_rng(3)
    y = (0.3 * rng.standard_normal(2 * SR)).astype(np.float32)
    a = waveform_to_logmel(y, Config())
    b = waveform_to_logmel(y.copy(), Config())
    assert a.tobytes() == b.tobytes()


# ---------------------------------------------------------------------------
# Finite features for every clip that is accepted (issue 10, defect 2)
# ---------------------------------------------------------------------------


def file_logmel(path, config):
    """The production path from a file to a log-mel: ingest's decoding, then the features
    stage's log-mel [shape=(n_mels, n_frames)]."""
    return waveform_to_logmel(load_audio(path, sample_rate=config.audio.sample_rate), config)


def _float_wav(path, amplitude: float, seconds: float = 1.0):
    """A 440 Hz tone written as a 32-bit float WAV at 22,050 Hz, peak ``amplitude``."""
    y = (amplitude * np.sin(2 * np.pi * 440 * np.arange(int(seconds * SR)) / SR)).astype(np.float32)
    sf.write(path, y, SR, subtype="FLOAT")
    return path


@pytest.mark.parametrize("amplitude", [1e30, 1e18, 1e11, -3e38])
def test_absurd_float_amplitude_is_rejected_naming_file(tmp_path, amplitude):
    """The issue's reproduction (1e30) and its class: every peak above MAX_PEAK (1e10)."""
    path = _float_wav(tmp_path / "loud.wav", amplitude)
    with pytest.raises(AudioError) as info:
        file_logmel(path, Config())
    assert str(info.value).startswith(f"{path}: implausible amplitude: peak sample ")
    assert f"{abs(np.float32(amplitude)):.3g}" in info.value.reason


@pytest.mark.parametrize("amplitude", [4.0, 32767.0, 2.1e9])
def test_float_samples_beyond_one_but_sane_are_accepted_with_the_same_features(tmp_path, amplitude):
    """Float files written on a 16- or 32-bit integer scale are kept: the log-mel is
    relative to the clip's peak, so it equals that of the same tone at amplitude 0.5."""
    loud = file_logmel(_float_wav(tmp_path / "loud.wav", amplitude), Config())
    normal = file_logmel(_float_wav(tmp_path / "normal.wav", 0.5), Config())
    assert np.all(np.isfinite(loud))
    np.testing.assert_allclose(loud, normal, atol=1e-3)
    assert loud.max() == 0.0


@pytest.mark.parametrize("amplitude", [1e-8, 1e-12])
def test_practically_silent_float_clip_is_rejected(tmp_path, amplitude):
    # below the power floor every log-mel cell would be the same value
    path = _float_wav(tmp_path / "quiet.wav", amplitude)
    with pytest.raises(AudioError, match="practically silent: peak sample"):
        file_logmel(path, Config())


def test_quiet_but_audible_float_clip_is_accepted(tmp_path):
    S = file_logmel(_float_wav(tmp_path / "quiet.wav", 1e-5), Config())
    assert np.all(np.isfinite(S)) and S.max() == 0.0 and S.min() < -40.0


def test_prepare_waveform_checks_the_peak_after_mixdown():
    y = tone(440, 0.5, SR, amplitude=1.0).astype(np.float64)
    with pytest.raises(AudioError, match="implausible amplitude: peak sample 2e\\+10"):
        prepare_waveform(np.stack([2e10 * y, 2e10 * y], axis=1), SR, sample_rate=SR)
    # channels at 1e-3 and -1e-3 + 1e-7 almost cancel: the mono peak is 5e-8
    with pytest.raises(AudioError, match="practically silent: peak sample 5e-08"):
        prepare_waveform(np.stack([1e-3 * y, -1e-3 * y + 1e-7 * y], axis=1), SR, sample_rate=SR)


@pytest.mark.parametrize("amplitude", [1e18, 1e30, 3e38])
def test_log_mel_of_a_huge_waveform_is_finite_and_scale_invariant(features, amplitude):
    """log_mel itself (what the Beam stage runs on waveforms and deformations) works in
    float64: a float32 power spectrum overflowed from a peak of about 1e17 to all-NaN."""
    y = tone(1000, 3.0, SR, amplitude=1.0) * np.float32(amplitude)
    assert np.all(np.isfinite(y))
    S = log_mel(y, sample_rate=SR, features=features)
    assert S.dtype == np.float32 and np.all(np.isfinite(S))
    np.testing.assert_allclose(
        S, log_mel(tone(1000, 3.0, SR), sample_rate=SR, features=features), atol=1e-3
    )


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_log_mel_refuses_non_finite_samples(features, bad):
    from urbansound.features import FeatureError

    y = tone(1000, 3.0, SR)
    y[100] = bad
    with pytest.raises(FeatureError, match="waveform has 1 NaN or infinite samples"):
        log_mel(y, sample_rate=SR, features=features)


# ---------------------------------------------------------------------------
# The Beam features stage writes only finite log-mels (issue 10, defect 2)
# ---------------------------------------------------------------------------


def test_beam_features_drop_count_and_report_non_finite_examples(tmp_path):
    """Waveform records as an older or foreign ingest could have written them: the
    stage writes the good and the huge-but-finite clips, and drops the NaN, inf and
    empty ones with their reason, rather than writing a NaN log-mel."""
    import json

    from urbansound.beam_features import REPORT, run_features
    from urbansound.records import decode_logmel, encode_waveform, iter_records, write_records

    waves = tmp_path / "waveforms"
    waves.mkdir()
    nan_clip = tone(500, 1.0, SR)
    nan_clip[10] = np.nan
    inf_clip = tone(600, 1.0, SR)
    inf_clip[-1] = np.inf
    clips = {
        "good.wav": tone(440, 1.0, SR),
        "huge.wav": tone(440, 1.0, SR, amplitude=1.0) * 1e30,
        "nan.wav": nan_clip,
        "inf.wav": inf_clip,
        "empty.wav": np.zeros(0, np.float32),
    }
    write_records(
        waves / "fold1.tfrecord",
        [
            encode_waveform(
                y,
                sample_rate=SR,
                label=3,
                fold=1,
                fs_id=1,
                salience=1,
                file_name=name,
                class_name="dog_bark",
            )
            for name, y in clips.items()
        ],
    )
    (waves / "manifest.json").write_text(
        json.dumps({"folds": {"1": len(clips)}, "dataset_hash": "x"})
    )
    out = tmp_path / "features"
    manifest = run_features(waves, out, config=Config(), beam_args=["--runner=FnApiRunner"])

    written = {
        r.file_name: r.logmel
        for r in map(decode_logmel, iter_records([str(out / "fold1.tfrecord")]))
    }
    assert sorted(written) == ["good.wav", "huge.wav"]
    assert all(np.all(np.isfinite(S)) for S in written.values())
    np.testing.assert_allclose(written["huge.wav"], written["good.wav"], atol=1e-3)
    assert manifest["folds"] == {"1": {"original": 2}}
    report = json.loads((out / REPORT).read_text())
    assert report == manifest["rejected"]
    reasons = {r["file"]: r["reason"] for r in report}
    assert reasons == {
        "empty.wav": "fix_length needs a non-empty 1-D waveform, got shape (0,)",
        "inf.wav": "waveform has 1 NaN or infinite samples",
        "nan.wav": "waveform has 1 NaN or infinite samples",
    }
    assert {(r["fold"], r["deformation"]) for r in report} == {(1, "original")}
    assert manifest["warnings"][0].startswith("3 example(s) dropped: their log-mel is not finite")
    assert sorted(p.name for p in out.iterdir()) == [
        ".urbansound-outputs.json",
        "fold1.tfrecord",
        "manifest.json",
        REPORT,
    ]  # + the marker


def test_beam_features_drop_a_non_finite_copy_and_the_copies_of_a_dropped_clip():
    """One clip's outputs alone, with stand-in deformations: a copy whose samples are NaN is
    dropped and reported, the clip's other outputs are kept; a clip whose original
    is dropped yields no copies at all (its deformations are not even computed)."""
    import json
    from types import SimpleNamespace

    from urbansound.beam_features import ClipToLogMels
    from urbansound.records import decode_logmel, encode_waveform

    # two configured deformations, replaced below by stand-ins (NaN copy, half-level copy)
    nan_copy, half_copy = "pitch_shift_2", "drc_film_standard"
    fn = ClipToLogMels(
        Config().override(**{"augment.deformations": (nan_copy, half_copy)}).to_json()
    )
    fn.setup()
    calls = []

    def deform(y, sr, deformer, *, name, key=""):
        calls.append(name)
        return np.full_like(y, np.nan) if name == nan_copy else 0.5 * y

    fn._deformers = {nan_copy: None, half_copy: None}
    fn._augment = SimpleNamespace(deform=deform, AugmentError=RuntimeError)

    def run(y):
        raw = encode_waveform(
            y,
            sample_rate=SR,
            label=1,
            fold=4,
            fs_id=9,
            salience=2,
            file_name="c.wav",
            class_name="car_horn",
        )
        return list(fn.outputs(raw))

    (_, good, _), (_, none, dropped), (_, copy, _) = run(tone(800, 1.0, SR))
    assert (decode_logmel(good).deformation, decode_logmel(copy).deformation) == ("", half_copy)
    assert none is None
    assert json.loads(dropped) == {
        "file": "c.wav",
        "fold": 4,
        "deformation": nan_copy,
        "reason": "waveform has 22050 NaN or infinite samples",
    }
    assert calls == [nan_copy, half_copy]

    calls.clear()
    bad = tone(800, 1.0, SR)
    bad[5] = np.inf
    [(_, none, only)] = run(bad)
    assert none is None and json.loads(only)["deformation"] == "original"
    assert calls == []
