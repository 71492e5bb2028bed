"""The numpy front end (filters, STFT, dB, resampling, Example records) equals the libraries
it replaces in the workers' hot path: librosa and TensorFlow.

Workers no longer import those (about 9 s and hundreds of MB per worker); these tests keep
the features, and the records, exactly what they were with them."""

from __future__ import annotations

import numpy as np
import pytest

from urbansound import audio, features, records
from urbansound.config import Config

librosa = pytest.importorskip("librosa")


@pytest.mark.parametrize(
    "sample_rate,n_fft,n_mels,fmin,fmax",
    [(22050, 2048, 128, 0.0, None), (16000, 512, 40, 50.0, 7000.0), (44100, 1024, 64, 20.0, None)],
)
def test_mel_filterbank_equals_librosa_htk_unnormalised(sample_rate, n_fft, n_mels, fmin, fmax):
    ours = features.mel_filterbank(sample_rate, n_fft, n_mels, fmin, fmax)
    theirs = librosa.filters.mel(
        sr=sample_rate, n_fft=n_fft, n_mels=n_mels, fmin=fmin, fmax=fmax, htk=True, norm=None
    )
    assert ours.shape == (n_mels, 1 + n_fft // 2)
    np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-6)
    assert float(ours.max()) <= 1.0 + 1e-6  # unnormalised triangles peak at 1


