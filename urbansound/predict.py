"""Prediction on recordings of any length: sliding 3 s windows, the training front end.

A recording is decoded as ingest decodes it (soundfile, mono mix-down as the mean
of channels, soxr resampling to ``config.audio.sample_rate``) but **in blocks**,
so an hour of audio never sits in memory at once: memory is one decoded block
(:data:`BLOCK_SECONDS` of native-rate audio), the samples of one window (3 s), one
batch of log-mels (``batch_size`` × 128 × 128 float32, 2 MB at 32) and the
probabilities (n_windows × n_classes).  Streaming soxr gives the very samples
that ingest's one-shot ``librosa.resample(..., res_type="soxr_hq")`` gives (the
tests check it bit for bit), so features equal training's.

Windows (all positions in samples at ``config.audio.sample_rate``; W = clip
samples, 66,150 = 3 s by default; H = hop samples, 33,075 = 1.5 s by default):

- a recording of n <= W samples is one window, filled to W exactly as in
  training (``audio.pad_mode``: loop or zeros); it reports start 0 and end n;
- a longer one gives windows starting at 0, H, 2H, ... while they fit, plus one
  last window aligned to the end (start n - W) when the grid leaves a tail
  uncovered: every sample is classified, every window holds 3 s of real audio.
  A 10 s file with hop 1.5 s: starts 0, 1.5, 3, 4.5, 6, 7 s (6 windows).

Each window's model input (log-mel or waveform, as the model declares) is
:func:`urbansound.features.model_input`, the function the Beam stage runs for
training; a window's first 3 s is what training
keeps of a longer clip, so the first window of a clip equals its training example.
The per-file result is the mean of the window probabilities.

Pure NumPy apart from the decoding and an optional Keras wrapper; imports neither
kfp nor mlflow (model URIs are resolved in :mod:`urbansound.pipeline.model_source`).
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from urbansound.audio import (
    MAX_RATE,
    MIN_RATE,
    MIN_SECONDS,
    AudioError,
    check_duration,
    check_finite_result,
    check_levels,
    check_peak_plausible,
    decode_message,
    mix_down,
    open_audio,
    resampled_length,
)
from urbansound.config import CLASS_NAMES, Config
from urbansound.features import FeatureError, input_shape, model_input
from urbansound.windows import count_windows, iter_windows

DEFAULT_HOP_SECONDS = 1.5
"""Default hop between window starts: half a window.  Every second of audio is seen
by two windows, an hour is 2,400 windows, and events are placed to 1.5 s."""
TOP_K = 3
BLOCK_SECONDS = 10.0
"""Native-rate seconds decoded per block (10 s of 48 kHz stereo float32 is 3.8 MB)."""
BATCH_SIZE = 32
"""Windows per model call."""
MAX_REQUEST_WINDOWS = 2_400
"""Windows one served request may classify, all its rows together (an hour of audio at the
default hop): the work of one request is bounded whatever its rows' lengths, rates or
``hop_s``.  ``urbansound predict`` on the command line has no such cap."""

Classifier = Callable[[np.ndarray], np.ndarray]
"""``f(x) -> probabilities``: x float32, a batch of model inputs (:func:`model_input_batch`:
[shape=(n, n_mels, n_frames, 1)] dB, or [shape=(n, n_samples, 1)] waveforms), result
[shape=(n, n_classes)], rows summing to 1 (a softmax)."""


# ---------------------------------------------------------------------------
# windows
# ---------------------------------------------------------------------------


def hop_samples(hop_seconds: float, config: Config) -> int:
    """The hop in samples at ``config.audio.sample_rate``.

    Raises ValueError unless 0 < ``hop_seconds`` <= ``config.audio.clip_seconds`` (a
    longer hop would leave audio between windows unclassified), the hop is at least
    :data:`~urbansound.audio.MIN_SECONDS` (20 ms: a hop of a few samples would make
    one window per few samples, the work of a recording thousands of times over) and at
    least one sample."""
    if not (
        isinstance(hop_seconds, (int, float))
        and math.isfinite(hop_seconds)
        and 0 < hop_seconds <= config.audio.clip_seconds
    ):
        raise ValueError(
            f"hop must be > 0 and <= the window ({config.audio.clip_seconds:g} s), "
            f"not {hop_seconds!r}"
        )
    if hop_seconds < min(MIN_SECONDS, config.audio.clip_seconds):
        raise ValueError(
            f"hop {hop_seconds:g} s is shorter than {MIN_SECONDS * 1000:.0f} ms: "
            f"{1 / hop_seconds:,.0f} windows per second of audio"
        )
    hop = int(round(hop_seconds * config.audio.sample_rate))
    if hop < 1:
        raise ValueError(f"hop {hop_seconds!r} s is less than one sample")
    return hop


def file_windows(
    path: str | os.PathLike, config: Config, hop_seconds: float = DEFAULT_HOP_SECONDS
) -> int:
    """The windows :func:`predict_file` would classify in ``path``, from its header (frames
    and rate) without decoding it.  Raises AudioError as :func:`stream_audio` opens it."""
    path = Path(path)
    with open_audio(path) as snd:
        frames, native_rate = snd.frames, snd.samplerate
    if frames < 1 or not MIN_RATE <= native_rate <= MAX_RATE:
        return 1  # decoding says what is wrong with it
    n = resampled_length(frames, native_rate, config.audio.sample_rate)
    return count_windows(
        max(n, 1), window=config.audio.clip_samples, hop=hop_samples(hop_seconds, config)
    )


def check_window_budget(n_windows: int, used: int = 0, limit: int | None = None) -> None:
    """Raise ValueError unless ``n_windows`` more windows, after ``used`` already classified
    in the same request, stay within ``limit`` (default :data:`MAX_REQUEST_WINDOWS`)."""
    limit = MAX_REQUEST_WINDOWS if limit is None else limit
    if n_windows > limit:
        raise ValueError(
            f"{n_windows:,} windows is more than the {limit:,} one request may "
            f"classify: send a shorter recording or a longer hop_s"
        )
    if used + n_windows > limit:
        raise ValueError(
            f"{n_windows:,} windows after the {used:,} of the rows before it is "
            f"more than the {limit:,} one request may classify: send this row "
            f"in another request"
        )


def model_input_batch(windows: Sequence[np.ndarray], config: Config) -> np.ndarray:
    """Model input for windows: np.ndarray float32 [shape=(n, *input_shape(config))]:
    (n, n_mels, n_frames, 1) dB log-mels, or (n, n_samples, 1) waveforms.

    Each window goes through :func:`urbansound.features.model_input`, the training
    features' function (it fixes the length by ``audio.pad_mode`` first)."""
    if not len(windows):
        return np.zeros((0, *input_shape(config)), np.float32)
    return np.stack([model_input(w, config) for w in windows])[..., None]


