"""Built-in synthetic UrbanSound8K-style dataset (no download needed).

Role in the package
-------------------
This module writes a small, fully deterministic stand-in for the UrbanSound8K
dataset, in the *exact* on-disk layout of the real one, so that every stage of
the pipeline (metadata parsing, fold-wise splitting, audio loading and
resampling, feature extraction, training, evaluation) can run end to end
without the 6 GB download::

    ROOT/audio/fold<k>/<fsID>-<classID>-<occurrenceID>-<sliceID>.wav
    ROOT/metadata/UrbanSound8K.csv
        slice_file_name,fsID,start,end,salience,fold,classID,class

The ten classes are synthesised so that they differ the way the real classes
do (tonal vs. broadband, stationary vs. impulsive, sweeping vs. steady pitch,
low vs. high frequency), with every physical parameter (frequency, rate,
level, onset, number of events, timbre) randomised per clip and a little
background noise in every clip, so that a classifier has to generalise
rather than memorise.

The file formats are mixed as in the real dataset: several sample rates,
mono and stereo, 8/16/24-bit PCM and 32-bit float WAV, and some clips shorter
than 4 s.

Only numpy, soundfile and the standard library are used; nothing happens at
import time.
"""

from __future__ import annotations

import csv
import functools
import io
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypedDict

import numpy as np
import soundfile as sf

__all__ = [
    "CLASS_NAMES",
    "CSV_COLUMNS",
    "synthesize_clip",
    "write_demo_dataset",
]

from urbansound.config import CLASS_NAMES
from urbansound.dataset import REQUIRED_COLUMNS as CSV_COLUMNS

# File-format distributions (roughly those of the real dataset, where 44.1 and
# 48 kHz dominate and 16-bit PCM is the most common sample format).
_SAMPLE_RATES = (8000, 11025, 16000, 22050, 44100, 48000, 96000)
_SAMPLE_RATE_P = (0.03, 0.03, 0.04, 0.05, 0.50, 0.27, 0.08)
_SUBTYPES = ("PCM_16", "PCM_24", "PCM_U8", "FLOAT")
_SUBTYPE_P = (0.62, 0.28, 0.04, 0.06)
_P_STEREO = 0.30
_P_SHORT = 0.20  # clips shorter than the nominal 4 s
_P_BACKGROUND = 0.35  # salience 2
_SLICE_S = 4.0

_TWO_PI = 2.0 * math.pi
_TABLE_SIZE = 4096


# ---------------------------------------------------------------------------
# Signal-building helpers (all float64, mono, length n)
# ---------------------------------------------------------------------------


def _next_pow2(n: int) -> int:
    return 1 << max(1, int(n - 1).bit_length())


def _colored_noise(
    n: int,
    sr: int,
    rng: np.random.Generator,
    *,
    slope_db_oct: float = 0.0,
    lo_hz: float | None = None,
    hi_hz: float | None = None,
    order: int = 2,
) -> np.ndarray:
    """Gaussian noise with a power-law spectrum and Butterworth-like band edges.

    Parameters
    ----------
    n : int
        Number of samples.
    sr : int
        Sample rate in Hz.
    rng : numpy.random.Generator
        Random source.
    slope_db_oct : float
        Spectral tilt of the amplitude spectrum in dB per octave
        (0 = white, -3 = pink, -6 = brown).
    lo_hz, hi_hz : float or None
        High-pass / low-pass corner frequencies in Hz (None = no edge).
    order : int
        Order of the (magnitude-only) Butterworth edges.

    Returns
    -------
    numpy.ndarray
        Shape ``(n,)``, float64, unit RMS (zero if ``n == 0``).
    """
    if n <= 0:
        return np.zeros(0)
    m = _next_pow2(n)  # fast FFT length; circular noise is still stationary
    k = m // 2 + 1
    # Random spectrum with independent, zero-mean real/imaginary parts; its
    # inverse FFT is (by the central limit theorem) Gaussian white noise.
    # Uniform draws in float32 are several times cheaper than normal ones.
    spec = (rng.random((k, 2), dtype=np.float32) - np.float32(0.5)).view(np.complex64)[:, 0]
    f32 = np.float32
    log_f = np.log(np.maximum(np.arange(k, dtype=f32) * f32(sr / m), f32(1.0)))
    gain = np.exp(f32(slope_db_oct / (20.0 * math.log10(2.0))) * (log_f - f32(math.log(1000.0))))
    if lo_hz:  # |H|^2 = 1 / (1 + (lo/f)^(2N))
        gain /= np.sqrt(f32(1.0) + np.exp(f32(2 * order) * (f32(math.log(lo_hz)) - log_f)))
    if hi_hz:  # |H|^2 = 1 / (1 + (f/hi)^(2N))
        gain /= np.sqrt(f32(1.0) + np.exp(f32(2 * order) * (log_f - f32(math.log(hi_hz)))))
    gain[0] = 0.0
    x = np.fft.irfft(spec * gain, m)[:n].astype(np.float64)
    rms = float(np.sqrt(np.mean(x * x)))
    return x / rms if rms > 0 else x