@pytest.mark.parametrize("n_fft,hop,win", [(2048, 512, 2048), (1024, 256, 800), (512, 160, 400)])
def test_power_spectrogram_equals_librosa_stft_without_centering(n_fft, hop, win):
    y = np.random.default_rng(0).standard_normal(22050)
    ours = features.power_spectrogram(y, n_fft=n_fft, hop_length=hop, win_length=win)
    theirs = (
        np.abs(
            librosa.stft(
                y, n_fft=n_fft, hop_length=hop, win_length=win, window="hann", center=False
            )
        )
        ** 2
    )
    assert ours.shape == theirs.shape == (1 + n_fft // 2, 1 + (22050 - n_fft) // hop)
    np.testing.assert_allclose(ours, theirs, rtol=1e-9, atol=1e-9 * float(theirs.max()))


def test_power_to_db_equals_librosa():
    power = np.random.default_rng(1).exponential(size=(128, 128)) ** 4
    power[0, :5] = 0.0
    ours = features.power_to_db(power, amin=1e-10, top_db=80.0)
    theirs = librosa.power_to_db(power, ref=np.max, amin=1e-10, top_db=80.0)
    np.testing.assert_allclose(ours, theirs, atol=1e-9)
    assert ours.max() == pytest.approx(0.0) and ours.min() == pytest.approx(-80.0)


def test_log_mel_of_a_real_like_clip_matches_the_librosa_pipeline():
    """The whole log-mel, against the librosa calls it used to make, within float32."""
    cfg = Config()
    f, a = cfg.features, cfg.audio
    t = np.arange(a.clip_samples) / a.sample_rate
    y = 0.3 * np.sin(2 * np.pi * 440 * t) + 0.05 * np.random.default_rng(2).standard_normal(t.size)
    ours = features.log_mel(y, sample_rate=a.sample_rate, features=f)
    needed = f.n_fft + (f.n_frames - 1) * f.hop_length
    spec = (
        np.abs(
            librosa.stft(
                y[:needed],
                n_fft=f.n_fft,
                hop_length=f.hop_length,
                win_length=f.win_length,
                window="hann",
                center=False,
            )
        )
        ** 2
    )
    mel = (
        librosa.filters.mel(
            sr=a.sample_rate,
            n_fft=f.n_fft,
            n_mels=f.n_mels,
            fmin=f.fmin,
            fmax=f.fmax,
            htk=True,
            norm=None,
        )
        .astype(np.float32)
        .astype(np.float64)
        @ spec
    )
    theirs = librosa.power_to_db(mel, ref=np.max, amin=f.amin, top_db=f.top_db)
    assert ours.shape == (f.n_mels, f.n_frames)
    np.testing.assert_allclose(ours, theirs, atol=1e-3)


@pytest.mark.parametrize(
    "orig,target,n",
    [
        (44100, 22050, 44100 * 4),
        (48000, 22050, 48001),
        (96000, 22050, 12345),
        (22050, 16000, 66150),
        (8000, 22050, 8003),
    ],
)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_resample_equals_librosa_soxr_hq(orig, target, n, dtype):
    y = np.random.default_rng(3).uniform(-0.5, 0.5, n).astype(dtype)
    ours = audio.resample(y, orig_sr=orig, target_sr=target)
    theirs = librosa.resample(y, orig_sr=orig, target_sr=target, res_type="soxr_hq")
    assert ours.dtype == theirs.dtype == dtype
    assert ours.shape == theirs.shape == (int(np.ceil(n * target / orig)),)
    np.testing.assert_array_equal(ours, theirs)


def _tensorflow_example(fields: dict) -> bytes:
    tf = pytest.importorskip("tensorflow")
    feature = {}
    for key, value in fields.items():
        if isinstance(value, (bytes, str)):
            raw = value.encode() if isinstance(value, str) else value
            feature[key] = tf.train.Feature(bytes_list=tf.train.BytesList(value=[raw]))
        else:
            feature[key] = tf.train.Feature(int64_list=tf.train.Int64List(value=[int(value)]))
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString(
        deterministic=True
    )


FIELDS = {
    "waveform": np.linspace(-1, 1, 66150, dtype="<f4").tobytes(),
    "sample_rate": 22050,
    "label": 0,
    "fold": 10,
    "fs_id": 2**63 - 1,
    "salience": -1,
    "negative": -(2**63),
    "empty": b"",
    "file_name": "100032-3-0-0.wav",
    "class_name": "dög_bark",
    "big": 300,
}


def test_example_bytes_equal_tensorflows_deterministic_serialisation():
    assert records._example(FIELDS) == _tensorflow_example(FIELDS)


def test_examples_written_by_tensorflow_parse_to_the_same_values():
    parsed = records._parse(_tensorflow_example(FIELDS))
    expected = {k: (v.encode() if isinstance(v, str) else v) for k, v in FIELDS.items()}
    assert parsed == expected


def test_unpacked_int64_lists_parse_too():
    # Int64List { value: 5 } written unpacked (wire type 0), as older writers may
    int64_list = bytes([0x08, 0x05])
    feature = bytes([0x1A, len(int64_list)]) + int64_list
    entry = bytes([0x0A, 1]) + b"n" + bytes([0x12, len(feature)]) + feature
    example = bytes([0x0A, len(entry) + 2, 0x0A, len(entry)]) + entry
    assert records._parse(example) == {"n": 5}


def test_a_truncated_example_is_a_value_error():
    raw = records._example({"file_name": "a.wav", "label": 3})
    with pytest.raises(ValueError, match="truncated"):
        records._parse(raw[:-3])


def test_integer_beyond_64_bits_names_the_field():
    with pytest.raises(ValueError, match="fs_id 9223372036854775808 does not fit"):
        records._example({"fs_id": 2**63})


@pytest.mark.parametrize("channels", [1, 2, 3, 6])
def test_mix_down_equals_numpy_s_float64_mean_bit_for_bit(channels):
    data = np.random.default_rng(channels).uniform(-1, 1, (44101, channels)).astype(np.float32)
    ours = audio.mix_down(data)
    assert ours.dtype == np.float64 and ours.shape == (44101,)
    np.testing.assert_array_equal(ours, data.mean(axis=1, dtype=np.float64))


@pytest.mark.parametrize("channels", [1, 2, 3])
@pytest.mark.parametrize("native", [22050, 44100])
def test_prepare_waveform_equals_the_plain_mean_cast_and_resample(channels, native):
    """prepare_waveform's checks work on min and max, and one channel skips the float64
    round trip: the samples must still be the plain formula's, bit for bit."""
    data = np.random.default_rng(channels).uniform(-0.9, 0.9, (native, channels)).astype(np.float32)
    plain = data.mean(axis=1, dtype=np.float64).astype(np.float32)
    if native != 22050:
        plain = audio.resample(plain, orig_sr=native, target_sr=22050)
    ours = audio.prepare_waveform(data, native, sample_rate=22050)
    assert ours.dtype == np.float32 and ours.flags["C_CONTIGUOUS"]
    np.testing.assert_array_equal(ours, plain)
    assert not np.shares_memory(ours, data)  # a copy: the caller's array stays its own


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_prepare_waveform_finds_one_bad_sample_anywhere(bad):
    data = np.full((2205, 2), 0.1, dtype=np.float32)
    data[1234, 1] = bad
    with pytest.raises(audio.AudioError, match=r"contains NaN or infinite samples \(1 of 4410\)"):
        audio.prepare_waveform(data, 22050, sample_rate=22050, source="x.wav")


def test_prepare_waveform_peak_of_one_channel_is_its_largest_magnitude():
    quiet = np.full(2205, 1e-9, dtype=np.float32)  # below one 24-bit step, negative or not
    quiet[7] = -2e-9
    with pytest.raises(audio.AudioError, match=r"practically silent: peak sample 2e-09"):
        audio.prepare_waveform(quiet, 22050, sample_rate=22050)
