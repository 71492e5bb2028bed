"""The features stage against the plain loop a user would otherwise write, in the same run.

    .venv/bin/python bench/features_speed.py [--data DIR] [--limit N] [--beam-arg ...]

DIR is a dataset in the UrbanSound8K layout (default: the real dev tree written out at
/tmp/us8k, else the built-in demo data written to a temporary folder; for the full
dataset's size and formats write one with ``bench/make_full_size.py``).

1. Plain loop, one fresh process (``python -c``, its imports included): for every clip
   of the CSV, ``librosa.load(sr=22050)`` → ``melspectrogram`` (the same window, hop and
   bands) → ``power_to_db``.
2. ``urbansound features --data DIR --out O`` end to end in a fresh process: start-up,
   ingest (checks, decoding, TFRecords) and the Beam stage, as a user runs it.
3. What two cores can do: the per-clip work (urbansound's decode + resample + log-mel,
   in one warm process, on up to 400 clips) times the clips, halved; against the time
   ingest and the Beam stage took together (their own throughput, start-up excluded).

Every audio file is read once before the timings, so both sides find it in the page cache.
Prints a table and writes ``bench/results/features_speed.json``.  Run it with nothing
else on the machine.
"""

from __future__ import annotations

import argparse
import csv
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench_io import write_result

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

PLAIN_LOOP = """
import sys, time
import librosa, numpy as np
paths = open(sys.argv[1]).read().split(chr(10))
sr, seconds, n_fft, hop, win, n_mels, top_db, samples = map(float, sys.argv[2:])
sr, n_fft, hop, win, n_mels, samples = map(int, (sr, n_fft, hop, win, n_mels, samples))
looped = time.perf_counter()
for path in paths:
    y, _ = librosa.load(path, sr=sr, mono=True, duration=seconds)
    y = np.pad(y, (0, max(0, samples - len(y))))
    mel = librosa.feature.melspectrogram(y=y, sr=sr, n_fft=n_fft, hop_length=hop,
                                         win_length=win, n_mels=n_mels, htk=True, norm=None,
                                         center=False)
    librosa.power_to_db(mel, ref=np.max, top_db=top_db)
print(time.perf_counter() - looped)
"""
"""The plain loop (first 3 s of each clip, the project's log-mel settings) as ``python -c``:
argv is a file listing the clips, then the settings; prints the loop's own seconds."""


def clip_paths(data: Path, limit: int | None) -> list[Path]:
    with open(data / "metadata" / "UrbanSound8K.csv", newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    paths = [data / "audio" / f"fold{r['fold']}" / r["slice_file_name"] for r in rows]
    return paths[:limit] if limit else paths


def warm_page_cache(paths: list[Path]) -> None:
    for path in paths:
        with open(path, "rb") as fh:
            while fh.read(1 << 20):
                pass


def plain_loop(paths: list[Path], tmp: Path) -> tuple[float, float]:
    """(process seconds, loop seconds) of the plain loop in a fresh Python process."""
    from urbansound.config import Config

    f, a = Config().features, Config().audio
    listing = tmp / "plain_paths.txt"  # a file, not argv: 8,732 paths are too long a command
    listing.write_text("\n".join(map(str, paths)))
    settings = [
        a.sample_rate,
        a.clip_seconds,
        f.n_fft,
        f.hop_length,
        f.win_length,
        f.n_mels,
        f.top_db,
        a.clip_samples,
    ]
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", PLAIN_LOOP, str(listing), *map(str, settings)],
        capture_output=True,
        text=True,
        check=True,
    )
    return time.perf_counter() - started, float(done.stdout.strip().splitlines()[-1])