logmel_batch = model_input_batch  # its name before waveform models


# ---------------------------------------------------------------------------
# decoding in blocks
# ---------------------------------------------------------------------------


def stream_audio(
    path: str | os.PathLike,
    *,
    sample_rate: int = 22050,
    block_seconds: float = BLOCK_SECONDS,
    info: dict | None = None,
) -> Iterator[np.ndarray]:
    """Decode ``path`` block by block to mono float32 at ``sample_rate``.

    The concatenated blocks equal :func:`urbansound.audio.load_audio` of the same
    file bit for bit (same decoder, same mix-down arithmetic, soxr's streaming
    resampler at the "soxr_hq" quality, the same final length), without its 10-minute
    limit: memory is one block of ``block_seconds`` native-rate audio.  The same
    checks as ingest apply (empty or truncated file, undecodable, implausible rate,
    NaN/inf samples, peak above :data:`~urbansound.audio.MAX_PEAK` or below
    :data:`~urbansound.audio.MIN_PEAK`, all zero, shorter than 20 ms); checks on the
    whole recording (:func:`urbansound.audio.check_levels`, ingest's too) run when its
    last block has been read.

    Parameters
    ----------
    info : if given, filled with ``native_rate``, ``channels``, ``native_frames`` and
        ``samples`` (the total at ``sample_rate``) as they become known.

    Yields
    ------
    np.ndarray [shape=(m,), dtype=float32] pieces of the waveform, amplitude in [-1, 1] for PCM.

    Raises
    ------
    AudioError
        naming the file and the reason.
    """
    path = Path(path)
    info = {} if info is None else info
    snd = open_audio(path)
    with snd:
        native_rate, channels = snd.samplerate, snd.channels
        info.update(native_rate=native_rate, channels=channels)
        if not MIN_RATE <= native_rate <= MAX_RATE:
            raise AudioError(
                path, f"implausible sample rate {native_rate} Hz (expected {MIN_RATE}..{MAX_RATE})"
            )
        resampler = None
        if native_rate != sample_rate:
            import soxr

            resampler = soxr.ResampleStream(
                native_rate, sample_rate, 1, dtype="float32", quality="soxr_hq"
            )
        block_frames = max(1, int(block_seconds * native_rate))
        n_native = n_out = 0
        peak, any_raw = 0.0, False
        pending = np.zeros(0, np.float32)  # resampled, held back until the length is known
        hold = 64  # the final length fix may trim at most a few samples
        while True:
            try:
                data = snd.read(block_frames, dtype="float32", always_2d=True)
            except MemoryError:
                raise AudioError(path, "too large to decode in memory") from None
            except Exception as exc:
                raise AudioError(
                    path, f"not a readable audio file ({decode_message(exc)})"
                ) from None
            last = data.shape[0] < block_frames
            if data.shape[0]:
                if not np.all(np.isfinite(data)):
                    bad = int(np.count_nonzero(~np.isfinite(data)))
                    raise AudioError(
                        path,
                        f"contains NaN or infinite samples ({bad} in the "
                        f"block at {n_native / native_rate:.1f} s)",
                    )
                any_raw = any_raw or bool(np.any(data))
                # mono exactly as urbansound.audio.prepare_waveform computes it
                mono = mix_down(data)
                block_peak = float(np.max(np.abs(mono)))
                check_peak_plausible(path, block_peak)  # early: before the rest is decoded
                peak = max(peak, block_peak)
                y = mono.astype(np.float32)
                n_native += y.size
            else:
                y = np.zeros(0, np.float32)
            if resampler is not None:
                y = resampler.resample_chunk(y, last=last)
            check_finite_result(path, y)
            pending = np.concatenate([pending, y]) if pending.size else y
            if last:
                break
            if pending.size > hold:
                out, pending = pending[:-hold], pending[-hold:]
                n_out += out.size
                yield np.ascontiguousarray(out, dtype=np.float32)
    info.update(native_frames=n_native)
    if n_native == 0:
        raise AudioError(path, "no audio samples")
    duration = n_native / native_rate
    check_duration(path, duration, longest=None)  # read in blocks: any length
    check_levels(path, any_nonzero=any_raw, peak=peak, channels=channels)
    # librosa.resample's final length: zero-pad or trim to ceil(n * ratio)
    want = resampled_length(n_native, native_rate, sample_rate) - n_out
    if want < 0:  # pragma: no cover - soxr never runs more than `hold` samples long
        raise AudioError(path, "resampler produced more samples than expected")
    pending = pending[:want] if pending.size >= want else np.pad(pending, (0, want - pending.size))
    info.update(samples=n_out + pending.size)
    yield np.ascontiguousarray(pending, dtype=np.float32)


