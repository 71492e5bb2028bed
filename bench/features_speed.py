"""The features stage against the plain loop a user would otherwise write, in the same run.

    .venv/bin/python bench/features_speed.py [--data DIR] [--limit N] [--beam-arg ...]

DIR is a dataset in the UrbanSound8K layout (default: the real dev tree written out at
/tmp/us8k, else the built-in demo data written to a temporary folder).

1. Plain loop, one process: for every clip of the CSV, ``librosa.load(sr=22050)`` →
   ``melspectrogram`` (the same window, hop and bands) → ``power_to_db``.
2. ``urbansound features --data DIR --out O`` end to end in a fresh process: start-up,
   ingest (checks, decoding, TFRecords) and the Beam stage, as a user runs it.

Prints clips/s of each and their ratio, and writes ``bench/results/features_speed.json``.
Run it with nothing else on the machine.
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def clip_paths(data: Path, limit: int | None) -> list[Path]:
    with open(data / "metadata" / "UrbanSound8K.csv", newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    paths = [data / "audio" / f"fold{r['fold']}" / r["slice_file_name"] for r in rows]
    return paths[:limit] if limit else paths


def plain_loop(paths: list[Path]) -> float:
    """Seconds for the loop a user would write (first 3 s, the project's log-mel settings)."""
    import librosa
    import numpy as np

    from urbansound.config import Config

    f, a = Config().features, Config().audio
    started = time.perf_counter()
    for path in paths:
        y, _ = librosa.load(path, sr=a.sample_rate, mono=True, duration=a.clip_seconds)
        y = np.pad(y, (0, max(0, a.clip_samples - len(y))))
        mel = librosa.feature.melspectrogram(y=y, sr=a.sample_rate, n_fft=f.n_fft,
                                             hop_length=f.hop_length, win_length=f.win_length,
                                             n_mels=f.n_mels, htk=True, norm=None, center=False)
        librosa.power_to_db(mel, ref=np.max, top_db=f.top_db)
    return time.perf_counter() - started


def subset(data: Path, paths: list[Path], root: Path) -> Path:
    """A dataset of only ``paths`` (hard links or copies: ingest refuses symbolic links
    that lead out of the dataset), so both sides see the same clips."""
    (root / "metadata").mkdir(parents=True)
    with open(data / "metadata" / "UrbanSound8K.csv", newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        wanted = {p.name for p in paths}
        rows = [r for r in reader if r["slice_file_name"] in wanted]
        fields = reader.fieldnames
    with open(root / "metadata" / "UrbanSound8K.csv", "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)
    for p in paths:
        target = root / "audio" / p.parent.name / p.name
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(p, target)
        except OSError:
            shutil.copyfile(p, target)
    return root


def urbansound_features(data: Path, out: Path, beam_args: list[str]) -> float:
    command = [str(ROOT / ".venv" / "bin" / "urbansound"), "features", "--data", str(data),
               "--out", str(out), *[f"--beam-arg={a}" for a in beam_args]]
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"urbansound features failed (exit {done.returncode}): "
                         f"{(done.stderr or done.stdout).strip().splitlines()[-1:]}")
    return time.perf_counter() - started


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="/tmp/us8k" if Path("/tmp/us8k/metadata").exists()
                        else "")
    parser.add_argument("--limit", type=int, default=None, help="first N clips of the CSV")
    parser.add_argument("--beam-arg", action="append", default=[])
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "features_speed.json"))
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory() as tmp:
        data = Path(args.data) if args.data else None
        if data is None:
            from urbansound.demo_data import write_demo_dataset

            data = Path(tmp) / "demo"
            write_demo_dataset(data)
        paths = clip_paths(data, args.limit)
        if args.limit:
            data = subset(data, paths, Path(tmp) / "subset")
        plain_s = plain_loop(paths)
        ours_s = urbansound_features(data, Path(tmp) / "features", args.beam_arg)
    n = len(paths)
    result = {"data": str(args.data or "built-in demo"), "clips": n,
              "plain_loop_s": round(plain_s, 1), "plain_clips_per_s": round(n / plain_s, 1),
              "urbansound_features_s": round(ours_s, 1),
              "urbansound_clips_per_s": round(n / ours_s, 1),
              "speedup_vs_plain": round(plain_s / ours_s, 2), "beam_args": args.beam_arg,
              "cores": os.cpu_count()}
    print(f"{'':<36} {'seconds':>8} {'clips/s':>8}")
    print(f"{'plain loop (librosa, 1 process)':<36} {plain_s:>8.1f} {n / plain_s:>8.1f}")
    print(f"{'urbansound features (end to end)':<36} {ours_s:>8.1f} {n / ours_s:>8.1f}")
    print(f"speed-up over the plain loop: {plain_s / ours_s:.2f}x ({n} clips, target >= 2x)")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2))
    print(f"written {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
