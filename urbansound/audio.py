"""Audio I/O: decode any clip to mono float32 at one sample rate, and fix its length.

This is the only module that reads audio files.  Decoding uses soundfile
(libsndfile: WAV 8/16/24/32-bit, float, IMA/MS ADPCM, FLAC, OGG, MP3) rather
than tensorflow-io, whose last release cannot load its ops on TensorFlow >= 2.18.
Every failure raises :class:`AudioError` naming the file and the reason.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Literal

import numpy as np

MIN_SECONDS = 0.02
"""Clips shorter than this (20 ms, under one 23 ms analysis window) are rejected."""

MAX_SECONDS = 600.0
"""Clips longer than this (10 min; UrbanSound8K slices are at most 4 s) are rejected
before decoding, so one huge or mislabelled file cannot exhaust memory."""

MIN_RATE, MAX_RATE = 1_000, 768_000
"""Native sample rates outside this range (Hz) are rejected as implausible headers."""

MAX_PEAK = 1e10
"""Clips whose peak absolute sample (after the mono mix-down) exceeds this are rejected.
Float samples are nominally within ±1; files written on a 16- or 32-bit integer
scale reach 3.3e4 or 2.1e9 and are accepted (the log-mel is relative to the
clip's own peak).  Beyond 1e10 the data is corrupt or mis-decoded, and near 1e18
the float32 power spectrum overflows to inf/NaN."""

MIN_PEAK = 2.0**-23
"""Clips whose peak absolute sample is below one 24-bit PCM step (1.2e-7, -138 dBFS)
are rejected as practically silent: their power stays under the log-mel's floor
(``FeatureConfig.amin``), so every cell of their log-mel would be the same value."""


def check_duration(
    source: str | os.PathLike, seconds: float, longest: float | None = MAX_SECONDS
) -> None:
    """Raise :class:`AudioError` (``source``) unless a recording of ``seconds`` is at least
    :data:`MIN_SECONDS` long and, unless ``longest`` is None, at most ``longest``: the one
    rule for clips and recordings held whole in memory (ingest, a served waveform) and,
    with ``longest=None``, for recordings read in blocks (predict, listen)."""
    if seconds < MIN_SECONDS:
        shown = f"{seconds * 1000:.1f}"
        if float(shown) >= MIN_SECONDS * 1000:  # rounded up to the limit: never "20.0 < 20"
            shown = f"{seconds * 1000:.6g}"
        raise AudioError(source, f"too short ({shown} ms < {MIN_SECONDS * 1000:.0f} ms)")
    if longest is not None and seconds > longest:
        raise AudioError(source, f"too long ({seconds:.0f} s > {longest:.0f} s)")


class AudioError(Exception):
    """A clip cannot be used.  ``str()`` reads ``"<path>: <reason>"``."""

    def __init__(self, path: str | os.PathLike, reason: str):
        super().__init__(f"{path}: {reason}")
        self.path = str(path)
        self.reason = reason


def load_audio(path: str | os.PathLike, *, sample_rate: int = 22050) -> np.ndarray:
    """Decode ``path`` to a mono waveform at ``sample_rate``.

    The format is taken from the file's content, never from its extension: a
    FLAC, OGG or MP3 stream named ``.wav`` decodes like any other.

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
        not a regular file (a device, FIFO or socket); empty file; truncated WAV (the file ends inside the header, or holds
        less audio data than its header declares: such a file would decode
        only partly, so it is rejected rather than silently shortened);
        undecodable or unrecognised format; no samples; implausible sample
        rate; longer than :data:`MAX_SECONDS`; non-finite samples; all-zero
        signal; a peak above :data:`MAX_PEAK` or below :data:`MIN_PEAK`; or
        shorter than :data:`MIN_SECONDS`.
    """
    path = Path(path)
    snd = open_audio(path)
    try:
        with snd:
            native_rate, frames = snd.samplerate, snd.frames
            if not MIN_RATE <= native_rate <= MAX_RATE:
                raise AudioError(
                    path,
                    f"implausible sample rate {native_rate} Hz (expected {MIN_RATE}..{MAX_RATE})",
                )
            if frames > 0 and frames / native_rate > MAX_SECONDS:
                raise AudioError(
                    path, f"too long ({frames / native_rate:.0f} s > {MAX_SECONDS:.0f} s)"
                )
            data = snd.read(dtype="float32", always_2d=True)
    except AudioError:
        raise
    except MemoryError:
        raise AudioError(path, "too large to decode in memory") from None
    except OSError as exc:
        raise AudioError(path, f"cannot read file ({exc.strerror or exc})") from None
    except Exception as exc:  # libsndfile reports every decode failure as one of several types
        raise AudioError(path, f"not a readable audio file ({decode_message(exc)})") from None
    return prepare_waveform(data, native_rate, sample_rate=sample_rate, source=path)


def open_audio(path: Path):
    """Open an audio file for reading, after the checks every reader of the project makes
    (ingest's :func:`load_audio` and predict's streaming decoder): readable, not a folder,
    not empty, not a WAV cut short.

    Returns
    -------
    soundfile.SoundFile, open (the caller closes it).

    Raises
    ------
    AudioError
        naming the file and the reason.
    """
    import soundfile as sf

    from urbansound.files import not_regular

    try:
        st = path.stat()
    except OSError as exc:
        raise AudioError(path, f"cannot read file ({exc.strerror or exc})") from None
    size = st.st_size
    if path.is_dir():
        raise AudioError(path, "is a folder, not an audio file")
    # a device, FIFO or socket reports 0 bytes: say what it is, and never open it (a
    # FIFO would block until a writer came)
    special = not_regular(st.st_mode)
    if special:
        raise AudioError(path, special)
    if size == 0:
        raise AudioError(path, "empty file (0 bytes)")
    try:
        with open(path, "rb") as fh:
            problem = _wav_truncation(fh, size)
        if problem:
            raise AudioError(path, problem)
        # by path, not through the open file: libsndfile then reads without the GIL
        return sf.SoundFile(str(path))
    except AudioError:
        raise
    except OSError as exc:
        raise AudioError(path, f"cannot read file ({exc.strerror or exc})") from None
    except Exception as exc:  # libsndfile reports every decode failure as one of several types
        raise AudioError(path, f"not a readable audio file ({decode_message(exc)})") from None


def _wav_truncation(fh, size: int) -> str | None:
    """Why a RIFF/WAVE file is cut short, or None (also for other formats).

    A file that ends inside its header (before the ``data`` chunk's 8-byte
    header) is "truncated WAV header".  A ``data`` chunk that declares more
    bytes than the file holds, by more than one block (a frame, or an ADPCM
    block), is "truncated WAV data".  The placeholder sizes 0 and 0xFFFFFFFF
    that streaming writers leave are not checked.
    """
    head = fh.read(12)
    if len(head) < 4 or head[:4] not in (b"RIFF", b"RIFX"):
        return None
    if len(head) < 12:
        return f"truncated WAV header (file is {size} bytes, ends inside the RIFF header)"
    if head[8:12] != b"WAVE":
        return None
    order: Literal["little", "big"] = "little" if head[:4] == b"RIFF" else "big"
    pos, block_align = 12, 1
    while True:
        fh.seek(pos)
        chunk = fh.read(8)
        if len(chunk) < 8:
            where = "before any data chunk" if len(chunk) == 0 else "inside a chunk header"
            return f"truncated WAV header (file is {size} bytes, ends {where})"
        cid, csize = chunk[:4], int.from_bytes(chunk[4:8], order)
        if cid == b"fmt ":
            fmt = fh.read(min(csize, 16))
            if len(fmt) < min(csize, 16):
                return f"truncated WAV header (file is {size} bytes, ends inside the 'fmt ' chunk)"
            if len(fmt) >= 14:
                block_align = max(1, int.from_bytes(fmt[12:14], order))
        elif cid == b"data":
            available = size - (pos + 8)
            if csize not in (0, 0xFFFFFFFF) and csize - available > block_align:
                return (
                    f"truncated WAV data (header declares {csize} bytes of audio, "
                    f"the file holds {available})"
                )
            return None
        pos += 8 + csize + (csize & 1)
        if pos > size:
            return (
                f"truncated WAV header (the {cid.decode('latin-1')!r} chunk runs past the end "
                f"of the file, {size} bytes)"
            )


def mix_down(data: np.ndarray) -> np.ndarray:
    """Mean of the channels of ``data`` [shape=(n, channels)], float64 [shape=(n,)]:
    ``data.mean(axis=1, dtype=np.float64)`` bit for bit (tested), channel by channel
    because numpy's reduction across a short, strided axis with a cast costs about
    4 ms per stereo clip, more than decoding it."""
    channels = data.shape[1]
    mono = data[:, 0].astype(np.float64)
    for c in range(1, channels):
        mono += data[:, c]
    if channels > 1:
        mono /= channels
    return mono


def prepare_waveform(
    data: np.ndarray, native_rate: int, *, sample_rate: int, source: str | os.PathLike = "<array>"
) -> np.ndarray:
    """Validate, mix down and resample decoded samples.

    Parameters
    ----------
    data : np.ndarray [shape=(n,) or (n, channels)] samples, float.
    native_rate : the samples' rate in Hz.
    sample_rate : target rate in Hz.
    source : name used in error messages.

    Returns
    -------
    y : np.ndarray [shape=(m,), dtype=float32], m = round(n * sample_rate / native_rate),
        every sample finite.

    Raises
    ------
    AudioError
        no samples, invalid rate, NaN/inf samples, shorter than :data:`MIN_SECONDS`,
        silent, peak amplitude above :data:`MAX_PEAK` or below :data:`MIN_PEAK`.
    """
    data = np.asarray(data, dtype=np.float32)
    if data.ndim == 1:
        data = data[:, None]
    if data.shape[0] == 0 or data.shape[1] == 0:
        raise AudioError(source, "no audio samples")
    if not MIN_RATE <= native_rate <= MAX_RATE:  # NaN and inf fail too: never an overflow
        raise AudioError(
            source, f"invalid sample rate {native_rate} Hz (expected {MIN_RATE}..{MAX_RATE})"
        )
    # The smallest and largest sample answer "any NaN or infinity?" (min and max propagate
    # NaN), "all zero?" and, for one channel, the peak: two passes with no temporary
    # arrays, where isfinite / any / abs each made one (≈ 20 % of ingest's per-clip time).
    low, high = float(data.min()), float(data.max())
    if not (np.isfinite(low) and np.isfinite(high)):
        bad = int(np.count_nonzero(~np.isfinite(data)))
        raise AudioError(source, f"contains NaN or infinite samples ({bad} of {data.size})")
    check_duration(source, data.shape[0] / native_rate)
    any_nonzero = not (low == 0.0 and high == 0.0)
    if data.shape[1] == 1 or not any_nonzero:
        # one channel is its own mix: mix_down's float64 round trip gives these samples
        # (all zero: check_levels rejects it, nothing to mix)
        mono, peak = data[:, 0], max(-low, high)
    else:
        # mean of channels keeps the PCM range (float64 sum: no overflow on huge floats)
        mono = mix_down(data)
        peak = max(-float(mono.min()), float(mono.max()))
    check_levels(source, any_nonzero=any_nonzero, peak=peak, channels=data.shape[1])
    y = np.array(mono, dtype=np.float32)  # a contiguous copy, never a view of ``data``
    if native_rate != sample_rate:
        y = resample(y, orig_sr=native_rate, target_sr=sample_rate)
    check_finite_result(source, y)
    return np.ascontiguousarray(y, dtype=np.float32)


def check_peak_plausible(source: str | os.PathLike, peak: float) -> None:
    """Raise :class:`AudioError` when the mono mix's ``peak`` amplitude is above
    :data:`MAX_PEAK` (corrupt or mis-decoded data); a streaming decoder checks each block."""
    if peak > MAX_PEAK:
        raise AudioError(
            source,
            f"implausible amplitude: peak sample {peak:.3g} (more than "
            f"{MAX_PEAK:.0e}; audio samples are normally within ±1), "
            f"corrupt or mis-decoded data",
        )


def check_levels(
    source: str | os.PathLike, *, any_nonzero: bool, peak: float, channels: int
) -> None:
    """The level checks on a decoded recording as a whole, one rule for every decoder
    (:func:`prepare_waveform` for a recording held in memory, predict's streaming decoder
    once its last block is read).

    any_nonzero : whether any decoded sample (any channel) is not zero.
    peak : the largest absolute sample of the mono mix (:func:`mix_down`).
    channels : the decoded channels, for the message.

    Raises :class:`AudioError`: silent (every sample zero), silent after mixing (the
    channels cancel out), peak above :data:`MAX_PEAK` or below :data:`MIN_PEAK`.
    """
    if not any_nonzero:
        raise AudioError(source, "silent (every sample is zero)")
    if peak == 0.0:
        raise AudioError(
            source,
            f"silent after mixing {channels} channels down to mono (the channels cancel out)",
        )
    check_peak_plausible(source, peak)
    if peak < MIN_PEAK:
        raise AudioError(
            source,
            f"practically silent: peak sample {peak:.3g} is below one 24-bit step ({MIN_PEAK:.2g})",
        )


def check_finite_result(source: str | os.PathLike, y: np.ndarray) -> None:
    """Raise :class:`AudioError` when mixing down or resampling made a sample infinite."""
    if not np.all(np.isfinite(y)):
        raise AudioError(source, "samples overflow to infinity when mixed down or resampled")


def resampled_length(n_native: int, native_rate: int, sample_rate: int) -> int:
    """Samples after resampling ``n_native`` samples, as ``librosa.resample`` makes them
    (``ceil(n * (sample_rate / native_rate))``, in that arithmetic), so streamed and
    one-shot lengths agree."""
    if native_rate == sample_rate:
        return n_native
    return int(np.ceil(n_native * (float(sample_rate) / native_rate)))


def resample(y: np.ndarray, *, orig_sr: int, target_sr: int) -> np.ndarray:
    """Resample a mono waveform with soxr (high quality), to ``ceil(n · target / orig)``
    samples: ``librosa.resample(y, orig_sr, target_sr, res_type="soxr_hq")`` exactly
    (tested), without librosa's import (about 2 s in every worker).

    y : np.ndarray [shape=(n,)], float32 or float64; the result has its dtype."""
    import soxr

    if orig_sr == target_sr:
        return y
    out = soxr.resample(y, orig_sr, target_sr, quality="soxr_hq")
    n = resampled_length(y.shape[-1], orig_sr, target_sr)
    out = out[:n] if out.shape[0] >= n else np.pad(out, (0, n - out.shape[0]))
    return np.asarray(out, dtype=y.dtype)


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


def decode_message(exc: BaseException) -> str:
    """libsndfile's reason without its "Error opening '<path>': " prefix."""
    text = _first_line(exc)
    return re.sub(r"^Error opening .*?: ", "", text) or type(exc).__name__


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0][:200]