def _harmonic(
    f0: float | np.ndarray,
    n: int,
    sr: int,
    amps: Sequence[float] | np.ndarray,
    rng: np.random.Generator,
) -> np.ndarray:
    """Band-limited harmonic tone(s) with (optionally) time-varying pitch.

    Parameters
    ----------
    f0 : float or numpy.ndarray
        Fundamental frequency in Hz, scalar or per-sample array of shape (n,).
    n : int
        Number of samples.
    sr : int
        Sample rate in Hz.
    amps : sequence of float, or array of shape (n_timbres, n_harmonics)
        Amplitude of harmonic k+1 at index k. Harmonics whose highest
        instantaneous frequency exceeds 0.45 * sr are dropped (as an
        anti-aliasing resampler would). A 2-D array renders several timbres
        that share one pitch track and phase (cheaper than separate calls).
    rng : numpy.random.Generator
        Random source for the start phase and per-harmonic phases.

    Returns
    -------
    numpy.ndarray
        float32, unnormalised; shape ``(n,)`` for 1-D ``amps``, else
        ``(n_timbres, n)``.
    """
    a2 = np.atleast_2d(np.asarray(amps, dtype=np.float64))
    if n <= 0:
        return np.zeros((a2.shape[0], 0) if np.ndim(amps) == 2 else 0, dtype=np.float32)
    f = np.broadcast_to(np.asarray(f0, dtype=np.float64), (n,))
    phi0 = rng.uniform(0.0, 1.0)
    hphase = rng.uniform(0.0, _TWO_PI, size=int(a2.shape[1]))
    # Wavetable: one period of the harmonic waveform, read at the running
    # phase -> cost independent of the number of harmonics.
    n_ok = int(np.sum(np.arange(1, a2.shape[1] + 1) * float(f.max()) < 0.45 * sr))
    x = np.arange(_TABLE_SIZE + 1) * (_TWO_PI / _TABLE_SIZE)
    k = np.arange(1, n_ok + 1)
    basis = np.cos(np.outer(k, x) + hphase[:n_ok, None])  # (n_ok, T+1)
    tables = (a2[:, :n_ok] @ basis).astype(np.float32)  # (n_timbres, T+1)
    cycles = np.cumsum(f) / sr + phi0
    pos = ((cycles - np.floor(cycles)) * _TABLE_SIZE).astype(np.float32)
    i = pos.astype(np.intp)
    np.minimum(i, _TABLE_SIZE - 1, out=i)
    frac = pos - i.astype(np.float32)
    lo = tables[:, i]
    out = lo + frac * (tables[:, i + 1] - lo)
    return out if np.ndim(amps) == 2 else out[0]


def _env_segment(
    sr: int,
    t0: float,
    dur: float,
    *,
    attack: float,
    release: float,
    decay_tau: float | None = None,
) -> tuple[int, np.ndarray]:
    """One envelope segment starting at sample ``round(t0 * sr)``.

    Raised-cosine attack and release ramps (seconds); if ``decay_tau``
    (seconds) is given the body decays exponentially instead of holding at 1.
    Returns ``(i0, seg)`` with ``seg`` of shape ``(round(dur * sr),)`` in [0, 1].
    """
    i0 = int(round(t0 * sr))
    length = max(0, int(round((t0 + dur) * sr)) - i0)
    seg = np.ones(length)
    if decay_tau is not None:
        seg = np.exp(-np.maximum(np.arange(length) / sr - attack, 0.0) / decay_tau)
    na = min(length, int(round(attack * sr)))
    if na > 0:
        seg[:na] *= 0.5 - 0.5 * np.cos(np.pi * (np.arange(na) + 0.5) / na)
    nr = min(length, int(round(release * sr)))
    if nr > 0:
        seg[length - nr :] *= 0.5 + 0.5 * np.cos(np.pi * (np.arange(nr) + 0.5) / nr)
    return i0, seg


def _add_env(
    env: np.ndarray,
    sr: int,
    t0: float,
    dur: float,
    *,
    attack: float,
    release: float,
    gain: float = 1.0,
    decay_tau: float | None = None,
) -> np.ndarray:
    """Add ``gain`` times :func:`_env_segment` into ``env`` (shape (n,)) in place.

    Times are in seconds from ``env``'s first sample; parts outside the
    array are cut off. Returns ``env``.
    """
    i0, seg = _env_segment(sr, t0, dur, attack=attack, release=release, decay_tau=decay_tau)
    _add_at(env, i0, gain * seg)
    return env


def _add_at(dst: np.ndarray, i0: int, seg: np.ndarray) -> None:
    """``dst[i0:i0+len(seg)] += seg``, clipped to the bounds of ``dst``."""
    a = max(0, i0)
    b = min(dst.shape[0], i0 + seg.shape[0])
    if b > a:
        dst[a:b] += seg[a - i0 : b - i0]


def _slow_wobble(
    n: int, sr: int, rng: np.random.Generator, *, rate_hz: tuple[float, float]
) -> np.ndarray:
    """Smooth zero-mean random contour in [-1, 1] (sum of two slow sinusoids).

    Returns shape (n,) float32 (plenty of precision for a control signal).
    """
    t = np.arange(n, dtype=np.float32) * np.float32(_TWO_PI / sr)
    r = rng.uniform(*rate_hz, size=2).astype(np.float32)
    p = rng.uniform(0, _TWO_PI, size=2).astype(np.float32)
    return np.float32(0.6) * np.sin(r[0] * t + p[0]) + np.float32(0.4) * np.sin(r[1] * t + p[1])


