"""Audio I/O: decode any clip to mono float32 at one sample rate, and fix its length.

This is the only module that reads audio files.  Decoding uses soundfile
(libsndfile: WAV 8/16/24/32-bit, float, IMA/MS ADPCM, FLAC, OGG, MP3) rather
than tensorflow-io, whose last release cannot load its ops on TensorFlow >= 2.18.
Every failure raises :class:`AudioError` naming the file and the reason.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

MIN_SECONDS = 0.02
"""Clips shorter than this (20 ms, under one 23 ms analysis window) are rejected."""


class AudioError(Exception):
    """A clip cannot be used.  ``str()`` reads ``"<path>: <reason>"``."""

    def __init__(self, path: str | os.PathLike, reason: str):
        super().__init__(f"{path}: {reason}")
        self.path = str(path)
        self.reason = reason


def load_audio(path: str | os.PathLike, *, sample_rate: int = 22050) -> np.ndarray:
    """Decode ``path`` to a mono waveform at ``sample_rate``.

    Parameters
    ----------
    path : file of any format libsndfile reads (the extension is not trusted).
    sample_rate : target rate in Hz; the clip is mixed down to mono (mean of
        channels) and resampled with soxr (high quality).

    Returns
    -------
    y : np.ndarray [shape=(n,), dtype=float32], amplitude in [-1, 1] for PCM.

    Raises
    ------
    AudioError
        empty or undecodable file, no samples, non-finite samples, all-zero
        signal, or shorter than :data:`MIN_SECONDS`.
    """
    import soundfile as sf

    path = Path(path)
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise AudioError(path, f"cannot read file ({exc.strerror or exc})") from None
    if size == 0:
        raise AudioError(path, "empty file (0 bytes)")
    try:
        data, native_rate = sf.read(str(path), dtype="float32", always_2d=True)
    except Exception as exc:  # libsndfile reports every decode failure as one of several types
        raise AudioError(path, f"cannot decode audio ({_first_line(exc)})") from None
    return prepare_waveform(data, native_rate, sample_rate=sample_rate, source=path)


def prepare_waveform(data: np.ndarray, native_rate: int, *, sample_rate: int,
                     source: str | os.PathLike = "<array>") -> np.ndarray:
    """Validate, mix down and resample decoded samples.

    Parameters
    ----------
    data : np.ndarray [shape=(n,) or (n, channels)] samples, float.
    native_rate : the samples' rate in Hz.
    sample_rate : target rate in Hz.
    source : name used in error messages.

    Returns
    -------
    y : np.ndarray [shape=(m,), dtype=float32], m = round(n * sample_rate / native_rate).
    """
    data = np.asarray(data, dtype=np.float32)
    if data.ndim == 1:
        data = data[:, None]
    if data.shape[0] == 0 or data.shape[1] == 0:
        raise AudioError(source, "no audio samples")
    if native_rate <= 0:
        raise AudioError(source, f"invalid sample rate {native_rate}")
    if not np.all(np.isfinite(data)):
        raise AudioError(source, "contains NaN or infinite samples")
    duration = data.shape[0] / native_rate
    if duration < MIN_SECONDS:
        raise AudioError(source, f"too short ({duration * 1000:.1f} ms < {MIN_SECONDS * 1000:.0f} ms)")
    y = data.mean(axis=1)  # mono: mean of channels keeps the PCM range
    if not np.any(y):
        raise AudioError(source, "silent (every sample is zero)")
    if native_rate != sample_rate:
        import librosa

        y = librosa.resample(y, orig_sr=native_rate, target_sr=sample_rate, res_type="soxr_hq")
    return np.ascontiguousarray(y, dtype=np.float32)


def fix_length(y: np.ndarray, n_samples: int, *, pad_mode: str = "loop") -> np.ndarray:
    """Cut or pad a waveform to exactly ``n_samples``.

    Longer clips keep their first ``n_samples``.  Shorter clips are repeated
    end to end (``pad_mode="loop"``) or padded with zeros (``"zeros"``).

    Parameters
    ----------
    y : np.ndarray [shape=(n,)] waveform, n >= 1.
    n_samples : target length in samples.
    pad_mode : ``"loop"`` or ``"zeros"``.

    Returns
    -------
    np.ndarray [shape=(n_samples,), dtype=float32]
    """
    y = np.asarray(y, dtype=np.float32)
    if y.ndim != 1 or y.size == 0:
        raise ValueError(f"fix_length needs a non-empty 1-D waveform, got shape {y.shape}")
    if y.size >= n_samples:
        return y[:n_samples].copy()
    if pad_mode == "loop":
        reps = -(-n_samples // y.size)
        return np.tile(y, reps)[:n_samples]
    if pad_mode == "zeros":
        return np.pad(y, (0, n_samples - y.size))
    raise ValueError(f"pad_mode must be 'loop' or 'zeros', not {pad_mode!r}")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0][:200]
