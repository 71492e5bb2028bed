"""Deformations of training clips with muda (the study's augmentation).

Each named deformation maps one waveform to one deformed waveform of the same
sample rate.  The features stage applies them only to clips of folds that train
some requested model (:func:`urbansound.folds.folds_to_augment`); training reads
a fold's deformed copies only while that fold is a training fold, so no test or
validation clip is ever a deformation's source, and deformed copies are computed
once and shared by every fold model that trains on them.

Named sets (``--augment NAME``):

- ``study``: the thesis' four (time stretch ×1.23, pitch shift +2, DRC "film
  standard", background noise "workers");
- ``salamon-bello``: the dataset authors' 20 (Salamon & Bello 2017): time stretch
  {0.81, 0.93, 1.07, 1.23}, pitch shift {−2, −1, 1, 2} and {−3.5, −2.5, 2.5, 3.5},
  DRC {music standard, film standard, speech, radio}, and 4 background noises.

Background noise: UrbanSound8K ships no separate noise recordings, and mixing in
clips of the dataset would risk putting test-fold audio into training.  The
default sources are therefore four 30 s noises synthesised here (traffic rumble,
crowd babble band, workers' impacts, mains hum over pink noise: see
:func:`write_builtin_noises`), not recordings; ``augment.noise_dir`` names a folder
of the user's own recordings instead (``background_noise_<k>`` uses the k-th file
in name order, cycling).  The noise offset and mixing weight (0.1-0.5, as muda's
default) are drawn per clip from a seed of the clip's name, so reruns agree.

muda 0.4.1 needs the ``rubberband`` binary for time stretch and pitch shift and
``sox`` for dynamic range compression.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np

from urbansound.deformations import BUILTIN_NOISES, DEFORMATION_NAMES, DEFORMATIONS

NOISE_SECONDS = 30.0
NOISE_WEIGHT = (0.1, 0.5)


class AugmentError(Exception):
    """A deformation failed on a clip (the message names the deformation)."""


def _clip_seed(key: str) -> int:
    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:4], "little")


def synthesize_noise(
    kind: str, sample_rate: int = 22050, seconds: float = NOISE_SECONDS, seed: int = 0
) -> np.ndarray:
    """One synthetic street-noise source, float32 [shape=(sample_rate * seconds,)], peak 0.5.

    traffic: brown noise (−6 dB/octave) with slow swells of passing vehicles;
    crowd: pink noise band-limited to 300-3,000 Hz with syllable-rate (4 Hz) flutter;
    workers: pink noise with random hammer-like decaying impacts;
    hum: 50 Hz mains harmonics over soft pink noise.
    """
    if kind not in BUILTIN_NOISES:
        raise ValueError(f"unknown built-in noise {kind!r}; known: {list(BUILTIN_NOISES)}")
    rng = np.random.default_rng(seed + BUILTIN_NOISES.index(kind))
    n = int(round(sample_rate * seconds))
    t = np.arange(n) / sample_rate
    spectrum = np.fft.rfft(rng.standard_normal(n))
    freqs = np.fft.rfftfreq(n, 1 / sample_rate)
    freqs[0] = freqs[1]

    def shaped(gain):
        return np.fft.irfft(spectrum * gain, n)

    if kind == "traffic":
        y = shaped(1 / freqs) * (0.6 + 0.4 * np.sin(2 * np.pi * t / 7.0) ** 2)
    elif kind == "crowd":
        band = (freqs > 300) & (freqs < 3000)
        y = shaped(band / np.sqrt(freqs)) * (0.7 + 0.3 * np.sin(2 * np.pi * 4.0 * t))
    elif kind == "workers":
        y = shaped(1 / np.sqrt(freqs))
        y /= np.abs(y).max()
        for start in rng.integers(0, n - sample_rate // 4, size=int(seconds * 1.5)):
            m = sample_rate // 4
            y[start : start + m] += (
                3 * rng.standard_normal(m) * np.exp(-np.arange(m) / (0.02 * sample_rate))
            )
    else:  # hum
        y = sum(np.sin(2 * np.pi * 50 * h * t) / h for h in (1, 2, 3, 4))
        pink = shaped(1 / np.sqrt(freqs))
        y = y / np.abs(y).max() + 0.3 * pink / np.abs(pink).max()
    return (0.5 * y / np.abs(y).max()).astype(np.float32)


def write_builtin_noises(directory: str | os.PathLike, sample_rate: int = 22050) -> list[Path]:
    """Write the synthetic noise sources as WAV files (once: existing files are kept)."""
    import soundfile as sf

    folder = Path(directory)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for k, kind in enumerate(BUILTIN_NOISES, start=1):
        path = folder / f"{k}-{kind}.wav"
        if not path.exists():
            partial = path.with_suffix(f".{os.getpid()}.part")
            sf.write(
                partial,
                synthesize_noise(kind, sample_rate),
                sample_rate,
                subtype="FLOAT",
                format="WAV",
            )
            os.replace(partial, path)  # atomic: concurrent workers never read half a file
        paths.append(path)
    return paths


def noise_files(noise_dir: str = "", sample_rate: int = 22050) -> list[Path]:
    """The background-noise sources: the user's folder (audio files in name order), or the
    built-in synthetic ones written to a cache folder."""
    if noise_dir:
        folder = Path(noise_dir)
        files = sorted(
            p
            for p in folder.rglob("*")
            if p.suffix.lower() in (".wav", ".flac", ".ogg", ".mp3", ".aiff", ".aif")
        )
        if not files:
            raise ValueError(f"{noise_dir}: augment.noise_dir holds no audio file")
        return files
    import tempfile

    return write_builtin_noises(
        Path(tempfile.gettempdir()) / f"urbansound-noise-{sample_rate}", sample_rate
    )


def _patch_muda_background() -> None:
    """muda 0.4.1's background slicer calls librosa positionally, which librosa >= 0.10
    refuses; give it the keyword form (idempotent)."""
    import librosa
    import soundfile as sf
    from muda.deformers import background

    if getattr(background.slice_clip, "_urbansound", False):
        return

    def slice_clip(filename, start, stop, n_samples, sr, mono=True):
        with sf.SoundFile(str(filename), mode="r") as f:
            f.seek(start)
            y = f.read(stop - start, dtype="float32").T
            rate = f.samplerate
        if mono and y.ndim > 1:
            y = librosa.to_mono(y)
        y = librosa.resample(y, orig_sr=rate, target_sr=sr)
        return librosa.util.fix_length(y, size=n_samples)

    setattr(slice_clip, "_urbansound", True)  # noqa: B010 (mypy: no such attribute on a function)
    background.slice_clip = slice_clip


def make_deformer(name: str, *, noise_dir: str = "", sample_rate: int = 22050):
    """The muda deformer object for a deformation name."""
    if name not in DEFORMATIONS:
        raise ValueError(f"unknown deformation {name!r}; known: {sorted(DEFORMATION_NAMES)}")
    import warnings

    with warnings.catch_warnings():
        # muda.deformers.sox imports pkg_resources, which warns on every import
        warnings.simplefilter("ignore", UserWarning)
        import muda
    cls_name, kwargs = DEFORMATIONS[name]
    if cls_name == "BackgroundNoise":
        _patch_muda_background()
        files = noise_files(noise_dir, sample_rate)
        source = files[kwargs["source"] % len(files)]
        return muda.deformers.BackgroundNoise(
            n_samples=1, files=[str(source)], weight_min=NOISE_WEIGHT[0], weight_max=NOISE_WEIGHT[1]
        )
    return getattr(muda.deformers, cls_name)(**kwargs)


def _transform(deformer, jam):
    """``deformer.transform(jam)``, without muda's per-call tuning estimate for a pitch
    shift.  muda estimates the clip's tuning (``librosa.estimate_tuning``, a pitch track
    of the whole clip) on every pitch shift only to decide whether key and chord
    annotations change name; a clip packed by :func:`deform` has no annotations, and the
    audio does not depend on it, so the estimate is skipped (tested: same samples)."""
    import muda

    if isinstance(deformer, muda.deformers.PitchShift) and not len(jam.annotations):
        for semitones in deformer.n_semitones:
            yield deformer._transform(jam, {"tuning": 0.0, "n_semitones": semitones})
        return
    yield from deformer.transform(jam)


def deform(
    y: np.ndarray, sample_rate: int, deformer, *, name: str = "", key: str = ""
) -> np.ndarray:
    """Apply one muda deformer to a waveform.

    Parameters
    ----------
    y : np.ndarray [shape=(n,)] mono waveform.
    sample_rate : Hz.
    deformer : from :func:`make_deformer`.
    key : seeds a random deformation (background noise: offset and weight), e.g. the
        clip's file name, so that the same clip always gets the same copy.

    Returns
    -------
    np.ndarray [shape=(m,), dtype=float32]; m differs from n for time stretch.
    """
    import jams
    import muda

    if hasattr(deformer, "_rng"):  # muda's random deformers: a per-clip stream, not a global one
        deformer._rng = np.random.RandomState(_clip_seed(f"{name}:{key}"))
    jam = jams.JAMS()
    jam.file_metadata.duration = len(y) / sample_rate
    jam = muda.jam_pack(jam, _audio=dict(y=np.asarray(y, dtype=np.float32), sr=sample_rate))
    try:
        out = next(iter(_transform(deformer, jam)))
    except Exception as exc:  # rubberband/sox failures surface as assorted types
        raise AugmentError(f"deformation {name or deformer!s} failed: {exc}") from None
    y_out = np.asarray(out.sandbox.muda._audio["y"], dtype=np.float32)
    if not np.all(np.isfinite(y_out)):
        raise AugmentError(f"deformation {name} produced non-finite samples")
    return y_out