def _place_events(
    rng: np.random.Generator,
    dur_total: float,
    durations: Sequence[float],
    gap: tuple[float, float],
) -> list[tuple[float, float]]:
    """Place events one after another at irregular times inside the clip.

    The first event always fits (its length is clipped to the clip); later
    events that would run past the end are dropped. Returns (onset, length)
    pairs in seconds.
    """
    out: list[tuple[float, float]] = []
    durs = [min(float(d), 0.9 * dur_total) for d in durations]
    span = sum(durs) + gap[0] * (len(durs) - 1)  # shortest span of all events
    latest = dur_total - span if span < dur_total else dur_total - durs[0]
    t = rng.uniform(0.0, latest) if latest > 0 else 0.0
    for d in durs:
        if t + d > dur_total:
            break
        out.append((t, d))
        t += d + rng.uniform(*gap)
    return out


def _active_segments(
    rng: np.random.Generator, dur: float, p_continuous: float
) -> list[tuple[float, float]]:
    """On/off segments for machine-like sources: whole clip, or 1-3 bursts."""
    if rng.random() < p_continuous or dur < 1.0:
        return [(0.0, dur)]
    k = int(rng.integers(1, 4))
    lens = list(rng.uniform(0.4, max(0.5, dur / k), size=k))
    return _place_events(rng, dur, lens, gap=(0.2, 0.8))


# ---------------------------------------------------------------------------
# One generator per class. Signature: (n, sr, rng) -> float64 array (n,)
# ---------------------------------------------------------------------------


def _air_conditioner(n: int, sr: int, rng: np.random.Generator) -> np.ndarray:
    t = np.arange(n) / sr
    noise = _colored_noise(
        n,
        sr,
        rng,
        slope_db_oct=rng.uniform(-5.0, -2.0),
        lo_hz=rng.uniform(30.0, 80.0),
        hi_hz=rng.uniform(600.0, 3000.0),
    )
    mains = 50.0 if rng.random() < 0.5 else 60.0
    hum_amps = [rng.uniform(0.3, 1.0) * (1.0 if k % 2 else 0.4) / k**0.7 for k in range(1, 11)]
    hum = _harmonic(mains * (1 + 0.002 * rng.standard_normal()), n, sr, hum_amps, rng)
    hum /= np.sqrt(np.mean(hum**2)) + 1e-12
    blade = rng.uniform(80.0, 300.0)
    fan = _harmonic(blade, n, sr, [1.0, rng.uniform(0.2, 0.6), rng.uniform(0.0, 0.3)], rng)
    fan /= np.sqrt(np.mean(fan**2)) + 1e-12
    drift = 1.0 + 0.03 * np.sin(_TWO_PI * rng.uniform(0.1, 0.5) * t + rng.uniform(0, _TWO_PI))
    return drift * (noise + rng.uniform(0.2, 0.6) * hum + rng.uniform(0.05, 0.3) * fan)


def _car_horn(n: int, sr: int, rng: np.random.Generator) -> np.ndarray:
    dur = n / sr
    f0 = rng.uniform(300.0, 500.0)
    tilt = rng.uniform(0.4, 1.0)
    amps = [rng.uniform(0.6, 1.0) / k**tilt for k in range(1, 13)]
    tone = _harmonic(
        f0 * (1 + 0.003 * _slow_wobble(n, sr, rng, rate_hz=(2.0, 6.0))), n, sr, amps, rng
    )
    if rng.random() < 0.5:  # dual-tone horn, roughly a major third up
        tone += rng.uniform(0.5, 1.0) * _harmonic(f0 * rng.uniform(1.2, 1.3), n, sr, amps, rng)
    n_honks = 1 if rng.random() < 0.6 else 2
    lens = list(rng.uniform(0.3, 2.0, size=n_honks))
    env = np.zeros(n)
    for t0, d in _place_events(rng, dur, lens, gap=(0.1, 0.6)):
        _add_env(env, sr, t0, d, attack=rng.uniform(0.005, 0.02), release=rng.uniform(0.02, 0.06))
    return tone * env


def _formant_gain(freq: np.ndarray, formants: Sequence[float], bw: float) -> np.ndarray:
    g = np.full_like(freq, 0.03)
    for i, fm in enumerate(formants):
        g += (0.8**i) / (1.0 + ((freq - fm) / bw) ** 2)
    return g


