"""Latency and CPU share of ``urbansound listen`` on real audio played at real time.

    .venv/bin/python bench/listen_latency.py --model M [--clips DIR] [--seconds 60] [--hop 1.5]

Real clips (default: the real dev set, ../shared/data/us8k-real-dev/audio/fold1, else
/tmp/us8k/audio/fold1) are decoded at 22,050 Hz and joined into one ``--seconds`` long
16-bit WAV, which ``urbansound listen MODEL --input WAV`` (a subprocess, as a user runs
it) plays at the pace of a recording.  Latency: from the arrival of a window's last
sample to its printed line (what listen prints per window); CPU share: the process's
CPU time over the wall time of the stream (from listen's summary; model loading is
before it).  Without ``--model`` an untrained urbannet (seed 0) is used: the cost does
not depend on the weights.  Prints a table and writes bench/results/listen.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
DEFAULT_CLIPS = [
    ROOT.parent / "shared" / "data" / "us8k-real-dev" / "audio" / "fold1",
    Path("/tmp/us8k/audio/fold1"),
]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", help="a model predict takes (default: urbannet, untrained)")
    ap.add_argument("--clips", help="a folder of real clips")
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--hop", type=float, default=1.5)
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "listen.json"))
    args = ap.parse_args(argv)

    import soundfile as sf

    from urbansound.predict import find_audio_files, read_audio

    clips_dir = (
        Path(args.clips) if args.clips else next((p for p in DEFAULT_CLIPS if p.is_dir()), None)
    )
    if clips_dir is None:
        print("no real clips here: give --clips", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as tmp:
        model = args.model
        if not model:
            from urbansound.models import build_model

            m = build_model(
                "urbannet",
                seed=0,
                band_mean=np.full(128, -40.0, np.float32),
                band_variance=np.full(128, 400.0, np.float32),
            )
            model = str(Path(tmp) / "model.keras")
            m.save(model)
        parts, n, used = [], 0, 0
        for path in find_audio_files([clips_dir]):
            y = read_audio(path, sample_rate=22050)
            parts.append(y)
            n += y.size
            used += 1
            if n >= args.seconds * 22050:
                break
        y = np.concatenate(parts)[: int(args.seconds * 22050)]
        wav = Path(tmp) / "stream.wav"
        sf.write(wav, np.clip(y, -1, 1), 22050, subtype="PCM_16")
        started = time.monotonic()
        proc = subprocess.run(
            [
                str(Path(sys.executable).with_name("urbansound")),
                "listen",
                model,
                "--input",
                str(wav),
                "--hop",
                str(args.hop),
            ],
            capture_output=True,
            text=True,
            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
        )
        total = time.monotonic() - started
    if proc.returncode != 0:
        print(proc.stdout[-2000:], proc.stderr[-2000:], file=sys.stderr)
        return 1
    latencies = [
        float(line.split()[-1])
        for line in proc.stdout.splitlines()
        if re.match(r"^\s+\d+\.\d\d\s+\d+\.\d\d\s+\S+\s+[01]\.\d{3}\s+\d+$", line)
    ]
    summary = next(line for line in proc.stdout.splitlines() if line.startswith("summary"))
    cpu_share = float(re.search(r"CPU ([\d.]+)% of one core", summary).group(1)) / 100
    wall = float(re.search(r"window\(s\) in ([\d.]+) s", summary).group(1))
    lat = np.asarray(latencies)
    report = {
        "model": args.model or "urbannet (untrained, seed 0)",
        "clips": str(clips_dir),
        "clips_used": used,
        "audio_s": len(y) / 22050,
        "hop_s": args.hop,
        "windows": int(lat.size),
        "latency_mean_ms": float(lat.mean()),
        "latency_p50_ms": float(np.median(lat)),
        "latency_p95_ms": float(np.percentile(lat, 95)),
        "latency_max_ms": float(lat.max()),
        "stream_wall_s": wall,
        "cpu_share": cpu_share,
        "command_wall_s": total,
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "load_average_1min": os.getloadavg()[0],
        "summary_line": summary,
    }
    print(
        f"{report['model']}: {report['audio_s']:.0f} s of {used} real clips at real time, "
        f"hop {args.hop:g} s (load average {report['load_average_1min']:.1f})"
    )
    print(
        f"{'windows':>8} {'mean ms':>8} {'p50 ms':>7} {'p95 ms':>7} {'max ms':>7} "
        f"{'CPU share':>10} {'stream s':>9}"
    )
    print(
        f"{lat.size:>8} {lat.mean():>8.0f} {np.median(lat):>7.0f} "
        f"{np.percentile(lat, 95):>7.0f} {lat.max():>7.0f} {cpu_share:>10.1%} {wall:>9.1f}"
    )
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
