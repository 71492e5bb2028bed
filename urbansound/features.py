"""The front end: one definition of a model's input for training, evaluation and prediction.

:func:`model_input` is the single feature function: the Beam stage calls it on every
(possibly deformed) clip, and prediction calls it on every window of raw audio.  What
it returns depends on the model's declared input kind (``Config.input_kind``, from
:data:`urbansound.models.MODELS`):

- ``"logmel"``: :func:`waveform_to_logmel`, the study's 128×128 log-mel in dB.  Mel
  scale is HTK (mel = 2595 log10(1 + f/700)), as in the study, with unnormalised
  triangular filters.
- ``"waveform"``: :func:`waveform_input`, the fixed-length clip resampled to
  ``features.waveform_rate`` (end-to-end models such as ``conv1d``).
"""

from __future__ import annotations

import functools

import numpy as np

from urbansound.audio import fix_length, resample
from urbansound.config import AudioConfig, Config, FeatureConfig


class FeatureError(ValueError):
    """A waveform whose log-mel would not be finite (``str()`` says why)."""


def hz_to_mel(hz):
    """HTK mel of a frequency in Hz: 2595 log10(1 + f / 700)."""
    return 2595.0 * np.log10(1.0 + np.asarray(hz, dtype=np.float64) / 700.0)


def mel_to_hz(mel):
    """Frequency in Hz of an HTK mel value (inverse of :func:`hz_to_mel`)."""
    return 700.0 * (10.0 ** (np.asarray(mel, dtype=np.float64) / 2595.0) - 1.0)


@functools.lru_cache(maxsize=8)
def mel_filterbank(
    sample_rate: int, n_fft: int, n_mels: int, fmin: float, fmax: float | None
) -> np.ndarray:
    """HTK mel filters, shape (n_mels, 1 + n_fft // 2), float32, read-only.

    Unnormalised triangles (peak 1) between ``n_mels + 2`` points equally spaced in mel
    from ``fmin`` to ``fmax`` Hz (``None``: ``sample_rate / 2``): the same weights as
    ``librosa.filters.mel(htk=True, norm=None)`` (tested), computed with numpy alone so
    that a feature worker does not pay librosa's import (about 2 s)."""
    fmax = sample_rate / 2.0 if fmax is None else float(fmax)
    bin_hz = np.fft.rfftfreq(n_fft, d=1.0 / sample_rate)
    edges_hz = mel_to_hz(np.linspace(hz_to_mel(fmin), hz_to_mel(fmax), n_mels + 2))
    widths = np.diff(edges_hz)
    ramps = edges_hz[:, None] - bin_hz[None, :]
    rising = -ramps[:-2] / widths[:-1, None]
    falling = ramps[2:] / widths[1:, None]
    fb = np.maximum(0.0, np.minimum(rising, falling)).astype(np.float32)
    fb.setflags(write=False)
    return fb


@functools.lru_cache(maxsize=8)
def _hann(n_fft: int, win_length: int) -> np.ndarray:
    """Periodic Hann window of ``win_length`` samples centred in ``n_fft`` (float64), as
    ``scipy.signal.get_window("hann", win_length, fftbins=True)`` padded by librosa."""
    window = 0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(win_length) / win_length)
    left = (n_fft - win_length) // 2
    out = np.zeros(n_fft)
    out[left : left + win_length] = window
    out.setflags(write=False)
    return out


def power_spectrogram(y: np.ndarray, *, n_fft: int, hop_length: int, win_length: int) -> np.ndarray:
    """|STFT|² of ``y`` without padding (frame t covers samples [t·hop, t·hop + n_fft)).

    Parameters
    ----------
    y : np.ndarray [shape=(n,), float64], n >= n_fft.

    Returns
    -------
    np.ndarray [shape=(1 + n_fft // 2, 1 + (n - n_fft) // hop_length), float64]:
        ``librosa.stft(..., window="hann", center=False)`` squared in magnitude (tested).
    """
    frames = np.lib.stride_tricks.sliding_window_view(y, n_fft)[::hop_length]
    spectrum = np.fft.rfft(frames * _hann(n_fft, win_length), axis=1)
    return (spectrum.real**2 + spectrum.imag**2).T


def power_to_db(power: np.ndarray, *, amin: float, top_db: float | None) -> np.ndarray:
    """``10 log10(power / max power)``, floored at ``amin`` and at ``top_db`` below the
    peak: ``librosa.power_to_db(power, ref=np.max, amin=amin, top_db=top_db)``."""
    log_spec = 10.0 * np.log10(np.maximum(amin, power))
    log_spec -= 10.0 * np.log10(max(amin, float(np.max(power))))
    if top_db is not None:
        log_spec = np.maximum(log_spec, log_spec.max() - top_db)
    return log_spec