def _children_playing(n: int, sr: int, rng: np.random.Generator) -> np.ndarray:
    dur = n / sr
    out = np.zeros(n)
    n_voices = int(rng.integers(3, 7))
    for _ in range(n_voices):
        f0c = rng.uniform(250.0, 450.0)
        contour = f0c * (
            1.0 + rng.uniform(0.05, 0.15) * _slow_wobble(n, sr, rng, rate_hz=(0.5, 3.0))
        )
        k = np.arange(1, int(5000.0 // f0c) + 1)
        amps = np.empty((2, len(k)))
        for v in range(2):  # two vowel colours per voice
            formants = (
                rng.uniform(500.0, 1000.0),
                rng.uniform(1200.0, 2800.0),
                rng.uniform(2900.0, 3800.0),
            )
            amps[v] = _formant_gain(k * f0c, formants, bw=rng.uniform(100.0, 220.0)) / np.sqrt(k)
        vowels = _harmonic(contour, n, sr, amps, rng)
        # syllables: random on/off envelopes, mixing the two vowel colours
        env_a = np.zeros(n)
        env_b = np.zeros(n)
        t = rng.uniform(-0.2, 0.6)
        while t < dur:
            d = rng.uniform(0.08, 0.35)
            g = rng.uniform(0.3, 1.0)
            w = rng.random()
            i0, seg = _env_segment(sr, t, d, attack=0.02, release=0.04)
            _add_at(env_a, i0, (g * w) * seg)
            _add_at(env_b, i0, (g * (1.0 - w)) * seg)
            t += d + rng.uniform(0.05, 0.5)
        out += rng.uniform(0.4, 1.0) * (vowels[0] * env_a + vowels[1] * env_b)
    # breathy playground noise
    breath = _colored_noise(n, sr, rng, slope_db_oct=-3.0, lo_hz=300.0, hi_hz=5000.0)
    level = np.sqrt(np.mean(out**2)) + 1e-9
    return out + rng.uniform(0.05, 0.2) * level * breath


def _dog_bark(n: int, sr: int, rng: np.random.Generator) -> np.ndarray:
    dur = n / sr
    out = np.zeros(n)
    n_barks = int(rng.integers(1, 5))
    lens = list(rng.uniform(0.1, 0.3, size=n_barks))
    tilt = rng.uniform(0.6, 1.2)
    f_base = rng.uniform(400.0, 1000.0)  # one dog -> similar pitch for all barks
    for t0, d in _place_events(rng, dur, lens, gap=(0.1, 0.9)):
        i0 = int(round(t0 * sr))
        m = min(n - i0, int(round(d * sr)))
        if m <= 8:
            continue
        tt = np.arange(m) / sr
        f_start = f_base * rng.uniform(0.9, 1.1)
        fall = rng.uniform(0.55, 0.85)
        rise = 1.0 + rng.uniform(0.0, 0.15) * np.exp(-tt / 0.015)
        f_inst = f_start * rise * (fall + (1 - fall) * np.exp(-tt / (0.4 * d)))
        k = np.arange(1, int(6000.0 // f_start) + 2)
        amps = (
            _formant_gain(
                k * f_start, (rng.uniform(900.0, 1800.0), rng.uniform(2200.0, 3500.0)), 400.0
            )
            / k**tilt
        )
        voiced = _harmonic(f_inst, m, sr, list(amps), rng)
        voiced /= np.max(np.abs(voiced)) + 1e-12
        rough = _colored_noise(m, sr, rng, lo_hz=500.0, hi_hz=4000.0) * 0.15
        env = _add_env(
            np.zeros(m),
            sr,
            0.0,
            d,
            attack=rng.uniform(0.005, 0.015),
            release=0.02,
            decay_tau=rng.uniform(0.3, 0.6) * d,
        )
        out[i0 : i0 + m] += rng.uniform(0.6, 1.0) * env * (voiced + rough)
    return out


def _drilling(n: int, sr: int, rng: np.random.Generator) -> np.ndarray:
    dur = n / sr
    t = np.arange(n) / sr
    f0 = rng.uniform(1500.0, 4000.0)
    wob = 0.02 * _slow_wobble(n, sr, rng, rate_hz=(0.3, 2.0))
    vib = 0.005 * np.sin(_TWO_PI * rng.uniform(5.0, 15.0) * t + rng.uniform(0, _TWO_PI))
    f_inst = f0 * (1.0 + wob + vib)
    env = np.zeros(n)
    spin = np.ones(n)
    for t0, d in _active_segments(rng, dur, p_continuous=0.7):
        _add_env(env, sr, t0, d, attack=rng.uniform(0.01, 0.1), release=rng.uniform(0.03, 0.15))
        if t0 > 0:  # motor spins up when it starts inside the clip
            ramp = np.clip((t - t0) / rng.uniform(0.1, 0.3), 0.0, 1.0)
            spin = np.where(t >= t0, 0.6 + 0.4 * ramp, spin)
    f_inst = f_inst * spin
    amps = [1.0, rng.uniform(0.3, 0.6), rng.uniform(0.1, 0.3), rng.uniform(0.05, 0.15)]
    whine = _harmonic(f_inst, n, sr, amps, rng)
    sub = _harmonic(f_inst / rng.choice([2.0, 3.0, 4.0]), n, sr, [1.0, 0.5, 0.3], rng)
    grind = _colored_noise(
        n, sr, rng, lo_hz=rng.uniform(800.0, 1500.0), hi_hz=rng.uniform(5000.0, 9000.0)
    )
    load = 1.0 + 0.2 * np.sin(_TWO_PI * rng.uniform(3.0, 12.0) * t + rng.uniform(0, _TWO_PI))
    return load * (whine + rng.uniform(0.1, 0.3) * sub + rng.uniform(0.2, 0.5) * grind) * env


def _engine_idling(n: int, sr: int, rng: np.random.Generator) -> np.ndarray:
    f_fire = rng.uniform(20.0, 60.0)
    f_inst = f_fire * (1.0 + 0.02 * _slow_wobble(n, sr, rng, rate_hz=(0.2, 1.5)))
    n_h = int(1500.0 // f_fire)
    tilt = rng.uniform(0.8, 1.4)
    amps = [rng.uniform(0.4, 1.0) / k**tilt for k in range(1, n_h + 1)]
    rumble = _harmonic(f_inst, n, sr, amps, rng)
    rumble /= np.sqrt(np.mean(rumble**2)) + 1e-12
    # firing-rate amplitude modulation of low-passed mechanical noise
    cycles = np.cumsum(f_inst) / sr
    am = 1.0 + rng.uniform(0.4, 0.9) * np.cos(_TWO_PI * cycles)
    lp = _colored_noise(
        n, sr, rng, slope_db_oct=-2.0, lo_hz=20.0, hi_hz=rng.uniform(200.0, 600.0), order=3
    )
    return rumble + rng.uniform(0.3, 0.7) * am * lp


def _gun_shot(n: int, sr: int, rng: np.random.Generator) -> np.ndarray:
    dur = n / sr
    mode = rng.random()
    if mode < 0.6:
        n_shots, gap = 1, (0.2, 1.0)
    elif mode < 0.85:
        n_shots, gap = int(rng.integers(2, 4)), (0.15, 1.0)
    else:  # automatic fire
        n_shots = int(rng.integers(3, 9))
        period = 1.0 / rng.uniform(8.0, 15.0)
        gap = (period * 0.9, period * 1.1)
    taus = rng.uniform(0.05, 0.3, size=n_shots)
    lens = [min(dur, 6 * tau) if n_shots == 1 else 0.002 for tau in taus]
    events = _place_events(rng, dur, lens, gap=gap)
    crack = _colored_noise(
        n,
        sr,
        rng,
        slope_db_oct=rng.uniform(-3.0, -1.0),
        lo_hz=80.0,
        hi_hz=rng.uniform(3000.0, 9000.0),
    )
    tail = _colored_noise(
        n, sr, rng, slope_db_oct=-3.0, lo_hz=60.0, hi_hz=rng.uniform(800.0, 2000.0)
    )
    f_boom = rng.uniform(50.0, 120.0)
    env_c = np.zeros(n)
    env_t = np.zeros(n)
    boom = np.zeros(n)
    for (t0, _), tau in zip(events, taus):
        i0 = int(round(t0 * sr))
        rel = np.arange(n - i0) / sr
        att = np.clip(rel / rng.uniform(0.0005, 0.002), 0.0, 1.0)
        a = rng.uniform(0.7, 1.0)
        env_c[i0:] += a * att * np.exp(-rel / tau)
        env_t[i0:] += a * att * np.exp(-rel / rng.uniform(0.3, 0.8))
        boom[i0:] += a * np.sin(_TWO_PI * f_boom * rel) * np.exp(-rel / (0.7 * tau))
    return env_c * crack + rng.uniform(0.05, 0.15) * env_t * tail + rng.uniform(1.0, 3.0) * boom


def _jackhammer(n: int, sr: int, rng: np.random.Generator) -> np.ndarray:
    dur = n / sr
    rate = rng.uniform(10.0, 20.0)
    tau = rng.uniform(0.15, 0.45) / rate
    ring_f = rng.uniform(800.0, 2500.0)
    noise = _colored_noise(
        n,
        sr,
        rng,
        slope_db_oct=-2.0,
        lo_hz=rng.uniform(150.0, 400.0),
        hi_hz=rng.uniform(3000.0, 8000.0),
    )
    ring = _harmonic(ring_f, n, sr, [1.0], rng)
    env = np.zeros(n)
    env_ring = np.zeros(n)
    imp_len = int(round(min(6 * tau, 1.0 / rate) * sr))
    k_t = np.arange(imp_len) / sr
    kernel = (1.0 - np.exp(-k_t / 0.001)) * np.exp(-k_t / tau)
    kernel_r = (1.0 - np.exp(-k_t / 0.001)) * np.exp(-k_t / (2.0 * tau))
    for t0, d in _active_segments(rng, dur, p_continuous=0.6):
        tk = t0 + rng.uniform(0.0, 1.0 / rate)
        while tk < t0 + d:
            i = int(round(tk * sr))
            m = min(imp_len, n - i)
            if m <= 0:
                break
            a = rng.uniform(0.7, 1.0)
            env[i : i + m] += a * kernel[:m]
            env_ring[i : i + m] += a * kernel_r[:m]
            tk += (1.0 / rate) * (1.0 + 0.03 * rng.standard_normal())
    hum = _harmonic(rng.uniform(30.0, 80.0), n, sr, [1.0, 0.5, 0.3], rng)  # compressor
    return env * noise + rng.uniform(0.1, 0.3) * env_ring * ring + rng.uniform(0.02, 0.1) * hum


def _siren(n: int, sr: int, rng: np.random.Generator) -> np.ndarray:
    t = np.arange(n) / sr
    f_lo = rng.uniform(600.0, 900.0)
    f_hi = rng.uniform(max(f_lo + 300.0, 1000.0), 1500.0)
    period = rng.uniform(0.5, 3.0)
    ph = _TWO_PI * t / period + rng.uniform(0, _TWO_PI)
    if rng.random() < 0.5:
        shape = 0.5 - 0.5 * np.cos(ph)  # wail (sinusoidal)
    else:
        shape = np.abs(((ph / _TWO_PI) % 1.0) * 2.0 - 1.0)  # yelp-like triangle
    doppler = 1.0 + rng.uniform(-0.03, 0.03) * (t / max(t[-1], 1e-9) - 0.5)
    f_inst = (f_lo + (f_hi - f_lo) * shape) * doppler
    amps = [1.0, rng.uniform(0.2, 0.5), rng.uniform(0.05, 0.2)]
    tone = _harmonic(f_inst, n, sr, amps, rng)
    swell = 1.0 + rng.uniform(-0.4, 0.4) * (t / max(t[-1], 1e-9) - 0.5)  # approaching / leaving
    return swell * tone


_SCALES = ((0, 2, 4, 7, 9), (0, 3, 5, 7, 10), (0, 2, 4, 5, 7, 9, 11), (0, 2, 3, 5, 7, 8, 10))


def _street_music(n: int, sr: int, rng: np.random.Generator) -> np.ndarray:
    dur = n / sr
    out = np.zeros(n)
    beat = 60.0 / rng.uniform(80.0, 150.0)
    offset = -rng.uniform(0.0, beat)
    root = rng.uniform(150.0, 400.0)
    scale = _SCALES[int(rng.integers(len(_SCALES)))]
    pitches = [root * 2.0 ** ((o * 12 + s) / 12.0) for o in (0, 1) for s in scale]
    tilt = rng.uniform(0.5, 1.5)
    timbre = [rng.uniform(0.5, 1.0) / k**tilt for k in range(1, 9)]
    pluck = rng.random() < 0.5
    # melody: random walk over the scale
    deg = int(rng.integers(len(pitches)))
    t = offset
    while t < dur:
        d = float(np.clip(beat * rng.choice([0.5, 0.5, 1.0, 1.0, 1.5]), 0.15, 0.5))
        if t + d > 0 and rng.random() > 0.1:  # occasional rest
            i0 = max(0, int(round(t * sr)))
            m = min(n - i0, int(round((t + d) * sr)) - i0)
            if m > 8:
                tone = _harmonic(pitches[deg], m, sr, timbre, rng)
                env = _add_env(
                    np.zeros(m),
                    sr,
                    t - i0 / sr,
                    d,
                    attack=rng.uniform(0.005, 0.03),
                    release=0.03,
                    decay_tau=(d * 0.5 if pluck else None),
                )
                out[i0 : i0 + m] += rng.uniform(0.6, 1.0) * tone * env
        deg = int(np.clip(deg + rng.integers(-2, 3), 0, len(pitches) - 1))
        t += d
    # beat: kick on every beat, hi-hat on off-beats, optional bass
    tt = np.arange(n) / sr
    with_bass = rng.random() < 0.6
    kick_amp = rng.uniform(0.5, 1.0)
    hat = _colored_noise(n, sr, rng, lo_hz=min(6000.0, 0.3 * sr), order=4)
    hat_env = np.zeros(n)
    b = offset
    i_beat = 0
    while b < dur:
        if b >= 0:
            rel = tt - b
            on = (rel >= 0) & (rel < 0.3)
            r = rel[on]
            f_k = 50.0 + 70.0 * np.exp(-r / 0.03)
            out[on] += kick_amp * np.sin(_TWO_PI * np.cumsum(f_k) / sr) * np.exp(-r / 0.08)
            if with_bass and i_beat % 2 == 0:
                m = min(n - int(round(b * sr)), int(round(beat * sr)))
                if m > 8:
                    i0 = int(round(b * sr))
                    bass = _harmonic(root / 2.0, m, sr, [1.0, 0.4, 0.2], rng)
                    out[i0 : i0 + m] += (
                        0.4
                        * bass
                        * _add_env(
                            np.zeros(m), sr, 0.0, m / sr, attack=0.01, release=0.03, decay_tau=beat
                        )
                    )
        h = b + beat / 2.0
        if 0 <= h < dur:
            _add_env(hat_env, sr, h, 0.08, attack=0.001, release=0.01, decay_tau=0.02)
        b += beat
        i_beat += 1
    return out + rng.uniform(0.05, 0.2) * hat * hat_env


_GENERATORS: tuple[Callable[[int, int, np.random.Generator], np.ndarray], ...] = (
    _air_conditioner,
    _car_horn,
    _children_playing,
    _dog_bark,
    _drilling,
    _engine_idling,
    _gun_shot,
    _jackhammer,
    _siren,
    _street_music,
)


# ---------------------------------------------------------------------------
# Mixing and public API
# ---------------------------------------------------------------------------


def _loud_rms(x: np.ndarray, sr: int) -> float:
    """RMS of the loud part of a signal: 90th percentile of 50 ms frame RMS."""
    frame = max(1, int(0.05 * sr))
    k = len(x) // frame
    if k < 2:
        return float(np.sqrt(np.mean(x**2)))
    fr = np.sqrt(np.mean(x[: k * frame].reshape(k, frame) ** 2, axis=1))
    return float(np.percentile(fr, 90))


def _render(
    class_id: int,
    *,
    sr: int,
    n: int,
    rng: np.random.Generator,
    salience: int,
    channels: int,
) -> np.ndarray:
    """Synthesise one clip as float32 of shape (n, channels), peak <= 0.9."""
    src = _GENERATORS[class_id](n, sr, rng)
    src = src / (np.max(np.abs(src)) + 1e-12)
    loud = _loud_rms(src, sr) + 1e-9
    if salience == 1:
        snr_db = rng.uniform(15.0, 35.0)
        peak = rng.uniform(0.3, 0.9)
    else:
        snr_db = rng.uniform(3.0, 15.0)
        peak = rng.uniform(0.08, 0.35)
    noise_rms = loud * 10.0 ** (-snr_db / 20.0)
    noise = functools.partial(  # one noise colour for both channels
        _colored_noise,
        slope_db_oct=rng.uniform(-6.0, -2.0),
        lo_hz=rng.uniform(20.0, 40.0),
        hi_hz=rng.uniform(2000.0, 10000.0),
    )
    bg = noise(n, sr, rng)
    chans = [src + noise_rms * bg]
    if channels == 2:
        delay = int(rng.integers(0, max(1, int(0.0005 * sr)) + 1))
        gain = rng.uniform(0.7, 1.0)
        rho = rng.uniform(0.3, 0.9)
        shifted = np.concatenate([np.zeros(delay), src[: n - delay]]) if delay else src
        bg2 = rho * bg + math.sqrt(1.0 - rho * rho) * noise(n, sr, rng)
        chans.append(gain * shifted + noise_rms * bg2)
    out = np.stack(chans, axis=1)
    out *= peak / (np.max(np.abs(out)) + 1e-12)
    return out.astype(np.float32)


def synthesize_clip(
    class_id: int,
    *,
    sr: int = 22050,
    duration_s: float = 4.0,
    rng: np.random.Generator,
    salience: int = 1,
) -> np.ndarray:
    """Synthesise one mono clip of an UrbanSound8K class.

    Parameters
    ----------
    class_id : int
        UrbanSound8K ``classID`` in 0..9 (see :data:`CLASS_NAMES`).
    sr : int, default 22050
        Sample rate in Hz. Partials above 0.45 * sr are omitted, as a
        band-limiting resampler would.
    duration_s : float, default 4.0
        Clip length in seconds.
    rng : numpy.random.Generator
        Source of all randomness (frequencies, rates, levels, onsets,
        background noise); the same generator state gives the same clip.
    salience : {1, 2}, default 1
        1 = foreground (louder, 15-35 dB above the background noise),
        2 = background (quieter, only 3-15 dB above the noise).

    Returns
    -------
    numpy.ndarray
        float32 waveform, shape ``(round(sr * duration_s),)``, amplitude in
        linear full-scale units (1.0 = digital full scale); the peak is
        0.3-0.9 for salience 1 and 0.08-0.35 for salience 2.
    """
    class_id = _check_class_id(class_id)
    if sr <= 0:
        raise ValueError(f"sr must be positive, got {sr}")
    if not duration_s > 0:
        raise ValueError(f"duration_s must be positive, got {duration_s}")
    if salience not in (1, 2):
        raise ValueError(f"salience must be 1 or 2, got {salience}")
    n = int(round(sr * duration_s))
    return _render(class_id, sr=int(sr), n=n, rng=rng, salience=salience, channels=1)[:, 0]


def _check_class_id(class_id: int) -> int:
    cid = int(class_id)
    if cid != class_id or not 0 <= cid < len(CLASS_NAMES):
        raise ValueError(
            f"class_id must be an integer in 0..{len(CLASS_NAMES) - 1}, got {class_id!r}"
        )
    return cid


def _wav_bytes(data: np.ndarray, sr: int, subtype: str) -> bytes:
    """Encode a WAV file in memory, with libsndfile's PEAK timestamp zeroed.

    libsndfile writes a PEAK chunk (with the current wall-clock time in it)
    into float WAV files; zeroing that field makes the output byte-for-byte
    reproducible.
    """
    buf = io.BytesIO()
    sf.write(buf, data, sr, subtype=subtype, format="WAV")
    raw = bytearray(buf.getvalue())
    pos = 12  # after "RIFF" <size> "WAVE"
    while pos + 8 <= len(raw):
        cid = bytes(raw[pos : pos + 4])
        size = int.from_bytes(raw[pos + 4 : pos + 8], "little")
        if cid == b"PEAK" and size >= 8:
            raw[pos + 12 : pos + 16] = b"\x00\x00\x00\x00"  # version(4), timestamp(4)
        if cid == b"data":
            break
        pos += 8 + size + (size & 1)
    return bytes(raw)


def _fmt_seconds(x: float) -> str:
    return repr(round(float(x), 6))


# One CSV row of write_demo_dataset, keyed by CSV_COLUMNS ("class" is a keyword: no class syntax)
DemoRow = TypedDict(
    "DemoRow",
    {
        "slice_file_name": str,
        "fsID": int,
        "start": float,
        "end": float,
        "salience": int,
        "fold": int,
        "classID": int,
        "class": str,
    },
)


def write_demo_dataset(
    root: str | Path,
    *,
    folds: Sequence[int] = (1, 2, 3, 4),
    clips_per_class: int = 8,
    seed: int = 0,
) -> list[DemoRow]:
    """Write the synthetic dataset in UrbanSound8K layout under ``root``.

    Creates ``root/audio/fold<k>/<fsID>-<classID>-<occurrenceID>-<sliceID>.wav``
    for every requested fold and ``root/metadata/UrbanSound8K.csv``. Existing
    files with the same names are overwritten; nothing else is deleted.

    Each (fold, class) gets ``clips_per_class`` slices grouped into
    "recordings" (one fsID each, 1-4 slices, never shared between folds, as
    the real dataset's fold rule requires) and, within a recording, into
    occurrences of consecutive slices. Per clip, drawn from
    ``numpy.random.default_rng([seed, fold, classID, i])``: sample rate
    (8-96 kHz, mostly 44.1/48 kHz), channels (about 30 % stereo), WAV
    subtype (mostly PCM_16, also PCM_24, PCM_U8, FLOAT), duration (4 s, or
    0.5-3.9 s for about 20 % of clips), salience (1 foreground, 2
    background) and the audio itself.

    Parameters
    ----------
    root : str or pathlib.Path
        Dataset root directory (created if missing).
    folds : sequence of int, default (1, 2, 3, 4)
        Fold numbers to write (distinct positive integers).
    clips_per_class : int, default 8
        Slices per class per fold.
    seed : int, default 0
        Non-negative seed. The same seed gives byte-identical WAV files and
        CSV (for a given numpy / libsndfile build and CPU family: vectorised
        float math may differ in the last bit across those).

    Returns
    -------
    list of dict
        The CSV rows written, in file order (sorted by ``slice_file_name``
        like the real metadata), each a dict keyed by :data:`CSV_COLUMNS`:
        ``slice_file_name`` (str), ``fsID`` (int), ``start``/``end``
        (float, seconds; ``end - start`` is the clip duration), ``salience``
        (int), ``fold`` (int), ``classID`` (int) and ``class`` (str).
        ``pandas.DataFrame(rows)`` equals the CSV read back.
    """
    folds = tuple(int(f) for f in folds)
    if not folds or len(set(folds)) != len(folds) or min(folds) < 1:
        raise ValueError(f"folds must be distinct positive integers, got {folds}")
    if int(clips_per_class) < 1:
        raise ValueError(f"clips_per_class must be >= 1, got {clips_per_class}")
    clips_per_class = int(clips_per_class)
    seed = int(seed)
    if seed < 0:
        raise ValueError(f"seed must be non-negative, got {seed}")

    root = Path(root)
    meta_dir = root / "metadata"
    meta_dir.mkdir(parents=True, exist_ok=True)

    # Globally distinct fsIDs, drawn once; assigned to recordings in order.
    n_max_groups = len(folds) * len(CLASS_NAMES) * clips_per_class
    fs_pool = np.random.default_rng([seed, 0xF5]).choice(
        np.arange(1000, 1000 + max(200_000, 4 * n_max_groups)), size=n_max_groups, replace=False
    )
    next_fs = 0

    rows: list[DemoRow] = []
    for fold in folds:
        fold_dir = root / "audio" / f"fold{fold}"
        fold_dir.mkdir(parents=True, exist_ok=True)
        for class_id, class_name in enumerate(CLASS_NAMES):
            layout_rng = np.random.default_rng([seed, fold, class_id])
            i = 0
            while i < clips_per_class:
                group = min(clips_per_class - i, int(layout_rng.integers(1, 5)))
                fs_id = int(fs_pool[next_fs])
                next_fs += 1
                n_occ = 1 if group == 1 or layout_rng.random() < 0.6 else 2
                split = int(layout_rng.integers(1, group)) if n_occ == 2 else group
                occ_sizes = [split, group - split] if n_occ == 2 else [group]
                occ_start = float(layout_rng.integers(0, 120))  # seconds into the recording
                for occ_id, occ_size in enumerate(occ_sizes):
                    first_slice = (
                        0 if layout_rng.random() < 0.7 else int(layout_rng.integers(1, 20))
                    )
                    start = occ_start + first_slice * _SLICE_S
                    for s in range(occ_size):
                        clip_rng = np.random.default_rng([seed, fold, class_id, i])
                        sr = int(clip_rng.choice(_SAMPLE_RATES, p=_SAMPLE_RATE_P))
                        channels = 2 if clip_rng.random() < _P_STEREO else 1
                        subtype = str(clip_rng.choice(_SUBTYPES, p=_SUBTYPE_P))
                        if clip_rng.random() < _P_SHORT:
                            duration = int(clip_rng.integers(500, 3901)) / 1000.0
                        else:
                            duration = _SLICE_S
                        salience = 2 if clip_rng.random() < _P_BACKGROUND else 1
                        n = int(round(sr * duration))
                        audio = _render(
                            class_id, sr=sr, n=n, rng=clip_rng, salience=salience, channels=channels
                        )
                        if channels == 1:
                            audio = audio[:, 0]
                        name = f"{fs_id}-{class_id}-{occ_id}-{first_slice + s}.wav"
                        (fold_dir / name).write_bytes(_wav_bytes(audio, sr, subtype))
                        start_r = round(start, 6)
                        rows.append(
                            {
                                "slice_file_name": name,
                                "fsID": fs_id,
                                "start": start_r,
                                "end": round(start_r + duration, 6),
                                "salience": salience,
                                "fold": fold,
                                "classID": class_id,
                                "class": class_name,
                            }
                        )
                        start += duration
                        i += 1
                    occ_start = start + float(layout_rng.uniform(1.0, 30.0))

    rows.sort(key=lambda r: str(r["slice_file_name"]))
    with open(meta_dir / "UrbanSound8K.csv", "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(CSV_COLUMNS)
        for r in rows:
            writer.writerow(
                [
                    r["slice_file_name"],
                    r["fsID"],
                    _fmt_seconds(r["start"]),
                    _fmt_seconds(r["end"]),
                    r["salience"],
                    r["fold"],
                    r["classID"],
                    r["class"],
                ]
            )
    return rows