def read_audio(path: str | os.PathLike, *, sample_rate: int = 22050) -> np.ndarray:
    """The whole waveform of :func:`stream_audio` (np.ndarray [shape=(n,), float32]);
    for tests and short files."""
    return np.concatenate(list(stream_audio(path, sample_rate=sample_rate)))


# ---------------------------------------------------------------------------
# probabilities → results
# ---------------------------------------------------------------------------


def aggregate(probabilities: np.ndarray) -> np.ndarray:
    """Per-file probabilities: the mean over windows.

    probabilities : [shape=(n_windows, n_classes)] → [shape=(n_classes,)], float64.
    """
    p = np.asarray(probabilities, np.float64)
    if p.ndim != 2 or p.shape[0] == 0:
        raise ValueError(f"need probabilities of shape (n_windows, n_classes), got {p.shape}")
    return p.mean(axis=0)


def top_k(
    probabilities: np.ndarray, class_names: Sequence[str] = CLASS_NAMES, k: int = TOP_K
) -> list[tuple[str, float]]:
    """The ``k`` most probable classes of one probability vector [shape=(n_classes,)],
    most probable first; ties keep class order."""
    p = np.asarray(probabilities, np.float64)
    order = np.argsort(-p, kind="stable")[:k]
    return [(class_names[i], float(p[i])) for i in order]


@dataclass(frozen=True)
class Event:
    """A run of consecutive windows whose most probable class is the same.

    start_s, end_s : the first window's start and the last window's end, seconds (events
        of different classes overlap by up to window − hop, as the windows do).
    label : class name.
    probability : mean over the run's windows of that class's probability.
    windows : how many windows the run holds.
    """

    start_s: float
    end_s: float
    label: str
    probability: float
    windows: int


def merge_events(
    starts: Sequence[float] | np.ndarray,
    ends: Sequence[float] | np.ndarray,
    probabilities: np.ndarray,
    class_names: Sequence[str] = CLASS_NAMES,
) -> list[Event]:
    """Merge consecutive windows of the same most probable class into events.

    starts, ends : [shape=(n_windows,)] seconds; probabilities : [shape=(n_windows, n_classes)].
    """
    p = np.asarray(probabilities, np.float64)
    if p.ndim != 2 or len(starts) != p.shape[0] or len(ends) != p.shape[0]:
        raise ValueError(
            f"starts, ends and probabilities disagree: {len(starts)}, {len(ends)}, {p.shape}"
        )
    labels = p.argmax(axis=1)
    events: list[Event] = []
    i = 0
    while i < len(labels):
        j = i
        while j + 1 < len(labels) and labels[j + 1] == labels[i]:
            j += 1
        c = int(labels[i])
        events.append(
            Event(
                float(starts[i]),
                float(ends[j]),
                class_names[c],
                float(p[i : j + 1, c].mean()),
                j - i + 1,
            )
        )
        i = j + 1
    return events