def log_mel(y: np.ndarray, *, sample_rate: int, features: FeatureConfig) -> np.ndarray:
    """Log-mel spectrogram in dB of a fixed-length waveform.

    Parameters
    ----------
    y : np.ndarray [shape=(n,)] waveform at ``sample_rate`` Hz, long enough for
        ``features.n_frames`` frames: n >= n_fft + (n_frames - 1) * hop_length.
    sample_rate : Hz.
    features : window, hop, bands, dB floor.

    Returns
    -------
    S_db : np.ndarray [shape=(n_mels, n_frames), dtype=float32]
        ``10 log10(power / max power)``, so the clip's loudest cell is 0 dB and
        nothing is below ``-top_db``.  Rows are mel bands (low to high), columns
        are frames of ``hop_length / sample_rate`` seconds.  Every value is finite.

    Raises
    ------
    FeatureError
        ``y`` holds NaN or infinite samples, or (defensively) the result is not finite.
    ValueError
        ``y`` is too short.
    """
    f = features
    needed = f.n_fft + (f.n_frames - 1) * f.hop_length
    if y.shape[-1] < needed:
        raise ValueError(
            f"waveform has {y.shape[-1]} samples; {needed} are needed for {f.n_frames} frames"
        )
    # float64 throughout: the power of a float32 frame overflows float32 from a peak of
    # about 1e17, and inf / inf relative to the clip's maximum is NaN in every cell.
    y = np.asarray(y[:needed], dtype=np.float64)
    if not np.all(np.isfinite(y)):
        raise FeatureError(
            f"waveform has {int(np.count_nonzero(~np.isfinite(y)))} NaN or infinite samples"
        )
    # center=False: frame t covers samples [t*hop, t*hop + n_fft), no reflection padding.
    spec = power_spectrogram(y, n_fft=f.n_fft, hop_length=f.hop_length, win_length=f.win_length)
    mel = mel_filterbank(sample_rate, f.n_fft, f.n_mels, f.fmin, f.fmax).astype(np.float64) @ spec
    S_db = power_to_db(mel, amin=f.amin, top_db=f.top_db).astype(np.float32)
    if not np.all(np.isfinite(S_db)):
        raise FeatureError(
            f"log-mel has {int(np.count_nonzero(~np.isfinite(S_db)))} of "
            f"{S_db.size} values NaN or infinite (peak sample "
            f"{float(np.max(np.abs(y))):.3g})"
        )
    return S_db


def waveform_to_logmel(y: np.ndarray, config: Config) -> np.ndarray:
    """Fix the clip's length (loop or zero pad, or cut) and compute its log-mel.

    Parameters
    ----------
    y : np.ndarray [shape=(n,)] mono waveform at ``config.audio.sample_rate``.

    Returns
    -------
    np.ndarray [shape=(n_mels, n_frames), dtype=float32], dB, finite (see :func:`log_mel`).

    Raises
    ------
    FeatureError
        the waveform's log-mel would not be finite.
    """
    a: AudioConfig = config.audio
    bad = int(np.count_nonzero(~np.isfinite(y)))
    if bad:  # counted here, before looping repeats them
        raise FeatureError(f"waveform has {bad} NaN or infinite samples")
    clip = fix_length(y, a.clip_samples, pad_mode=a.pad_mode)
    return log_mel(clip, sample_rate=a.sample_rate, features=config.features)


def waveform_input(y: np.ndarray, config: Config) -> np.ndarray:
    """Fix the clip's length (as :func:`waveform_to_logmel` does) and resample it to
    ``features.waveform_rate``: the input of waveform models.

    Parameters
    ----------
    y : np.ndarray [shape=(n,)] mono waveform at ``config.audio.sample_rate``.

    Returns
    -------
    np.ndarray [shape=(config.features.waveform_samples(clip_seconds),), dtype=float32],
        the clip at ``waveform_rate`` Hz, its level unchanged (waveform models
        standardise each frame themselves), every value finite.

    Raises
    ------
    FeatureError
        the waveform holds NaN or infinite samples.
    """
    a = config.audio
    bad = int(np.count_nonzero(~np.isfinite(y)))
    if bad:
        raise FeatureError(f"waveform has {bad} NaN or infinite samples")
    clip = fix_length(np.asarray(y, np.float32), a.clip_samples, pad_mode=a.pad_mode)
    rate = config.features.waveform_rate
    if rate != a.sample_rate:
        clip = resample(clip.astype(np.float64), orig_sr=a.sample_rate, target_sr=rate)
    n = config.features.waveform_samples(a.clip_seconds)
    clip = np.asarray(clip[:n], np.float32)
    if clip.shape[0] < n:  # resampling may round one sample short
        clip = np.pad(clip, (0, n - clip.shape[0]))
    if not np.all(np.isfinite(clip)):
        raise FeatureError("resampled waveform is not finite")
    return clip


def model_input(y: np.ndarray, config: Config) -> np.ndarray:
    """The model's input for one clip: the one feature function of training and prediction.

    Parameters
    ----------
    y : np.ndarray [shape=(n,)] mono waveform at ``config.audio.sample_rate``.

    Returns
    -------
    np.ndarray, float32, finite, without the channel axis: [shape=(n_mels, n_frames)]
        dB for a log-mel model, [shape=(n_samples,)] for a waveform model
        (:func:`input_shape` adds the channel axis).

    Raises
    ------
    FeatureError
        the input would not be finite.
    """
    if config.input_kind == "waveform":
        return waveform_input(y, config)
    return waveform_to_logmel(y, config)


def input_shape(config: Config) -> tuple[int, ...]:
    """Shape of one model input with its channel axis: (n_mels, n_frames, 1) for a
    log-mel model, (n_samples, 1) for a waveform model."""
    f = config.features
    if config.input_kind == "waveform":
        return (f.waveform_samples(config.audio.clip_seconds), 1)
    return (f.n_mels, f.n_frames, 1)
