"""Live classification of a continuous stream: one result per 3 s window as soon as the
window's last sample has arrived.

A stream is an iterable of :class:`TimedBlock` — consecutive pieces of one mono
waveform, each with the clock time at which it arrived — from one of two sources:

- raw PCM (:func:`pcm_blocks`): little-endian int16 mono bytes, as
  ``arecord -f S16_LE -c1 -r RATE`` writes them, scaled as soundfile scales 16-bit
  PCM (``/ 32768``); at a rate other than ``config.audio.sample_rate`` it is
  resampled as it arrives (:func:`resample_blocks`: soxr's streaming resampler at
  predict's quality, and the same final length as ingest's one-shot resampling);
- a file (:func:`file_blocks`): :func:`urbansound.predict.stream_audio`'s decoding,
  optionally paced to the wall clock (sample ``n`` is released at ``t0 + n / rate``),
  i.e. played as if it were being recorded.

:func:`stream_windows` cuts the stream with :func:`urbansound.windows.iter_windows`
(the offline path's own windowing: the same windows, including the end-aligned last
one and the padding of a stream shorter than a window), and tags each window with the
arrival time of the block holding its last sample.  :func:`classify_stream` turns
windows into :class:`WindowResult` with :func:`urbansound.predict.model_input_batch`
(the model's own front end, log-mel or waveform) and a classifier.
:class:`ListenStats` keeps latencies and CPU time for the summary.

Times are ``time.monotonic()`` seconds unless a ``clock`` is given.  Pure apart from
reading the source; the only thread is :func:`prefetch`'s reader, which lets a pipe
be drained (and its arrivals timed) while the model loads or a window is classified.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np

from urbansound.audio import MAX_RATE, MIN_RATE, AudioError, check_duration, resampled_length
from urbansound.config import Config
from urbansound.predict import (
    DEFAULT_HOP_SECONDS,
    Classifier,
    hop_samples,
    model_input_batch,
    stream_audio,
)
from urbansound.windows import iter_windows

STDIN = "<stdin>"
PCM_SAMPLE_BYTES = 2
"""S16_LE: two bytes per (mono) sample."""
LIVE_BLOCK_SECONDS = 0.05
"""Audio per read: what a sound card delivers per period (tens of ms).  A window's
last sample waits at most this long in a block before it is seen."""
RESAMPLE_HOLD = 64
"""Resampled samples held back until the stream ends, when the final length is fixed
to ``ceil(n * rate_out / rate_in)`` (as predict's decoder does): 3 ms at 22,050 Hz."""


class TimedBlock(NamedTuple):
    """samples : np.ndarray [shape=(m,), dtype=float32]; arrived : clock seconds."""

    samples: np.ndarray
    arrived: float


@dataclass(frozen=True)
class LiveWindow:
    """A window of the stream: ``start``/``end`` sample positions (end exclusive),
    ``samples`` [shape=(window,), float32], and ``arrived``: when its last sample came."""

    start: int
    end: int
    samples: np.ndarray
    arrived: float


@dataclass(frozen=True)
class WindowResult:
    """One classified window: ``start_s``/``end_s`` in the stream (seconds), the most
    probable class ``label`` and its ``probability``, all ``probabilities``
    [shape=(n_classes,)], and ``arrived`` (clock seconds) of its last sample."""

    start_s: float
    end_s: float
    label: str
    probability: float
    probabilities: np.ndarray
    arrived: float


def check_rate(rate: int, name: str = STDIN) -> int:
    """``rate`` if it is a plausible sample rate (Hz, as ingest accepts), else AudioError."""
    if not (isinstance(rate, int) and MIN_RATE <= rate <= MAX_RATE):
        raise AudioError(
            name, f"--rate {rate}: not a plausible sample rate ({MIN_RATE}..{MAX_RATE} Hz)"
        )
    return rate


# ---------------------------------------------------------------------------
# sources
# ---------------------------------------------------------------------------


def timed_reads(
    read: Callable[[int], bytes], size: int, *, clock: Callable[[], float] = time.monotonic
) -> Iterator[tuple[bytes, float]]:
    """``(data, arrived)`` for each ``read(size)`` until it returns ``b""`` (end of
    stream).  ``read`` may return fewer bytes than asked (a pipe returns what is there)."""
    while True:
        data = read(size)
        t = clock()
        if not data:
            return
        yield data, t


def prefetch(items: Iterable, *, maxsize: int = 0, stop: threading.Event | None = None) -> Iterator:
    """Iterate ``items`` in a daemon thread, handing them over through a queue: a pipe is
    read as fast as it is written whatever the consumer does (an exception in the reader
    is raised here).  ``stop`` set while waiting raises KeyboardInterrupt within 50 ms
    (``listen``'s Ctrl-C: its handler only sets the event, see there)."""
    q: queue.Queue = queue.Queue(maxsize)
    done = object()

    def run():
        try:
            for item in items:
                q.put((item, None))
        except BaseException as exc:
            q.put((done, exc))
            return
        q.put((done, None))

    threading.Thread(target=run, name="urbansound-stream-reader", daemon=True).start()
    while True:
        try:
            item, exc = q.get(timeout=0.05)
        except queue.Empty:
            if stop is not None and stop.is_set():
                raise KeyboardInterrupt from None
            continue
        if exc is not None:
            raise exc
        if item is done:
            return
        yield item


def pcm_blocks(
    chunks: Iterable[tuple[bytes, float]], *, info: dict | None = None
) -> Iterator[TimedBlock]:
    """Decode S16_LE mono bytes to float32 samples in [-1, 1).

    A chunk may end inside a sample: its odd byte waits for the next chunk.  ``info``,
    if given, gets ``bytes`` (total read) and ``trailing_bytes``: bytes left over at the
    end of the stream (1 when it ended inside a sample; they are dropped).
    """
    info = {} if info is None else info
    carry = b""
    total = 0
    for data, arrived in chunks:
        total += len(data)
        data = carry + data
        n = len(data) - len(data) % PCM_SAMPLE_BYTES
        carry = data[n:]
        info.update(bytes=total, trailing_bytes=len(carry))
        if n:
            y = np.frombuffer(data[:n], "<i2").astype(np.float32) / np.float32(32768.0)
            yield TimedBlock(y, arrived)
    info.update(bytes=total, trailing_bytes=len(carry))


def resample_blocks(
    blocks: Iterable[TimedBlock], native_rate: int, sample_rate: int
) -> Iterator[TimedBlock]:
    """Resample a stream from ``native_rate`` to ``sample_rate`` Hz as it arrives (soxr,
    ``soxr_hq``, as :func:`urbansound.predict.stream_audio`); the output's total length
    is ``ceil(n_in * sample_rate / native_rate)``.  Output pieces keep the arrival time
    of the input block that completed them."""
    if native_rate == sample_rate:
        yield from blocks
        return
    import soxr

    resampler = soxr.ResampleStream(native_rate, sample_rate, 1, dtype="float32", quality="soxr_hq")
    n_in = n_out = 0
    pending = np.zeros(0, np.float32)
    arrived = None
    for block in blocks:
        y = np.asarray(block.samples, np.float32)
        n_in += y.size
        arrived = block.arrived
        pending = np.concatenate([pending, resampler.resample_chunk(y, last=False)])
        if pending.size > RESAMPLE_HOLD:
            out, pending = pending[:-RESAMPLE_HOLD], pending[-RESAMPLE_HOLD:]
            n_out += out.size
            yield TimedBlock(out, arrived)
    if arrived is None:
        return
    pending = np.concatenate(
        [pending, resampler.resample_chunk(np.zeros(0, np.float32), last=True)]
    )
    want = resampled_length(n_in, native_rate, sample_rate) - n_out
    pending = pending[:want] if pending.size >= want else np.pad(pending, (0, want - pending.size))
    yield TimedBlock(pending.astype(np.float32), arrived)


def file_blocks(
    path,
    *,
    sample_rate: int,
    realtime: bool = True,
    block_seconds: float = LIVE_BLOCK_SECONDS,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> Iterator[TimedBlock]:
    """A file as a stream: :func:`urbansound.predict.stream_audio`'s blocks (mono, at
    ``sample_rate``), each released, with ``realtime``, no earlier than ``t0 + n /
    sample_rate`` where ``n`` is the samples released so far with it and ``t0`` the
    time of the first block: the pace of a recording.  Without ``realtime``, as fast as
    they are pulled.  Raises AudioError as ``stream_audio`` does."""
    t0 = None
    n = 0
    for y in stream_audio(path, sample_rate=sample_rate, block_seconds=block_seconds):
        if t0 is None:
            t0 = clock()
        n += y.size
        if realtime:
            wait = t0 + n / sample_rate - clock()
            if wait > 0:
                sleep(wait)
        yield TimedBlock(y, clock())


# ---------------------------------------------------------------------------
# windows and results
# ---------------------------------------------------------------------------


def stream_windows(
    blocks: Iterable[TimedBlock],
    *,
    config: Config,
    hop_seconds: float = DEFAULT_HOP_SECONDS,
    name: str = STDIN,
) -> Iterator[LiveWindow]:
    """The windows of :func:`urbansound.windows.iter_windows` over a timed stream, each
    yielded as soon as the block holding its last sample has arrived (the end-aligned
    last window, and the single padded window of a stream shorter than one window,
    when the stream ends).

    Raises AudioError (``name``) when the stream ends before its first sample, or holds
    less than :data:`urbansound.audio.MIN_SECONDS` (20 ms, what predict and ingest refuse)
    in all: it is never padded into a window."""
    a = config.audio
    hop = hop_samples(hop_seconds, config)
    arrivals: list[tuple[int, float]] = []  # (samples so far, arrival) per block, pruned
    total = 0

    def samples():
        nonlocal total
        for block in blocks:
            if len(block.samples):
                total += len(block.samples)
                arrivals.append((total, block.arrived))
            yield block.samples

    windows = iter_windows(samples(), window=a.clip_samples, hop=hop, pad_mode=a.pad_mode)
    while True:
        try:
            start, end, y = next(windows)
        except StopIteration:
            return
        except ValueError:
            if total == 0:
                raise AudioError(name, "the stream ended before its first sample") from None
            raise
        if end - start < a.clip_samples:  # the stream ended inside its first window
            check_duration(name, total / a.sample_rate, longest=None)
        # window ends never decrease: blocks ending before this one's end are done with
        drop = 0
        while arrivals[drop][0] < end:
            drop += 1
        del arrivals[:drop]
        yield LiveWindow(start, end, y, arrivals[0][1])


def warm_up(classify: Classifier, config: Config) -> None:
    """Run the front end and the model once on a silent window, so that the first live
    window pays neither the imports and filter bank of the features nor the model's
    tracing (seconds on a first call)."""
    classify(model_input_batch([np.zeros(config.audio.clip_samples, np.float32)], config))


def classify_stream(
    windows: Iterable[LiveWindow],
    classify: Classifier,
    *,
    config: Config,
    class_names: Sequence[str] | None = None,
) -> Iterator[WindowResult]:
    """Classify each window alone (batch of one: a live window cannot wait for others)
    with the model's front end, :func:`urbansound.predict.model_input_batch`."""
    names = tuple(class_names or config.class_names)
    rate = config.audio.sample_rate
    for w in windows:
        p = np.asarray(classify(model_input_batch([w.samples], config)), np.float32)
        if p.shape != (1, len(names)):
            raise ValueError(f"the model returned shape {p.shape}, not (1, {len(names)})")
        c = int(p[0].argmax())
        yield WindowResult(w.start / rate, w.end / rate, names[c], float(p[0, c]), p[0], w.arrived)


@dataclass
class ListenStats:
    """Latencies and the process's CPU time over a listening session.

    ``add(latency_ms)`` per printed window; :meth:`summary` gives ``windows``,
    ``latency_mean_ms``, ``latency_p95_ms``, ``latency_max_ms``, ``wall_s``, ``cpu_s``
    (process CPU time, all threads) and ``cpu_share`` = cpu_s / wall_s (1.0 = one core
    busy all the time).  ``clock``/``cpu_clock``: wall and process-CPU seconds."""

    clock: Callable[[], float] = time.monotonic
    cpu_clock: Callable[[], float] = time.process_time
    latencies_ms: list[float] = field(default_factory=list)

    def __post_init__(self):
        self.wall_start = self.clock()
        self.cpu_start = self.cpu_clock()

    def add(self, latency_ms: float) -> None:
        self.latencies_ms.append(float(latency_ms))

    def summary(self) -> dict:
        wall = max(self.clock() - self.wall_start, 1e-9)
        cpu = self.cpu_clock() - self.cpu_start
        lat = np.asarray(self.latencies_ms, np.float64)
        return {
            "windows": int(lat.size),
            "latency_mean_ms": float(lat.mean()) if lat.size else None,
            "latency_p95_ms": float(np.percentile(lat, 95)) if lat.size else None,
            "latency_max_ms": float(lat.max()) if lat.size else None,
            "wall_s": float(wall),
            "cpu_s": float(cpu),
            "cpu_share": float(cpu / wall),
        }

    def line(self) -> str:
        """The summary as one line of text."""
        s = self.summary()
        lat = (
            "no latency (no window)"
            if not s["windows"]
            else f"latency mean {s['latency_mean_ms']:.0f} ms, 95th percentile "
            f"{s['latency_p95_ms']:.0f} ms, max {s['latency_max_ms']:.0f} ms"
        )
        return (
            f"{s['windows']} window(s) in {s['wall_s']:.1f} s; {lat}; CPU "
            f"{s['cpu_share']:.1%} of one core ({s['cpu_s']:.1f} s of process CPU time)"
        )
