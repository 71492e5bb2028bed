"""What the content fingerprint of a dataset costs: cold (no digest cache), warm (the cache
of a previous run, tree unchanged), against the listing alone and the old size-only key.

    .venv/bin/python bench/fingerprint_speed.py [--data DIR] [--drop-caches] [--repeat N]

DIR is a dataset in the UrbanSound8K layout (default /tmp/fullsize, the tree
``bench/make_full_size.py`` writes: 8,732 clips, 6.9 GB).  Rows:

1. ``listing``: :func:`urbansound.layouts.list_clips` (what every run does anyway).
2. ``size-only key (old)``: a stat per clip, the fingerprint before issue 15.
3. ``cold, disk``: every clip hashed, no digest cache, the page cache dropped first
   (``sync; echo 3 > /proc/sys/vm/drop_caches``: root only; with ``--drop-caches``, and
   the row says when it could not be done).
4. ``cold, page cache``: every clip hashed, no digest cache, the files already in memory.
5. ``warm``: the digest cache written by row 4, the tree unchanged (a stat per clip).

Prints a table and writes ``bench/results/fingerprint_speed_<DIR name>.json``.  Run it with
nothing else on the machine.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench_io import write_result

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _size_only(clips) -> str:
    digest = hashlib.sha256()
    for c in sorted(clips, key=lambda c: (c.fold, c.file_name)):
        digest.update(
            f"{c.fold}\t{c.file_name}\t{c.class_id}\t{os.stat(c.path).st_size}\n".encode()
        )
    return digest.hexdigest()[:16]


def _drop_page_cache() -> str:
    """'' when the page cache was dropped, else why not."""
    try:
        subprocess.run(["sync"], check=True)
        with open("/proc/sys/vm/drop_caches", "w") as fh:
            fh.write("3\n")
        return ""
    except (OSError, subprocess.CalledProcessError) as exc:
        return f"could not drop the page cache ({getattr(exc, 'strerror', None) or exc})"


def _timed(call, repeat: int = 1) -> tuple[float, object]:
    best, value = float("inf"), None
    for _ in range(repeat):
        started = time.perf_counter()
        value = call()
        best = min(best, time.perf_counter() - started)
    return best, value


def main(argv=None) -> int:
    from urbansound import content_hash
    from urbansound.content_hash import content_digests
    from urbansound.dataset import dataset_fingerprint
    from urbansound.layouts import list_clips

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="/tmp/fullsize")
    ap.add_argument(
        "--drop-caches", action="store_true", help="also time a cold read from disk (root only)"
    )
    ap.add_argument("--repeat", type=int, default=3, help="best of N for the cheap rows")
    args = ap.parse_args(argv)
    data = Path(args.data)
    # the tree was written minutes ago at most: its entries are not "racy" for this purpose
    content_hash.RACY_NS = 0

    listing_s, (clips, _) = _timed(lambda: list_clips(data), args.repeat)
    paths = [c.path for c in clips]
    total_bytes = sum(os.stat(p).st_size for p in paths)
    rows = [{"step": "listing", "seconds": listing_s, "note": f"{len(clips)} clips"}]
    size_s, _ = _timed(lambda: _size_only(clips), args.repeat)
    rows.append({"step": "size-only key (old)", "seconds": size_s, "note": "a stat per clip"})

    with tempfile.TemporaryDirectory() as tmp:
        cache = Path(tmp) / "digests.json"
        if args.drop_caches:
            why = _drop_page_cache()
            seconds, (_, stats) = _timed(lambda: content_digests(paths))
            rows.append(
                {
                    "step": "cold, disk",
                    "seconds": seconds if not why else None,
                    "gb_per_s": total_bytes / seconds / 1e9 if not why else None,
                    "note": why or f"{stats.hashed} files hashed, page cache dropped",
                }
            )
        for p in paths:  # into the page cache
            with open(p, "rb") as fh:
                while fh.read(1 << 20):
                    pass
        seconds, fingerprint = _timed(lambda: dataset_fingerprint(clips, cache_file=cache))
        rows.append(
            {
                "step": "cold, page cache",
                "seconds": seconds,
                "gb_per_s": total_bytes / seconds / 1e9,
                "note": f"every clip hashed; cache written ({cache.stat().st_size} bytes)",
            }
        )
        warm_s, warm = _timed(lambda: dataset_fingerprint(clips, cache_file=cache), args.repeat)
        _, stats = content_digests(paths, cache_file=cache)
        assert warm == fingerprint and stats.hashed == 0
        rows.append(
            {"step": "warm", "seconds": warm_s, "note": f"{stats.cached} from the cache, 0 hashed"}
        )

    print(f"{data}: {len(clips)} clips, {total_bytes / 1e9:.2f} GB, {os.cpu_count()} CPUs")
    print(f"{'step':<22}{'seconds':>10}{'GB/s':>8}  note")
    for row in rows:
        seconds = "-" if row["seconds"] is None else f"{row['seconds']:.3f}"
        rate = f"{row['gb_per_s']:.2f}" if row.get("gb_per_s") else ""
        print(f"{row['step']:<22}{seconds:>10}{rate:>8}  {row['note']}")
    write_result(
        ROOT / "bench" / "results" / f"fingerprint_speed_{data.name}.json",
        {
            "data": str(data),
            "clips": len(clips),
            "bytes": total_bytes,
            "cpus": os.cpu_count(),
            "algorithm": content_hash.ALGORITHM,
            "rows": rows,
        },
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
