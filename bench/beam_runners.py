"""The features stage on each runner, same input, same output: one process, a worker process
per core (the local default), and Beam's Dask runner on a local 2-worker cluster.

    .venv/bin/python bench/beam_runners.py [--data DIR] [--augment NAMES]

DIR is an UrbanSound8K tree (default: the real dev tree at /tmp/us8k); it is ingested once
first.  Times the Beam stage alone (``run_features``; the Dask cluster's start is timed on
its own row), checks that every runner wrote the same records byte for byte, prints a table
and writes ``bench/results/beam_runners.json``.  Run it with nothing else on the machine.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

from bench_io import write_result

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def records_of(directory: Path, folds) -> dict:
    from urbansound.beam_features import fold_paths, read_tfrecords

    return {
        f: sorted(r for p in fold_paths(str(directory), f) for r in read_tfrecords(p))
        for f in folds
    }


def main(argv=None) -> int:
    import logging

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="/tmp/us8k")
    parser.add_argument("--augment", default="", help="comma-separated deformations")
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "beam_runners.json"))
    args = parser.parse_args(argv)
    logging.disable(logging.WARNING)  # Beam's and Dask's own chatter

    from distributed import LocalCluster

    from urbansound.beam_features import dask_beam_args, default_beam_args, run_features
    from urbansound.config import Config
    from urbansound.ingest import ingest

    config = Config()
    if args.augment:
        config = config.override(**{"augment.deformations": tuple(args.augment.split(","))})
    rows, outputs = [], {}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        folds = ingest(args.data, tmp / "waveforms").folds

        def timed(label, beam_args):
            out = tmp / f"out-{len(rows)}"
            started = time.perf_counter()
            manifest = run_features(tmp / "waveforms", out, config=config, beam_args=beam_args)
            seconds = time.perf_counter() - started
            outputs[label] = records_of(out, folds)
            rows.append(
                {
                    "runner": label,
                    "seconds": round(seconds, 1),
                    "examples": sum(sum(v.values()) for v in manifest["folds"].values()),
                    "workers": manifest["workers"],
                }
            )
            print(f"{label:<46} {seconds:6.1f} s", flush=True)

        timed("one process (FnApiRunner)", ["--runner=FnApiRunner"])
        timed(f"FnApiRunner, {os.cpu_count()} worker processes (default)", default_beam_args())
        started = time.perf_counter()
        with LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            dashboard_address=None,
        ) as cluster:
            cluster_s = time.perf_counter() - started
            timed(
                "Dask, LocalCluster of 2 worker processes",
                dask_beam_args(cluster.scheduler_address),
            )
    first = next(iter(outputs.values()))
    same = all(o == first for o in outputs.values())
    n = sum(len(v) for v in first.values())
    print(f"\n{'runner':<46} {'seconds':>8} {'examples/s':>10}")
    for r in rows:
        print(f"{r['runner']:<46} {r['seconds']:>8.1f} {r['examples'] / r['seconds']:>10.1f}")
    print(
        f"(Dask cluster start, not included: {cluster_s:.1f} s; {n} examples; "
        f"identical output on every runner: {same})"
    )
    write_result(
        args.out,
        {
            "data": args.data,
            "augment": args.augment,
            "rows": rows,
            "dask_cluster_start_s": round(cluster_s, 1),
            "identical_outputs": same,
            "cores": os.cpu_count(),
        },
    )
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
