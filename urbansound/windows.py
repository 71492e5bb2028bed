"""Where the windows of a recording start, and cutting a stream of blocks into them (a leaf).

One rule for every path that classifies windows: prediction (a file, a served row, a
live stream) and the features stage's test-time windows.  Positions are in samples: the
grid 0, hop, 2·hop, ... of whole windows, plus an end-aligned last window when the grid
stops short of the end; a recording shorter than a window is one padded window.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import numpy as np

from urbansound.audio import fix_length


def window_starts(n_samples: int, *, window: int, hop: int) -> np.ndarray:
    """Start sample of every window of a recording of ``n_samples`` samples.

    Returns
    -------
    np.ndarray [shape=(n_windows,), dtype=int64]: ``[0]`` when n_samples <= window,
        else 0, hop, 2·hop, ... while ``start + window <= n_samples``, then
        ``n_samples - window`` if the last of those ends before ``n_samples``.
    """
    if n_samples < 1 or window < 1 or hop < 1:
        raise ValueError(f"need n_samples, window and hop >= 1, got {n_samples}, {window}, {hop}")
    if n_samples <= window:
        return np.zeros(1, np.int64)
    starts = np.arange(0, n_samples - window + 1, hop, dtype=np.int64)
    if starts[-1] + window < n_samples:
        starts = np.append(starts, n_samples - window)
    return starts


def count_windows(n_samples: int, *, window: int, hop: int) -> int:
    """``len(window_starts(n_samples, window=window, hop=hop))`` without making them: the
    windows of a recording of ``n_samples`` samples (n_samples >= 1)."""
    if n_samples < 1 or window < 1 or hop < 1:
        raise ValueError(f"need n_samples, window and hop >= 1, got {n_samples}, {window}, {hop}")
    if n_samples <= window:
        return 1
    grid = (n_samples - window) // hop + 1
    return grid + (1 if (grid - 1) * hop + window < n_samples else 0)


def iter_windows(
    blocks: Iterable[np.ndarray], *, window: int, hop: int, pad_mode: str = "loop"
) -> Iterator[tuple[int, int, np.ndarray]]:
    """Cut a stream of waveform blocks into windows, holding at most about
    ``window + len(block)`` samples.

    Parameters
    ----------
    blocks : consecutive pieces of one mono waveform, each np.ndarray [shape=(m,)], any m >= 0.
    window, hop : samples.
    pad_mode : how a recording shorter than ``window`` is filled (see
        :func:`urbansound.audio.fix_length`).

    Yields
    ------
    (start, end, samples): sample positions in the recording (end exclusive, at most
        its length) and np.ndarray [shape=(window,), dtype=float32]; the windows of
        :func:`window_starts`, in order.
    """
    buf = np.zeros(0, np.float32)
    buf_start = 0  # recording position of buf[0]
    next_start = 0
    last_end = 0  # end of the last window yielded
    total = 0
    for block in blocks:
        block = np.asarray(block, np.float32)
        if block.size == 0:
            continue
        buf = np.concatenate([buf, block])
        total += block.size
        while next_start + window <= total:
            lo = next_start - buf_start
            yield next_start, next_start + window, buf[lo : lo + window].copy()
            last_end = next_start + window
            next_start += hop
        # keep what the next grid window or an end-aligned last window can need
        keep_from = min(next_start, total - window)
        if keep_from > buf_start:
            buf = buf[keep_from - buf_start :]
            buf_start = keep_from
    if total == 0:
        raise ValueError("no samples")
    if total < window:
        yield 0, total, fix_length(buf, window, pad_mode=pad_mode)
    elif last_end < total:
        lo = total - window - buf_start
        yield total - window, total, buf[lo : lo + window].copy()
