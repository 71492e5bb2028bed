"""Augmentation against the plain per-clip muda loop a user would otherwise write, in the same run.

    .venv/bin/python bench/augment_speed.py [--data DIR] [--clips N] [--set study]

DIR is a dataset in the UrbanSound8K layout (default: the real dev tree at /tmp/us8k,
else the built-in demo data); the first N clips of its CSV (default 100) are used.

For each deformation of the set, and for the whole set at once:

1. Plain loop, one fresh process (imports included): per clip ``librosa.load(sr=22050)``
   once, then for each deformation muda's own ``deformer.transform(jam)`` on the packed
   clip and the log-mel (``librosa`` melspectrogram → power_to_db) of the result.  The
   deformers are the same muda objects urbansound builds (same noise files).
2. ``urbansound features --data W --out O --augment NAMES`` in a fresh process, where W
   is the subset ingested once beforehand (ingest's time is reported on its own row):
   start-up, the Beam stage on both cores, deformations and log-mels of originals and
   copies, a fresh deformation cache.

Prints deformed clips/s of both and their ratio, writes ``bench/results/augment_speed.json``.
Run it with nothing else on the machine.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench_io import write_result

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from features_speed import clip_paths, subset, warm_page_cache  # noqa: E402

PLAIN_LOOP = """
import json, sys, time
started = time.perf_counter()
import jams, librosa, muda, numpy as np
from urbansound.augment import make_deformer
settings = json.loads(sys.argv[1])
paths = open(settings["paths"]).read().split(chr(10))
deformers = {name: make_deformer(name) for name in settings["deformations"]}
sr = settings["sample_rate"]
for path in paths:
    y, _ = librosa.load(path, sr=sr, mono=True)
    for name, deformer in deformers.items():
        jam = jams.JAMS()
        jam.file_metadata.duration = len(y) / sr
        jam = muda.jam_pack(jam, _audio=dict(y=y, sr=sr))
        for out in deformer.transform(jam):
            z = out.sandbox.muda._audio["y"][:settings["samples"]]
            z = np.pad(z, (0, max(0, settings["samples"] - len(z))))
            mel = librosa.feature.melspectrogram(y=z, sr=sr, n_fft=settings["n_fft"],
                hop_length=settings["hop"], win_length=settings["win"],
                n_mels=settings["n_mels"], htk=True, norm=None, center=False)
            librosa.power_to_db(mel, ref=np.max, top_db=settings["top_db"])
print(time.perf_counter() - started)
"""


def plain_loop(paths: list[Path], deformations: list[str], tmp: Path) -> float:
    """Seconds of the plain loop (process wall time, imports included)."""
    from urbansound.config import Config

    f, a = Config().features, Config().audio
    listing = tmp / "plain_paths.txt"
    listing.write_text("\n".join(map(str, paths)))
    settings = {
        "paths": str(listing),
        "deformations": deformations,
        "sample_rate": a.sample_rate,
        "samples": a.clip_samples,
        "n_fft": f.n_fft,
        "hop": f.hop_length,
        "win": f.win_length,
        "n_mels": f.n_mels,
        "top_db": f.top_db,
    }
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "-c", PLAIN_LOOP, json.dumps(settings)],
        check=True,
        capture_output=True,
        text=True,
        env=env,
    )
    return time.perf_counter() - started


def urbansound_augment(waveforms: Path, out: Path, deformations: list[str]) -> float:
    command = [
        str(ROOT / ".venv" / "bin" / "urbansound"),
        "features",
        "--data",
        str(waveforms),
        "--out",
        str(out),
        "--augment",
        ",".join(deformations),
    ]
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(
            f"urbansound features failed (exit {done.returncode}): "
            f"{(done.stderr or done.stdout).strip().splitlines()[-1:]}"
        )
    return time.perf_counter() - started


def main(argv=None) -> int:
    from urbansound.deformations import DEFORMATION_SETS

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--data", default="/tmp/us8k" if Path("/tmp/us8k/metadata").exists() else ""
    )
    parser.add_argument("--clips", type=int, default=100)
    parser.add_argument("--set", default="study", choices=sorted(DEFORMATION_SETS))
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "augment_speed.json"))
    args = parser.parse_args(argv)

    deformations = list(DEFORMATION_SETS[args.set])
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        data = Path(args.data) if args.data else None
        if data is None:
            from urbansound.demo_data import write_demo_dataset

            data = tmp / "demo"
            write_demo_dataset(data)
        paths = clip_paths(data, args.clips)
        data = subset(data, paths, tmp / "subset")
        warm_page_cache(paths)
        from urbansound.ingest import ingest

        started = time.perf_counter()
        ingest(data, tmp / "waveforms")
        ingest_s = time.perf_counter() - started
        for label, names in [(n, [n]) for n in deformations] + [
            (f"set '{args.set}'", deformations)
        ]:
            plain_s = plain_loop(paths, names, tmp)
            ours_s = urbansound_augment(tmp / "waveforms", tmp / f"out-{len(rows)}", names)
            copies = len(paths) * len(names)
            rows.append(
                {
                    "deformations": label,
                    "copies": copies,
                    "plain_s": round(plain_s, 1),
                    "plain_copies_per_s": round(copies / plain_s, 2),
                    "urbansound_s": round(ours_s, 1),
                    "urbansound_copies_per_s": round(copies / ours_s, 2),
                    "speedup": round(plain_s / ours_s, 2),
                }
            )
            print(
                f"{label:<28} plain {plain_s:6.1f} s  urbansound {ours_s:6.1f} s  "
                f"{plain_s / ours_s:.2f}x",
                flush=True,
            )
    print(f"\n{'deformations':<28} {'copies':>6} {'plain/s':>8} {'ours/s':>8} {'speed-up':>8}")
    for r in rows:
        print(
            f"{r['deformations']:<28} {r['copies']:>6} {r['plain_copies_per_s']:>8.2f} "
            f"{r['urbansound_copies_per_s']:>8.2f} {r['speedup']:>7.2f}x"
        )
    print(f"(ingest of the {len(paths)} clips, once, before: {ingest_s:.1f} s; target >= 2x)")
    result = {
        "data": str(args.data or "built-in demo"),
        "clips": len(paths),
        "set": args.set,
        "ingest_s": round(ingest_s, 1),
        "rows": rows,
        "cores": os.cpu_count(),
    }
    write_result(args.out, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