@dataclass
class FilePrediction:
    """What :func:`predict_file` found for one recording.

    path : the file.  duration_s : seconds at the model's sample rate.
    hop_s : the hop used.  starts_s, ends_s : [shape=(n_windows,)] seconds.
    window_probabilities : [shape=(n_windows, n_classes)].
    probabilities : [shape=(n_classes,)] mean over windows.
    """

    path: str
    duration_s: float
    hop_s: float
    starts_s: np.ndarray
    ends_s: np.ndarray
    window_probabilities: np.ndarray
    class_names: tuple[str, ...] = CLASS_NAMES
    probabilities: np.ndarray = field(init=False)

    def __post_init__(self):
        self.probabilities = aggregate(self.window_probabilities)

    @property
    def label(self) -> str:
        return self.top(1)[0][0]

    def top(self, k: int = TOP_K) -> list[tuple[str, float]]:
        return top_k(self.probabilities, self.class_names, k)

    def events(self) -> list[Event]:
        return merge_events(self.starts_s, self.ends_s, self.window_probabilities, self.class_names)

    def to_dict(self, *, timeline: bool = False) -> dict:
        """Plain JSON-ready dict: file, duration_s, windows, hop_s, class, probability,
        top3 [{"class", "probability"}], and with ``timeline`` the windows
        [{"start_s", "end_s", "class", "probability"}] and the events
        [{"start_s", "end_s", "class", "probability", "windows"}]."""
        top = self.top()
        out = {
            "file": self.path,
            "duration_s": round(self.duration_s, 6),
            "windows": int(len(self.starts_s)),
            "hop_s": self.hop_s,
            "class": top[0][0],
            "probability": top[0][1],
            "top3": [{"class": c, "probability": p} for c, p in top],
        }
        if timeline:
            labels = self.window_probabilities.argmax(axis=1)
            out["timeline"] = [
                {
                    "start_s": round(float(s), 6),
                    "end_s": round(float(e), 6),
                    "class": self.class_names[int(c)],
                    "probability": float(self.window_probabilities[i, int(c)]),
                }
                for i, (s, e, c) in enumerate(zip(self.starts_s, self.ends_s, labels))
            ]
            out["events"] = [
                {
                    "start_s": round(ev.start_s, 6),
                    "end_s": round(ev.end_s, 6),
                    "class": ev.label,
                    "probability": ev.probability,
                    "windows": ev.windows,
                }
                for ev in self.events()
            ]
        return out