def per_clip_work(paths: list[Path], sample: int = 400) -> float:
    """Mean seconds of urbansound's own work on one clip (decode, mix down, resample,
    log-mel), one warm process, over up to ``sample`` clips spread over the list."""
    from urbansound.audio import load_audio
    from urbansound.config import Config
    from urbansound.features import model_input

    config = Config()
    step = max(1, len(paths) // sample)
    chosen = paths[::step][:sample]
    model_input(load_audio(chosen[0], sample_rate=config.audio.sample_rate), config)  # warm
    started = time.perf_counter()
    for path in chosen:
        model_input(load_audio(path, sample_rate=config.audio.sample_rate), config)
    return (time.perf_counter() - started) / len(chosen)


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


def urbansound_features(data: Path, out: Path, beam_args: list[str]) -> dict:
    """Seconds of ``urbansound features`` end to end, and of its ingest and Beam stage
    as it reports them."""
    command = [
        str(ROOT / ".venv" / "bin" / "urbansound"),
        "features",
        "--data",
        str(data),
        "--out",
        str(out),
        *[f"--beam-arg={a}" for a in beam_args],
    ]
    # run through a launcher whose only descendants are urbansound's: its RUSAGE_CHILDREN
    # peak is the largest resident set among urbansound and its workers (KB on Linux)
    launcher = (
        "import resource, subprocess, sys; code = subprocess.run(sys.argv[1:]).returncode; "
        "print('PEAK_RSS_KB', resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, "
        "file=sys.stderr); sys.exit(code)"
    )
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", launcher, *command], capture_output=True, text=True
    )
    total = time.perf_counter() - started
    peak = re.search(r"PEAK_RSS_KB (\d+)", done.stderr)
    peak_mb = int(peak.group(1)) / 1024 if peak else float("nan")
    if done.returncode:
        raise SystemExit(
            f"urbansound features failed (exit {done.returncode}): "
            f"{(done.stderr or done.stdout).strip().splitlines()[-1:]}"
        )
    ingest = re.search(r"rejected \(report: .*\) \(([0-9.]+) s\)", done.stdout)
    beam = re.search(r"examples in .* \(([0-9.]+) s, ", done.stdout)
    return {
        "total": total,
        "peak_rss_mb": round(peak_mb),
        "ingest": float(ingest.group(1)) if ingest else None,
        "beam": float(beam.group(1)) if beam else None,
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--data", default="/tmp/us8k" if Path("/tmp/us8k/metadata").exists() else ""
    )
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
        warm_page_cache(paths)
        plain_s, plain_loop_s = plain_loop(paths, Path(tmp))
        ours = urbansound_features(data, Path(tmp) / "features", args.beam_arg)
        work_s = per_clip_work(paths)
    n, cores = len(paths), os.cpu_count() or 1
    ideal_s = n * work_s / cores
    stages_s = (ours["ingest"] or 0.0) + (ours["beam"] or 0.0)
    result = {
        "data": str(args.data or "built-in demo"),
        "clips": n,
        "cores": cores,
        "plain_process_s": round(plain_s, 1),
        "plain_loop_only_s": round(plain_loop_s, 1),
        "plain_clips_per_s": round(n / plain_s, 1),
        "urbansound_features_s": round(ours["total"], 1),
        "urbansound_clips_per_s": round(n / ours["total"], 1),
        "speedup_vs_plain": round(plain_s / ours["total"], 2),
        "ingest_s": ours["ingest"],
        "beam_stage_s": ours["beam"],
        "peak_rss_mb": ours["peak_rss_mb"],
        "per_clip_work_ms": round(work_s * 1000, 2),
        "ideal_cores_s": round(ideal_s, 1),
        "stages_share_of_ideal": round(ideal_s / stages_s, 2) if stages_s else None,
        "beam_args": args.beam_arg,
    }
    rows = [
        ("plain loop, 1 process (imports included)", plain_s),
        ("  of which the loop itself", plain_loop_s),
        ("urbansound features (end to end)", ours["total"]),
        ("  of which ingest", ours["ingest"]),
        ("  of which the Beam stage", ours["beam"]),
        (f"per-clip work x clips / {cores} cores (ideal)", ideal_s),
    ]
    print(f"{'':<44} {'seconds':>8} {'clips/s':>8}")
    for label, seconds in rows:
        if seconds:
            print(f"{label:<44} {seconds:>8.1f} {n / seconds:>8.1f}")
    print(f"speed-up over the plain loop: {plain_s / ours['total']:.2f}x ({n} clips, target >= 2x)")
    print(f"peak RSS of urbansound features (largest process): {ours['peak_rss_mb']} MB")
    if stages_s:
        print(
            f"ingest + Beam stage at {ideal_s / stages_s:.0%} of what {cores} cores can do "
            f"(target >= 80 %)"
        )
    write_result(args.out, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
