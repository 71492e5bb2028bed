"""Write a full-size UrbanSound8K-like tree (8,732 clips, the published mix of formats) from
the real dev clips, for benchmarks that must see the real dataset's size and formats.

    .venv/bin/python bench/make_full_size.py DEST [--source /tmp/us8k] [--clips 8732]

UrbanSound8K is distributed as its clips were uploaded to freesound: 44.1, 48 and 96 kHz
and a tail of other rates, mostly stereo, 16- or 24-bit with a few 8-, 32-bit float and
4-bit ADPCM files, 84 % of the clips 4 s long and the rest shorter.  This script draws
each clip's format from those published counts (below) and its sound from the real dev
clips (SOURCE, an UrbanSound8K tree such as the one ../shared/data/us8k-real-dev
writes): clip i is real clip i mod n, resampled with soxr, cut to its drawn length,
written as WAV in its drawn format.  Ten folds, four slices per recording, one recording
in one fold.  Deterministic (seed 0).  About 6 GB; two processes, a few minutes.
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
from concurrent import futures
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# Counts in the published UrbanSound8K (8,732 clips), from its WAV headers.
SAMPLE_RATES = {
    44100: 5370,
    48000: 2502,
    96000: 610,
    24000: 82,
    16000: 45,
    22050: 44,
    11025: 39,
    192000: 17,
    8000: 12,
    11024: 7,
    32000: 4,
}
CHANNELS = {2: 7993, 1: 739}
SUBTYPES = {"PCM_16": 5758, "PCM_24": 2753, "FLOAT": 169, "PCM_U8": 43, "IMA_ADPCM": 9}
FULL_LENGTH_SHARE = 0.84
"""Share of clips exactly 4 s long; the others are uniform between 0.3 and 4 s."""
CSV_FIELDS = ["slice_file_name", "fsID", "start", "end", "salience", "fold", "classID", "class"]


def _draw(rng: np.random.Generator, counts: dict, n: int) -> np.ndarray:
    values = np.array(list(counts))
    p = np.array(list(counts.values()), dtype=float)
    return values[rng.choice(len(values), size=n, p=p / p.sum())]


def plan(source_rows: list[dict], n_clips: int, seed: int = 0) -> list[dict]:
    """One dict per clip to write: its CSV row and its format (rate, channels, subtype,
    seconds) and the source clip it is made from."""
    rng = np.random.default_rng(seed)
    rates, channels = _draw(rng, SAMPLE_RATES, n_clips), _draw(rng, CHANNELS, n_clips)
    subtypes = _draw(rng, SUBTYPES, n_clips)
    seconds = np.where(rng.random(n_clips) < FULL_LENGTH_SHARE, 4.0, rng.uniform(0.3, 4.0, n_clips))
    clips = []
    for i in range(n_clips):
        src = source_rows[i % len(source_rows)]
        recording, slice_index = 200000 + i // 4, i % 4
        name = f"{recording}-{src['classID']}-0-{slice_index}.wav"
        clips.append(
            {
                "row": {
                    "slice_file_name": name,
                    "fsID": recording,
                    "start": f"{slice_index * 4.0:.1f}",
                    "end": f"{slice_index * 4.0 + seconds[i]:.3f}",
                    "salience": src["salience"],
                    "fold": (i // 4) % 10 + 1,
                    "classID": src["classID"],
                    "class": src["class"],
                },
                "source": src["path"],
                "rate": int(rates[i]),
                "channels": int(channels[i]),
                "subtype": str(subtypes[i]),
                "seconds": float(seconds[i]),
            }
        )
    return clips


def write_clip(clip: dict, dest: str) -> int:
    """Write one clip; return its size in bytes."""
    import soundfile as sf

    from urbansound.audio import load_audio, resample

    y = load_audio(clip["source"], sample_rate=22050).astype(np.float64)
    y = resample(y, orig_sr=22050, target_sr=clip["rate"])
    y = y[: max(1, int(round(clip["seconds"] * clip["rate"])))]
    if clip["channels"] == 2:  # a second channel that differs slightly, as a real stereo mic
        y = np.stack([y, 0.9 * np.roll(y, 7)], axis=1)
    y = np.clip(y, -1.0, 1.0)
    path = Path(dest) / "audio" / f"fold{clip['row']['fold']}" / clip["row"]["slice_file_name"]
    rate = clip["rate"]
    if clip["subtype"] == "IMA_ADPCM" and rate > 48000:  # libsndfile's ADPCM limit
        rate = 48000
        y = resample(
            y if y.ndim == 1 else np.ascontiguousarray(y[:, 0]),
            orig_sr=clip["rate"],
            target_sr=rate,
        )
    sf.write(path, y, rate, subtype=clip["subtype"], format="WAV")
    return path.stat().st_size


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dest")
    parser.add_argument(
        "--source",
        default="/tmp/us8k",
        help="an UrbanSound8K tree of real clips (default /tmp/us8k)",
    )
    parser.add_argument("--clips", type=int, default=8732)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args(argv)

    source, dest = Path(args.source), Path(args.dest)
    with open(source / "metadata" / "UrbanSound8K.csv", newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    for r in rows:
        r["path"] = str(source / "audio" / f"fold{r['fold']}" / r["slice_file_name"])
    clips = plan(rows, args.clips)
    for fold in range(1, 11):
        (dest / "audio" / f"fold{fold}").mkdir(parents=True, exist_ok=True)
    (dest / "metadata").mkdir(parents=True, exist_ok=True)
    from tqdm import tqdm

    with futures.ProcessPoolExecutor(args.workers) as pool:
        sizes = list(
            tqdm(
                pool.map(write_clip, clips, [str(dest)] * len(clips), chunksize=16),
                total=len(clips),
                desc="writing",
                unit="clip",
            )
        )
    with open(dest / "metadata" / "UrbanSound8K.csv", "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=CSV_FIELDS)
        writer.writeheader()
        writer.writerows(c["row"] for c in clips)
    print(f"{len(clips)} clips, {sum(sizes) / 1e9:.2f} GB in {dest}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
