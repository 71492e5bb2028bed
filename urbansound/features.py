"""The log-mel front end: one definition for training, evaluation and prediction.

``waveform_to_logmel`` is the single feature function: the Beam stage calls it
on every (possibly deformed) clip, and prediction calls it on raw audio via
``file_to_logmel``.  Mel scale is HTK (mel = 2595 log10(1 + f/700)), as in the
study, with unnormalised triangular filters.
"""
from __future__ import annotations

import functools
import os

import numpy as np

from urbansound.audio import fix_length, load_audio
from urbansound.config import AudioConfig, Config, FeatureConfig


@functools.lru_cache(maxsize=8)
def mel_filterbank(sample_rate: int, n_fft: int, n_mels: int, fmin: float,
                   fmax: float | None) -> np.ndarray:
    """HTK mel filters, shape (n_mels, 1 + n_fft // 2), float32, read-only."""
    import librosa

    fb = librosa.filters.mel(sr=sample_rate, n_fft=n_fft, n_mels=n_mels, fmin=fmin,
                             fmax=fmax, htk=True, norm=None).astype(np.float32)
    fb.setflags(write=False)
    return fb


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
        are frames of ``hop_length / sample_rate`` seconds.
    """
    import librosa

    f = features
    needed = f.n_fft + (f.n_frames - 1) * f.hop_length
    if y.shape[-1] < needed:
        raise ValueError(f"waveform has {y.shape[-1]} samples; {needed} are needed "
                         f"for {f.n_frames} frames")
    y = np.asarray(y[:needed], dtype=np.float32)
    # center=False: frame t covers samples [t*hop, t*hop + n_fft), no reflection padding.
    spec = np.abs(librosa.stft(y, n_fft=f.n_fft, hop_length=f.hop_length,
                               win_length=f.win_length, window="hann", center=False)) ** 2
    mel = mel_filterbank(sample_rate, f.n_fft, f.n_mels, f.fmin, f.fmax) @ spec
    S_db = librosa.power_to_db(mel, ref=np.max, amin=f.amin, top_db=f.top_db)
    return S_db.astype(np.float32)


def waveform_to_logmel(y: np.ndarray, config: Config) -> np.ndarray:
    """Fix the clip's length (loop or zero pad, or cut) and compute its log-mel.

    Parameters
    ----------
    y : np.ndarray [shape=(n,)] mono waveform at ``config.audio.sample_rate``.

    Returns
    -------
    np.ndarray [shape=(n_mels, n_frames), dtype=float32], dB (see :func:`log_mel`).
    """
    a: AudioConfig = config.audio
    clip = fix_length(y, a.clip_samples, pad_mode=a.pad_mode)
    return log_mel(clip, sample_rate=a.sample_rate, features=config.features)


def file_to_logmel(path: str | os.PathLike, config: Config) -> np.ndarray:
    """Decode any audio file and compute the model's input features.

    Returns
    -------
    np.ndarray [shape=(n_mels, n_frames), dtype=float32]
    """
    return waveform_to_logmel(load_audio(path, sample_rate=config.audio.sample_rate), config)