def predict_waveform_blocks(
    blocks: Iterable[np.ndarray],
    classify: Classifier,
    *,
    config: Config,
    hop_seconds: float = DEFAULT_HOP_SECONDS,
    batch_size: int = BATCH_SIZE,
    max_windows: int | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Classify every window of a streamed waveform.

    max_windows : raise ValueError as soon as the stream holds more windows than this,
        before classifying the extra one; None: no limit.

    Returns
    -------
    (starts, ends, probabilities): sample positions [shape=(n_windows,)] int64 and
        [shape=(n_windows, n_classes)] float32, in window order.
    """
    a = config.audio
    hop = hop_samples(hop_seconds, config)
    starts: list[int] = []
    ends: list[int] = []
    probs: list[np.ndarray] = []
    pending: list[np.ndarray] = []

    def flush():
        if pending:
            x = model_input_batch(pending, config)
            p = np.asarray(classify(x), np.float32)
            if p.shape[0] != x.shape[0] or p.ndim != 2:
                raise ValueError(f"the model returned shape {p.shape} for {x.shape[0]} windows")
            probs.append(p)
            pending.clear()

    for start, end, samples in iter_windows(
        blocks, window=a.clip_samples, hop=hop, pad_mode=a.pad_mode
    ):
        if max_windows is not None and len(starts) >= max_windows:
            # a header that under-states the length: stop at the cap, not at the end
            raise ValueError(
                f"more than {max_windows:,} windows, the most this request may still classify"
            )
        starts.append(start)
        ends.append(end)
        pending.append(samples)
        if len(pending) >= batch_size:
            flush()
    flush()
    return np.asarray(starts, np.int64), np.asarray(ends, np.int64), np.concatenate(probs)


def predict_file(
    path: str | os.PathLike,
    classify: Classifier,
    *,
    config: Config = Config(),
    hop_seconds: float = DEFAULT_HOP_SECONDS,
    batch_size: int = BATCH_SIZE,
    class_names: Sequence[str] | None = None,
    max_windows: int | None = None,
) -> FilePrediction:
    """Decode ``path`` in blocks, classify each window, and average.  ``class_names``
    (label order) default to ``config.class_names``: the classes the model was trained on.
    ``max_windows``: stop with ValueError once the recording has given more windows than
    this (check its header first with :func:`file_windows`); None: no limit.

    Memory does not grow with the recording's length beyond its probabilities
    (see the module docstring); an hour at the default hop is 2,400 windows.

    Raises
    ------
    AudioError
        the file cannot be decoded or used, or a window's log-mel is not finite.
    """
    a = config.audio
    class_names = class_names or config.class_names
    hop_samples(hop_seconds, config)  # a bad hop is the caller's error, before any decoding
    info: dict = {}
    try:
        starts, ends, probs = predict_waveform_blocks(
            stream_audio(path, sample_rate=a.sample_rate, info=info),
            classify,
            config=config,
            hop_seconds=hop_seconds,
            batch_size=batch_size,
            max_windows=max_windows,
        )
    except FeatureError as exc:
        raise AudioError(path, str(exc)) from None
    if probs.shape[1] != len(class_names):
        raise ValueError(
            f"the model has {probs.shape[1]} outputs, not the {len(class_names)} classes"
        )
    return FilePrediction(
        str(path),
        info["samples"] / a.sample_rate,
        float(hop_seconds),
        starts / a.sample_rate,
        ends / a.sample_rate,
        probs,
        tuple(class_names),
    )


# ---------------------------------------------------------------------------
# files and the model
# ---------------------------------------------------------------------------

AUDIO_SUFFIXES = frozenset(
    {
        ".wav",
        ".wave",
        ".flac",
        ".ogg",
        ".oga",
        ".opus",
        ".mp3",
        ".aif",
        ".aiff",
        ".aifc",
        ".au",
        ".snd",
        ".caf",
        ".w64",
        ".rf64",
        ".wv",
        ".voc",
        ".sd2",
        ".htk",
        ".mat",
        ".pvf",
        ".xi",
        ".sf",
        ".ircam",
        ".nist",
        ".paf",
        ".svx",
        ".mpc",
        ".avr",
    }
)
"""Extensions looked for inside folders (a file named on the command line is decoded
whatever its extension: the format comes from the content)."""


def find_audio_files(paths: Iterable[str | os.PathLike]) -> list[Path]:
    """Files named, and audio files found recursively in folders named (sorted within a
    folder, hidden files skipped), each once, in the order given.  A path that does
    not exist is kept, so that decoding reports it."""
    found: list[Path] = []
    seen: set[Path] = set()
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            items = sorted(
                p
                for p in path.rglob("*")
                if p.suffix.lower() in AUDIO_SUFFIXES
                and p.is_file()
                and not any(part.startswith(".") for part in p.relative_to(path).parts)
            )
        else:
            items = [path]
        for item in items:
            key = item.resolve() if item.exists() else item
            if key not in seen:
                seen.add(key)
                found.append(item)
    return found


def keras_classifier(model) -> Classifier:
    """A :data:`Classifier` from a Keras model (input as :func:`model_input_batch` makes)."""

    def classify(x: np.ndarray) -> np.ndarray:
        return np.asarray(model.predict_on_batch(x))

    return classify


def check_model_input(model, config: Config, name: str = "model") -> None:
    """Raise ValueError unless the Keras model takes the input of ``config``'s model
    (:func:`urbansound.features.input_shape`) and returns one probability per class of
    ``config.class_names``."""
    want_in = input_shape(config)
    shape_in = tuple(model.input_shape[1:]) if not isinstance(model.input_shape, list) else None
    if shape_in != want_in:
        what = (
            "log-mels"
            if config.input_kind == "logmel"
            else f"waveforms at {config.features.waveform_rate} Hz"
        )
        raise ValueError(
            f"{name}: takes input of shape {model.input_shape}, not the "
            f"(batch, {', '.join(map(str, want_in))}) {what} of this configuration"
        )
    shape_out = model.output_shape
    if isinstance(shape_out, list) or shape_out[-1] != len(config.class_names):
        raise ValueError(
            f"{name}: returns shape {shape_out}, not {len(config.class_names)} class probabilities"
        )
